// What the kubelet does for a DaemonSet pod, without a kubelet: a Node object, a pod of the given ServiceAccount bound
// to it, and that pod's token minted bound to the pod (TokenRequest boundObjectRef), so the API server puts the pod's
// node into the token and into the caller's user info (extra `authentication.kubernetes.io/node-name`).
import type { ControlPlane } from './control-plane.js';

export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** Creates the Node object unless it exists (only stored: nothing runs there). */
export async function ensureNode(cp: ControlPlane, node: string): Promise<void> {
  if ((await cp.kubectl(['get', 'node', node])).code === 0) return;
  await cp.kubectlOk(['create', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } }),
  });
}

/** Stores a pod on `node` (spec.nodeName set, as after scheduling); returns its uid. */
export async function podOnNode(
  cp: ControlPlane,
  o: { namespace: string; name: string; node: string; serviceAccount?: string; image?: string; hostNetwork?: boolean },
): Promise<string> {
  await ensureNode(cp, o.node);
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      nodeName: o.node,
      ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'main', image: o.image ?? 'registry.invalid/e2e/pause:1' }],
    },
  };
  const created = JSON.parse(await cp.kubectlOk(['create', '-f', '-', '-o', 'json'], { input: JSON.stringify(pod) }));
  return created.metadata.uid as string;
}

/** A pod of `serviceAccount` on `node`, and the token the kubelet would project into it. */
export async function podBoundToken(
  cp: ControlPlane,
  o: { namespace: string; serviceAccount: string; node: string; pod: string; image?: string; hostNetwork?: boolean },
): Promise<string> {
  const uid = await podOnNode(cp, {
    namespace: o.namespace,
    name: o.pod,
    node: o.node,
    serviceAccount: o.serviceAccount,
    image: o.image,
    hostNetwork: o.hostNetwork,
  });
  const args = ['create', 'token', o.serviceAccount, '-n', o.namespace, '--duration=1h'];
  args.push('--bound-object-kind=Pod', `--bound-object-name=${o.pod}`, `--bound-object-uid=${uid}`);
  return (await cp.kubectlOk(args)).trim();
}
