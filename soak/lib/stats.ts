// Latency figures from raw samples (milliseconds). Samples are few enough (< 10^6) to sort.
import { poll, type Probe } from '../../test/harness/wait.js';
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(samples: number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0);
  return {
    count: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: round(sorted[sorted.length - 1] ?? 0),
  };
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export { sleep } from '../../test/harness/wait.js';

/** The soak's form of poll(): the probe's truthy answer, or undefined once timeoutMs passed. */
export const waitFor = <T>(probe: Probe<T>, timeoutMs: number, everyMs = 50): Promise<T | undefined> =>
  poll(probe, { timeoutMs, intervalMs: everyMs });
