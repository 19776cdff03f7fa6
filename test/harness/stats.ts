// Order statistics over latency samples, for bench and soak. Nearest-rank percentiles: every reported figure is a
// latency that was observed.

export interface Summary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function sorted(samples: ArrayLike<number>): Float64Array {
  return Float64Array.from(samples).sort();
}

/** Nearest-rank percentile (q in 0..100) of an ascending array. */
export function percentile(asc: Float64Array, q: number): number {
  if (asc.length === 0) return NaN;
  const rank = Math.ceil((q / 100) * asc.length);
  return asc[Math.min(asc.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: ArrayLike<number>, digits = 3): Summary {
  const asc = sorted(samples);
  const round = (v: number): number => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);
  let sum = 0;
  for (const v of asc) sum += v;
  return {
    count: asc.length,
    min: round(asc[0] ?? NaN),
    p50: round(percentile(asc, 50)),
    p90: round(percentile(asc, 90)),
    p95: round(percentile(asc, 95)),
    p99: round(percentile(asc, 99)),
    max: round(asc[asc.length - 1] ?? NaN),
    mean: round(asc.length ? sum / asc.length : NaN),
  };
}

/** Percentile curve points (q, value) for the chart: dense in the tail, where latency distributions differ. */
export function percentileCurve(samples: ArrayLike<number>): Array<[number, number]> {
  const asc = sorted(samples);
  const qs: number[] = [];
  for (let q = 0; q <= 90; q += 2) qs.push(q);
  for (let q = 91; q <= 99; q += 1) qs.push(q);
  qs.push(99.5, 99.9, 100);
  return qs.map((q) => [q, q === 0 ? asc[0]! : percentile(asc, q)]);
}

export function ratio(ours: number, floor: number, digits = 3): number {
  return Number((ours / floor).toFixed(digits));
}

/** n rounded to `digits` decimals, for figures in reports. */
export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
