// A one-node cluster for the cluster tier (test/cluster/): the control plane of control-plane.ts bound to the node's
// address, plus kube-scheduler, kube-controller-manager and kube-proxy (nftables), and the real node of node.ts with
// the image built from the Dockerfile imported. Nothing a controller makes is made here: ReplicaSets, DaemonSet pods,
// ServiceAccounts, tokens, EndpointSlices and bindings come from the controllers and the scheduler, as on a cluster.
//
// Runs inside the private network and mount namespace of test/node/run.sh (the cluster tier calls it): kube-proxy's
// tables, the bridge and every listening port live there. ClusterIPs come from the upper half of the node's
// documentation range (192.0.2.128/25; the node address is 192.0.2.1/25), pods from node.ts's POD_SUBNET.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { startNode, POD_SUBNET, type KubeNode } from './node.js';
import { logTail, run, runOk, startProcess, type Managed } from './proc.js';
import { binPath } from './toolchain.js';
import { waitFor } from './wait.js';
import { httpsGet } from './net.js';
import type { ImageSpec } from './node-images.js';

export const SERVICE_CIDR = '192.0.2.128/25';
/** The `kubernetes` Service's ClusterIP: the first address of the range. */
export const API_CLUSTER_IP = '192.0.2.129';

export interface Cluster {
  cp: ControlPlane;
  node: KubeNode;
  /** The image built from the Dockerfile (test/cluster/run.sh), imported into the node's containerd. */
  image: string;
  /** Tags the same image under another tag in the node's containerd; returns the full reference. */
  retag(tag: string): Promise<string>;
  /** Tails of every component's log, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Stand-in images the tests' pods reference (test/node/pods.ts IMAGES), imported at start. */
  images?: ImageSpec[];
}

export async function startCluster(t: Test, opts: ClusterOptions = {}): Promise<Cluster> {
  const address = required('ASM_NODE_IP');
  const archive = required('ASM_IMAGE_ARCHIVE');
  const image = required('ASM_IMAGE_REF');
  const cp = await startControlPlane({
    node: { address, serviceCidr: SERVICE_CIDR, clusterIp: API_CLUSTER_IP },
    controllers: true,
    apiserverArgs: [
      '--kubelet-preferred-address-types=InternalIP',
      // admission webhooks (and aggregated APIs) are called at their Service's endpoints: the API server needs no
      // route to ClusterIPs of its own
      '--enable-aggregator-routing=true',
    ],
  });
  const procs: Managed[] = [];
  let node: KubeNode | undefined;
  const stop = async (): Promise<void> => {
    // kube-proxy's tables first (they live in the tier's namespace, which goes with it, but are removed explicitly so
    // nothing depends on that), then the node, then the controllers, then the API server.
    await removeProxyTables();
    await node?.stop();
    for (const p of [...procs].reverse()) await p.stop(5000);
    await cp.stop();
  };
  t.teardown(stop);
  const dir = join(cp.dir, 'cluster');
  mkdirSync(dir, { recursive: true });
  const kubeconfig = cp.kubeconfigs.admin;

  // What the controller-manager and the scheduler share: the admin's kubeconfig for everything, no leader election
  // (one of each), no serving port (nothing here scrapes them).
  const controlLoop = (name: 'kube-controller-manager' | 'kube-scheduler', args: string[]): Managed =>
    startProcess(
      name,
      binPath(name),
      [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        '--secure-port=0',
        '--v=1',
        ...args,
      ],
      { logFile: join(dir, `${name}.log`) },
    );
  procs.push(
    controlLoop('kube-controller-manager', [
      // every default controller: node-lifecycle (lifts the kubelet's not-ready taint), replicaset, daemonset,
      // deployment, endpointslice, serviceaccount(-token), root-ca-cert-publisher, garbage collector, ...
      '--controllers=*',
      `--service-account-private-key-file=${join(cp.dir, 'sa.key')}`,
      `--root-ca-file=${cp.caFile}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--use-service-account-credentials=false',
    ]),
    controlLoop('kube-scheduler', []),
  );

  const abort = (): string | undefined => {
    const dead = procs.find((p) => p.hasExited());
    return dead ? `${dead.name} exited:\n${logTail(dead.logFile, 20)}` : undefined;
  };
  try {
    node = await startNode({ cp, standin: required('ASM_NODE_STANDIN'), crictl: required('ASM_CRICTL') });
    const proxyConfig = join(dir, 'kube-proxy.yaml');
    writeFileSync(proxyConfig, kubeProxyYaml(kubeconfig, node.name));
    procs.push(
      startProcess('kube-proxy', binPath('kube-proxy'), [`--config=${proxyConfig}`, '--v=1'], {
        logFile: join(dir, 'kube-proxy.log'),
      }),
    );
    for (const spec of opts.images ?? []) await node.importImage(spec);
    await runOk('ctr', ['--address', node.socket, '-n', 'k8s.io', 'images', 'import', archive], {
      timeoutMs: 600_000,
    });
    // The `kubernetes` Service routed on the node: what the installer (in-cluster config) and the plugin (its
    // kubeconfig names the ClusterIP) depend on.
    await waitFor(
      `kube-proxy routing the kubernetes Service (${API_CLUSTER_IP}:443)`,
      async () => {
        try {
          const r = await httpsGet(`https://${API_CLUSTER_IP}/readyz`, { ca: cp.caPem, token: cp.tokens.admin });
          return r.status === 200 ? true : undefined;
        } catch {
          return undefined; // not routed yet
        }
      },
      { timeoutMs: 300_000, intervalMs: 1000, abort },
    );
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${componentLogs()}`, { cause: err });
  }

  function componentLogs(): string {
    return procs.map((p) => `--- ${p.name} ---\n${logTail(p.logFile, 20)}`).join('\n');
  }
  const theNode = node;
  return {
    cp,
    node: theNode,
    image,
    async retag(tag) {
      const ref = `${image.replace(/:[^:/]+$/, '')}:${tag}`;
      await runOk('ctr', ['--address', theNode.socket, '-n', 'k8s.io', 'images', 'tag', '--force', image, ref]);
      return ref;
    },
    logs: () => `${componentLogs()}\n${theNode.logs()}\n${cp.logs()}`,
    stop,
  };
}

/** kube-proxy, nftables mode, on this node only; conntrack sysctls (host-wide) left as they are. */
function kubeProxyYaml(kubeconfig: string, nodeName: string): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: ${kubeconfig}
hostnameOverride: ${nodeName}
clusterCIDR: ${POD_SUBNET}
healthzBindAddress: ""
metricsBindAddress: ""
# 0 leaves each conntrack setting as it is: they are host-wide, and this machine is shared
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`;
}

async function removeProxyTables(): Promise<void> {
  for (const family of ['ip', 'ip6'])
    await run('nft', ['delete', 'table', family, 'kube-proxy'], { timeoutMs: 30_000 });
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the tier with test/cluster/run.sh)`);
  return v;
}
