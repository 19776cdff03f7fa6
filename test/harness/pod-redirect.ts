// How a test sees a pod's redirection on a real node, as docs/verify.md tells a user to look: the plugin's log line
// for the sandbox, the pod's nat table read through crictl -> PID -> nsenter, compared with `asm-cni render` of the
// stored pod, and traffic landing on the stand-in proxy. Shared by the node and cluster tiers.
import { connect } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from './control-plane.js';
import type { PodRef } from './node.js';
import { createNetns, stripComments } from './netns.js';
import { run, runOk } from './proc.js';
import { repoRoot } from './toolchain.js';

export const pluginBinary = join(repoRoot, 'dist/cni/asm-cni');
export const ISTIO_CHAINS = ['ISTIO_INBOUND', 'ISTIO_OUTPUT', 'ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT'];
/** An address nothing answers on: only the redirection can make a connection to it succeed. */
export const NOWHERE = '192.0.2.99:80';

/** The one JSON line the plugin logs per CNI command (docs/plugin.md). */
export interface PluginCall {
  /** ADD, DEL or CHECK */
  cmd: string;
  container: string;
  pod?: string;
  netns?: string;
  /** redirected, verified, removed, skipped or failed */
  decision: string;
  reason?: string;
  error?: string;
}

/** The plugin's calls for one sandbox (CNI_CONTAINERID) in its log file, oldest first. */
export function pluginCallsIn(logFile: string, sandboxId: string): PluginCall[] {
  if (!existsSync(logFile)) return [];
  const calls: PluginCall[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as Partial<PluginCall>;
    if (o.container === sandboxId && typeof o.cmd === 'string' && typeof o.decision === 'string')
      calls.push(o as PluginCall);
  }
  return calls;
}

/** For messages: the calls in one line each. */
export const describeCalls = (calls: PluginCall[]): string =>
  calls
    .map((c) => `${c.cmd} ${c.decision}${c.reason ? ` (${c.reason})` : ''}${c.netns ? ` netns=${c.netns}` : ''}`)
    .join('; ') || 'none';

/** iptables-save text without comments and with packet counters zeroed, for comparing rule sets. */
export const normalizeSave = (s: string): string => stripComments(s).replace(/\[\d+:\d+\]/g, '[0:0]');

/** The iptables flavour the plugin used for a sandbox, from its ADD line ("iptables nft, IPv6 false, ..."). */
export type Flavour = 'nft' | 'legacy';
export function flavourOf(calls: PluginCall[]): Flavour {
  const add = calls.find((c) => c.cmd === 'ADD' && c.decision === 'redirected');
  const m = /iptables (nft|legacy)/.exec(add?.reason ?? '');
  if (!m) throw new Error(`no redirected ADD naming its iptables flavour among: ${describeCalls(calls)}`);
  return m[1] as Flavour;
}

/**
 * The nat table of a pod, read as the documentation says: crictl -> PID -> nsenter, with the flavour the plugin used
 * (docs/plugin.md: the node has both iptables-nft and iptables-legacy).
 */
export async function podNat(pid: number, flavour: Flavour): Promise<{ listing: string; save: string }> {
  const ns = ['-t', String(pid), '-n'];
  const listing = await runOk('nsenter', [...ns, `iptables-${flavour}`, '-t', 'nat', '-L', '-n', '-v']);
  const save = await runOk('nsenter', [...ns, `iptables-${flavour}-save`, '-t', 'nat']);
  return { listing, save };
}

/** Whether the pod's netns has any ISTIO_ chain, in either flavour. */
export async function podHasIstioChains(pid: number): Promise<boolean> {
  for (const flavour of ['nft', 'legacy'] as const) {
    const r = await run('nsenter', ['-t', String(pid), '-n', `iptables-${flavour}-save`]);
    if (/ISTIO_/.test(r.stdout)) return true;
  }
  return false;
}

/** What `asm-cni render` says the stored pod gets, loaded into a fresh netns and read back with iptables-save. */
export async function renderedNat(cp: ControlPlane, pod: PodRef, flavour: Flavour): Promise<string> {
  const yaml = await cp.kubectlOk(['get', 'pod', '-n', pod.namespace, pod.name, '-o', 'yaml']);
  const rendered = await runOk(pluginBinary, ['render', '-f', '-', '--family', 'ipv4'], { input: yaml });
  const n = await createNetns();
  try {
    await runOk('ip', ['netns', 'exec', n.name, `iptables-${flavour}-restore`, '--noflush'], { input: rendered });
    return await runOk('ip', ['netns', 'exec', n.name, `iptables-${flavour}-save`, '-t', 'nat']);
  } finally {
    await n.remove();
  }
}

/** One line from a TCP server at host:port (the stand-ins answer every connection with one line). */
export function readLine(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let buf = '';
    s.setEncoding('utf8');
    s.setTimeout(30_000, () => s.destroy(new Error(`no answer from ${host}:${port}`)));
    s.on('data', (d: string) => (buf += d));
    s.on('end', () => resolve(buf.trim()));
    s.on('error', reject);
  });
}
