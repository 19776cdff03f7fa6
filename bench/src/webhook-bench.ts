// Webhook half of `npm run bench`: the shipped webhook against its floor, same certificate, connections and payloads.
// Usage: node webhook-bench.js --out FILE [--floor-only]. Run it pinned to the load generator's CPU (bench/run.sh does);
// the servers are pinned to ASM_BENCH_SERVER_CPU.
import autocannon from 'autocannon';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { generateCerts, type BenchCerts } from './certs.js';
import { buildReviewPayloads, type ReviewPayload } from './fixtures.js';
import { answerMatches, runOpenLoop, type OpenLoopResult } from './review-load.js';
import { freePort } from '../../test/harness/free-port.js';
import {
  cpuNanos,
  cpuSeconds,
  memoryMiB,
  startServer,
  stopServer,
  waitReady,
  type Server,
} from '../../test/harness/proc.js';
import { logicCost } from './logic-cost.js';
import { SERVER_STEPS, waterfallRows, type StepMeasure, type WaterfallStep } from './waterfall.js';
import { hotspots } from './profile-top.js';
import { percentileCurve, ratio, summarize, type Summary } from '../../test/harness/stats.js';
import { repoRoot as ROOT } from '../../test/harness/toolchain.js';
import { serveArgs, webhookCli } from '../../test/harness/webhook.js';

const env = (k: string, d: string): string => process.env[k] ?? d;
const CFG = {
  connections: Number(env('ASM_BENCH_CONNECTIONS', '16')),
  warmupSec: Number(env('ASM_BENCH_WARMUP_SEC', '3')),
  maxSec: Number(env('ASM_BENCH_MAX_SEC', '12')),
  rounds: Number(env('ASM_BENCH_ROUNDS_WEBHOOK', '3')),
  rateSec: Number(env('ASM_BENCH_RATE_SEC', '12')),
  rssReviews: Number(env('ASM_BENCH_RSS_REVIEWS', '100000')),
  // Seconds of measured load per server in the CPU waterfall (split over the rounds); 0 leaves the waterfall out.
  waterfallSec: Number(env('ASM_BENCH_WATERFALL_SEC', '6')),
  waterfallRounds: Number(env('ASM_BENCH_WATERFALL_ROUNDS', '6')),
  serverCpu: process.env.ASM_BENCH_SERVER_CPU ?? '1',
  path: env('ASM_BENCH_WEBHOOK_PATH', '/mutate?timeout=10s'),
  profile: process.env.ASM_BENCH_PROFILE === '1',
  // What-if knobs for experiments; the committed results use the shipped defaults (info, no extra node flags).
  logLevel: env('ASM_BENCH_WEBHOOK_LOG_LEVEL', 'info'),
  nodeFlags: env('ASM_BENCH_WEBHOOK_NODE_FLAGS', '').split(' ').filter(Boolean),
};

export interface MaxResult {
  /** Median over the rounds of answered reviews per second. */
  reqPerSec: number;
  rounds: number[];
  requests: number;
  durationSec: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  /** CPU the server used during the runs, in cores (1.0 = the whole pinned CPU: the server, not the client, is the limit). */
  serverCpuCores: number;
  /** Server CPU time per answered review (µs): the cost that sets the maximum on a dedicated core, robust to noise. */
  cpuUsPerReview: number;
  /** CPU the load generator (this process) used, in cores: near 1.0 while the server is below it means the client,
   * not the server, set the maximum. */
  clientCpuCores: number;
  autocannonLatencyMs: { p50: number; p99: number; max: number };
}

export interface RateResult {
  offeredRate: number;
  achievedRate: number;
  completed: number;
  errors: number;
  mismatches: number;
  latencyMs: Summary;
  curveMs: Array<[number, number]>;
  serverCpuCores: number;
}

interface Target {
  server: Server;
  verify: 'uid' | 'patch';
  max: MaxResult[];
  /** Open-loop runs by offered rate. */
  rate: Map<number, Array<{ r: OpenLoopResult; cpu: number }>>;
  /** Reviews this server answered so far (warm-up and sanity checks included): the count behind the RSS figure. */
  served: number;
  warmErrors: number;
  /** Errors and wrong answers in the CPU waterfall's runs, which count toward the server's errors too. */
  waterfallErrors: number;
}

/**
 * NODE_OPTIONS of the webhook container in the shipped Deployment (manifests/base/webhook-deployment.yaml), so that
 * the bench runs the webhook with the same V8 flags as a cluster does. Empty when the manifest does not set any.
 */
export function shippedNodeOptions(root: string): string {
  const file = join(root, 'manifests/base/webhook-deployment.yaml');
  if (!existsSync(file)) return '';
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const d = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } };
    };
    if (d?.kind !== 'Deployment') continue;
    for (const c of d.spec?.template?.spec?.containers ?? []) {
      const v = c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
      if (v) return v;
    }
  }
  return '';
}

function log(msg: string): void {
  process.stderr.write(`[bench webhook] ${msg}\n`);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? NaN;

async function maxThroughput(
  server: Server,
  payloads: readonly ReviewPayload[],
  durationSec: number,
  amount?: number,
): Promise<MaxResult> {
  const requests = payloads.map((p) => ({
    method: 'POST',
    path: CFG.path,
    headers: { 'content-type': 'application/json' },
    body: p.body,
  }));
  const cpu0 = cpuSeconds(server.pid);
  const client0 = process.cpuUsage();
  const r = await autocannon({
    url: `https://127.0.0.1:${server.port}`,
    servername: 'localhost',
    connections: CFG.connections,
    pipelining: 1,
    timeout: 10,
    requests,
    ...(amount !== undefined ? { amount } : { duration: durationSec }),
  });
  const cpu = cpuSeconds(server.pid) - cpu0;
  const client = process.cpuUsage(client0);
  const ok = r['2xx'];
  return {
    reqPerSec: Math.round(ok / r.duration),
    rounds: [Math.round(ok / r.duration)],
    requests: ok,
    durationSec: r.duration,
    errors: r.errors + r.timeouts + r.non2xx,
    non2xx: r.non2xx,
    timeouts: r.timeouts,
    serverCpuCores: Number((cpu / r.duration).toFixed(2)),
    cpuUsPerReview: Math.round((cpu * 1e6) / Math.max(1, ok)),
    clientCpuCores: Number(((client.user + client.system) / 1e6 / r.duration).toFixed(2)),
    autocannonLatencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
  };
}

function combineMax(runs: MaxResult[]): MaxResult {
  const sum = (k: 'requests' | 'durationSec' | 'errors' | 'non2xx' | 'timeouts'): number =>
    runs.reduce((a, r) => a + r[k], 0);
  return {
    reqPerSec: median(runs.map((r) => r.reqPerSec)),
    rounds: runs.map((r) => r.reqPerSec),
    requests: sum('requests'),
    durationSec: Number(sum('durationSec').toFixed(2)),
    errors: sum('errors'),
    non2xx: sum('non2xx'),
    timeouts: sum('timeouts'),
    serverCpuCores: median(runs.map((r) => r.serverCpuCores)),
    cpuUsPerReview: median(runs.map((r) => r.cpuUsPerReview)),
    clientCpuCores: median(runs.map((r) => r.clientCpuCores)),
    autocannonLatencyMs: {
      p50: median(runs.map((r) => r.autocannonLatencyMs.p50)),
      p99: median(runs.map((r) => r.autocannonLatencyMs.p99)),
      max: Math.max(...runs.map((r) => r.autocannonLatencyMs.max)),
    },
  };
}

async function fixedRate(
  t: Target,
  certs: BenchCerts,
  payloads: readonly ReviewPayload[],
  rate: number,
  durationSec: number,
): Promise<void> {
  const cpu0 = cpuSeconds(t.server.pid);
  const r = await runOpenLoop({
    host: '127.0.0.1',
    port: t.server.port,
    path: CFG.path,
    ca: certs.ca,
    connections: CFG.connections,
    rate,
    durationSec,
    payloads,
    verify: t.verify,
  });
  const runs = t.rate.get(rate) ?? [];
  runs.push({ r, cpu: cpuSeconds(t.server.pid) - cpu0 });
  t.rate.set(rate, runs);
  t.served += r.completed + r.non2xx + r.connErrors;
}

/**
 * The offered rates of the latency runs: shares of asm-cni's own measured maximum, so that no rate is above what it
 * carries on this machine (above it, p99 measures a growing queue, not latency), plus a fixed realistic rate where
 * it is below the highest share. Both servers get the same rates.
 */
export const RATE_SHARES = [0.25, 0.5, 0.75] as const;
export const REALISTIC_RATE = 500;
export function offeredRates(capacity: number): number[] {
  const rates = RATE_SHARES.map((f) => Math.max(1, Math.round(capacity * f)));
  if (REALISTIC_RATE <= rates[rates.length - 1]!) rates.push(REALISTIC_RATE);
  return [...new Set(rates)].sort((a, b) => a - b);
}

function combineRate(runs: Array<{ r: OpenLoopResult; cpu: number }>): RateResult {
  const all = runs.flatMap(({ r }) => Array.from(r.latencyUs, (v) => v / 1000));
  const elapsed = runs.reduce((a, { r }) => a + r.elapsedSec, 0);
  const completed = runs.reduce((a, { r }) => a + r.completed, 0);
  return {
    offeredRate: runs[0]!.r.offeredRate,
    achievedRate: Math.round(completed / elapsed),
    completed,
    errors: runs.reduce((a, { r }) => a + r.non2xx + r.connErrors, 0),
    mismatches: runs.reduce((a, { r }) => a + r.mismatches, 0),
    latencyMs: summarize(all),
    curveMs: percentileCurve(all).map(([q, v]) => [q, Number(v.toFixed(3))]),
    serverCpuCores: Number((runs.reduce((a, { cpu }) => a + cpu, 0) / elapsed).toFixed(2)),
  };
}

/** One review of each shape, checked before any load: the run measures the paths it claims to (patched and skipped). */
async function sanityCheck(
  server: Server,
  certs: BenchCerts,
  payloads: readonly ReviewPayload[],
  verify: 'uid' | 'patch',
): Promise<void> {
  const seen = new Set<string>();
  for (const p of payloads) {
    if (seen.has(p.shape)) continue;
    seen.add(p.shape);
    const text = await waitReady(server, CFG.path, certs.ca, p.body);
    if (!answerMatches(p, Buffer.from(text), verify)) {
      throw new Error(`bench: ${server.name} answered the ${p.shape} review unexpectedly: ${text.slice(0, 400)}`);
    }
  }
}

async function scrapeMetrics(port: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await res.text();
    for (const m of text.matchAll(/^asm_cni_webhook_reviews_total\{([^}]*)\}\s+([0-9.e+]+)/gm))
      out[m[1]!] = Number(m[2]);
  } catch (e) {
    out.error = NaN;
    log(`metrics scrape failed: ${String(e)}`);
  }
  return out;
}

/** What the waterfall's servers share: certificates, the answers to send, where logs go, the shipped NODE_OPTIONS. */
interface WaterfallSetup {
  certs: BenchCerts;
  responsesFile: string;
  work: string;
  nodeOptions: string;
}

/**
 * The CPU waterfall (waterfall.ts): the floor and the shipped webhook already running, plus one server per step in
 * between, all loaded at the same fixed rate (below every one's capacity) in alternating rounds. CPU per review is
 * the server's CPU over the paced part of each run (schedstat, all threads) divided by the reviews it answered.
 */
async function cpuWaterfall(
  floor: Target,
  product: Target,
  setup: WaterfallSetup,
  payloads: readonly ReviewPayload[],
  rate: number,
): Promise<Record<string, unknown>> {
  const rounds = Math.max(1, CFG.waterfallRounds);
  const shipped = { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: setup.nodeOptions };
  const tls = ['--cert', setup.certs.certFile, '--key', setup.certs.keyFile, '--responses', setup.responsesFile];
  const servers: Array<{ step: WaterfallStep; server: Server; started: boolean }> = [
    { step: 'floor', server: floor.server, started: false },
  ];
  const start = async (step: WaterfallStep, script: string, extra: string[]): Promise<void> => {
    const port = await freePort();
    const server = startServer(
      `waterfall ${step}`,
      [process.execPath, join(import.meta.dirname, script), '--port', String(port), ...tls, ...extra],
      { cpu: CFG.serverCpu, logFile: join(setup.work, `waterfall-${step}.log`), port, env: shipped },
    );
    servers.push({ step, server, started: true });
  };
  const measured = new Map<WaterfallStep, StepMeasure>();
  try {
    await start('flags', 'floor-webhook.js', []);
    for (const step of SERVER_STEPS) await start(step, 'waterfall-server.js', ['--step', step]);
    servers.push({ step: 'shipped', server: product.server, started: false });
    for (const { step, server, started } of servers) {
      measured.set(step, { step, rounds: [], reviews: 0, errors: 0 });
      if (!started) continue;
      try {
        await waitReady(server, CFG.path, setup.certs.ca, payloads[2]!.body);
        await sanityCheck(server, setup.certs, payloads, 'patch');
      } catch (e) {
        const file = join(setup.work, `waterfall-${step}.log`);
        if (existsSync(file)) log(`${server.name} log (tail):\n${readFileSync(file, 'utf8').slice(-2000)}`);
        throw e;
      }
    }
    const run = async (server: Server, seconds: number) =>
      runOpenLoop({
        host: '127.0.0.1',
        port: server.port,
        path: CFG.path,
        ca: setup.certs.ca,
        connections: CFG.connections,
        rate,
        durationSec: seconds,
        payloads,
        verify: 'patch',
        meter: () => cpuNanos(server.pid),
      });
    // The new servers' JIT warms up on a short run of the same load, left out of the figures.
    for (const { step, server, started } of servers) {
      if (!started) continue;
      const w = await run(server, 1);
      measured.get(step)!.errors += w.non2xx + w.connErrors + w.mismatches;
    }
    for (let i = 0; i < rounds; i++) {
      for (const { step, server } of servers) {
        const r = await run(server, CFG.waterfallSec / rounds);
        const m = measured.get(step)!;
        m.rounds.push(r.metered / 1000 / Math.max(1, r.completed));
        m.reviews += r.completed;
        m.errors += r.non2xx + r.connErrors + r.mismatches;
        const target = step === 'shipped' ? product : step === 'floor' ? floor : undefined;
        if (target) {
          target.served += r.completed + r.non2xx + r.connErrors;
          target.waterfallErrors += r.non2xx + r.connErrors + r.mismatches;
        }
      }
    }
  } finally {
    for (const { server, started } of servers) if (started) await stopServer(server);
  }
  const rows = waterfallRows([...measured.values()]);
  for (const r of rows)
    log(
      `waterfall ${r.step}: ${r.cpuUsPerReview} µs CPU/review (${r.deltaUs >= 0 ? '+' : ''}${r.deltaUs}), ${r.errors} errors`,
    );
  return {
    offeredRate: rate,
    secondsPerStep: CFG.waterfallSec,
    rounds,
    rows,
    beyondFloorUs: Number((rows[rows.length - 1]!.cpuUsPerReview - rows[0]!.cpuUsPerReview).toFixed(1)),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, 'floor-only': { type: 'boolean', default: false } },
  });
  if (!values.out) throw new Error('webhook-bench: --out FILE is required');
  const payloads = buildReviewPayloads(100);
  const work = mkdtempSync(join(tmpdir(), 'asm-cni-bench-webhook-'));
  let certs: BenchCerts;
  try {
    certs = await generateCerts(work);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  const withProduct = !values['floor-only'] && existsSync(webhookCli);
  if (!withProduct) log(values['floor-only'] ? 'floor only (--floor-only)' : `floor only: ${webhookCli} is not built`);
  const result: Record<string, unknown> = {
    config: {
      ...CFG,
      payloadsPerShape: 100,
      shapes: ['classic', 'native', 'skipped'],
      bodyBytes: payloads.slice(0, 3).map((p) => Buffer.byteLength(p.body)),
    },
  };

  const rounds = Math.max(1, CFG.rounds);
  const targets: Target[] = [];
  const profileDir = join(ROOT, 'bench/profiles');
  let metricsPort = 0;
  let webhookLog = '';
  const nodeOptions = shippedNodeOptions(ROOT);
  try {
    if (withProduct) {
      // (a) the webhook as shipped: built JS, NODE_ENV=production, default (info) log level, logs to a file as a
      // container runtime would keep them.
      const port = await freePort();
      metricsPort = await freePort();
      const configFile = join(work, 'config.yaml');
      writeFileSync(configFile, `logLevel: ${CFG.logLevel}\n`);
      if (CFG.profile) mkdirSync(profileDir, { recursive: true });
      const nodeArgs = [...CFG.nodeFlags, ...(CFG.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])];
      const cmd = [
        process.execPath,
        ...nodeArgs,
        webhookCli,
        ...serveArgs({ port, metricsPort, certFile: certs.certFile, keyFile: certs.keyFile, configFile }),
        '--shutdown-delay',
        '0',
      ];
      webhookLog = join(work, 'webhook.log');
      result.webhookNodeOptions = nodeOptions;
      log(`webhook: NODE_OPTIONS from the shipped Deployment: ${nodeOptions || '(none)'}`);
      const server = startServer('webhook', cmd, {
        cpu: CFG.serverCpu,
        logFile: webhookLog,
        port,
        env: { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: nodeOptions },
      });
      targets.push({ server, verify: 'patch', max: [], rate: new Map(), served: 0, warmErrors: 0, waterfallErrors: 0 });
    }
    // The fair floor answers each review with asm-cni's own answer to it (the bytes any webhook must send).
    let responsesFile: string | undefined;
    if (withProduct) {
      const product = targets[0]!;
      try {
        await waitReady(product.server, CFG.path, certs.ca, payloads[2]!.body);
      } catch (e) {
        if (existsSync(webhookLog)) log(`webhook log (tail):\n${readFileSync(webhookLog, 'utf8').slice(-2000)}`);
        throw e;
      }
      const answers: Array<{ uid: string; body: string }> = [];
      for (const p of payloads)
        answers.push({ uid: p.uid, body: await waitReady(product.server, CFG.path, certs.ca, p.body) });
      product.served += payloads.length;
      responsesFile = join(work, 'responses.json');
      writeFileSync(responsesFile, JSON.stringify(answers));
      result.floorAnswers = 'asm-cni';
    } else {
      result.floorAnswers = 'fixed allowed review';
    }
    // (b) the floor: a plain node:https server, same certificate.
    const floorPort = await freePort();
    const floor = startServer(
      'floor',
      [
        process.execPath,
        join(import.meta.dirname, 'floor-webhook.js'),
        '--port',
        String(floorPort),
        '--cert',
        certs.certFile,
        '--key',
        certs.keyFile,
        ...(responsesFile ? ['--responses', responsesFile] : []),
      ],
      { cpu: CFG.serverCpu, logFile: join(work, 'floor.log'), port: floorPort },
    );
    // targets[0] is the floor, targets[1] the product, in every loop below.
    targets.unshift({
      server: floor,
      verify: responsesFile ? 'patch' : 'uid',
      max: [],
      rate: new Map(),
      served: 0,
      warmErrors: 0,
      waterfallErrors: 0,
    });
    try {
      for (const t of targets) {
        try {
          await waitReady(t.server, CFG.path, certs.ca, payloads[2]!.body);
          await sanityCheck(t.server, certs, payloads, t.verify);
        } catch (e) {
          if (t.server.name === 'webhook' && existsSync(webhookLog))
            log(`webhook log (tail):\n${readFileSync(webhookLog, 'utf8').slice(-2000)}`);
          throw e;
        }
        t.served += 3;
      }
      const rssStart = withProduct ? memoryMiB(targets[1]!.server.pid) : undefined;
      for (const t of targets) {
        log(`${t.server.name}: warm-up ${CFG.warmupSec}s`);
        const warm = await maxThroughput(t.server, payloads, CFG.warmupSec);
        t.served += warm.requests + warm.errors;
        if (warm.errors > 0) log(`${t.server.name}: ${warm.errors} errors during warm-up`);
        t.warmErrors = warm.errors; // the warm-up's rate is kept out of the figures, its errors are not
      }
      // Rounds alternate between the servers so that background load drifting during the run hits both alike.
      for (let i = 0; i < rounds; i++) {
        for (const t of targets) {
          const m = await maxThroughput(t.server, payloads, CFG.maxSec / rounds);
          t.max.push(m);
          t.served += m.requests + m.errors;
          log(
            `${t.server.name}: max round ${i + 1}/${rounds}: ${m.reqPerSec} req/s, server CPU ${m.serverCpuCores} cores, ${m.cpuUsPerReview} µs CPU/review, client CPU ${m.clientCpuCores} cores`,
          );
        }
      }
      const floorMax = combineMax(targets[0]!.max);
      const capacity = withProduct ? combineMax(targets[1]!.max).reqPerSec : floorMax.reqPerSec;
      const rates = offeredRates(capacity);
      const half = rates.find((r) => r === Math.max(1, Math.round(capacity * 0.5)))!;
      log(
        `latency runs at ${rates.join(', ')} req/s (25/50/75 % of ${withProduct ? "asm-cni's" : "the floor's"} max ${capacity})`,
      );
      for (const rate of rates) {
        for (let i = 0; i < rounds; i++) {
          for (const t of targets) {
            await fixedRate(t, certs, payloads, rate, CFG.rateSec / rounds);
            const runs = t.rate.get(rate)!;
            const last = runs[runs.length - 1]!.r;
            log(
              `${t.server.name}: ${rate} req/s round ${i + 1}/${rounds}: ${last.completed} answered, ${last.non2xx + last.connErrors} errors, ${last.mismatches} wrong answers`,
            );
          }
        }
      }
      if (withProduct && responsesFile && CFG.waterfallSec > 0) {
        log(`CPU waterfall at ${half} req/s (50 % of asm-cni's max), ${CFG.waterfallSec}s per server`);
        // A waterfall that cannot run (a step's server failed) is reported and fails the run; the main figures are still
        // written.
        try {
          result.waterfall = await cpuWaterfall(
            targets[0]!,
            targets[1]!,
            { certs, responsesFile, work, nodeOptions },
            payloads,
            half,
          );
        } catch (e) {
          const error = e instanceof Error ? e.message : String(e);
          log(`CPU waterfall FAILED: ${error}`);
          result.waterfall = { error };
          process.exitCode = 1;
        }
      }
      const rate = half;
      const summaries = targets.map((t) => ({ max: combineMax(t.max), rate: combineRate(t.rate.get(half)!) }));
      const byRate = rates.map((r) => ({
        offeredRate: r,
        shareOfCapacity: Number((r / capacity).toFixed(2)),
        floor: combineRate(targets[0]!.rate.get(r)!),
        webhook: withProduct ? combineRate(targets[1]!.rate.get(r)!) : null,
      }));
      const rateErrors = (i: number): number =>
        byRate.reduce(
          (a, b) => a + (i === 0 ? b.floor : b.webhook!).errors + (i === 0 ? b.floor : b.webhook!).mismatches,
          0,
        );
      result.rates = byRate.map((b) => ({
        ...b,
        p50Ratio: b.webhook ? ratio(b.webhook.latencyMs.p50, b.floor.latencyMs.p50) : null,
        p99Ratio: b.webhook ? ratio(b.webhook.latencyMs.p99, b.floor.latencyMs.p99) : null,
      }));
      const fl = summaries[0]!;
      result.floor = {
        ...fl,
        errors: fl.max.errors + rateErrors(0) + targets[0]!.warmErrors + targets[0]!.waterfallErrors,
      };
      log(
        `floor: max ${fl.max.reqPerSec} req/s; at ${rate} req/s p50 ${fl.rate.latencyMs.p50} ms p99 ${fl.rate.latencyMs.p99} ms`,
      );
      if (withProduct) {
        const t = targets[1]!;
        const ours = summaries[1]!;
        log(
          `webhook: max ${ours.max.reqPerSec} req/s; at ${rate} req/s p50 ${ours.rate.latencyMs.p50} ms p99 ${ours.rate.latencyMs.p99} ms`,
        );
        const topUp = Math.max(0, CFG.rssReviews - t.served);
        log(`webhook: ${topUp} more reviews to reach ${CFG.rssReviews}`);
        const top = topUp > 0 ? await maxThroughput(t.server, payloads, 0, topUp) : null;
        t.served += top ? top.requests + top.errors : 0;
        const mem = memoryMiB(t.server.pid)!;
        const metrics = await scrapeMetrics(metricsPort);
        const logic = await logicCost(join(ROOT, 'dist'), payloads);
        log(
          `webhook logic in-process: JSON.parse ${logic.parseUs} µs, admit ${logic.admitUs} µs, answer ${logic.answerUs} µs per review`,
        );
        result.webhook = {
          ...ours,
          logicCpuUsPerReview: logic,
          memory: { reviews: t.served, rssStartMB: rssStart!.rss, rssMB: mem.rss, peakMB: mem.peak },
          errors: t.warmErrors + ours.max.errors + rateErrors(1) + t.waterfallErrors + (top?.errors ?? 0),
          metrics,
          logBytes: statSync(webhookLog).size,
        };
        result.ratios = {
          webhookThroughputRatio: ratio(ours.max.reqPerSec, fl.max.reqPerSec),
          // The worst pair over the offered rates: the target holds at every load both carry.
          webhookP99Ratio: Math.max(...byRate.map((b) => ratio(b.webhook!.latencyMs.p99, b.floor.latencyMs.p99))),
          webhookP50Ratio: ratio(ours.rate.latencyMs.p50, fl.rate.latencyMs.p50),
          webhookCpuPerReviewRatio: ratio(ours.max.cpuUsPerReview, fl.max.cpuUsPerReview),
          // What the throughput ratio is on dedicated cores when the servers, not the client, are the limit.
          webhookCapacityRatio: ratio(fl.max.cpuUsPerReview, ours.max.cpuUsPerReview),
          floorClientBound: fl.max.clientCpuCores >= 0.85 && fl.max.serverCpuCores < 0.85,
          webhookRssMB: mem.rss,
        };
      }
    } finally {
      for (const t of targets) await stopServer(t.server);
    }
    if (CFG.profile && withProduct) {
      const profiles = readdirSync(profileDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort();
      const latest = profiles[profiles.length - 1];
      if (latest) {
        const h = hotspots(JSON.parse(readFileSync(join(profileDir, latest), 'utf8')), 15);
        result.profile = {
          file: join('bench/profiles', latest),
          busyCpuSec: Number((h.total / 1e6).toFixed(2)),
          areas: h.areas,
          functions: h.functions,
        };
        log(
          `profile ${latest}: ${h.areas
            .slice(0, 8)
            .map((a) => `${a.name} ${a.selfPct}%`)
            .join(', ')}`,
        );
      } else {
        log('no .cpuprofile was written (the webhook did not exit cleanly?)');
      }
    }
  } finally {
    // Also when starting the second server failed: nothing the bench started outlives it.
    for (const t of targets) await stopServer(t.server);
    rmSync(work, { recursive: true, force: true });
  }
  writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench webhook] FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
