// Child processes, temp dirs and other things the soak creates, and their removal even when a check fails.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export { freePort } from '../../test/harness/free-port.js';
import { memoryMiB } from '../../test/harness/proc.js';

type Cleanup = () => void | Promise<void>;
const cleanups: Cleanup[] = [];

/** Registers an undo step; `cleanupAll` runs them last-in first-out. */
export function onCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

export async function cleanupAll(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      console.error(`soak cleanup: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** The run's scratch directory (removed at the end unless SOAK_KEEP=1). */
let scratch: string | undefined;
export function scratchDir(): string {
  if (!scratch) {
    scratch = mkdtempSync(join(process.env.SOAK_TMPDIR ?? tmpdir(), 'asm-soak-'));
    const dir = scratch;
    onCleanup(() => {
      scratch = undefined;
      if (process.env.SOAK_KEEP === '1') console.log(`soak: kept scratch dir ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    });
  }
  return scratch;
}

export function subDir(name: string): string {
  return mkdtempSync(join(scratchDir(), `${name}-`));
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  exited: Promise<Exit>;
  /** set once the process has exited */
  exit?: Exit;
}

/** Starts a process with its output going to `logFile` (never piped: a chatty child must not block on us). */
export function startLogged(cmd: string, args: string[], logFile: string, opts: SpawnOptions = {}): Child {
  const fd = openSync(logFile, 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], ...opts });
  closeSync(fd);
  return track(proc);
}

export function track(proc: ChildProcess): Child {
  if (proc.pid === undefined) throw new Error(`could not start ${proc.spawnfile}`);
  const child: Child = {
    proc,
    pid: proc.pid,
    exited: new Promise<Exit>((resolve) => {
      proc.once('exit', (code, signal) => {
        child.exit = { code, signal };
        resolve(child.exit);
      });
      proc.once('error', () => {
        child.exit = { code: -1, signal: null };
        resolve(child.exit);
      });
    }),
  };
  onCleanup(async () => {
    if (child.exit) return;
    proc.kill('SIGKILL');
    await child.exited;
  });
  return child;
}

export { run, runOk as mustRun } from '../../test/harness/proc.js';

/**
 * Resident set size of a process in MiB, from /proc (undefined once it is gone); VmHWM is its peak so far, RssAnon the
 * anonymous part (what the kernel cannot reclaim without swap; file pages such as node's own binary it can).
 */
export function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' = 'VmRSS'): number | undefined {
  if (field === 'VmRSS') return memoryMiB(pid)?.rss;
  if (field === 'VmHWM') return memoryMiB(pid)?.peak;
  try {
    const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}
