import t from 'tap';
import { viewPod, interceptionMode, initArgs } from '../../../src/webhook/core/pod-view.js';
import { goParseBool } from '../../../src/webhook/core/go-strings.js';
import { pluginSelection, seedSelection, webhookSelection } from '../../../src/webhook/core/selection.js';
import { admit } from '../../../src/webhook/core/admit.js';
import { config, selectionCases } from './fixtures/helpers.js';

const DEFAULT_EXCLUDED = ['kube-system', 'istio-system'];

t.test('goParseBool has Go strconv.ParseBool semantics', async (t) => {
  for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True']) t.equal(goParseBool(v), true, v);
  for (const v of ['0', 'f', 'F', 'FALSE', 'false', 'False']) t.equal(goParseBool(v), false, v);
  for (const v of [
    '',
    'yes',
    'no',
    ' false',
    'false ',
    'FALSE ',
    'fALSE',
    'tRUE',
    'y',
    'on',
    'off',
    '00',
    '01',
    '-0',
    '1.0',
    'False\n',
  ]) {
    t.equal(goParseBool(v), undefined, JSON.stringify(v));
  }
});

t.test('every shared selection vector: seed, webhook and plugin columns', async (t) => {
  const cases = selectionCases();
  t.ok(cases.length > 100);
  for (const c of cases) {
    const view = viewPod(c.pod);
    const excluded = c.excludeNamespaces ?? DEFAULT_EXCLUDED;
    const seed = seedSelection(view, c.namespace, excluded);
    t.same({ selected: seed.reason === 'selected', reason: seed.reason }, c.seed, `${c.name}: seed`);
    const wh = webhookSelection(view, c.namespace, excluded, c.operation ?? 'CREATE');
    t.same({ decision: wh.decision, reason: wh.reason }, c.webhook, `${c.name}: webhook`);
    t.same(pluginSelection(view, c.namespace, excluded), c.plugin, `${c.name}: plugin`);
  }
});

t.test('admit() agrees with every vector, and warns about unparseable inject values', async (t) => {
  for (const c of selectionCases()) {
    const cfg = config(c.excludeNamespaces === undefined ? {} : { excludeNamespaces: c.excludeNamespaces });
    const out = admit(
      {
        uid: 'u',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: c.namespace,
        operation: c.operation ?? 'CREATE',
        object: c.pod,
      },
      cfg,
    );
    t.equal(out.allowed, true, `${c.name}: allowed`);
    t.equal(out.reason, c.webhook.reason, `${c.name}: reason`);
    t.equal(out.decision, c.webhook.decision === 'patch' ? 'patched' : 'skipped', `${c.name}: decision`);
    t.equal(out.patch.length > 0, c.webhook.decision === 'patch', `${c.name}: a patch iff patched`);
    const meta = c.pod.metadata as
      { labels?: Record<string, string>; annotations?: Record<string, string> } | undefined;
    const deciding = meta?.labels?.['sidecar.istio.io/inject'] ?? meta?.annotations?.['sidecar.istio.io/inject'];
    const consulted =
      (c.operation ?? 'CREATE') === 'CREATE' && !(c.excludeNamespaces ?? DEFAULT_EXCLUDED).includes(c.namespace);
    const expectWarning = consulted && deciding !== undefined && goParseBool(deciding) === undefined;
    t.equal(
      out.warnings.some((w) => w.includes('sidecar.istio.io/inject') && w.includes(JSON.stringify(deciding))),
      expectWarning,
      `${c.name}: inject warning`,
    );
  }
});

t.test('interception mode: annotation, else istio-init -m (both spellings), else REDIRECT', async (t) => {
  const pod = (annotations: Record<string, string> | undefined, args: unknown) => ({
    metadata: annotations === undefined ? {} : { annotations },
    spec: { initContainers: [{ name: 'istio-init', args }], containers: [] },
  });
  t.equal(interceptionMode(viewPod(pod(undefined, ['-m', 'TPROXY']))), 'TPROXY');
  t.equal(interceptionMode(viewPod(pod(undefined, ['-m=NONE']))), 'NONE');
  t.equal(interceptionMode(viewPod(pod(undefined, ['-m', 'NONE', '-m', 'TPROXY']))), 'TPROXY', 'last wins');
  t.equal(interceptionMode(viewPod(pod({ 'sidecar.istio.io/interceptionMode': 'TPROXY' }, ['-m', 'NONE']))), 'TPROXY');
  t.equal(interceptionMode(viewPod(pod(undefined, ['-m']))), 'REDIRECT', 'dangling -m');
  t.equal(interceptionMode(viewPod(pod(undefined, 'not a list'))), 'REDIRECT');
  t.equal(
    interceptionMode(viewPod({ metadata: { annotations: { 'sidecar.istio.io/interceptionMode': 7 } } })),
    'REDIRECT',
    'non-string annotation reads as absent',
  );
  t.same(
    [...initArgs(['istio-iptables', '-x', '', '-i', '*', '--log=x', '-b=80', 7, '-', '-q']).entries()],
    [
      ['-x', ''],
      ['-i', '*'],
      ['-b', '80'],
    ],
  );
  t.equal(initArgs(['-x', '-m', 'NONE']).get('-m'), undefined, 'a value is not a flag');
});

t.test('odd shapes never throw and read as absent', async (t) => {
  const odd: unknown[] = [
    {},
    { metadata: null, spec: null },
    { metadata: { labels: ['x'], annotations: 'y' }, spec: { containers: 'z', initContainers: [null, 1, 'a'] } },
    {
      spec: {
        containers: [{ name: 'istio-proxy' }, null],
        initContainers: [{ name: 'istio-init', restartPolicy: 'Always' }],
      },
    },
  ];
  for (const p of odd) {
    const view = viewPod(p as Record<string, unknown>);
    t.doesNotThrow(() => webhookSelection(view, 'shop', DEFAULT_EXCLUDED));
    t.doesNotThrow(() => pluginSelection(view, 'shop', DEFAULT_EXCLUDED));
  }
  const v = viewPod(odd[3] as Record<string, unknown>);
  t.equal(v.containerCount, 3, 'two containers and one native sidecar');
  t.equal(webhookSelection(v, 'shop', DEFAULT_EXCLUDED).reason, 'selected');
});
