// The real server on 127.0.0.1:0: admission over TLS, what TLS refuses, certificate rotation while serving
// (Kubernetes atomic-writer symlink swaps), the client-certificate check, the metrics port, and a clean stop.
import t from 'tap';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { admit } from '../../../src/webhook/core/admit.js';
import { DEFAULT_CONFIG } from '../../../src/common/shared-config.js';
import { startServer } from '../../../src/webhook/server/server.js';
import { requirePrereq } from '../../harness/prereq.js';
import { HANG_MS } from '../../harness/wait.js';
import {
  AtomicDir,
  type CertSet,
  clientCert,
  decodePatch,
  eventually,
  generateCerts,
  haveOpenssl,
  httpsRequest,
  meshedPod,
  memoryLogger,
  review,
  tempDir,
} from './helpers.js';

const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;

function plainHttp(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'GET', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function startOn(dir: AtomicDir, extra: { clientCa?: string } = {}) {
  const log = memoryLogger();
  const running = await startServer({
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    cert: dir.file('tls.crt'),
    key: dir.file('tls.key'),
    ...extra,
    admit,
    shutdownDelayMs: 0,
    shutdownGraceMs: 3000,
    log,
    watch: { debounceMs: 50, pollMs: 0 },
  });
  return { running, log };
}

t.test('serving over TLS', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const tmp = tempDir('tls');
  const a: CertSet = generateCerts(path.join(tmp, 'a'));
  const b: CertSet = generateCerts(path.join(tmp, 'b'));
  const secret = new AtomicDir(path.join(tmp, 'secret'));
  secret.write({ 'tls.crt': readFileSync(a.cert), 'tls.key': readFileSync(a.key), 'ca.crt': a.ca });
  const { running, log } = await startOn(secret);
  const port = running.port;
  const ca = [a.ca, b.ca];
  const agent = new https.Agent({ keepAlive: true, maxSockets: 2 });
  t.teardown(async () => {
    agent.destroy();
    await running.shutdown();
  });

  t.test('a review: the patch, applied with validation to the request object, gives the rewrite', async (t) => {
    const pod = meshedPod();
    const body = review(pod);
    const res = await httpsRequest(port, { body: JSON.stringify(body), ca, agent });
    t.equal(res.status, 200);
    t.equal(res.headers.connection, 'keep-alive');
    t.match(res.headers['keep-alive'], /timeout=120/, 'idle keep-alive outlasts the API server client (90 s)');
    const out = JSON.parse(res.body) as { response: { uid: string; patch?: string; patchType?: string } };
    t.equal(out.response.uid, (body.request as { uid: string }).uid);
    t.equal(out.response.patchType, 'JSONPatch');
    const patched = jsonpatch.applyPatch(
      structuredClone(pod),
      decodePatch(out.response) as Operation[],
      true,
      false,
    ).newDocument;
    const expected = jsonpatch.applyPatch(
      structuredClone(pod),
      admit(body.request as never, DEFAULT_CONFIG).patch,
      true,
      false,
    ).newDocument as {
      spec: { initContainers: Array<{ name: string }> };
    };
    t.same(patched, expected);
    t.equal(expected.spec.initContainers[0]!.name, 'istio-validation');
    t.equal(res.serial, serialOf(a.cert));
    const ready = await httpsRequest(port, { method: 'GET', path: '/readyz', ca, agent });
    t.equal(ready.status, 200);
  });

  t.test('plain HTTP on the TLS port is refused, and the server keeps serving', async (t) => {
    const before = (await running.metrics.tlsClientErrors.get()).values[0]?.value ?? 0;
    await t.rejects(plainHttp(port, '/readyz'), 'no HTTP answer over plain text');
    await t.rejects(plainHttp(port, '/mutate'));
    await eventually(async () => ((await running.metrics.tlsClientErrors.get()).values[0]?.value ?? 0) > before);
    t.equal((await httpsRequest(port, { body: JSON.stringify(review(meshedPod())), ca })).status, 200);
  });

  const connect = (opts: tls.ConnectionOptions) =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts }, () => {
        const v = s.getProtocol() ?? '';
        s.end();
        resolve(v);
      });
      s.on('error', reject);
    });

  t.test('TLS 1.1 is refused; TLS 1.2 and 1.3 are accepted', async (t) => {
    // The client side allows TLS 1.1 (SECLEVEL=0), so a refusal comes from the server.
    const err = await connect({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    t.ok(err, 'TLS 1.1 handshake fails');
    t.match(String(err?.code ?? err?.message), /VERSION|PROTOCOL|ALERT/i, `refused by the server (${err?.code})`);
    t.equal(await connect({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), 'TLSv1.2');
    t.equal(await connect({ minVersion: 'TLSv1.3' }), 'TLSv1.3');
    // TLS 1.2 without forward secrecy or with CBC is not offered.
    await t.rejects(
      connect({ maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA256:AES256-SHA' }),
      'static-RSA CBC suites refused',
    );
  });

  t.test('the metrics port: Prometheus text, probes, nothing else', async (t) => {
    const m = await plainHttp(running.metricsPort, '/metrics');
    t.equal(m.status, 200);
    t.match(m.body, /asm_cni_webhook_reviews_total\{outcome="patched",reason="selected"\} \d+/);
    t.match(m.body, /asm_cni_webhook_review_duration_seconds_bucket\{le="0\.001",outcome="patched"\}/);
    t.match(m.body, /asm_cni_webhook_cert_reloads_total 1/);
    t.match(m.body, /asm_cni_webhook_config_reloads_total 1/);
    t.match(m.body, /asm_cni_webhook_ready 1/);
    t.match(m.body, /asm_cni_webhook_cert_not_after_timestamp_seconds \d{10}/);
    t.match(m.body, /process_cpu_user_seconds_total/);
    t.equal((await plainHttp(running.metricsPort, '/readyz')).status, 200);
    t.equal((await plainHttp(running.metricsPort, '/healthz')).status, 200);
    t.equal((await plainHttp(running.metricsPort, '/mutate')).status, 404, 'admission is never served over plain HTTP');
    const post = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: running.metricsPort, path: '/metrics', method: 'POST', agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end('x');
    });
    t.equal(post, 405);
  });

  t.test('certificate rotation while serving: a symlink swap puts the new certificate into service', async (t) => {
    secret.write({ 'tls.crt': readFileSync(b.cert), 'tls.key': readFileSync(b.key), 'ca.crt': b.ca });
    const served = await eventually(async () => {
      const r = await httpsRequest(port, { method: 'GET', path: '/readyz', ca });
      return r.serial === serialOf(b.cert) ? r : undefined;
    });
    t.equal(served.status, 200);
    t.equal(
      served.fingerprint,
      new X509Certificate(readFileSync(b.cert)).fingerprint256,
      'the peer presents the new certificate',
    );
    t.equal((await running.metrics.certReloads.get()).values[0]!.value, 2);
    t.ok(log.lines.some((l) => l.msg === 'TLS certificate reloaded' && l.serial === serialOf(b.cert)));
    await t.rejects(
      connect({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
      'the new context keeps TLS 1.2+',
    );
    // A kept-alive connection from before the rotation still works.
    t.equal((await httpsRequest(port, { body: JSON.stringify(review(meshedPod())), ca, agent })).status, 200);
  });

  t.test('a bad new pair is refused and the last good certificate keeps serving', async (t) => {
    secret.write({ 'tls.crt': readFileSync(a.cert), 'tls.key': readFileSync(b.key), 'ca.crt': a.ca });
    await eventually(async () => (await running.metrics.certReloadFailures.get()).values[0]!.value === 1);
    t.ok(
      log.lines.some((l) => l.level === 'error' && /does not match/.test(String(l.err))),
      'the mismatch is logged',
    );
    const r = await httpsRequest(port, { method: 'GET', path: '/readyz', ca });
    t.equal(r.serial, serialOf(b.cert), 'still the previous certificate');
    // Garbage instead of a certificate, then the good pair again.
    secret.write({ 'tls.crt': 'not a certificate', 'tls.key': readFileSync(a.key), 'ca.crt': a.ca });
    await eventually(async () => (await running.metrics.certReloadFailures.get()).values[0]!.value === 2);
    t.equal((await httpsRequest(port, { method: 'GET', path: '/readyz', ca })).serial, serialOf(b.cert));
    secret.write({ 'tls.crt': readFileSync(a.cert), 'tls.key': readFileSync(a.key), 'ca.crt': a.ca });
    await eventually(
      async () => (await httpsRequest(port, { method: 'GET', path: '/readyz', ca })).serial === serialOf(a.cert),
    );
    t.pass('recovered with the next good pair');
  });

  t.test('an accept error (EMFILE) after listen is logged, not fatal', async (t) => {
    running.app.server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
    running.metricsServer.emit('error', new Error('accept EMFILE'));
    t.equal(log.lines.filter((l) => l.msg === 'server error; still serving').length, 2);
    t.equal((await httpsRequest(port, { method: 'GET', path: '/readyz', ca })).status, 200);
  });

  t.test('shutdown: not ready, listener closed, resolves clean', async (t) => {
    const clean = await running.shutdown();
    t.equal(clean, true);
    t.equal(running.readiness.ready, false);
    await t.rejects(httpsRequest(port, { method: 'GET', path: '/healthz', ca }), 'nothing listens any more');
    t.equal(await running.shutdown(), true, 'idempotent');
  });
});

t.test('client certificate check (--client-ca)', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const tmp = tempDir('mtls');
  const server = generateCerts(path.join(tmp, 'server'));
  const clients = generateCerts(path.join(tmp, 'clients'));
  const other = generateCerts(path.join(tmp, 'other'));
  const secret = new AtomicDir(path.join(tmp, 'secret'));
  secret.write({
    'tls.crt': readFileSync(server.cert),
    'tls.key': readFileSync(server.key),
    'client-ca.crt': clients.ca,
  });
  const { running } = await startOn(secret, { clientCa: secret.file('client-ca.crt') });
  t.teardown(() => running.shutdown());
  const good = await clientCert(clients, clients.dir);
  const bad = await clientCert(other, other.dir);
  const body = JSON.stringify(review(meshedPod()));
  t.equal(
    (await httpsRequest(running.port, { body, ca: server.ca, ...good })).status,
    200,
    'a client certificate from the CA is accepted',
  );
  await t.rejects(httpsRequest(running.port, { body, ca: server.ca }), 'no client certificate: refused');
  await t.rejects(
    httpsRequest(running.port, { body, ca: server.ca, ...bad }),
    'a certificate from another CA: refused',
  );
  // The client CA is reloaded too: switch to the other CA.
  secret.write({
    'tls.crt': readFileSync(server.cert),
    'tls.key': readFileSync(server.key),
    'client-ca.crt': other.ca,
  });
  await eventually(async () => (await httpsRequest(running.port, { body, ca: server.ca, ...bad })).status === 200);
  await t.rejects(httpsRequest(running.port, { body, ca: server.ca, ...good }), 'the old CA no longer admits');
});

t.test(
  'a connection that never sends a request is closed; an idle keep-alive connection after a response is kept',
  async (t) => {
    if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
    const tmp = tempDir('idle');
    const a: CertSet = generateCerts(path.join(tmp, 'a'));
    const secret = new AtomicDir(path.join(tmp, 'secret'));
    secret.write({ 'tls.crt': readFileSync(a.cert), 'tls.key': readFileSync(a.key), 'ca.crt': a.ca });
    const log = memoryLogger();
    const running = await startServer({
      host: '127.0.0.1',
      port: 0,
      metricsPort: 0,
      cert: secret.file('tls.crt'),
      key: secret.file('tls.key'),
      admit,
      shutdownDelayMs: 0,
      shutdownGraceMs: 3000,
      log,
      watch: { debounceMs: 50, pollMs: 0 },
      connectionTimeoutMs: 300,
    });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(async () => {
      agent.destroy();
      await running.shutdown();
    });

    // A connection that sends nothing is closed by the server; without the timeout it would be held forever (the
    // deadline only catches that hang).
    const silentClosed = async (): Promise<boolean> => {
      const silent = tls.connect({ host: '127.0.0.1', port: running.port, ca: a.ca, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => silent.once('secureConnect', resolve).once('error', reject));
      const closed = await new Promise<boolean>((resolve) => {
        const hang = setTimeout(() => resolve(false), HANG_MS);
        silent.once('close', () => {
          clearTimeout(hang);
          resolve(true);
        });
      });
      silent.destroy();
      return closed;
    };
    t.ok(await silentClosed(), 'the silent connection was closed by the server (timeout 300 ms)');

    const first = await httpsRequest(running.port, { body: JSON.stringify(review(meshedPod())), ca: [a.ca], agent });
    t.equal(first.status, 200);
    const socketsAfterFirst = Object.values(agent.freeSockets).flat().length;
    t.equal(socketsAfterFirst, 1, 'the answered connection is kept alive');
    // Ordered by events, not by a guessed sleep: a silent connection opened after the answer has been cut by the
    // pre-request timeout, so the idle keep-alive connection is now older than that timeout.
    t.ok(await silentClosed(), 'a later silent connection was cut');
    t.equal(Object.values(agent.freeSockets).flat().length, 1, 'still open past the 300 ms pre-request timeout');
    const second = await httpsRequest(running.port, { body: JSON.stringify(review(meshedPod())), ca: [a.ca], agent });
    t.equal(second.status, 200, 'and reused');
  },
);
