// The steps both cluster-tier files (install.test.ts: kustomize; helm.test.ts: Helm) take against a one-node cluster
// (test/harness/cluster.ts): the documented install and uninstall run as scripts (test/harness/install-steps.ts), and
// checks on what only the cluster's own components made: the installer DaemonSet's pod and the files it wrote on the
// node, the webhook Deployment's replicas and its Service's EndpointSlice, a meshed Deployment's pod redirected.
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Test } from 'tap';
import { API_CLUSTER_IP, startCluster, type Cluster } from '../harness/cluster.js';
import type { ControlPlane } from '../harness/control-plane.js';
import { helmPath } from '../harness/helm.js';
import type { Site, Steps } from '../harness/install-steps.js';
import { runSteps, siteProblems } from '../harness/install-steps.js';
import type { PodRef } from '../harness/node.js';
import {
  describeCalls,
  flavourOf,
  ISTIO_CHAINS,
  normalizeSave,
  NOWHERE,
  podHasIstioChains,
  podNat,
  readLine,
  renderedNat,
} from '../harness/pod-redirect.js';
import { addedCapabilities, initNames, type Pod } from '../harness/pods.js';
import { logTail } from '../harness/proc.js';
import { sumCounter } from '../harness/webhook.js';
import { httpGet } from '../harness/net.js';
import { binDir } from '../harness/toolchain.js';
import { waitFor } from '../harness/wait.js';
import { APP_PORT, IMAGES, productpageTemplate, publishIstioRootCert } from '../node/pods.js';
import { ourEntry, pluginCalls, POD_DEADLINE_MS, sandboxId, waitRunning, type PodSite } from '../node/setup.js';

export const NS = 'asm-cni';
export const INSTALLER = 'asm-cni-installer';
export const WEBHOOK = 'asm-cni-webhook';
export const BASELINE = {
  'pod-security.kubernetes.io/enforce': 'baseline',
  'pod-security.kubernetes.io/enforce-version': 'latest',
};
/** Generous: rollouts on a shared two-core machine; only a hang trips it. */
export const ROLLOUT_DEADLINE_MS = 600_000;

/** What the install is pointed at on the tier's node, and what the pod helpers need. */
/** What both files start from: the cluster, the node as the documented steps name it, two meshed namespaces. */
export interface InstallEnv {
  cluster: Cluster;
  cp: ControlPlane;
  site: Site;
  pods: PodSite;
  /** Meshed pods under PodSecurity baseline: the point of the product. */
  bookinfo: string;
  /** Meshed pods where nothing but the webhook's failurePolicy stands between an unrewritten pod and the node. */
  open: string;
}

export async function startInstallEnv(t: Test): Promise<InstallEnv> {
  const cluster = await startCluster(t, { images: IMAGES });
  const { cp } = cluster;
  const { site, pods } = siteOf(cluster);
  t.teardown(() => {
    if (!t.passing()) t.comment(`${cluster.logs()}\n--- asm-cni plugin ---\n${logTail(pods.pluginLog, 30)}`);
  });
  const bookinfo = await meshNamespace(cp, 'bookinfo', BASELINE);
  const open = await meshNamespace(cp, 'mesh-open', {});
  return { cluster, cp, site, pods, bookinfo, open };
}

/**
 * (a) to (c) of both files: the documented install (`how`) makes the installer DaemonSet install the node, the
 * webhook's replicas serve /mutate through their Service, and a meshed Deployment's pod runs redirected. False when
 * one failed (the file stops there).
 */
export async function installServeRedirect(t: Test, env: InstallEnv, steps: Steps, how: string): Promise<boolean> {
  const { cluster, cp, site, pods, bookinfo } = env;
  await t.test(`(a) ${how}: the installer DaemonSet installs the node`, async (t) => {
    if (await runDocumented(t, steps, 'install', cp, site)) await checkInstaller(t, cluster, site);
  });
  if (!t.passing()) return false;
  await t.test('(b) two webhook replicas behind the Service; the API server calls /mutate through it', (t) =>
    checkWebhookThroughService(t, cp, bookinfo),
  );
  if (!t.passing()) return false;
  await t.test('(c) a meshed Deployment: its pod, made by the ReplicaSet controller, runs redirected', async (t) => {
    await checkRedirected(t, pods, await createMeshedDeployment(cp, bookinfo));
  });
  return t.passing();
}

export function siteOf(cluster: Cluster): { site: Site; pods: PodSite } {
  const pluginLog = join(cluster.node.dir, 'asm-cni-plugin.log');
  return {
    site: {
      image: cluster.image,
      netDir: cluster.node.netDir,
      binDir: cluster.node.binDir,
      pluginLogFile: pluginLog,
    },
    pods: { env: { cp: cluster.cp }, node: cluster.node, pluginLog },
  };
}

/** kubectl (the tier's), helm and KUBECONFIG for the documented scripts; helm keeps its state under `dir`. */
export function scriptEnv(cp: ControlPlane): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KUBECONFIG: cp.kubeconfigs.admin,
    PATH: `${binDir()}:${dirname(helmPath())}:${process.env.PATH}`,
    HELM_CACHE_HOME: join(cp.dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(cp.dir, 'helm', 'config'),
    HELM_DATA_HOME: join(cp.dir, 'helm', 'data'),
  };
}

/**
 * Runs a documented script; fails the test with its output (bash -x shows each command) when it fails. First, the
 * pre-flight: what it would apply, rendered, must point at the node's private dirs and the built image only; a doc or
 * manifest change that would install onto the host's own CNI dirs fails here, before anything is applied.
 */
export async function runDocumented(
  t: Test,
  steps: Steps,
  which: 'install' | 'uninstall',
  cp: ControlPlane,
  site: Site,
) {
  const problems = siteProblems((await steps.render())[which], site);
  t.same(problems, [], `pre-flight: the documented ${which} renders onto the node's dirs and the image only`);
  if (problems.length) return false;
  const r = await runSteps(steps, which, scriptEnv(cp));
  t.equal(r.code, 0, `the documented ${which} ran${r.code ? `:\n${r.stderr}\n${r.stdout}` : ''}`);
  return r.code === 0;
}

interface K8sPod extends Pod {
  metadata: Pod['metadata'] & {
    uid?: string;
    deletionTimestamp?: string;
    ownerReferences?: Array<{ kind: string; name: string }>;
  };
  spec: Pod['spec'] & { nodeName?: string };
  status?: any;
}

export const podsOf = async (cp: ControlPlane, ns: string, selector: string): Promise<K8sPod[]> =>
  (await cp.getJson<{ items: K8sPod[] }>(['get', 'pods', '-n', ns, '-l', selector])).items;
export const isReady = (p: K8sPod): boolean =>
  p.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');

/** Waits until the DaemonSet's current generation runs Ready on the node (no old pod left); returns its pod. */
export async function waitInstallerRolledOut(cp: ControlPlane): Promise<K8sPod> {
  return waitFor(
    `DaemonSet ${NS}/${INSTALLER} rolled out and Ready`,
    async () => {
      const ds = await cp.getJson(['get', 'daemonset', '-n', NS, INSTALLER]);
      const s = ds.status ?? {};
      const done =
        s.observedGeneration >= ds.metadata.generation &&
        s.desiredNumberScheduled === 1 &&
        s.updatedNumberScheduled === 1 &&
        s.numberReady === 1 &&
        s.numberAvailable === 1;
      const pods = await podsOf(cp, NS, `app.kubernetes.io/name=${INSTALLER}`);
      if (done && pods.length === 1 && isReady(pods[0]!)) return pods[0];
      // Thrown, not returned: a timeout then names what was last seen, so a broken install says why.
      throw new Error(
        `DaemonSet: ${s.updatedNumberScheduled ?? 0} updated, ${s.numberReady ?? 0} ready of ` +
          `${s.desiredNumberScheduled ?? 0}; ${(await Promise.all(pods.map((p) => describePod(cp, p)))).join('; ') || 'no pod'}`,
      );
    },
    { timeoutMs: ROLLOUT_DEADLINE_MS, intervalMs: 2000 },
  );
}

/** One pod for a failure message: phase, readiness, each container's state, and the end of its log. */
async function describePod(cp: ControlPlane, p: K8sPod): Promise<string> {
  const states = ((p.status?.containerStatuses ?? []) as any[]).map((c) => {
    const [state, detail] = Object.entries(c.state ?? {})[0] ?? ['unknown', {}];
    const why = (detail as { reason?: string; message?: string }).reason ?? '';
    return `${c.name} ${state}${why ? ` (${why})` : ''}, ${c.restartCount} restarts`;
  });
  const log = await cp.kubectl(['logs', '-n', p.metadata.namespace ?? NS, p.metadata.name, '--tail=3']);
  const tail = log.code === 0 ? log.stdout.trim().split('\n').join(' | ') : '';
  return (
    `pod ${p.metadata.name}: ${p.status?.phase ?? 'no phase'}, ${isReady(p) ? 'Ready' : 'not Ready'}; ` +
    `${states.join(', ')}${tail ? `; its log ends: ${tail}` : ''}`
  );
}

/** (a) The installer's pod as the DaemonSet controller, the scheduler and the kubelet made it, and its node files. */
export async function checkInstaller(t: Test, cluster: Cluster, site: Site, image = site.image): Promise<void> {
  const { cp, node } = cluster;
  const pod = await waitInstallerRolledOut(cp);
  t.equal(
    pod.metadata.ownerReferences?.[0]?.kind,
    'DaemonSet',
    'the installer pod was made by the DaemonSet controller',
  );
  t.equal(pod.spec.nodeName, node.name, 'and scheduled onto the node (the test binds nothing)');
  t.ok(isReady(pod), 'Ready by its own readiness probe (/readyz: binary, kubeconfig and entry in place)');
  t.equal(pod.spec.containers.find((c) => c.name === 'installer')?.image, image, 'it runs the image asked for');
  const plugin = join(node.binDir, 'asm-cni');
  t.doesNotThrow(() => accessSync(plugin, constants.X_OK), `the plugin was copied into the node's bin dir`);
  const entry = ourEntry(node);
  t.ok(entry, "the asm-cni entry is in the node's primary conflist");
  const kubeconfig = join(node.netDir, 'asm-cni-kubeconfig');
  t.equal(entry?.kubeconfig, kubeconfig, 'the entry names the kubeconfig at its node path (ASM_HOST_NET_DIR)');
  t.equal(entry?.log_file, site.pluginLogFile, 'and the plugin log file asked for');
  t.ok(existsSync(kubeconfig), 'the kubeconfig is there');
  if (existsSync(kubeconfig))
    t.match(
      readFileSync(kubeconfig, 'utf8'),
      new RegExp(`server: https://${API_CLUSTER_IP.replace(/\./g, '\\.')}:443`),
      "it names the kubernetes Service's ClusterIP",
    );
}

/** The webhook's pods and their /metrics (pod IP, port 9090: the bridge is this namespace's). */
export async function webhookPods(cp: ControlPlane): Promise<K8sPod[]> {
  return podsOf(cp, NS, `app.kubernetes.io/name=${WEBHOOK}`);
}
export async function patchedReviews(pods: K8sPod[]): Promise<number> {
  let sum = 0;
  for (const p of pods) {
    const r = await httpGet(`http://${p.status.podIP}:9090/metrics`);
    sum += sumCounter(r.body, 'asm_cni_webhook_reviews_total', { outcome: 'patched' });
  }
  return sum;
}

/** Waits until the Deployment has `replicas` Ready pods of its current generation and the Service endpoints for them. */
export async function waitWebhookReady(cp: ControlPlane, replicas = 2): Promise<K8sPod[]> {
  return waitFor(
    `Deployment ${NS}/${WEBHOOK}: ${replicas} Ready replicas and as many ready endpoints`,
    async () => {
      const d = await cp.getJson(['get', 'deployment', '-n', NS, WEBHOOK]);
      const s = d.status ?? {};
      if (
        !(s.observedGeneration >= d.metadata.generation) ||
        s.readyReplicas !== replicas ||
        s.updatedReplicas !== replicas ||
        (s.replicas ?? 0) !== replicas
      )
        return undefined;
      const pods = (await webhookPods(cp)).filter((p) => isReady(p) && !p.metadata.deletionTimestamp);
      const slices = await cp.getJson<{ items: any[] }>([
        ...['get', 'endpointslices', '-n', NS, '-l', `kubernetes.io/service-name=${WEBHOOK}`],
      ]);
      const ready = slices.items
        .flatMap((sl) => sl.endpoints ?? [])
        .filter((e: any) => e.conditions?.ready)
        .flatMap((e: any) => e.addresses as string[]);
      const ips = pods.map((p) => p.status.podIP as string);
      return pods.length === replicas && ready.length === replicas && ips.every((ip) => ready.includes(ip))
        ? pods
        : undefined;
    },
    { timeoutMs: ROLLOUT_DEADLINE_MS, intervalMs: 2000 },
  );
}

let probes = 0;
/** An Istio-injected bare pod (the productpage template), created (or with `dryRun` only admitted) in `ns`. */
export async function createMeshedPod(
  cp: ControlPlane,
  ns: string,
  name = `meshed-${++probes}`,
  dryRun = false,
): Promise<{ code: number; stderr: string; stored?: K8sPod; name: string }> {
  const tmpl = productpageTemplate();
  const pod = { ...tmpl, metadata: { ...tmpl.metadata, name } };
  const r = await cp.kubectl(['create', '-n', ns, '-f', '-', '-o', 'json', ...(dryRun ? ['--dry-run=server'] : [])], {
    input: JSON.stringify(pod),
  });
  return { code: r.code, stderr: r.stderr, stored: r.code === 0 ? JSON.parse(r.stdout) : undefined, name };
}

/** (b) The API server calls /mutate through the Service: a pod it stores is rewritten, counted by a webhook pod. */
export async function checkWebhookThroughService(t: Test, cp: ControlPlane, ns: string): Promise<void> {
  const pods = await waitWebhookReady(cp);
  t.equal(pods.length, 2, 'two webhook replicas Ready, each an endpoint of the Service');
  // The API server's webhook configuration cache: until it has zz-asm-cni, pods are admitted unrewritten.
  await waitFor(
    'the API server calling the webhook',
    async () => {
      const r = await createMeshedPod(cp, ns, undefined, true);
      return r.code === 0 && !initNames(r.stored!).includes('istio-init') ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  const before = await patchedReviews(pods);
  const r = await createMeshedPod(cp, ns, undefined, true);
  t.equal(r.code, 0, `a meshed pod is admitted${r.code ? `: ${r.stderr}` : ''}`);
  if (r.stored) {
    t.notOk(initNames(r.stored).includes('istio-init'), 'and stored rewritten: no istio-init');
    t.same(addedCapabilities(r.stored), [], 'no added capabilities');
  }
  t.equal(
    await patchedReviews(pods),
    before + 1,
    'one more patched review, counted by a webhook pod behind the Service',
  );
}

/** A namespace for meshed pods, with istiod's root certificate published in it. */
export async function meshNamespace(cp: ControlPlane, prefix: string, labels: Record<string, string>): Promise<string> {
  const ns = await cp.namespace(prefix, { labels });
  await publishIstioRootCert(cp, ns);
  return ns;
}

/** A Deployment of the Istio-injected productpage template (istio-init + istio-proxy), applied as a user would. */
export async function createMeshedDeployment(cp: ControlPlane, ns: string, name = 'productpage-v1'): Promise<PodRef> {
  const tmpl = productpageTemplate();
  const labels = tmpl.metadata.labels!;
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: labels.app } },
      template: { metadata: { labels, annotations: tmpl.metadata.annotations }, spec: tmpl.spec },
    },
  };
  await cp.kubectlOk(['create', '-n', ns, '-f', '-'], { input: JSON.stringify(deployment) });
  const pod = await waitFor(
    `the ReplicaSet controller's pod of ${ns}/${name}`,
    async () =>
      (await podsOf(cp, ns, `app=${labels.app}`)).find((p) => p.metadata.ownerReferences?.[0]?.kind === 'ReplicaSet'),
    { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
  );
  return { namespace: ns, name: pod.metadata.name };
}

/**
 * (c) The pod runs redirected: istio-validation passed, the plugin logged its ADD, the nat table (crictl -> PID ->
 * nsenter) equals `asm-cni render` of the stored pod, and traffic lands on the stand-in proxy both ways.
 */
export async function checkRedirected(t: Test, site: PodSite, pod: PodRef): Promise<void> {
  const { node } = site;
  const cp = site.env.cp;
  const running = await waitRunning(site, pod);
  t.notOk(initNames(running).includes('istio-init'), `${pod.name}: stored without istio-init`);
  const validation = running.status.initContainerStatuses?.find((s: any) => s.name === 'istio-validation');
  t.equal(validation?.state?.terminated?.exitCode, 0, `${pod.name}: istio-validation saw the redirection`);
  const calls = pluginCalls(site, await sandboxId(site, pod));
  t.ok(
    calls.some((c) => c.cmd === 'ADD' && c.decision === 'redirected' && c.pod === `${pod.namespace}/${pod.name}`),
    `${pod.name}: the plugin, called by containerd, programmed it (its calls: ${describeCalls(calls)})`,
  );
  const flavour = flavourOf(calls);
  const nat = await podNat(await node.containerPid(pod, 'productpage'), flavour);
  for (const chain of ISTIO_CHAINS) t.match(nat.listing, new RegExp(`^Chain ${chain} `, 'm'), `${chain} listed`);
  t.equal(
    normalizeSave(nat.save),
    normalizeSave(await renderedNat(cp, pod, flavour)),
    `${pod.name}: iptables-save equals asm-cni render of the stored pod`,
  );
  const app = (await node.containers(pod, 'productpage')).find((c) => c.state === 'CONTAINER_RUNNING');
  const dial = await node.crictl(['exec', app!.id, '/standin', 'dial', NOWHERE]);
  t.equal(dial.stdout.trim(), `proxy 15001 original-dst ${NOWHERE}`, 'outbound lands on the proxy (15001)');
  const podIP = running.status.podIP as string;
  t.equal(
    await readLine(podIP, APP_PORT),
    `proxy 15006 original-dst ${podIP}:${APP_PORT}`,
    'inbound lands on the proxy (15006)',
  );
}

/** (f) The node as before the install: the conflist's bytes, no plugin, no kubeconfig. */
export function checkNodeRestored(t: Test, cluster: Cluster): void {
  const { node } = cluster;
  t.equal(readFileSync(node.primaryConflist, 'utf8'), node.primaryBytes, 'the primary conflist is back byte for byte');
  t.notOk(existsSync(join(node.binDir, 'asm-cni')), 'the plugin is gone from the bin dir');
  t.notOk(existsSync(join(node.netDir, 'asm-cni-kubeconfig')), 'the kubeconfig is gone');
  t.same(
    readdirSync(node.netDir).filter((f) => /asm-cni/.test(f)),
    [],
    'nothing of asm-cni left in the conf dir',
  );
}

/** (f) After the uninstall, a new meshed pod keeps istio-init, runs, and the plugin is never called for it. */
export async function checkNextPodKeepsIstioInit(t: Test, site: PodSite, ns: string): Promise<void> {
  const cp = site.env.cp;
  const created = await createMeshedPod(cp, ns, 'after-uninstall');
  t.equal(created.code, 0, `a meshed pod is admitted${created.code ? `: ${created.stderr}` : ''}`);
  if (!created.stored) return;
  t.ok(initNames(created.stored).includes('istio-init'), 'stored with istio-init: no webhook rewrote it');
  const pod = { namespace: ns, name: created.name };
  const running = await waitRunning(site, pod);
  const init = running.status.initContainerStatuses?.find((s: any) => s.name === 'istio-init');
  t.equal(init?.state?.terminated?.exitCode, 0, 'istio-init ran');
  const calls = pluginCalls(site, await sandboxId(site, pod));
  t.same(calls, [], 'the plugin was not called for its sandbox (it is in no conflist)');
  t.notOk(
    await podHasIstioChains(await site.node.containerPid(pod, 'productpage')),
    'no ISTIO_ chains from the plugin',
  );
}
