// The install steps of docs/install.md, as test/harness/install-steps.ts takes them from the docs for the cluster
// tier, rendered with the real kustomize and helm: the image, both hostPaths, ASM_HOST_NET_DIR and the plugin's log
// file come out as the site asks, for the install and the uninstall overlay and for the chart's values; and the
// doc-block reader refuses what it cannot read. Stand-in certificate files stand for certs/generate.sh here.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { requirePrereq } from '../../harness/prereq.js';
import { runOk } from '../../harness/proc.js';
import { chartDir, helm, helmPath, kustomizeCommand, parseObjects } from '../../harness/helm.js';
import type { K8sObject } from '../../harness/manifests.js';
import { markedBlock, markedTable, podSecurityClaims } from '../../harness/doc-blocks.js';
import { fill, helmSteps, kustomizeSteps, splitImage, type Site } from '../../harness/install-steps.js';

const site: Site = {
  image: 'registry.test:5000/team/asm-cni:1.0',
  netDir: '/srv/node-a/cni/net.d',
  binDir: '/srv/node-a/cni/bin',
  pluginLogFile: '/srv/node-a/asm-cni-plugin.log',
};

const find = (objs: K8sObject[], kind: string, name: string): K8sObject | undefined =>
  objs.find((o) => o.kind === kind && o.metadata.name === name);

interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
}

/** Checks the installer DaemonSet and the webhook Deployment of a rendering against the site. */
function checkSite(t: Test, objs: K8sObject[]): void {
  const ds = find(objs, 'DaemonSet', 'asm-cni-installer');
  const dep = find(objs, 'Deployment', 'asm-cni-webhook');
  t.ok(ds && dep, 'the installer DaemonSet and the webhook Deployment are rendered');
  if (!ds || !dep) return;
  const spec = ds.spec.template.spec;
  const hostPaths = Object.fromEntries(
    (spec.volumes as Array<{ name: string; hostPath?: { path: string } }>)
      .filter((v) => v.hostPath)
      .map((v) => [v.name, v.hostPath!.path]),
  );
  t.same(hostPaths, { 'cni-net': site.netDir, 'cni-bin': site.binDir }, 'the hostPath volumes are the node dirs');
  const installer = (spec.containers as Container[]).find((c) => c.name === 'installer')!;
  const env = installer.env ?? [];
  const value = (n: string) => env.filter((e) => e.name === n).map((e) => e.value);
  t.same(value('ASM_HOST_NET_DIR'), [site.netDir], 'ASM_HOST_NET_DIR is the conf dir on the node, once');
  t.same(value('ASM_PLUGIN_LOG_FILE'), [site.pluginLogFile], 'the plugin log file is the site one, once');
  t.same(value('ASM_NET_DIR'), ['/host/etc/cni/net.d'], 'the mount point in the container stays');
  t.same(value('ASM_BIN_DIR'), ['/host/opt/cni/bin'], 'the bin mount point stays');
  t.equal(new Set(env.map((e) => e.name)).size, env.length, 'no env name twice');
  for (const c of [...(spec.containers as Container[]), ...(dep.spec.template.spec.containers as Container[])])
    t.equal(c.image, site.image, `container ${c.name} runs the site image`);
}

t.test('the doc-block reader', async (t) => {
  const doc = [
    'intro',
    '<!-- test:block -->',
    '  ```yaml',
    '  # a.yaml',
    '  k: v',
    '  ```',
    '<!-- test:table -->',
    '| a | b |',
    '|---|---|',
    '| 1 | 2 |',
    '',
    '<!-- test:nothing -->',
    'prose',
  ].join('\n');
  t.equal(markedBlock('block', doc, 'doc.md'), '# a.yaml\nk: v\n', 'a fenced block, its indentation removed');
  t.same(markedTable('table', doc, 'doc.md'), [['1', '2']], 'a table, body rows only');
  t.throws(() => markedBlock('missing', doc, 'doc.md'), /doc.md has no <!-- test:missing -->/);
  t.throws(() => markedBlock('nothing', doc, 'doc.md'), /not followed by a fenced code block/);
  t.throws(() => markedTable('nothing', doc, 'doc.md'), /not followed by a Markdown table/);
  t.throws(() => markedBlock('block', `${doc}\n<!-- test:block -->\n`, 'doc.md'), /more than once/);
  t.throws(() => markedBlock('x', '<!-- test:x -->\n```sh\nls\n', 'doc.md'), /not closed/);
  const table = (rows: string) => `<!-- test:pod-security -->\n| w | p | r | why |\n|---|---|---|---|\n${rows}\n`;
  t.same(podSecurityClaims(table('| DaemonSet `x` | `privileged` | `baseline` | y |')), [
    { kind: 'DaemonSet', name: 'x', passes: 'privileged', refusedAt: 'baseline' },
  ]);
  t.throws(() => podSecurityClaims(table('| DaemonSet `x` | `strict` | — | y |')), /"`strict`" is not a level/);
  t.throws(() => podSecurityClaims(table('| DaemonSet `x` | `baseline` | `privileged` | y |')), /must be stricter/);
  t.throws(() => podSecurityClaims(table('| x | `baseline` | — | y |')), /expected "Kind/);
  t.ok(podSecurityClaims().length >= 2, 'docs/install.md has the claims');
});

t.test('fill and splitImage', async (t) => {
  t.equal(fill('n', 'a /x /x/y', { '/x': '/p', '/x/y': '/q' }, ['/x']), 'a /p /q', 'the longer value replaced whole');
  t.throws(() => fill('n', 'a', {}, ['/x']), /test:n no longer shows \/x/);
  t.same(splitImage('reg:5000/a/b:1.2'), { repository: 'reg:5000/a/b', tag: '1.2' });
  t.throws(() => splitImage('reg:5000/a/b'), /has no tag/);
});

t.test('the kustomize steps render the site', async (t) => {
  const kustomize = kustomizeCommand();
  if (!requirePrereq(t, !!kustomize, 'neither kubectl nor kustomize is built (bash test/setup/helm.sh)')) return;
  const dir = mkdtempSync(join(tmpdir(), 'asm-cni-install-steps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const steps = kustomizeSteps(dir, site);
  t.match(steps.install, /certs\/generate\.sh --out \S+\/manifests\/tls/, 'certificates as documented, into the copy');
  t.match(steps.install, /kubectl apply -k my-asm-cni\//, 'kubectl apply -k of the overlay');
  t.match(steps.uninstall, /kubectl apply -k my-asm-cni\/uninstall\//, 'the uninstall overlay with the site');
  t.notMatch(steps.uninstall, /manifests\/overlays\/uninstall/, 'never the shipped one, which has the default paths');
  t.same(Object.keys(steps.files).sort(), [
    'my-asm-cni/kustomization.yaml',
    'my-asm-cni/site/kustomization.yaml',
    'my-asm-cni/uninstall/kustomization.yaml',
  ]);
  for (const f of ['tls.crt', 'tls.key', 'ca-bundle.crt'])
    writeFileSync(join(steps.repo, 'manifests', 'tls', f), `stand-in ${f}\n`);
  const build = async (d: string) => parseObjects(await runOk(kustomize!.cmd, kustomize!.args(join(steps.cwd, d))));
  const installed = await build('my-asm-cni');
  checkSite(t, installed);
  t.ok(find(installed, 'MutatingWebhookConfiguration', 'zz-asm-cni'), 'the install has the webhook configuration');
  const uninstall = await build('my-asm-cni/uninstall');
  checkSite(t, uninstall);
  t.notOk(find(uninstall, 'MutatingWebhookConfiguration', 'zz-asm-cni'), 'the uninstall overlay has none');
  const cmd = (find(uninstall, 'DaemonSet', 'asm-cni-installer')!.spec.template.spec.containers as Container[])[0]!
    .command;
  t.ok(cmd?.includes('uninstall'), 'its installers run uninstall');
});

t.test('the Helm steps render the site', async (t) => {
  if (!requirePrereq(t, existsSync(helmPath()), 'helm is not built (run bash test/setup/helm.sh)')) return;
  const dir = mkdtempSync(join(tmpdir(), 'asm-cni-install-steps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const steps = helmSteps(dir, site);
  t.match(steps.install, /helm install asm-cni charts\/asm-cni --namespace asm-cni -f my-values.yaml/);
  t.match(steps.uninstall, /helm uninstall asm-cni/);
  const values = steps.files['my-values.yaml'];
  t.ok(values, 'my-values.yaml written from the docs');
  const render = async (extra: string[]) => {
    const r = await helm(['template', 'asm-cni', chartDir, '--namespace', 'asm-cni', '-f', values!, ...extra]);
    if (r.code !== 0) throw new Error(r.stderr);
    return parseObjects(r.stdout);
  };
  checkSite(t, await render([]));
  checkSite(t, await render(['--set', 'uninstall=true']));
});
