// What every node-tier file starts with: control plane (kube-apiserver reaching the kubelet by InternalIP), the
// webhook via `npm start` and the shipped manifests applied (local overlay), a real node with the stand-in images,
// and the product's installer prepared for that node.
import { existsSync, readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { applyOverlay, bringUp, waitWebhookActive, type Env } from '../harness/scenario.js';
import { PAUSE_IMAGE, startNode, type KubeNode, type PodRef } from '../harness/node.js';
import { prepareInstaller, type Installer } from '../harness/node-install.js';
import { waitFor } from '../harness/wait.js';
import { logTail } from '../harness/proc.js';
import { startRelay, type Relay } from '../harness/relay.js';
import { IMAGES } from './pods.js';
import type { Pod } from '../harness/pods.js';
import type { ControlPlane } from '../harness/control-plane.js';
import { pluginCallsIn, type PluginCall } from '../harness/pod-redirect.js';

/** What the pod helpers below need: the API server, the node and the plugin's log file (a NodeEnv, or a cluster). */
export interface PodSite {
  env: { cp: ControlPlane };
  node: KubeNode;
  pluginLog: string;
}

export interface NodeEnv {
  env: Env;
  node: KubeNode;
  installer: Installer;
  pluginLog: string;
  /** The node agents' (installer, plugin) way to the API server; block() makes it unreachable for them only. */
  relay: Relay;
}

/** Generous deadlines: they only catch a hang (the machine is shared and slow). */
export const POD_DEADLINE_MS = 600_000;

export async function bringUpNode(t: Test, installerConfig?: string): Promise<NodeEnv> {
  const env = await bringUp(t, { apiserverArgs: ['--kubelet-preferred-address-types=InternalIP'] });
  const applied = await applyOverlay(env);
  if (applied.code !== 0) throw new Error(`kubectl apply -k of the local overlay failed: ${applied.stderr}`);
  await waitWebhookActive(env, true);
  const node = await startNode({
    cp: env.cp,
    standin: required('ASM_NODE_STANDIN'),
    crictl: required('ASM_CRICTL'),
  });
  t.teardown(() => node.stop());
  t.teardown(() => {
    if (!t.passing())
      t.comment(
        `${node.logs()}\n--- asm-cni plugin ---\n${logTail(`${node.dir}/asm-cni-plugin.log`, 30)}\n` +
          `--- webhook ---\n${env.webhook.logs()}\n${env.cp.logs()}`,
      );
  });
  for (const image of IMAGES) await node.importImage(image);
  const relay = await startRelay(env.cp.port);
  t.teardown(() => relay.close());
  const installer = await prepareInstaller(env.cp, env.rendered, {
    dir: node.dir,
    netDir: node.netDir,
    binDir: node.binDir,
    nodeName: node.name,
    apiPort: relay.port,
    podImage: PAUSE_IMAGE,
    // debug: besides its one line per call, the plugin logs each restore transaction (read when a test fails)
    config: installerConfig ?? 'excludeNamespaces: [kube-system, istio-system]\nlogLevel: debug\n',
  });
  return { env, node, installer, relay, pluginLog: `${node.dir}/asm-cni-plugin.log` };
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the tier with test/node/run.sh)`);
  return v;
}

/** The asm-cni entry of the primary conflist, or undefined. */
export function ourEntry(node: KubeNode): Record<string, unknown> | undefined {
  const list = JSON.parse(readFileSync(node.primaryConflist, 'utf8'));
  return (list.plugins as Array<Record<string, unknown>>).find((p) => p.type === 'asm-cni');
}

/** Waits until the installer has put its entry (and the kubeconfig it names) in place. */
export async function waitInstalled(node: KubeNode): Promise<void> {
  await waitFor(
    'the installer putting the asm-cni entry into the primary conflist',
    async () => {
      const e = ourEntry(node);
      return e && typeof e.kubeconfig === 'string' && existsSync(e.kubeconfig) && existsSync(`${node.binDir}/asm-cni`)
        ? true
        : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

/** The plugin's calls for one sandbox (CNI_CONTAINERID), oldest first. */
export const pluginCalls = (ne: PodSite, sandboxId: string): PluginCall[] => pluginCallsIn(ne.pluginLog, sandboxId);

/** The id of the pod's newest sandbox. */
export async function sandboxId(ne: PodSite, pod: PodRef): Promise<string> {
  const items = await ne.node.sandboxes(pod);
  const newest = items.sort((a, b) => (BigInt(b.createdAt) > BigInt(a.createdAt) ? 1 : -1))[0];
  if (!newest) throw new Error(`no sandbox for ${pod.namespace}/${pod.name}`);
  return newest.id;
}

export async function getPod(ne: PodSite, pod: PodRef): Promise<Pod & { status?: any }> {
  return ne.env.cp.getJson(['get', 'pod', '-n', pod.namespace, pod.name]);
}

/** Waits until the pod is Running with every container ready; fails early naming the reason a container waits for. */
export async function waitRunning(ne: PodSite, pod: PodRef): Promise<Pod & { status?: any }> {
  return waitFor(
    `pod ${pod.namespace}/${pod.name} Running and ready`,
    async () => {
      const p = await getPod(ne, pod);
      const ready = p.status?.conditions?.find((c: { type: string }) => c.type === 'Ready')?.status === 'True';
      if (p.status?.phase === 'Running' && ready) return p;
      const waiting = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]
        .map(
          (s: any) =>
            s.state?.waiting?.reason && `${s.name}: ${s.state.waiting.reason} ${s.state.waiting.message ?? ''}`,
        )
        .filter(Boolean);
      throw new Error(`phase ${p.status?.phase}; ${waiting.join('; ')}`);
    },
    { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
  );
}

/** The pod's events (reason and message), oldest first. */
export async function podEvents(ne: PodSite, pod: PodRef): Promise<Array<{ reason: string; message: string }>> {
  const list = await ne.env.cp.getJson<{ items: Array<{ reason: string; message: string }> }>([
    'get',
    'events',
    '-n',
    pod.namespace,
    '--field-selector',
    `involvedObject.name=${pod.name}`,
  ]);
  return list.items;
}
