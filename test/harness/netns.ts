// Fresh network namespaces standing in for pod sandboxes (root only). Each gets lo up and an eth0 with a documentation
// address, as the primary CNI would have left it. eth0 is one end of a veth pair whose peer stays in the same netns:
// nothing is created in the host's namespace. All are deleted by the caller's teardown.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { onExitCleanup, run, runOk } from './proc.js';

export interface Netns {
  readonly name: string;
  readonly path: string;
  readonly address: string;
  /** iptables-save output of the namespace (nft and legacy backends), comments dropped. */
  rules(): Promise<{ nft: string; legacy: string }>;
  remove(): Promise<void>;
}

export async function createNetns(address = '192.0.2.10/24'): Promise<Netns> {
  const name = `asm-e2e-${randomBytes(4).toString('hex')}`;
  await runOk('ip', ['netns', 'add', name]);
  const remove = onExitCleanup(`netns:${name}`, () => {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  });
  try {
    await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await runOk('ip', ['-n', name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    await runOk('ip', ['-n', name, 'link', 'set', 'peer0', 'up']);
    await runOk('ip', ['-n', name, 'addr', 'add', address, 'dev', 'eth0']);
    await runOk('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
  } catch (err) {
    remove();
    throw err;
  }
  const save = async (cmd: string): Promise<string> => {
    const r = await run('ip', ['netns', 'exec', name, cmd]);
    return r.code === 0 ? stripComments(r.stdout) : '';
  };
  return {
    name,
    path: `/var/run/netns/${name}`,
    address,
    rules: async () => ({ nft: await save('iptables-nft-save'), legacy: await save('iptables-legacy-save') }),
    remove: async () => remove(),
  };
}

export const stripComments = (s: string): string =>
  s
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .join('\n');

export const hasIstioChains = (rules: { nft: string; legacy: string }): boolean =>
  /ISTIO_/.test(rules.nft + rules.legacy);
