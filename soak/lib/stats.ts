// The soak's latency figures (milliseconds, one decimal) and waits, on the harness's statistics and polling.
import { summarize as summarizeAll, round } from '../../test/harness/stats.js';
import { poll, type Probe } from '../../test/harness/wait.js';

export { round };
export { sleep } from '../../test/harness/wait.js';

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(samples: number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const { count, p50, p90, p99, max } = summarizeAll(samples, 1);
  return { count, p50, p90, p99, max };
}

/** The soak's form of poll(): the probe's truthy answer, or undefined once timeoutMs passed. */
export const waitFor = <T>(probe: Probe<T>, timeoutMs: number, everyMs = 50): Promise<T | undefined> =>
  poll(probe, { timeoutMs, intervalMs: everyMs });
