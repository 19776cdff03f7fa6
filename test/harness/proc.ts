// Child processes of the e2e harness (etcd, kube-apiserver, the webhook): each runs in its own process group so that
// stopping it also stops what it spawned (npm -> bash -> node), and every group is killed when this process exits,
// whether the tests passed, failed, timed out (tap sends SIGTERM) or were interrupted. Also what bench and soak share:
// running a command to completion, a server pinned to a CPU, its CPU time and memory from /proc.
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:https';
import { waitFor } from './wait.js';
import { appendFileSync, openSync, closeSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<string>;
  hasExited(): boolean;
  /** SIGTERM to the group, SIGKILL after graceMs. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Managed>();
/** Synchronous clean-ups (temp dirs, network namespaces) still pending; run on exit if the tests did not get to them. */
const cleanups = new Map<string, () => void>();

/**
 * When run.sh runs the tier it sets ASM_E2E_RUN_DIR: every process group, temp dir and netns is also listed there, so
 * that run.sh can sweep them even if this process is SIGKILLed (tap does that to a test file past its timeout).
 */
export function recordForSweep(kind: 'pgid' | 'dir' | 'netns' | 'cgroup' | 'shims', value: string | number): void {
  const runDir = process.env.ASM_E2E_RUN_DIR;
  if (!runDir) return;
  try {
    appendFileSync(join(runDir, 'cleanup.list'), `${kind} ${value}\n`);
  } catch {
    /* the sweep is a safety net only */
  }
}

/** Registers a synchronous clean-up under a key; returns the function that runs it now and unregisters it. */
export function onExitCleanup(key: string, fn: () => void): () => void {
  const [kind, value] = key.split(/:(.*)/s) as [string, string];
  if (kind === 'dir' || kind === 'netns') recordForSweep(kind, value);
  cleanups.set(key, fn);
  return () => {
    if (!cleanups.delete(key)) return;
    fn();
  };
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const killAll = (): void => {
    for (const m of live) killGroup(m.child.pid, 'SIGKILL');
    for (const [key, fn] of cleanups) {
      cleanups.delete(key);
      try {
        fn();
      } catch {
        /* best effort on the way out */
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
    });
  }
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Managed {
  installExitHooks();
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(command, args, {
    detached: true, // own process group
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  closeSync(fd);
  if (child.pid) recordForSweep('pgid', child.pid);
  let done = false;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve(code !== null ? String(code) : String(signal));
    });
    child.once('error', (err) => {
      done = true;
      resolve(`spawn error: ${err.message}`);
    });
  });
  const managed: Managed = {
    name,
    child,
    logFile: opts.logFile,
    exited,
    hasExited: () => done,
    async stop(graceMs = 8000) {
      if (!done) {
        killGroup(child.pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // The leader may be gone while children of the group still run (npm start): make sure of the group.
      killGroup(child.pid, 'SIGKILL');
      live.delete(managed);
    },
  };
  live.add(managed);
  return managed;
}

export function logTail(file: string, lines = 40): string {
  if (!existsSync(file)) return `(no log at ${file})`;
  const all = readFileSync(file, 'utf8').trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** How long the command ran (ms). */
  ms: number;
}

/** Runs a command to completion; never rejects on a non-zero exit (the result says it). */
export function run(
  command: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(
      command,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL', // a command past its timeout is stuck: SIGTERM may be ignored
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({
          code,
          stdout: String(stdout),
          stderr: String(stderr) + (err && code === 1 && !stderr ? err.message : ''),
          ms: performance.now() - started,
        });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a command and throws with its output when it fails. */
export async function runOk(command: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(command, args, opts);
  if (r.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r.stdout;
}

/** A server under measurement (bench): started with `taskset -c CPU` when a CPU is given. */
export interface Server {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
}

/** `taskset -c CPU cmd...` when a CPU is given: taskset execs the command, so the pid is the server's own. */
export function startServer(
  name: string,
  cmd: string[],
  opts: { cpu?: string; env?: NodeJS.ProcessEnv; logFile: string; port: number },
): Server {
  const argv = opts.cpu !== undefined ? ['taskset', '-c', opts.cpu, ...cmd] : cmd;
  const out = openSync(opts.logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, stdio: ['ignore', out, out] });
  if (!child.pid) throw new Error(`could not start ${name}: ${argv.join(' ')}`);
  return { name, child, pid: child.pid, port: opts.port };
}

/** POSTs `body` until the server answers 200; returns the answer body. */
export async function waitReady(server: Server, path: string, ca: Buffer, body: string): Promise<string> {
  return waitFor(
    `${server.name} answering 200 on ${path}`,
    async () => {
      const { status, text } = await post(server.port, path, ca, body);
      if (status !== 200) throw new Error(`HTTP ${status}: ${text.slice(0, 200)}`);
      return text;
    },
    {
      intervalMs: 200,
      abort: () =>
        server.child.exitCode !== null ? `exited with code ${server.child.exitCode} before answering` : undefined,
    },
  );
}

/** One HTTPS POST to 127.0.0.1 (SNI localhost), on a fresh connection. */
export function post(port: number, path: string, ca: Buffer, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        ca,
        servername: 'localhost',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => server.child.once('exit', () => r()));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds consumed so far by all threads of `pid`. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** VmRSS and VmHWM (peak) of `pid` in MiB, one decimal; undefined once the process is gone. */
export function memoryMiB(pid: number): { rss: number; peak: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const mib = (key: string): number =>
    Number((Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024).toFixed(1));
  return { rss: mib('VmRSS'), peak: mib('VmHWM') };
}

const HAVE_SCHEDSTAT = existsSync('/proc/self/schedstat');

/**
 * CPU nanoseconds consumed so far by the live threads of `pid` (the sum of /proc/PID/task/TID/schedstat): exact to
 * the nanosecond where cpuSeconds counts clock ticks, for short runs whose CPU differs by a few per cent. Threads that
 * already exited are not counted (a Node server's threads live as long as it does). cpuSeconds when the kernel keeps
 * no schedstat.
 */
export function cpuNanos(pid: number): number {
  if (!HAVE_SCHEDSTAT) return cpuSeconds(pid) * 1e9;
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
    } catch (e) {
      // a thread that exited between the listing and the read
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return sum;
}
