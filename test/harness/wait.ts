// Waiting for an event in tests, the harness, bench and soak: poll a probe until it answers, with a deadline that
// only catches a hang. No test asserts how fast something happened; a busy machine only makes a wait longer.
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The default deadline: long enough that reaching it means a hang, not a slow machine. */
export const HANG_MS = 60_000;

export type Probe<T> = () => Promise<T | undefined | null | false> | T | undefined | null | false;

export interface WaitOptions {
  /** Give up after this long (default HANG_MS). */
  timeoutMs?: number;
  /** Pause between probes (default 50 ms). */
  intervalMs?: number;
  /** Checked before each probe: a reason to stop early (e.g. the process being waited for has exited). */
  abort?: () => string | undefined;
}

/**
 * Probes until it returns a truthy value (returned) or the deadline passes (undefined). A probe that throws has not
 * answered yet; its last error is passed to onGiveUp.
 */
export async function poll<T>(
  probe: Probe<T>,
  opts: WaitOptions = {},
  onGiveUp?: (lastError: string, reason: 'timeout' | 'abort', abortReason?: string) => void,
): Promise<T | undefined> {
  const deadline = Date.now() + (opts.timeoutMs ?? HANG_MS);
  let last = '';
  for (;;) {
    const aborted = opts.abort?.();
    if (aborted) {
      onGiveUp?.(last, 'abort', aborted);
      return undefined;
    }
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      onGiveUp?.(last, 'timeout');
      return undefined;
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

/** Like poll(), but a deadline or an abort throws, naming what was waited for and the probe's last error. */
export async function waitFor<T>(what: string, probe: Probe<T>, opts: WaitOptions = {}): Promise<T> {
  let failure = '';
  const v = await poll(probe, opts, (last, reason, abortReason) => {
    failure =
      reason === 'abort'
        ? `${what}: ${abortReason}`
        : `timed out waiting for ${what} (${opts.timeoutMs ?? HANG_MS} ms)${last ? ` (last error: ${last})` : ''}`;
  });
  if (v === undefined) throw new Error(failure);
  return v;
}

/** waitFor() for a unit test's condition: `await eventually(() => thing.done)`. */
export const eventually = <T>(probe: Probe<T>, timeoutMs = HANG_MS): Promise<T> =>
  waitFor('a condition', probe, { timeoutMs });
