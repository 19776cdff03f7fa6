// certs/generate.sh (SANs, idempotence, --force, Secret and caBundle outputs, bad options) and npm start's script.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { requirePrereq } from '../../harness/prereq.js';
import { haveOpenssl, httpsRequest, repoRoot, tempDir, tsChild } from './helpers.js';

const generate = (args: string[]) =>
  spawnSync('bash', [path.join(repoRoot, 'certs/generate.sh'), ...args], { encoding: 'utf8' });

t.test('generate.sh: CA and serving certificate with the in-cluster SANs', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const out = path.join(tempDir('gen'), 'out');
  const r = generate([
    '--out',
    out,
    '--namespace',
    'mesh',
    '--service',
    'hook',
    '--san',
    'hook.example.test',
    '--san',
    '192.0.2.7',
    '--days',
    '30',
    '--secret',
    '--ca-bundle',
  ]);
  t.equal(r.status, 0, r.stderr);
  const cert = new X509Certificate(readFileSync(path.join(out, 'tls.crt')));
  const ca = new X509Certificate(readFileSync(path.join(out, 'ca.crt')));
  t.ok(cert.verify(ca.publicKey), 'signed by the CA');
  t.ok(cert.checkIssued(ca));
  t.equal(ca.ca, true);
  t.equal(cert.ca, false);
  for (const san of [
    'DNS:localhost',
    'IP Address:127.0.0.1',
    'DNS:hook',
    'DNS:hook.mesh',
    'DNS:hook.mesh.svc',
    'DNS:hook.mesh.svc.cluster.local',
    'DNS:hook.example.test',
    'IP Address:192.0.2.7',
  ]) {
    t.ok(cert.subjectAltName!.split(', ').includes(san), `SAN ${san}`);
  }
  const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 29 && days <= 30.01, `valid 30 days (${days.toFixed(2)})`);
  t.equal(statSync(path.join(out, 'tls.key')).mode & 0o777, 0o600, 'the key is private');
  const secret = parseYaml(readFileSync(path.join(out, 'secret.yaml'), 'utf8')) as {
    kind: string;
    type: string;
    metadata: { name: string; namespace: string };
    data: Record<string, string>;
  };
  t.match(secret, {
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: 'asm-cni-webhook-tls', namespace: 'mesh' },
  });
  t.equal(Buffer.from(secret.data['tls.crt']!, 'base64').toString(), readFileSync(path.join(out, 'tls.crt'), 'utf8'));
  t.equal(Buffer.from(secret.data['tls.key']!, 'base64').toString(), readFileSync(path.join(out, 'tls.key'), 'utf8'));
  t.equal(Buffer.from(secret.data['ca.crt']!, 'base64').toString(), readFileSync(path.join(out, 'ca.crt'), 'utf8'));
  t.equal(
    readFileSync(path.join(out, 'ca-bundle.b64'), 'utf8'),
    readFileSync(path.join(out, 'ca.crt')).toString('base64'),
  );

  const again = generate(['--out', out]);
  t.equal(again.status, 0);
  t.match(again.stdout, /keeping the existing certificates/);
  t.equal(
    new X509Certificate(readFileSync(path.join(out, 'tls.crt'))).serialNumber,
    cert.serialNumber,
    'idempotent: kept',
  );
  const forced = generate(['--out', out, '--force']);
  t.equal(forced.status, 0);
  t.not(
    new X509Certificate(readFileSync(path.join(out, 'tls.crt'))).serialNumber,
    cert.serialNumber,
    '--force replaces',
  );
  t.notOk(readFileSync(path.join(out, 'tls.crt'), 'utf8').length === 0);
});

t.test('generate.sh: bad options are named', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /unknown option: --bogus/],
    [['--days', 'ten'], /--days must be a positive number/],
    [['--namespace', 'Bad_NS'], /--namespace must be a DNS label/],
    [['--out'], /--out needs a value/],
  ];
  for (const [args, re] of cases) {
    const r = generate(args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, re);
  }
  const help = generate(['--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /--secret/);
});

t.test('npm start (scripts/start.sh): dev certificates generated, webhook serving, Ctrl-C exits 0', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl)')) return;
  const certDir = path.join(tempDir('start'), 'dev');
  const { env } = tsChild({ ...process.env, ASM_DEV_CERT_DIR: certDir, NODE_ENV: 'production' });
  for (const k of ['ASM_TLS_CERT', 'ASM_TLS_KEY', 'ASM_CONFIG', 'NODE_OPTIONS']) delete env[k];
  const child = spawn(
    'bash',
    [path.join(repoRoot, 'scripts/start.sh'), '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('asm-cni webhook serving')) resolve((JSON.parse(line) as { port: number }).port);
    });
    void exited.then((code) => reject(new Error(`start.sh exited ${code}: ${stderr}`)));
  });
  for (const f of ['ca.crt', 'tls.crt', 'tls.key']) t.ok(existsSync(path.join(certDir, f)), `${f} generated`);
  const ready = await httpsRequest(port, {
    method: 'GET',
    path: '/readyz',
    ca: readFileSync(path.join(certDir, 'ca.crt')),
  });
  t.equal(ready.status, 200, 'serving with the dev CA (SAN localhost)');
  child.kill('SIGINT');
  t.equal(await exited, 0);
});
