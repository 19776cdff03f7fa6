import t, { type Test } from 'tap';
import { viewPod } from '../../../src/webhook/core/pod-view.js';
import { pointerToken } from '../../../src/webhook/core/json-pointer.js';
import {
  annotationsFromInitArgs,
  appendNetwork,
  planNetworkOnly,
  planRewrite,
  proxyIds,
  rewriteStatus,
  validationContainer,
} from '../../../src/webhook/core/rewrite.js';
import { ALLOWED_PATH, applyOps, clone, config, touchedPaths } from './fixtures/helpers.js';

type Obj = Record<string, any>;
const INIT_ARGS = [
  'istio-iptables',
  '-p',
  '15001',
  '-z',
  '15006',
  '-u',
  '1337',
  '-m',
  'REDIRECT',
  '-i',
  '*',
  '-x',
  '',
  '-b',
  '*',
  '-d',
  '15090,15021,15020',
];
const STATUS =
  '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"imagePullSecrets":null,"revision":"default"}';

function pod(
  opts: { annotations?: Obj | null; metadata?: boolean; inits?: Obj[]; args?: unknown[]; proxySc?: Obj } = {},
): Obj {
  const init = {
    name: 'istio-init',
    image: 'proxyv2',
    args: opts.args ?? INIT_ARGS,
    securityContext: {
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: false,
    },
  };
  const p: Obj = {
    apiVersion: 'v1',
    kind: 'Pod',
    spec: {
      initContainers: opts.inits ? opts.inits.map((c) => (c.name === 'istio-init' ? { ...init, ...c } : c)) : [init],
      containers: [
        { name: 'app', image: 'app' },
        {
          name: 'istio-proxy',
          image: 'proxyv2',
          securityContext: opts.proxySc ?? { runAsUser: 1337, runAsGroup: 1337 },
        },
      ],
    },
  };
  if (opts.metadata !== false) {
    p.metadata = { name: 'p' };
    if (opts.annotations !== null) p.metadata.annotations = opts.annotations ?? { 'sidecar.istio.io/status': STATUS };
  }
  return p;
}

function plan(p: Obj, mode = 'REDIRECT', cfg = config(), ns = 'shop') {
  return planRewrite(viewPod(p), mode, cfg, ns);
}

function rewritten(t: Test, p: Obj, mode = 'REDIRECT', cfg = config()): Obj {
  const before = clone(p);
  const r = plan(p, mode, cfg);
  t.same(p, before, 'input not mutated');
  const out = applyOps(p, r.ops);
  for (const path of touchedPaths(p, out)) t.match(path, ALLOWED_PATH, `touches only what it may: ${path}`);
  t.same(plan(out, mode, cfg).ops, [], 'no istio-init left: a second plan is empty');
  return out;
}

t.test('the base case: one container op, annotations added, status rewritten', async (t) => {
  const p = pod();
  const r = plan(p);
  t.same([r.ops[0]!.op, r.ops[0]!.path], ['replace', '/spec/initContainers/0'], 'istio-init at 0: replaced in place');
  t.ok(
    r.ops.slice(1).every((op) => op.path.startsWith('/metadata/annotations/')),
    'annotation ops',
  );
  t.ok(
    r.ops.some((op) => op.path === '/metadata/annotations/sidecar.istio.io~1status' && op.op === 'replace'),
    'escaped key, replace when present',
  );
  t.ok(
    r.ops.some(
      (op) => op.path === '/metadata/annotations/traffic.sidecar.istio.io~1includeInboundPorts' && op.op === 'add',
    ),
  );
  const out = rewritten(t, p);
  t.same(out.metadata.annotations, {
    'sidecar.istio.io/status': STATUS.replace('istio-init', 'istio-validation'),
    'sidecar.istio.io/interceptionMode': 'REDIRECT',
    'traffic.sidecar.istio.io/includeOutboundIPRanges': '*',
    'traffic.sidecar.istio.io/includeInboundPorts': '*',
    'traffic.sidecar.istio.io/excludeInboundPorts': '15020',
  });
  const v = out.spec.initContainers[0];
  t.equal(v.name, 'istio-validation');
  t.same(v.args.slice(-2), ['--run-validation', '--skip-rule-apply']);
  t.same(v.securityContext, {
    capabilities: { drop: ['ALL'] },
    runAsUser: 1337,
    runAsGroup: 1337,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
  });
});

t.test('annotations object absent, metadata absent', async (t) => {
  const noAnn = pod({ annotations: null });
  const r = plan(noAnn);
  t.equal(r.ops.filter((op) => op.path.startsWith('/metadata')).length, 1, 'one op for the whole map');
  t.same(r.ops.find((op) => op.path === '/metadata/annotations')?.op, 'add');
  t.equal(rewritten(t, noAnn).metadata.annotations['sidecar.istio.io/interceptionMode'], 'REDIRECT');
  const noMeta = pod({ metadata: false });
  t.equal(plan(noMeta).ops.find((op) => op.path.startsWith('/metadata'))?.path, '/metadata');
  t.equal(rewritten(t, noMeta).metadata.annotations['traffic.sidecar.istio.io/includeInboundPorts'], '*');
});

t.test('istio-init not first: removed, then istio-validation takes index 0; order of the rest kept', async (t) => {
  const p = pod({ inits: [{ name: 'one' }, { name: 'two' }, { name: 'istio-init' }, { name: 'three' }] });
  const r = plan(p);
  t.same(
    r.ops.slice(0, 2).map((op) => [op.op, op.path]),
    [
      ['remove', '/spec/initContainers/2'],
      ['add', '/spec/initContainers/0'],
    ],
  );
  t.same(
    rewritten(t, p).spec.initContainers.map((c: Obj) => c.name),
    ['istio-validation', 'one', 'two', 'three'],
  );
});

t.test('annotations from the args: replace what differs, keep what matches, skip empty -i/-x', async (t) => {
  const p = pod({
    annotations: {
      'sidecar.istio.io/status': STATUS,
      'traffic.sidecar.istio.io/excludeInboundPorts': '4,5,6',
      'sidecar.istio.io/interceptionMode': 'REDIRECT',
    },
    args: [
      '-m',
      'REDIRECT',
      '-i',
      '',
      '-x',
      '10.0.0.0/8',
      '-b',
      '',
      '-d',
      '15090,15021,4,5,6,15020',
      '-q',
      '443',
      '-o',
      '7,8',
    ],
  });
  const r = plan(p);
  t.notOk(
    r.ops.some((op) => op.path.endsWith('interceptionMode')),
    'equal value: no op',
  );
  t.same(
    r.ops.find((op) => op.path.endsWith('excludeInboundPorts')),
    {
      op: 'replace',
      path: '/metadata/annotations/traffic.sidecar.istio.io~1excludeInboundPorts',
      value: '4,5,6,15020',
    },
  );
  const out = rewritten(t, p).metadata.annotations;
  t.notOk('traffic.sidecar.istio.io/includeOutboundIPRanges' in out, '-i "" writes nothing');
  t.equal(out['traffic.sidecar.istio.io/excludeOutboundIPRanges'], '10.0.0.0/8');
  t.equal(out['traffic.sidecar.istio.io/includeInboundPorts'], '', '-b "" is written');
  t.equal(out['traffic.sidecar.istio.io/includeOutboundPorts'], '443');
  t.equal(out['traffic.sidecar.istio.io/excludeOutboundPorts'], '7,8');
});

t.test('annotationsFromInitArgs: defaults and -d forms', async (t) => {
  const get = (args: unknown[], current?: Obj) =>
    Object.fromEntries(annotationsFromInitArgs(args, current).map((d) => [d.annotation, d.value]));
  t.same(get([]), { 'sidecar.istio.io/interceptionMode': 'REDIRECT' }, 'no -m, no annotation: REDIRECT');
  t.same(get([], { 'sidecar.istio.io/interceptionMode': 'TPROXY' }), {}, 'no -m: the annotation stays');
  t.same(
    get(['-m', 'NONE'], { 'sidecar.istio.io/interceptionMode': 'REDIRECT' }),
    {},
    'the mode annotation wins over -m, as selection reads it',
  );
  t.same(get(['-m=TPROXY', '-d', '15090,15021']), {
    'sidecar.istio.io/interceptionMode': 'TPROXY',
    'traffic.sidecar.istio.io/excludeInboundPorts': '',
  });
  t.equal(get(['-d', '8080'])['traffic.sidecar.istio.io/excludeInboundPorts'], '8080', 'no implicit prefix: as it is');
  t.equal(
    annotationsFromInitArgs(['-b', '1'], undefined).find((d) => d.value === '1')?.source,
    'istio-init argument -b',
  );
});

t.test('proxy UID/GID', async (t) => {
  t.same(proxyIds({ securityContext: { runAsUser: 1000670000, runAsGroup: 1000670001 } }, 'REDIRECT'), {
    uid: 1000670000,
    gid: 1000670001,
  });
  t.same(proxyIds({ securityContext: { runAsUser: 0, runAsGroup: 0 } }, 'REDIRECT'), { uid: 1337, gid: 1337 });
  t.same(proxyIds({ securityContext: { runAsUser: '5', runAsGroup: 1.5 } }, 'REDIRECT'), { uid: 1337, gid: 1337 });
  t.same(proxyIds(undefined, 'REDIRECT'), { uid: 1337, gid: 1337 });
  t.same(proxyIds({ securityContext: { runAsUser: 0, runAsGroup: 1337 } }, 'TPROXY'), { uid: 1337, gid: 1337 });
  const custom = rewritten(t, pod({ proxySc: { runAsUser: 1000670000, runAsGroup: 1000670001 } }));
  t.equal(custom.spec.initContainers[0].securityContext.runAsUser, 1000670000);
  t.equal(custom.spec.initContainers[0].securityContext.runAsGroup, 1000670001);
});

t.test('validationContainer edge shapes', async (t) => {
  const ids = { uid: 1337, gid: 1337 };
  const bare = validationContainer({ name: 'istio-init' }, ids);
  t.same(bare, {
    name: 'istio-validation',
    args: ['--run-validation', '--skip-rule-apply'],
    securityContext: { readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337 },
  });
  const onlyAdd = validationContainer(
    {
      name: 'istio-init',
      args: ['--run-validation'],
      securityContext: { capabilities: { add: ['NET_ADMIN'] }, privileged: false },
    },
    ids,
  );
  t.same(onlyAdd.args, ['--run-validation', '--skip-rule-apply'], 'no duplicate flags');
  t.same(
    onlyAdd.securityContext,
    { privileged: false, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337 },
    'empty capabilities dropped',
  );
  const init = { name: 'istio-init', env: [{ name: 'A', value: 'b' }], resources: { limits: { cpu: '1' } } };
  const v = validationContainer(init, ids);
  t.equal(v.env, init.env, 'untouched sub-objects are shared, not copied');
  t.equal(init.name, 'istio-init', 'input unchanged');
});

t.test('status annotation', async (t) => {
  t.equal(rewriteStatus(STATUS), STATUS.replace('"istio-init"', '"istio-validation"'));
  const spaced = '{ "initContainers" : [ "istio-init", "istio-proxy" ], "containers": null }';
  t.equal(
    rewriteStatus(spaced),
    '{"initContainers":["istio-validation","istio-proxy"],"containers":null}',
    'written back as Go writes it',
  );
  t.equal(
    rewriteStatus('{"initContainers":["other"],"containers":["istio-init"]}'),
    undefined,
    'only the init list counts',
  );
  t.equal(rewriteStatus('{"initContainers":["istio-init"],'), undefined, 'not JSON: left alone (with a warning)');
  t.equal(rewriteStatus('not json'), undefined);
  const p = pod({ annotations: { 'sidecar.istio.io/status': 'garbage' } });
  const r = plan(p);
  t.match(r.warnings.join('\n'), /sidecar.istio.io\/status/);
  t.equal(rewritten(t, p).metadata.annotations['sidecar.istio.io/status'], 'garbage');
});

t.test('TPROXY: warning, validation as 1337', async (t) => {
  const p = pod({
    args: [...INIT_ARGS.slice(0, 8), 'TPROXY', ...INIT_ARGS.slice(9)],
    proxySc: { runAsUser: 0, runAsGroup: 1337, capabilities: { add: ['NET_ADMIN'] } },
  });
  const r = plan(p, 'TPROXY');
  t.match(r.warnings.join('\n'), /TPROXY.*NET_ADMIN/);
  const out = rewritten(t, p, 'TPROXY');
  t.equal(out.spec.initContainers[0].securityContext.runAsUser, 1337);
  t.same(out.spec.containers[1], p.spec.containers[1], 'istio-proxy untouched, NET_ADMIN kept');
});

t.test('Multus networks: flat and JSON forms', async (t) => {
  const n = 'asm-cni';
  t.same(appendNetwork(undefined, n, 'shop'), { value: 'default/asm-cni' });
  t.same(appendNetwork('  ', n, 'shop'), { value: 'default/asm-cni' });
  t.same(appendNetwork('macvlan', n, 'shop'), { value: 'macvlan, default/asm-cni' });
  t.same(appendNetwork('a, other/b@eth2', n, 'shop'), { value: 'a, other/b@eth2, default/asm-cni' });
  t.same(appendNetwork('x, default/asm-cni', n, 'shop'), { unchanged: true });
  t.same(appendNetwork('default/asm-cni@net9', n, 'shop'), { unchanged: true });
  t.same(appendNetwork('asm-cni', n, 'default'), { unchanged: true }, 'unqualified in namespace default');
  t.same(
    appendNetwork('asm-cni', n, 'shop'),
    { value: 'asm-cni, default/asm-cni' },
    'unqualified elsewhere is another network',
  );
  t.same(appendNetwork('[{"name":"macvlan","interface":"net1"}]', n, 'shop'), {
    value: '[{"name":"macvlan","interface":"net1"},{"name":"asm-cni","namespace":"default"}]',
  });
  t.same(appendNetwork(' [ ] ', n, 'shop'), { value: '[{"name":"asm-cni","namespace":"default"}]' });
  t.same(appendNetwork('[{"name":"asm-cni","namespace":"default"}]', n, 'shop'), { unchanged: true });
  t.same(appendNetwork('[{"name":"asm-cni"}]', n, 'default'), { unchanged: true });
  t.same(appendNetwork('[{"name":"default/asm-cni"}]', n, 'shop'), { unchanged: true });
  t.same(appendNetwork('[{"name":"asm-cni"}]', n, 'shop'), {
    value: '[{"name":"asm-cni"},{"name":"asm-cni","namespace":"default"}]',
  });
  for (const bad of ['[{"name":', '["macvlan"]', '[{"interface":"net1"}]']) {
    const r = appendNetwork(bad, n, 'shop');
    t.ok('problem' in r && r.problem.annotation === 'k8s.v1.cni.cncf.io/networks', bad);
  }
  const multus = config({ cniProvider: 'multus' });
  const out = rewritten(
    t,
    pod({ annotations: { 'sidecar.istio.io/status': STATUS, 'k8s.v1.cni.cncf.io/networks': 'macvlan' } }),
    'REDIRECT',
    multus,
  );
  t.equal(out.metadata.annotations['k8s.v1.cni.cncf.io/networks'], 'macvlan, default/asm-cni');
  t.same(plan(out, 'REDIRECT', multus).ops, []);
  const broken = plan(pod({ annotations: { 'k8s.v1.cni.cncf.io/networks': '[oops' } }), 'REDIRECT', multus);
  t.equal(broken.problems.length, 1);
  const cniMode = viewPod({ metadata: { annotations: { 'k8s.v1.cni.cncf.io/networks': 'default/asm-cni' } } });
  t.same(planNetworkOnly(cniMode, multus, 'shop').ops, [], 'already named');
  t.same(planNetworkOnly(cniMode, config(), 'shop').ops, [], 'not multus: nothing');
});

t.test('no istio-init: nothing to plan', async (t) => {
  const p = pod({ inits: [{ name: 'other' }] });
  t.same(plan(p), { ops: [], warnings: [], problems: [], derived: [] });
});

t.test('pointer escaping', async (t) => {
  t.equal(pointerToken('a/b~c'), 'a~1b~0c');
  t.equal(pointerToken('plain'), 'plain');
  t.equal(pointerToken('sidecar.istio.io/status'), 'sidecar.istio.io~1status');
  t.equal(pointerToken('sidecar.istio.io/status'), 'sidecar.istio.io~1status', 'cached');
});
