// Shutdown details not covered by the child-process test: the bounded grace period, the signal handlers.
import t, { type Test } from 'tap';
import https from 'node:https';
import path from 'node:path';
import { admit } from '../../../src/webhook/core/admit.js';
import { exitOnSignals, startServer } from '../../../src/webhook/server/server.js';
import { Readiness } from '../../../src/webhook/server/shutdown.js';
import { requirePrereq } from '../../harness/prereq.js';
import { eventually, generateCerts, haveOpenssl, httpsRequest, memoryLogger, tempDir } from './helpers.js';

t.test('Readiness: all of cert, config and listener; never again once shutting down', async (t) => {
  const r = new Readiness();
  t.equal(r.ready, false);
  r.certLoaded = true;
  r.configLoaded = true;
  t.equal(r.ready, false, 'not before listening');
  r.listening = true;
  t.equal(r.ready, true);
  r.shuttingDown = true;
  t.equal(r.ready, false);
});

async function start(t: Test, graceMs: number) {
  const certs = generateCerts(path.join(tempDir('shutdown'), 'certs'));
  const log = memoryLogger();
  const running = await startServer({
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    cert: certs.cert,
    key: certs.key,
    admit,
    shutdownDelayMs: 50,
    shutdownGraceMs: graceMs,
    log,
  });
  t.teardown(() => running.shutdown());
  return { running, log, certs };
}

t.test('a request that never completes is cut when the grace period ends', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const { running, log, certs } = await start(t, 300);
  // A client that sends half a body and then stalls.
  const stalled = new Promise<string>((resolve) => {
    const req = https.request({
      host: '127.0.0.1',
      port: running.port,
      servername: 'localhost',
      method: 'POST',
      path: '/mutate',
      ca: certs.ca,
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': '1000' },
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.on('response', () => resolve('answered'));
    req.write('{"apiVersion":');
  });
  await eventually(
    async () => (await httpsRequest(running.port, { method: 'GET', path: '/healthz', ca: certs.ca })).status === 200,
  );
  const started = Date.now();
  const clean = await running.shutdown();
  t.equal(clean, false, 'not clean: a connection had to be cut');
  t.ok(Date.now() - started >= 300, 'the grace period was waited for');
  t.match(await stalled, /ECONNRESET|socket hang up/);
  t.ok(log.lines.some((l) => l.level === 'warn' && /grace period over/.test(String(l.msg))));
});

function captureSignals(t: Test): void {
  const before = { SIGTERM: process.listeners('SIGTERM'), SIGINT: process.listeners('SIGINT') };
  t.teardown(() => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const)
      for (const l of process.listeners(sig)) if (!before[sig].includes(l)) process.off(sig, l);
  });
}

t.test(
  'signals: SIGTERM drains and exits 0; repeated SIGTERMs (a process group plus npm forwarding) are ignored',
  async (t) => {
    if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
    const { running, log } = await start(t, 2000);
    captureSignals(t);
    const codes: number[] = [];
    exitOnSignals(running, log, (code) => codes.push(code));
    process.emit('SIGTERM', 'SIGTERM');
    t.equal(running.readiness.ready, false, 'not ready at once');
    process.emit('SIGTERM', 'SIGTERM');
    process.emit('SIGINT', 'SIGINT'); // within the duplicate window
    await eventually(() => codes.length === 1);
    t.same(codes, [0], 'one graceful exit, 0');
    t.equal(log.lines.filter((l) => l.msg === 'already shutting down; signal ignored').length, 2);
  },
);

t.test('a second Ctrl-C after the window cuts the drain and exits 1', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const { running, log, certs } = await start(t, 5000);
  captureSignals(t);
  // A stalled request keeps the drain busy.
  const stalled = new Promise<string>((resolve) => {
    const req = https.request({
      host: '127.0.0.1',
      port: running.port,
      servername: 'localhost',
      method: 'POST',
      path: '/mutate',
      ca: certs.ca,
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': '1000' },
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.write('{');
  });
  await eventually(
    async () => (await httpsRequest(running.port, { method: 'GET', path: '/healthz', ca: certs.ca })).status === 200,
  );
  const codes: number[] = [];
  exitOnSignals(running, log, (code) => codes.push(code), { duplicateWindowMs: 50 });
  process.emit('SIGINT', 'SIGINT');
  await eventually(() => log.lines.some((l) => /closing the listener/.test(String(l.msg))));
  await new Promise((r) => setTimeout(r, 80));
  process.emit('SIGINT', 'SIGINT');
  t.same(codes, [1], 'exit 1 at once');
  t.match(await stalled, /ECONNRESET|socket hang up/, 'the stalled request was cut');
  t.ok(log.lines.some((l) => l.msg === 'second interrupt: exiting without finishing requests in flight'));
});

t.test('SIGINT skips the endpoint delay', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const { running, log } = await start(t, 2000);
  captureSignals(t);
  const codes: number[] = [];
  exitOnSignals(running, log, (code) => codes.push(code));
  process.emit('SIGINT', 'SIGINT');
  await eventually(() => codes.length === 1);
  t.same(codes, [0]);
  t.notOk(
    log.lines.some((l) => /still serving while endpoints/.test(String(l.msg))),
    'no delay',
  );
});
