// Collects the soak checks: one line per check on stdout, all of them in bench/soak.json at the end.
export type Figures = Record<string, unknown>;

export interface Check {
  id: string;
  /** true = passed, false = failed, null = not run (the reason is in `summary`). */
  ok: boolean | null;
  summary: string;
  figures: Figures;
  seconds: number;
}

export class Report {
  readonly checks: Check[] = [];
  readonly startedAt = new Date();

  add(id: string, ok: boolean | null, summary: string, figures: Figures = {}, seconds = 0): Check {
    const check: Check = { id, ok, summary, figures, seconds: Math.round(seconds * 10) / 10 };
    this.checks.push(check);
    const tag = ok === null ? 'SKIP' : ok ? 'PASS' : 'FAIL';
    console.log(`soak ${tag} ${id}: ${summary}`);
    return check;
  }

  /** Runs one check body; a thrown error becomes a failed check instead of ending the suite. */
  async run(id: string, body: () => Promise<{ ok: boolean; summary: string; figures?: Figures }>): Promise<Check> {
    const started = performance.now();
    console.log(`soak ---- ${id} ...`);
    try {
      const r = await body();
      return this.add(id, r.ok, r.summary, r.figures ?? {}, (performance.now() - started) / 1000);
    } catch (err) {
      const msg = err instanceof Error ? `${err.message}` : String(err);
      if (err instanceof Error && process.env.SOAK_DEBUG) console.error(err.stack);
      return this.add(id, false, `error: ${msg}`, {}, (performance.now() - started) / 1000);
    }
  }

  get failed(): Check[] {
    return this.checks.filter((c) => c.ok === false);
  }
}

/** Builds a failure list: each assertion that does not hold adds its message. */
export class Asserts {
  readonly failures: string[] = [];
  that(cond: boolean, message: string): boolean {
    if (!cond) this.failures.push(message);
    return cond;
  }
  get ok(): boolean {
    return this.failures.length === 0;
  }
  /** The summary line: the figures, then what failed. */
  summary(figures: string): string {
    return this.ok ? figures : `${figures} | FAILED: ${this.failures.join('; ')}`;
  }
}
