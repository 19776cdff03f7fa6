// The bound on work in flight: review bytes being received, decided and answered at once. Each review costs memory
// several times its size (body buffer, the text, the parsed object, the patch and its base64, the TLS write), and
// nothing else limits how many arrive together, so a burst of large reviews could otherwise exceed the container's
// memory limit. A review over the budget is refused before any of its body is read.

/** The bytes a review reserves: what it declares (Content-Length), or the body limit when it declares nothing. */
export function reservedBytes(contentLength: string | undefined, bodyLimit: number): number {
  const declared = contentLength === undefined ? NaN : Number(contentLength);
  return Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, bodyLimit) : bodyLimit;
}

export class InFlightBudget {
  private used = 0;
  private count = 0;

  constructor(readonly limitBytes: number) {}

  /**
   * Reserves `bytes` for one review; false when that would take the total over the limit. A review is always let
   * through when nothing else is in flight, so a limit below the body limit slows large reviews down to one at a
   * time instead of refusing them for ever.
   */
  tryReserve(bytes: number): boolean {
    if (this.count > 0 && this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    this.count++;
    return true;
  }

  release(bytes: number): void {
    this.used -= bytes;
    this.count--;
  }

  /** Bytes reserved by reviews in flight now. */
  get bytes(): number {
    return this.used;
  }

  /** Reviews in flight now. */
  get reviews(): number {
    return this.count;
  }
}
