// Writes an OCI image layout (oci-layout, index.json, blobs/sha256/*) from layer tarballs, for the stand-in base
// images the image tier gives BuildKit as named build contexts (no registry is reachable here).
// Usage: node oci-layout.mjs OUT_DIR CONFIG_JSON LAYER.tar [LAYER.tar ...]
//   CONFIG_JSON: the image config's "config" part, e.g. {"Env":["PATH=..."],"Cmd":["node"]}
// Prints the manifest digest (sha256:...), which the build names as oci-layout://NAME@DIGEST.
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, renameSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';

const [out, configJson, ...layers] = process.argv.slice(2);
if (!out || !configJson || layers.length === 0) {
  console.error('usage: node oci-layout.mjs OUT_DIR CONFIG_JSON LAYER.tar [LAYER.tar ...]');
  process.exit(2);
}
const blobs = join(out, 'blobs', 'sha256');
mkdirSync(blobs, { recursive: true });

/** Streams through, hashing and counting. */
function digester() {
  const hash = createHash('sha256');
  let size = 0;
  const t = new Transform({
    transform(chunk, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { t, done: () => ({ digest: `sha256:${hash.digest('hex')}`, size }) };
}

function writeBlob(data) {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  writeFileSync(join(blobs, digest.slice(7)), data);
  return { digest, size: data.length };
}

const diffIDs = [];
const layerDescs = [];
for (const tar of layers) {
  const raw = digester();
  const gz = digester();
  const tmp = join(blobs, `.partial-${process.pid}`);
  await pipeline(createReadStream(tar), raw.t, createGzip({ level: 1 }), gz.t, createWriteStream(tmp));
  const g = gz.done();
  renameSync(tmp, join(blobs, g.digest.slice(7)));
  diffIDs.push(raw.done().digest);
  layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...g });
}

const config = writeBlob(
  Buffer.from(
    JSON.stringify({
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      os: 'linux',
      config: JSON.parse(configJson),
      rootfs: { type: 'layers', diff_ids: diffIDs },
    }),
  ),
);
const manifest = writeBlob(
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layerDescs,
    }),
  ),
);
writeFileSync(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
writeFileSync(
  join(out, 'index.json'),
  JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest }],
  }),
);
console.log(manifest.digest);
