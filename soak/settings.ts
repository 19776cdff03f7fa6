// Every knob of the soak, from the environment, with the defaults `npm run soak` uses.
import { webhookDeploymentLimits, webhookTimeoutSeconds } from './lib/deployment.js';

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
};

export interface Settings {
  suites: string[];
  /** reviews/s for the sustained load; 0 = measure capacity and use half */
  rate: number;
  /** cap on the measured half-capacity rate (see docs/reliability.md) */
  maxRate: number;
  capacitySeconds: number;
  capacityConcurrency: number;
  loadSeconds: number;
  minLoadSeconds: number;
  loadSockets: number;
  p99BoundMs: number;
  /** the webhook's timeoutSeconds: no review may take longer (the API server would have given up) */
  maxBoundMs: number;
  rssBoundMiB: number;
  rotationBoundMs: number;
  reloadBoundMs: number;
  shutdownBoundMs: number;
  abuseSeconds: number;
  abuseRate: number;
  abuseP99BoundMs: number;
  slowClients: number;
  slowCloseBoundMs: number;
  idleConnections: number;
  pods: number;
  apiTimeout: string;
  installerKills: number;
  installerLanes: number;
  burstWrites: number;
  quietMs: number;
  largeReviewBytes: number;
  largeConcurrency: number;
  largeRounds: number;
  /** how long a large review may be retried after 429s before it counts as unanswered */
  largeDeadlineMs: number;
  craftedBytes: number;
  craftedRounds: number;
  craftedRatioBound: number;
}

export const ALL_SUITES = ['webhook-load', 'webhook-abuse', 'webhook-large', 'webhook-tls', 'plugin', 'installer'];

let cached: Settings | undefined;
export function settings(): Settings {
  if (cached) return cached;
  const suites = (process.env.SOAK_SUITES ?? ALL_SUITES.join(','))
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const x of suites)
    if (!ALL_SUITES.includes(x)) throw new Error(`SOAK_SUITES: unknown suite ${x} (known: ${ALL_SUITES.join(', ')})`);
  const loadSeconds = num('SOAK_LOAD_SECONDS', 130);
  cached = {
    suites,
    rate: num('SOAK_RATE', 0),
    maxRate: num('SOAK_MAX_RATE', 500),
    capacitySeconds: num('SOAK_CAPACITY_SECONDS', 8),
    capacityConcurrency: num('SOAK_CAPACITY_CONCURRENCY', 16),
    loadSeconds,
    minLoadSeconds: Math.min(120, loadSeconds),
    loadSockets: num('SOAK_LOAD_SOCKETS', 16),
    // half of the shortest timeoutSeconds in manifests/base/mutating-webhook.yaml (3 s there), else 1 s
    p99BoundMs: num('SOAK_P99_BOUND_MS', ((webhookTimeoutSeconds() ?? 2) * 1000) / 2),
    maxBoundMs: num('SOAK_MAX_BOUND_MS', (webhookTimeoutSeconds() ?? 10) * 1000),
    // the webhook Deployment's memory limit (manifests/base/webhook-deployment.yaml), else 384 MiB
    rssBoundMiB: num('SOAK_RSS_BOUND_MIB', Math.round(webhookDeploymentLimits().memoryLimitMiB ?? 384)),
    rotationBoundMs: num('SOAK_ROTATION_BOUND_MS', 10_000),
    reloadBoundMs: num('SOAK_RELOAD_BOUND_MS', 5_000),
    shutdownBoundMs: num('SOAK_SHUTDOWN_BOUND_MS', 30_000),
    abuseSeconds: num('SOAK_ABUSE_SECONDS', 40),
    abuseRate: num('SOAK_ABUSE_RATE', 50),
    abuseP99BoundMs: num('SOAK_ABUSE_P99_BOUND_MS', 2000),
    slowClients: num('SOAK_SLOW_CLIENTS', 50),
    // headersTimeout/requestTimeout are enforced by node's connection sweep (every 30 s), so allow that on top
    slowCloseBoundMs: num('SOAK_SLOW_CLOSE_BOUND_MS', 70_000),
    idleConnections: num('SOAK_IDLE_CONNECTIONS', 1000),
    pods: num('SOAK_PODS', 50),
    apiTimeout: process.env.SOAK_API_TIMEOUT ?? '2s',
    installerKills: num('SOAK_INSTALLER_KILLS', 50),
    installerLanes: num('SOAK_INSTALLER_LANES', 5),
    burstWrites: num('SOAK_BURST_WRITES', 100),
    // longer than the installer's default resync interval (5 s), so a resync that rewrites would show
    quietMs: num('SOAK_QUIET_MS', 7000),
    // issue 11: 2.9 MB reviews, 32 at a time, the big istio-init env copied back by the patch
    largeReviewBytes: num('SOAK_LARGE_REVIEW_BYTES', 2_900_000),
    largeConcurrency: num('SOAK_LARGE_CONCURRENCY', 32),
    largeRounds: num('SOAK_LARGE_ROUNDS', 3),
    largeDeadlineMs: num('SOAK_LARGE_DEADLINE_MS', 120_000),
    craftedBytes: num('SOAK_CRAFTED_BYTES', 3_000_000),
    craftedRounds: num('SOAK_CRAFTED_ROUNDS', 5),
    // generous: the crafted review is expected to be cheaper (not rewritten); before the fix it was minutes
    craftedRatioBound: num('SOAK_CRAFTED_RATIO_BOUND', 5),
  };
  return cached;
}
