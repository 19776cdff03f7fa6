// certs/generate.sh --renew and --ca-rotation: at every step the certificate served before the step and the one
// served after it are both trusted by the caBundle in force (ca-bundle.crt), which is what makes each step refuse no
// pod; and a step run out of order, or a renewal without the CA key, is refused with a message naming what to do.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { requirePrereq } from '../../harness/prereq.js';
import { haveOpenssl, repoRoot, tempDir } from '../webhook-server/helpers.js';

const generate = (out: string, args: string[] = []) =>
  spawnSync('bash', [path.join(repoRoot, 'certs/generate.sh'), '--out', out, ...args], { encoding: 'utf8' });

const read = (out: string, f: string): string => readFileSync(path.join(out, f), 'utf8');
const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;
/** The certificates of a PEM bundle. */
const bundleOf = (out: string): X509Certificate[] =>
  (read(out, 'ca-bundle.crt').match(PEM_CERT) ?? []).map((p) => new X509Certificate(p));

/** openssl's own chain check: does the bundle (as a CAfile) verify the certificate PEM? */
function trusts(bundlePem: string, certPem: string, dir: string): boolean {
  const ca = path.join(dir, 'trust.pem');
  const leaf = path.join(dir, 'leaf.pem');
  writeFileSync(ca, bundlePem);
  writeFileSync(leaf, certPem);
  return spawnSync('openssl', ['verify', '-CAfile', ca, leaf], { encoding: 'utf8' }).status === 0;
}

t.test('--renew: a new serving certificate and key from the same CA; ca.crt and ca-bundle.crt unchanged', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const dir = tempDir('renew');
  const out = path.join(dir, 'tls');
  t.equal(generate(out, ['--san', 'hook.example.test']).status, 0);
  const before = { ca: read(out, 'ca.crt'), bundle: read(out, 'ca-bundle.crt'), crt: read(out, 'tls.crt') };
  const oldKey = read(out, 'tls.key');
  t.equal(before.bundle, before.ca, 'after an install the bundle is the one CA');

  const r = generate(out, ['--renew', '--days', '40', '--secret', '--ca-bundle']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /renewed .*tls\.crt .*signed by the existing CA/);
  const crt = read(out, 'tls.crt');
  t.not(crt, before.crt, 'a new certificate');
  t.not(read(out, 'tls.key'), oldKey, 'with a new key');
  t.equal(read(out, 'ca.crt'), before.ca, 'the CA is the same');
  t.equal(read(out, 'ca-bundle.crt'), before.bundle, 'the caBundle is the same');
  t.ok(trusts(before.bundle, before.crt, dir), 'the old certificate is trusted by the caBundle');
  t.ok(trusts(before.bundle, crt, dir), 'and so is the renewed one: no refusal during the rollout');
  const leaf = new X509Certificate(crt);
  t.not(leaf.serialNumber, new X509Certificate(before.crt).serialNumber, 'a new serial');
  const days = (new Date(leaf.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 39 && days <= 40.01, `valid --days 40 (${days.toFixed(2)})`);
  t.ok(leaf.subjectAltName!.split(', ').includes('DNS:hook.example.test'), 'keeps the extra SAN of the old cert');
  t.equal(
    leaf.subjectAltName!.split(', ').filter((s) => s.startsWith('IP Address:0:0:0:0:0:0:0:1')).length,
    1,
    '::1 once',
  );
  t.equal(statSync(path.join(out, 'tls.key')).mode & 0o777, 0o600, 'the key is private');
  const secret = parseYaml(read(out, 'secret.yaml')) as { data: Record<string, string> };
  t.equal(Buffer.from(secret.data['ca.crt']!, 'base64').toString(), before.bundle, "the Secret's ca.crt is the bundle");
  t.equal(Buffer.from(secret.data['tls.crt']!, 'base64').toString(), crt);
  t.equal(read(out, 'ca-bundle.b64'), Buffer.from(before.bundle).toString('base64'));
});

t.test('--renew refuses clearly, changing nothing, without the CA key or without certificates', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const out = path.join(tempDir('renew-nokey'), 'tls');
  t.equal(generate(out).status, 0);
  const crt = read(out, 'tls.crt');
  rmSync(path.join(out, 'ca.key'));
  const r = generate(out, ['--renew']);
  t.equal(r.status, 2);
  t.match(r.stderr, /--renew needs the CA's private key .*ca\.key.* missing/);
  t.match(r.stderr, /--ca-rotation start, switch, finish/, 'and says what to do instead');
  t.equal(read(out, 'tls.crt'), crt, 'the serving certificate is untouched');

  // A key that is not the CA's: the signature check catches it before anything is replaced.
  const other = path.join(tempDir('renew-other'), 'tls');
  t.equal(generate(other).status, 0);
  writeFileSync(path.join(out, 'ca.key'), read(other, 'ca.key'));
  const wrong = generate(out, ['--renew']);
  t.equal(wrong.status, 2);
  t.match(wrong.stderr, /is not the private key of .*ca\.crt/);
  t.equal(read(out, 'tls.crt'), crt, 'still untouched');

  const empty = generate(path.join(tempDir('renew-empty'), 'tls'), ['--renew']);
  t.equal(empty.status, 2);
  t.match(empty.stderr, /ca\.crt is missing \(no certificates yet/);
});

t.test('--ca-rotation start, switch, finish: each step is trusted by the bundle before and after it', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const dir = tempDir('rotate');
  const out = path.join(dir, 'tls');
  t.equal(generate(out).status, 0);
  const old = { ca: read(out, 'ca.crt'), crt: read(out, 'tls.crt'), bundle: read(out, 'ca-bundle.crt') };

  // 1. start: a new CA, trusted beside the old one; the served certificate is the old one.
  const start = generate(out, ['--ca-rotation', 'start', '--ca-days', '20']);
  t.equal(start.status, 0, start.stderr);
  const next = read(out, 'next-ca.crt');
  t.equal(read(out, 'tls.crt'), old.crt, 'start: serving certificate unchanged');
  t.equal(read(out, 'ca.crt'), old.ca, 'start: ca.crt (the signing CA) unchanged');
  t.same(
    bundleOf(out).map((c) => c.fingerprint256),
    [new X509Certificate(old.ca).fingerprint256, new X509Certificate(next).fingerprint256],
    'start: the bundle holds the old and the new CA',
  );
  const caDays = (new Date(new X509Certificate(next).validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(caDays > 19 && caDays <= 20.01, `the new CA is valid --ca-days 20 (${caDays.toFixed(2)})`);
  const bundle1 = read(out, 'ca-bundle.crt');
  t.ok(trusts(bundle1, old.crt, dir), 'start: the served (old) certificate is trusted by the new bundle');
  t.equal(generate(out, ['--ca-rotation', 'start']).status, 2, 'start twice is refused');
  t.match(generate(out, ['--ca-rotation', 'finish']).stderr, /run --ca-rotation switch first/, 'finish before switch');

  // 2. switch: a certificate from the new CA; both CAs still trusted.
  const sw = generate(out, ['--ca-rotation', 'switch']);
  t.equal(sw.status, 0, sw.stderr);
  const crt2 = read(out, 'tls.crt');
  t.not(crt2, old.crt, 'switch: a new serving certificate');
  t.equal(read(out, 'ca.crt'), next, 'switch: the new CA is now ca.crt');
  t.equal(read(out, 'previous-ca.crt'), old.ca, 'switch: the old CA is kept as previous-ca.crt');
  t.notOk(existsSync(path.join(out, 'next-ca.crt')), 'switch: no next CA left');
  t.ok(new X509Certificate(crt2).verify(new X509Certificate(next).publicKey), 'switch: signed by the new CA');
  const bundle2 = read(out, 'ca-bundle.crt');
  t.equal(bundleOf(out).length, 2, 'switch: the bundle still holds two CAs');
  t.ok(trusts(bundle1, crt2, dir), "switch: the new certificate is trusted by start's bundle (still in force)");
  t.ok(trusts(bundle2, old.crt, dir), "switch: the old certificate is trusted by switch's bundle (pods not synced)");
  t.notOk(trusts(old.bundle, crt2, dir), 'control: the bundle from before the rotation would refuse it');

  // 3. finish: only the new CA.
  const fin = generate(out, ['--ca-rotation', 'finish']);
  t.equal(fin.status, 0, fin.stderr);
  t.same(
    bundleOf(out).map((c) => c.fingerprint256),
    [new X509Certificate(next).fingerprint256],
    'finish: the bundle holds the new CA only',
  );
  t.ok(trusts(read(out, 'ca-bundle.crt'), crt2, dir), 'finish: the served certificate is trusted');
  t.notOk(trusts(read(out, 'ca-bundle.crt'), old.crt, dir), 'finish: the old certificate is not');
  t.notOk(existsSync(path.join(out, 'previous-ca.crt')), 'finish: the old CA is removed');
  t.notOk(existsSync(path.join(out, 'previous-ca.key')), 'with its key');
  t.match(generate(out, ['--ca-rotation', 'finish']).stderr, /no rotation under way/, 'finish twice is refused');
  t.match(generate(out, ['--ca-rotation', 'switch']).stderr, /run --ca-rotation start first/, 'switch without start');

  // The new CA signs renewals from now on.
  t.equal(generate(out, ['--renew']).status, 0);
  t.ok(trusts(read(out, 'ca-bundle.crt'), read(out, 'tls.crt'), dir), 'a renewal after the rotation is trusted');
});

t.test('--ca-rotation works without the old CA key (the way out when ca.key is lost)', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const dir = tempDir('rotate-nokey');
  const out = path.join(dir, 'tls');
  t.equal(generate(out).status, 0);
  rmSync(path.join(out, 'ca.key'));
  for (const step of ['start', 'switch', 'finish']) {
    const r = generate(out, ['--ca-rotation', step]);
    t.equal(r.status, 0, `${step}: ${r.stderr}`);
  }
  t.ok(existsSync(path.join(out, 'ca.key')), 'the new CA has its key');
  t.ok(trusts(read(out, 'ca-bundle.crt'), read(out, 'tls.crt'), dir));
  t.equal(generate(out, ['--finish-nothing']).status, 2);
});

t.test('finish refuses while the served certificate is not from the new CA', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const out = path.join(tempDir('rotate-bad'), 'tls');
  t.equal(generate(out).status, 0);
  const oldCrt = read(out, 'tls.crt');
  for (const step of ['start', 'switch']) t.equal(generate(out, ['--ca-rotation', step]).status, 0);
  writeFileSync(path.join(out, 'tls.crt'), oldCrt); // e.g. restored from a backup
  const r = generate(out, ['--ca-rotation', 'finish']);
  t.equal(r.status, 2);
  t.match(r.stderr, /tls\.crt is not signed by .*ca\.crt; dropping the other CA would refuse it/);
  t.equal(bundleOf(out).length, 2, 'the bundle keeps both CAs');
});

t.test('modes exclude each other; an install from before ca-bundle.crt gets one', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const out = path.join(tempDir('modes'), 'tls');
  for (const [args, re] of [
    [['--renew', '--force'], /exclude each other/],
    [['--ca-rotation', 'start', '--renew'], /exclude each other/],
    [['--ca-rotation', 'sideways'], /--ca-rotation takes start, switch or finish, got 'sideways'/],
    [['--ca-rotation'], /--ca-rotation needs a value/],
  ] as Array<[string[], RegExp]>) {
    const r = generate(out, args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, re);
  }
  t.equal(generate(out).status, 0);
  rmSync(path.join(out, 'ca-bundle.crt'));
  const kept = generate(out);
  t.equal(kept.status, 0);
  t.match(kept.stdout, /keeping the existing certificates/);
  t.equal(read(out, 'ca-bundle.crt'), read(out, 'ca.crt'), 'the bundle is the CA');
  // --force during a rotation starts over: a fresh CA, no rotation state left.
  t.equal(generate(out, ['--ca-rotation', 'start']).status, 0);
  t.equal(generate(out, ['--force']).status, 0);
  t.notOk(existsSync(path.join(out, 'next-ca.crt')), '--force clears a rotation under way');
  t.equal(read(out, 'ca-bundle.crt'), read(out, 'ca.crt'));
});
