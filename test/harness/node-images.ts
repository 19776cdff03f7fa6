// Container images without a registry: the stand-in binary (test/node/images/main.go, test-only) in a one-layer image,
// written as a `docker save` archive and imported with `ctr -n k8s.io images import`, named as the pods reference it.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, copyFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './proc.js';

export interface ImageSpec {
  /** The full reference the pod uses, e.g. docker.io/istio/proxyv2:1.26.8. */
  name: string;
  /** Entrypoint after the binary: ['pause'], ['app', '9080'], ['istio'] (the pod's args follow). */
  entrypoint: string[];
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const goArch = (): string => ({ x64: 'amd64', arm64: 'arm64' })[process.arch as 'x64' | 'arm64'] ?? process.arch;

/** Writes `dir/image.tar` for `spec` with the stand-in at /standin; returns the archive's path. */
export async function writeImageArchive(dir: string, standin: string, spec: ImageSpec): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  for (const d of ['etc', 'tmp', 'dev', 'proc', 'sys']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(standin, join(rootfs, 'standin'));
  chmodSync(join(rootfs, 'standin'), 0o755);
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  const layerDir = join(dir, 'archive');
  mkdirSync(layerDir, { recursive: true });
  // Fixed owner and times: the same inputs give the same layer digest.
  await runOk('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--mtime=@0',
    '-C',
    rootfs,
    '-cf',
    join(layerDir, 'layer.tar'),
    '.',
  ]);
  const layer = readFileSync(join(layerDir, 'layer.tar'));
  const config = {
    architecture: goArch(),
    os: 'linux',
    config: {
      Entrypoint: ['/standin', ...spec.entrypoint],
      Env: ['PATH=/'],
      Labels: { 'asm-cni.test/stand-in': 'true' },
    },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] },
  };
  const configJson = Buffer.from(JSON.stringify(config));
  const configName = `${sha256(configJson)}.json`;
  writeFileSync(join(layerDir, configName), configJson);
  writeFileSync(
    join(layerDir, 'manifest.json'),
    JSON.stringify([{ Config: configName, RepoTags: [spec.name], Layers: ['layer.tar'] }]),
  );
  const archive = join(dir, 'image.tar');
  await runOk('tar', ['-C', layerDir, '-cf', archive, 'manifest.json', configName, 'layer.tar']);
  return archive;
}
