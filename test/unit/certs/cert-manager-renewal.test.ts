// Why cert-manager's renewals refuse no pod (docs/install.md, "Renewing the certificate"): the serving certificate is
// renewed by the same CA Issuer (caBundle unchanged), and the CA certificate is renewed with its key kept
// (rotationPolicy Never), so certificates issued under the old CA certificate verify against the new one. The e2e test
// checks the second case against the real API server; here the manifests say so and openssl agrees.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { requirePrereq } from '../../harness/prereq.js';
import { reissueCA } from '../../harness/certs.js';
import { haveOpenssl, repoRoot, tempDir } from '../webhook-server/helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const componentDir = path.join(repoRoot, 'manifests', 'components', 'cert-manager');
const docs = (file: string): any[] =>
  parseAllDocuments(readFileSync(path.join(componentDir, file), 'utf8')).map((d) => d.toJS());
const certificates = docs('certificates.yaml');
const issuers = docs('issuers.yaml');
const byName = (objs: any[], name: string) => objs.find((o) => o.metadata.name === name);

t.test('the serving certificate is renewed by the same CA; the CA keeps its key when renewed', async (t) => {
  const serving = byName(certificates, 'asm-cni-webhook');
  const ca = byName(certificates, 'asm-cni-ca');
  const caIssuer = byName(issuers, serving.spec.issuerRef.name);
  t.equal(caIssuer.spec.ca.secretName, ca.spec.secretName, "the serving certificate's issuer signs with the CA Secret");
  t.equal(ca.spec.isCA, true);
  t.equal(ca.spec.privateKey.rotationPolicy, 'Never', 'a renewed CA certificate keeps the key');
  t.equal(serving.spec.privateKey.rotationPolicy, 'Always', 'the serving key is new each time (it may change freely)');
  const kustomization = readFileSync(path.join(componentDir, 'kustomization.yaml'), 'utf8');
  t.match(
    kustomization,
    /cert-manager\.io\/inject-ca-from: asm-cni\/asm-cni-webhook/,
    "caBundle is the serving Secret's ca.crt, which a renewal of the serving certificate leaves as it is",
  );
});

t.test(
  'openssl: a leaf issued under a CA certificate verifies against a renewal of it with the same key',
  async (t) => {
    if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
    const dir = tempDir('cm-ca');
    const out = path.join(dir, 'tls');
    const gen = spawnSync('bash', [path.join(repoRoot, 'certs/generate.sh'), '--out', out], { encoding: 'utf8' });
    t.equal(gen.status, 0, gen.stderr);
    const openssl = (args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });
    const reissue = (key: string, file: string) => reissueCA(key, file, 30);
    const renewed = path.join(dir, 'renewed-ca.crt');
    t.equal(reissue(path.join(out, 'ca.key'), renewed).status, 0);
    t.not(readFileSync(renewed, 'utf8'), readFileSync(path.join(out, 'ca.crt'), 'utf8'), 'a different CA certificate');
    const verify = (ca: string) => openssl(['verify', '-CAfile', ca, path.join(out, 'tls.crt')]).status;
    t.equal(verify(renewed), 0, 'same key: the old serving certificate verifies against the renewed CA alone');

    // Control: a CA of the same name with a new key does not.
    const otherKey = path.join(dir, 'other.key');
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', otherKey]);
    const rekeyed = path.join(dir, 'rekeyed-ca.crt');
    t.equal(reissue(otherKey, rekeyed).status, 0);
    t.not(verify(rekeyed), 0, 'new key (rotationPolicy Always): refused');
  },
);
