// Internal consistency of manifests/ (the real API server checks them in the end-to-end suite): every file parses and
// is listed, names and selectors line up, the webhook passes PodSecurity "restricted", the installer is not
// privileged, the webhook configuration sorts after Istio's and its CEL says what we mean, the Dockerfile's paths exist.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { evaluate } from '@marcbachmann/cel-js';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import jsonpatch from 'fast-json-patch';
import { DEFAULT_CONFIG, parseConfig } from '../../../src/common/shared-config.js';
import { admit } from '../../../src/webhook/core/admit.js';
import { repoRoot } from './helpers.js';

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: any };
  [k: string]: any;
};

const manifests = path.join(repoRoot, 'manifests');
const readYamlDocs = (file: string): Obj[] =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  });

function kustomization(dir: string): any {
  return parseYaml(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'));
}

/** The objects a kustomization's resources list (recursing into directories); generators are checked separately. */
function resources(dir: string): Obj[] {
  const k = kustomization(dir);
  const out: Obj[] = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    out.push(...(statSync(p).isDirectory() ? resources(p) : readYamlDocs(p)));
  }
  for (const c of k.components ?? []) out.push(...resources(path.join(dir, c)));
  return out;
}

const base = resources(path.join(manifests, 'base'));
const find = (kind: string, name: string, objs = base): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
const deployment = find('Deployment', 'asm-cni-webhook');
const daemonset = find('DaemonSet', 'asm-cni-installer');
const service = find('Service', 'asm-cni-webhook');
const webhookConfig = find('MutatingWebhookConfiguration', 'zz-asm-cni');
const webhook = webhookConfig.webhooks[0];
const envOf = (o: Obj) =>
  Object.fromEntries(
    (o.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]),
  );

const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

t.test('every YAML file parses and every kustomization lists every file of its directory', async (t) => {
  const dirs = ['base', '.', 'components/cert-manager', 'overlays/cert-manager', 'overlays/uninstall'].map((d) =>
    path.join(manifests, d),
  );
  for (const dir of dirs) {
    const k = kustomization(dir);
    const listed = new Set<string>(
      [...(k.resources ?? []), ...(k.components ?? [])].map((r: string) => path.resolve(dir, r)),
    );
    for (const name of readdirSync(dir)) {
      if (!/\.ya?ml$/.test(name) || name === 'kustomization.yaml') continue;
      t.ok(listed.has(path.join(dir, name)), `${path.relative(manifests, dir) || '.'}: ${name} is listed`);
      t.ok(readYamlDocs(path.join(dir, name)).length > 0, `${name} parses`);
    }
    for (const p of listed) t.ok(existsSync(p), `${path.relative(manifests, p)} exists`);
  }
  t.equal(kustomization(path.join(manifests, 'components/cert-manager')).kind, 'Component');
  t.ok(
    base.every((o) => o.apiVersion && o.kind && o.metadata?.name),
    'every object has apiVersion, kind, name',
  );
  const keys = base.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  t.same(
    keys.filter((k, i) => keys.indexOf(k) !== i),
    [],
    'no duplicate objects',
  );
  t.ok(
    base
      .filter(
        (o) =>
          o.kind !== 'Namespace' &&
          !o.kind.startsWith('Cluster') &&
          o.kind !== 'MutatingWebhookConfiguration' &&
          !o.kind.startsWith('ValidatingAdmissionPolicy'),
      )
      .every((o) => o.metadata.namespace === 'asm-cni'),
    'namespaced objects are in asm-cni',
  );
});

t.test('the image is named in one place', async (t) => {
  const k = kustomization(path.join(manifests, 'base'));
  t.same(
    k.images.map((i: { name: string }) => i.name),
    ['asm-cni'],
  );
  for (const o of [deployment, daemonset]) {
    for (const c of o.spec.template.spec.containers)
      t.equal(c.image, 'asm-cni', `${o.kind} ${c.name} uses the placeholder`);
  }
});

t.test('selectors match labels; ServiceAccounts and roles referenced exist', async (t) => {
  for (const o of [deployment, daemonset]) {
    t.ok(matches(o.spec.selector.matchLabels, o.spec.template.metadata.labels), `${o.kind} selector matches its pods`);
    const sa = o.spec.template.spec.serviceAccountName;
    t.ok(
      find('ServiceAccount', sa).metadata.namespace === o.metadata.namespace,
      `${o.kind} ServiceAccount ${sa} exists`,
    );
  }
  const podLabels = deployment.spec.template.metadata.labels;
  t.ok(matches(service.spec.selector, podLabels), 'Service selects the webhook pods');
  t.notOk(matches(service.spec.selector, daemonset.spec.template.metadata.labels), 'and not the installer');
  t.ok(
    matches(find('PodDisruptionBudget', 'asm-cni-webhook').spec.selector.matchLabels, podLabels),
    'PDB selects them',
  );
  const anti =
    deployment.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0];
  t.ok(matches(anti.podAffinityTerm.labelSelector.matchLabels, podLabels), 'anti-affinity is about its own replicas');
  t.equal(anti.podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
  t.equal(deployment.spec.replicas, 2);
  t.equal(find('PodDisruptionBudget', 'asm-cni-webhook').spec.minAvailable, 1);
  for (const b of base.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
    const role = find(b.roleRef.kind, b.roleRef.name);
    if (b.kind === 'RoleBinding' && role.kind === 'Role') t.equal(role.metadata.namespace, b.metadata.namespace);
    for (const s of b.subjects)
      t.equal(find('ServiceAccount', s.name).metadata.namespace, s.namespace, `${b.metadata.name} → ${s.name}`);
  }
});

t.test('RBAC is least privilege', async (t) => {
  const rulesOf = (kind: string, name: string) => find(kind, name).rules;
  t.same(rulesOf('ClusterRole', 'asm-cni-plugin'), [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }]);
  t.same(rulesOf('ClusterRole', 'asm-cni-installer'), [
    { apiGroups: [''], resources: ['pods'], verbs: ['list', 'delete'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ]);
  t.same(rulesOf('Role', 'asm-cni-installer-plugin-token'), [
    { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['asm-cni-plugin'], verbs: ['create'] },
  ]);
  const bound = base
    .filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')
    .flatMap((b) => b.subjects.map((s: { name: string }) => s.name));
  t.notOk(bound.includes('asm-cni-webhook'), 'the webhook has no API rights');
  t.equal(find('ServiceAccount', 'asm-cni-webhook').automountServiceAccountToken, false);
  t.equal(deployment.spec.template.spec.automountServiceAccountToken, false);
  t.equal(envOf(daemonset).ASM_PLUGIN_SERVICE_ACCOUNT, 'asm-cni-plugin', 'the installer hands out plugin tokens');
  t.ok(find('ServiceAccount', 'asm-cni-plugin'));
  for (const o of base.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
    for (const r of o.rules)
      t.notOk([...r.verbs, ...r.resources, ...r.apiGroups].includes('*'), `${o.metadata.name}: no wildcards`);
  }
});

t.test('the node-scope policies hold the installer the DaemonSet runs as, and are enforced', async (t) => {
  const ds = daemonset.spec.template.spec;
  const installerUser = `system:serviceaccount:${daemonset.metadata.namespace}:${ds.serviceAccountName}`;
  const policies = base.filter((o) => o.kind === 'ValidatingAdmissionPolicy');
  t.same(policies.map((p) => p.metadata.name).sort(), [
    'asm-cni-installer-own-node-pods',
    'asm-cni-installer-own-node-tokens',
  ]);
  for (const p of policies) {
    t.equal(p.spec.failurePolicy, 'Fail', `${p.metadata.name}: fails closed`);
    t.same(
      p.spec.matchConditions.map((c: { expression: string }) => c.expression),
      [`request.userInfo.username == '${installerUser}'`],
      `${p.metadata.name}: matches the DaemonSet's ServiceAccount`,
    );
    const bindings = base.filter(
      (o) => o.kind === 'ValidatingAdmissionPolicyBinding' && o.spec.policyName === p.metadata.name,
    );
    t.same(
      bindings.map((b) => b.spec.validationActions),
      [['Deny']],
      `${p.metadata.name}: one binding, Deny, every namespace`,
    );
    t.notOk(bindings[0]?.spec.matchResources, 'not limited to some namespaces');
  }
  const rules = (name: string) => find('ValidatingAdmissionPolicy', name).spec.matchConstraints.resourceRules;
  t.match(rules('asm-cni-installer-own-node-pods'), [{ resources: ['pods'], operations: ['DELETE'] }]);
  t.match(rules('asm-cni-installer-own-node-tokens'), [
    { resources: ['serviceaccounts/token'], operations: ['CREATE'] },
  ]);
  const nodeName = ds.containers[0].env.find((e: { name: string }) => e.name === 'NODE_NAME');
  t.same(nodeName?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } }, 'the installer binds plugin tokens to it');
  t.not(ds.automountServiceAccountToken, false, 'the installer runs with its kubelet-minted, pod-bound token');
  // The optional authorizer of docs/install.md names the same identity.
  const authz = parseYaml(readFileSync(path.join(repoRoot, 'docs', 'examples', 'authorization-config.yaml'), 'utf8'));
  t.equal(
    authz.authorizers[0].webhook.matchConditions[0].expression,
    `request.user == '${installerUser}'`,
    'docs/examples/authorization-config.yaml names the installer',
  );
  t.equal(authz.authorizers[0].webhook.failurePolicy, 'Deny');
});

/** PodSecurity "restricted" (v1.30 rules) for a pod spec. Returns the violations. */
function restrictedViolations(spec: any): string[] {
  const v: string[] = [];
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) v.push('host namespaces');
  for (const vol of spec.volumes ?? []) {
    const allowed = [
      'configMap',
      'csi',
      'downwardAPI',
      'emptyDir',
      'ephemeral',
      'persistentVolumeClaim',
      'projected',
      'secret',
    ];
    const type = Object.keys(vol).find((k) => k !== 'name')!;
    if (!allowed.includes(type)) v.push(`volume type ${type}`);
  }
  const psc = spec.securityContext ?? {};
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) v.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${c.name}: allowPrivilegeEscalation must be false`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) v.push(`${c.name}: runAsNonRoot must be true`);
    if ((sc.runAsUser ?? psc.runAsUser) === 0) v.push(`${c.name}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') v.push(`${c.name}: seccomp`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) v.push(`${c.name}: must drop ALL capabilities`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') v.push(`${c.name}: adds ${cap}`);
    for (const p of c.ports ?? []) if (p.hostPort) v.push(`${c.name}: hostPort`);
  }
  return v;
}

t.test('the webhook Deployment passes PodSecurity restricted, and more', async (t) => {
  const spec = deployment.spec.template.spec;
  t.same(restrictedViolations(spec), []);
  t.same(
    restrictedViolations({ containers: [{ name: 'x', securityContext: { privileged: true } }] }).length > 0,
    true,
    'the checker does flag a bad pod',
  );
  const c = spec.containers[0];
  t.equal(c.securityContext.readOnlyRootFilesystem, true);
  t.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'resources');
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  for (const probe of [c.readinessProbe, c.livenessProbe]) t.equal(probe.httpGet.scheme, 'HTTPS');
  const ports = Object.fromEntries(
    c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
  );
  t.same(ports, { https: 9443, metrics: 9090 });
  t.equal(c.readinessProbe.httpGet.port, 'https');
  const env = envOf(deployment);
  t.equal(Number(env.ASM_WEBHOOK_PORT), ports.https);
  t.equal(Number(env.ASM_METRICS_PORT), ports.metrics);
  // certificate and config files come from the mounted Secret and ConfigMap
  const mounts = Object.fromEntries(
    c.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]),
  );
  const vols = Object.fromEntries(spec.volumes.map((v: any) => [v.name, v]));
  t.equal(vols.tls.secret.secretName, 'asm-cni-webhook-tls');
  t.equal(env.ASM_TLS_CERT, `${mounts.tls}/tls.crt`);
  t.equal(env.ASM_TLS_KEY, `${mounts.tls}/tls.key`);
  t.equal(vols.config.configMap.name, 'asm-cni-config');
  t.equal(env.ASM_CONFIG, `${mounts.config}/config.yaml`);
  t.same(c.command, ['node', '/app/dist/webhook/server/cli.js', 'serve']);
});

t.test('Service and webhook configuration agree with the Deployment', async (t) => {
  const https = service.spec.ports.find((p: { name: string }) => p.name === 'https');
  t.equal(https.port, 443);
  t.equal(https.targetPort, 'https');
  t.ok(
    service.spec.ports.find((p: { name: string }) => p.name === 'metrics'),
    'metrics port',
  );
  const cc = webhook.clientConfig.service;
  t.same(cc, { name: service.metadata.name, namespace: service.metadata.namespace, path: '/mutate', port: https.port });
});

t.test('the installer DaemonSet: every node, not privileged, only the CNI dirs of the host', async (t) => {
  const spec = daemonset.spec.template.spec;
  t.same(spec.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  t.equal(spec.priorityClassName, 'system-node-critical');
  t.equal(spec.hostNetwork, true, 'never depends on the CNI chain it edits');
  const c = spec.containers[0];
  const sc = c.securityContext;
  t.equal(sc.privileged, false);
  t.equal(sc.allowPrivilegeEscalation, false);
  t.same(sc.capabilities, { drop: ['ALL'] }, 'no capabilities at all');
  t.equal(sc.readOnlyRootFilesystem, true);
  t.equal(sc.runAsUser, 0, 'root only to write the root-owned host dirs');
  t.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault');
  const hostPaths = spec.volumes
    .filter((v: any) => v.hostPath)
    .map((v: any) => v.hostPath.path)
    .sort();
  t.same(hostPaths, ['/etc/cni/net.d', '/opt/cni/bin']);
  const env = envOf(daemonset);
  const mountOf = (hostPath: string) => {
    const vol = spec.volumes.find((v: any) => v.hostPath?.path === hostPath).name;
    return c.volumeMounts.find((m: any) => m.name === vol).mountPath;
  };
  t.equal(env.ASM_NET_DIR, mountOf('/etc/cni/net.d'));
  t.equal(env.ASM_BIN_DIR, mountOf('/opt/cni/bin'));
  t.equal(env.ASM_HOST_NET_DIR, '/etc/cni/net.d');
  t.equal(env.ASM_CONFIG, `${c.volumeMounts.find((m: any) => m.name === 'config').mountPath}/config.yaml`);
  t.equal(spec.volumes.find((v: any) => v.name === 'config').configMap.name, 'asm-cni-config');
  const health = c.ports.find((p: { name: string }) => p.name === 'health');
  t.equal(Number(env.ASM_READINESS_PORT), health.containerPort);
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.readinessProbe.httpGet.port, 'health');
  t.same(c.command, ['node', '/app/dist/installer/cli.js', 'run']);
  const nodeName = c.env.find((e: any) => e.name === 'NODE_NAME');
  t.equal(nodeName.valueFrom.fieldRef.fieldPath, 'spec.nodeName', 'repair knows its node');
  t.equal(env.ASM_PLUGIN_BINARY, '/opt/asm-cni/asm-cni');
});

/** A Kubernetes label selector (matchLabels + matchExpressions), as the API server evaluates it. */
function selects(selector: any, labels: Record<string, string>): boolean {
  if (!selector) return true;
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpr = (selector.matchExpressions ?? []).every((e: { key: string; operator: string; values?: string[] }) => {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case 'In':
        return has && e.values!.includes(labels[e.key]!);
      case 'NotIn':
        return !has || !e.values!.includes(labels[e.key]!);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      default:
        throw new Error(`unknown operator ${e.operator}`);
    }
  });
  return byLabel && byExpr;
}

const webhooks: any[] = webhookConfig.webhooks;
const [rewriteHook, ...lateHooks] = webhooks;
const lateByName = (name: string) => webhooks.find((w) => w.name === name);

t.test('the webhook configuration', async (t) => {
  // The API server calls configurations in byte order of their names; Istio's all start with "istio-".
  const istio = ['istio-sidecar-injector', 'istio-revision-tag-default', 'istio-sidecar-injector-1-26-8', 'istio-zzzz'];
  for (const name of istio)
    t.ok(webhookConfig.metadata.name > name, `${webhookConfig.metadata.name} sorts after ${name}`);
  t.ok(webhookConfig.metadata.name.charCodeAt(0) > 'i'.charCodeAt(0), 'after every istio-* name');
  t.same(
    webhooks.map((w) => w.name),
    [
      'rewrite.asm-cni.io',
      'late-namespace.asm-cni.io',
      'late-revision-namespace.asm-cni.io',
      'late-pod.asm-cni.io',
      'late-revision-pod.asm-cni.io',
    ],
    'the istio-init entry first (list order is call order), then one late-injection entry per way Istio selects pods',
  );
  t.equal(new Set(webhooks.map((w) => w.name)).size, webhooks.length, 'unique webhook names');
  for (const w of webhooks) {
    t.match(
      w,
      {
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        reinvocationPolicy: 'IfNeeded',
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
      },
      w.name,
    );
    t.same(w.rules.length, 1, `${w.name}: pods CREATE only`);
    t.ok(w.timeoutSeconds >= 1 && w.timeoutSeconds <= 5, `${w.name}: a short timeout`);
    t.same(
      w.namespaceSelector.matchExpressions[0],
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'asm-cni'] },
      `${w.name}: not kube-system, asm-cni`,
    );
    t.same(w.clientConfig, rewriteHook.clientConfig, `${w.name}: the same Service`);
    t.equal(w.matchConditions.length, 1, `${w.name}: one matchCondition`);
  }
  t.equal(
    rewriteHook.failurePolicy,
    'Fail',
    'istio-init pods are never admitted unrewritten while the webhook is down',
  );
  t.same(
    rewriteHook.namespaceSelector.matchExpressions.length,
    1,
    'the istio-init entry: every namespace but those two',
  );
  t.notOk(rewriteHook.objectSelector, 'and every pod (the webhook itself honours sidecar.istio.io/inject)');
  for (const w of lateHooks) {
    t.equal(w.failurePolicy, 'Ignore', `${w.name}: an outage never blocks pods that are not injected yet`);
    t.ok(w.timeoutSeconds <= rewriteHook.timeoutSeconds, `${w.name}: no longer a wait than the istio-init entry`);
  }
  const config = parseConfig(find('ConfigMap', 'asm-cni-config').data['config.yaml']);
  for (const ns of rewriteHook.namespaceSelector.matchExpressions[0].values) {
    t.ok(
      config.excludeNamespaces.includes(ns),
      `${ns} is excluded in the shared config too (plugin and webhook agree)`,
    );
  }
  t.equal(config.repairPods, true);
});

t.test('the late-injection entries select where Istio injects, at most one per pod', async (t) => {
  const ns = (labels: Record<string, string>) => ({ 'kubernetes.io/metadata.name': 'team-a', ...labels });
  // [what, namespace labels, pod labels, the late entry that must select it (undefined: none)]
  const cases: Array<[string, Record<string, string>, Record<string, string>, string | undefined]> = [
    ['istio-injection=enabled', ns({ 'istio-injection': 'enabled' }), { app: 'a' }, 'late-namespace.asm-cni.io'],
    [
      'istio-injection=enabled, pod opts in',
      ns({ 'istio-injection': 'enabled' }),
      { 'sidecar.istio.io/inject': 'true' },
      'late-namespace.asm-cni.io',
    ],
    [
      'istio-injection=enabled wins over istio.io/rev',
      ns({ 'istio-injection': 'enabled', 'istio.io/rev': 'canary' }),
      {},
      'late-namespace.asm-cni.io',
    ],
    [
      'istio-injection=enabled, pod opts out',
      ns({ 'istio-injection': 'enabled' }),
      { 'sidecar.istio.io/inject': 'false' },
      undefined,
    ],
    ['istio-injection=disabled', ns({ 'istio-injection': 'disabled' }), {}, undefined],
    [
      'istio-injection=disabled, pod opts in',
      ns({ 'istio-injection': 'disabled' }),
      { 'sidecar.istio.io/inject': 'true' },
      undefined,
    ],
    [
      'istio-injection=disabled, istio.io/rev',
      ns({ 'istio-injection': 'disabled', 'istio.io/rev': 'canary' }),
      {},
      undefined,
    ],
    ['istio.io/rev=canary', ns({ 'istio.io/rev': 'canary' }), {}, 'late-revision-namespace.asm-cni.io'],
    [
      'istio.io/rev=default, pod opts out',
      ns({ 'istio.io/rev': 'default' }),
      { 'sidecar.istio.io/inject': 'false' },
      undefined,
    ],
    ['no mesh labels', ns({}), { app: 'a' }, undefined],
    ['no mesh labels, pod opts in', ns({}), { 'sidecar.istio.io/inject': 'true' }, 'late-pod.asm-cni.io'],
    ['no mesh labels, pod revision', ns({}), { 'istio.io/rev': 'canary' }, 'late-revision-pod.asm-cni.io'],
    [
      'no mesh labels, pod revision and opt-in',
      ns({}),
      { 'istio.io/rev': 'canary', 'sidecar.istio.io/inject': 'true' },
      'late-revision-pod.asm-cni.io',
    ],
    [
      'no mesh labels, pod revision, opts out',
      ns({}),
      { 'istio.io/rev': 'canary', 'sidecar.istio.io/inject': 'false' },
      undefined,
    ],
    [
      'kube-system, pod opts in',
      { 'kubernetes.io/metadata.name': 'kube-system' },
      { 'sidecar.istio.io/inject': 'true' },
      undefined,
    ],
    ['asm-cni', { 'kubernetes.io/metadata.name': 'asm-cni', 'istio-injection': 'enabled' }, {}, undefined],
  ];
  for (const [what, nsLabels, podLabels, want] of cases) {
    const hit = lateHooks
      .filter((w) => selects(w.namespaceSelector, nsLabels) && selects(w.objectSelector, podLabels))
      .map((w) => w.name);
    t.same(hit, want ? [want] : [], `${what}: ${want ?? 'no late entry'}`);
  }
  t.equal(
    selects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['x'] }] }, {}),
    false,
    'the selector checker does reject',
  );
  t.equal(
    selects(lateByName('late-namespace.asm-cni.io').namespaceSelector, {
      'kubernetes.io/metadata.name': 'kube-system',
      'istio-injection': 'enabled',
    }),
    false,
    'kube-system stays out even when labelled',
  );
});

// Pods from Istio's injection goldens (a Deployment's pod template as the ReplicaSet controller would create it).
const goldenDir = path.join(repoRoot, 'test', 'unit', 'installer', 'oracle', 'inject');
const goldenPods = (file: string): any[] =>
  readYamlDocs(path.join(goldenDir, file))
    .filter(Boolean)
    .map((o: any) => {
      const tpl = o.spec?.template ?? o;
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'hello', namespace: 'team-a', ...structuredClone(tpl.metadata ?? {}) },
        spec: structuredClone(tpl.spec),
      };
    });
/** The webhook's own answer for a pod (the pure admit the server calls), applied: the pod as stored after our patch. */
function rewritten(pod: any): { pod: any; decision: string } {
  const out = admit(
    {
      uid: 'u',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: pod.metadata.namespace,
      operation: 'CREATE',
      object: pod,
    },
    DEFAULT_CONFIG,
  );
  return {
    pod: jsonpatch.applyPatch(structuredClone(pod), out.patch, true, false).newDocument,
    decision: out.decision,
  };
}
const calls = (hook: any, pod: any): boolean =>
  evaluate(hook.matchConditions[0].expression, { object: pod }) as boolean;

t.test('the istio-init entry CEL sends exactly the pods with an istio-init init container', async (t) => {
  const call = (spec: unknown) => calls(rewriteHook, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec });
  t.equal(call({ containers: [{ name: 'app' }], initContainers: [{ name: 'istio-init' }] }), true);
  t.equal(call({ containers: [{ name: 'app' }], initContainers: [{ name: 'setup' }, { name: 'istio-init' }] }), true);
  t.equal(call({ containers: [{ name: 'app' }] }), false, 'no initContainers field');
  t.equal(call({ containers: [{ name: 'app' }], initContainers: [] }), false);
  t.equal(
    call({ containers: [{ name: 'istio-init' }], initContainers: [{ name: 'istio-validation' }] }),
    false,
    'already rewritten / a container, not an init container, named istio-init',
  );
  t.equal(call({ containers: [{ name: 'app' }], initContainers: [{ name: 'istio-init-extra' }] }), false, 'exact name');
});

t.test('the late entries CEL: istio-init, or not injected yet (no sidecar.istio.io/status)', async (t) => {
  t.ok(lateHooks.length > 0);
  const expr = lateHooks[0].matchConditions[0].expression;
  for (const w of lateHooks) t.equal(w.matchConditions[0].expression, expr, `${w.name}: the same condition`);
  const pod = (metadata: unknown, spec: unknown) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', ...(metadata as object) },
    spec,
  });
  const status = { 'sidecar.istio.io/status': '{}' };
  const w = lateHooks[0];
  t.equal(calls(w, pod({}, { containers: [{ name: 'app' }] })), true, 'no annotations at all');
  t.equal(
    calls(w, pod({ annotations: { other: 'x' } }, { containers: [{ name: 'app' }] })),
    true,
    'other annotations only',
  );
  t.equal(
    calls(w, pod({ annotations: status }, { containers: [{ name: 'app' }, { name: 'istio-proxy' }] })),
    false,
    'injected, no istio-init',
  );
  t.equal(
    calls(
      w,
      pod({ annotations: status }, { containers: [{ name: 'app' }], initContainers: [{ name: 'istio-validation' }] }),
    ),
    false,
  );
  t.equal(
    calls(w, pod({ annotations: status }, { containers: [{ name: 'app' }], initContainers: [{ name: 'istio-init' }] })),
    true,
    'istio-init',
  );
  t.equal(
    calls(w, pod({ annotations: { 'sidecar.istio.io/statusx': '{}' } }, { containers: [{ name: 'app' }] })),
    true,
    'exact key',
  );
});

t.test('every entry against Istio goldens: bare, injected, CNI-mode, rewritten by us', async (t) => {
  const [bare] = goldenPods('hello.yaml');
  const [injected] = goldenPods('hello.yaml.injected');
  const [cniMode] = goldenPods('hello.yaml.cni.injected');
  const ours = rewritten(injected);
  t.equal(ours.decision, 'patched', 'the webhook rewrites the injected golden');
  const pods: Record<string, any> = { bare, injected, 'CNI-mode': cniMode, rewritten: ours.pod };
  const want: Record<string, Record<string, boolean>> = {
    'rewrite.asm-cni.io': { bare: false, injected: true, 'CNI-mode': false, rewritten: false },
    late: { bare: true, injected: true, 'CNI-mode': false, rewritten: false },
  };
  for (const w of webhooks) {
    for (const [name, pod] of Object.entries(pods)) {
      t.equal(calls(w, pod), want[w === rewriteHook ? w.name : 'late']![name], `${w.name}: ${name} pod`);
    }
  }
  t.equal(rewritten(bare).decision, 'skipped', 'a bare pod that reaches us through a late entry is left alone');
  t.strictSame(rewritten(cniMode).pod, cniMode, 'the CNI-mode golden would not be changed either');
});

// How the API server runs one configuration (k8s.io/apiserver mutating dispatcher): webhooks in list order, each
// evaluating its matchConditions on the object as the previous ones left it; a webhook counts as invoked only when
// its conditions matched; on reinvocation only invoked IfNeeded webhooks are called again, after a later change.
t.test(
  'dispatch simulation in a mesh namespace: injector before or after us, the pod is patched exactly once',
  async (t) => {
    const meshNs = { 'kubernetes.io/metadata.name': 'team-a', 'istio-injection': 'enabled' };
    const [bare] = goldenPods('hello.yaml');
    const [injectedGolden] = goldenPods('hello.yaml.injected');
    const inject = (pod: any) =>
      pod.metadata.annotations?.['sidecar.istio.io/status']
        ? pod
        : { ...injectedGolden, metadata: { ...injectedGolden.metadata, name: pod.metadata.name } };
    function run(order: 'before' | 'after', input: any, hooks: any[] = webhooks) {
      let pod = structuredClone(input);
      const selected = hooks.filter(
        (w) => selects(w.namespaceSelector, meshNs) && selects(w.objectSelector, pod.metadata.labels ?? {}),
      );
      const invoked = new Set<any>();
      let patched = 0;
      let reviews = 0;
      const ourPass = (hooks: any[]) => {
        let changed = false;
        for (const w of hooks) {
          if (!calls(w, pod)) continue;
          invoked.add(w);
          reviews++;
          const r = rewritten(pod);
          if (r.decision === 'patched') {
            patched++;
            pod = r.pod;
            changed = true;
          }
        }
        return changed;
      };
      if (order === 'before') pod = inject(pod);
      ourPass(selected);
      let changedAfterUs = false;
      if (order === 'after') {
        const next = inject(pod);
        changedAfterUs = next !== pod;
        pod = next;
      }
      if (changedAfterUs) ourPass([...invoked]);
      return { pod, patched, reviews };
    }
    for (const order of ['before', 'after'] as const) {
      const { pod, patched, reviews } = run(order, bare);
      t.equal(patched, 1, `${order}: patched exactly once`);
      t.ok(reviews <= 2, `${order}: ${reviews} review(s)`);
      const init = (pod.spec.initContainers ?? []).map((c: { name: string }) => c.name);
      t.notOk(init.includes('istio-init'), `${order}: stored without istio-init`);
      t.equal(init[0], 'istio-validation', `${order}: istio-validation first`);
    }
    // The shipped istio-init entry alone (what we had before the late entries): the "after" order misses the pod.
    const { pod, patched } = run('after', bare, [rewriteHook]);
    t.equal(patched, 0, 'without the late entries, an injector after us defeats the rewrite (the problem they solve)');
    t.ok(
      pod.spec.initContainers.some((c: { name: string }) => c.name === 'istio-init'),
      'and the pod keeps istio-init',
    );
  },
);

t.test('certificates: plain Secret from certs/generate.sh, or cert-manager', async (t) => {
  const top = kustomization(manifests);
  t.same(top.resources, ['base']);
  const gen = top.secretGenerator[0];
  t.equal(gen.name, 'asm-cni-webhook-tls');
  t.equal(gen.namespace, 'asm-cni');
  t.equal(gen.type, 'kubernetes.io/tls');
  t.same(gen.files.map((f: string) => f.split('=')[0]).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
  t.ok(
    gen.files.every((f: string) => f.split('=')[1]!.startsWith('tls/')),
    'files from manifests/tls (certs/generate.sh --out)',
  );
  t.equal(top.generatorOptions.disableNameSuffixHash, true, 'the Deployment mounts it by its fixed name');
  const rep = top.replacements[0];
  t.same(rep.source, { kind: 'Secret', name: 'asm-cni-webhook-tls', fieldPath: 'data.[ca.crt]' });
  t.same(rep.targets[0].select, { kind: 'MutatingWebhookConfiguration', name: webhookConfig.metadata.name });
  t.same(rep.targets[0].fieldPaths, ['webhooks.*.clientConfig.caBundle']);
  t.ok(existsSync(path.join(manifests, 'tls', '.gitignore')), 'generated keys are ignored by git');
  t.ok(existsSync(path.join(repoRoot, 'certs', 'generate.sh')), 'the generator exists');

  const cm = resources(path.join(manifests, 'overlays', 'cert-manager'));
  const cmDir = path.join(manifests, 'components', 'cert-manager');
  const serving = find('Certificate', 'asm-cni-webhook', cm);
  t.equal(serving.spec.secretName, 'asm-cni-webhook-tls', 'cert-manager writes the Secret the Deployment mounts');
  const svc = `${service.metadata.name}.${service.metadata.namespace}`;
  t.same(serving.spec.dnsNames, [service.metadata.name, svc, `${svc}.svc`, `${svc}.svc.cluster.local`]);
  const issuer = find(serving.spec.issuerRef.kind, serving.spec.issuerRef.name, cm);
  const ca = cm.find((o) => o.kind === 'Certificate' && o.spec.secretName === issuer.spec.ca.secretName)!;
  t.equal(ca.spec.isCA, true, 'the CA issuer is backed by a CA certificate');
  find(ca.spec.issuerRef.kind, ca.spec.issuerRef.name, cm);
  const patch = parseYaml(kustomization(cmDir).patches[0].patch);
  t.equal(kustomization(cmDir).patches[0].target.name, webhookConfig.metadata.name);
  t.equal(
    patch.metadata.annotations['cert-manager.io/inject-ca-from'],
    `${serving.metadata.namespace}/${serving.metadata.name}`,
  );
});

/** .dockerignore semantics: the last pattern matching the path or one of its parents decides; `!` re-includes. */
function inBuildContext(ignore: string, file: string): boolean {
  const toRegex = (p: string) =>
    new RegExp(
      `^${p
        .replace(/\/$/, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '\u0000')
        .replace(/\*/g, '[^/]*')
        .replace(/\0/g, '.*')}$`,
    );
  const parts = file.replace(/\/$/, '').split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const raw of ignore.split('\n').map((l) => l.trim())) {
    if (raw === '' || raw.startsWith('#')) continue;
    const negated = raw.startsWith('!');
    const re = toRegex(negated ? raw.slice(1) : raw);
    if (prefixes.some((p) => re.test(p))) included = negated;
  }
  return included;
}

t.test('Dockerfile: the paths it copies exist; the manifests run what it builds', async (t) => {
  const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
  const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)]
    .map((m) => m[1]!.trim().split(/\s+/).slice(0, -1))
    .flat();
  t.ok(copies.length >= 5);
  for (const src of copies) t.ok(existsSync(path.join(repoRoot, src)), `COPY source ${src} exists`);
  t.match(dockerfile, /go build [^\n]*-o \/out\/asm-cni \.\/cmd\/asm-cni/);
  t.ok(existsSync(path.join(repoRoot, 'cni', 'cmd', 'asm-cni')), 'the plugin main package exists');
  t.match(dockerfile, /COPY --from=plugin \/out\/asm-cni \/opt\/asm-cni\/asm-cni/);
  t.equal(envOf(daemonset).ASM_PLUGIN_BINARY, '/opt/asm-cni/asm-cni');
  t.match(dockerfile, /^USER 10001:10001$/m, 'non-root by default');
  t.equal(deployment.spec.template.spec.securityContext.runAsUser, 10001);
  t.match(dockerfile, /npm ci --omit=dev/, 'production dependencies only');
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  t.equal(pkg.bin['asm-cni-install'], 'dist/installer/cli.js');
  t.match(pkg.scripts['build:ts'], /tsconfig\.build\.json/);
  const ignore = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8');
  for (const src of copies) t.ok(inBuildContext(ignore, src), `${src} is in the build context`);
  t.notOk(inBuildContext(ignore, 'node_modules/x'), 'node_modules is not');
  t.notOk(inBuildContext(ignore, 'dist/cni/asm-cni'), 'local builds are not');
  t.notOk(inBuildContext(ignore, 'manifests/tls/tls.key'), 'generated keys are not');
});

t.test(
  'the uninstall overlay runs `uninstall --uninstall-wait` and never brings the webhook configuration back',
  async (t) => {
    const k = kustomization(path.join(manifests, 'overlays', 'uninstall'));
    t.same(k.resources, ['../../base']);
    const del = parseYaml(k.patches[0].patch);
    t.same(
      [del.$patch, del.kind, del.metadata.name],
      ['delete', 'MutatingWebhookConfiguration', webhookConfig.metadata.name],
    );
    t.same(k.patches[1].target, { kind: 'DaemonSet', name: daemonset.metadata.name });
    const ops = parseYaml(k.patches[1].patch);
    t.same(ops, [
      {
        op: 'replace',
        path: '/spec/template/spec/containers/0/command',
        value: ['node', '/app/dist/installer/cli.js', 'uninstall', '--uninstall-wait'],
      },
    ]);
    t.equal(daemonset.spec.template.spec.containers[0].name, 'installer', 'container 0 is the installer');
  },
);
