// Open-loop load for bench and soak: requests are started at a fixed offered rate whatever the answers do, so a stall
// shows up as latency (or as requests piling up), not as a politely slower client. The i-th request is due at
// start + i / rate (uniform spacing, as wrk2 does); a tick that comes late starts every request due by then at once,
// so the count offered never falls behind the schedule. What a request is, and how it is sent, is the caller's.

export interface Pace {
  /** Offered requests per second. */
  rate: number;
  /** How long to offer them: round(rate × seconds) requests in all. */
  seconds: number;
  /** Checked at every tick: true ends the offering early. */
  stop?: () => boolean;
  /**
   * Milliseconds between ticks. 0 spins on setImmediate: send times exact to the microsecond, at the cost of a busy
   * core (the bench's load generator has one of its own); a few ms suits a generator that shares the machine.
   */
  tickMs: number;
  /** After the offering ended, how long to wait for started requests to settle before giving up on them. */
  settleMs?: number;
}

export interface Offered {
  /** Requests started. */
  offered: number;
  /** Of those, settled (resolved or rejected) before the loop returned. */
  settled: number;
  /** From the first request's due time to the return. */
  elapsedSec: number;
}

/**
 * Calls `start(i, dueNs)` for each request in order, `dueNs` being its due time on process.hrtime.bigint()'s clock
 * (measure latency from it, and a request delayed behind a stall is charged the stall). Resolves once the offering
 * ended and every started request settled, or `settleMs` passed.
 */
export async function openLoop(
  pace: Pace,
  start: (i: number, dueNs: bigint) => Promise<unknown> | void,
): Promise<Offered> {
  const total = Math.max(1, Math.round(pace.rate * pace.seconds));
  const intervalNs = 1e9 / pace.rate;
  const pending = new Set<Promise<unknown>>();
  let offered = 0;
  let settled = 0;
  const startNs = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      if (pace.stop?.()) return resolve();
      const due = Math.min(total, Math.floor(Number(process.hrtime.bigint() - startNs) / intervalNs) + 1);
      while (offered < due) {
        const i = offered++;
        const p = start(i, startNs + BigInt(Math.round(i * intervalNs)));
        if (p) {
          const tracked: Promise<unknown> = p.then(
            () => undefined,
            () => undefined,
          );
          pending.add(tracked);
          void tracked.then(() => {
            pending.delete(tracked);
            settled++;
          });
        } else settled++;
      }
      if (offered >= total) return resolve();
      if (pace.tickMs > 0) setTimeout(tick, pace.tickMs);
      else setImmediate(tick);
    };
    tick();
  });
  if (pending.size > 0) {
    let timer: NodeJS.Timeout | undefined;
    const bound =
      pace.settleMs === undefined
        ? new Promise<void>(() => {})
        : new Promise<void>((r) => (timer = setTimeout(r, pace.settleMs)));
    await Promise.race([Promise.all(pending), bound]);
    clearTimeout(timer);
  }
  return { offered, settled, elapsedSec: Number(process.hrtime.bigint() - startNs) / 1e9 };
}
