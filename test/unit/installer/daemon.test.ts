import { promises as fs } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startDaemon } from '../../../src/installer/daemon.js';
import { Installer } from '../../../src/installer/installer.js';
import { createMetrics } from '../../../src/installer/metrics.js';
import type { RepairController } from '../../../src/installer/repair.js';
import { CoreV1Api } from '@kubernetes/client-node';
import { installerKubeConfig } from '../../../src/installer/kube.js';
import { selfSubjectReviewProbe } from '../../../src/installer/main.js';
import { FileTokenSource, TokenCheck, TokenRequestSource } from '../../../src/installer/token.js';
import { startFakeApi } from './fake-api.js';
import { fakeNode, memoryLogger, poll, type Node } from './helpers.js';

const CALICO = '{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"},{"type":"portmap"}]}\n';

async function start(t: Test, node: Node, repair: RepairController | null = null) {
  const mem = memoryLogger();
  const metrics = createMetrics();
  const writes: string[] = [];
  const installer = new Installer({
    options: node.options,
    log: mem.log,
    tokens: new FileTokenSource(node.saDir),
    onWrite: (w) => {
      writes.push(w);
      metrics.writes.inc({ what: w });
    },
  });
  const configDir = node.options.configPath ? path.dirname(node.options.configPath) : node.confDir;
  const daemon = await startDaemon({
    installer,
    log: mem.log,
    metrics,
    repair,
    watchDirs: [node.netDir, node.saDir, configDir],
    readinessPort: 0,
    resyncMs: 60_000, // long: the tests below must pass on file events alone
    repairIntervalMs: 20,
    debounceMs: 10,
  });
  t.teardown(() => daemon.stop());
  return { daemon, writes, metrics, logs: mem.lines, installer };
}

const entryLast = async (file: string) => {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')).plugins.at(-1).type === 'asm-cni';
  } catch {
    return false;
  }
};

t.test('a primary CNI rewriting its file gets our entry back, without write loops', async (t) => {
  const node = await fakeNode(t);
  const file = path.join(node.netDir, '10-calico.conflist');
  await fs.writeFile(file, CALICO);
  const { daemon, writes } = await start(t, node);
  t.ok(await entryLast(file), 'installed at start');
  for (let i = 0; i < 5; i++) {
    await fs.writeFile(file, CALICO.replace('k8s-pod-network', `k8s-pod-network`)); // the CNI's own rewrite
    t.ok(await poll(() => entryLast(file)), `rewrite ${i}: entry back`);
  }
  // No loop: a pass over what we wrote writes nothing, so our own write's file event ends there.
  await daemon.reconcileNow();
  const count = writes.length;
  await daemon.reconcileNow();
  t.equal(writes.length, count, 'quiet: a pass over our own write writes nothing');
  const res = await fetch(`http://127.0.0.1:${daemon.port}/readyz`);
  t.equal(res.status, 200);
});

t.test('waits for the primary config, then installs as soon as it appears', async (t) => {
  const node = await fakeNode(t);
  const { daemon } = await start(t, node);
  let res = await fetch(`http://127.0.0.1:${daemon.port}/readyz`);
  t.equal(res.status, 503);
  t.match(await res.text(), /plugin entry not in the primary CNI config/);
  const file = path.join(node.netDir, '10-flannel.conflist');
  await fs.writeFile(file, CALICO);
  t.ok(await poll(() => entryLast(file)), 'installed after the CNI wrote its config');
  res = await fetch(`http://127.0.0.1:${daemon.port}/readyz`);
  t.equal(res.status, 200);
  t.equal((await fetch(`http://127.0.0.1:${daemon.port}/healthz`)).status, 200);
  t.equal((await fetch(`http://127.0.0.1:${daemon.port}/nope`)).status, 404);
  t.equal((await fetch(`http://127.0.0.1:${daemon.port}/healthz`, { method: 'POST' })).status, 405);
  const metrics = await (await fetch(`http://127.0.0.1:${daemon.port}/metrics`)).text();
  t.match(metrics, /asm_cni_installer_ready 1/);
  t.match(metrics, /asm_cni_installer_writes_total\{what="entry"\} 1/);
});

t.test('deleting our files (binary, kubeconfig, config) puts them back', async (t) => {
  const node = await fakeNode(t);
  const file = path.join(node.netDir, '10-calico.conflist');
  await fs.writeFile(file, CALICO);
  const { daemon } = await start(t, node);
  await fs.rm(node.options.kubeconfigPath);
  t.ok(
    await poll(async () => (await fs.stat(node.options.kubeconfigPath).catch(() => null)) !== null),
    'kubeconfig back',
  );
  await fs.rm(path.join(node.binDir, 'asm-cni'));
  await daemon.reconcileNow(); // the bin dir is not watched: the resync pass restores it
  t.ok((await fs.stat(path.join(node.binDir, 'asm-cni'))).isFile(), 'binary back');
  await fs.rename(file, path.join(node.netDir, '20-calico.conflist'));
  t.ok(await poll(() => entryLast(path.join(node.netDir, '20-calico.conflist'))), 'renamed file still has it');
});

t.test('token rotation and config edits are picked up from file events', async (t) => {
  const node = await fakeNode(t);
  node.options.configPath = path.join(node.confDir, 'config.yaml');
  await fs.writeFile(node.options.configPath, 'excludeNamespaces: [kube-system]\n');
  const file = path.join(node.netDir, '10-calico.conflist');
  await fs.writeFile(file, CALICO);
  await start(t, node);
  await fs.writeFile(path.join(node.saDir, 'token'), 'rotated\n');
  t.ok(
    await poll(async () => (await fs.readFile(node.options.kubeconfigPath, 'utf8')).includes('rotated')),
    'kubeconfig rewritten after rotation',
  );
  // ConfigMap updates arrive as an atomic symlink swap in the mounted dir
  const tmp = path.join(node.confDir, '.tmp-config');
  await fs.writeFile(tmp, 'excludeNamespaces: [kube-system, legacy]\n');
  await fs.rename(tmp, node.options.configPath);
  const rerendered = await poll(async () => {
    const list = JSON.parse(await fs.readFile(file, 'utf8'));
    return list.plugins.at(-1).exclude_namespaces.includes('legacy');
  });
  t.ok(rerendered, 'entry re-rendered after the config changed');
});

t.test('stop leaves everything in place; repair runs only when ready and enabled', async (t) => {
  const node = await fakeNode(t);
  const file = path.join(node.netDir, '10-calico.conflist');
  let passes = 0;
  let stopped = false;
  const ctx: { installer?: Installer } = {};
  // Each repair pass checks, when it runs, that the node was ready and the daemon not stopped: the invariant itself,
  // rather than counting passes over a guessed time.
  const repair = {
    runOnce: async () => {
      passes++;
      if (stopped) t.fail('a repair pass ran after stop');
      if (!(await ctx.installer!.readiness()).ready) t.fail('a repair pass ran while the node was not ready');
      return 0;
    },
  } as unknown as RepairController;
  const started = await start(t, node, repair);
  const { daemon, installer } = started;
  ctx.installer = installer;
  t.equal((await installer.readiness()).ready, false, 'not ready yet (no primary config)');
  await fs.writeFile(file, CALICO);
  t.ok(await poll(() => passes > 0), 'repair runs once ready');
  await daemon.stop();
  stopped = true;
  t.ok(await entryLast(file), 'entry left in place');
  t.ok((await fs.stat(node.options.kubeconfigPath)).isFile(), 'kubeconfig left');
  t.ok((await fs.stat(path.join(node.binDir, 'asm-cni'))).isFile(), 'binary left');
  const writesBefore = started.writes.length;
  await fs.writeFile(file, CALICO);
  await daemon.reconcileNow(); // a stopped daemon runs no pass: it answers with the last result
  t.notOk(await entryLast(file), 'stopped: no pass, no write');
  t.equal(started.writes.length, writesBefore, 'stopped: nothing written');
});

t.test('stop waits for a repair pass in flight: no pod deleted after stop returned', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = false;
  let finished = false;
  const repair = {
    runOnce: async () => {
      entered = true;
      await gate;
      finished = true;
      return 0;
    },
  } as unknown as RepairController;
  const { daemon } = await start(t, node, repair);
  t.ok(await poll(() => entered), 'a repair pass started');
  let finishedWhenStopped: boolean | undefined;
  const stopping = daemon.stop().then(() => (finishedWhenStopped = finished));
  // stop() closes the readiness listener before it waits for the pass; the pass is released only once that is
  // done, so a stop() that did not wait for the pass would have resolved already.
  const closed = await poll(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(daemon.port!, '127.0.0.1');
        socket.once('connect', () => (socket.destroy(), resolve(false)));
        socket.once('error', () => resolve(true));
      }),
  );
  t.ok(closed, 'the readiness listener is closed');
  release();
  await stopping;
  t.equal(finishedWhenStopped, true, 'stop() returned only after the pass had finished');
});

t.test('two running installers on one node (rolling update overlap) converge and then stay quiet', async (t) => {
  const node = await fakeNode(t);
  const file = path.join(node.netDir, '10-calico.conflist');
  await fs.writeFile(file, CALICO);
  const a = await start(t, node);
  const b = await start(t, node);
  for (let i = 0; i < 3; i++) {
    await fs.writeFile(file, CALICO);
    t.ok(await poll(() => entryLast(file)), `rewrite ${i}: entry back`);
  }
  // No ping-pong: once converged, a pass of either over the other's output writes nothing.
  await Promise.all([a.daemon.reconcileNow(), b.daemon.reconcileNow()]);
  const count = a.writes.length + b.writes.length;
  await a.daemon.reconcileNow();
  await b.daemon.reconcileNow();
  await a.daemon.reconcileNow();
  t.equal(a.writes.length + b.writes.length, count, 'no ping-pong between the two');
  const list = JSON.parse(await fs.readFile(file, 'utf8'));
  t.equal(list.plugins.filter((p: { type: string }) => p.type === 'asm-cni').length, 1, 'one entry');
  t.same(
    (await fs.readdir(node.netDir)).filter((n) => n.endsWith('.asm-cni-tmp')),
    [],
  );
});

t.test('a failing pass is retried with backoff, long before the resync interval', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  await fs.rm(path.join(node.saDir, 'token'));
  const { logs } = await start(t, node); // resync is 60s in these tests
  const failures = () => logs().filter((l) => l.step === 'kubeconfig').length;
  t.equal(failures(), 1, 'first pass fails: no token yet');
  // Retries at 250, 500, 1000 ms...: three failures long before the 60 s resync (the delays: retryDelay's test).
  t.ok(await poll(() => failures() >= 3, { timeoutMs: 30_000 }), 'retried with backoff before the resync');
  await fs.writeFile(path.join(node.saDir, 'token'), 'late-token');
  t.ok(await poll(() => entryLast(path.join(node.netDir, '10-calico.conflist'))), 'installed once the token is there');
});

t.test(
  'a token the API server refuses is replaced in the next pass; not ready while no new one can be had',
  async (t) => {
    const api = await startFakeApi();
    t.teardown(() => api.close());
    const node = await fakeNode(t);
    await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
    const mem = memoryLogger();
    const metrics = createMetrics();
    const installerKc = installerKubeConfig(api.url, node.saDir);
    const core = installerKc.makeApiClient(CoreV1Api);
    const tokens = new TokenRequestSource(
      async ({ namespace, serviceAccount, expirationSeconds }) => {
        const r = await core.createNamespacedServiceAccountToken({
          name: serviceAccount,
          namespace,
          body: { spec: { audiences: [], expirationSeconds } },
        });
        return { token: r.status!.token, expirationTimestamp: new Date(r.status!.expirationTimestamp) };
      },
      {
        namespace: 'asm-cni',
        serviceAccount: 'asm-cni-plugin',
        expirationSeconds: 3600,
        onRefresh: (reason) => metrics.tokenRefreshes.inc({ reason }),
      },
    );
    const installer = new Installer({ options: node.options, log: mem.log, tokens });
    const daemon = await startDaemon({
      installer,
      log: mem.log,
      metrics,
      repair: null,
      tokenCheck: new TokenCheck(tokens, selfSubjectReviewProbe(installerKc), { minIntervalMs: 0 }),
      watchDirs: [],
      readinessPort: 0,
      resyncMs: 60_000,
      repairIntervalMs: 60_000,
    });
    t.teardown(() => daemon.stop());
    const kubeconfig = () => fs.readFile(node.options.kubeconfigPath, 'utf8');
    t.match(await kubeconfig(), /token: plugin-token-1/);

    // The ServiceAccount is deleted: its token is refused, and no new one can be had yet. The check runs beside the
    // pass that starts it; the pass it then triggers finds no new token: not ready.
    api.rejectedTokens.add('plugin-token-1');
    api.tokenStatus = 404;
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${daemon.port}/readyz`);
      return { status: res.status, text: await res.text() };
    };
    void daemon.reconcileNow();
    t.ok(await poll(async () => (await readyz()).status === 503), 'not ready once the token is refused');
    t.match((await readyz()).text, /refuses the plugin's token/);
    t.match(await kubeconfig(), /token: plugin-token-1/, 'nothing better to write yet');

    // Recreated: the retry passes mint a new token and rewrite the kubeconfig; the new token is checked at once.
    api.tokenStatus = 200;
    const replaced = await poll(async () => /token: plugin-token-2/.test(await kubeconfig()));
    t.ok(replaced, 'kubeconfig rewritten with a new token');
    t.equal((await fs.stat(node.options.kubeconfigPath)).mode & 0o777, 0o600, 'still 0600');
    const ssr = () => api.requests.filter((q) => q.path.endsWith('/selfsubjectreviews'));
    t.ok(await poll(() => ssr().at(-1)?.auth === 'Bearer plugin-token-2'), 'the new token is checked');
    t.equal((await daemon.reconcileNow()).ready, true);
    const text = await metrics.registry.metrics();
    t.match(text, /asm_cni_installer_token_refreshes_total\{reason="initial"\} 1/);
    t.match(text, /asm_cni_installer_token_refreshes_total\{reason="rejected"\} 1/);
  },
);

t.test('a token check that throws is logged and the pass goes on', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const mem = memoryLogger();
  const daemon = await startDaemon({
    installer: new Installer({ options: node.options, log: mem.log, tokens: new FileTokenSource(node.saDir) }),
    log: mem.log,
    metrics: createMetrics(),
    repair: null,
    tokenCheck: {
      check: async () => {
        throw new Error('probe blew up');
      },
      pending: false,
    } as unknown as TokenCheck,
    watchDirs: [],
    readinessPort: null,
    resyncMs: 60_000,
    repairIntervalMs: 60_000,
  });
  t.teardown(() => daemon.stop());
  t.equal((await daemon.reconcileNow()).ready, true, 'installed regardless');
  const logged = () =>
    mem.lines().some((l) => l.msg === "could not check the plugin's token" && l.err === 'probe blew up');
  t.ok(await poll(logged), 'logged');
});
