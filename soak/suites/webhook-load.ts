// Sustained load at half the measured capacity while the serving certificate is rotated twice, the config is replaced
// with a valid and an invalid file, and the instance is replaced by a second one (start B, SIGTERM A) behind a TCP
// front that plays the Service. Every review must be answered, with the same answer as at baseline.
import { mkdirSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { AdmissionClient } from '../lib/client.js';
import { makeCA, makeLeaf } from '../../test/harness/certs.js';
import { SecretDir } from '../lib/certdir.js';
import { configYaml, INVALID_CONFIG, replaceFile } from '../lib/config.js';
import { TcpFront } from '../lib/front.js';
import { Baseline, Recorder, judge, measureCapacity, openLoop, type LoadStats } from '../lib/load.js';
import { onCleanup, subDir } from '../lib/proc.js';
import { Asserts, type Report } from '../lib/report.js';
import { body, loadCorpus, newUid, reviewFor, type ReviewTemplate } from '../lib/reviews.js';
import { round, sleep, waitFor } from '../lib/stats.js';
import {
  histogramQuantileMs,
  metricSum,
  metricsText,
  rssOf,
  servedFingerprint,
  startWebhook,
  type WebhookInstance,
} from '../lib/webhook.js';
import { settings } from '../settings.js';

interface Event {
  at: number; // seconds into the load
  what: string;
  ok: boolean;
  detail: string;
}

export async function webhookLoadSuite(report: Report): Promise<void> {
  const s = settings();
  const dir = subDir('webhook-load');
  const ca = await makeCA(dir, 'soak-ca');
  const [cert1, cert2, cert3] = [
    await makeLeaf(dir, ca, 'serving-1', 'server'),
    await makeLeaf(dir, ca, 'serving-2', 'server'),
    await makeLeaf(dir, ca, 'serving-3', 'server'),
  ];
  const secret = new SecretDir(join(dir, 'tls'));
  secret.swap(cert1, ca.cert);
  // The config in a directory of its own, as a ConfigMap volume is (the server watches the directory; the busy
  // instance logs must not share it).
  const configDir = join(dir, 'config');
  mkdirSync(configDir);
  const configFile = join(configDir, 'config.yaml');
  replaceFile(configFile, configYaml(['kube-system', 'istio-system']));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);

  const corpus = loadCorpus();
  // The probe pod: selected in namespace soak-excluded until the config excludes that namespace.
  const probeTemplate = reviewFor(
    JSON.parse(corpus[0]!.before + 'x' + corpus[0]!.after).request.object,
    'soak-excluded',
    'probe',
  );
  const probe2Template = reviewFor(
    JSON.parse(corpus[0]!.before + 'x' + corpus[0]!.after).request.object,
    'soak-excluded-2',
    'probe-2',
  );

  const start = (name: string): Promise<WebhookInstance> =>
    startWebhook({ name, certFile: secret.certFile, keyFile: secret.keyFile, configFile, logDir, ca: ca.cert });
  const a = await start('instance-a');
  const front = new TcpFront(ca.cert);
  await front.listen();
  onCleanup(() => front.close());
  front.add({ name: a.name, port: a.port });
  if (!(await waitFor(() => front.isReady(a.name), 5000))) throw new Error('the front never saw instance A ready');

  const client = new AdmissionClient({ host: '127.0.0.1', port: front.port, ca: ca.cert, maxSockets: s.loadSockets });
  onCleanup(() => client.close());
  const baseline = new Baseline(corpus);
  await baseline.take(client);
  // probes use connections of their own, so they do not queue behind the load
  const probeClient = new AdmissionClient({ host: '127.0.0.1', port: front.port, ca: ca.cert, maxSockets: 2 });
  onCleanup(() => probeClient.close());
  const isSkipped = async (t: ReviewTemplate): Promise<boolean> => {
    const uid = newUid();
    const r = await probeClient.call('/mutate', body(t, uid));
    const v = judge(r.status, r.body, uid);
    if (!v.ok) throw new Error(`probe review failed: ${v.problem ?? r.error}`);
    const resp = JSON.parse(r.body).response;
    return resp.allowed === true && !resp.patch;
  };
  if (await isSkipped(probeTemplate))
    throw new Error('the probe pod is not selected under the default config: cannot observe config reloads');

  // Capacity: a short closed loop, or the figure given in SOAK_RATE (reviews/s; then the load runs at that rate).
  let capacity: number | undefined;
  let capacityStats: LoadStats | undefined;
  let rate = s.rate;
  if (!rate) {
    const c = await measureCapacity(client, corpus, s.capacitySeconds, s.capacityConcurrency);
    capacity = round(c.perSecond);
    capacityStats = c.stats;
    rate = Math.max(1, Math.min(s.maxRate, Math.floor(c.perSecond / 2)));
    report.add(
      'webhook.capacity',
      c.stats.failed === 0,
      `closed loop, ${s.capacityConcurrency} concurrent, ${s.capacitySeconds}s: ${capacity} reviews/s (p99 ${c.stats.latency.p99} ms, failed ${c.stats.failed}); load rate ${rate}/s (half, at most ${s.maxRate}/s)`,
      {
        capacityPerSecond: capacity,
        concurrency: s.capacityConcurrency,
        seconds: s.capacitySeconds,
        latencyMs: c.stats.latency,
        failed: c.stats.failed,
        loadRate: rate,
      },
    );
  }

  const rss: Record<string, number | undefined> = { aReady: undefined, aLoadStart: rssOf(a) };
  const rec = new Recorder(baseline);
  const loadSeconds = s.loadSeconds;
  const loadStarted = performance.now();
  const at = (): number => round((performance.now() - loadStarted) / 1000);
  const load = openLoop(client, corpus, rate, loadSeconds, rec);
  const events: Event[] = [];
  const serverMetrics: string[] = [];
  const event = (what: string, ok: boolean, detail: string): void => {
    events.push({ at: at(), what, ok, detail });
    console.log(`soak   t=${at()}s ${ok ? 'ok ' : 'BAD'} ${what}: ${detail}`);
  };
  const until = async (t: number): Promise<void> => {
    const wait = t * 1000 - (performance.now() - loadStarted);
    if (wait > 0) await sleep(wait);
  };
  const fraction = (f: number): number => Math.round(loadSeconds * f);
  let b: WebhookInstance | undefined;
  let aExit: { code: number | null; signal: string | null; afterSigtermMs: number } | undefined;
  let bReadyMs: number | undefined;

  const rotate = async (
    instance: WebhookInstance,
    pair: typeof cert1,
    how: 'kubelet symlink swap' | 'in-place rewrite',
  ): Promise<void> => {
    const t0 = performance.now();
    if (how === 'kubelet symlink swap') secret.swap(pair, ca.cert);
    else secret.rewriteInPlace(pair);
    const served = await waitFor(
      async () => (await servedFingerprint(instance.port, ca.cert)) === pair.fingerprint,
      s.rotationBoundMs,
      50,
    );
    event(
      `certificate rotation (${how}) on ${instance.name}`,
      !!served,
      served
        ? `new certificate served after ${Math.round(performance.now() - t0)} ms`
        : `old certificate still served after ${s.rotationBoundMs} ms`,
    );
  };
  const expectSkipped = async (t: ReviewTemplate, want: boolean, what: string, boundMs: number): Promise<void> => {
    const t0 = performance.now();
    const seen = await waitFor(async () => (await isSkipped(t)) === want, boundMs, 100);
    event(
      what,
      !!seen,
      seen ? `observed after ${Math.round(performance.now() - t0)} ms` : `not observed within ${boundMs} ms`,
    );
  };

  try {
    await until(fraction(0.08));
    await rotate(a, cert2, 'kubelet symlink swap');

    await until(fraction(0.18));
    replaceFile(configFile, configYaml(['kube-system', 'istio-system', 'soak-excluded']));
    await expectSkipped(
      probeTemplate,
      true,
      'valid config replacement applied (namespace soak-excluded now excluded)',
      s.reloadBoundMs,
    );

    await until(fraction(0.28));
    const metricsBefore = await metricsText(a.metricsPort).catch(() => '');
    replaceFile(configFile, INVALID_CONFIG);
    await sleep(s.reloadBoundMs / 2);
    const stillExcluded = await isSkipped(probeTemplate);
    event(
      'invalid config replacement ignored (last good config kept)',
      stillExcluded,
      stillExcluded ? 'soak-excluded still excluded' : 'the server dropped the last good config',
    );
    const metricsAfter = await metricsText(a.metricsPort).catch(() => '');
    const failures = reloadFailures(metricsAfter) - reloadFailures(metricsBefore);
    event('config reload failure counted in metrics', failures >= 1, `reload failure counters rose by ${failures}`);

    await until(fraction(0.36));
    replaceFile(configFile, configYaml(['kube-system', 'istio-system', 'soak-excluded', 'soak-excluded-2']));
    await expectSkipped(
      probe2Template,
      true,
      'valid config after the invalid one applied (soak-excluded-2 excluded)',
      s.reloadBoundMs,
    );

    await until(fraction(0.45));
    rss.aBeforeSigterm = rssOf(a);
    serverMetrics.push(await metricsText(a.metricsPort).catch(() => ''));
    b = await start('instance-b');
    bReadyMs = Math.round(b.readyMs);
    front.add({ name: b.name, port: b.port });
    const bSeen = await waitFor(() => front.isReady(b!.name), 5000);
    event('instance B started and in the front', !!bSeen, `ready ${bReadyMs} ms after start`);
    rss.bReady = rssOf(b);
    const t0 = performance.now();
    a.child.proc.kill('SIGTERM');
    // readiness must turn false while the process still serves (a 503 from /readyz, not just a closed port)
    const unreadyAfter = await waitFor(
      async () => ((await readyzStatus(a.port, ca.cert)) === 503 ? Math.round(performance.now() - t0) : undefined),
      5000,
      20,
    );
    const exit = await Promise.race([a.child.exited, sleep(s.shutdownBoundMs).then(() => undefined)]);
    aExit = exit ? { ...exit, afterSigtermMs: Math.round(performance.now() - t0) } : undefined;
    front.remove(a.name);
    event(
      'instance A: SIGTERM, readiness off, clean exit',
      unreadyAfter !== undefined && !!exit && exit.code === 0,
      `${unreadyAfter !== undefined ? `/readyz 503 after ${unreadyAfter} ms` : 'never saw /readyz 503'}; ${exit ? `exit code ${exit.code}${exit.signal ? ` signal ${exit.signal}` : ''} after ${aExit!.afterSigtermMs} ms` : `still running ${s.shutdownBoundMs} ms after SIGTERM`}`,
    );

    await until(fraction(0.6));
    await rotate(b, cert3, 'in-place rewrite');
    // the config still applies on the new instance
    const bExcludes = await isSkipped(probe2Template);
    event(
      'instance B loaded the current config',
      bExcludes,
      bExcludes ? 'soak-excluded-2 excluded' : 'soak-excluded-2 not excluded',
    );
  } finally {
    await load;
  }
  rss.bEnd = b ? rssOf(b) : undefined;
  if (b) serverMetrics.push(await metricsText(b.metricsPort).catch(() => ''));
  // the server's own view (receive to response ready), to tell its time from the machine's and the harness's
  const serverP99 = histogramQuantileMs(serverMetrics, 'asm_cni_webhook_review_duration_seconds', 0.99);
  const st = rec.stats(rate);

  const w = new Asserts();
  w.that(st.seconds >= s.minLoadSeconds, `load ran ${st.seconds}s < ${s.minLoadSeconds}s`);
  w.that(st.failed === 0, `${st.failed} reviews failed: ${JSON.stringify(st.failures)}`);
  w.that(st.answered === st.sent, `answered ${st.answered} of ${st.sent}`);
  w.that(st.mismatched === 0, `${st.mismatched} answers differ from the baseline answer for the same pod`);
  w.that(st.latency.p99 <= s.p99BoundMs, `p99 ${st.latency.p99} ms over the ${s.p99BoundMs} ms bound`);
  w.that(
    st.latency.max < s.maxBoundMs,
    `slowest review ${st.latency.max} ms: over the webhook's ${s.maxBoundMs} ms timeout`,
  );
  w.that(st.answered >= rate * s.minLoadSeconds * 0.95, `only ${st.answered} answered at ${rate}/s`);
  for (const e of events) w.that(e.ok, `t=${e.at}s ${e.what}: ${e.detail}`);
  const rssBound = s.rssBoundMiB;
  for (const [k, v] of Object.entries(rss))
    if (v !== undefined) w.that(v <= rssBound, `RSS ${k} ${v} MiB over ${rssBound} MiB`);
  report.add(
    'webhook.load',
    w.ok,
    w.summary(
      `${st.seconds}s at ${rate}/s (${capacity ? `half of ${capacity}, at most ${s.maxRate}` : 'SOAK_RATE'}): sent ${st.sent}, answered ${st.answered}, failed ${st.failed}, mismatched ${st.mismatched}, ` +
        `retried ${st.retried} ${JSON.stringify(st.retryCauses)}; p50 ${st.latency.p50} p99 ${st.latency.p99} max ${st.latency.max} ms end to end (server-side p99 ≤ ${serverP99 ?? '?'} ms); ` +
        `RSS A ${rss.aLoadStart}→${rss.aBeforeSigterm} MiB, B ${rss.bReady}→${rss.bEnd} MiB; events ok ${events.filter((e) => e.ok).length}/${events.length}`,
    ),
    {
      serverSideP99UpperBoundMs: serverP99,
      p99BoundMs: s.p99BoundMs,
      maxBoundMs: s.maxBoundMs,
      capacityPerSecond: capacity,
      capacityLatencyMs: capacityStats?.latency,
      ...st,
      rssMiB: rss,
      events,
      instanceAExit: aExit,
      instanceBReadyMs: bReadyMs,
      frontConnections: front.connectionsTo,
      frontRefused: front.refused,
    },
  );
  if (b) b.child.proc.kill('SIGTERM');
}

/** HTTP status of GET /readyz on a fresh TLS connection (0 when refused). */
function readyzStatus(port: number, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/readyz', ca, servername: 'localhost', agent: false, timeout: 1000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Failed config reloads, from the webhook's counter (metricSum parses the exposition without backtracking). */
function reloadFailures(text: string): number {
  return metricSum(text, 'asm_cni_webhook_config_reload_failures_total');
}
