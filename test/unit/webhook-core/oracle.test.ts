// Istio's own goldens as the oracle: the rewrite of X.yaml.injected must be Istio's X.yaml.cni.injected.
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { admitDocument, podSlots } from '../../../src/webhook/core/workloads.js';
import { TPROXY_WARNING } from '../../../src/webhook/core/rewrite.js';
import { requirePrereq } from '../../harness/prereq.js';
import {
  ALLOWED_PATH,
  applyOps,
  clone,
  config,
  files,
  injectDirs,
  oraclesPresent,
  touchedPaths,
  yamlDocs,
} from './fixtures/helpers.js';

type Obj = Record<string, any>;

/** Fact 6: the network label and env var of hello.yaml.cni.injected come from an unrelated mesh setting. */
function dropNetworkConfound(doc: Obj): Obj {
  const d = clone(doc);
  delete d.spec.template.metadata.labels['topology.istio.io/network'];
  const spec = d.spec.template.spec;
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    if (c.name === 'istio-proxy') c.env = c.env.filter((e: Obj) => e.name !== 'ISTIO_META_NETWORK');
  }
  return d;
}

/** Rewrites a whole document through the same path as the CLI, checking patch validity and the touched paths. */
function rewrite(
  t: Test,
  doc: unknown,
  cfg = config(),
): { out: Obj; outcomes: ReturnType<typeof admitDocument>['outcomes'] } {
  const before = clone(doc);
  const { outcomes, ops } = admitDocument(doc, cfg, undefined);
  t.same(doc, before, 'the input is not mutated');
  const out = applyOps(doc, ops) as Obj;
  for (const o of outcomes) {
    for (const p of touchedPaths(o.slot.pod, applyOps(o.slot.pod, o.outcome.patch))) {
      t.match(p, ALLOWED_PATH, `${o.slot.owner}: only annotations and init containers change (${p})`);
    }
  }
  return { out, outcomes };
}

const skipUnlessOracles = (t: Test): boolean =>
  requirePrereq(t, oraclesPresent(), `Istio oracle files not found under ${injectDirs.join(', ')}`);

t.test("X.yaml.injected rewrites to Istio's X.yaml.cni.injected", async (t) => {
  if (!skipUnlessOracles(t)) return;
  let pairs = 0;
  for (const dir of injectDirs) {
    for (const f of files(dir).filter((f) => f.endsWith('.yaml.cni.injected'))) {
      const input = path.join(dir, f.replace('.cni.injected', '.injected'));
      if (!existsSync(input)) continue;
      pairs++;
      const [doc] = yamlDocs(input);
      const [golden] = yamlDocs(path.join(dir, f)) as Obj[];
      const { out, outcomes } = rewrite(t, doc);
      t.equal(outcomes[0]!.outcome.decision, 'patched', `${dir}/${f}`);
      t.same(out, dropNetworkConfound(golden!), `${path.basename(dir)}/${f}`);
      t.same(rewrite(t, out).outcomes[0]!.outcome.patch, [], 'a second pass gives no ops');
    }
  }
  t.equal(pairs, 2, 'hello in both shapes');
});

t.test('Multus: hello.yaml.injected rewrites to hello-cncf-networks.yaml.injected', async (t) => {
  if (!skipUnlessOracles(t)) return;
  for (const dir of injectDirs) {
    const [doc] = yamlDocs(path.join(dir, 'hello.yaml.injected'));
    const [golden] = yamlDocs(path.join(dir, 'hello-cncf-networks.yaml.injected'));
    const cfg = config({ cniProvider: 'multus', multusNetwork: 'istio-cni' });
    const { out } = rewrite(t, doc, cfg);
    t.same(out, golden, path.basename(dir));
    t.same(rewrite(t, out, cfg).outcomes[0]!.outcome.patch, [], 'idempotent under Multus');
  }
});

const statusOf = (pod: Obj): { initContainers: string[] | null; containers: string[] | null } =>
  JSON.parse(pod.metadata.annotations['sidecar.istio.io/status']);

t.test('every other injected golden: CNI-mode invariants', async (t) => {
  if (!skipUnlessOracles(t)) return;
  let patched = 0;
  for (const dir of injectDirs) {
    for (const f of files(dir).filter((f) => f.endsWith('.yaml.injected'))) {
      const docs = yamlDocs(path.join(dir, f));
      for (const [i, doc] of docs.entries()) {
        const name = `${path.basename(dir)}/${f}#${i}`;
        const { out, outcomes } = rewrite(t, doc);
        const after = podSlots(out);
        t.equal(after.length, outcomes.length, `${name}: same pods`);
        for (const [k, o] of outcomes.entries()) {
          const pod = after[k]!.pod as Obj;
          const spec = pod.spec ?? {};
          const inits: Obj[] = spec.initContainers ?? [];
          const all: Obj[] = [...inits, ...(spec.containers ?? [])];
          if (o.outcome.decision !== 'patched') {
            t.same(pod, o.slot.pod, `${name}: ${o.outcome.reason}: untouched`);
            continue;
          }
          patched++;
          t.notOk(
            inits.some((c) => c.name === 'istio-init'),
            `${name}: no istio-init`,
          );
          t.equal(inits[0]?.name, 'istio-validation', `${name}: istio-validation first`);
          const tproxy = pod.metadata.annotations['sidecar.istio.io/interceptionMode'] === 'TPROXY';
          for (const c of all) {
            const added: string[] = c.securityContext?.capabilities?.add ?? [];
            const privileged = added.includes('NET_ADMIN') || added.includes('NET_RAW');
            if (privileged)
              t.ok(
                tproxy && c.name === 'istio-proxy',
                `${name}: ${c.name} has NET_ADMIN/NET_RAW only as a TPROXY proxy`,
              );
          }
          t.equal(o.outcome.warnings.includes(TPROXY_WARNING), tproxy, `${name}: TPROXY warning iff TPROXY`);
          const status = statusOf(pod);
          for (const n of status.initContainers ?? [])
            t.ok(
              inits.some((c) => c.name === n),
              `${name}: status init ${n} exists`,
            );
          for (const n of status.containers ?? [])
            t.ok(
              (spec.containers ?? []).some((c: Obj) => c.name === n),
              `${name}: status container ${n} exists`,
            );
          t.ok(status.initContainers?.includes('istio-validation'), `${name}: status lists istio-validation`);
          const second = admitDocument(out, config(), undefined);
          t.same(second.ops, [], `${name}: second pass gives no ops`);
          t.equal(second.outcomes[k]!.outcome.reason, 'no-istio-init', `${name}: second pass: nothing to rewrite`);
        }
      }
    }
  }
  t.ok(patched >= 20, `most goldens are rewritten (${patched})`);
});

t.test('hostNetwork, NONE and single-container goldens are untouched, for the named reason', async (t) => {
  if (!skipUnlessOracles(t)) return;
  const native = injectDirs[1]!;
  const expect: Record<string, string> = {
    'init-no-intercept-no-native-sidecar.yaml.injected': 'interception-none',
    'only-proxy-container.yaml.injected': 'single-container',
    'hello-host-network.yaml.injected': 'no-istio-proxy', // Istio did not inject it at all (fact 10)
  };
  for (const [f, reason] of Object.entries(expect)) {
    const [doc] = yamlDocs(path.join(native, f));
    const { outcomes, ops } = admitDocument(doc, config(), undefined);
    t.equal(outcomes[0]!.outcome.reason, reason, f);
    t.same(ops, [], `${f}: no ops`);
  }
  // The host-network pod as Istio would have injected it had it not skipped it: still untouched.
  const [hello] = yamlDocs(path.join(native, 'hello.yaml.injected')) as Obj[];
  const hostNet = clone(hello!);
  hostNet.spec.template.spec.hostNetwork = true;
  const r = admitDocument(hostNet, config(), undefined);
  t.equal(r.outcomes[0]!.outcome.reason, 'host-network');
  t.same(r.ops, []);
  const none = clone(hello!);
  none.spec.template.metadata.annotations['sidecar.istio.io/interceptionMode'] = 'NONE';
  t.equal(admitDocument(none, config(), undefined).outcomes[0]!.outcome.reason, 'interception-none');
});

t.test('traffic-annotations-bad-* are denied naming their annotation', async (t) => {
  if (!skipUnlessOracles(t)) return;
  const native = injectDirs[1]!;
  const bad = files(native).filter((f) => f.startsWith('traffic-annotations-bad-') && f.endsWith('.yaml'));
  t.equal(bad.length, 3);
  // Istio's injector rejects these inputs, so there is no injected golden. Put their annotations on the pod Istio
  // injects for the same Deployment (traffic-annotations.yaml.injected, classic and CNI-mode shape): both denied.
  const [injected] = yamlDocs(path.join(native, 'traffic-annotations.yaml.injected')) as Obj[];
  for (const f of bad) {
    const [input] = yamlDocs(path.join(native, f)) as Obj[];
    const annotations: Record<string, string> = input!.spec.template.metadata.annotations;
    const [key, value] = Object.entries(annotations)[0]!;
    for (const shape of ['istio-init', 'cni-mode']) {
      const doc = clone(injected!);
      const tpl = doc.spec.template;
      tpl.metadata.annotations = { ...tpl.metadata.annotations, ...annotations };
      const init = tpl.spec.initContainers.find((c: Obj) => c.name === 'istio-init');
      if (shape === 'cni-mode') {
        tpl.spec.initContainers = tpl.spec.initContainers.filter((c: Obj) => c !== init);
      } else {
        // istio-init's args carry the same value Istio would have rendered from the annotation.
        const flag = {
          'traffic.sidecar.istio.io/excludeInboundPorts': '-d',
          'traffic.sidecar.istio.io/excludeOutboundIPRanges': '-x',
          'traffic.sidecar.istio.io/includeInboundPorts': '-b',
        }[key]!;
        const at = init.args.indexOf(flag);
        init.args[at + 1] = flag === '-d' ? `15090,15021,${value},15020` : value;
      }
      const { outcomes, ops } = admitDocument(doc, config(), undefined);
      const o = outcomes[0]!.outcome;
      t.equal(o.decision, 'denied', `${f} (${shape})`);
      t.equal(o.allowed, false);
      t.equal(o.reason, 'invalid-annotation');
      t.match(o.status?.message, key, `${f}: message names ${key}`);
      t.match(
        o.status?.message,
        JSON.stringify(
          shape === 'cni-mode' || key !== 'traffic.sidecar.istio.io/excludeInboundPorts' ? value : `${value},15020`,
        ),
      );
      t.same(ops, []);
      const warned = admitDocument(doc, config({ invalidAnnotations: 'warn' }), undefined).outcomes[0]!.outcome;
      t.equal(warned.allowed, true, `${f} (${shape}) warn: admitted`);
      t.equal(warned.reason, 'invalid-annotation');
      t.same(warned.patch, [], 'warn leaves the pod as Istio rendered it');
      t.ok(
        warned.warnings.some((w) => w.includes(key)),
        'the warning names the annotation',
      );
    }
  }
});

t.test('List and multi-document goldens: every pod', async (t) => {
  if (!skipUnlessOracles(t)) return;
  const native = injectDirs[1]!;
  const [list] = yamlDocs(path.join(native, 'list.yaml.injected'));
  const r = admitDocument(list, config(), undefined);
  t.equal(r.outcomes.length, 2);
  t.ok(
    r.ops.every((op) => /^\/items\/[01]\/spec\/template\//.test(op.path)),
    'ops rooted at each item',
  );
  t.same(
    r.outcomes.map((o) => o.outcome.decision),
    ['patched', 'patched'],
  );
  t.equal(yamlDocs(path.join(native, 'hello-multi.yaml.injected')).length, 2);
});
