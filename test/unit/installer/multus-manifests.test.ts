// manifests/components/multus: the NetworkAttachmentDefinition the webhook's Multus mode names, and the shared config
// switched to cniProvider: multus. Checked against what the other parts do with them: the webhook's patch names exactly
// this NAD, its plugin config is the installer's chained entry plus standalone, and the config patch drifts from base in
// cniProvider only. (The NAD CRD is not installed in the e2e API server, so these checks stay here.)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import jsonpatch from 'fast-json-patch';
import { parseConfig, DEFAULT_CONFIG, type SharedConfig } from '../../../src/common/shared-config.js';
import { admit } from '../../../src/webhook/core/admit.js';
import { parseCommandLine } from '../../../src/installer/options.js';
import { hostPathOf, renderEntry } from '../../../src/installer/entry.js';
import { evaluate } from '@marcbachmann/cel-js';
import { repoRoot } from './helpers.js';

const manifests = path.join(repoRoot, 'manifests');
const dir = path.join(manifests, 'components', 'multus');
const docs = (file: string): any[] =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
const kustomization = parseYaml(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'));
const listedResources: string[] = kustomization.resources ?? [];
const listedPatches: string[] = (kustomization.patches ?? []).map((p: { path?: string }) => p.path).filter(Boolean);
const objects = listedResources.flatMap((r) => docs(path.join(dir, r)));
// Strategic-merge patches are objects; a JSON 6902 patch is one document holding a list of operations.
const patchDocs = listedPatches.flatMap((p) => docs(path.join(dir, p)));
const patches = patchDocs.filter((d) => !Array.isArray(d));
const webhookOps = patchDocs.find((d) => Array.isArray(d)) as jsonpatch.Operation[];
const webhookTarget = (kustomization.patches ?? []).find(
  (p: { path?: string }) => p.path === 'webhook-patch.yaml',
)?.target;
const nad = objects.find((o) => o.kind === 'NetworkAttachmentDefinition');
const configMapPatch = patches.find((o) => o.kind === 'ConfigMap');
const baseConfigMap = docs(path.join(manifests, 'base', 'configmap.yaml')).find((o) => o.kind === 'ConfigMap');
const multusConfig: SharedConfig = parseConfig(configMapPatch.data['config.yaml']);

/** Every key the plugin's network config accepts (cni/internal/config; unknown keys would be ignored silently). */
const PLUGIN_KEYS = [
  'cniVersion',
  'name',
  'type',
  'standalone',
  'kubeconfig',
  'exclude_namespaces',
  'log_level',
  'log_file',
  'api_timeout',
  'iptables_backend',
];

t.test('the component renders: a Component whose files all parse and are all listed', async (t) => {
  t.equal(kustomization.apiVersion, 'kustomize.config.k8s.io/v1alpha1');
  t.equal(kustomization.kind, 'Component');
  const listed = new Set([...listedResources, ...listedPatches]);
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
  t.ok(files.length >= 2);
  for (const f of files) {
    t.ok(listed.has(f), `${f} is listed in kustomization.yaml`);
    t.ok(docs(path.join(dir, f)).length > 0, `${f} parses`);
  }
  for (const f of listed) t.ok(existsSync(path.join(dir, f)), `${f} exists`);
  t.same(
    objects.map((o) => o.kind),
    ['NetworkAttachmentDefinition'],
    'the component adds only the NAD',
  );
  t.same(
    patches.map((o) => o.kind),
    ['ConfigMap'],
    'and patches the shared ConfigMap',
  );
  t.ok(Array.isArray(webhookOps) && webhookOps.length > 0, 'and the webhook configuration (JSON 6902 ops)');
  t.notOk(kustomization.namespace, 'no namespace transformer (it would move the NAD out of default)');
});

t.test('the ConfigMap patch targets the shared ConfigMap and changes cniProvider only', async (t) => {
  t.equal(configMapPatch.apiVersion, 'v1');
  t.same(
    [configMapPatch.metadata.namespace, configMapPatch.metadata.name],
    [baseConfigMap.metadata.namespace, baseConfigMap.metadata.name],
  );
  t.same(Object.keys(configMapPatch.data), Object.keys(baseConfigMap.data), 'the same data keys as base');
  const base = parseConfig(baseConfigMap.data['config.yaml']);
  t.equal(base.cniProvider, 'default', 'base is the chained install');
  t.equal(multusConfig.cniProvider, 'multus');
  t.same({ ...multusConfig, cniProvider: base.cniProvider }, base, 'every other key as in base/configmap.yaml');
});

t.test('the NAD is the network the webhook names: default/<multusNetwork>', async (t) => {
  t.equal(nad.apiVersion, 'k8s.cni.cncf.io/v1');
  t.equal(nad.metadata.namespace, 'default');
  t.equal(nad.metadata.name, multusConfig.multusNetwork);
  t.equal(nad.metadata.name, DEFAULT_CONFIG.multusNetwork, 'the default multusNetwork (asm-cni)');
  t.equal(nad.metadata.labels['app.kubernetes.io/part-of'], 'asm-cni');

  // A CNI-mode pod (Istio rendered it without istio-init) admitted with the component's config gets exactly this NAD.
  const pod: any = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web',
      namespace: 'shop',
      annotations: { 'sidecar.istio.io/status': '{"initContainers":["istio-validation"]}' },
    },
    spec: {
      initContainers: [{ name: 'istio-validation', image: 'proxyv2' }],
      containers: [
        { name: 'app', image: 'app' },
        { name: 'istio-proxy', image: 'proxyv2' },
      ],
    },
  };
  const out = admit(
    {
      uid: 'u',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      object: pod,
    },
    multusConfig,
  );
  t.equal(out.reason, 'multus-network-added');
  const stored = jsonpatch.applyPatch(structuredClone(pod), out.patch, true, false).newDocument;
  const networks = stored.metadata.annotations['k8s.v1.cni.cncf.io/networks'];
  t.equal(networks, `${nad.metadata.namespace}/${nad.metadata.name}`);
});

t.test("the NAD's config is the plugin's config in standalone mode, with the installer's entry keys", async (t) => {
  t.type(nad.spec.config, 'string');
  let conf: Record<string, unknown> = {};
  t.doesNotThrow(() => {
    conf = JSON.parse(nad.spec.config);
  }, 'spec.config is JSON');
  t.same(
    Object.keys(conf).filter((k) => !PLUGIN_KEYS.includes(k)),
    [],
    'only keys the plugin reads',
  );
  t.equal(conf.type, 'asm-cni');
  t.equal(conf.standalone, true, 'Multus runs an additional network without prevResult');
  t.equal(conf.name, nad.metadata.name);
  t.ok(
    ['0.3.1', '0.4.0', '1.0.0', '1.1.0'].includes(conf.cniVersion as string),
    `cniVersion ${String(conf.cniVersion)} is supported`,
  );

  // The chained entry the installer would write with this config and the DaemonSet's settings: the same keys and values.
  const daemonset = docs(path.join(manifests, 'base', 'installer-daemonset.yaml')).find((o) => o.kind === 'DaemonSet');
  const env = Object.fromEntries(
    daemonset.spec.template.spec.containers[0].env
      .filter((e: { value?: string }) => e.value !== undefined)
      .map((e: { name: string; value: string }) => [e.name, e.value]),
  );
  const { options } = parseCommandLine(['run'], env);
  const entry = renderEntry(multusConfig, {
    hostKubeconfigPath: hostPathOf(options.kubeconfigPath, options.netDir, options.hostNetDir),
    logFile: options.pluginLogFile,
    apiTimeout: options.pluginApiTimeout,
  });
  t.equal(
    entry.kubeconfig,
    '/etc/cni/net.d/asm-cni-kubeconfig',
    'the host path the installer writes the kubeconfig to',
  );
  const { cniVersion: _v, name: _n, standalone: _s, ...rest } = conf;
  t.same(rest, entry, 'kubeconfig, exclude_namespaces, log_level, log_file, api_timeout as the installer renders them');
});

// Issue 10, defect 5: in Multus mode a pod Istio rendered in CNI mode (istio-validation, no istio-init) must reach the
// webhook, or it never names the network and the plugin never runs for it. Base leaves such pods out (chained mode
// needs nothing for them); the component's ops widen every entry's matchCondition.
const baseWebhooks = docs(path.join(manifests, 'base', 'mutating-webhook.yaml')).find(
  (o) => o.kind === 'MutatingWebhookConfiguration',
);
const multusWebhooks = jsonpatch.applyPatch(structuredClone(baseWebhooks), webhookOps, true, false).newDocument;
const goldenPod = (file: string): any => {
  const o = docs(path.join(repoRoot, 'test', 'unit', 'installer', 'oracle', 'inject', file)).find(Boolean);
  const tpl = o.spec?.template ?? o;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'hello', namespace: 'team-a', ...structuredClone(tpl.metadata ?? {}) },
    spec: structuredClone(tpl.spec),
  };
};
const calls = (hook: any, pod: any): boolean =>
  evaluate(hook.matchConditions[0].expression, { object: pod }) as boolean;
const admitted = (pod: any, config: SharedConfig) => {
  const out = admit(
    {
      uid: 'u',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: pod.metadata.namespace,
      operation: 'CREATE',
      object: pod,
    },
    config,
  );
  return { ...out, pod: jsonpatch.applyPatch(structuredClone(pod), out.patch, true, false).newDocument };
};

t.test('the webhook patch targets our configuration and replaces one condition per entry, guarded', async (t) => {
  t.same(webhookTarget, {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'MutatingWebhookConfiguration',
    name: baseWebhooks.metadata.name,
  });
  // The test ops make kustomize (and this apply, validating) fail if base reorders its entries.
  const guarded = webhookOps.filter((o) => o.op === 'test').map((o) => (o as { value: string }).value);
  t.same(
    guarded,
    baseWebhooks.webhooks.map((w: any) => w.name),
    'every entry, by name',
  );
  for (const w of multusWebhooks.webhooks) t.equal(w.matchConditions.length, 1, `${w.name}: one condition`);
  const stripped = structuredClone(multusWebhooks);
  for (const [i, w] of stripped.webhooks.entries()) w.matchConditions = baseWebhooks.webhooks[i].matchConditions;
  t.same(stripped, baseWebhooks, 'nothing else changes');
});

t.test(
  'Multus mode: the CNI-mode golden reaches the webhook and gets the network; chained mode is unchanged',
  async (t) => {
    const bare = goldenPod('hello.yaml');
    const cniMode = goldenPod('hello.yaml.cni.injected');
    const injected = goldenPod('hello.yaml.injected');
    const [rewrite, ...late] = multusWebhooks.webhooks;
    const [baseRewrite, ...baseLate] = baseWebhooks.webhooks;
    t.equal(calls(baseRewrite, cniMode) || baseLate.some((w: any) => calls(w, cniMode)), false, 'base: never called');
    t.equal(calls(rewrite, cniMode), true, 'multus: the first entry calls the webhook');
    for (const w of late) {
      t.equal(calls(w, cniMode), true, `${w.name}: a CNI-mode pod (injector after us: reinvocation)`);
      t.equal(calls(w, bare), true, `${w.name}: a pod not injected yet`);
    }
    t.equal(calls(rewrite, bare), false, 'a bare pod does not reach the first entry');
    const first = admitted(cniMode, multusConfig);
    t.same([first.decision, first.reason], ['patched', 'multus-network-added']);
    t.match(first.pod.metadata.annotations['k8s.v1.cni.cncf.io/networks'], /default\/asm-cni/);
    // Reinvoked or matched again by a later entry: nothing more to do.
    t.same(admitted(first.pod, multusConfig).patch, [], 'the stored pod gives an empty patch');
    // An istio-init pod is rewritten once and named once; the rewritten pod then matches, with an empty patch.
    const ours = admitted(injected, multusConfig);
    t.equal(ours.decision, 'patched');
    t.equal(calls(rewrite, ours.pod), true);
    t.same(admitted(ours.pod, multusConfig).patch, [], 'rewritten pods are left as they are');
  },
);
