// The node tier: a real kubelet and containerd start the pods the webhook rewrote, and containerd calls the CNI chain
// (bridge -> asm-cni) written by the product's installer. Scenarios of issue 14, in the order one node lives through
// them: 1 ASM's documented walk-through, 2 an excluded namespace, 3 pod deletion (DEL), 7 uninstall.
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { join } from 'node:path';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { requirePrereq, isRoot } from '../harness/prereq.js';
import { repoRoot, toolchainMissing, binPath } from '../harness/toolchain.js';
import { insideNodeNamespace, type PodRef } from '../harness/node.js';
import { addedCapabilities, initNames } from '../harness/pods.js';
import { createNetns, stripComments } from '../harness/netns.js';
import { run, runOk } from '../harness/proc.js';
import { waitFor } from '../harness/net.js';
import { bringUpNode, getPod, ourEntry, podLogLines, waitInstalled, waitRunning, type NodeEnv } from './setup.js';
import { APP_PORT, createWorkload, productpageTemplate } from './pods.js';

const pluginBinary = join(repoRoot, 'dist/cni/asm-cni');
const BASELINE = {
  'pod-security.kubernetes.io/enforce': 'baseline',
  'pod-security.kubernetes.io/enforce-version': 'latest',
};
const ISTIO_CHAINS = ['ISTIO_INBOUND', 'ISTIO_OUTPUT', 'ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT'];
/** An address nothing answers on: only the redirection can make a connection to it succeed. */
const NOWHERE = '192.0.2.99:80';

/** iptables-save text without comments and with packet counters zeroed, for comparing rule sets. */
const normalizeSave = (s: string): string => stripComments(s).replace(/\[\d+:\d+\]/g, '[0:0]');

/** The nat table of a pod, read as the documentation says: crictl -> PID -> nsenter. */
async function podNat(pid: number): Promise<{ listing: string; save: string }> {
  const listing = await runOk('nsenter', ['-t', String(pid), '-n', 'iptables', '-t', 'nat', '-L', '-n', '-v']);
  const save = await runOk('nsenter', ['-t', String(pid), '-n', 'iptables-save', '-t', 'nat']);
  return { listing, save };
}

/** What `asm-cni render` says the stored pod gets, loaded into a fresh netns and read back with iptables-save. */
async function renderedNat(ne: NodeEnv, pod: PodRef): Promise<string> {
  const yaml = await ne.env.cp.kubectlOk(['get', 'pod', '-n', pod.namespace, pod.name, '-o', 'yaml']);
  const rendered = await runOk(pluginBinary, ['render', '-f', '-', '--family', 'ipv4'], { input: yaml });
  const n = await createNetns();
  try {
    await runOk('ip', ['netns', 'exec', n.name, 'iptables-restore', '--noflush'], { input: rendered });
    return await runOk('ip', ['netns', 'exec', n.name, 'iptables-save', '-t', 'nat']);
  } finally {
    await n.remove();
  }
}

/** One line from a TCP server at host:port (the stand-ins answer every connection with one line). */
function readLine(host: string, port: number): Promise<string> {
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

async function main(t: Test): Promise<void> {
  const ne = await bringUpNode(t);
  const { env, node } = ne;
  const cp = env.cp;

  const inst = ne.installer.start(join(node.dir, 'installer-run.log'));
  t.teardown(() => inst.stop());
  await waitInstalled(node);

  let productpage: PodRef | undefined;

  await t.test('1. ASM walk-through: productpage by a user with only edit, PodSecurity baseline', async (t) => {
    const ns = await cp.namespace('bookinfo', { labels: BASELINE, devEdit: true });
    // istiod publishes its root certificate to every namespace; the proxy mounts it.
    await cp.kubectlOk([
      'create',
      'configmap',
      'istio-ca-root-cert',
      '-n',
      ns,
      `--from-file=root-cert.pem=${cp.caFile}`,
    ]);
    const template = productpageTemplate();
    t.ok(initNames(template).includes('istio-init'), 'the Deployment is Istio-injected (istio-init, NET_ADMIN)');
    const w = await createWorkload(cp, ns, template, 'dev');
    const pod = { namespace: ns, name: w.pod };
    productpage = pod;
    const stored = await getPod(ne, pod);
    t.notOk(initNames(stored).includes('istio-init'), 'the API server stored the pod rewritten: no istio-init');
    t.equal(initNames(stored)[0], 'istio-validation', 'istio-validation first');
    t.same(addedCapabilities(stored), [], 'no added capabilities');

    await node.bind(pod);
    const running = await waitRunning(ne, pod);
    const validation = running.status.initContainerStatuses?.find((s: any) => s.name === 'istio-validation');
    t.equal(validation?.state?.terminated?.exitCode, 0, 'istio-validation (stand-in) saw the redirection: exit 0');

    const lines = podLogLines(ne, pod);
    t.ok(
      lines.some((l) => /redirection applied/.test(l)),
      `the plugin, called by containerd, programmed the pod (its log: ${lines.join(' | ')})`,
    );

    // The documented check: crictl -> PID -> nsenter.
    const pid = await node.containerPid(pod, 'productpage');
    const nat = await podNat(pid);
    for (const chain of ISTIO_CHAINS) t.match(nat.listing, new RegExp(`^Chain ${chain} `, 'm'), `${chain} listed`);
    t.equal(normalizeSave(nat.save), normalizeSave(await renderedNat(ne, pod)), 'iptables-save equals asm-cni render');

    // Traffic: from the app container to an address nobody serves lands on the proxy, which sees where it was going.
    const app = (await node.containers(pod, 'productpage')).find((c) => c.state === 'CONTAINER_RUNNING');
    const dial = await node.crictl(['exec', app!.id, '/standin', 'dial', NOWHERE]);
    t.equal(dial.code, 0, `dial from the app container succeeded${dial.code ? `: ${dial.stderr}` : ''}`);
    t.equal(
      dial.stdout.trim(),
      `proxy 15001 original-dst ${NOWHERE}`,
      'outbound: on the proxy (15001), original dst kept',
    );
    // And inbound: from the node to the pod's app port lands on the proxy's inbound port.
    const podIP = running.status.podIP as string;
    t.match(podIP, /^198\.51\.100\./, 'the pod has an address from the bridge subnet');
    t.equal(
      await readLine(podIP, APP_PORT),
      `proxy 15006 original-dst ${podIP}:${APP_PORT}`,
      'inbound: on the proxy (15006), original dst kept',
    );
  });
}

const missing = toolchainMissing() ?? (existsSync(binPath('kubelet')) ? undefined : 'kubelet not built');
if (
  requirePrereq(t, isRoot(), 'containerd, kubelet and network namespaces need root') &&
  requirePrereq(t, insideNodeNamespace(), 'run through test/node/run.sh (it makes the private namespaces)') &&
  requirePrereq(t, missing === undefined, missing ?? '') &&
  requirePrereq(t, existsSync(pluginBinary), `${pluginBinary} not built (npm run build)`)
) {
  await t.test('node: kubelet + containerd call the plugin', (t) => main(t));
}
