// Network namespaces owned by this run (named asmsoak-<run id>-*, so run.sh can sweep them after a hard kill).
import { mustRun, onCleanup, run } from './proc.js';

const runId = process.env.SOAK_RUN_ID ?? String(process.pid);

export function nsName(suffix: string): string {
  return `asmsoak-${runId}-${suffix}`;
}

export function nsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

export async function addNetns(suffix: string): Promise<string> {
  const name = nsName(suffix);
  await mustRun('ip', ['netns', 'add', name]);
  onCleanup(async () => {
    await run('ip', ['netns', 'delete', name]);
  });
  await mustRun('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/** A pod-like namespace: eth0 (a veth whose peer sits in `node`) with `address`, as a bridge plugin leaves it. */
export async function addPodNetns(suffix: string, node: string, peer: string, address: string): Promise<string> {
  const name = await addNetns(suffix);
  await mustRun('ip', ['link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', peer, 'netns', node]);
  await mustRun('ip', ['-n', name, 'addr', 'add', address, 'dev', 'eth0']);
  await mustRun('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
  await mustRun('ip', ['-n', node, 'link', 'set', peer, 'up']);
  return name;
}

/** Runs a command with its network namespace set to `ns` (nsenter: no mount namespace games, cheap enough for 50 at once). */
export function inNetns(
  ns: string,
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
) {
  return run('nsenter', [`--net=${nsPath(ns)}`, '--', cmd, ...args], opts);
}

export async function canUseNetns(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root: network namespaces need root';
  const r = await run('ip', ['netns', 'list']);
  if (r.code !== 0) return `ip netns does not work here: ${r.stderr.trim()}`;
  return undefined;
}
