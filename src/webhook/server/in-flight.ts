// The bound on work in flight: review bytes being received, decided and answered at once. Each review costs memory
// several times its size (body buffer, the text, the parsed object, the patch and its base64, the TLS write), and
// nothing else limits how many arrive together, so a burst of large reviews could otherwise exceed the container's
// memory limit. A review that does not fit waits, briefly and in order, with its body unread: Node stops reading a
// connection whose request is not consumed, so a waiting review costs a socket buffer, not its size. One that still
// does not fit is refused (429) without its body ever being read.

/**
 * The bytes a review reserves: what it declares (Content-Length). Nothing for a declaration over the body limit:
 * Fastify refuses that body (413) before reading it, and it must not wait for, or take, room it will never use.
 * Bodies without a declared length are refused before this (411), so none is unbounded.
 */
export function reservedBytes(contentLength: string | undefined, bodyLimit: number): number {
  const declared = contentLength === undefined ? 0 : Number(contentLength);
  if (!Number.isSafeInteger(declared) || declared < 0) return bodyLimit;
  return declared > bodyLimit ? 0 : declared;
}

interface Waiter {
  bytes: number;
  grant: (granted: boolean) => void;
}

export class InFlightBudget {
  private used = 0;
  private count = 0;
  private readonly waiters: Waiter[] = [];

  /**
   * @param limitBytes review bytes in flight at once
   * @param maxWaiters reviews that may wait for room at once; more are refused at once
   */
  constructor(
    readonly limitBytes: number,
    readonly maxWaiters = 64,
  ) {}

  /**
   * Room for one more review of `bytes`. A review is always let through when nothing else is in flight, so a limit
   * below the body limit slows large reviews down to one at a time instead of refusing them for ever.
   */
  private fits(bytes: number): boolean {
    return this.count === 0 || this.used + bytes <= this.limitBytes;
  }

  /** Reserves `bytes` now, or not at all (reviews already waiting go first). */
  tryReserve(bytes: number): boolean {
    if (this.waiters.length > 0 || !this.fits(bytes)) return false;
    this.used += bytes;
    this.count++;
    return true;
  }

  /** Reserves `bytes`, waiting up to `waitMs` for room in arrival order; false when there was none in time. */
  acquire(bytes: number, waitMs: number): Promise<boolean> {
    if (this.tryReserve(bytes)) return Promise.resolve(true);
    if (waitMs <= 0 || this.waiters.length >= this.maxWaiters) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        bytes,
        grant: (granted) => {
          clearTimeout(timer);
          resolve(granted);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(false);
        // the next in line may fit where this one did not
        this.grantWaiting();
      }, waitMs);
      this.waiters.push(waiter);
    });
  }

  release(bytes: number): void {
    this.used -= bytes;
    this.count--;
    this.grantWaiting();
  }

  private grantWaiting(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const next = this.waiters.shift()!;
      this.used += next.bytes;
      this.count++;
      next.grant(true);
    }
  }

  /** Bytes reserved by reviews in flight now. */
  get bytes(): number {
    return this.used;
  }

  /** Reviews in flight now. */
  get reviews(): number {
    return this.count;
  }

  /** Reviews waiting for room now. */
  get waiting(): number {
    return this.waiters.length;
  }
}
