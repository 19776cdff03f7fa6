// Scenarios 8 and 6 of the end-to-end suite: the node half against the real API server. The installer (`once`) writes
// the plugin's kubeconfig for an identity that may only get pods; the built plugin, run as a CNI runtime runs it,
// reads the stored pod and programs (or not) its rules in a fresh network namespace. Then the webhook is stopped and
// the shipped failurePolicy's documented outcome is checked.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrereq, isRoot } from '../harness/prereq.js';
import { repoRoot, toolchainMissing } from '../harness/toolchain.js';
import { hasKustomization } from '../harness/manifests.js';
import { initNames, oraclePod, plainPod } from '../harness/pods.js';
import { startFakeInjector } from '../harness/injector.js';
import {
  applyOverlay,
  bringUp,
  createPod,
  getPod,
  registerInjector,
  shippedWebhooks,
  waitWebhookActive,
} from '../harness/scenario.js';
import { createNetns, hasIstioChains, stripComments, type Netns } from '../harness/netns.js';
import { run, type RunResult } from '../harness/proc.js';
import { installerIdentity } from '../harness/node-install.js';
import { podBoundToken } from '../harness/node-identity.js';

const installerCli = join(repoRoot, 'dist/installer/cli.js');
const pluginBinary = join(repoRoot, 'dist/cni/asm-cni');
const goldenDir = join(repoRoot, '..', 'shared', 'oracles', 'istio', 'iptables', 'cni-plugin-iptables-save');

interface Node {
  netDir: string;
  binDir: string;
  saDir: string;
  kubeconfig: string;
  conflist: string;
}

async function main(t: Test): Promise<void> {
  const env = await bringUp(t);
  t.teardown(() => {
    if (!t.passing()) t.comment(`webhook log tail:\n${env.webhook.logs()}\n${env.cp.logs()}`);
  });
  const applied = await applyOverlay(env);
  if (applied.code !== 0) throw new Error(`kubectl apply -k of the local overlay failed: ${applied.stderr}`);
  await waitWebhookActive(env, true);

  const nsList: Netns[] = [];
  t.teardown(async () => {
    for (const n of nsList) await n.remove();
  });
  const netns = async (): Promise<Netns> => {
    const n = await createNetns();
    nsList.push(n);
    return n;
  };

  // The installer's identity and the plugin's. As shipped: the installer DaemonSet's ServiceAccount requests a token
  // for the plugin's ServiceAccount (--plugin-service-account). When the manifests name no plugin ServiceAccount, the
  // test makes one whose only right is get pods and hands the installer its token directly.
  const ids = installerIdentity(env.rendered);
  let saToken: string;
  let installerArgs: string[] = [];
  if (ids) {
    t.comment(
      `installer runs as ${ids.namespace}/${ids.installerSA}, plugin identity ${ids.namespace}/${ids.pluginSA} (from manifests/)`,
    );
    // As the kubelet mints it for the DaemonSet's pod: bound to that pod on a node, so the shipped admission
    // policies (manifests/base/installer-node-scope.yaml) let it request plugin tokens bound to that node.
    const nodeName = 'e2e-node';
    saToken = await podBoundToken(env.cp, {
      namespace: ids.namespace,
      serviceAccount: ids.installerSA,
      node: nodeName,
      pod: 'asm-cni-installer-e2e',
    });
    installerArgs = ['--plugin-service-account', ids.pluginSA, '--namespace', ids.namespace, '--node-name', nodeName];
  } else {
    t.comment('manifests/ name no plugin ServiceAccount: using a test ServiceAccount that may only get pods');
    const ns = await env.cp.namespace('e2e-node-sys');
    await env.cp.kubectlOk(['create', 'serviceaccount', 'asm-cni-plugin', '-n', ns]);
    await env.cp.kubectlOk(['create', 'clusterrole', 'e2e-asm-cni-plugin', '--verb=get', '--resource=pods']);
    await env.cp.kubectlOk([
      'create',
      'clusterrolebinding',
      'e2e-asm-cni-plugin',
      '--clusterrole=e2e-asm-cni-plugin',
      `--serviceaccount=${ns}:asm-cni-plugin`,
    ]);
    saToken = (await env.cp.kubectlOk(['create', 'token', 'asm-cni-plugin', '-n', ns, '--duration=1h'])).trim();
  }
  const sysNs = await env.cp.namespace('e2e-node-sys2');

  const node: Node = {
    netDir: join(env.cp.dir, 'node/etc/cni/net.d'),
    binDir: join(env.cp.dir, 'node/opt/cni/bin'),
    saDir: join(env.cp.dir, 'node/sa'),
    kubeconfig: '',
    conflist: '',
  };
  node.kubeconfig = join(node.netDir, 'asm-cni-kubeconfig');
  node.conflist = join(node.netDir, '10-e2e.conflist');

  await t.test('8. installer once writes binary, kubeconfig and conflist entry', async (t) => {
    for (const d of [node.netDir, node.binDir, node.saDir]) mkdirSync(d, { recursive: true });
    writeFileSync(join(node.saDir, 'token'), saToken);
    writeFileSync(join(node.saDir, 'ca.crt'), env.cp.caPem);
    writeFileSync(join(node.saDir, 'namespace'), ids?.namespace ?? sysNs);
    const primary = {
      cniVersion: '1.0.0',
      name: 'e2e-pod-network',
      plugins: [{ type: 'bridge', bridge: 'cni-e2e0', ipam: { type: 'host-local', subnet: '192.0.2.0/24' } }],
    };
    writeFileSync(node.conflist, JSON.stringify(primary, null, 2));
    const config = join(env.cp.dir, 'node/asm-cni-config.yaml');
    writeFileSync(config, 'excludeNamespaces: [kube-system, istio-system]\n');
    const r = await run(
      'node',
      [
        installerCli,
        'once',
        '--net-dir',
        node.netDir,
        '--host-net-dir',
        node.netDir,
        '--bin-dir',
        node.binDir,
        '--sa-dir',
        node.saDir,
        '--config',
        config,
        '--kubeconfig-path',
        node.kubeconfig,
        '--readiness-port',
        '0',
        '--plugin-log-file',
        join(env.cp.dir, 'asm-cni.log'),
        ...installerArgs,
      ],
      {
        env: { ...process.env, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(env.cp.port) },
        timeoutMs: 60_000,
      },
    );
    t.equal(r.code, 0, `installer once exited 0${r.code ? `: ${r.stderr}${r.stdout}` : ''}`);
    t.ok(existsSync(join(node.binDir, 'asm-cni')), 'plugin binary installed');
    t.ok(existsSync(node.kubeconfig), 'kubeconfig written');
    if (existsSync(node.kubeconfig)) {
      t.equal(statSync(node.kubeconfig).mode & 0o777, 0o600, 'kubeconfig mode 0600');
      const kc = readFileSync(node.kubeconfig, 'utf8');
      t.match(kc, `https://127.0.0.1:${env.cp.port}`, 'kubeconfig names the API server');
      t.match(kc, /token:\s*\S+/, 'with a token');
    }
    const list = JSON.parse(readFileSync(node.conflist, 'utf8'));
    const ours = list.plugins?.[list.plugins.length - 1];
    t.equal(ours?.type, 'asm-cni', 'our entry is the last plugin of the primary conflist');
    t.equal(ours?.kubeconfig, node.kubeconfig, 'pointing at the kubeconfig');
    t.equal(list.name, 'e2e-pod-network', 'network name kept');
  });

  await t.test('8. the identity in the installed kubeconfig may get pods and nothing more', async (t) => {
    const can = async (...a: string[]): Promise<string> =>
      (await env.cp.kubectl(['auth', 'can-i', ...a], { kubeconfig: node.kubeconfig })).stdout.trim();
    t.equal(await can('get', 'pods', '-n', sysNs), 'yes', 'get pods');
    t.equal(await can('list', 'pods', '-A'), 'no', 'not list pods');
    t.equal(await can('delete', 'pods', '-n', sysNs), 'no', 'not delete pods');
    t.equal(await can('get', 'secrets', '-n', sysNs), 'no', 'not get secrets');
    t.equal(await can('create', 'serviceaccounts/token', '-n', ids?.namespace ?? sysNs), 'no', 'not mint tokens');
  });

  const ourEntry = (): Record<string, unknown> => {
    const list = JSON.parse(readFileSync(node.conflist, 'utf8'));
    const entry = (list.plugins as Array<Record<string, unknown>>).find((p) => p.type === 'asm-cni');
    if (!entry) throw new Error(`no asm-cni entry in ${node.conflist}`);
    return { cniVersion: list.cniVersion, name: list.name, ...entry };
  };

  const prevResult = (n: Netns) => ({
    cniVersion: '1.0.0',
    interfaces: [{ name: 'eth0', sandbox: n.path }],
    ips: [{ address: n.address, interface: 0 }],
  });

  /** Runs the installed plugin as a container runtime does: CNI_* env, the network config with prevResult on stdin. */
  async function cni(
    command: 'ADD' | 'CHECK' | 'DEL',
    n: Netns,
    ns: string,
    pod: string,
    conf: Record<string, unknown>,
  ): Promise<RunResult> {
    const id = `e2e${n.name.replace(/\W/g, '')}`;
    return run(join(node.binDir, 'asm-cni'), [], {
      input: JSON.stringify({ ...conf, prevResult: prevResult(n) }),
      timeoutMs: 60_000,
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: id,
        CNI_NETNS: n.path,
        CNI_IFNAME: 'eth0',
        CNI_PATH: node.binDir,
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod};K8S_POD_INFRA_CONTAINER_ID=${id}`,
      },
    });
  }
  const cniAdd = (n: Netns, ns: string, pod: string, conf: Record<string, unknown>): Promise<RunResult> =>
    cni('ADD', n, ns, pod, conf);

  const passesThrough = async (t: Test, n: Netns, r: RunResult): Promise<void> => {
    t.equal(r.code, 0, `ADD exited 0${r.code ? `: ${r.stdout}${r.stderr}` : ''}`);
    if (r.code === 0)
      t.match(
        JSON.parse(r.stdout),
        { interfaces: prevResult(n).interfaces, ips: prevResult(n).ips },
        'prevResult passed through',
      );
    t.notOk(hasIstioChains(await n.rules()), 'no ISTIO_ chains in the pod netns');
  };

  const appNs = await env.cp.namespace('e2e-node-app');

  await t.test('8. ADD for a stored rewritten pod programs its rules in the pod netns', async (t) => {
    const r0 = await createPod(env, appNs, oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello'));
    t.equal(r0.code, 0, `pod created${r0.code ? `: ${r0.stderr}` : ''}`);
    const stored = await getPod(env, appNs, 'hello');
    t.notOk(initNames(stored).includes('istio-init'), 'the webhook rewrote the stored pod');
    const n = await netns();
    const r = await cniAdd(n, appNs, 'hello', ourEntry());
    t.equal(r.code, 0, `ADD exited 0${r.code ? `: ${r.stdout}${r.stderr}` : ''}`);
    if (r.code === 0) t.match(JSON.parse(r.stdout), { ips: prevResult(n).ips }, 'prevResult passed through');
    const rules = await n.rules();
    const backend = /ISTIO_/.test(rules.nft) ? 'nft' : 'legacy';
    t.ok(hasIstioChains(rules), 'ISTIO_ chains present');
    const golden = stripComments(readFileSync(join(goldenDir, `basic.${backend}.iptables-save`), 'utf8'));
    t.equal(rules[backend], golden, `rules equal Istio's basic golden (${backend})`);

    const check = await cni('CHECK', n, appNs, 'hello', ourEntry());
    t.equal(check.code, 0, `CHECK passes${check.code ? `: ${check.stdout}${check.stderr}` : ''}`);
    const del = await cni('DEL', n, appNs, 'hello', ourEntry());
    t.equal(del.code, 0, `DEL exited 0${del.code ? `: ${del.stdout}${del.stderr}` : ''}`);
    t.notOk(hasIstioChains(await n.rules()), 'DEL removed the ISTIO_ chains');
  });

  await t.test('8. ADD for a pod in an excluded namespace passes through', async (t) => {
    const ns = await env.cp.namespace('', { name: 'istio-system' });
    const r0 = await createPod(env, ns, oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello-excluded'));
    t.equal(r0.code, 0, 'pod created');
    const n = await netns();
    await passesThrough(t, n, await cniAdd(n, ns, 'hello-excluded', ourEntry()));
  });

  await t.test('8. ADD for a stored pod that still has istio-init passes through', async (t) => {
    const ns = await env.cp.namespace('e2e-node-init');
    for (const c of env.shipped) await env.cp.kubectlOk(['delete', 'mutatingwebhookconfiguration', c.metadata.name]);
    await waitWebhookActive(env, false);
    const r0 = await createPod(env, ns, oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello-init'));
    await applyOverlay(env);
    await waitWebhookActive(env, true);
    t.equal(r0.code, 0, 'pod created');
    t.ok(initNames(await getPod(env, ns, 'hello-init')).includes('istio-init'), 'stored with istio-init');
    const n = await netns();
    await passesThrough(t, n, await cniAdd(n, ns, 'hello-init', ourEntry()));
  });

  await t.test('8. with a token that may not get pods, ADD fails closed with a clear CNI error', async (t) => {
    await env.cp.kubectlOk(['create', 'serviceaccount', 'no-rights', '-n', sysNs]);
    const weak = (await env.cp.kubectlOk(['create', 'token', 'no-rights', '-n', sysNs, '--duration=1h'])).trim();
    const kc = readFileSync(node.kubeconfig, 'utf8');
    const weakKc = join(env.cp.dir, 'weak.kubeconfig');
    const swapped = kc.replace(/^([ \t]*token:).*$/m, `$1 ${weak}`);
    t.not(swapped, kc, 'the installed kubeconfig has a token to swap');
    writeFileSync(weakKc, swapped, { mode: 0o600 });
    const n = await netns();
    const r = await cniAdd(n, appNs, 'hello', { ...ourEntry(), kubeconfig: weakKc });
    t.not(r.code, 0, 'ADD failed');
    let err: { code?: number; msg?: string; details?: string } = {};
    try {
      err = JSON.parse(r.stdout);
    } catch {
      t.fail(`stdout is not a CNI error JSON: ${r.stdout}`);
    }
    t.type(err.code, 'number', 'CNI error code');
    t.match(`${err.msg} ${err.details ?? ''}`, /forbidden|unauthori[sz]ed|403/i, `the message says why: ${err.msg}`);
    t.match(`${err.msg} ${err.details ?? ''}`, /hello/, 'and names the pod');
    t.notOk(hasIstioChains(await n.rules()), 'no rules were programmed');
  });

  // 6. Last: it stops the webhook. The shipped policies: the istio-init entry Fail, the late-injection entries Ignore.
  await t.test('6. webhook stopped: the shipped failurePolicy outcomes happen', async (t) => {
    const hooks = shippedWebhooks(env);
    const initHooks = hooks.filter(
      (w) => !(w.matchConditions ?? []).some((c) => /sidecar\.istio\.io\/status/.test(c.expression)),
    );
    const lateHooks = hooks.filter((w) => !initHooks.includes(w));
    t.same(
      initHooks.map((w) => w.failurePolicy),
      ['Fail'],
      'the istio-init entry: Fail',
    );
    t.ok(
      lateHooks.length > 0 && lateHooks.every((w) => w.failurePolicy === 'Ignore'),
      'the late-injection entries: Ignore',
    );

    const injector = await startFakeInjector(env.webhook.certDir);
    t.teardown(() => injector.close());
    await env.webhook.stop();
    const mesh = { 'istio-injection': 'enabled' };
    const baseline = { 'pod-security.kubernetes.io/enforce': 'baseline' };
    const ns = await env.cp.namespace('e2e-outage');
    const baselineNs = await env.cp.namespace('e2e-outage-baseline', { labels: baseline, devEdit: true });
    const meshNs = await env.cp.namespace('e2e-outage-mesh', { labels: mesh });
    const pod = oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello-outage');

    // Fail: a pod carrying istio-init is refused, in any namespace, rather than admitted privileged.
    for (const [where, n, who] of [
      ['a plain namespace', ns, 'admin'],
      ['a baseline namespace', baselineNs, 'dev'],
      ['a mesh namespace', meshNs, 'admin'],
    ] as const) {
      const r = await createPod(env, n, pod, who);
      t.not(r.code, 0, `istio-init pod in ${where}: rejected during the outage`);
      t.match(
        r.stderr,
        /failed calling webhook "rewrite\.asm-cni\.io"/,
        'because the istio-init entry cannot be called',
      );
      t.match((await env.cp.kubectl(['get', 'pod', '-n', n, 'hello-outage'])).stderr, /NotFound/, 'nothing stored');
    }

    // Ignore: a pod of a mesh namespace that is not injected (yet) is admitted; the outage blocks nothing else.
    const plain = plainPod('plain-outage');
    const rp = await createPod(env, meshNs, plain);
    t.equal(rp.code, 0, `plain pod in a mesh namespace: admitted during the outage${rp.code ? `: ${rp.stderr}` : ''}`);
    if (rp.code === 0) t.strictSame(initNames(await getPod(env, meshNs, 'plain-outage')), [], 'stored as submitted');

    // What Ignore costs: with an injector sorting after us, the late entry misses the pod, which keeps istio-init:
    // meshed by istio-init (the plugin skips it), privileged, and refused where PodSecurity baseline is enforced.
    const lateNs = await env.cp.namespace('e2e-outage-late', { labels: mesh });
    await registerInjector(t, env, injector, 'zzz-e2e-outage-injector', lateNs);
    const ri = await createPod(env, lateNs, oraclePod('classic-1.26.8', 'hello.yaml', 'hello-late'));
    t.equal(ri.code, 0, `injected after us during the outage: admitted${ri.code ? `: ${ri.stderr}` : ''}`);
    if (ri.code === 0) {
      t.ok(
        initNames(await getPod(env, lateNs, 'hello-late')).includes('istio-init'),
        'stored with istio-init (meshed, privileged)',
      );
      const n = await netns();
      await passesThrough(t, n, await cniAdd(n, lateNs, 'hello-late', ourEntry()));
    }
    const lateBaselineNs = await env.cp.namespace('e2e-outage-late-baseline', {
      labels: { ...mesh, ...baseline },
      devEdit: true,
    });
    await registerInjector(t, env, injector, 'zzz-e2e-outage-injector-baseline', lateBaselineNs);
    const rb = await createPod(env, lateBaselineNs, oraclePod('classic-1.26.8', 'hello.yaml', 'hello-late'), 'dev');
    t.not(rb.code, 0, 'the same in a baseline namespace: rejected');
    t.match(rb.stderr, /violates PodSecurity/, 'by PodSecurity');
  });
}

const missing = toolchainMissing();
if (
  requirePrereq(t, missing === undefined, missing ?? '') &&
  requirePrereq(t, isRoot(), 'network namespaces need root') &&
  requirePrereq(t, hasKustomization(), 'manifests/ has no kustomization.yaml yet') &&
  requirePrereq(t, existsSync(installerCli), `${installerCli} not built (npm run build)`) &&
  requirePrereq(t, existsSync(pluginBinary), `${pluginBinary} not built (npm run build)`)
) {
  // One parent test: the root test may end while top-level code awaits between subtests.
  await t.test('node: installer and plugin against the API server', (t) => main(t));
}
