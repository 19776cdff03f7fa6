// Large reviews (issue 11), with the webhook inside a real memory cgroup equal to the Deployment's limit:
// - webhook.large-burst: 2.9 MB reviews (a big istio-init env, which the patch copies back), 32 at a time, a few
//   rounds. The client behaves like the API server's: a 429 is retried after its Retry-After. The memory charged to
//   the cgroup (its own peak) and the peak anonymous RSS must stay under the limit with no OOM kill, and every review
//   must be answered.
// - webhook.crafted-status: a 3 MB `sidecar.istio.io/status` made to make a regex backtrack, against a benign review
//   of the same size, alternating; the time ratio crafted/benign must stay small.
// /healthz is probed all along, on its own connection, as the kubelet's liveness probe would.
import { Agent, request } from 'node:https';
import { AdmissionClient } from '../lib/client.js';
import { memoryCgroup, type MemoryCgroup } from '../lib/cgroup.js';
import { makeCA, makeLeaf } from '../../test/harness/certs.js';
import { webhookLivenessProbe } from '../lib/deployment.js';
import { judge } from '../lib/load.js';
import { onCleanup, rssMiB, subDir } from '../lib/proc.js';
import { Asserts, type Report } from '../lib/report.js';
import { body, loadCorpus, newUid, type ReviewTemplate } from '../lib/reviews.js';
import { round, sleep, summarize } from '../lib/stats.js';
import { metricSum, metricsText, startWebhook, type WebhookInstance } from '../lib/webhook.js';
import { settings } from '../settings.js';

const UID = '@@UID@@';
const STATUS = 'sidecar.istio.io/status';
const MiB = 1024 * 1024;

/** A review template from a corpus pod, changed by `edit` (the pod object inside the review). */
function edited(t: ReviewTemplate, source: string, edit: (pod: any) => void): ReviewTemplate {
  const review = JSON.parse(body(t, UID));
  edit(review.request.object);
  const text = JSON.stringify(review);
  const at = text.indexOf(UID);
  return { source, namespace: t.namespace, before: text.slice(0, at), after: text.slice(at + UID.length) };
}

const size = (t: ReviewTemplate): number => t.before.length + t.after.length + 36;

/** The corpus pod with istio-init's env grown until the review is about `bytes` long. */
function largeReview(t: ReviewTemplate, bytes: number): ReviewTemplate {
  const make = (n: number) =>
    edited(t, `${t.source} + ${n} istio-init env entries`, (pod) => {
      const init = pod.spec.initContainers.find((c: any) => c.name === 'istio-init');
      init.env = [
        ...(init.env ?? []),
        ...Array.from({ length: n }, (_, i) => ({ name: `SOAK_VAR_${i}`, value: 'v'.repeat(100) })),
      ];
    });
  const per = (size(make(1000)) - size(make(0))) / 1000;
  return make(Math.max(0, Math.floor((bytes - size(make(0))) / per)));
}

/** The corpus pod with a given status annotation. */
const withStatus = (t: ReviewTemplate, source: string, status: string) =>
  edited(t, source, (pod) => {
    pod.metadata.annotations = { ...pod.metadata.annotations, [STATUS]: status };
  });

/** Probes /healthz on its own kept-alive connection every `everyMs` until stopped; latencies per phase. */
function healthProber(port: number, ca: string, everyMs: number, livenessMs: number, hangMs = 10_000) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca, servername: 'localhost' });
  const samples: Array<{ phase: string; ms: number; ok: boolean }> = [];
  let phase = 'idle';
  let stop = false;
  const once = () =>
    new Promise<{ ms: number; ok: boolean }>((resolve) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/healthz', agent, timeout: hangMs }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: performance.now() - t0, ok: res.statusCode === 200 }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve({ ms: performance.now() - t0, ok: false }));
      req.end();
    });
  const loop = (async () => {
    while (!stop) {
      const r = await once();
      samples.push({ phase, ...r });
      await sleep(everyMs);
    }
    agent.destroy();
  })();
  return {
    setPhase: (p: string) => (phase = p),
    async stop() {
      stop = true;
      await loop;
    },
    of(p: string) {
      const xs = samples.filter((x) => x.phase === p);
      let run = 0;
      let worstRun = 0;
      for (const x of xs) {
        run = !x.ok || x.ms > livenessMs ? run + 1 : 0;
        worstRun = Math.max(worstRun, run);
      }
      return {
        ...summarize(xs.map((x) => x.ms)),
        failed: xs.filter((x) => !x.ok).length,
        overLiveness: xs.filter((x) => x.ms > livenessMs).length,
        longestRunOverLiveness: worstRun,
      };
    },
  };
}

/** One review sent like the API server sends it: a 429 is retried after its Retry-After, until `deadlineMs`. */
async function sendRetrying(client: AdmissionClient, t: ReviewTemplate, deadlineMs: number) {
  const uid = newUid();
  const payload = body(t, uid);
  const started = performance.now();
  let refused = 0;
  for (;;) {
    const left = deadlineMs - (performance.now() - started);
    const r = await client.once('/mutate', payload, Math.max(1, left));
    if (r.status === 429 && left > 0) {
      refused++;
      await sleep(Number(r.retryAfter ?? '1') * 1000);
      continue;
    }
    return { verdict: judge(r.status, r.body, uid), ms: performance.now() - started, refused, status: r.status };
  }
}

export async function webhookLargeSuite(report: Report): Promise<void> {
  const s = settings();
  const dir = subDir('webhook-large');
  const ca = await makeCA(dir, 'soak-ca');
  const leaf = await makeLeaf(dir, ca, 'serving', 'server');
  const limitBytes = s.rssBoundMiB * MiB;
  const cg = await memoryCgroup(`asm-soak-${process.env.SOAK_RUN_ID ?? process.pid}-large`, limitBytes);
  let cgroup: MemoryCgroup | undefined;
  if (cg.ok) {
    cgroup = cg.cgroup;
    onCleanup(() => cgroup!.remove());
  } else {
    report.add(
      'webhook.large-burst',
      process.env.CI === 'true' ? false : null,
      `not run: no memory cgroup (${cg.reason}); run as root`,
    );
  }
  const w = await startWebhook({
    name: 'large',
    certFile: leaf.certFile,
    keyFile: leaf.keyFile,
    logDir: subDir('logs'),
    ca: ca.cert,
    ...(cgroup ? { wrap: cgroup.wrap } : {}),
  });
  const probe = webhookLivenessProbe();
  const health = healthProber(w.port, ca.cert, 100, probe.timeoutSeconds * 1000);
  onCleanup(() => health.stop());
  const corpus = loadCorpus();
  const base = corpus[0]!;

  if (cgroup) await report.run('webhook.large-burst', () => largeBurst(w, cgroup!, ca.cert, base, health, probe));
  await report.run('webhook.crafted-status', () => craftedStatus(w, ca.cert, base, health));
  await health.stop();
  w.child.proc.kill('SIGTERM');
  await w.child.exited;
}

async function largeBurst(
  w: WebhookInstance,
  cgroup: MemoryCgroup,
  ca: string,
  base: ReviewTemplate,
  health: ReturnType<typeof healthProber>,
  probe: { timeoutSeconds: number; failureThreshold: number },
) {
  const s = settings();
  const big = largeReview(base, s.largeReviewBytes);
  const client = new AdmissionClient({ host: '127.0.0.1', port: w.port, ca, maxSockets: s.largeConcurrency });
  onCleanup(() => client.close());
  const rssStart = rssMiB(w.child.pid);
  const rss: number[] = [];
  const anon: number[] = [];
  const sampler = setInterval(() => {
    const v = rssMiB(w.child.pid);
    if (v !== undefined) rss.push(v);
    const a = rssMiB(w.child.pid, 'RssAnon');
    if (a !== undefined) anon.push(a);
  }, 100);
  onCleanup(() => clearInterval(sampler));
  health.setPhase('large-burst');
  const results: Array<Awaited<ReturnType<typeof sendRetrying>>> = [];
  const t0 = performance.now();
  for (let r = 0; r < s.largeRounds; r++) {
    results.push(
      ...(await Promise.all(
        Array.from({ length: s.largeConcurrency }, () => sendRetrying(client, big, s.largeDeadlineMs)),
      )),
    );
  }
  const burstSeconds = (performance.now() - t0) / 1000;
  health.setPhase('after');
  await sleep(5000);
  clearInterval(sampler);
  client.close();
  const rssAfter = rssMiB(w.child.pid);
  const hwm = rssMiB(w.child.pid, 'VmHWM');
  const cg = cgroup.stats(w.child.pid);
  const metrics = await metricsText(w.metricsPort).catch(() => '');
  const refusedByServer = metricSum(metrics, 'asm_cni_webhook_reviews_total', { reason: 'in-flight-limit' });
  // where the resident memory is after the burst: V8's heap, memory outside it (Buffers), and the rest (malloc)
  const mib = (name: string) => round(metricSum(metrics, name) / MiB);
  const memoryAfter = {
    heapTotalMiB: mib('nodejs_heap_size_total_bytes'),
    heapUsedMiB: mib('nodejs_heap_size_used_bytes'),
    externalMiB: mib('nodejs_external_memory_bytes'),
    residentMiB: mib('process_resident_memory_bytes'),
  };
  const alive = w.child.exit === undefined;
  const answered = results.filter((x) => x.verdict.ok);
  const signatures = new Set(answered.map((x) => x.verdict.signature));
  const latency = summarize(results.map((x) => x.ms));
  const within = results.filter((x) => x.verdict.ok && x.ms <= s.maxBoundMs).length;
  const h = health.of('large-burst');
  const limitMiB = cgroup.limitBytes / MiB;
  const peakCgroupMiB = cg.peakBytes === undefined ? undefined : round(cg.peakBytes / MiB);

  const a = new Asserts();
  a.that(alive, `the webhook exited (${JSON.stringify(w.child.exit)}): OOM-killed?`);
  a.that((cg.oomKills ?? 0) === 0, `${cg.oomKills} OOM kills in the cgroup`);
  // VmHWM also counts file pages (node's binary) shared with other processes and charged to whoever read them first;
  // the cgroup's peak is what the container is charged, the anonymous peak what it cannot give back under pressure.
  const anonPeak = Math.max(0, ...anon);
  a.that(anonPeak > 0 && anonPeak < limitMiB, `peak anonymous RSS ${anonPeak} MiB, limit ${limitMiB} MiB`);
  a.that(
    peakCgroupMiB !== undefined && peakCgroupMiB < limitMiB,
    `cgroup peak ${peakCgroupMiB} MiB, limit ${limitMiB} MiB`,
  );
  a.that(
    answered.length === results.length,
    `${results.length - answered.length} reviews not answered: ${[...new Set(results.filter((x) => !x.verdict.ok).map((x) => x.verdict.problem))].join('; ')}`,
  );
  a.that(signatures.size <= 1, `${signatures.size} different answers to the same review`);
  // Answered at all (not stuck behind a review) is the criterion; how often it was slower than the liveness probe
  // allows is reported: on a shared soak machine that says more about the machine than about the webhook.
  a.that(h.count > 0 && h.failed === 0, `/healthz during the burst: ${h.failed} of ${h.count} not answered in 10 s`);
  return {
    ok: a.ok,
    summary: a.summary(
      `${s.largeRounds} rounds of ${s.largeConcurrency} concurrent ${round(size(big) / 1e6, 2)} MB reviews in ${round(burstSeconds)}s under ${cgroup.how}, limit ${limitMiB} MiB: ` +
        `peak anonymous RSS ${anonPeak} MiB, cgroup peak ${peakCgroupMiB} MiB (VmHWM ${hwm} MiB with shared file pages; limit hits ${cg.limitHits ?? 'n/a'}, OOM kills ${cg.oomKills ?? 'n/a'}), RSS ${rssStart}→${rssAfter} MiB 5 s after (heap ${memoryAfter.heapUsedMiB}/${memoryAfter.heapTotalMiB}, external ${memoryAfter.externalMiB}); ` +
        `answered ${answered.length}/${results.length} (${within} within the shortest webhook timeout, ${s.maxBoundMs / 1000} s), refused with 429 first ${results.filter((x) => x.refused > 0).length} (server count ${refusedByServer}); ` +
        `review p50 ${latency.p50} p99 ${latency.p99} max ${latency.max} ms incl. retries; /healthz during: p50 ${h.p50} p99 ${h.p99} max ${h.max} ms, failed ${h.failed}, ${h.overLiveness} over the ${probe.timeoutSeconds} s liveness timeout (longest run ${h.longestRunOverLiveness}, failureThreshold ${probe.failureThreshold})`,
    ),
    figures: {
      cgroup: { how: cgroup.how, limitMiB, peakMiB: peakCgroupMiB, limitHits: cg.limitHits, oomKills: cg.oomKills },
      reviewBytes: size(big),
      concurrency: s.largeConcurrency,
      rounds: s.largeRounds,
      burstSeconds: round(burstSeconds),
      rssMiB: {
        start: rssStart,
        peakAnon100msSamples: anonPeak,
        peakVmHWM: hwm,
        max100msSamples: Math.max(0, ...rss),
        after5s: rssAfter,
      },
      memoryAfter,
      answered: answered.length,
      sent: results.length,
      withinWebhookTimeout: within,
      refusedFirst: results.filter((x) => x.refused > 0).length,
      refusals: results.reduce((n, x) => n + x.refused, 0),
      refusedByServer,
      latencyMs: latency,
      healthzMs: h,
    },
  };
}

async function craftedStatus(
  w: WebhookInstance,
  ca: string,
  base: ReviewTemplate,
  health: ReturnType<typeof healthProber>,
) {
  const s = settings();
  const unit = '"initContainers":[';
  const crafted = withStatus(
    base,
    `${base.source} + crafted status`,
    unit.repeat(Math.ceil(s.craftedBytes / unit.length)),
  );
  // a valid status, padded with volume names to the same review size: rewritten, so it costs the full path
  const statusWith = (n: number) =>
    JSON.stringify({
      initContainers: ['istio-init'],
      volumes: Array.from({ length: n }, (_, i) => `vol-${String(i).padStart(7, '0')}`),
    });
  const per = (size(withStatus(base, '', statusWith(1000))) - size(withStatus(base, '', statusWith(0)))) / 1000;
  const benign = withStatus(
    base,
    `${base.source} + large valid status`,
    statusWith(Math.floor((size(crafted) - size(withStatus(base, '', statusWith(0)))) / per)),
  );
  const client = new AdmissionClient({ host: '127.0.0.1', port: w.port, ca, maxSockets: 1 });
  onCleanup(() => client.close());
  health.setPhase('crafted');
  const times = { crafted: [] as number[], benign: [] as number[] };
  const problems: string[] = [];
  for (let i = 0; i < s.craftedRounds; i++) {
    for (const [kind, t] of [
      ['crafted', crafted],
      ['benign', benign],
    ] as const) {
      const uid = newUid();
      const r = await client.once('/mutate', body(t, uid), 120_000);
      const v = judge(r.status, r.body, uid);
      if (!v.ok) problems.push(`${kind}: ${v.problem}`);
      times[kind].push(r.ms);
    }
  }
  health.setPhase('after-crafted');
  client.close();
  const c = summarize(times.crafted);
  const b = summarize(times.benign);
  const ratio = round(c.p50 / b.p50, 2);
  const h = health.of('crafted');
  const a = new Asserts();
  a.that(problems.length === 0, problems.join('; '));
  a.that(ratio < s.craftedRatioBound, `crafted/benign time ratio ${ratio} (bound ${s.craftedRatioBound})`);
  a.that(h.count > 0 && h.failed === 0, `/healthz during the crafted reviews: ${h.failed} of ${h.count} failed`);
  return {
    ok: a.ok,
    summary: a.summary(
      `${s.craftedRounds} × crafted ${round(size(crafted) / 1e6, 2)} MB vs benign ${round(size(benign) / 1e6, 2)} MB, alternating: ` +
        `median ${c.p50} vs ${b.p50} ms, ratio crafted/benign ${ratio} (bound ${s.craftedRatioBound}); /healthz during: p50 ${h.p50} p99 ${h.p99} max ${h.max} ms, failed ${h.failed}`,
    ),
    figures: { craftedBytes: size(crafted), benignBytes: size(benign), craftedMs: c, benignMs: b, ratio, healthzMs: h },
  };
}
