// Property test over generated pods: the outcome is well-formed, the patch applies (validation on), the input is not
// mutated, the rewrite is idempotent, compare() agrees on what changed, and redirection comes from exactly one place.
import t from 'tap';
import fc from 'fast-check';
import { admit, type AdmitOutcome } from '../../../src/webhook/core/admit.js';
import { viewPod } from '../../../src/webhook/core/pod-view.js';
import { pluginSelection } from '../../../src/webhook/core/selection.js';
import type { SharedConfig } from '../../../src/common/shared-config.js';
import { ALLOWED_PATH, applyOps, clone, config, touchedPaths } from './fixtures/helpers.js';

type Obj = Record<string, any>;

const INJECT_VALUES = ['true', 'false', '0', '1', 'F', 'T', 'yes', 'no', '', ' false'];
const MODES = ['REDIRECT', 'TPROXY', 'NONE'];
const NAMESPACES = ['shop', 'default', 'kube-system', 'istio-system', 'legacy'];

const container = (name: string): Obj => ({ name, image: `example/${name}:1` });

const podArb = fc
  .record({
    native: fc.boolean(),
    initState: fc.constantFrom('istio-init', 'istio-init', 'istio-init', 'istio-validation', 'none'),
    initPosition: fc.nat(2),
    otherInits: fc.array(fc.constantFrom('migrate', 'wait-db'), { maxLength: 2 }),
    appContainers: fc.nat(2),
    proxyPresent: fc.oneof(fc.constant(true), fc.constant(true), fc.constant(false)),
    label: fc.option(fc.constantFrom(...INJECT_VALUES)),
    annotation: fc.option(fc.constantFrom(...INJECT_VALUES)),
    modeAnnotation: fc.option(fc.constantFrom(...MODES)),
    modeArg: fc.constantFrom(...MODES),
    hostNetwork: fc.option(fc.boolean()),
    uid: fc.option(fc.constantFrom(0, 1337, 1000670000)),
    withMetadata: fc.constantFrom(true, true, true, false),
    withAnnotations: fc.boolean(),
    withStatus: fc.boolean(),
    traffic: fc.dictionary(
      fc.constantFrom(
        'traffic.sidecar.istio.io/excludeOutboundPorts',
        'traffic.sidecar.istio.io/includeInboundPorts',
        'traffic.sidecar.istio.io/excludeInterfaces',
      ),
      fc.constantFrom('15020', '80,443', '', 'eth1'),
    ),
    excludeArg: fc.constantFrom('', '10.0.0.0/8', '192.0.2.0/24,2001:db8::/32'),
    networks: fc.option(fc.constantFrom('macvlan', '[{"name":"macvlan"}]', 'default/asm-cni')),
  })
  .map((g): Obj => {
    const inits: Obj[] = g.otherInits.map(container);
    if (g.initState !== 'none') {
      const first: Obj = {
        name: g.initState,
        image: 'proxyv2',
        args: ['istio-iptables', '-m', g.modeArg, '-i', '*', '-x', g.excludeArg, '-b', '*', '-d', '15090,15021,15020'],
        securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] }, runAsUser: 0 },
      };
      inits.splice(Math.min(g.initPosition, inits.length), 0, first);
    }
    const proxy: Obj = {
      ...container('istio-proxy'),
      ...(g.uid === null ? {} : { securityContext: { runAsUser: g.uid, runAsGroup: g.uid } }),
    };
    const containers: Obj[] = Array.from({ length: g.appContainers }, (_, i) => container(`app${i}`));
    if (g.proxyPresent) {
      if (g.native) inits.push({ ...proxy, restartPolicy: 'Always' });
      else containers.push(proxy);
    }
    const pod: Obj = { apiVersion: 'v1', kind: 'Pod', spec: { containers } };
    if (inits.length > 0) pod.spec.initContainers = inits;
    if (g.hostNetwork !== null) pod.spec.hostNetwork = g.hostNetwork;
    if (g.withMetadata) {
      pod.metadata = { generateName: 'gen-' };
      if (g.label !== null) pod.metadata.labels = { 'sidecar.istio.io/inject': g.label };
      const ann: Obj = { ...g.traffic };
      if (g.annotation !== null) ann['sidecar.istio.io/inject'] = g.annotation;
      if (g.modeAnnotation !== null) ann['sidecar.istio.io/interceptionMode'] = g.modeAnnotation;
      if (g.withStatus)
        ann['sidecar.istio.io/status'] = JSON.stringify({
          initContainers: inits.map((c) => c.name),
          containers: ['istio-proxy'],
        });
      if (g.networks !== null) ann['k8s.v1.cni.cncf.io/networks'] = g.networks;
      if (g.withAnnotations || Object.keys(ann).length > 0) pod.metadata.annotations = ann;
    }
    return pod;
  });

const configArb = fc
  .record({
    multus: fc.boolean(),
    excluded: fc.constantFrom(['kube-system', 'istio-system'], ['legacy'], []),
    warn: fc.boolean(),
  })
  .map((c): SharedConfig =>
    config({
      cniProvider: c.multus ? 'multus' : 'default',
      excludeNamespaces: [...c.excluded],
      invalidAnnotations: c.warn ? 'warn' : 'deny',
    }),
  );

const hasIstioInit = (pod: Obj): boolean => (pod.spec?.initContainers ?? []).some((c: Obj) => c.name === 'istio-init');

function wellFormed(out: AdmitOutcome): boolean {
  if (!Array.isArray(out.patch) || !Array.isArray(out.warnings) || typeof out.reason !== 'string') return false;
  if (out.decision === 'denied') return !out.allowed && out.status !== undefined && out.patch.length === 0;
  return out.allowed && out.status === undefined && (out.decision === 'patched') === out.patch.length > 0;
}

t.test('generated pods', async (t) => {
  let patched = 0;
  fc.assert(
    fc.property(podArb, configArb, fc.constantFrom(...NAMESPACES), (pod, cfg, namespace) => {
      const before = clone(pod);
      const request = {
        uid: 'u',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace,
        object: pod,
      };
      const out = admit(request, cfg);
      if (!wellFormed(out)) throw new Error(`malformed outcome ${JSON.stringify(out)}`);
      if (JSON.stringify(pod) !== JSON.stringify(before)) throw new Error('input mutated');
      const after = applyOps<Obj>(pod, out.patch); // throws if an op is invalid
      for (const p of touchedPaths(pod, after)) if (!ALLOWED_PATH.test(p)) throw new Error(`touched ${p}`);
      if (out.decision === 'patched') patched++;

      // Idempotent: the result, reviewed again, gives no ops and keeps being admitted the same way.
      const again = admit({ ...request, object: after }, cfg);
      if (again.patch.length !== 0) throw new Error(`second pass ops ${JSON.stringify(again.patch)}`);

      // Exactly one place: for a pod Istio rendered with istio-init, after the patch istio-init is there iff the pod
      // was not selected, and the plugin redirects iff it was.
      if (out.decision !== 'denied' && hasIstioInit(pod)) {
        const selected = out.reason === 'selected';
        if (hasIstioInit(after) === selected)
          throw new Error(`istio-init present=${hasIstioInit(after)} but reason=${out.reason}`);
        const plugin = pluginSelection(viewPod(after), namespace, cfg.excludeNamespaces);
        if ((plugin.decision === 'redirect') !== selected)
          throw new Error(`plugin ${plugin.reason} but webhook ${out.reason}`);
      }
      // Never both, for any pod.
      const plugin = pluginSelection(viewPod(after), namespace, cfg.excludeNamespaces);
      if (plugin.decision === 'redirect' && hasIstioInit(after)) throw new Error('both istio-init and the plugin');
    }),
    { numRuns: 3000 },
  );
  t.ok(patched > 100, `enough generated pods were patched (${patched})`);
});
