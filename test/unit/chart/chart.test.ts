// The Helm chart (charts/asm-cni) against the kustomize manifests, with the real tools: `helm template` with default
// values must yield the same objects as `kubectl kustomize manifests/` (and the cert-manager, Multus and
// NetworkPolicy variants the same as their kustomize counterparts), so the two install paths cannot drift. Also
// `helm lint` of the defaults and every preset, the schema refusing typos and wrong types, and each value landing
// where it should. helm and kustomize are built by test/setup/helm.sh (CI: always; locally: skipped with the reason).
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { requirePrereq } from '../../harness/prereq.js';
import { run } from '../../harness/proc.js';
import type { K8sObject } from '../../harness/manifests.js';
import {
  chartDir,
  helm,
  helmPath,
  kustomizeCommand,
  kustomizeVariants,
  normalise,
  objectKey,
  parseObjects,
  renderChart,
  TLS_SECRET,
} from '../../harness/helm.js';

const presetDir = join(chartDir, 'presets');
const presets = readdirSync(presetDir).filter((f) => f.endsWith('.yaml'));

const find = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in: ${objs.map(objectKey).join(', ')}`);
  return o;
};
const daemonset = (objs: K8sObject[]) => find(objs, 'DaemonSet', 'asm-cni-installer');
const deployment = (objs: K8sObject[]) => find(objs, 'Deployment', 'asm-cni-webhook');
const webhookConfig = (objs: K8sObject[]) => find(objs, 'MutatingWebhookConfiguration', 'zz-asm-cni');
const env = (o: K8sObject): Record<string, string | undefined> =>
  Object.fromEntries(
    (o.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]),
  );
const hostPaths = (o: K8sObject): Record<string, string> =>
  Object.fromEntries(
    (o.spec.template.spec.volumes as Array<{ name: string; hostPath?: { path: string } }>)
      .filter((v) => v.hostPath)
      .map((v) => [v.name, v.hostPath!.path]),
  );
/** Values that are Kubernetes types (documented by Kubernetes): their inner keys are optional and not ours. */
const KUBERNETES_TYPED = new Set([
  'resources',
  'nodeSelector',
  'podLabels',
  'podAnnotations',
  'affinity',
  'seLinuxOptions',
]);
const sharedConfig = (objs: K8sObject[]) => parseYaml(find(objs, 'ConfigMap', 'asm-cni-config').data['config.yaml']);

/** Asserts that two rendered object sets are the same under normalise(), object by object for a readable diff. */
function assertSameObjects(t: Test, chart: K8sObject[], kustomize: K8sObject[], what: string): void {
  const c = normalise(chart);
  const k = normalise(kustomize);
  t.same(c.problems, [], `${what}: every caBundle of the chart is the CA of its Secret`);
  t.same(k.problems, [], `${what}: every caBundle of kustomize is the CA of its Secret`);
  t.same([...c.byKey.keys()].sort(), [...k.byKey.keys()].sort(), `${what}: the same objects`);
  for (const [key, obj] of k.byKey) {
    const mine = c.byKey.get(key);
    if (mine) t.same(mine, obj, `${what}: ${key} is the same`);
  }
}

async function main(): Promise<void> {
  const helmBin = helmPath();
  if (!requirePrereq(t, existsSync(helmBin), `helm is not built at ${helmBin} (run bash test/setup/helm.sh)`)) return;
  const kustomize = kustomizeCommand();
  if (!requirePrereq(t, kustomize !== undefined, 'neither kubectl nor kustomize is built (bash test/setup/helm.sh)')) {
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'asm-cni-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const variants = kustomizeVariants(dir);
  const build = async (variant: string): Promise<K8sObject[]> => {
    const r = await run(kustomize!.cmd, kustomize!.args(variants[variant]!), { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`kustomize build of ${variant} failed: ${r.stderr}`);
    return parseObjects(r.stdout);
  };
  const defaults = await renderChart();

  t.test('default values render the same objects as kubectl kustomize manifests/', async (t) => {
    const kustomized = await build('default');
    t.ok(kustomized.length > 10, `kustomize rendered ${kustomized.length} objects`);
    // The chart leaves the namespace to the admin by default (Helm stores the release in it before creating
    // anything); namespace.create renders it, and then it must be the same object too.
    const withoutNamespace = kustomized.filter((o) => o.kind !== 'Namespace');
    t.equal(withoutNamespace.length, kustomized.length - 1, 'manifests/ has exactly one Namespace');
    assertSameObjects(t, defaults, withoutNamespace, 'defaults');
    assertSameObjects(t, await renderChart(['--set', 'namespace.create=true']), kustomized, 'namespace.create');
  });

  t.test('certificates.mode certManager renders the same objects as manifests/overlays/cert-manager', async (t) => {
    const kustomized = (await build('certManager')).filter((o) => o.kind !== 'Namespace');
    assertSameObjects(t, await renderChart(['--set', 'certificates.mode=certManager']), kustomized, 'cert-manager');
  });

  t.test('uninstall=true renders the same objects as manifests/overlays/uninstall', async (t) => {
    // The overlay builds on base/, which has no Secret; the chart keeps the webhook's Secret of the release (the
    // kustomize flow leaves it in the cluster too: apply does not prune).
    const kustomized = (await build('uninstall')).filter((o) => o.kind !== 'Namespace');
    const chart = (await renderChart(['--set', 'uninstall=true'])).filter(
      (o) => !(o.kind === 'Secret' && o.metadata.name === TLS_SECRET),
    );
    assertSameObjects(t, chart, kustomized, 'uninstall');
  });

  t.test('config.cniProvider multus renders manifests/ plus the Multus component', async (t) => {
    const kustomized = (await build('multus')).filter((o) => o.kind !== 'Namespace');
    assertSameObjects(t, await renderChart(['--set', 'config.cniProvider=multus']), kustomized, 'multus');
  });

  t.test('webhook.networkPolicy.enabled renders the NetworkPolicy', async (t) => {
    const chart = await renderChart(['--set', 'webhook.networkPolicy.enabled=true']);
    t.notOk(
      defaults.some((o) => o.kind === 'NetworkPolicy'),
      'none by default (as manifests/ without the component)',
    );
    const withCidrs = await renderChart([
      ...['--set', 'webhook.networkPolicy.enabled=true'],
      ...['--set', 'webhook.networkPolicy.apiServerCIDRs={192.0.2.10/32,198.51.100.0/24}'],
      ...['--set', 'webhook.networkPolicy.apiServerPeers[0].podSelector.matchLabels.k8s-app=konnectivity-agent'],
    ]);
    t.same(
      find(withCidrs, 'NetworkPolicy', 'asm-cni-webhook').spec.ingress[0].from,
      [
        { ipBlock: { cidr: '192.0.2.10/32' } },
        { ipBlock: { cidr: '198.51.100.0/24' } },
        { podSelector: { matchLabels: { 'k8s-app': 'konnectivity-agent' } } },
      ],
      'apiServerCIDRs and apiServerPeers restrict the admission port',
    );
    t.ok(variants.networkPolicy, 'manifests/components/network-policy exists');
    if (!variants.networkPolicy) return;
    const kustomized = (await build('networkPolicy')).filter((o) => o.kind !== 'Namespace');
    assertSameObjects(t, chart, kustomized, 'network-policy');
  });

  t.test('installer.audit.enabled renders manifests/ plus the node-audit component', async (t) => {
    t.ok(variants.nodeAudit, 'manifests/components/node-audit exists');
    if (!variants.nodeAudit) return;
    const kustomized = (await build('nodeAudit')).filter((o) => o.kind !== 'Namespace');
    assertSameObjects(t, await renderChart(['--set', 'installer.audit.enabled=true']), kustomized, 'node-audit');
    const k3s = daemonset(
      await renderChart(['--set', 'installer.audit.enabled=true', '-f', join(presetDir, 'k3s.yaml')]),
    );
    const audit = k3s.spec.template.spec.containers.find((c: { name: string }) => c.name === 'audit');
    t.ok(
      audit.command.includes('--cni-conf-dir=/var/lib/rancher/k3s/agent/etc/cni/net.d'),
      'k3s: audit reads its conf dir',
    );
    t.equal(
      hostPaths(k3s)['cni-net-host-path'],
      '/var/lib/rancher/k3s/agent/etc/cni/net.d',
      'k3s: mounted at its path',
    );
  });

  t.test('helm lint --strict passes for the defaults and every preset', async (t) => {
    t.ok(presets.length >= 3, `presets: ${presets.join(', ')}`);
    for (const args of [[], ...presets.map((p) => ['-f', join(presetDir, p)])]) {
      const r = await helm(['lint', '--strict', chartDir, '--namespace', 'asm-cni', ...args]);
      t.equal(r.code, 0, `helm lint ${args.join(' ') || '(defaults)'}${r.code ? `: ${r.stdout}${r.stderr}` : ''}`);
    }
  });

  t.test('each preset renders its CNI paths into the installer (and the Multus NAD for OpenShift)', async (t) => {
    for (const p of presets) {
      const values = parseYaml((await run('cat', [join(presetDir, p)])).stdout) as {
        installer: { cniConfDir?: string; cniBinDir?: string };
        config?: { cniProvider?: string };
      };
      const objs = await renderChart(['-f', join(presetDir, p)]);
      const ds = daemonset(objs);
      const confDir = values.installer.cniConfDir ?? '/etc/cni/net.d';
      const binDir = values.installer.cniBinDir ?? '/opt/cni/bin';
      t.same(hostPaths(ds), { 'cni-bin': binDir, 'cni-net': confDir }, `${p}: hostPath volumes`);
      t.equal(env(ds).ASM_HOST_NET_DIR, confDir, `${p}: the entry's kubeconfig path is under the node's conf dir`);
      const nad = objs.find((o) => o.kind === 'NetworkAttachmentDefinition');
      if (values.config?.cniProvider === 'multus') {
        t.ok(nad, `${p}: the Multus network is rendered`);
        t.equal(JSON.parse(nad!.spec.config).kubeconfig, `${confDir}/asm-cni-kubeconfig`, `${p}: NAD kubeconfig`);
        t.equal(sharedConfig(objs).cniProvider, 'multus', `${p}: the shared config says multus`);
      } else t.notOk(nad, `${p}: no Multus network`);
    }
  });

  t.test('the schema refuses typos and wrong types, naming the key', async (t) => {
    const refused: Array<[string[], RegExp, string]> = [
      [['--set', 'webhook.replica=3'], /replica/, 'a typo in a nested key'],
      [['--set', 'imagee.tag=x'], /imagee/, 'a typo at the top level'],
      [['--set', 'installer.tolerations[0].opertor=Exists'], /opertor/, 'a typo inside a toleration'],
      [['--set', 'installer.affinity.nodeAfinity.x=y'], /nodeAfinity/, 'a typo inside affinity'],
      [['--set-string', 'webhook.replicas=two'], /replicas/, 'a string for an integer'],
      [['--set', 'config.repairPods=maybe'], /repairPods/, 'a string for a boolean'],
      [['--set', 'config.logLevel=verbose'], /logLevel/, 'a value outside the enum'],
      [['--set', 'webhook.failurePolicy=Fial'], /failurePolicy/, 'a failurePolicy the API server would refuse'],
      [['--set', 'installer.cniConfDir=etc/cni'], /cniConfDir/, 'a relative node path'],
      [['--set', 'plugin.apiTimeout=5 seconds'], /apiTimeout/, 'a duration the plugin cannot parse'],
    ];
    for (const [args, key, what] of refused) {
      const r = await helm(['template', 'asm-cni', chartDir, '--namespace', 'asm-cni', ...args]);
      t.not(r.code, 0, `${what} (${args.join(' ')}) is refused`);
      t.match(r.stderr, /schema/i, `${what}: by the values schema`);
      t.match(r.stderr, key, `${what}: the message names the key`);
    }
  });

  t.test('kubeVersion: Kubernetes older than 1.31 is refused', async (t) => {
    const r = await helm(['template', 'asm-cni', chartDir, '--kube-version', '1.30.9']);
    t.not(r.code, 0, 'refused');
    t.match(r.stderr, />=1\.31\.0-0/, 'naming the requirement');
    t.equal((await helm(['template', 'asm-cni', chartDir, '--kube-version', '1.31.0'])).code, 0, '1.31 renders');
  });

  t.test('the generated certificate: ECDSA, signed by the caBundle CA, for the Service names', async (t) => {
    const objs = await renderChart(['--set', 'certificates.generate.extraIPs={127.0.0.1}'], 'mesh-cni');
    const secret = find(objs, 'Secret', TLS_SECRET);
    const pem = (k: string) => Buffer.from(secret.data[k], 'base64').toString();
    const ca = new X509Certificate(pem('ca.crt'));
    const cert = new X509Certificate(pem('tls.crt'));
    t.ok(ca.ca, 'ca.crt is a CA');
    t.ok(cert.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
    t.ok(cert.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(pem('tls.key')))), 'key pair');
    t.equal(cert.publicKey.asymmetricKeyType, 'ec', 'ECDSA');
    for (const name of [
      'asm-cni-webhook',
      'asm-cni-webhook.mesh-cni.svc',
      'asm-cni-webhook.mesh-cni.svc.cluster.local',
    ]) {
      t.ok(cert.checkHost(name), `valid for ${name}`);
    }
    t.ok(cert.checkIP('127.0.0.1'), 'valid for the extra IP');
    for (const w of webhookConfig(objs).webhooks) t.equal(w.clientConfig.caBundle, secret.data['ca.crt'], w.name);
    const again = find(await renderChart([]), 'Secret', TLS_SECRET);
    t.not(
      again.data['ca.crt'],
      secret.data['ca.crt'],
      'helm template (no cluster to look up) makes a new CA each time',
    );
  });

  t.test('a release namespace other than asm-cni reaches every place that names it', async (t) => {
    const objs = await renderChart([], 'mesh-cni');
    for (const o of objs) {
      const clusterScoped = [
        'ClusterRole',
        'ClusterRoleBinding',
        'MutatingWebhookConfiguration',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
      ].includes(o.kind);
      if (!clusterScoped) t.equal(o.metadata.namespace, 'mesh-cni', `${objectKey(o)} in the release namespace`);
    }
    for (const w of webhookConfig(objs).webhooks) {
      t.equal(w.clientConfig.service.namespace, 'mesh-cni', `${w.name}: calls the Service in mesh-cni`);
      t.same(w.namespaceSelector.matchExpressions[0].values, ['kube-system', 'mesh-cni'], `${w.name}: skips it`);
    }
    t.same(sharedConfig(objs).excludeNamespaces, ['kube-system', 'istio-system', 'mesh-cni'], 'excluded');
    for (const p of objs.filter((o) => o.kind === 'ValidatingAdmissionPolicy')) {
      t.same(
        p.spec.matchConditions.map((c: { expression: string }) => c.expression),
        ["request.userInfo.username == 'system:serviceaccount:mesh-cni:asm-cni-installer'"],
        `${p.metadata.name}: holds the installer of the release namespace`,
      );
    }
    const subjects = objs.filter((o) => o.subjects).flatMap((o) => o.subjects as Array<{ namespace: string }>);
    t.ok(subjects.length > 0 && subjects.every((s) => s.namespace === 'mesh-cni'), 'RBAC subjects in mesh-cni');
  });

  t.test('each value lands where it should', async (t) => {
    const objs = await renderChart([
      ...['--set', 'image.repository=registry.example/asm-cni', '--set', `image.digest=sha256:${'a'.repeat(64)}`],
      ...['--set', 'image.pullPolicy=Always', '--set', 'image.pullSecrets={regcred}'],
      ...['--set', 'config.excludeNamespaces={kube-system,legacy}', '--set', 'config.invalidAnnotations=warn'],
      ...['--set', 'config.logLevel=debug', '--set', 'config.repairPods=false'],
      ...[
        '--set',
        'plugin.iptablesBackend=nft',
        '--set',
        'plugin.apiTimeout=2s',
        '--set',
        'plugin.logFile=/var/log/x.log',
      ],
      ...[
        '--set',
        'webhook.replicas=3',
        '--set',
        'webhook.pdb.minAvailable=2',
        '--set',
        'webhook.failurePolicy=Ignore',
      ],
      ...['--set', 'webhook.timeoutSeconds=10', '--set', 'webhook.resources.limits.memory=512Mi'],
      ...['--set', 'webhook.clientCA.pem=-----BEGIN CERTIFICATE-----'],
      ...['--set', 'installer.cniConfFileName=00-multus.conf', '--set', 'installer.tolerations=null'],
      ...['--set', 'installer.nodeSelector.pool=mesh', '--set', 'installer.priorityClassName='],
      ...['--set', 'installer.updateStrategy=OnDelete', '--set', 'installer.podLabels.team=net'],
      ...['--set', 'installer.podLabels.app\\.kubernetes\\.io/name=other', '--set', 'installer.podAnnotations.a=b'],
      ...['--set', 'installer.seLinuxOptions.type=spc_t', '--set', 'installer.terminationGracePeriodSeconds=3'],
      ...[
        '--set',
        'installer.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=mesh',
      ],
      ...[
        '--set',
        'installer.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists',
      ],
      ...['--set', 'installer.resources.requests.cpu=20m'],
    ]);
    const ds = daemonset(objs);
    const dep = deployment(objs);
    const image = `registry.example/asm-cni@sha256:${'a'.repeat(64)}`;
    for (const w of [ds, dep]) {
      t.equal(w.spec.template.spec.containers[0].image, image, `${w.kind}: image by digest`);
      t.equal(w.spec.template.spec.containers[0].imagePullPolicy, 'Always', `${w.kind}: pull policy`);
      t.same(w.spec.template.spec.imagePullSecrets, [{ name: 'regcred' }], `${w.kind}: pull secrets`);
    }
    t.same(
      sharedConfig(objs),
      {
        excludeNamespaces: ['kube-system', 'legacy', 'asm-cni'],
        invalidAnnotations: 'warn',
        cniProvider: 'default',
        multusNetwork: 'asm-cni',
        logLevel: 'debug',
        repairPods: false,
      },
      'the shared config',
    );
    t.match(
      env(ds),
      {
        ASM_PLUGIN_IPTABLES_BACKEND: 'nft',
        ASM_PLUGIN_API_TIMEOUT: '2s',
        ASM_PLUGIN_LOG_FILE: '/var/log/x.log',
        ASM_CNI_CONF_NAME: '00-multus.conf',
      },
      'plugin settings and the conf file name reach the installer',
    );
    t.equal(dep.spec.replicas, 3, 'replicas');
    t.equal(find(objs, 'PodDisruptionBudget', 'asm-cni-webhook').spec.minAvailable, 2, 'PDB');
    t.equal(dep.spec.template.spec.containers[0].resources.limits.memory, '512Mi', 'webhook resources');
    const hooks = webhookConfig(objs).webhooks;
    t.same([hooks[0].failurePolicy, hooks[0].timeoutSeconds], ['Ignore', 10], 'the rewrite entry');
    t.ok(
      hooks
        .slice(1)
        .every(
          (w: { failurePolicy: string; timeoutSeconds: number }) =>
            w.failurePolicy === 'Ignore' && w.timeoutSeconds === 3,
        ),
      'late entries unchanged',
    );
    t.equal(env(dep).ASM_CLIENT_CA, '/etc/asm-cni/client-ca/ca.crt', 'client CA check on');
    t.match(find(objs, 'ConfigMap', 'asm-cni-webhook-client-ca').data['ca.crt'], /BEGIN CERTIFICATE/, 'client CA');
    const spec = ds.spec.template.spec;
    t.equal(spec.tolerations, undefined, 'tolerations: none');
    t.same(spec.nodeSelector, { 'kubernetes.io/os': 'linux', pool: 'mesh' }, 'nodeSelector');
    t.equal(spec.priorityClassName, undefined, 'no priority class');
    t.equal(
      spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]
        .key,
      'mesh',
      'affinity',
    );
    t.same(ds.spec.updateStrategy, { type: 'OnDelete' }, 'update strategy');
    t.same(
      ds.spec.template.metadata.labels,
      { 'app.kubernetes.io/name': 'asm-cni-installer', 'app.kubernetes.io/part-of': 'asm-cni', team: 'net' },
      'pod labels added; the selector label cannot be overridden',
    );
    t.equal(ds.spec.template.metadata.annotations.a, 'b', 'pod annotations');
    t.same(spec.containers[0].securityContext.seLinuxOptions, { type: 'spc_t' }, 'seLinuxOptions');
    t.equal(spec.terminationGracePeriodSeconds, 3, 'grace period');
    t.equal(spec.containers[0].resources.requests.cpu, '20m', 'installer resources');
  });

  t.test('existingSecret and the switches that remove objects', async (t) => {
    const ca = Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64');
    const objs = await renderChart([
      ...['--set', 'certificates.mode=existingSecret', '--set', 'certificates.existingSecret.name=my-tls'],
      ...['--set', `certificates.existingSecret.caBundle=${ca}`, '--set', 'webhook.pdb.enabled=false'],
    ]);
    t.notOk(
      objs.some((o) => o.kind === 'Secret'),
      'no Secret rendered',
    );
    t.notOk(
      objs.some((o) => o.kind === 'PodDisruptionBudget'),
      'no PDB',
    );
    t.ok(
      webhookConfig(objs).webhooks.every((w: { clientConfig: { caBundle: string } }) => w.clientConfig.caBundle === ca),
      'caBundle given',
    );
    const tls = deployment(objs).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tls');
    t.equal(tls.secret.secretName, 'my-tls', 'the webhook serves from the given Secret');
    const noCa = await helm([
      'template',
      'asm-cni',
      chartDir,
      '--set',
      'certificates.mode=existingSecret',
      '--set',
      'certificates.existingSecret.name=my-tls',
    ]);
    t.not(noCa.code, 0, 'without a caBundle and no cluster to read it from: refused');
    t.match(noCa.stderr, /certificates\.existingSecret\.caBundle/, 'naming the value to set');
    const both = await helm([
      'template',
      'asm-cni',
      chartDir,
      '--set',
      'webhook.clientCA.pem=x',
      '--set',
      'webhook.clientCA.configMapName=y',
    ]);
    t.match(both.stderr, /pem or configMapName, not both/, 'two client-CA sources refused');
  });

  t.test('values.yaml and values.schema.json name the same keys', async (t) => {
    type Schema = { properties?: Record<string, Schema>; additionalProperties?: unknown };
    const schema = JSON.parse((await run('cat', [join(chartDir, 'values.schema.json')])).stdout) as Schema;
    const values = parseYaml((await run('cat', [join(chartDir, 'values.yaml')])).stdout) as Record<string, unknown>;
    const missing: string[] = [];
    const open: string[] = [];
    const walk = (s: Schema, v: unknown, path: string): void => {
      if (!s.properties) return;
      if (s.additionalProperties !== false) open.push(path || '(root)');
      for (const [k, sub] of Object.entries(s.properties)) {
        const here = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
        const at = `${path}${path ? '.' : ''}${k}`;
        if (here === undefined) missing.push(at);
        if (!KUBERNETES_TYPED.has(k)) walk(sub, here, at);
      }
    };
    walk(schema, values, '');
    t.same(missing, [], 'every key the schema knows has a documented default in values.yaml');
    t.same(open, [], 'every object the schema describes is closed (additionalProperties: false)');
  });

  t.test('every value of our own in values.yaml has a comment', async (t) => {
    const lines = (await run('cat', [join(chartDir, 'values.yaml')])).stdout.split('\n');
    const parents: Array<{ indent: number; key: string }> = [];
    const uncommented: string[] = [];
    lines.forEach((line, i) => {
      const m = /^(\s*)([A-Za-z][\w.-]*):(.*)$/.exec(line);
      if (!m) return;
      const indent = m[1]!.length;
      while (parents.length && parents.at(-1)!.indent >= indent) parents.pop();
      const path = [...parents.map((p) => p.key), m[2]!];
      const isHeader = m[3]!.trim() === '';
      if (!isHeader && !parents.some((p) => KUBERNETES_TYPED.has(p.key)) && !/^\s*#/.test(lines[i - 1] ?? '')) {
        uncommented.push(path.join('.'));
      }
      if (isHeader) parents.push({ indent, key: m[2]! });
    });
    t.same(uncommented, [], 'a comment directly above each value');
  });
}

await main();
