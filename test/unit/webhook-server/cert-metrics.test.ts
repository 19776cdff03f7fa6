// Knowing when to renew, and which certificate each replica serves: the expiry gauges (counting down with an injected
// clock), the info gauge's serial and SHA-256 labels (compared with openssl's own output), the CA found in the Secret's
// bundle (one CA, or two during a rotation), and the expiry warning log with its threshold and repeat interval.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WebhookMetrics } from '../../../src/webhook/server/metrics.js';
import {
  CertReloader,
  EXPIRY_WARNING_REPEAT_MS,
  EXPIRY_WARNING_SECONDS,
  findIssuer,
  pemCertificates,
} from '../../../src/webhook/server/tls.js';
import { requirePrereq } from '../../harness/prereq.js';
import { AtomicDir, haveOpenssl, memoryLogger, repoRoot, tempDir } from './helpers.js';

const generate = (out: string, args: string[] = []) => {
  const r = spawnSync('bash', [path.join(repoRoot, 'certs/generate.sh'), '--out', out, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`generate.sh ${args.join(' ')}: ${r.stderr}`);
};
/** openssl's view of a certificate file: the fingerprint and serial an admin compares with the metric. */
const opensslSays = (file: string) => {
  const r = spawnSync('openssl', ['x509', '-in', file, '-noout', '-fingerprint', '-sha256', '-serial'], {
    encoding: 'utf8',
  });
  return {
    sha256: /sha256 Fingerprint=([0-9A-F:]+)/i.exec(r.stdout)![1]!,
    serial: /serial=([0-9A-F]+)/i.exec(r.stdout)![1]!,
  };
};
const notAfter = (file: string) => new Date(new X509Certificate(readFileSync(file)).validTo).getTime();

/** The samples of one metric in the text exposition: labels as an object, and the value. */
async function samples(
  m: WebhookMetrics,
  name: string,
): Promise<Array<{ labels: Record<string, string>; value: number }>> {
  const text = await m.registry.metrics();
  const out = [];
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (match[2] ?? '').matchAll(/\b(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(match[3]) });
  }
  return out;
}

/** A Secret volume with the files of `src` (tls.crt, tls.key, ca.crt = the bundle). */
function mount(secret: AtomicDir, src: string): void {
  secret.write({
    'tls.crt': readFileSync(path.join(src, 'tls.crt')),
    'tls.key': readFileSync(path.join(src, 'tls.key')),
    'ca.crt': readFileSync(path.join(src, 'ca-bundle.crt')),
  });
}

t.test('metrics: which certificate is served, and the seconds left for it and its CA', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const tmp = tempDir('certm');
  const src = path.join(tmp, 'src');
  generate(src, ['--days', '90', '--ca-days', '400']);
  const secret = new AtomicDir(path.join(tmp, 'secret'));
  mount(secret, src);
  let now = Date.now();
  const metrics = new WebhookMetrics({ defaultMetrics: false, now: () => now });
  const log = memoryLogger();
  const reloader = new CertReloader({
    files: { cert: secret.file('tls.crt'), key: secret.file('tls.key'), ca: secret.file('ca.crt') },
    logger: log.logger,
    metrics,
    now: () => now,
  });
  const leaf = opensslSays(path.join(src, 'tls.crt'));
  const ca = opensslSays(path.join(src, 'ca.crt'));

  t.same(
    await samples(metrics, 'asm_cni_webhook_cert_info'),
    [{ labels: { serial: leaf.serial, sha256: leaf.sha256, ca_sha256: ca.sha256 }, value: 1 }],
    'the info gauge names the served certificate and its CA as openssl prints them',
  );
  const leafLeft = Math.floor((notAfter(path.join(src, 'tls.crt')) - now) / 1000);
  const caLeft = Math.floor((notAfter(path.join(src, 'ca.crt')) - now) / 1000);
  t.same(await samples(metrics, 'asm_cni_webhook_cert_expiry_seconds'), [
    { labels: { sha256: leaf.sha256 }, value: leafLeft },
  ]);
  t.same(await samples(metrics, 'asm_cni_webhook_ca_expiry_seconds'), [
    { labels: { sha256: ca.sha256 }, value: caLeft },
  ]);
  t.ok(leafLeft > 89 * 86_400 && leafLeft <= 90 * 86_400, '--days 90');
  now += 3_600_000;
  t.same(
    await samples(metrics, 'asm_cni_webhook_cert_expiry_seconds'),
    [{ labels: { sha256: leaf.sha256 }, value: leafLeft - 3600 }],
    'counts down between loads (computed at each scrape)',
  );
  t.same(await samples(metrics, 'asm_cni_webhook_ca_expiry_seconds'), [
    { labels: { sha256: ca.sha256 }, value: caLeft - 3600 },
  ]);
  t.notOk(
    log.lines.some((l) => l.level === 'warn'),
    'nothing to warn about 90 days ahead',
  );

  // Renewal (same CA) and the CA rotation's steps, each mounted by an atomic ..data swap.
  const step = (args: string[]) => {
    generate(src, args);
    mount(secret, src);
    t.equal(reloader.reload(), true, `${args.join(' ')}: reloaded`);
  };
  step(['--renew', '--days', '90']);
  const renewed = opensslSays(path.join(src, 'tls.crt'));
  t.not(renewed.serial, leaf.serial);
  t.same(
    await samples(metrics, 'asm_cni_webhook_cert_info'),
    [{ labels: { serial: renewed.serial, sha256: renewed.sha256, ca_sha256: ca.sha256 }, value: 1 }],
    'renewed: one series, the new certificate, the same CA',
  );

  step(['--ca-rotation', 'start', '--ca-days', '800']);
  t.equal(
    (await samples(metrics, 'asm_cni_webhook_cert_info'))[0]!.labels.ca_sha256,
    ca.sha256,
    'start: the bundle holds two CAs; the issuer found is still the old one',
  );
  step(['--ca-rotation', 'switch']);
  const switched = opensslSays(path.join(src, 'tls.crt'));
  const newCa = opensslSays(path.join(src, 'ca.crt'));
  t.same(
    await samples(metrics, 'asm_cni_webhook_cert_info'),
    [{ labels: { serial: switched.serial, sha256: switched.sha256, ca_sha256: newCa.sha256 }, value: 1 }],
    'switch: the new certificate, issued by the new CA (found second in the bundle)',
  );
  const newCaLeft = Math.floor((notAfter(path.join(src, 'ca.crt')) - now) / 1000);
  t.same(await samples(metrics, 'asm_cni_webhook_ca_expiry_seconds'), [
    { labels: { sha256: newCa.sha256 }, value: newCaLeft },
  ]);
  t.ok(newCaLeft > 799 * 86_400, "the new CA's lifetime");
  step(['--ca-rotation', 'finish']);
  t.equal(
    (await samples(metrics, 'asm_cni_webhook_cert_info'))[0]!.labels.sha256,
    switched.sha256,
    'finish: same cert',
  );
  t.equal(reloader.reload(), false, 'a poll with nothing new reloads nothing');
});

t.test('metrics without a CA bundle, or with one that did not issue the certificate', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const tmp = tempDir('certm-noca');
  const a = path.join(tmp, 'a');
  const b = path.join(tmp, 'b');
  generate(a);
  generate(b);
  const metrics = new WebhookMetrics({ defaultMetrics: false });
  t.same(await samples(metrics, 'asm_cni_webhook_cert_expiry_seconds'), [], 'nothing served yet: no sample');
  const log = memoryLogger();
  new CertReloader({
    files: { cert: path.join(a, 'tls.crt'), key: path.join(a, 'tls.key') },
    logger: log.logger,
    metrics,
  });
  t.same(await samples(metrics, 'asm_cni_webhook_ca_expiry_seconds'), [], 'no CA bundle given: no CA sample');
  t.equal((await samples(metrics, 'asm_cni_webhook_cert_info'))[0]!.labels.ca_sha256, '');
  t.equal((await samples(metrics, 'asm_cni_webhook_cert_expiry_seconds')).length, 1);

  const other = new WebhookMetrics({ defaultMetrics: false });
  const log2 = memoryLogger();
  const reloader = new CertReloader({
    files: { cert: path.join(a, 'tls.crt'), key: path.join(a, 'tls.key'), ca: path.join(b, 'ca.crt') },
    logger: log2.logger,
    metrics: other,
  });
  t.ok(reloader.current.leaf, 'serving regardless');
  t.same(await samples(other, 'asm_cni_webhook_ca_expiry_seconds'), []);
  t.ok(
    log2.lines.some(
      (l) =>
        l.level === 'warn' &&
        l.msg === 'cannot tell the CA of the TLS certificate; its expiry is not reported' &&
        /none of its 1 certificate\(s\) issued the serving certificate/.test(String(l.err)),
    ),
    'a bundle that does not hold the issuer is named (the API server would refuse such a pair too)',
  );
  const missing = new CertReloader({
    files: { cert: path.join(a, 'tls.crt'), key: path.join(a, 'tls.key'), ca: path.join(tmp, 'nope.crt') },
    logger: log2.logger,
    metrics: other,
  });
  t.match(missing.current.issuerProblem, /cannot read the CA bundle .*nope\.crt: no such file/);
});

t.test('the expiry warning: at the threshold, repeated daily, and once expired', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const src = path.join(tempDir('certm-warn'), 'src');
  generate(src, ['--days', '100', '--ca-days', '1000']);
  const leafEnd = notAfter(path.join(src, 'tls.crt'));
  let now = leafEnd - EXPIRY_WARNING_SECONDS * 1000 - 60_000; // a minute before the threshold
  const log = memoryLogger();
  const reloader = new CertReloader({
    files: { cert: path.join(src, 'tls.crt'), key: path.join(src, 'tls.key'), ca: path.join(src, 'ca-bundle.crt') },
    logger: log.logger,
    metrics: new WebhookMetrics({ defaultMetrics: false }),
    now: () => now,
  });
  const warnings = () => log.lines.filter((l) => l.level === 'warn').map((l) => String(l.msg));
  t.same(warnings(), [], 'not yet');
  now += 120_000;
  reloader.reload(); // the file poll
  t.same(warnings(), [
    'the TLS certificate expires in 29 days: renew it (docs/install.md, "Renewing the certificate")',
  ]);
  t.equal(log.lines.at(-1)!.serial, new X509Certificate(readFileSync(path.join(src, 'tls.crt'))).serialNumber);
  now += EXPIRY_WARNING_REPEAT_MS - 1;
  reloader.reload();
  t.equal(warnings().length, 1, 'not again within a day');
  now += 1;
  reloader.reload();
  t.equal(warnings().length, 2, 'again after a day');
  now = leafEnd + 1000;
  reloader.checkExpiry();
  t.equal(warnings().at(-1), 'the TLS certificate has expired');
  t.equal(log.lines.at(-1)!.secondsLeft, -1);

  // The CA's own threshold: its warning names the CA.
  const caLog = memoryLogger();
  const caEnd = notAfter(path.join(src, 'ca.crt'));
  new CertReloader({
    files: { cert: path.join(src, 'tls.crt'), key: path.join(src, 'tls.key'), ca: path.join(src, 'ca-bundle.crt') },
    logger: caLog.logger,
    metrics: new WebhookMetrics({ defaultMetrics: false }),
    now: () => caEnd - 86_400_000 * 3 - 1000,
    expiryWarningSeconds: 5 * 86_400,
  });
  t.match(
    caLog.lines.filter((l) => l.level === 'warn').map((l) => l.msg),
    [/^the TLS certificate has expired$/, /^the CA of the TLS certificate expires in 3 days/],
    'with a 5-day threshold: the CA 3 days before its end (the leaf, of 100 days, long gone)',
  );
});

t.test('pemCertificates and findIssuer: bundles with text, bad blocks, no certificate', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const tmp = tempDir('certm-pem');
  const a = path.join(tmp, 'a');
  const b = path.join(tmp, 'b');
  generate(a);
  generate(b);
  const caA = readFileSync(path.join(a, 'ca.crt'), 'utf8');
  const caB = readFileSync(path.join(b, 'ca.crt'), 'utf8');
  const bad = '-----BEGIN CERTIFICATE-----\nnot base64 of a certificate\n-----END CERTIFICATE-----';
  const bundle = `# trusted CAs\n${bad}\n${caB}\n${caA}\n-----BEGIN CERTIFICATE-----\ntruncated`;
  t.equal(pemCertificates(bundle).length, 3, 'three complete blocks; the truncated tail is ignored');
  t.same(pemCertificates('no pem here'), []);
  const leafA = new X509Certificate(readFileSync(path.join(a, 'tls.crt')));
  const found = findIssuer(leafA, Buffer.from(bundle));
  t.equal(found.issuer?.fingerprint256, new X509Certificate(caA).fingerprint256, 'the bad block is skipped');
  t.match(findIssuer(leafA, Buffer.from('nothing')).problem, /holds no PEM certificate/);
});
