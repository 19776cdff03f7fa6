// Abuse while well-formed reviews keep flowing: slow clients (headers and body trickled), many idle connections,
// oversized bodies, deeply nested JSON, random bytes. The reviews must all be answered with a bounded p99, the
// server must answer each abusive request with a clear 4xx (or close it), never crash, and its memory stay bounded.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { AdmissionClient } from '../lib/client.js';
import { makeCA, makeLeaf } from '../../test/harness/certs.js';
import { configYaml, replaceFile } from '../lib/config.js';
import { Baseline, Recorder, openLoop } from '../lib/load.js';
import { onCleanup, subDir } from '../lib/proc.js';
import { tcpSocket, tlsSocket, watch, writeSafe, type RawOutcome } from '../lib/raw.js';
import { Asserts, type Report } from '../lib/report.js';
import { body, loadCorpus, newUid } from '../lib/reviews.js';
import { round, sleep } from '../lib/stats.js';
import { rssOf, startWebhook } from '../lib/webhook.js';
import { settings } from '../settings.js';

const HEAD = (len: number | 'chunked'): string =>
  `POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${len === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${len}`}\r\n\r\n`;

export async function webhookAbuseSuite(report: Report): Promise<void> {
  const s = settings();
  const dir = subDir('webhook-abuse');
  const ca = await makeCA(dir, 'soak-ca');
  const leaf = await makeLeaf(dir, ca, 'serving', 'server');
  const configFile = join(subDir('config'), 'config.yaml');
  const logs = subDir('logs');
  replaceFile(configFile, configYaml(['kube-system', 'istio-system']));
  const w = await startWebhook({
    name: 'abuse',
    certFile: leaf.certFile,
    keyFile: leaf.keyFile,
    configFile,
    logDir: logs,
    ca: ca.cert,
  });
  const port = w.port;
  const corpus = loadCorpus();
  const client = new AdmissionClient({ host: '127.0.0.1', port, ca: ca.cert, maxSockets: 8 });
  onCleanup(() => client.close());
  const baseline = new Baseline(corpus);
  await baseline.take(client);

  const sockets = new Set<Socket>();
  onCleanup(() => {
    for (const x of sockets) x.destroy();
  });
  const keep = <T extends Socket>(x: T): T => {
    sockets.add(x);
    x.once('close', () => sockets.delete(x));
    return x;
  };

  // Memory sampled every second for the whole phase.
  const rss: number[] = [];
  const rssStart = rssOf(w);
  const sampler = setInterval(() => {
    const v = rssOf(w);
    if (v !== undefined) rss.push(v);
  }, 1000);
  onCleanup(() => clearInterval(sampler));

  // Well-formed reviews at a steady rate during all of it.
  const rec = new Recorder(baseline);
  let stopLoad = false;
  const load = openLoop(client, corpus, s.abuseRate, 3600, rec, () => stopLoad);
  const t0 = performance.now();

  // 1. slow clients: headers trickled one byte a second; full headers then the body trickled.
  const slowHeaders: Promise<RawOutcome>[] = [];
  const slowBodies: Promise<RawOutcome>[] = [];
  const trickle = (sock: Socket, text: string): void => {
    let i = 0;
    const t = setInterval(() => {
      if (sock.destroyed || i >= text.length) return clearInterval(t);
      sock.write(text[i++]!);
    }, 1000);
    sock.once('close', () => clearInterval(t));
  };
  for (let i = 0; i < s.slowClients; i++) {
    const a = keep(await tlsSocket(port, ca.cert));
    slowHeaders.push(watch(a).done);
    trickle(a, HEAD(5000) + 'x'.repeat(5000));
    const b = keep(await tlsSocket(port, ca.cert));
    slowBodies.push(watch(b).done);
    b.write(HEAD(5000));
    trickle(b, body(corpus[0]!, newUid()).padEnd(5000, ' '));
  }

  const tSlow = (performance.now() - t0) / 1000;
  // 2. many idle connections: TLS handshaken and silent, and plain TCP that never starts TLS.
  let idleOpened = 0;
  let idleFailed = 0;
  const idle: Socket[] = [];
  // Paced (50 per 0.5 s): the point is holding many connections, not a handshake flood (which is CPU-bound by design).
  for (let i = 0; i < s.idleConnections; i++) {
    if (i % 50 === 49) await sleep(500);
    try {
      idle.push(keep(i % 5 === 4 ? await tcpSocket(port) : await tlsSocket(port, ca.cert)));
      idleOpened++;
    } catch {
      idleFailed++;
    }
  }

  const tIdle = (performance.now() - t0) / 1000;
  // 3. oversized bodies: declared over the limit, and chunked past it.
  const big: RawOutcome[] = [];
  for (let i = 0; i < 5; i++) {
    // declared too large: the server can refuse on the header alone (we pause, as a client sending
    // Expect: 100-continue would, so the 413 is not lost in the reset of a connection closed under our writes)
    big.push(
      await sendRaw(port, ca.cert, async (sock) => {
        await writeSafe(sock, HEAD(64 * 1024 * 1024));
        await sleep(300);
        for (let k = 0; k < 16 && !sock.destroyed; k++) await writeSafe(sock, Buffer.alloc(1 << 20, 0x20));
      }),
    );
    big.push(
      await sendRaw(port, ca.cert, async (sock) => {
        await writeSafe(sock, HEAD('chunked'));
        const chunk = Buffer.alloc(1 << 20, 0x20);
        for (let k = 0; k < 16 && !sock.destroyed; k++)
          await writeSafe(
            sock,
            Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
          );
        await writeSafe(sock, '0\r\n\r\n');
      }),
    );
  }

  const tBig = (performance.now() - t0) / 1000;
  // 4. deeply nested JSON: bare, and inside an otherwise valid review (where the pod's fields are walked).
  const nested: RawOutcome[] = [];
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
  const deepObj = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  const inReview = (n: number): string => {
    const review = JSON.parse(body(corpus[0]!, 'NESTED-UID'));
    review.request.object.spec.containers[0].env = [{ name: 'DEEP', valueFrom: 'X' }];
    return JSON.stringify(review).replace('"X"', deepObj(n));
  };
  for (const payload of [deep(1_000_000), deepObj(500_000), inReview(10_000), inReview(200_000)]) {
    nested.push(
      await sendRaw(port, ca.cert, async (sock) => {
        await writeSafe(sock, HEAD(Buffer.byteLength(payload)) + payload);
      }),
    );
  }

  const tNested = (performance.now() - t0) / 1000;
  // 5. random bytes: before TLS, as HTTP inside TLS, and as a JSON body.
  const garbage: RawOutcome[] = [];
  for (let i = 0; i < 20; i++) {
    garbage.push(await sendRaw(port, ca.cert, (sock) => writeSafe(sock, randomBytes(4096)), 'tcp'));
    garbage.push(await sendRaw(port, ca.cert, (sock) => writeSafe(sock, randomBytes(4096))));
    const junk = randomBytes(8192);
    garbage.push(
      await sendRaw(port, ca.cert, (sock) => writeSafe(sock, Buffer.concat([Buffer.from(HEAD(junk.length)), junk]))),
    );
  }
  const abuseSentAt = round((performance.now() - t0) / 1000);
  console.log(
    `soak   abuse sent by t=${abuseSentAt}s (slow ${round(tSlow)}s, idle ${round(tIdle)}s, oversized ${round(tBig)}s, nested ${round(tNested)}s)`,
  );

  // Keep the load and the slow and idle clients going; the slow ones must be cut by the server's timeouts.
  const slowAll = Promise.all([...slowHeaders, ...slowBodies]);
  await Promise.race([slowAll, sleep(s.slowCloseBoundMs)]);
  const remaining = Math.max(0, s.abuseSeconds * 1000 - (performance.now() - t0));
  await sleep(remaining);
  const idleStillOpen = idle.filter((x) => !x.destroyed).length;
  for (const x of sockets) x.destroy();
  // a few seconds of plain load after the abuse: the server is back to normal
  await sleep(3000);
  stopLoad = true;
  await load;
  clearInterval(sampler);
  const rssEnd = rssOf(w);
  const alive = w.child.exit === undefined;
  const st = rec.stats(s.abuseRate);

  const slowH = await Promise.all(
    slowHeaders.map((p) => Promise.race([p, Promise.resolve({ status: 0, closed: false } as RawOutcome)])),
  );
  const slowB = await Promise.all(
    slowBodies.map((p) => Promise.race([p, Promise.resolve({ status: 0, closed: false } as RawOutcome)])),
  );
  const maxClose = (xs: RawOutcome[]): number => Math.max(0, ...xs.map((x) => x.closedAfterMs ?? Infinity));
  const rssMax = Math.max(rssStart ?? 0, ...rss);

  const a = new Asserts();
  a.that(alive, `the webhook process exited (${JSON.stringify(w.child.exit)})`);
  a.that(st.failed === 0, `${st.failed} well-formed reviews failed: ${JSON.stringify(st.failures)}`);
  a.that(st.mismatched === 0, `${st.mismatched} answers differ from baseline`);
  a.that(st.latency.p99 <= s.abuseP99BoundMs, `well-formed p99 ${st.latency.p99} ms over ${s.abuseP99BoundMs} ms`);
  a.that(
    slowH.every((x) => x.closed),
    `${slowH.filter((x) => !x.closed).length}/${slowH.length} header-trickling clients still connected after ${s.slowCloseBoundMs} ms`,
  );
  a.that(
    slowB.every((x) => x.closed),
    `${slowB.filter((x) => !x.closed).length}/${slowB.length} body-trickling clients still connected after ${s.slowCloseBoundMs} ms`,
  );
  const declared = big.filter((_, i) => i % 2 === 0);
  const chunked = big.filter((_, i) => i % 2 === 1);
  a.that(
    declared.every((x) => x.status === 413),
    `bodies declared over the limit answered ${JSON.stringify(declared.map((x) => x.status))} (want 413)`,
  );
  a.that(
    chunked.every((x) => x.status === 411 || x.status === 413 || (x.status === 0 && x.closed)),
    `chunked bodies past the limit answered ${JSON.stringify(chunked.map((x) => x.status))} (want 411, 413 or a close)`,
  );
  a.that(
    nested.every((x) => x.status === 400 || x.status === 413 || x.status === 200),
    `deeply nested JSON answered ${JSON.stringify(nested.map((x) => x.status))} (want 400, or 200 for a review)`,
  );
  a.that(
    garbage.every((x) => x.status === 0 || (x.status >= 400 && x.status < 500)),
    `random bytes answered ${JSON.stringify([...new Set(garbage.map((x) => x.status))])}`,
  );
  a.that(
    idleOpened === s.idleConnections,
    `${idleFailed} of ${s.idleConnections} idle connections could not be opened`,
  );
  a.that(rssMax <= s.rssBoundMiB, `RSS peaked at ${rssMax} MiB (bound ${s.rssBoundMiB})`);
  report.add(
    'webhook.abuse',
    a.ok,
    a.summary(
      `${st.seconds}s; well-formed reviews at ${s.abuseRate}/s: sent ${st.sent}, answered ${st.answered}, failed ${st.failed}, p99 ${st.latency.p99} ms (max ${st.latency.max}); ` +
        `slow clients cut after ≤${maxClose(slowH)} ms (headers) / ≤${maxClose(slowB)} ms (body); ${idleOpened} idle connections (${idleStillOpen} still open at the end); ` +
        `oversized → declared ${[...new Set(declared.map((x) => x.status))].join(',')} / chunked ${[...new Set(chunked.map((x) => x.status || 'closed'))].join(',')}; nested → ${nested.map((x) => x.status).join(',')}; random bytes → ${[...new Set(garbage.map((x) => x.status))].join(',')}; ` +
        `RSS ${rssStart}→max ${rssMax}→${rssEnd} MiB`,
    ),
    {
      wellFormed: st,
      abuseSentAtSeconds: abuseSentAt,
      slowHeaders: slowH,
      slowBodies: slowB,
      idle: { opened: idleOpened, failed: idleFailed, stillOpenAtEnd: idleStillOpen },
      oversized: big,
      nested,
      randomBytes: { statuses: garbage.map((x) => x.status) },
      rssMiB: { start: rssStart, max: rssMax, end: rssEnd, samples: rss },
    },
  );
  w.child.proc.kill('SIGTERM');
}

/** One abusive exchange on a fresh connection: run `send`, then wait (bounded) for the server's answer or close. */
async function sendRaw(
  port: number,
  ca: string,
  send: (s: Socket) => Promise<void>,
  transport: 'tls' | 'tcp' = 'tls',
): Promise<RawOutcome> {
  let sock: Socket;
  try {
    sock = transport === 'tls' ? await tlsSocket(port, ca) : await tcpSocket(port);
  } catch (err) {
    return { status: 0, closed: true, error: (err as Error).message };
  }
  const { outcome, answered } = watch(sock);
  await send(sock).catch(() => undefined);
  // an answer (status line) or a close ends the exchange; a server that does neither within 10 s is stuck
  const finished = await Promise.race([answered, sleep(10_000).then(() => undefined)]);
  sock.destroy();
  return finished ?? { ...outcome, error: outcome.error ?? 'no answer within 10 s' };
}
