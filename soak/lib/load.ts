// Load generation against /mutate: a closed loop to measure capacity, and an open loop (fixed arrival rate) for the
// sustained run. Every answer is checked: 200, an admission.k8s.io/v1 AdmissionReview echoing our uid, and the same
// decision and patch the same pod got at baseline (so a reload or a restart can not silently change answers).
import { AdmissionClient } from './client.js';
import { body, newUid, type ReviewTemplate } from './reviews.js';
import { summarize, type LatencySummary } from './stats.js';
import { openLoop as paceOpenLoop } from '../../test/harness/open-loop.js';

export interface Verdict {
  ok: boolean;
  signature?: string;
  problem?: string;
}

/** Checks an AdmissionReview response and reduces it to what must stay stable for the same input. */
export function judge(status: number, text: string, uid: string): Verdict {
  if (status !== 200) return { ok: false, problem: `HTTP ${status}${text ? `: ${text.slice(0, 120)}` : ''}` };
  let r: any;
  try {
    r = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'answer is not JSON' };
  }
  if (r?.apiVersion !== 'admission.k8s.io/v1' || r?.kind !== 'AdmissionReview')
    return { ok: false, problem: 'answer is not an admission.k8s.io/v1 AdmissionReview' };
  const resp = r.response;
  if (!resp || resp.uid !== uid) return { ok: false, problem: `uid not echoed (sent ${uid}, got ${resp?.uid})` };
  if (typeof resp.allowed !== 'boolean') return { ok: false, problem: 'response.allowed missing' };
  return {
    ok: true,
    signature: JSON.stringify([resp.allowed, resp.patchType ?? null, resp.patch ?? null, resp.status?.code ?? null]),
  };
}

export interface LoadStats {
  sent: number;
  answered: number;
  failed: number;
  /** answers that were valid but differ from the baseline answer for the same pod */
  mismatched: number;
  /** calls that needed at least one connection-level retry (and then got answered or failed) */
  retried: number;
  retryCauses: Record<string, number>;
  failures: Record<string, number>;
  latency: LatencySummary;
  seconds: number;
  rate: number;
  /** most requests outstanding at once */
  maxInFlight: number;
  /** seconds whose worst latency was over 250 ms: [second, answered, worst ms] */
  slowSeconds: Array<[number, number, number]>;
}

export class Baseline {
  private readonly sig = new Map<ReviewTemplate, string>();
  constructor(readonly templates: ReviewTemplate[]) {}

  async take(client: AdmissionClient): Promise<void> {
    for (const t of this.templates) {
      const uid = newUid();
      const r = await client.call('/mutate', body(t, uid));
      const v = judge(r.status, r.body, uid);
      if (!v.ok) throw new Error(`baseline review of ${t.source} failed: ${v.problem ?? r.error}`);
      this.sig.set(t, v.signature!);
    }
  }

  expected(t: ReviewTemplate): string | undefined {
    return this.sig.get(t);
  }
}

export class Recorder {
  sent = 0;
  answered = 0;
  failed = 0;
  mismatched = 0;
  retried = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly latencies: number[] = [];
  readonly retryCauses: Record<string, number> = {};
  readonly failures: Record<string, number> = {};
  readonly started = performance.now();
  /** per second of the run (by send time): [answered, worst latency ms], to see when a stall happened */
  readonly timeline: Array<[number, number]> = [];

  constructor(private readonly baseline?: Baseline) {}

  async one(client: AdmissionClient, t: ReviewTemplate, deadlineMs = 10_000): Promise<boolean> {
    const uid = newUid();
    const second = Math.floor((performance.now() - this.started) / 1000);
    this.sent++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const r = await client.call('/mutate', body(t, uid), deadlineMs);
      if (r.retries > 0) {
        this.retried++;
        for (const c of r.retryCauses) bump(this.retryCauses, c.split(':', 1)[0]!);
      }
      const v = r.status === 0 ? { ok: false, problem: r.error ?? 'no answer' } : judge(r.status, r.body, uid);
      if (!v.ok) {
        this.failed++;
        bump(this.failures, (v.problem ?? 'unknown').slice(0, 80));
        return false;
      }
      this.answered++;
      this.latencies.push(r.ms);
      const slot = (this.timeline[second] ??= [0, 0]);
      slot[0]++;
      slot[1] = Math.max(slot[1], Math.round(r.ms));
      const want = this.baseline?.expected(t);
      if (want !== undefined && want !== v.signature) this.mismatched++;
      return true;
    } finally {
      this.inFlight--;
    }
  }

  stats(rate = 0): LoadStats {
    return {
      sent: this.sent,
      answered: this.answered,
      failed: this.failed,
      mismatched: this.mismatched,
      retried: this.retried,
      retryCauses: this.retryCauses,
      failures: this.failures,
      latency: summarize(this.latencies),
      seconds: Math.round((performance.now() - this.started) / 100) / 10,
      rate,
      maxInFlight: this.maxInFlight,
      slowSeconds: this.timeline.flatMap((v, i) =>
        v && v[1] > 250 ? [[i, v[0], v[1]] as [number, number, number]] : [],
      ),
    };
  }
}

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

/** Closed loop: `concurrency` workers back to back for `seconds`; returns answered reviews per second. */
export async function measureCapacity(
  client: AdmissionClient,
  templates: ReviewTemplate[],
  seconds: number,
  concurrency: number,
): Promise<{ perSecond: number; stats: LoadStats }> {
  const rec = new Recorder();
  const until = performance.now() + seconds * 1000;
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) await rec.one(client, templates[i++ % templates.length]!);
    }),
  );
  const elapsed = (performance.now() - rec.started) / 1000;
  return { perSecond: rec.answered / elapsed, stats: rec.stats() };
}

/**
 * Open loop: starts reviews at `rate` per second for `seconds` (the harness's pacing, test/harness/open-loop.ts),
 * whatever the answers do. Resolves when every started review has finished (each has its own deadline).
 */
export async function openLoop(
  client: AdmissionClient,
  templates: ReviewTemplate[],
  rate: number,
  seconds: number,
  rec: Recorder,
  stop?: () => boolean,
): Promise<void> {
  // Ticks every 5 ms: the soak's generator shares the machine with the webhook it loads, so it must not spin.
  await paceOpenLoop({ rate, seconds, tickMs: 5, ...(stop ? { stop } : {}) }, (i) =>
    rec.one(client, templates[i % templates.length]!),
  );
}
