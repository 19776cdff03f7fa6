import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { Installer } from '../../../src/installer/installer.js';
import { FileTokenSource, type TokenSource } from '../../../src/installer/token.js';
import type { InstallerOptions } from '../../../src/installer/options.js';
import { fakeNode, memoryLogger, oracle, type Node } from './helpers.js';

const CALICO = `{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    { "type": "calico", "ipam": { "type": "calico-ipam" } },
    { "type": "portmap", "snat": true, "capabilities": { "portMappings": true } }
  ]
}
`;

function installerFor(node: Node, extra: Partial<InstallerOptions> = {}, tokens?: TokenSource) {
  const mem = memoryLogger();
  const writes: string[] = [];
  const installer = new Installer({
    options: { ...node.options, ...extra },
    log: mem.log,
    tokens: tokens ?? new FileTokenSource(node.saDir),
    onWrite: (w) => writes.push(w),
  });
  return { installer, writes, logs: mem.lines };
}

const read = (node: Node, name: string) => fs.readFile(path.join(node.netDir, name), 'utf8');
const ls = async (dir: string) => (await fs.readdir(dir)).sort();

t.test('installs binary, kubeconfig and entry; a second run writes nothing', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer, writes } = installerFor(node);
  t.equal((await installer.readiness()).ready, false);
  const r = await installer.reconcile();
  t.same(r, { ready: true, binary: true, kubeconfig: true, entry: true, reasons: [], failures: [] });
  t.same(writes.sort(), ['backup', 'binary', 'entry', 'kubeconfig']);

  const bin = path.join(node.binDir, 'asm-cni');
  t.ok((await fs.readFile(bin)).equals(await fs.readFile(node.options.pluginBinary)), 'binary copied');
  t.equal((await fs.stat(bin)).mode & 0o777, 0o755);

  const kcStat = await fs.stat(node.options.kubeconfigPath);
  t.equal(kcStat.mode & 0o777, 0o600, 'kubeconfig is 0600');
  const kc = parseYaml(await fs.readFile(node.options.kubeconfigPath, 'utf8'));
  t.equal(kc.clusters[0].cluster.server, 'https://10.96.0.1:443');
  t.equal(
    Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString(),
    await fs.readFile(path.join(node.saDir, 'ca.crt'), 'utf8'),
  );
  t.equal(kc.users[0].user.token, 'token-one');

  const conf = JSON.parse(await read(node, '10-calico.conflist'));
  t.same(
    conf.plugins.map((p: { type: string }) => p.type),
    ['calico', 'portmap', 'asm-cni'],
  );
  t.equal(conf.plugins[2].kubeconfig, '/etc/cni/net.d/asm-cni-kubeconfig', 'host path in the entry');
  t.equal(await read(node, '.10-calico.conflist.asm-cni-orig'), CALICO, 'original bytes kept for uninstall');

  writes.length = 0;
  const stat = await fs.stat(path.join(node.netDir, '10-calico.conflist'));
  t.equal((await installer.reconcile()).ready, true);
  t.same(writes, [], 'second pass: nothing written');
  t.equal((await fs.stat(path.join(node.netDir, '10-calico.conflist'))).ino, stat.ino, 'file not replaced');
});

t.test('uninstall gives back the original bytes and removes kubeconfig and binary', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  await fs.writeFile(path.join(node.binDir, 'bridge'), 'other plugin');
  const before = await ls(node.netDir);
  const { installer } = installerFor(node);
  await installer.reconcile();
  await installer.reconcile();
  await installer.uninstall();
  t.equal(await read(node, '10-calico.conflist'), CALICO, 'byte-identical');
  t.same(await ls(node.netDir), before, 'no backup, no kubeconfig left');
  t.same(await ls(node.binDir), ['bridge'], 'only our binary removed');
  await installer.uninstall(); // twice is fine
  t.equal(await read(node, '10-calico.conflist'), CALICO);
});

t.test('Istio oracle bridge.conf: wrapped to .conflist, original removed; uninstall restores the .conf', async (t) => {
  const node = await fakeNode(t);
  const original = oracle('bridge.conf');
  await fs.writeFile(path.join(node.netDir, 'bridge.conf'), original);
  const { installer } = installerFor(node);
  t.equal((await installer.reconcile()).ready, true);
  t.same(await ls(node.netDir), ['.bridge.conf.asm-cni-orig', 'asm-cni-kubeconfig', 'bridge.conflist']);
  const wrapped = JSON.parse(await read(node, 'bridge.conflist'));
  t.equal(wrapped.name, 'dbnet');
  t.equal(wrapped.cniVersion, '0.4.0');
  t.equal((await installer.reconcile()).ready, true, 'stable after the rename');
  await installer.uninstall();
  t.same(await ls(node.netDir), ['bridge.conf']);
  t.equal(await read(node, 'bridge.conf'), original);
});

t.test('the primary CNI rewriting its file: entry put back, backup follows the new original', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer } = installerFor(node);
  await installer.reconcile();
  const v2 = CALICO.replace('"snat": true', '"snat": false');
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), v2); // calico-node upgrade drops our entry
  t.equal((await installer.readiness()).entry, false, 'readiness sees the entry gone');
  t.equal((await installer.reconcile()).ready, true);
  const conf = JSON.parse(await read(node, '10-calico.conflist'));
  t.equal(conf.plugins.at(-1).type, 'asm-cni');
  t.equal(conf.plugins[1].snat, false, "the primary's change is kept");
  await installer.uninstall();
  t.equal(await read(node, '10-calico.conflist'), v2, 'uninstall gives back the latest original');
});

t.test('a wrapped .conf rewritten by its CNI is wrapped again; uninstall keeps the newer .conf', async (t) => {
  const node = await fakeNode(t);
  const conf = '{"cniVersion":"1.0.0","name":"kindnet","type":"ptp","mtu":1500}\n';
  await fs.writeFile(path.join(node.netDir, '10-kindnet.conf'), conf);
  const { installer } = installerFor(node);
  await installer.reconcile();
  const conf2 = conf.replace('1500', '1400');
  await fs.writeFile(path.join(node.netDir, '10-kindnet.conf'), conf2);
  await installer.reconcile();
  t.same(
    (await ls(node.netDir)).filter((n) => n.startsWith('10-')),
    ['10-kindnet.conflist'],
  );
  t.equal(JSON.parse(await read(node, '10-kindnet.conflist')).plugins[0].mtu, 1400);
  // the CNI writes its .conf once more while we are not running, then we uninstall
  const conf3 = conf.replace('1500', '1300');
  await fs.writeFile(path.join(node.netDir, '10-kindnet.conf'), conf3);
  await installer.uninstall();
  t.same(await ls(node.netDir), ['10-kindnet.conf']);
  t.equal(await read(node, '10-kindnet.conf'), conf3);
});

t.test('uninstall after someone else changed the file removes only our entry', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer, logs } = installerFor(node);
  await installer.reconcile();
  const conf = JSON.parse(await read(node, '10-calico.conflist'));
  conf.plugins.splice(2, 0, { type: 'bandwidth' }); // another chained plugin added after us, entry still there
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), JSON.stringify(conf));
  await installer.uninstall();
  const after = JSON.parse(await read(node, '10-calico.conflist'));
  t.same(
    after.plugins.map((p: { type: string }) => p.type),
    ['calico', 'portmap', 'bandwidth'],
  );
  t.ok(logs().some((l) => /removed only our entry/.test(String(l.msg))));
});

t.test('uninstall without a backup strips our entry; a file with nothing of ours is untouched', async (t) => {
  const node = await fakeNode(t);
  const ours = '{"name":"n","plugins":[{"type":"ptp"},{"type":"asm-cni"}]}';
  await fs.writeFile(path.join(node.netDir, '10-a.conflist'), ours);
  await fs.writeFile(path.join(node.netDir, '20-b.conflist'), CALICO);
  await fs.writeFile(path.join(node.netDir, '30-bad.conflist'), '{');
  const { installer } = installerFor(node);
  await installer.uninstall();
  t.same(JSON.parse(await read(node, '10-a.conflist')).plugins, [{ type: 'ptp' }]);
  t.equal(await read(node, '20-b.conflist'), CALICO);
  t.equal(await read(node, '30-bad.conflist'), '{');
  // a net dir that does not exist: nothing to do
  const gone = installerFor(node, { netDir: path.join(node.root, 'none') }).installer;
  await gone.uninstall();
});

t.test(
  'waits for a primary config; picks the lexically first valid one; refuses invalid files untouched',
  async (t) => {
    const node = await fakeNode(t);
    const { installer, logs } = installerFor(node);
    t.equal(await installer.installEntry(), 'waiting');
    t.equal((await installer.reconcile()).entry, false);
    const invalid = oracle('invalid-map.conflist');
    await fs.writeFile(path.join(node.netDir, '05-broken.conflist'), invalid);
    await fs.writeFile(path.join(node.netDir, '00-arr.conflist'), oracle('invalid-arr.conflist'));
    await fs.writeFile(path.join(node.netDir, '20-second.conflist'), CALICO);
    await fs.writeFile(path.join(node.netDir, '10-first.conflist'), CALICO);
    await fs.writeFile(path.join(node.netDir, '99-notes.txt'), 'ignored');
    await fs.mkdir(path.join(node.netDir, '01-dir.conf'));
    t.equal((await installer.reconcile()).ready, true);
    t.equal(JSON.parse(await read(node, '10-first.conflist')).plugins.at(-1).type, 'asm-cni');
    t.equal(await read(node, '20-second.conflist'), CALICO, 'not the primary: untouched');
    t.equal(await read(node, '05-broken.conflist'), invalid, 'invalid: untouched');
    const refused = logs().filter((l) => /refusing an invalid CNI config/.test(String(l.msg)));
    t.same(refused.map((l) => l.file).sort(), ['00-arr.conflist', '05-broken.conflist']);
    await installer.reconcile();
    t.equal(logs().filter((l) => /refusing/.test(String(l.msg))).length, 2, 'each refusal logged once');
  },
);

t.test('a stand-alone asm-cni config is never taken as the primary', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '00-asm.conf'), '{"name":"asm","type":"asm-cni"}');
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer } = installerFor(node);
  t.equal((await installer.reconcile()).ready, true);
  t.equal(JSON.parse(await read(node, '10-calico.conflist')).plugins.length, 3);
});

t.test('--cni-conf-name forces the target file (Multus and other setups)', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(
    path.join(node.netDir, '00-multus.conf'),
    '{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus"}',
  );
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer } = installerFor(node, { cniConfName: '00-multus.conf' });
  t.equal((await installer.reconcile()).ready, true);
  t.equal(await read(node, '10-calico.conflist'), CALICO, 'lexical primary untouched');
  const multus = JSON.parse(await read(node, '00-multus.conflist'));
  t.same(
    multus.plugins.map((p: { type: string }) => p.type),
    ['multus', 'asm-cni'],
  );
  t.equal((await installer.reconcile()).ready, true, 'the wrapped forced file is recognised');
  const missing = installerFor(node, { cniConfName: 'nope.conflist' }).installer;
  t.equal(await missing.installEntry(), 'waiting');
});

t.test('token rotation rewrites the kubeconfig; nothing else changes', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer, writes } = installerFor(node);
  await installer.reconcile();
  writes.length = 0;
  await fs.writeFile(path.join(node.saDir, 'token'), 'token-two\n');
  await installer.reconcile();
  t.same(writes, ['kubeconfig']);
  t.equal(parseYaml(await fs.readFile(node.options.kubeconfigPath, 'utf8')).users[0].user.token, 'token-two');
  t.equal((await fs.stat(node.options.kubeconfigPath)).mode & 0o777, 0o600);
});

t.test('shared config changes re-render the entry; a bad edit keeps the last good config', async (t) => {
  const node = await fakeNode(t);
  const configPath = path.join(node.confDir, 'config.yaml');
  await fs.writeFile(configPath, 'excludeNamespaces: [kube-system]\nlogLevel: debug\n');
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer, logs } = installerFor(node, { configPath });
  await installer.reconcile();
  let entry = JSON.parse(await read(node, '10-calico.conflist')).plugins.at(-1);
  t.same(entry.exclude_namespaces, ['kube-system']);
  t.equal(entry.log_level, 'debug');
  await fs.writeFile(configPath, 'excludeNamespaces: [kube-system, legacy]\n');
  await installer.reconcile();
  entry = JSON.parse(await read(node, '10-calico.conflist')).plugins.at(-1);
  t.same(entry.exclude_namespaces, ['kube-system', 'legacy']);
  t.equal(entry.log_level, 'info');
  await fs.writeFile(configPath, 'excludeNamespaces: "oops"\n');
  t.equal((await installer.reconcile()).ready, true, 'still ready with the last good config');
  t.same(JSON.parse(await read(node, '10-calico.conflist')).plugins.at(-1).exclude_namespaces, [
    'kube-system',
    'legacy',
  ]);
  await installer.reconcile();
  t.equal(logs().filter((l) => /invalid config/.test(String(l.msg))).length, 1, 'a bad edit is logged once');
  await fs.rm(configPath);
  t.equal((await installer.reconcile()).ready, true, 'a vanished file keeps the last good config too');
});

t.test('an invalid config at start is an error naming the problem', async (t) => {
  const node = await fakeNode(t);
  const configPath = path.join(node.confDir, 'config.yaml');
  await fs.writeFile(configPath, 'repairPods: maybe\n');
  await t.rejects(installerFor(node, { configPath }).installer.reconcile(), /repairPods/);
  await t.rejects(
    installerFor(node, { configPath: path.join(node.root, 'missing.yaml') }).installer.loadConfig(),
    /cannot read config/,
  );
});

t.test('cniProvider multus: nothing chained into the primary, a previous entry is taken out', async (t) => {
  const node = await fakeNode(t);
  const configPath = path.join(node.confDir, 'config.yaml');
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  await fs.writeFile(configPath, '');
  const { installer } = installerFor(node, { configPath });
  await installer.reconcile();
  await fs.writeFile(configPath, 'cniProvider: multus\n');
  const r = await installer.reconcile();
  t.equal(r.ready, true, 'ready with binary and kubeconfig');
  t.equal(await read(node, '10-calico.conflist'), CALICO);
  t.notOk((await ls(node.netDir)).some((n) => n.endsWith('.asm-cni-orig')));
});

t.test('failing steps are reported in readiness and logs, other steps still run', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer, logs } = installerFor(node, { pluginBinary: path.join(node.root, 'missing'), apiServer: null });
  const r = await installer.reconcile();
  t.equal(r.ready, false);
  t.equal(r.entry, false, 'no entry while its plugin cannot run');
  t.equal(await read(node, '10-calico.conflist'), CALICO, 'primary config untouched');
  t.match(r.reasons.join('\n'), /plugin binary missing[\s\S]*kubeconfig missing[\s\S]*entry not in/);
  t.ok(logs().some((l) => /not adding the CNI config entry/.test(String(l.msg))));
  const errors = logs()
    .filter((l) => l.level === 50)
    .map((l) => String(l.err));
  t.match(errors.join('\n'), /cannot read plugin binary[\s\S]*API server unknown/);
  const noCa = installerFor(
    node,
    { saDir: path.join(node.root, 'nosa') },
    { description: 'x', current: async () => ({ token: 't', expiresAt: null }) },
  );
  await t.rejects(noCa.installer.installKubeconfig(), /cannot read cluster CA/);
  const skip = installerFor(
    node,
    { skipTlsVerify: true, kubeconfigPath: path.join(node.root, 'kc') },
    { description: 'x', current: async () => ({ token: 'service_account_token_string', expiresAt: null }) },
  );
  await skip.installer.installKubeconfig();
  const kc = parseYaml(await fs.readFile(path.join(node.root, 'kc'), 'utf8'));
  const istio = parseYaml(oracle('kubeconfig-skip-tls'));
  t.same(kc.clusters, istio.clusters, 'skip-TLS kubeconfig has the shape of Istio oracle');
  t.same(kc.users[0].user, istio.users[0].user);
  const noTokens = new Installer({ options: node.options, log: memoryLogger().log, tokens: null });
  await t.rejects(noTokens.installKubeconfig(), /no token source/);
});

t.test('two installers racing converge on one correct file and one backup', async (t) => {
  const node = await fakeNode(t);
  const original = '{"cniVersion":"0.4.0","name":"dbnet","type":"bridge","bridge":"cni0"}\n';
  await fs.writeFile(path.join(node.netDir, '10-bridge.conf'), original);
  const a = installerFor(node).installer;
  const b = installerFor(node).installer;
  for (let i = 0; i < 10; i++) await Promise.all([a.reconcile(), b.reconcile(), a.reconcile()]);
  t.same(await ls(node.netDir), ['.10-bridge.conf.asm-cni-orig', '10-bridge.conflist', 'asm-cni-kubeconfig']);
  t.equal((await a.readiness()).ready && (await b.readiness()).ready, true);
  // the primary rewrites while both race to put the entry back
  await fs.writeFile(path.join(node.netDir, '10-bridge.conf'), original);
  await Promise.all([a.reconcile(), b.reconcile()]);
  await Promise.all([a.reconcile(), b.reconcile()]);
  const list = JSON.parse(await read(node, '10-bridge.conflist'));
  t.same(
    list.plugins.map((p: { type: string }) => p.type),
    ['bridge', 'asm-cni'],
  );
  t.same(
    (await ls(node.netDir)).filter((n) => n.endsWith('.asm-cni-tmp')),
    [],
    'no temp files left',
  );
  await a.uninstall();
  await b.uninstall();
  t.same(await ls(node.netDir), ['10-bridge.conf']);
  t.equal(await read(node, '10-bridge.conf'), original);
});

t.test('an outdated or mis-moded binary is replaced; readiness notices', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const { installer, writes } = installerFor(node);
  await installer.reconcile();
  const bin = path.join(node.binDir, 'asm-cni');
  await fs.writeFile(bin, 'old version');
  t.equal((await installer.readiness()).binary, false, 'different bytes: not ready');
  writes.length = 0;
  await installer.reconcile();
  t.same(writes, ['binary']);
  t.ok((await fs.readFile(bin)).equals(await fs.readFile(node.options.pluginBinary)));
  await fs.chmod(bin, 0o700);
  t.equal((await installer.readiness()).binary, false, 'not executable by the runtime as expected: not ready');
  await installer.reconcile();
  t.equal((await fs.stat(bin)).mode & 0o777, 0o755);
  writes.length = 0;
  await installer.reconcile();
  t.same(writes, [], 'in place: nothing written');
});

t.test('wrapping X.conf never overwrites a foreign X.conflist', async (t) => {
  const node = await fakeNode(t);
  const conf = '{"cniVersion":"0.4.0","name":"a","type":"bridge"}';
  const foreign = '{"name":"other","plugins":[{"type":"ptp"}]}';
  await fs.writeFile(path.join(node.netDir, '10-a.conf'), conf);
  await fs.writeFile(path.join(node.netDir, '10-a.conflist'), foreign);
  const { installer, logs } = installerFor(node);
  t.equal((await installer.reconcile()).entry, false);
  t.equal(await read(node, '10-a.conf'), conf);
  t.equal(await read(node, '10-a.conflist'), foreign);
  t.ok(logs().some((l) => /that file exists and is not ours/.test(String(l.err))));
});

t.test(
  'missing bin dir and kubeconfig dir are created with node modes (0755), existing ones keep theirs',
  async (t) => {
    const node = await fakeNode(t);
    await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
    const binDir = path.join(node.root, 'opt', 'cni', 'bin');
    const kubeconfigPath = path.join(node.root, 'etc', 'asm-cni', 'kube', 'asm-cni-kubeconfig');
    await fs.chmod(node.root, 0o711);
    const old = process.umask(0o077); // a restrictive umask must not narrow the modes
    t.teardown(() => process.umask(old));
    const { installer } = installerFor(node, { binDir, kubeconfigPath });
    const r = await installer.reconcile();
    t.same(r.failures, []);
    t.equal(r.ready, true, r.reasons.join('; '));
    for (const dir of [path.join(node.root, 'opt'), path.join(node.root, 'opt', 'cni'), binDir]) {
      t.equal((await fs.stat(dir)).mode & 0o777, 0o755, `${path.relative(node.root, dir)} is 0755`);
    }
    t.equal((await fs.stat(path.dirname(kubeconfigPath))).mode & 0o777, 0o755);
    t.equal((await fs.stat(kubeconfigPath)).mode & 0o777, 0o600);
    t.equal((await fs.stat(node.root)).mode & 0o777, 0o711, 'an existing parent keeps its mode');
  },
);

t.test('a symlinked primary config stays a link: written through to its target, restored exactly', async (t) => {
  const node = await fakeNode(t);
  const realDir = path.join(node.root, 'real');
  await fs.mkdir(realDir);
  const real = path.join(realDir, '10-calico.conflist');
  await fs.writeFile(real, CALICO, { mode: 0o640 });
  await fs.chmod(real, 0o640);
  const link = path.join(node.netDir, '10-calico.conflist');
  await fs.symlink('../real/10-calico.conflist', link);
  const { installer } = installerFor(node);
  const r = await installer.reconcile();
  t.same(r.failures, []);
  t.equal(r.ready, true, r.reasons.join('; '));
  t.ok((await fs.lstat(link)).isSymbolicLink(), 'still a link after install');
  t.equal(await fs.readlink(link), '../real/10-calico.conflist', 'pointing where it pointed');
  t.match(await fs.readFile(real, 'utf8'), /"type": "asm-cni"/, 'the entry is in the target');
  t.equal((await fs.stat(real)).mode & 0o777, 0o640, 'the target keeps its mode');
  t.same(await ls(realDir), ['10-calico.conflist'], 'no temp file left beside the target');
  t.equal((await installer.reconcile()).ready, true, 'a second pass is content with the link');

  // the primary CNI rewrites its target: seen through the link, our entry goes back in
  await fs.writeFile(real, CALICO.replace('"snat": true', '"snat": false'));
  await installer.reconcile();
  t.ok((await fs.lstat(link)).isSymbolicLink());
  t.match(await fs.readFile(real, 'utf8'), /"snat": false[\s\S]*"type": "asm-cni"/);

  await fs.writeFile(real, CALICO); // back to the bytes of the first install, so uninstall restores them exactly
  await installer.reconcile();
  await installer.uninstall();
  t.ok((await fs.lstat(link)).isSymbolicLink(), 'still a link after uninstall');
  t.equal(await fs.readlink(link), '../real/10-calico.conflist');
  t.equal(await fs.readFile(real, 'utf8'), CALICO, 'original bytes restored through the link');
  t.same(await ls(node.netDir), ['10-calico.conflist']);
});

t.test('a link this container cannot follow, or a linked .conf that would need wrapping, is refused', async (t) => {
  const node = await fakeNode(t);
  const link = path.join(node.netDir, '10-calico.conflist');
  await fs.symlink('/nonexistent/real/10-calico.conflist', link);
  await fs.writeFile(path.join(node.netDir, '20-other.conflist'), CALICO);
  const { installer } = installerFor(node);
  const r = await installer.reconcile();
  t.equal(r.ready, false);
  t.match(r.failures, [
    {
      step: 'entry',
      error: /10-calico.conflist is a symbolic link to \/nonexistent\/real\/10-calico.conflist, which does not exist/,
    },
  ]);
  t.equal(await read(node, '20-other.conflist'), CALICO, 'the next file is not taken for the primary');
  t.match(r.reasons, [/not in the primary CNI config .*: .*10-calico.conflist is a symbolic link/], '/readyz says why');
  t.equal(await fs.readlink(link), '/nonexistent/real/10-calico.conflist');

  const node2 = await fakeNode(t);
  const conf = '{"cniVersion":"0.3.1","name":"br","type":"bridge"}\n';
  await fs.writeFile(path.join(node2.root, 'bridge.conf'), conf);
  await fs.symlink(path.join(node2.root, 'bridge.conf'), path.join(node2.netDir, '10-br.conf'));
  const second = installerFor(node2);
  const r2 = await second.installer.reconcile();
  t.match(r2.failures, [
    { step: 'entry', error: /cannot wrap 10-br.conf into 10-br.conflist: 10-br.conf is a symbolic link/ },
  ]);
  t.same(await ls(node2.netDir), ['10-br.conf', 'asm-cni-kubeconfig'], 'no .conflist, no backup');
  t.ok((await fs.lstat(path.join(node2.netDir, '10-br.conf'))).isSymbolicLink());
  t.equal(await fs.readFile(path.join(node2.root, 'bridge.conf'), 'utf8'), conf);
});
