// The bound on work in flight: the budget itself, the 429 a review over it gets (before its body is read), the
// budget given back when a review is answered or its connection dies, the metrics that say why, and the flags.
import t from 'tap';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { admit } from '../../../src/webhook/core/admit.js';
import { DEFAULT_CONFIG } from '../../../src/common/shared-config.js';
import {
  DEFAULT_BODY_LIMIT,
  DEFAULT_IN_FLIGHT_WAIT_MS,
  DEFAULT_MAX_IN_FLIGHT_BYTES,
  buildApp,
} from '../../../src/webhook/server/app.js';
import { InFlightBudget, reservedBytes } from '../../../src/webhook/server/in-flight.js';
import { WebhookMetrics } from '../../../src/webhook/server/metrics.js';
import { USAGE, parseServeArgs } from '../../../src/webhook/server/cli.js';
import { startServer } from '../../../src/webhook/server/server.js';
import { requirePrereq } from '../../harness/prereq.js';
import {
  eventually,
  generateCerts,
  haveOpenssl,
  httpsRequest,
  meshedPod,
  memoryLogger,
  review,
  tempDir,
} from './helpers.js';

const body = (uid?: string) => JSON.stringify(review(meshedPod(), uid ? { uid } : {}));

t.test('the budget: reserve within the limit, refuse beyond it, always let one through', async (t) => {
  const b = new InFlightBudget(100);
  t.ok(b.tryReserve(60));
  t.ok(b.tryReserve(40), 'exactly at the limit');
  t.notOk(b.tryReserve(1), 'one byte over');
  t.same([b.bytes, b.reviews], [100, 2]);
  b.release(60);
  b.release(40);
  t.same([b.bytes, b.reviews], [0, 0]);
  t.ok(b.tryReserve(500), 'alone, a review larger than the limit is let through');
  t.notOk(b.tryReserve(1), 'but nothing beside it');
  b.release(500);
  t.ok(b.tryReserve(1));
});

t.test(
  'waiting: in arrival order, granted as room comes back, refused when the wait is over or the queue full',
  async (t) => {
    const b = new InFlightBudget(100, 2);
    t.ok(await b.acquire(80, 0), 'room: at once');
    t.notOk(await b.acquire(30, 0), 'no room and no wait: refused at once');
    const order: string[] = [];
    const first = b.acquire(30, 60_000).then((ok) => (order.push('first'), ok));
    const second = b.acquire(10, 60_000).then((ok) => (order.push('second'), ok));
    t.equal(b.waiting, 2);
    t.notOk(b.tryReserve(10), 'a newcomer does not jump the queue even where it would fit');
    t.notOk(await b.acquire(1, 60_000), 'the queue is full: refused at once');
    b.release(80);
    t.same([await first, await second], [true, true]);
    t.same(order, ['first', 'second']);
    t.same([b.bytes, b.reviews, b.waiting], [40, 2, 0]);
    // a waiter whose time runs out leaves the queue, and the one behind it is looked at again
    const big = b.acquire(90, 20);
    const small = b.acquire(50, 60_000);
    t.notOk(await big, 'not in time');
    t.ok(await small, 'the next in line fits once the one ahead gave up');
    t.same([b.bytes, b.reviews, b.waiting], [90, 3, 0]);
  },
);

t.test('reservedBytes: the declared length, capped at the body limit; the body limit when undeclared', async (t) => {
  t.equal(reservedBytes('1234', 5000), 1234);
  t.equal(reservedBytes('0', 5000), 0);
  t.equal(reservedBytes('9999', 5000), 0, 'a declared oversize is refused with 413 unread: nothing to reserve');
  t.equal(reservedBytes('5000', 5000), 5000);
  t.equal(reservedBytes(undefined, 5000), 0, 'no length and no chunked body (refused before): no body');
  t.equal(reservedBytes('12x', 5000), 5000, 'unreadable (Node refuses these first): the worst case');
  t.equal(reservedBytes('-1', 5000), 5000);
});

t.test(
  'defaults: the body limit is twice the API server request limit, the budget one review near that limit',
  async (t) => {
    t.equal(DEFAULT_BODY_LIMIT, 2 * 3 * 1024 * 1024);
    t.ok(DEFAULT_MAX_IN_FLIGHT_BYTES > 3 * 1024 * 1024, 'a review of the request limit fits beside ordinary ones');
    t.ok(DEFAULT_MAX_IN_FLIGHT_BYTES < 2 * 2_900_000, 'but not two of the 2.9 MB reviews of the soak burst');
  },
);

function setup(maxInFlightBytes: number, inFlightWaitMs = 0) {
  const log = memoryLogger();
  const metrics = new WebhookMetrics({ defaultMetrics: false });
  const app = buildApp({
    admit,
    config: () => DEFAULT_CONFIG,
    ready: () => true,
    logger: log.logger,
    metrics,
    maxInFlightBytes,
    inFlightWaitMs,
  });
  return { app, log, metrics };
}

async function gauge(metrics: WebhookMetrics, name: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

t.test('inject(): a review over the budget gets 429 with Retry-After at once; the budget comes back', async (t) => {
  const first = body('held');
  const { app, log, metrics } = setup(first.length + 100);
  // A review whose body is still arriving holds its share of the budget.
  const stream = new PassThrough();
  const held = app.inject({
    method: 'POST',
    url: '/mutate',
    payload: stream,
    headers: { 'content-type': 'application/json', 'content-length': String(first.length) },
  });
  stream.write(first.slice(0, 10));
  await eventually(async () => (await gauge(metrics, 'asm_cni_webhook_in_flight_reviews')) === 1);
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_bytes'), first.length);
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_limit_bytes'), first.length + 100);

  const second = body('refused');
  const refused = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: second,
    headers: { 'content-type': 'application/json' },
  });
  t.equal(refused.statusCode, 429);
  t.equal(refused.headers['retry-after'], '1');
  const err = refused.json() as { reason: string; message: string; error: string };
  t.equal(err.reason, 'in-flight-limit');
  t.equal(err.error, 'Too Many Requests');
  t.match(
    err.message,
    new RegExp(`1 reviews \\(${first.length} bytes\\) are in flight .*limit of ${first.length + 100}`),
  );
  const counted = (await metrics.reviews.get()).values.find((v) => v.labels.reason === 'in-flight-limit');
  t.same(counted?.labels, { outcome: 'error', reason: 'in-flight-limit' });
  t.equal(counted?.value, 1);
  t.ok(log.lines.some((l) => l.reason === 'in-flight-limit' && l.msg === 'review refused'));

  // Probes are not reviews: never refused.
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);

  stream.end(first.slice(10));
  const answered = await held;
  t.equal(answered.statusCode, 200, 'the held review is answered');
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_bytes'), 0, 'and its share given back');
  const retried = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: second,
    headers: { 'content-type': 'application/json' },
  });
  t.equal(retried.statusCode, 200, 'the retry is answered');
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_reviews'), 0);
});

t.test('inject(): a review that does not fit waits, unread, and is answered when room comes back', async (t) => {
  const first = body('held');
  const { app, metrics } = setup(first.length + 100, 60_000);
  const stream = new PassThrough();
  const held = app.inject({
    method: 'POST',
    url: '/mutate',
    payload: stream,
    headers: { 'content-type': 'application/json', 'content-length': String(first.length) },
  });
  stream.write(first.slice(0, 10));
  await eventually(async () => (await gauge(metrics, 'asm_cni_webhook_in_flight_reviews')) === 1);
  const waiting = app.inject({
    method: 'POST',
    url: '/mutate',
    payload: body('waits'),
    headers: { 'content-type': 'application/json' },
  });
  await eventually(async () => (await gauge(metrics, 'asm_cni_webhook_in_flight_waiting')) === 1);
  stream.end(first.slice(10));
  t.equal((await held).statusCode, 200);
  t.equal((await waiting).statusCode, 200, 'served after the one ahead, never refused');
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_waiting'), 0);
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_bytes'), 0);
});

t.test('inject(): a body without a declared length is refused with 411, before it is read', async (t) => {
  const { app, metrics } = setup(1000);
  const stream = new PassThrough();
  stream.end(body('chunked'));
  const res = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: stream,
    headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
  });
  t.equal(res.statusCode, 411);
  t.match(res.json(), { reason: 'length-required', error: 'Length Required', message: /Content-Length/ });
  const counted = (await metrics.reviews.get()).values.find((v) => v.labels.reason === 'length-required');
  t.equal(counted?.value, 1);
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_reviews'), 0);
});

t.test(
  'inject(): a body declared over the body limit gets its 413 at once, even when the budget is taken',
  async (t) => {
    const first = body('held');
    const log = memoryLogger();
    const app = buildApp({
      admit,
      config: () => DEFAULT_CONFIG,
      ready: () => true,
      logger: log.logger,
      metrics: new WebhookMetrics({ defaultMetrics: false }),
      maxInFlightBytes: first.length,
      inFlightWaitMs: 60_000,
      bodyLimit: 64 * 1024,
    });
    const stream = new PassThrough();
    const held = app.inject({
      method: 'POST',
      url: '/mutate',
      payload: stream,
      headers: { 'content-type': 'application/json', 'content-length': String(first.length) },
    });
    stream.write(first.slice(0, 10));
    const big = await app.inject({
      method: 'POST',
      url: '/mutate',
      payload: ' '.repeat(64 * 1024 + 1),
      headers: { 'content-type': 'application/json' },
    });
    t.equal(big.statusCode, 413, 'not queued behind the held review, not a 429');
    stream.end(first.slice(10));
    t.equal((await held).statusCode, 200);
  },
);

t.test('inject(): refused bodies and bad requests give their share back too', async (t) => {
  const { app, metrics } = setup(1000);
  const bad = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: '{not json',
    headers: { 'content-type': 'application/json' },
  });
  t.equal(bad.statusCode, 400);
  const envelope = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: '{}',
    headers: { 'content-type': 'application/json' },
  });
  t.equal(envelope.statusCode, 400);
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_bytes'), 0);
  t.equal(await gauge(metrics, 'asm_cni_webhook_in_flight_reviews'), 0);
});

t.test('real server: a client that dies mid-body gives its share back; probes answer meanwhile', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl is needed to make the certificates')) return;
  const dir = tempDir('inflight');
  const certs = generateCerts(dir);
  const log = memoryLogger();
  const review1 = body('first');
  const running = await startServer({
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    cert: certs.cert,
    key: certs.key,
    admit,
    shutdownDelayMs: 0,
    shutdownGraceMs: 2000,
    log,
    watch: { debounceMs: 50, pollMs: 0 },
    maxInFlightBytes: review1.length + 10,
    bodyLimit: 64 * 1024,
    inFlightWaitMs: 5000,
  });
  t.teardown(() => running.shutdown());
  t.equal(running.app.initialConfig.bodyLimit, 64 * 1024, '--body-limit reaches Fastify');

  // A raw client declares a review and sends only part of it.
  const sock = tls.connect({ host: '127.0.0.1', port: running.port, servername: 'localhost', ca: certs.ca });
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  sock.on('error', () => undefined);
  sock.write(
    `POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${review1.length}\r\n\r\n` +
      review1.slice(0, 20),
  );
  const inFlight = () => running.metrics.inFlightReviews.get().then((m) => m.values[0]?.value ?? 0);
  const waitingNow = () => running.metrics.inFlightWaiting.get().then((m) => m.values[0]?.value ?? 0);
  await eventually(async () => (await inFlight()) === 1);

  // Another review waits for room, and gets a 429 with Retry-After when its wait is over.
  const refusedLater = httpsRequest(running.port, { body: body('second'), ca: certs.ca });
  await eventually(async () => (await waitingNow()) === 1);
  // A raw client that leaves while waiting.
  const waiter = tls.connect({ host: '127.0.0.1', port: running.port, servername: 'localhost', ca: certs.ca });
  await new Promise<void>((resolve, reject) => waiter.once('secureConnect', resolve).once('error', reject));
  waiter.on('error', () => undefined);
  waiter.write(
    `POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`,
  );
  await eventually(async () => (await waitingNow()) === 2);
  waiter.destroy();
  const health = await httpsRequest(running.port, { method: 'GET', path: '/healthz', ca: certs.ca });
  t.equal(health.status, 200, '/healthz answered while the budget is taken');
  const refused = await refusedLater;
  t.equal(refused.status, 429);
  t.equal(refused.headers['retry-after'], '1');
  t.match(JSON.parse(refused.body).message, /for \d+ ms; retry after 1 s/);

  sock.destroy();
  await eventually(async () => (await inFlight()) === 0 && (await waitingNow()) === 0);
  const accepted = await httpsRequest(running.port, { body: body('third'), ca: certs.ca });
  t.equal(accepted.status, 200, 'after the abort, reviews are served again');
  const tooLarge = await httpsRequest(running.port, { body: ' '.repeat(64 * 1024 + 1), ca: certs.ca });
  t.equal(tooLarge.status, 413, 'the body limit set on the server applies');
});

t.test('flags: --body-limit and --max-in-flight, with units and environment variables', async (t) => {
  const base = ['--cert', 'c', '--key', 'k'];
  const parsed = parseServeArgs([...base, '--body-limit', '4Mi', '--max-in-flight', '16777216'], {});
  t.match(parsed, { bodyLimit: 4 * 1024 * 1024, maxInFlightBytes: 16 * 1024 * 1024 });
  t.match(parseServeArgs(base, { ASM_BODY_LIMIT: '512Ki', ASM_MAX_IN_FLIGHT: '1Gi' }), {
    bodyLimit: 512 * 1024,
    maxInFlightBytes: 1024 ** 3,
  });
  t.match(parseServeArgs([...base, '--in-flight-wait', '0.25'], {}), { inFlightWaitMs: 250 });
  t.match(parseServeArgs(base, { ASM_IN_FLIGHT_WAIT: '0' }), { inFlightWaitMs: 0 });
  t.throws(() => parseServeArgs([...base, '--in-flight-wait', 'soon'], {}), {
    message: /--in-flight-wait \(ASM_IN_FLIGHT_WAIT\)/,
  });
  const defaults = parseServeArgs(base, {});
  t.notOk(defaults !== 'help' && 'bodyLimit' in defaults, 'unset: the server defaults apply');
  t.notOk(defaults !== 'help' && 'maxInFlightBytes' in defaults);
  t.notOk(defaults !== 'help' && 'inFlightWaitMs' in defaults);
  for (const bad of ['0', '6MB', '-1', 'lots', '1.5Mi', '99999999999Gi']) {
    t.throws(() => parseServeArgs([...base, `--max-in-flight=${bad}`], {}), {
      name: 'UsageError',
      message: /--max-in-flight \(ASM_MAX_IN_FLIGHT\) must be a size in bytes/,
    });
  }
  t.throws(() => parseServeArgs([...base, '--body-limit', '1M'], {}), { message: /--body-limit \(ASM_BODY_LIMIT\)/ });
  // the usage text states the defaults the app applies
  t.match(USAGE, new RegExp(`\\[ASM_BODY_LIMIT\\] \\(default ${DEFAULT_BODY_LIMIT / 1024 ** 2}Mi\\)`));
  t.match(USAGE, new RegExp(`\\[ASM_MAX_IN_FLIGHT\\] \\(default ${DEFAULT_MAX_IN_FLIGHT_BYTES / 1024 ** 2}Mi\\)`));
  t.match(USAGE, new RegExp(`\\[ASM_IN_FLIGHT_WAIT\\] \\(default ${DEFAULT_IN_FLIGHT_WAIT_MS / 1000}\\)`));
});
