// Writes test/vectors/selection.json. Every expected outcome below is written by hand from the table in
// test/vectors/README.md; nothing here calls the implementation. Run: node test/unit/webhook-core/gen-selection-vectors.mjs
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const PROXY_IMAGE = 'docker.io/istio/proxyv2:1.26.8';
const INIT_ARGS = (mode = 'REDIRECT') => [
  'istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', mode,
  '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info',
];
const istioInit = (mode) => ({
  name: 'istio-init',
  image: PROXY_IMAGE,
  args: INIT_ARGS(mode),
  securityContext: {
    allowPrivilegeEscalation: false,
    capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem: false,
    runAsGroup: 0,
    runAsNonRoot: false,
    runAsUser: 0,
  },
});
const istioValidation = () => ({
  name: 'istio-validation',
  image: PROXY_IMAGE,
  args: [...INIT_ARGS(), '--run-validation', '--skip-rule-apply'],
  securityContext: {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsGroup: 1337,
    runAsNonRoot: true,
    runAsUser: 1337,
  },
});
const proxy = (native = false) => ({
  name: 'istio-proxy',
  image: PROXY_IMAGE,
  args: ['proxy', 'sidecar', '--domain', '$(POD_NAMESPACE).svc.cluster.local'],
  ports: [{ containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' }],
  ...(native ? { restartPolicy: 'Always' } : {}),
  securityContext: {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsGroup: 1337,
    runAsNonRoot: true,
    runAsUser: 1337,
  },
});
const app = (name = 'web') => ({ name, image: 'docker.io/library/nginx:1.27', ports: [{ containerPort: 80, name: 'http' }] });
const status = (inits, containers) =>
  JSON.stringify({ initContainers: inits, containers, volumes: ['istio-envoy', 'istio-data', 'istio-podinfo', 'istio-token', 'istiod-ca-cert'], imagePullSecrets: null, revision: 'default' });

/** An Istio-injected pod, classic (proxy in containers) or native (proxy an init container with restartPolicy Always). */
function injected({ native = false, init = 'istio-init', mode, labels, annotations, spec } = {}) {
  const initName = init === 'none' ? null : init;
  const firstInit = initName === 'istio-init' ? istioInit(mode) : initName === 'istio-validation' ? istioValidation() : null;
  const initContainers = [...(firstInit ? [firstInit] : []), ...(native ? [proxy(true)] : [])];
  const statusInits = [...(initName ? [initName] : []), ...(native ? ['istio-proxy'] : [])];
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-7d4b9c6f5-',
      labels: { app: 'web', 'security.istio.io/tlsMode': 'istio', ...(labels ?? {}) },
      annotations: {
        'sidecar.istio.io/status': status(statusInits, native ? null : ['istio-proxy']),
        ...(annotations ?? {}),
      },
    },
    spec: {
      ...(initContainers.length ? { initContainers } : {}),
      containers: native ? [app()] : [app(), proxy()],
      ...(spec ?? {}),
    },
  };
  return pod;
}

const SEED_OK = { selected: true, reason: 'selected' };
const seedNo = (reason) => ({ selected: false, reason });
const PATCH = { decision: 'patch', reason: 'selected' };
const REDIRECT = { decision: 'redirect', reason: 'selected' };
const skip = (reason) => ({ decision: 'skip', reason });

const cases = [];
function add(name, pod, seed, webhook, plugin, extra = {}) {
  cases.push({ name, namespace: extra.namespace ?? 'shop', ...(extra.excludeNamespaces ? { excludeNamespaces: extra.excludeNamespaces } : {}), ...(extra.operation ? { operation: extra.operation } : {}), pod, seed, webhook, plugin });
}
/** A pod every part selects: the webhook rewrites it (istio-init present), so the plugin leaves it alone. */
const selectedByWebhook = (name, pod, extra) => add(name, pod, SEED_OK, PATCH, skip('istio-init-present'), extra);
/** A pod every part selects that Istio already rendered in CNI mode: the webhook has nothing to do, the plugin redirects. */
const selectedByPlugin = (name, pod, extra) => add(name, pod, SEED_OK, skip('no-istio-init'), REDIRECT, extra);
/** A pod the seed predicate rejects: nobody touches it, istio-init (if any) does the redirection. */
const rejected = (name, pod, reason, extra) => add(name, pod, seedNo(reason), skip(reason), skip(reason), extra);

// --- the plain cases: each shape once, each side of the webhook/plugin split
selectedByWebhook('classic sidecar with istio-init', injected());
selectedByWebhook('native sidecar with istio-init', injected({ native: true }));
selectedByPlugin('classic sidecar rendered in CNI mode (istio-validation, no istio-init)', injected({ init: 'istio-validation' }));
selectedByPlugin('native sidecar rendered in CNI mode (istio-validation, no istio-init)', injected({ native: true, init: 'istio-validation' }));
selectedByPlugin('classic sidecar with no init container at all', injected({ init: 'none' }));

// --- 0: operation (webhook only)
for (const operation of ['UPDATE', 'DELETE', 'CONNECT']) {
  add(`operation ${operation} is not rewritten`, injected(), SEED_OK, skip('not-create'), skip('istio-init-present'), { operation });
}
add('operation UPDATE of a CNI-mode pod: the plugin still redirects', injected({ init: 'istio-validation' }), SEED_OK, skip('not-create'), REDIRECT, { operation: 'UPDATE' });
add('operation CREATE given explicitly', injected(), SEED_OK, PATCH, skip('istio-init-present'), { operation: 'CREATE' });
add('operation UPDATE wins over an excluded namespace', injected(), seedNo('excluded-namespace'), skip('not-create'), skip('excluded-namespace'), { operation: 'UPDATE', namespace: 'kube-system' });

// --- 1: excluded namespaces
rejected('namespace kube-system is excluded by default', injected(), 'excluded-namespace', { namespace: 'kube-system' });
rejected('namespace istio-system is excluded by default', injected(), 'excluded-namespace', { namespace: 'istio-system' });
rejected('CNI-mode pod in an excluded namespace', injected({ init: 'istio-validation' }), 'excluded-namespace', { namespace: 'istio-system' });
rejected('custom excluded namespace', injected(), 'excluded-namespace', { namespace: 'legacy-apps', excludeNamespaces: ['legacy-apps', 'batch'] });
rejected('custom excluded namespace, second entry', injected(), 'excluded-namespace', { namespace: 'batch', excludeNamespaces: ['legacy-apps', 'batch'] });
selectedByWebhook('a custom list replaces the defaults: kube-system is no longer excluded', injected(), { namespace: 'kube-system', excludeNamespaces: ['legacy-apps'] });
selectedByWebhook('an empty list excludes nothing', injected(), { namespace: 'istio-system', excludeNamespaces: [] });
selectedByWebhook('namespace match is exact, not a prefix', injected(), { namespace: 'kube-system-apps' });
selectedByWebhook('namespace match is case-sensitive', injected(), { namespace: 'Kube-System', excludeNamespaces: ['kube-system'] });
rejected('excluded namespace wins over a disabling label', injected({ labels: { 'sidecar.istio.io/inject': 'false' } }), 'excluded-namespace', { namespace: 'kube-system' });

// --- 2 and 3: sidecar.istio.io/inject, every ParseBool spelling
const TRUE_SPELLINGS = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const FALSE_SPELLINGS = ['0', 'f', 'F', 'FALSE', 'false', 'False'];
const UNPARSEABLE = ['', 'yes', 'no', 'y', 'n', 'on', 'off', ' false', 'false ', 'FALSE ', '\tfalse', 'fALSE', 'faLse', 'tRUE', '00', '0.0', '-0', '+0', '01', 'False\n', '"false"', 'disabled', 'null'];
for (const v of FALSE_SPELLINGS) {
  rejected(`label inject=${JSON.stringify(v)} disables`, injected({ labels: { 'sidecar.istio.io/inject': v } }), 'injection-disabled-label');
  rejected(`annotation inject=${JSON.stringify(v)} disables`, injected({ annotations: { 'sidecar.istio.io/inject': v } }), 'injection-disabled-annotation');
}
for (const v of TRUE_SPELLINGS) {
  selectedByWebhook(`label inject=${JSON.stringify(v)} does not disable`, injected({ labels: { 'sidecar.istio.io/inject': v } }));
  selectedByWebhook(`annotation inject=${JSON.stringify(v)} does not disable`, injected({ annotations: { 'sidecar.istio.io/inject': v } }));
}
for (const v of UNPARSEABLE) {
  selectedByWebhook(`label inject=${JSON.stringify(v)} is unparseable and does not disable`, injected({ labels: { 'sidecar.istio.io/inject': v } }));
  selectedByWebhook(`annotation inject=${JSON.stringify(v)} is unparseable and does not disable`, injected({ annotations: { 'sidecar.istio.io/inject': v } }));
}
// label vs annotation: the label, when present, decides alone
selectedByWebhook('label true beats annotation false', injected({ labels: { 'sidecar.istio.io/inject': 'true' }, annotations: { 'sidecar.istio.io/inject': 'false' } }));
rejected('label false beats annotation true', injected({ labels: { 'sidecar.istio.io/inject': 'false' }, annotations: { 'sidecar.istio.io/inject': 'true' } }), 'injection-disabled-label');
rejected('label false and annotation false: the label is reported', injected({ labels: { 'sidecar.istio.io/inject': '0' }, annotations: { 'sidecar.istio.io/inject': 'false' } }), 'injection-disabled-label');
selectedByWebhook('unparseable label "no" is present, so annotation false is not consulted', injected({ labels: { 'sidecar.istio.io/inject': 'no' }, annotations: { 'sidecar.istio.io/inject': 'false' } }));
selectedByWebhook('empty label is present, so annotation false is not consulted', injected({ labels: { 'sidecar.istio.io/inject': '' }, annotations: { 'sidecar.istio.io/inject': 'false' } }));
rejected('annotation false with an unrelated label', injected({ labels: { 'sidecar.istio.io/rev': 'false' }, annotations: { 'sidecar.istio.io/inject': 'false' } }), 'injection-disabled-annotation');
selectedByWebhook('a label with another key is not the inject label', injected({ labels: { 'istio-injection': 'disabled', 'sidecar.istio.io/injected': 'false' } }));
rejected('disabled label wins over a missing istio-proxy', { ...injected(), spec: { containers: [app(), app('worker')] }, metadata: { name: 'plain', labels: { 'sidecar.istio.io/inject': 'false' } } }, 'injection-disabled-label');
rejected('CNI-mode pod with injection disabled by annotation', injected({ init: 'istio-validation', annotations: { 'sidecar.istio.io/inject': 'False' } }), 'injection-disabled-annotation');

// --- 4: istio-proxy present (classic or native)
const plain = (containers, initContainers, extraSpec = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'plain', labels: { app: 'plain' } },
  spec: { ...(initContainers ? { initContainers } : {}), containers, ...extraSpec },
});
rejected('no istio-proxy: two application containers', plain([app(), app('worker')]), 'no-istio-proxy');
rejected('no istio-proxy: a single application container', plain([app()]), 'no-istio-proxy');
rejected('no istio-proxy even with istio-init present', plain([app(), app('worker')], [istioInit()]), 'no-istio-proxy');
rejected('istio-proxy init container WITHOUT restartPolicy Always does not count', plain([app(), app('worker')], [istioInit(), { ...proxy(false) }]), 'no-istio-proxy');
rejected('istio-proxy init container with restartPolicy OnFailure does not count', plain([app(), app('worker')], [{ ...proxy(false), restartPolicy: 'OnFailure' }]), 'no-istio-proxy');
rejected('container name match is exact: istio-proxy-2 is not the proxy', plain([app(), { ...proxy(), name: 'istio-proxy-2' }], [istioInit()]), 'no-istio-proxy');
rejected('container name match is case-sensitive', plain([app(), { ...proxy(), name: 'Istio-Proxy' }], [istioInit()]), 'no-istio-proxy');
rejected('no containers field at all', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'empty' }, spec: {} }, 'no-istio-proxy');
rejected('no spec at all', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'empty' } }, 'no-istio-proxy');
rejected('no istio-proxy wins over a single container', plain([app()], [istioInit()]), 'no-istio-proxy');
rejected('no istio-proxy wins over hostNetwork', plain([app(), app('worker')], [istioInit()], { hostNetwork: true }), 'no-istio-proxy');
selectedByWebhook('native istio-proxy listed before istio-init in initContainers', (() => {
  const p = injected({ native: true });
  p.spec.initContainers.reverse();
  return p;
})());

// --- 5: more than one container (native sidecars count, other init containers do not)
rejected('only istio-proxy in containers', plain([proxy()], [istioInit()]), 'single-container');
rejected('only istio-proxy in containers, ordinary init containers do not count', plain([proxy()], [istioInit(), { name: 'migrate', image: 'docker.io/library/busybox:1.36', command: ['sh', '-c', 'true'] }]), 'single-container');
rejected('only a native istio-proxy, no containers', plain([], [istioInit(), proxy(true)]), 'single-container');
selectedByWebhook('native istio-proxy + one application container = two', injected({ native: true }));
selectedByWebhook('classic istio-proxy + another native sidecar = two', plain([proxy()], [istioInit(), { name: 'log-shipper', image: 'docker.io/fluent/fluent-bit:3.1', restartPolicy: 'Always' }]));
selectedByWebhook('three containers', plain([app(), app('worker'), proxy()], [istioInit()]));
rejected('single container wins over hostNetwork', plain([proxy()], [istioInit()], { hostNetwork: true }), 'single-container');

// --- 6: hostNetwork
add('hostNetwork pod', injected({ spec: { hostNetwork: true } }), SEED_OK, skip('host-network'), skip('host-network'));
add('hostNetwork native-sidecar pod', injected({ native: true, spec: { hostNetwork: true } }), SEED_OK, skip('host-network'), skip('host-network'));
add('hostNetwork CNI-mode pod', injected({ init: 'istio-validation', spec: { hostNetwork: true } }), SEED_OK, skip('host-network'), skip('host-network'));
selectedByWebhook('hostNetwork false is an ordinary pod', injected({ spec: { hostNetwork: false } }));
add('hostNetwork wins over interception NONE', injected({ mode: 'NONE', annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' }, spec: { hostNetwork: true } }), SEED_OK, skip('host-network'), skip('host-network'));

// --- 7: interception mode NONE (annotation, else istio-init -m)
add('interception NONE by annotation', injected({ mode: 'NONE', annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }), SEED_OK, skip('interception-none'), skip('interception-none'));
add('interception NONE by annotation, CNI-mode pod', injected({ init: 'istio-validation', annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }), SEED_OK, skip('interception-none'), skip('interception-none'));
add('interception NONE by annotation, no istio-init', injected({ init: 'none', annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }), SEED_OK, skip('interception-none'), skip('interception-none'));
add('interception NONE by istio-init -m only', injected({ mode: 'NONE' }), SEED_OK, skip('interception-none'), skip('interception-none'));
add('interception NONE by istio-init -m, native sidecar', injected({ native: true, mode: 'NONE' }), SEED_OK, skip('interception-none'), skip('interception-none'));
add('annotation NONE beats istio-init -m REDIRECT', injected({ annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }), SEED_OK, skip('interception-none'), skip('interception-none'));
selectedByWebhook('annotation REDIRECT beats istio-init -m NONE', injected({ mode: 'NONE', annotations: { 'sidecar.istio.io/interceptionMode': 'REDIRECT' } }));
selectedByWebhook('interception TPROXY is selected', injected({ mode: 'TPROXY', annotations: { 'sidecar.istio.io/interceptionMode': 'TPROXY' } }));
selectedByWebhook('interception TPROXY from istio-init -m only', injected({ mode: 'TPROXY' }));
selectedByPlugin('interception TPROXY, CNI-mode pod', injected({ init: 'istio-validation', annotations: { 'sidecar.istio.io/interceptionMode': 'TPROXY' } }));
selectedByWebhook('interception REDIRECT annotation', injected({ annotations: { 'sidecar.istio.io/interceptionMode': 'REDIRECT' } }));

// --- 8: istio-init present or not (the split between webhook and plugin)
selectedByPlugin('istio-init renamed by hand is not istio-init', (() => {
  const p = injected();
  p.spec.initContainers[0].name = 'istio-init-old';
  return p;
})());
selectedByWebhook('istio-init after other init containers', (() => {
  const p = injected({ native: true });
  p.spec.initContainers.unshift({ name: 'init-one', image: 'docker.io/library/busybox:1.36', command: ['sh', '-c', 'true'] });
  return p;
})());

const names = new Set();
for (const c of cases) {
  if (names.has(c.name)) throw new Error(`duplicate case name: ${c.name}`);
  names.add(c.name);
}
const out = fileURLToPath(new URL('../../vectors/selection.json', import.meta.url));
// One case per block, the pod on one line: small diffs, easy to read next to its expectations.
const formatCase = (c) =>
  '    {\n' + Object.entries(c).map(([k, v]) => `      ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n') + '\n    }';
writeFileSync(out, '{\n  "cases": [\n' + cases.map(formatCase).join(',\n') + '\n  ]\n}\n');
console.log(`wrote ${cases.length} cases to ${out}`);
