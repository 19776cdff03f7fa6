// Regression for the quadratic status annotation (issue 11): a ~3 MB `sidecar.istio.io/status` made of repeated
// `"initContainers":[` without a closing bracket once took time quadratic in its length (325 KB blocked the event
// loop 18 s). Now it must cost about what a benign review of the same size costs, compared as a ratio in one run (no
// wall-clock bound), and /healthz must stay answered while such reviews are served.
import t from 'tap';
import { admit } from '../../../src/webhook/core/admit.js';
import { DEFAULT_CONFIG } from '../../../src/common/shared-config.js';
import { buildApp } from '../../../src/webhook/server/app.js';
import { WebhookMetrics } from '../../../src/webhook/server/metrics.js';
import { startServer } from '../../../src/webhook/server/server.js';
import { requirePrereq } from '../../harness/prereq.js';
import { generateCerts, haveOpenssl, httpsRequest, meshedPod, memoryLogger, review, tempDir } from './helpers.js';

const SIZE = 3_000_000;
const STATUS = 'sidecar.istio.io/status';

/** The crafted values: flat, nested in objects (the parser goes deep before it fails), and with the name inside. */
const CRAFTED_UNITS = ['"initContainers":[', '{"initContainers":[', '{"initContainers":["istio-init",'];

function reviewWithStatus(status: string): string {
  const pod = meshedPod('big') as { metadata: { annotations: Record<string, string> } };
  pod.metadata.annotations[STATUS] = status;
  return JSON.stringify(review(pod));
}

function crafted(unit: string): string {
  return reviewWithStatus(unit.repeat(Math.ceil(SIZE / unit.length)));
}

/** A valid Istio status padded with volume names to the byte length of `like`: rewritten, so it costs more. */
function benign(like: string): string {
  const withVolumes = (n: number) =>
    reviewWithStatus(
      JSON.stringify({
        initContainers: ['istio-init'],
        volumes: Array.from({ length: n }, (_, i) => `vol-${String(i).padStart(7, '0')}`),
      }),
    );
  const perVolume = (withVolumes(1000).length - withVolumes(0).length) / 1000;
  return withVolumes(Math.floor((like.length - withVolumes(0).length) / perVolume));
}

t.test('a crafted 3 MB status annotation costs about what a benign review of the same size costs', async (t) => {
  const app = buildApp({
    admit,
    config: () => DEFAULT_CONFIG,
    ready: () => true,
    logger: memoryLogger().logger,
    metrics: new WebhookMetrics({ defaultMetrics: false }),
  });
  const time = async (payload: string) => {
    const t0 = performance.now();
    const res = await app.inject({
      method: 'POST',
      url: '/mutate',
      payload,
      headers: { 'content-type': 'application/json' },
    });
    return { ms: performance.now() - t0, res };
  };
  for (const unit of CRAFTED_UNITS) {
    const bad = crafted(unit);
    const good = benign(bad);
    t.ok(Math.abs(good.length - bad.length) / bad.length < 0.01, `same size: ${good.length} vs ${bad.length} bytes`);
    // Alternating rounds, the fastest of each: the ratio compares like with like on a busy machine.
    const badMs: number[] = [];
    const goodMs: number[] = [];
    for (let round = 0; round < 3; round++) {
      const b = await time(bad);
      const g = await time(good);
      badMs.push(b.ms);
      goodMs.push(g.ms);
      if (round > 0) continue;
      t.equal(b.res.statusCode, 200);
      const badReview = b.res.json() as { response: { allowed: boolean; warnings?: string[]; patch?: string } };
      t.equal(badReview.response.allowed, true, 'the crafted pod is still rewritten');
      t.match(badReview.response.warnings?.join('\n'), /sidecar\.istio\.io\/status lists no istio-init/);
      const goodReview = g.res.json() as { response: { patch?: string } };
      const patch = Buffer.from(goodReview.response.patch!, 'base64').toString();
      t.ok(patch.includes('istio-validation'), 'the benign status is rewritten');
    }
    const ratio = Math.min(...badMs) / Math.min(...goodMs);
    t.ok(
      ratio < 5,
      `${JSON.stringify(unit)}: crafted/benign time ratio ${ratio.toFixed(2)} (crafted ${badMs.map(Math.round).join(', ')} ms, benign ${goodMs.map(Math.round).join(', ')} ms)`,
    );
  }
});

t.test('/healthz stays answered while crafted 3 MB reviews are served', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl is needed to make the certificates')) return;
  const certs = generateCerts(tempDir('crafted'));
  const running = await startServer({
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    cert: certs.cert,
    key: certs.key,
    admit,
    shutdownDelayMs: 0,
    shutdownGraceMs: 2000,
    log: memoryLogger(),
    watch: { debounceMs: 50, pollMs: 0 },
  });
  t.teardown(() => running.shutdown());
  // Only a hang fails this: before the fix, one such review blocked the event loop for many minutes.
  const HANG_MS = 60_000;
  const within = <T>(p: Promise<T>, what: string) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what}: no answer in ${HANG_MS} ms`)), HANG_MS).unref(),
      ),
    ]);
  let reviewsDone = false;
  const reviews = within(
    (async () => {
      const statuses: number[] = [];
      for (const unit of CRAFTED_UNITS) {
        const r = await httpsRequest(running.port, { body: crafted(unit), ca: certs.ca });
        statuses.push(r.status);
      }
      reviewsDone = true;
      return statuses;
    })(),
    'crafted reviews',
  );
  const probes: number[] = [];
  while (!reviewsDone) {
    const r = await within(httpsRequest(running.port, { method: 'GET', path: '/healthz', ca: certs.ca }), '/healthz');
    probes.push(r.status);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  t.same(await reviews, [200, 200, 200], 'every crafted review answered');
  t.ok(probes.length > 0 && probes.every((s) => s === 200), `/healthz answered ${probes.length} times meanwhile`);
});
