// Child processes under test: start (optionally pinned to a CPU), wait until they answer, read their CPU time and
// memory from /proc, stop them.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';

export interface Server {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
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
  if (!child.pid) throw new Error(`bench: could not start ${name}: ${argv.join(' ')}`);
  return { name, child, pid: child.pid, port: opts.port };
}

/** POSTs `body` until the server answers 200 (or fails after `timeoutMs`); returns the answer body. */
export async function waitReady(
  server: Server,
  path: string,
  ca: Buffer,
  body: string,
  timeoutMs = 20_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null)
      throw new Error(`bench: ${server.name} exited with code ${server.child.exitCode} before answering`);
    try {
      const { status, text } = await post(server.port, path, ca, body);
      if (status === 200) return text;
      last = `HTTP ${status}: ${text.slice(0, 200)}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`bench: ${server.name} did not answer 200 on ${path} within ${timeoutMs} ms (last: ${last})`);
}

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

/** User + system CPU seconds consumed so far by all threads of `pid`. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** VmRSS and VmHWM (peak) of `pid`, in MiB. */
export function memoryMB(pid: number): { rssMB: number; peakMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMB: Number((kb('VmRSS') / 1024).toFixed(1)), peakMB: Number((kb('VmHWM') / 1024).toFixed(1)) };
}

export async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => server.child.once('exit', () => r()));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
