// The install steps of docs/install.md, as test/harness/install-steps.ts takes them from the docs for the cluster
// tier, rendered with the real kustomize and helm: the image, both hostPaths, ASM_HOST_NET_DIR and the plugin's log
// file come out as the site asks, for the install and the uninstall overlay and for the chart's values; and the
// doc-block reader refuses what it cannot read. Stand-in certificate files stand for certs/generate.sh here.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { requirePrereq } from '../../harness/prereq.js';
import { helmPath, kustomizeCommand } from '../../harness/helm.js';
import type { K8sObject } from '../../harness/manifests.js';
import { markedBlock, markedTable, podSecurityClaims } from '../../harness/doc-blocks.js';
import { fill, helmSteps, kustomizeSteps, siteProblems, splitImage, type Site } from '../../harness/install-steps.js';

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

t.test('siteProblems names what would not land on the site', async (t) => {
  const ds = (volumes: unknown[], env: unknown[], image = site.image) => ({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'asm-cni-installer' },
    spec: { template: { spec: { volumes, containers: [{ name: 'installer', image, env }] } } },
  });
  const good = ds(
    [
      { name: 'cni-net', hostPath: { path: site.netDir } },
      { name: 'cni-bin', hostPath: { path: site.binDir } },
    ],
    [
      { name: 'ASM_HOST_NET_DIR', value: site.netDir },
      { name: 'ASM_PLUGIN_LOG_FILE', value: site.pluginLogFile },
    ],
  );
  t.same(siteProblems([good], site), []);
  t.same(siteProblems([], site), ['no DaemonSet asm-cni-installer']);
  const bad = ds(
    [
      { name: 'cni-net', hostPath: { path: site.netDir } },
      { name: 'cni-bin', hostPath: { path: '/opt/cni/bin' } },
    ],
    [{ name: 'ASM_HOST_NET_DIR', value: '/etc/cni/net.d' }],
    'ghcr.io/asm-cni/asm-cni:0.1.0',
  );
  t.same(siteProblems([bad], site), [
    'installer volume cni-bin: hostPath /opt/cni/bin is not a node dir asked for',
    `no installer hostPath volume of ${site.binDir}`,
    `installer env ASM_HOST_NET_DIR: ["/etc/cni/net.d"], not ["${site.netDir}"]`,
    `installer env ASM_PLUGIN_LOG_FILE: [], not ["${site.pluginLogFile}"]`,
    `container installer: image ghcr.io/asm-cni/asm-cni:0.1.0, not ${site.image}`,
  ]);
});

for (const [name, make] of [
  ['kustomize', kustomizeSteps],
  ['Helm', helmSteps],
] as const) {
  t.test(`the ${name} steps of the docs render the site, install and uninstall`, async (t) => {
    const ready = name === 'kustomize' ? !!kustomizeCommand() : existsSync(helmPath());
    if (!requirePrereq(t, ready, 'kustomize or helm is not built (bash test/setup/helm.sh)')) return;
    const dir = mkdtempSync(join(tmpdir(), 'asm-cni-install-steps-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const steps = make(dir, site);
    if (name === 'kustomize') {
      t.match(steps.install, /certs\/generate\.sh --out \S+\/manifests\/tls/, 'certificates as documented');
      t.match(steps.install, /kubectl apply -k my-asm-cni\//, 'kubectl apply -k of the overlay');
      t.match(steps.uninstall, /kubectl apply -k my-asm-cni\/uninstall\//, 'the uninstall overlay with the site');
      t.notMatch(steps.uninstall, /manifests\/overlays\/uninstall/, 'never the shipped one (the default paths)');
      t.same(Object.keys(steps.files).sort(), [
        'my-asm-cni/kustomization.yaml',
        'my-asm-cni/site/kustomization.yaml',
        'my-asm-cni/uninstall/kustomization.yaml',
      ]);
    } else {
      t.match(steps.install, /helm install asm-cni charts\/asm-cni --namespace asm-cni -f my-values.yaml/);
      t.match(steps.uninstall, /helm uninstall asm-cni/);
      t.same(Object.keys(steps.files), ['my-values.yaml']);
    }
    const rendered = await steps.render();
    for (const which of ['install', 'uninstall'] as const) {
      t.same(siteProblems(rendered[which], site), [], `${which}: every value landed on the site`);
      checkSite(t, rendered[which]);
    }
    t.ok(find(rendered.install, 'MutatingWebhookConfiguration', 'zz-asm-cni'), 'the install has the webhook config');
    t.notOk(find(rendered.uninstall, 'MutatingWebhookConfiguration', 'zz-asm-cni'), 'the uninstall has none');
    const ds = find(rendered.uninstall, 'DaemonSet', 'asm-cni-installer')!;
    t.ok((ds.spec.template.spec.containers as Container[])[0]!.command?.includes('uninstall'), 'installers uninstall');
    t.notOk(existsSync(join(steps.repo, 'manifests', 'tls', 'tls.crt')), 'rendering left no stand-in certificate');
  });
}
