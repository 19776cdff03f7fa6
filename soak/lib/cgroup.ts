// A real memory limit for a process under test: a cgroup with the webhook Deployment's memory limit, as the kubelet
// gives the container. systemd-run when systemd runs (a transient scope); otherwise a cgroup made here: on cgroup v1
// a child of this process's own memory cgroup (so whatever limits this machine sets still apply), on cgroup v2 a
// child of the root when the memory controller is delegated there. Swap is forbidden where the kernel allows it, so
// going over the limit means reclaim and then the OOM killer, as in a container. Removed at cleanup.
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './proc.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_MAGIC = 0x63677270;

export interface MemoryCgroup {
  /** how it was made, for the report: "cgroup v1 (made here)", "systemd-run scope (cgroup v2)", ... */
  how: string;
  limitBytes: number;
  /** Prefix for the command line: the process it starts runs inside the cgroup from its first instruction. */
  wrap: (cmd: string, args: string[]) => { cmd: string; args: string[] };
  /** Peak memory charged to the cgroup (bytes), OOM kills, and times the limit was hit; read while or after it runs. */
  stats(pid?: number): { peakBytes?: number; oomKills?: number; limitHits?: number };
  remove(): Promise<void>;
}

export type CgroupResult = { ok: true; cgroup: MemoryCgroup } | { ok: false; reason: string };

const read = (file: string): string | undefined => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};
const field = (text: string | undefined, key: string): number | undefined => {
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.split(' ');
    if (k === key && v !== undefined) return Number(v);
  }
  return undefined;
};

/** This process's path in the cgroup v1 hierarchy of `controller` (lines of /proc/self/cgroup: id:controllers:path). */
function ownPath(controller: string): string | undefined {
  for (const line of (read('/proc/self/cgroup') ?? '').split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    if (
      line
        .slice(a + 1, b)
        .split(',')
        .includes(controller)
    )
      return line.slice(b + 1);
  }
  return undefined;
}

/** Runs `cmd` after moving the shell into the cgroup (its pid then becomes the command's, via exec). */
function shellWrap(procsFile: string) {
  return (cmd: string, args: string[]) => ({
    cmd: '/bin/sh',
    args: ['-c', 'echo $$ > "$0" && exec "$@"', procsFile, cmd, ...args],
  });
}

export async function memoryCgroup(name: string, limitBytes: number): Promise<CgroupResult> {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'a memory cgroup needs root' };
  let v2: boolean;
  try {
    v2 = statfsSync(CGROUP_ROOT).type === CGROUP2_MAGIC;
  } catch {
    return { ok: false, reason: `${CGROUP_ROOT} is not mounted` };
  }
  const systemd = (await run('systemctl', ['is-system-running'], { timeoutMs: 5000 })).stdout.trim();
  if (v2 && (systemd === 'running' || systemd === 'degraded')) return systemdScope(name, limitBytes);
  return v2 ? v2Child(name, limitBytes) : v1Child(name, limitBytes);
}

function v1Child(name: string, limitBytes: number): CgroupResult {
  const mount = join(CGROUP_ROOT, 'memory');
  const own = ownPath('memory');
  if (!existsSync(join(mount, 'memory.limit_in_bytes')) || own === undefined)
    return { ok: false, reason: 'cgroup v1 without a memory controller' };
  const dir = join(mount, own, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
  // no swap either (when swap accounting is on), as in a container without swap
  if (existsSync(join(dir, 'memory.memsw.limit_in_bytes')))
    writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
  return {
    ok: true,
    cgroup: {
      how: 'cgroup v1, made here (memory.limit_in_bytes)',
      limitBytes,
      wrap: shellWrap(join(dir, 'cgroup.procs')),
      stats: () => ({
        peakBytes: Number(read(join(dir, 'memory.max_usage_in_bytes'))),
        oomKills: field(read(join(dir, 'memory.oom_control')), 'oom_kill'),
        limitHits: Number(read(join(dir, 'memory.failcnt'))),
      }),
      remove: () => removeDir(dir),
    },
  };
}

function v2Child(name: string, limitBytes: number): CgroupResult {
  const controllers = read(join(CGROUP_ROOT, 'cgroup.subtree_control')) ?? '';
  if (!controllers.split(/\s/).includes('memory'))
    return { ok: false, reason: 'cgroup v2 without systemd, and the memory controller is not delegated at the root' };
  const dir = join(CGROUP_ROOT, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'memory.max'), String(limitBytes));
  if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
  return {
    ok: true,
    cgroup: {
      how: 'cgroup v2, made here (memory.max)',
      limitBytes,
      wrap: shellWrap(join(dir, 'cgroup.procs')),
      stats: () => v2Stats(dir),
      remove: () => removeDir(dir),
    },
  };
}

function v2Stats(dir: string) {
  const events = read(join(dir, 'memory.events'));
  return {
    peakBytes: Number(read(join(dir, 'memory.peak')) ?? NaN),
    oomKills: field(events, 'oom_kill'),
    limitHits: field(events, 'max'),
  };
}

function systemdScope(name: string, limitBytes: number): CgroupResult {
  let dir: string | undefined;
  const scopeDir = (pid?: number): string | undefined => {
    if (dir === undefined && pid !== undefined) {
      const line = (read(`/proc/${pid}/cgroup`) ?? '').split('\n').find((l) => l.startsWith('0::'));
      if (line) dir = join(CGROUP_ROOT, line.slice(3));
    }
    return dir;
  };
  return {
    ok: true,
    cgroup: {
      how: 'systemd-run scope (cgroup v2, MemoryMax)',
      limitBytes,
      wrap: (cmd, args) => ({
        cmd: 'systemd-run',
        args: [
          '--scope',
          '--quiet',
          `--unit=${name}`,
          `-p`,
          `MemoryMax=${limitBytes}`,
          '-p',
          'MemorySwapMax=0',
          cmd,
          ...args,
        ],
      }),
      stats: (pid) => {
        const d = scopeDir(pid);
        return d === undefined ? {} : v2Stats(d);
      },
      // the scope ends with its process
      remove: async () => undefined,
    },
  };
}

/** rmdir once the cgroup is empty (its last process may take a moment to be reaped). */
async function removeDir(dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  rmdirSync(dir);
}
