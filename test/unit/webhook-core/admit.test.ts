import t from 'tap';
import { admit, DENY_CODE, type AdmissionRequest } from '../../../src/webhook/core/admit.js';
import { applyOps, clone, config, selectionCases } from './fixtures/helpers.js';

type Obj = Record<string, any>;
const POD_KIND = { group: '', version: 'v1', kind: 'Pod' };
const PODS = { group: '', version: 'v1', resource: 'pods' };
const base = selectionCases().find((c) => c.name === 'classic sidecar with istio-init')!.pod;
const cniMode = selectionCases().find((c) => c.name.startsWith('classic sidecar rendered in CNI mode'))!.pod;

const req = (over: Partial<AdmissionRequest> = {}): AdmissionRequest => ({
  uid: 'u-1',
  kind: POD_KIND,
  resource: PODS,
  namespace: 'shop',
  operation: 'CREATE',
  object: clone(base),
  ...over,
});

t.test('a selected pod is patched; the patch applies; the input is not mutated', async (t) => {
  const r = req();
  const before = clone(r);
  const out = admit(r, config());
  t.same(r, before, 'request untouched');
  t.equal(out.allowed, true);
  t.equal(out.decision, 'patched');
  t.equal(out.reason, 'selected');
  t.same(out.warnings, []);
  t.equal(out.status, undefined);
  const after = applyOps(r.object, out.patch) as Obj;
  t.equal(after.spec.initContainers[0].name, 'istio-validation');
});

t.test('dryRun gets the same answer', async (t) => {
  t.same(admit(req({ dryRun: true }), config()), admit(req(), config()));
});

t.test('not a pod: kind, resource, subresource, object kind', async (t) => {
  const cases: Array<[string, Partial<AdmissionRequest>]> = [
    ['kind Deployment', { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }],
    ['kind Pod of another group', { kind: { group: 'example.com', version: 'v1', kind: 'Pod' } }],
    ['resource deployments', { resource: { group: 'apps', version: 'v1', resource: 'deployments' } }],
    ['resource pods v2', { resource: { group: '', version: 'v2', resource: 'pods' } }],
    ['subresource binding', { subResource: 'binding', object: { kind: 'Binding' } }],
    ['subresource ephemeralcontainers', { subResource: 'ephemeralcontainers' }],
    ['object of another kind', { object: { apiVersion: 'v1', kind: 'Binding' } }],
    ['kind as a bare string', { kind: 'Pod' as unknown as AdmissionRequest['kind'] }],
    ['resource as a bare string', { resource: 'pods' as unknown as AdmissionRequest['resource'] }],
  ];
  for (const [name, over] of cases) {
    const out = admit(req(over), config());
    t.same(
      { allowed: out.allowed, decision: out.decision, reason: out.reason, patch: out.patch },
      { allowed: true, decision: 'skipped', reason: 'not-a-pod', patch: [] },
      name,
    );
  }
  t.equal(
    admit(req({ kind: undefined, resource: undefined }), config()).reason,
    'selected',
    'kind and resource absent: the object decides',
  );
});

t.test('operations other than CREATE; missing object', async (t) => {
  for (const operation of ['UPDATE', 'DELETE', 'CONNECT', undefined, 'create']) {
    const out = admit(req({ operation, object: operation === 'DELETE' ? undefined : clone(base) }), config());
    t.same([out.allowed, out.reason, out.patch], [true, 'not-create', []], String(operation));
  }
  for (const object of [undefined, null, 'pod', 42, ['a']]) {
    const out = admit(req({ object }), config());
    t.same([out.allowed, out.reason, out.patch], [true, 'no-object', []], JSON.stringify(object) ?? 'undefined');
  }
});

t.test('never throws, whatever the input', async (t) => {
  const weird: unknown[] = [
    null,
    undefined,
    0,
    'x',
    [],
    {},
    { uid: 1, kind: 'Pod', resource: 7, operation: {} },
    { operation: 'CREATE', object: { spec: 5 } },
  ];
  for (const w of weird) t.doesNotThrow(() => admit(w as AdmissionRequest, config()), JSON.stringify(w) ?? 'undefined');
  t.equal(admit(null as unknown as AdmissionRequest, config()).allowed, true);
  const hostile = req();
  Object.defineProperty(hostile.object as Obj, 'metadata', {
    get: () => {
      throw new Error('boom');
    },
  });
  // The safety net (safety-net.ts): this pod carries istio-init, so a throw refuses it with the error named.
  const out = admit(hostile, config());
  t.equal(out.allowed, false, 'a throw on a pod with istio-init refuses it');
  t.equal(out.reason, 'internal-error');
  t.same(out.patch, []);
  t.match(out.status, { code: 500, message: /internal error.*istio-init refused.*boom/ });
  const hostileNonError = req();
  Object.defineProperty(hostileNonError.object as Obj, 'spec', {
    get: () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what is tested: a throw of a non-Error
      throw 'plain';
    },
  });
  t.match(admit(hostileNonError, config()).status?.message, /plain/, 'a thrown non-Error is named too');
  // Unreadable even for the check (a throwing spec): refused, fail closed.
  t.equal(admit(hostileNonError, config()).allowed, false);
  // A pod without istio-init is admitted unchanged, as an outage of the late (failurePolicy Ignore) entries would.
  const plainPod = req({
    object: { kind: 'Pod', metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [{ name: 'app' }] } },
  });
  Object.defineProperty(plainPod.object as Obj, 'metadata', {
    get: () => {
      throw new Error('boom');
    },
  });
  const admitted = admit(plainPod, config());
  const unprintable = req();
  Object.defineProperty(unprintable.object as Obj, 'metadata', {
    get: () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what is tested: a throw that cannot be printed
      throw {
        toString: () => {
          throw new Error('no');
        },
      };
    },
  });
  t.match(admit(unprintable, config()).status?.message, /unprintable error/);
  t.match(admitted, { allowed: true, reason: 'internal-error', patch: [], warnings: [/admitted unchanged: boom/] });
});

t.test('namespace: the request, else the object', async (t) => {
  const inSystem = clone(base) as Obj;
  inSystem.metadata.namespace = 'istio-system';
  t.equal(admit(req({ namespace: '', object: inSystem }), config()).reason, 'excluded-namespace');
  t.equal(admit(req({ namespace: undefined, object: inSystem }), config()).reason, 'excluded-namespace');
  t.equal(admit(req({ namespace: 'shop', object: inSystem }), config()).reason, 'selected', 'the request wins');
  t.equal(admit(req({ namespace: 'legacy' }), config({ excludeNamespaces: ['legacy'] })).reason, 'excluded-namespace');
});

t.test('invalid annotations: deny names annotation and value; warn admits without a patch', async (t) => {
  const bad = clone(base) as Obj;
  bad.metadata.annotations['traffic.sidecar.istio.io/kubevirtInterfaces'] = 'eth 1';
  const denied = admit(req({ object: bad }), config());
  t.equal(denied.allowed, false);
  t.equal(denied.decision, 'denied');
  t.equal(denied.reason, 'invalid-annotation');
  t.equal(denied.status?.code, DENY_CODE);
  t.match(denied.status?.message, 'traffic.sidecar.istio.io/kubevirtInterfaces="eth 1"');
  t.same(denied.patch, []);
  const warned = admit(req({ object: bad }), config({ invalidAnnotations: 'warn' }));
  t.same([warned.allowed, warned.decision, warned.reason, warned.patch], [true, 'skipped', 'invalid-annotation', []]);
  t.match(warned.warnings.join('\n'), /kubevirtInterfaces.*istio-init keeps redirecting/);

  // istio-init's own args are validated under the annotation they become.
  const badArgs = clone(base) as Obj;
  const args: string[] = badArgs.spec.initContainers[0].args;
  args[args.indexOf('-b') + 1] = '80,,81';
  const fromArgs = admit(req({ object: badArgs }), config());
  t.equal(fromArgs.decision, 'denied');
  t.match(fromArgs.status?.message, /includeInboundPorts="80,,81" \(from istio-init argument -b\)/);

  // A CNI-mode pod is the plugin's: its values are checked too.
  const badCni = clone(cniMode) as Obj;
  badCni.metadata.annotations['sidecar.istio.io/interceptionMode'] = 'redirect';
  t.equal(admit(req({ object: badCni }), config()).decision, 'denied');
  const warnedCni = admit(req({ object: badCni }), config({ invalidAnnotations: 'warn' }));
  t.same([warnedCni.allowed, warnedCni.reason], [true, 'invalid-annotation']);
  t.match(warnedCni.warnings.join('\n'), /interceptionMode="redirect".*CNI plugin will refuse this pod/);

  // Skipped pods are not the plugin's business: no validation.
  const skipped = clone(bad);
  skipped.spec.hostNetwork = true;
  t.equal(admit(req({ object: skipped }), config()).reason, 'host-network');
});

t.test('warnings: TPROXY, unparseable inject value', async (t) => {
  const tproxy = clone(base) as Obj;
  tproxy.metadata.annotations['sidecar.istio.io/interceptionMode'] = 'TPROXY';
  const out = admit(req({ object: tproxy }), config());
  t.equal(out.decision, 'patched');
  t.match(out.warnings.join('\n'), /TPROXY/);
  const yes = clone(base) as Obj;
  yes.metadata.labels['sidecar.istio.io/inject'] = 'yes';
  const w = admit(req({ object: yes }), config());
  t.equal(w.decision, 'patched', 'an unparseable value does not disable');
  t.match(w.warnings.join('\n'), /sidecar.istio.io\/inject="yes"/);
});

t.test('Multus: a CNI-mode pod only gets the network; then nothing', async (t) => {
  const multus = config({ cniProvider: 'multus' });
  const out = admit(req({ object: clone(cniMode) }), multus);
  t.same([out.decision, out.reason], ['patched', 'multus-network-added']);
  const after = applyOps(cniMode, out.patch) as Obj;
  t.equal(after.metadata.annotations['k8s.v1.cni.cncf.io/networks'], 'default/asm-cni');
  t.same(admit(req({ object: after }), multus).patch, []);
  t.equal(admit(req({ object: after }), multus).reason, 'no-istio-init');
  const broken = clone(cniMode) as Obj;
  broken.metadata.annotations['k8s.v1.cni.cncf.io/networks'] = '[{';
  t.equal(admit(req({ object: broken }), multus).decision, 'denied');
  t.equal(
    admit(req({ object: broken }), config()).reason,
    'no-istio-init',
    'without Multus the annotation is not ours',
  );
});

t.test("outcomes are the caller's to extend", async (t) => {
  const a = admit(req({ operation: 'UPDATE' }), config());
  a.warnings.push('added by the server');
  a.patch.push({ op: 'test', path: '/x', value: 1 });
  const b = admit(req({ operation: 'UPDATE' }), config());
  t.same([b.warnings, b.patch], [[], []], 'no shared arrays between outcomes');
});

t.test('warnings and messages stay short, whatever the value', async (t) => {
  const huge = clone(base) as Obj;
  huge.metadata.annotations['traffic.sidecar.istio.io/excludeOutboundPorts'] = 'x'.repeat(10000);
  huge.metadata.labels['sidecar.istio.io/inject'] = 'y'.repeat(10000);
  const denied = admit(req({ object: huge }), config());
  t.ok(denied.status!.message.length < 400, `denial message ${denied.status!.message.length} chars`);
  t.match(denied.status!.message, /"x{40}…"/);
  const warned = admit(req({ object: huge }), config({ invalidAnnotations: 'warn' }));
  for (const w of warned.warnings) t.ok(w.length <= 256, `warning of ${w.length} chars: ${w.slice(0, 40)}`);
  const tproxy = clone(base) as Obj;
  tproxy.metadata.annotations['sidecar.istio.io/interceptionMode'] = 'TPROXY';
  for (const w of admit(req({ object: tproxy }), config()).warnings)
    t.ok(w.length <= 120, `TPROXY warning ${w.length} chars`);
});

t.test(
  'issue 10, defect 8: a pod value istio-init contradicts is replaced, with a warning naming both values',
  async (t) => {
    const own = clone(base) as Obj;
    own.metadata.annotations['traffic.sidecar.istio.io/includeOutboundIPRanges'] = '10.0.0.0/33';
    const out = admit(req({ object: own }), config());
    t.same(
      [out.decision, out.reason],
      ['patched', 'selected'],
      'the value written is istio-init\'s "*", which is valid',
    );
    t.same(out.warnings, [
      'annotation traffic.sidecar.istio.io/includeOutboundIPRanges="10.0.0.0/33" replaced by "*" (istio-init argument -i): what istio-init would have applied',
    ]);
    t.equal(
      (applyOps(own, out.patch) as Obj).metadata.annotations['traffic.sidecar.istio.io/includeOutboundIPRanges'],
      '*',
    );
    // Istio's own rendering of the same value (-d adds the ports the plugin always excludes) is no contradiction.
    const same = clone(base) as Obj;
    same.metadata.annotations['traffic.sidecar.istio.io/excludeInboundPorts'] = ' 0080,15021';
    const args: string[] = same.spec.initContainers[0].args;
    args[args.indexOf('-d') + 1] = '15090,15021,80,15020';
    t.same(admit(req({ object: same }), config()).warnings, []);
    args[args.indexOf('-d') + 1] = '15090,15021,81,15020';
    t.match(admit(req({ object: same }), config()).warnings, [
      /excludeInboundPorts=" 0080,15021" replaced by "81,15020"/,
    ]);
  },
);

t.test('issue 10, defect 6: a pod with istio-validation and istio-init ends with one istio-validation', async (t) => {
  for (const order of [
    ['istio-validation', 'istio-init'],
    ['istio-init', 'setup', 'istio-validation'],
    ['istio-validation', 'setup', 'istio-init', 'istio-validation'],
  ]) {
    const twice = clone(base) as Obj;
    const init = twice.spec.initContainers[0];
    twice.spec.initContainers = order.map((name) =>
      name === 'istio-init' ? init : { name, image: 'old', args: ['--run-validation'] },
    );
    const out = admit(req({ object: twice }), config());
    t.equal(out.decision, 'patched', order.join(','));
    const after = applyOps(twice, out.patch) as Obj;
    t.not(after.spec.initContainers[0].image, 'old', 'the istio-validation kept is the one derived from istio-init');
    const names = after.spec.initContainers.map((c: Obj) => c.name);
    t.same(
      names,
      ['istio-validation', ...order.filter((n) => n === 'setup')],
      `${order.join(',')} → ${names.join(',')}`,
    );
    t.match(out.warnings.join('\n'), /already had an istio-validation init container/);
  }
});
