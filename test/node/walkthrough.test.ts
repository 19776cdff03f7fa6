// The node tier: a real kubelet and containerd start the pods the webhook rewrote, and containerd calls the CNI chain
// (bridge -> asm-cni) written by the product's installer. Scenarios of issue 14, in the order one node lives through
// them: 1 ASM's documented walk-through, 2 an excluded namespace, 3 pod deletion (DEL), 4 the API server unreachable
// during ADD, 7 uninstall, 5 the node-start race and repair, 6 the primary CNI rewriting its conflist meanwhile.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { requirePrereq, isRoot } from '../harness/prereq.js';
import { toolchainMissing, binPath } from '../harness/toolchain.js';
import { insideNodeNamespace, type PodRef } from '../harness/node.js';
import { addedCapabilities, initNames } from '../harness/pods.js';
import { oraclesDir } from '../harness/oracles.js';
import { run, runOk, startProcess } from '../harness/proc.js';
import { freePorts, httpGet } from '../harness/net.js';
import { waitFor } from '../harness/wait.js';
import { applyOverlay, waitWebhookActive } from '../harness/scenario.js';
import {
  bringUpNode,
  getPod,
  ourEntry,
  podEvents,
  POD_DEADLINE_MS,
  sandboxId,
  pluginCalls,
  waitInstalled,
  waitRunning,
  type NodeEnv,
} from './setup.js';
import {
  describeCalls,
  flavourOf,
  ISTIO_CHAINS,
  normalizeSave,
  NOWHERE,
  pluginBinary,
  podHasIstioChains,
  podNat,
  readLine,
  renderedNat,
} from '../harness/pod-redirect.js';
import { APP_PORT, createOwnedPod, createWorkload, productpageTemplate, publishIstioRootCert } from './pods.js';

const BASELINE = {
  'pod-security.kubernetes.io/enforce': 'baseline',
  'pod-security.kubernetes.io/enforce-version': 'latest',
};
/** The product's own check on the node (`asm-cni verify`, docs/verify.md) with the node's CRI and conf dir. */
async function verifyOnNode(ne: NodeEnv, target: string[]): Promise<{ code: number; out: string }> {
  const r = await run(pluginBinary, [
    'verify',
    ...target,
    '--cni-conf-dir',
    ne.node.netDir,
    '--crictl',
    ne.node.crictlPath,
    '--cri-endpoint',
    `unix://${ne.node.socket}`,
  ]);
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

async function main(t: Test): Promise<void> {
  const ne = await bringUpNode(t);
  const { env, node } = ne;
  const cp = env.cp;

  const inst = ne.installer.start(join(node.dir, 'installer-run.log'));
  t.teardown(() => inst.stop());
  await waitInstalled(node);

  let productpage: PodRef | undefined;
  const istioRootCert = (ns: string): Promise<void> => publishIstioRootCert(cp, ns);

  await t.test('1. ASM walk-through: productpage by a user with only edit, PodSecurity baseline', async (t) => {
    const ns = await cp.namespace('bookinfo', { labels: BASELINE, devEdit: true });
    await publishIstioRootCert(cp, ns);
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

    const calls = pluginCalls(ne, await sandboxId(ne, pod));
    t.ok(
      calls.some((c) => c.cmd === 'ADD' && c.decision === 'redirected' && c.pod === `${ns}/${pod.name}`),
      `the plugin, called by containerd for the pod, programmed it (its calls: ${describeCalls(calls)})`,
    );

    // The documented check: crictl -> PID -> nsenter.
    const pid = await node.containerPid(pod, 'productpage');
    const flavour = flavourOf(calls);
    const nat = await podNat(pid, flavour);
    for (const chain of ISTIO_CHAINS) t.match(nat.listing, new RegExp(`^Chain ${chain} `, 'm'), `${chain} listed`);
    t.equal(
      normalizeSave(nat.save),
      normalizeSave(await renderedNat(cp, pod, flavour)),
      'iptables-save equals asm-cni render',
    );
    const verified = await verifyOnNode(ne, [`${pod.namespace}/${pod.name}`]);
    t.equal(verified.code, 0, `asm-cni verify NS/POD on the node: match (${verified.out})`);

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

  await t.test('2. a pod in an excluded namespace keeps istio-init; the plugin programs nothing', async (t) => {
    const ns = await cp.namespace('', { name: 'istio-system' });
    await istioRootCert(ns);
    const w = await createWorkload(cp, ns, productpageTemplate(), 'admin', 'excluded');
    const pod = { namespace: ns, name: w.pod };
    t.ok(initNames(await getPod(ne, pod)).includes('istio-init'), 'stored with istio-init (the webhook skipped it)');
    await node.bind(pod);
    const running = await waitRunning(ne, pod);
    const init = running.status.initContainerStatuses?.find((s: any) => s.name === 'istio-init');
    t.equal(init?.state?.terminated?.exitCode, 0, 'istio-init ran (its stand-in programs nothing)');
    const calls = pluginCalls(ne, await sandboxId(ne, pod));
    t.ok(
      calls.some((c) => c.cmd === 'ADD' && c.decision === 'skipped' && /exclude/.test(c.reason ?? '')),
      `the plugin was called and skipped the pod as excluded (its calls: ${describeCalls(calls)})`,
    );
    t.notOk(
      calls.some((c) => c.decision === 'redirected'),
      'and applied nothing',
    );
    t.notOk(await podHasIstioChains(await node.containerPid(pod, 'productpage')), 'no ISTIO_ chains in the pod');
    const verified = await verifyOnNode(ne, [`${ns}/${pod.name}`]);
    t.equal(verified.code, 3, `asm-cni verify: not-redirected (${verified.out})`);
  });

  await t.test(
    'the node audit: silent on a healthy node, a rule deleted by hand is a metric and an Event',
    async (t) => {
      if (!productpage) return t.fail('scenario 1 made no pod');
      const pod = productpage;
      const [port] = await freePorts(1);
      const audit = startProcess(
        'asm-cni-audit',
        pluginBinary,
        [
          'audit',
          '--interval=2s',
          `--listen=127.0.0.1:${port}`,
          `--cni-conf-dir=${node.netDir}`,
          `--crictl=${node.crictlPath}`,
          `--cri-endpoint=unix://${node.socket}`,
          `--events-kubeconfig=${cp.kubeconfigs.admin}`,
        ],
        { logFile: join(node.dir, 'audit.log'), env: { ...process.env, NODE_NAME: node.name } },
      );
      t.teardown(() => audit.stop());
      const metrics = async (): Promise<Record<string, number>> => {
        const text = (await httpGet(`http://127.0.0.1:${port}/metrics`)).body;
        return Object.fromEntries(
          [...text.matchAll(/^(asm_cni_audit_\w+(?:\{verdict="[a-z-]+"\})?) (\S+)$/gm)].map((m) => [
            m[1]!,
            Number(m[2]),
          ]),
        );
      };
      const auditEvents = async () =>
        (await podEvents(ne, pod)).filter((e) => e.reason === 'RedirectionDrift' || e.reason === 'RedirectionMissing');
      // Two full rounds over the healthy node: pods counted, nothing drifts, no Event.
      const healthy = await waitFor(
        'two audit rounds',
        async () => {
          const m = await metrics();
          return (m.asm_cni_audit_runs_total ?? 0) >= 2 && m.asm_cni_audit_last_run_timestamp_seconds! > 0
            ? m
            : undefined;
        },
        { timeoutMs: POD_DEADLINE_MS, intervalMs: 500 },
      );
      t.equal(healthy['asm_cni_audit_pods{verdict="drift"}'], 0, 'a healthy node: no drift');
      t.ok(healthy['asm_cni_audit_pods{verdict="match"}']! >= 1, 'the walk-through pod matches');
      t.equal(healthy.asm_cni_audit_failures_total, 0, 'every round listed the node');
      t.same(await auditEvents(), [], 'and no Event');

      // A rule deleted by hand inside the running pod.
      const pid = await node.containerPid(pod, 'productpage');
      const flavour = flavourOf(pluginCalls(ne, await sandboxId(ne, pod)));
      await runOk('nsenter', [
        '-t',
        String(pid),
        '-n',
        `iptables-${flavour}`,
        '-t',
        'nat',
        '-D',
        'ISTIO_OUTPUT',
        '-d',
        '127.0.0.1/32',
        '-j',
        'RETURN',
      ]);
      const drifted = await waitFor(
        'the audit reporting the drift',
        async () => {
          const m = await metrics();
          return m['asm_cni_audit_pods{verdict="drift"}'] === 1 ? m : undefined;
        },
        { timeoutMs: POD_DEADLINE_MS, intervalMs: 500 },
      );
      t.equal(drifted['asm_cni_audit_pods{verdict="drift"}'], 1, 'the metric counts the pod as drifted');
      const [event] = await waitFor(
        'the Warning Event on the pod',
        async () => {
          const evs = await auditEvents();
          return evs.length ? evs : undefined;
        },
        { timeoutMs: POD_DEADLINE_MS, intervalMs: 500 },
      );
      t.equal(event!.reason, 'RedirectionDrift');
      t.match(event!.message, /ISTIO_OUTPUT.*127\.0\.0\.1\/32/, 'the Event names the missing rule');
      const verified = await verifyOnNode(ne, [`${pod.namespace}/${pod.name}`]);
      t.equal(verified.code, 1, `asm-cni verify agrees: drift (${verified.out})`);
    },
  );

  await t.test(
    "the plugin's ServiceAccount recreated: the installer re-mints, a new meshed pod runs redirected",
    async (t) => {
      const kubeconfig = ourEntry(node)!.kubeconfig as string;
      const before = readFileSync(kubeconfig, 'utf8');
      await cp.kubectlOk(['delete', 'serviceaccount', '-n', 'asm-cni', 'asm-cni-plugin']);
      await cp.kubectlOk(['create', 'serviceaccount', '-n', 'asm-cni', 'asm-cni-plugin']);
      await waitFor(
        'the installer rewriting the plugin kubeconfig with a new token',
        async () => (readFileSync(kubeconfig, 'utf8') !== before ? true : undefined),
        { timeoutMs: POD_DEADLINE_MS, intervalMs: 500 },
      );
      const ns = await cp.namespace('after-sa', { labels: BASELINE, devEdit: true });
      await istioRootCert(ns);
      const w = await createWorkload(cp, ns, productpageTemplate(), 'dev', 'after-sa');
      const pod = { namespace: ns, name: w.pod };
      await node.bind(pod);
      await waitRunning(ne, pod);
      const calls = pluginCalls(ne, await sandboxId(ne, pod));
      t.ok(
        calls.some((c) => c.cmd === 'ADD' && c.decision === 'redirected'),
        `the plugin read the pod with the new token and programmed it (its calls: ${describeCalls(calls)})`,
      );
      const verified = await verifyOnNode(ne, [`${ns}/${pod.name}`]);
      t.equal(verified.code, 0, `asm-cni verify: match (${verified.out})`);
    },
  );

  await t.test('3. pod deletion: DEL, then the second DEL with an empty CNI_NETNS; nothing is left', async (t) => {
    if (!productpage) return t.fail('scenario 1 made no pod');
    const pod = productpage;
    const sandbox = await sandboxId(ne, pod);
    const netnsPath = await node.sandboxNetns(sandbox);
    const podIP = (await getPod(ne, pod)).status.podIP as string;
    const ipamFile = join(node.dir, 'ipam', 'asm-node-pods', podIP);
    t.ok(existsSync(netnsPath), `the sandbox's netns is pinned at ${netnsPath}`);
    t.ok(existsSync(ipamFile), `host-local reserved ${podIP}`);
    await cp.kubectlOk(['delete', 'pod', '-n', pod.namespace, pod.name, '--wait=false']);
    await waitFor(
      'the kubelet finishing the deletion',
      async () => ((await cp.kubectl(['get', 'pod', '-n', pod.namespace, pod.name])).code !== 0 ? true : undefined),
      { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
    );
    // The kubelet stops the sandbox (DEL with the netns), and its garbage collection stops it again before removing
    // it: containerd then passes an empty CNI_NETNS, the netns being gone.
    await waitFor(
      'the sandbox removed by the kubelet',
      async () => ((await node.sandboxes(pod)).some((s) => s.id === sandbox) ? undefined : true),
      { timeoutMs: POD_DEADLINE_MS, intervalMs: 2000 },
    );
    const dels = pluginCalls(ne, sandbox).filter((c) => c.cmd === 'DEL');
    t.ok(
      dels.some((c) => c.decision === 'removed' && c.netns === netnsPath),
      `DEL with the netns removed the redirection (DELs: ${describeCalls(dels)})`,
    );
    t.ok(
      dels.some((c) => c.netns === undefined && c.decision === 'skipped' && /gone/.test(c.reason ?? '')),
      'the second DEL came with an empty CNI_NETNS and succeeded',
    );
    t.notOk(
      dels.some((c) => c.decision === 'failed'),
      'no DEL failed',
    );
    t.notOk(existsSync(netnsPath), 'the netns pin is gone');
    t.notOk(existsSync(ipamFile), 'the address is released');
    t.same(await node.containers(pod), [], 'no container of the pod is left');
  });

  await t.test(
    '4. API server unreachable during ADD: the sandbox fails with the plugin message; retry succeeds',
    async (t) => {
      const ns = await cp.namespace('outage');
      await istioRootCert(ns);
      const w = await createWorkload(cp, ns, productpageTemplate(), 'admin', 'outage');
      const pod = { namespace: ns, name: w.pod };
      ne.relay.block();
      t.teardown(() => ne.relay.unblock());
      try {
        await node.bind(pod);
        const event = await waitFor(
          'a FailedCreatePodSandBox event naming asm-cni',
          async () =>
            (await podEvents(ne, pod)).find((e) => e.reason === 'FailedCreatePodSandBox' && /asm-cni/.test(e.message)),
          { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
        );
        t.match(event.message, /asm-cni: /, `the pod's events carry the plugin's message: ${event.message}`);
        t.match(event.message, new RegExp(`${ns}/${pod.name}`), 'naming the pod');
        t.not((await getPod(ne, pod)).status?.phase, 'Running', 'the pod is not running meanwhile');
      } finally {
        ne.relay.unblock();
      }
      const running = await waitRunning(ne, pod);
      const validation = running.status.initContainerStatuses?.find((s: any) => s.name === 'istio-validation');
      t.equal(validation?.state?.terminated?.exitCode, 0, "the kubelet's retry: istio-validation saw the redirection");
      const calls = pluginCalls(ne, await sandboxId(ne, pod));
      t.ok(
        calls.some((c) => c.cmd === 'ADD' && c.decision === 'redirected'),
        `the retried ADD programmed the pod (${describeCalls(calls)})`,
      );
    },
  );

  await t.test('7. uninstall: entry removed, original conflist bytes back, new pods keep istio-init', async (t) => {
    await inst.stop();
    const r = await ne.installer.exec('uninstall');
    t.equal(r.code, 0, `asm-cni-install uninstall exited 0${r.code ? `: ${r.stderr}` : ''}`);
    t.equal(
      readFileSync(node.primaryConflist, 'utf8'),
      node.primaryBytes,
      'the primary conflist has its original bytes',
    );
    t.equal(ourEntry(node), undefined, 'no asm-cni entry');
    t.notOk(existsSync(join(node.binDir, 'asm-cni')), 'the plugin binary is removed');
    t.same(readdirSync(node.netDir), ['10-asm-node.conflist'], 'nothing of ours left in the conf dir');
    for (const c of env.shipped) await cp.kubectlOk(['delete', 'mutatingwebhookconfiguration', c.metadata.name]);
    await waitWebhookActive(env, false);

    const ns = await cp.namespace('after-uninstall');
    await istioRootCert(ns);
    const w = await createWorkload(cp, ns, productpageTemplate(), 'admin', 'after');
    const pod = { namespace: ns, name: w.pod };
    t.ok(initNames(await getPod(ne, pod)).includes('istio-init'), 'a new pod keeps istio-init');
    await node.bind(pod);
    await waitRunning(ne, pod);
    t.same(pluginCalls(ne, await sandboxId(ne, pod)), [], 'the plugin was not called for it');
    t.notOk(await podHasIstioChains(await node.containerPid(pod, 'productpage')), 'no ISTIO_ chains from the plugin');
  });

  await t.test(
    '5. node-start race: a pod started before the entry fails validation, is repaired, and the new one is redirected',
    async (t) => {
      const applied = await applyOverlay(env);
      t.equal(applied.code, 0, 'the webhook configuration is back');
      await waitWebhookActive(env, true);
      t.equal(ourEntry(node), undefined, 'no asm-cni entry on the node yet');
      const ns = await cp.namespace('race', { labels: BASELINE, devEdit: true });
      await istioRootCert(ns);
      const template = productpageTemplate();
      const w = await createWorkload(cp, ns, template, 'dev', 'race');
      const pod = { namespace: ns, name: w.pod };
      const first = await getPod(ne, pod);
      t.notOk(initNames(first).includes('istio-init'), 'rewritten: no istio-init');
      await node.bind(pod);
      await waitFor(
        'istio-validation failing with 126 (no redirection)',
        async () => {
          const p = await getPod(ne, pod);
          const s = p.status?.initContainerStatuses?.find((c: any) => c.name === 'istio-validation');
          const code = s?.state?.terminated?.exitCode ?? s?.lastState?.terminated?.exitCode;
          return code === 126 ? true : undefined;
        },
        { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
      );
      t.pass('istio-validation failed with exit 126: the pod started without redirection');

      const again = ne.installer.start(join(node.dir, 'installer-run-2.log'), ['--repair-interval', '5s']);
      t.teardown(() => again.stop());
      await waitInstalled(node);
      await waitFor(
        'the repair controller deleting the pod',
        async () => {
          const r = await cp.kubectl(['get', 'pod', '-n', ns, pod.name, '-o', 'json']);
          if (r.code !== 0) return true;
          return JSON.parse(r.stdout).metadata.uid !== first.metadata.uid ? true : undefined;
        },
        { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
      );
      t.pass('the repair controller deleted the pod');
      // The ReplicaSet controller's part (it does not run here): a replacement pod.
      const replacement = { namespace: ns, name: `${w.replicaSet}-r2`.slice(0, 63) };
      await createOwnedPod(cp, ns, template, replacement.name, first.metadata.ownerReferences as unknown[], 'dev');
      await node.bind(replacement);
      const running = await waitRunning(ne, replacement);
      const validation = running.status.initContainerStatuses?.find((s: any) => s.name === 'istio-validation');
      t.equal(validation?.state?.terminated?.exitCode, 0, 'the recreated pod passes istio-validation');
      const calls = pluginCalls(ne, await sandboxId(ne, replacement));
      t.ok(
        calls.some((c) => c.cmd === 'ADD' && c.decision === 'redirected'),
        `and the plugin programmed it (${describeCalls(calls)})`,
      );
    },
  );

  await t.test(
    '6. the primary CNI rewrites its conflist while pods are created: each ends with one source',
    async (t) => {
      const inst6 = ne.installer.start(join(node.dir, 'installer-run-3.log'), ['--repair-interval', '5s']);
      t.teardown(() => inst6.stop());
      await waitInstalled(node);
      const ns = await cp.namespace('churn', { labels: BASELINE, devEdit: true });
      await istioRootCert(ns);
      const template = productpageTemplate();
      const w = await createWorkload(cp, ns, template, 'dev', 'churn');
      const owners = (await getPod(ne, { namespace: ns, name: w.pod })).metadata.ownerReferences as unknown[];
      const PODS = 5;
      // slot i: the current pod of replica i (replaced, as the ReplicaSet controller would, when repair deletes it)
      const slots: Array<{ name: string; uid?: string; generation: number }> = [{ name: w.pod, generation: 0 }];
      for (let i = 1; i < PODS; i++) {
        const name = `${w.replicaSet}-s${i}`;
        await createOwnedPod(cp, ns, template, name, owners, 'dev');
        slots.push({ name, generation: 0 });
      }

      // The primary CNI agent writes its conflist back (without our entry, atomically) right before each pod is bound:
      // the kubelet's sandbox creation races the installer's restore. Either outcome must end with one source.
      let rewrites = 0;
      for (const s of slots) {
        await waitInstalled(node);
        const tmp = `${node.primaryConflist}.tmp`;
        writeFileSync(tmp, node.primaryBytes);
        renameSync(tmp, node.primaryConflist);
        rewrites++;
        await node.bind({ namespace: ns, name: s.name });
      }
      t.equal(rewrites, PODS, 'the primary conflist was rewritten as each pod was bound');

      // Until every replica runs: a pod deleted by repair is replaced (the ReplicaSet controller's part).
      let repaired = 0;
      for (const s of slots) {
        await waitFor(
          `replica ${s.name} running`,
          async () => {
            const r = await cp.kubectl(['get', 'pod', '-n', ns, s.name, '-o', 'json']);
            if (r.code !== 0) {
              repaired++;
              s.generation++;
              s.name = `${w.replicaSet}-s${slots.indexOf(s)}-r${s.generation}`;
              await createOwnedPod(cp, ns, template, s.name, owners, 'dev');
              await node.bind({ namespace: ns, name: s.name });
              return undefined;
            }
            const p = JSON.parse(r.stdout);
            const ready = p.status?.conditions?.find((c: { type: string }) => c.type === 'Ready')?.status === 'True';
            return p.status?.phase === 'Running' && ready ? true : undefined;
          },
          { timeoutMs: POD_DEADLINE_MS, intervalMs: 1000 },
        );
      }
      t.comment(`${repaired} pod(s) started without the entry, failed validation and were repaired`);
      for (const s of slots) {
        const pod = { namespace: ns, name: s.name };
        const stored = await getPod(ne, pod);
        t.notOk(initNames(stored).includes('istio-init'), `${s.name}: no istio-init`);
        const validation = stored.status.initContainerStatuses?.find((c: any) => c.name === 'istio-validation');
        t.equal(validation?.state?.terminated?.exitCode, 0, `${s.name}: istio-validation passed`);
        const flavour = flavourOf(pluginCalls(ne, await sandboxId(ne, pod)));
        const nat = await podNat(await node.containerPid(pod, 'productpage'), flavour);
        t.equal(
          normalizeSave(nat.save),
          normalizeSave(await renderedNat(cp, pod, flavour)),
          `${s.name}: the rules once, as rendered`,
        );
      }
      const verified = await verifyOnNode(ne, ['--node']);
      t.equal(verified.code, 0, `asm-cni verify --node: a healthy node\n${verified.out}`);
    },
  );
}

const missing = toolchainMissing() ?? (existsSync(binPath('kubelet')) ? undefined : 'kubelet not built');
if (
  requirePrereq(t, isRoot(), 'containerd, kubelet and network namespaces need root') &&
  requirePrereq(t, insideNodeNamespace(), 'run through test/node/run.sh (it makes the private namespaces)') &&
  requirePrereq(t, missing === undefined, missing ?? '') &&
  requirePrereq(
    t,
    existsSync(join(oraclesDir, 'inject')),
    `Istio's injection goldens not found in ${oraclesDir} (set ASM_ORACLES)`,
  ) &&
  requirePrereq(t, existsSync(pluginBinary), `${pluginBinary} not built (npm run build)`)
) {
  await t.test('node: kubelet + containerd call the plugin', (t) => main(t));
}
