// Webhook half of `npm run bench`: the shipped webhook against its floor, same certificate, connections and payloads.
// Usage: node webhook-bench.js --out FILE [--floor-only]. Run it pinned to the load generator's CPU (bench/run.sh does);
// the servers are pinned to ASM_BENCH_SERVER_CPU.
import autocannon from 'autocannon';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCerts, type BenchCerts } from './certs.js';
import { buildReviewPayloads, type ReviewPayload } from './fixtures.js';
import { answerMatches, runOpenLoop } from './openloop.js';
import { cpuSeconds, freePort, memoryMB, startServer, stopServer, waitReady, type Server } from './proc.js';
import { percentileCurve, ratio, summarize, type Summary } from './stats.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const env = (k: string, d: string): string => process.env[k] ?? d;
const CFG = {
  connections: Number(env('ASM_BENCH_CONNECTIONS', '16')),
  warmupSec: Number(env('ASM_BENCH_WARMUP_SEC', '3')),
  maxSec: Number(env('ASM_BENCH_MAX_SEC', '10')),
  rateSec: Number(env('ASM_BENCH_RATE_SEC', '10')),
  rssReviews: Number(env('ASM_BENCH_RSS_REVIEWS', '100000')),
  serverCpu: process.env.ASM_BENCH_SERVER_CPU ?? '1',
  path: env('ASM_BENCH_WEBHOOK_PATH', '/mutate?timeout=10s'),
  profile: process.env.ASM_BENCH_PROFILE === '1',
};

export interface MaxResult {
  reqPerSec: number;
  requests: number;
  durationSec: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  /** CPU the server used during the run, in cores (1.0 = the whole pinned CPU: the server, not the client, is the limit). */
  serverCpuCores: number;
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

export interface TargetResult {
  max: MaxResult;
  rate: RateResult;
}

function log(msg: string): void {
  process.stderr.write(`[bench webhook] ${msg}\n`);
}

async function maxThroughput(server: Server, payloads: readonly ReviewPayload[], durationSec: number, amount?: number): Promise<MaxResult> {
  const requests = payloads.map((p) => ({ method: 'POST', path: CFG.path, headers: { 'content-type': 'application/json' }, body: p.body }));
  const cpu0 = cpuSeconds(server.pid);
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
  const ok = r['2xx'];
  return {
    reqPerSec: Math.round(ok / r.duration),
    requests: ok,
    durationSec: r.duration,
    errors: r.errors + r.timeouts + r.non2xx,
    non2xx: r.non2xx,
    timeouts: r.timeouts,
    serverCpuCores: Number((cpu / r.duration).toFixed(2)),
    autocannonLatencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
  };
}

async function fixedRate(server: Server, certs: BenchCerts, payloads: readonly ReviewPayload[], rate: number, verify: 'uid' | 'patch'): Promise<RateResult> {
  const cpu0 = cpuSeconds(server.pid);
  const r = await runOpenLoop({
    host: '127.0.0.1', port: server.port, path: CFG.path, ca: certs.ca, connections: CFG.connections,
    rate, durationSec: CFG.rateSec, payloads, verify,
  });
  const cpu = cpuSeconds(server.pid) - cpu0;
  const ms = Float64Array.from(r.latencyUs, (v) => v / 1000);
  return {
    offeredRate: rate,
    achievedRate: Math.round(r.completed / r.elapsedSec),
    completed: r.completed,
    errors: r.non2xx + r.connErrors,
    mismatches: r.mismatches,
    latencyMs: summarize(ms),
    curveMs: percentileCurve(ms).map(([q, v]) => [q, Number(v.toFixed(3))]),
    serverCpuCores: Number((cpu / r.elapsedSec).toFixed(2)),
  };
}

/** One review of each shape, checked before any load: the run measures the paths it claims to (patched and skipped). */
async function sanityCheck(server: Server, certs: BenchCerts, payloads: readonly ReviewPayload[], verify: 'uid' | 'patch'): Promise<void> {
  const seen = new Set<string>();
  for (const p of payloads) {
    if (seen.has(p.shape)) continue;
    seen.add(p.shape);
    const text = await waitReady(server, CFG.path, certs.ca, p.body, 5000);
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
    for (const m of text.matchAll(/^asm_cni_webhook_reviews_total\{([^}]*)\}\s+([0-9.e+]+)/gm)) out[m[1]!] = Number(m[2]);
  } catch (e) {
    out.error = NaN;
    log(`metrics scrape failed: ${String(e)}`);
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, 'floor-only': { type: 'boolean', default: false } } });
  if (!values.out) throw new Error('webhook-bench: --out FILE is required');
  const work = mkdtempSync(join(tmpdir(), 'asm-cni-bench-webhook-'));
  const certs = generateCerts(work);
  const payloads = buildReviewPayloads(100);
  const webhookCli = join(ROOT, 'dist/webhook/cli.js');
  const withProduct = !values['floor-only'] && existsSync(webhookCli);
  if (!withProduct) log(values['floor-only'] ? 'floor only (--floor-only)' : `floor only: ${webhookCli} is not built`);
  const result: Record<string, unknown> = {
    config: { ...CFG, payloadsPerShape: 100, shapes: ['classic', 'native', 'skipped'], bodyBytes: payloads.slice(0, 3).map((p) => Buffer.byteLength(p.body)) },
  };

  try {
    // (b) the floor first: its maximum sets the offered rate of both latency runs.
    const floorPort = await freePort();
    const floor = startServer('floor', [process.execPath, join(import.meta.dirname, 'floor-webhook.js'), '--port', String(floorPort),
      '--cert', certs.certFile, '--key', certs.keyFile], { cpu: CFG.serverCpu, logFile: join(work, 'floor.log'), port: floorPort });
    let floorResult: TargetResult;
    try {
      await waitReady(floor, CFG.path, certs.ca, payloads[2]!.body);
      await sanityCheck(floor, certs, payloads, 'uid');
      log(`floor: warm-up ${CFG.warmupSec}s`);
      await maxThroughput(floor, payloads, CFG.warmupSec);
      const max = await maxThroughput(floor, payloads, CFG.maxSec);
      log(`floor: max ${max.reqPerSec} req/s (server CPU ${max.serverCpuCores})`);
      const rate = await fixedRate(floor, certs, payloads, Math.max(1, Math.round(max.reqPerSec / 2)), 'uid');
      log(`floor: at ${rate.offeredRate} req/s p50 ${rate.latencyMs.p50} ms p99 ${rate.latencyMs.p99} ms`);
      floorResult = { max, rate };
    } finally {
      await stopServer(floor);
    }
    result.floor = floorResult;

    if (withProduct) {
      // (a) the webhook as shipped: built JS, production mode, default (info) log level, logs to a file like a container's.
      const port = await freePort();
      const metricsPort = await freePort();
      const configFile = join(work, 'config.yaml');
      writeFileSync(configFile, 'logLevel: info\n');
      const profileDir = join(ROOT, 'bench/profiles');
      if (CFG.profile) mkdirSync(profileDir, { recursive: true });
      const nodeArgs = CFG.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
      const cmd = [process.execPath, ...nodeArgs, webhookCli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--metrics-port',
        String(metricsPort), '--cert', certs.certFile, '--key', certs.keyFile, '--config', configFile];
      const logFile = join(work, 'webhook.log');
      const server = startServer('webhook', cmd, {
        cpu: CFG.serverCpu, logFile, port, env: { ...process.env, NODE_ENV: 'production' },
      });
      try {
        await waitReady(server, CFG.path, certs.ca, payloads[2]!.body);
        await sanityCheck(server, certs, payloads, 'patch');
        const rssStart = memoryMB(server.pid);
        log(`webhook: warm-up ${CFG.warmupSec}s`);
        const warm = await maxThroughput(server, payloads, CFG.warmupSec);
        const max = await maxThroughput(server, payloads, CFG.maxSec);
        log(`webhook: max ${max.reqPerSec} req/s (server CPU ${max.serverCpuCores})`);
        const rate = await fixedRate(server, certs, payloads, floorResult.rate.offeredRate, 'patch');
        log(`webhook: at ${rate.offeredRate} req/s p50 ${rate.latencyMs.p50} ms p99 ${rate.latencyMs.p99} ms`);
        const served = 3 + warm.requests + warm.errors + max.requests + max.errors + rate.completed + rate.errors;
        const topUp = Math.max(0, CFG.rssReviews - served);
        log(`webhook: ${topUp} more reviews to reach ${CFG.rssReviews}`);
        const top = topUp > 0 ? await maxThroughput(server, payloads, 0, topUp) : null;
        const reviews = served + (top ? top.requests + top.errors : 0);
        const mem = memoryMB(server.pid);
        const metrics = await scrapeMetrics(metricsPort);
        const errors = warm.errors + max.errors + rate.errors + rate.mismatches + (top?.errors ?? 0);
        result.webhook = {
          max, rate, warmupErrors: warm.errors, topUpErrors: top?.errors ?? 0,
          memory: { reviews, rssStartMB: rssStart.rssMB, rssMB: mem.rssMB, peakMB: mem.peakMB },
          errors, metrics, logBytes: statSync(logFile).size,
        } satisfies TargetResult & Record<string, unknown>;
        result.ratios = {
          webhookThroughputRatio: ratio(max.reqPerSec, floorResult.max.reqPerSec),
          webhookP99Ratio: ratio(rate.latencyMs.p99, floorResult.rate.latencyMs.p99),
          webhookP50Ratio: ratio(rate.latencyMs.p50, floorResult.rate.latencyMs.p50),
          webhookRssMB: mem.rssMB,
        };
      } finally {
        await stopServer(server);
      }
      if (CFG.profile) {
        const profiles = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile')).sort();
        result.profile = profiles.length ? join('bench/profiles', profiles[profiles.length - 1]!) : null;
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench webhook] FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
