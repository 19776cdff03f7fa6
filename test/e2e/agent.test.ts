// The node agent against the real API server (issue 20): `asm-cni-install run` with the shipped identities and RBAC
// (manifests/base), on a stand-in node (temp dirs; no kubelet: the test plays the kubelet's part by writing pod
// status, and the ReplicaSet controller's by creating replacements).
// - A refused plugin token (its ServiceAccount deleted and recreated) is replaced without restarting the installer.
// - A bare pod failing istio-validation gets an Event naming the cause and the fix, and stays.
// - Repair of an owner whose replacements keep failing stops after its backoff rounds, with Events on pod and owner.
// Every wait has a deadline that only catches a hang.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requirePrereq } from '../harness/prereq.js';
import { toolchainMissing } from '../harness/toolchain.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { freePort, httpGet } from '../harness/net.js';
import { waitFor } from '../harness/wait.js';
import { logTail, startProcess } from '../harness/proc.js';
import { podBoundToken } from '../harness/node-identity.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const installerCli = join(root, 'dist/installer/cli.js');
const NODE = 'e2e-agent-node';
const NS = 'asm-cni';
/** Generous: catches a hang, never a slow machine. */
const DEADLINE = 120_000;

interface Ev {
  reason: string;
  message: string;
  type: string;
  involvedObject: { kind: string; name: string; uid?: string };
  source?: { component?: string; host?: string };
}

const failingPod = (name: string, owner?: { name: string; uid: string }) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    labels: { app: 'web' },
    ...(owner && {
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: owner.name, uid: owner.uid, controller: true },
      ],
    }),
  },
  spec: {
    nodeName: NODE,
    initContainers: [{ name: 'istio-validation', image: 'registry.invalid/proxyv2:1' }],
    containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
  },
});

/** What the kubelet reports for a pod whose istio-validation found no redirection: exit 126, then a crash loop. */
const failedStatus = {
  status: {
    phase: 'Pending',
    initContainerStatuses: [
      {
        name: 'istio-validation',
        image: 'registry.invalid/proxyv2:1',
        imageID: '',
        ready: false,
        restartCount: 1,
        state: { waiting: { reason: 'CrashLoopBackOff' } },
        lastState: { terminated: { exitCode: 126, reason: 'Error' } },
      },
    ],
  },
};

async function createFailingPod(cp: ControlPlane, ns: string, pod: ReturnType<typeof failingPod>): Promise<void> {
  await cp.kubectlOk(['create', '-n', ns, '-f', '-'], { input: JSON.stringify(pod) });
  await cp.kubectlOk([
    'patch',
    'pod',
    '-n',
    ns,
    pod.metadata.name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify(failedStatus),
  ]);
}

/**
 * True once repair deleted the pod. A pod bound to a node is deleted gracefully: the API server marks it and waits for
 * the kubelet, which does not run here, so the test finishes the deletion as the kubelet would.
 */
async function deleted(cp: ControlPlane, ns: string, name: string): Promise<boolean> {
  const r = await cp.kubectl(['get', 'pod', '-n', ns, name, '-o', 'json']);
  if (r.code !== 0) return /NotFound/.test(r.stderr);
  if (!(JSON.parse(r.stdout) as { metadata: { deletionTimestamp?: string } }).metadata.deletionTimestamp) return false;
  await cp.kubectlOk(['delete', 'pod', '-n', ns, name, '--grace-period=0', '--force']);
  return true;
}

async function events(cp: ControlPlane, ns: string, reason: string): Promise<Ev[]> {
  const list = await cp.getJson<{ items: Ev[] }>(['get', 'events', '-n', ns, '--field-selector', `reason=${reason}`]);
  return list.items;
}

async function main(t: Test): Promise<void> {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  // The shipped namespace, identities, RBAC and node policies: the installer runs with exactly the rights the
  // manifests give it, from a token bound to its pod on the node, as the kubelet projects it.
  for (const f of ['namespace.yaml', 'serviceaccounts.yaml', 'rbac.yaml', 'installer-node-scope.yaml'])
    await cp.kubectlOk(['apply', '-f', join(root, 'manifests/base', f)]);
  const installerToken = await podBoundToken(cp, {
    namespace: NS,
    serviceAccount: 'asm-cni-installer',
    node: NODE,
    pod: 'asm-cni-installer-e2e',
  });

  const dir = join(cp.dir, 'agent-node');
  const netDir = join(dir, 'etc/cni/net.d');
  const binDir = join(dir, 'opt/cni/bin');
  const saDir = join(dir, 'sa');
  for (const d of [netDir, binDir, saDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(saDir, 'token'), installerToken);
  writeFileSync(join(saDir, 'ca.crt'), cp.caPem);
  writeFileSync(join(saDir, 'namespace'), NS);
  writeFileSync(
    join(netDir, '10-e2e.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'e2e', plugins: [{ type: 'bridge', bridge: 'cni-agent0' }] }),
  );
  // The installer only copies the plugin binary: any executable stands in for it here.
  const standIn = join(dir, 'asm-cni-standin');
  writeFileSync(standIn, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const kubeconfig = join(netDir, 'asm-cni-kubeconfig');
  const port = await freePort();
  const installer = startProcess(
    'asm-cni-install',
    process.execPath,
    [
      installerCli,
      'run',
      ...['--net-dir', netDir, '--host-net-dir', netDir, '--bin-dir', binDir, '--sa-dir', saDir],
      ...['--kubeconfig-path', kubeconfig, '--plugin-binary', standIn, '--readiness-port', String(port)],
      ...['--plugin-service-account', 'asm-cni-plugin', '--namespace', NS, '--node-name', NODE],
      // short intervals keep the run short; nothing below depends on them beyond the hang deadline
      ...['--resync-interval', '1s', '--repair-interval', '300ms'],
    ],
    {
      logFile: join(dir, 'installer.log'),
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(cp.port),
      },
    },
  );
  t.teardown(() => installer.stop(3000));
  t.teardown(() => {
    if (!t.passing()) t.comment(`installer log:\n${logTail(installer.logFile, 80)}`);
  });
  const abort = () => (installer.hasExited() ? `installer exited:\n${logTail(installer.logFile)}` : undefined);
  const metrics = async () => (await httpGet(`http://127.0.0.1:${port}/metrics`, 30_000)).body;
  await waitFor(
    'installer ready',
    async () => ((await httpGet(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined),
    { timeoutMs: DEADLINE, intervalMs: 200, abort },
  );

  const tokenOf = (): string => /token:\s*(\S+)/.exec(readFileSync(kubeconfig, 'utf8'))?.[1] ?? '';
  const mayGetPods = async (kc: string): Promise<{ ok: boolean; out: string }> => {
    const r = await cp.kubectl(['auth', 'can-i', 'get', 'pods', '-n', 'default'], { kubeconfig: kc });
    return { ok: r.stdout.trim() === 'yes', out: `${r.stdout}${r.stderr}`.trim() };
  };

  await t.test('a refused plugin token is replaced while the installer runs', async (t) => {
    const before = await mayGetPods(kubeconfig);
    t.ok(before.ok, `the installed kubeconfig works at first: ${before.out}`);
    const oldToken = tokenOf();
    const oldKubeconfig = join(dir, 'old.kubeconfig');
    writeFileSync(oldKubeconfig, readFileSync(kubeconfig), { mode: 0o600 });

    // What `kubectl delete -k` + `apply -k` does to the plugin's identity.
    await cp.kubectlOk(['delete', 'serviceaccount', 'asm-cni-plugin', '-n', NS]);
    await cp.kubectlOk(['apply', '-f', join(root, 'manifests/base/serviceaccounts.yaml')]);
    await waitFor(
      'the old plugin token refused',
      async () => (!(await mayGetPods(oldKubeconfig)).ok ? true : undefined),
      {
        timeoutMs: DEADLINE,
        intervalMs: 300,
      },
    );
    t.match((await mayGetPods(oldKubeconfig)).out, /Unauthorized|must be logged in/i, 'the old token: 401');

    await waitFor(
      "the plugin's kubeconfig working again",
      async () => (tokenOf() !== oldToken && (await mayGetPods(kubeconfig)).ok ? true : undefined),
      { timeoutMs: DEADLINE, intervalMs: 300, abort },
    );
    t.pass('the kubeconfig carries a new token that the API server accepts');
    t.notOk(installer.hasExited(), 'without restarting the installer');
    t.match(await metrics(), /asm_cni_installer_token_refreshes_total\{reason="rejected"\} [1-9]/, 'counted');
    t.match(readFileSync(installer.logFile, 'utf8'), /refused the plugin's token/, 'and logged');
  });

  await t.test('a bare pod failing istio-validation: an Event with cause and fix, the pod stays', async (t) => {
    const ns = await cp.namespace('e2e-agent-bare');
    await createFailingPod(cp, ns, failingPod('solo'));
    const [ev] = await waitFor(
      'the IstioValidationFailedNoController Event',
      async () => {
        const evs = await events(cp, ns, 'IstioValidationFailedNoController');
        return evs.length > 0 ? evs : undefined;
      },
      { timeoutMs: DEADLINE, intervalMs: 300, abort },
    );
    t.match(ev, { type: 'Warning', involvedObject: { kind: 'Pod', name: 'solo' } });
    t.match(ev!.source, { component: 'asm-cni-install', host: NODE });
    t.match(ev!.message, new RegExp(`started on node ${NODE} before the asm-cni plugin was installed`), 'the cause');
    t.match(ev!.message, /delete and recreate the pod/, 'the fix');
    const described = await cp.kubectlOk(['describe', 'pod', '-n', ns, 'solo']);
    t.match(described, /IstioValidationFailedNoController/, 'shown by kubectl describe pod');
    t.notOk(await deleted(cp, ns, 'solo'), 'the pod is not deleted');
    t.match(await metrics(), /asm_cni_installer_repaired_pods_total\{outcome="no-controller"\} 1/);
  });

  await t.test('replacements that keep failing: repair backs off, stops, and says so on pod and owner', async (t) => {
    const ns = await cp.namespace('e2e-agent-rs');
    const rs = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web' },
      spec: {
        replicas: 0, // no controller-manager runs: the test creates the replacements itself
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: failingPod('template').spec },
      },
    };
    await cp.kubectlOk(['create', '-n', ns, '-f', '-'], { input: JSON.stringify(rs) });
    const uid = (await cp.getJson<{ metadata: { uid: string } }>(['get', 'rs', '-n', ns, 'web'])).metadata.uid;
    const owner = { name: 'web', uid };

    // The controller's part: a failing replacement for each pod repair deletes, until repair says it stopped.
    let n = 0;
    let current = `web-${n}`;
    await createFailingPod(cp, ns, failingPod(current, owner));
    const stopped = await waitFor(
      'the RepairStopped Events',
      async () => {
        const evs = await events(cp, ns, 'RepairStopped');
        if (evs.some((e) => e.involvedObject.kind === 'ReplicaSet')) return evs;
        if (await deleted(cp, ns, current)) {
          current = `web-${++n}`;
          await createFailingPod(cp, ns, failingPod(current, owner));
        }
        return undefined;
      },
      { timeoutMs: DEADLINE, intervalMs: 200, abort },
    );
    t.equal(n, 6, 'six rounds of deletion (the default for any repair interval), then no more');
    t.notOk(await deleted(cp, ns, current), 'the last replacement is left in place');
    const onOwner = stopped.find((e) => e.involvedObject.kind === 'ReplicaSet')!;
    t.match(onOwner.involvedObject, { name: 'web', uid });
    t.match(
      onOwner.message,
      /ReplicaSet\/web 6 times.*until the plugin is reinstalled on the node or the installer restarts/s,
    );
    t.ok(
      stopped.some((e) => e.involvedObject.kind === 'Pod' && e.involvedObject.name === current),
      'an Event on the pod left in place',
    );
    t.match(await cp.kubectlOk(['describe', 'rs', '-n', ns, 'web']), /RepairStopped/, 'shown by kubectl describe rs');
    t.match(await metrics(), /asm_cni_installer_repaired_pods_total\{outcome="stopped"\} 1/);
    t.match(await metrics(), /asm_cni_installer_repaired_pods_total\{outcome="deleted"\} 6/);
  });
}

const missing = toolchainMissing();
if (
  requirePrereq(t, missing === undefined, missing ?? '') &&
  requirePrereq(t, existsSync(installerCli), `${installerCli} not built (npm run build)`)
) {
  await t.test('agent: installer self-healing against the API server', (t) => main(t));
}
