// The skip policy of every TypeScript test tier: locally a missing prerequisite skips with a printed reason;
// under CI=true it is a failure, never a skip.
import type { Test } from 'tap';

export const inCI = (): boolean => process.env.CI === 'true';

/** Returns true when the test may go on. Otherwise skips (locally) or fails (CI) naming what is missing. */
export function requirePrereq(t: Test, ok: boolean, reason: string): boolean {
  if (ok) return true;
  if (inCI()) t.fail(`prerequisite missing under CI=true: ${reason}`);
  else t.skip(`skipped: ${reason}`, async () => {}); // a visibly skipped subtest carrying the reason
  return false;
}

export const isRoot = (): boolean => typeof process.geteuid === 'function' && process.geteuid() === 0;
