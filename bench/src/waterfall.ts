// The webhook's CPU waterfall (docs/bench.md): server CPU per review from the floor to the shipped webhook, one piece
// added per step, every step its own server process under the same fixed-rate load in the same run. Each step's row
// is its CPU per review and its delta to the step before. The steps' servers: the floor (floor-webhook.ts), the steps
// of waterfall-server.ts, and the shipped webhook.

/** The steps served by waterfall-server.ts, in the order they add up. */
export const SERVER_STEPS = ['fastify', 'serving', 'admit', 'encode', 'log', 'metrics'] as const;
export type ServerStep = (typeof SERVER_STEPS)[number];

export type WaterfallStep = 'floor' | 'flags' | ServerStep | 'shipped';

/** Every step in order, with what it adds to the one before. */
export const WATERFALL: ReadonlyArray<{ step: WaterfallStep; adds: string }> = [
  { step: 'floor', adds: 'the floor: node:https, JSON.parse, the precomputed answer' },
  { step: 'flags', adds: "the Deployment's V8 flags (NODE_OPTIONS), still the floor's code" },
  { step: 'fastify', adds: "a minimal Fastify app with the product's TLS options and JSON parser" },
  { step: 'serving', adds: "the product's serving setup (buildApp), admit() stubbed, the answer precomputed" },
  { step: 'admit', adds: 'the real admit()' },
  { step: 'encode', adds: 'encoding of the answer (encodeReview)' },
  { step: 'log', adds: 'the review log line (pino, info)' },
  { step: 'metrics', adds: 'metrics (prom-client, default metrics on)' },
  { step: 'shipped', adds: 'the rest of the shipped server (`asm-cni-webhook serve`)' },
];

export interface StepMeasure {
  step: WaterfallStep;
  /** Server CPU per answered review in each measured round, all threads (µs). */
  rounds: number[];
  /** Reviews answered in the measured rounds. */
  reviews: number;
  /** Transport errors, non-2xx and wrong answers, warm-up included. */
  errors: number;
}

export interface WaterfallRow {
  step: WaterfallStep;
  adds: string;
  /** Server CPU per review (µs): the median over the rounds, so one round disturbed by other work does not count. */
  cpuUsPerReview: number;
  /** Each round's, to judge the spread. */
  roundsUs: number[];
  /** Minus the step before (µs); the floor's is its own cost. */
  deltaUs: number;
  reviews: number;
  errors: number;
}

const us = (v: number): number => Number(v.toFixed(1));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** Rows in WATERFALL order; a step without a measurement is left out and the next one's delta spans the gap. */
export function waterfallRows(measured: readonly StepMeasure[]): WaterfallRow[] {
  const rows: WaterfallRow[] = [];
  let before = 0;
  for (const { step, adds } of WATERFALL) {
    const m = measured.find((x) => x.step === step);
    if (!m || m.rounds.length === 0) continue;
    const cpu = median(m.rounds);
    rows.push({
      step,
      adds,
      cpuUsPerReview: us(cpu),
      roundsUs: m.rounds.map(us),
      deltaUs: us(cpu - before),
      reviews: m.reviews,
      errors: m.errors,
    });
    before = cpu;
  }
  return rows;
}
