// SIGTERM during a burst, against the real CLI in a child process: readiness turns false first, every review in
// flight (including one whose body is still arriving) is answered 200, and the process exits 0.
import t from 'tap';
import { spawn } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { requirePrereq } from '../../harness/prereq.js';
import {
  generateCerts,
  haveOpenssl,
  tsChild,
  httpsRequest,
  meshedPod,
  repoRoot,
  review,
  sleep,
  eventually,
  tempDir,
} from './helpers.js';

const cli = path.join(repoRoot, 'src/webhook/server/cli.ts');

t.test('SIGTERM mid-burst: not ready first, in-flight reviews answered, exit 0', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const certs = generateCerts(path.join(tempDir('sigterm'), 'certs'));
  // The test process runs TypeScript through tap's loader; the child gets the same loader (see tsChild).
  const { execArgv, env } = tsChild({
    ...process.env,
    NODE_ENV: 'production',
    ASM_TLS_CERT: certs.cert,
    ASM_TLS_KEY: certs.key,
  });
  const child = spawn(
    process.execPath,
    [
      ...execArgv,
      cli,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--metrics-port',
      '0',
      '--shutdown-delay',
      '1',
      '--shutdown-grace',
      '10',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines: Array<Record<string, unknown>> = [];
  const serving = new Promise<{ port: number }>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        lines.push(obj);
        if (obj.msg === 'asm-cni webhook serving (HTTPS /mutate)') resolve({ port: obj.port as number });
      } catch {
        /* not JSON */
      }
    });
    void exited.then((code) => reject(new Error(`server exited ${code} before serving: ${stderr}`)));
  });
  const { port } = await serving;
  const ca = certs.ca;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());

  // Readiness as the endpoints controller sees it: polled; once false, no new reviews are sent.
  let notReadyAt = 0;
  const poller = (async () => {
    while (!notReadyAt) {
      const r = await httpsRequest(port, { method: 'GET', path: '/readyz', ca }).catch(() => ({ status: 0 }));
      if (r.status !== 200) notReadyAt = Date.now();
      else await sleep(10);
    }
  })();

  const results: Array<{ status: number; sentAt: number; doneAt: number; connection: unknown }> = [];
  const failures: string[] = [];
  const body = JSON.stringify(review(meshedPod()));
  const worker = async () => {
    while (!notReadyAt) {
      const sentAt = Date.now();
      try {
        const r = await httpsRequest(port, { body, ca, agent });
        results.push({ status: r.status, sentAt, doneAt: Date.now(), connection: r.headers.connection });
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  // One review whose body is still arriving when the listener closes.
  const slow = new Promise<number>((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        method: 'POST',
        path: '/mutate',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, 100));
    setTimeout(() => req.end(body.slice(100)), 1800); // after the 1 s delay: the listener is closed by then
  });
  const workers = Array.from({ length: 8 }, worker);
  await eventually(() => results.length > 0); // serving under load before the signal
  const before = results.length;
  const killedAt = Date.now();
  child.kill('SIGTERM');
  await Promise.all(workers);
  await poller;
  const slowStatus = await slow;
  const code = await exited;

  t.ok(before > 0, `reviews answered before SIGTERM (${before})`);
  t.same(failures, [], 'no review failed');
  t.ok(
    results.every((r) => r.status === 200),
    `every review answered 200 (${results.length})`,
  );
  t.ok(
    results.some((r) => r.sentAt >= killedAt),
    'reviews sent after SIGTERM were still answered',
  );
  t.equal(slowStatus, 200, 'the review whose body was still arriving was answered');
  t.ok(
    results.some((r) => r.sentAt >= killedAt && r.connection === 'close'),
    'answers while draining close their connection',
  );
  t.ok(
    results.filter((r) => r.doneAt < killedAt).every((r) => r.connection === 'keep-alive'),
    'answered before SIGTERM: connections are kept',
  );
  t.ok(notReadyAt > 0, 'readiness turned false');
  t.equal(code, 0, `exit code 0 (stderr: ${stderr})`);
  const msgs = lines.map((l) => l.msg);
  const order = [
    'shutdown requested',
    'shutdown: not ready; still serving while endpoints are updated',
    'shutdown: closing the listener and idle connections; finishing requests in flight',
    'shutdown complete',
  ];
  t.same(
    msgs.filter((m) => order.includes(m as string)),
    order,
    'not ready first, then close, then done',
  );
  t.match(
    lines.find((l) => l.msg === 'shutdown complete'),
    { clean: true },
  );
  t.ok(lines.filter((l) => l.msg === 'review').length >= results.length, 'one log line per review');
});
