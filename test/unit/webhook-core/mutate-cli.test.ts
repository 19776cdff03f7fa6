import t from 'tap';
import { PassThrough } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { jsonErrorOffset, runMutate, USAGE } from '../../../src/webhook/server/mutate-cli.js';
import { requirePrereq } from '../../harness/prereq.js';
import { applyOps, injectDirs, oraclesPresent, selectionCases, yamlDocs } from './fixtures/helpers.js';

type Obj = Record<string, any>;
const dir = mkdtempSync(path.join(tmpdir(), 'asm-cni-mutate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string): string => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};

async function run(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const io = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() };
  let out = '';
  let err = '';
  io.stdout.on('data', (d) => (out += d));
  io.stderr.on('data', (d) => (err += d));
  io.stdin.end(stdin);
  const code = await runMutate(argv, io);
  return { code, out, err };
}

const pod: Obj = selectionCases().find((c) => c.name === 'classic sidecar with istio-init')!.pod;
const template = { metadata: pod.metadata, spec: pod.spec };
const deployment = (name: string, namespace?: string): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec: { selector: { matchLabels: { app: 'web' } }, template },
});
const initNames = (spec: Obj): string[] => (spec.initContainers ?? []).map((c: Obj) => c.name);

t.test('help and usage errors exit 0 / 1', async (t) => {
  const help = await run(['mutate', '--help']);
  t.same([help.code, help.out], [0, USAGE]);
  for (const [argv, message] of [
    [[], /-f FILE .* is required/],
    [['-f'], /-f needs a value/],
    [['-f', 'x', '--bogus'], /unknown argument "--bogus"/],
    [['-f', 'x', '-o', 'xml'], /--output must be yaml, json or patch, got "xml"/],
    [['-f', 'x', '--namespace='], /--namespace must not be empty/],
  ] as Array<[string[], RegExp]>) {
    const r = await run(argv);
    t.equal(r.code, 1, argv.join(' '));
    t.match(r.err, message);
    t.match(r.err, /usage: asm-cni-webhook mutate/);
    t.equal(r.out, '');
  }
});

t.test('a Pod in YAML: rewritten, printed as YAML, comments kept; idempotent', async (t) => {
  const f = write('pod.yaml', `# my pod\n${stringify(pod)}`);
  const r = await run(['mutate', '-f', f]);
  t.equal(r.code, 0, r.err);
  t.equal(r.err, '');
  t.match(r.out, /^# my pod\n/, 'comment kept');
  const out = parseYaml(r.out) as Obj;
  t.same(initNames(out.spec), ['istio-validation']);
  t.equal(out.metadata.annotations['sidecar.istio.io/interceptionMode'], 'REDIRECT');
  const again = await run(['-f', write('pod-again.yaml', r.out)]);
  t.same([again.code, again.out], [0, r.out], 'a rewritten manifest is printed unchanged');
});

t.test('JSON on stdin: JSON out; --output yaml and patch', async (t) => {
  const json = JSON.stringify(pod);
  const r = await run(['-f', '-'], json);
  t.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out);
  t.same(initNames(out.spec), ['istio-validation']);
  const asYaml = await run(['-f', '-', '-o', 'yaml'], json);
  t.same(parseYaml(asYaml.out), out);
  const patch = await run(['-f', '-', '--output=patch'], json);
  const ops = JSON.parse(patch.out);
  t.ok(Array.isArray(ops) && ops.length > 0, 'a single document prints a plain op list');
  t.same(applyOps(pod, ops), out, 'the printed patch applies to the input and gives the rewrite');
});

t.test('every workload kind, List, multi-document YAML, objects of other kinds', async (t) => {
  const workloads: Obj[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } },
    deployment('d'),
    { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ds' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'rs' }, spec: { template } },
    { apiVersion: 'v1', kind: 'ReplicationController', metadata: { name: 'rc' }, spec: { template } },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template } },
    {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'cj' },
      spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } },
    },
    {
      apiVersion: 'v1',
      kind: 'List',
      items: [deployment('in-list'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }, pod],
    },
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'no-template' }, spec: {} },
  ];
  const f = write('many.yaml', workloads.map((w) => stringify(w)).join('---\n') + '---\n');
  const r = await run(['-f', f]);
  t.equal(r.code, 0, r.err);
  const docs = parseAllDocuments(r.out).map((d) => d.toJS() as Obj);
  t.equal(docs.length, workloads.length, 'one output document per input document');
  t.same(docs[0], workloads[0], 'Service unchanged');
  for (const d of docs.slice(1, 7)) t.same(initNames(d.spec.template.spec), ['istio-validation'], d.kind);
  t.same(initNames(docs[7]!.spec.jobTemplate.spec.template.spec), ['istio-validation'], 'CronJob');
  t.same(initNames(docs[8]!.items[0].spec.template.spec), ['istio-validation'], 'List: Deployment');
  t.same(docs[8]!.items[1], workloads[8]!.items[1], 'List: ConfigMap unchanged');
  t.same(initNames(docs[8]!.items[2].spec), ['istio-validation'], 'List: Pod');
  t.same(docs[9], workloads[9]);
  const patch = await run(['-f', f, '-o', 'patch']);
  const perDoc = JSON.parse(patch.out) as Array<{ document: number; patch: Obj[] }>;
  t.same(
    perDoc.map((p) => p.document),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  t.same(perDoc[0]!.patch, []);
  t.ok(perDoc[7]!.patch.every((op) => op.path.startsWith('/spec/jobTemplate/spec/template/')));
  const asJson = await run(['-f', f, '-o', 'json']);
  t.same(JSON.parse(asJson.out), docs, 'several documents as a JSON array');
  const jsonArray = await run(['-f', '-'], JSON.stringify([workloads[0], workloads[1]]));
  t.same(
    JSON.parse(jsonArray.out).map((d: Obj) => d.kind),
    ['Service', 'Deployment'],
    'a JSON array is a list of documents',
  );
});

t.test("namespace: the object's, then --namespace, then default", async (t) => {
  const cfg = write('cfg.yaml', 'excludeNamespaces: [legacy, default]\n');
  const f = write('ns.yaml', [deployment('own', 'shop'), deployment('flagged')].map((d) => stringify(d)).join('---\n'));
  const withFlag = await run(['-f', f, '--config', cfg, '-n', 'legacy', '-o', 'json']);
  const [own, flagged] = JSON.parse(withFlag.out) as Obj[];
  t.same(initNames(own!.spec.template.spec), ['istio-validation'], 'metadata.namespace wins');
  t.same(initNames(flagged!.spec.template.spec), ['istio-init'], '--namespace legacy is excluded');
  const noFlag = await run(['-f', f, '--config', cfg, '-o', 'json']);
  t.same(
    initNames((JSON.parse(noFlag.out) as Obj[])[1]!.spec.template.spec),
    ['istio-init'],
    'default is excluded by this config',
  );
  const other = await run(['-f', f, '-n', 'apps', '-o', 'json']);
  t.same(initNames((JSON.parse(other.out) as Obj[])[1]!.spec.template.spec), ['istio-validation']);
});

t.test('config errors exit 1', async (t) => {
  const f = write('p.json', JSON.stringify(pod));
  const bad = await run(['-f', f, '--config', write('bad.yaml', 'cniProvider: calico\n')]);
  t.equal(bad.code, 1);
  t.match(bad.err, /bad\.yaml: config: cniProvider must be one of default, multus/);
  const missing = await run(['-f', f, '--config', path.join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.err, /cannot read config .*nope\.yaml/);
  const multus = await run([
    '-f',
    f,
    '--config',
    write('multus.yaml', 'cniProvider: multus\nmultusNetwork: istio-cni\n'),
  ]);
  t.equal(JSON.parse(multus.out).metadata.annotations['k8s.v1.cni.cncf.io/networks'], 'default/istio-cni');
});

t.test('unreadable input exits 1 and says where', async (t) => {
  const missing = await run(['-f', path.join(dir, 'absent.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.err, /cannot read .*absent\.yaml/);
  const badYaml = await run(['-f', write('bad.yaml', 'kind: Pod\n---\nkind: Pod\nspec: [\n  a\nb: c\n')]);
  t.equal(badYaml.code, 1);
  t.match(badYaml.err, /bad\.yaml: document 2 \(line \d+\): not valid YAML/);
  const badJson = await run(['-f', '-'], '{\n  "kind": "Pod",\n  "spec": ,\n}');
  t.equal(badJson.code, 1);
  t.match(badJson.err, /standard input: not valid JSON \(line 3\)/);
  const scalar = await run(['-f', write('scalar.yaml', 'kind: Pod\n---\njust a string\n')]);
  t.equal(scalar.code, 1);
  t.match(scalar.err, /document 2: not a Kubernetes object/);
  t.equal(scalar.out, '');
});

t.test('a denied pod exits 2, says why, prints nothing', async (t) => {
  const bad = structuredClone(pod);
  bad.metadata.annotations['traffic.sidecar.istio.io/excludeOutboundIPRanges'] = '*';
  const f = write(
    'denied.yaml',
    stringify(deployment('ok')) +
      '---\n' +
      stringify({ ...deployment('bad'), spec: { template: { metadata: bad.metadata, spec: bad.spec } } }),
  );
  const r = await run(['-f', f]);
  t.equal(r.code, 2);
  t.equal(r.out, '');
  t.match(
    r.err,
    /document 2, Deployment\/bad \(namespace default\): denied: .*traffic.sidecar.istio.io\/excludeOutboundIPRanges="\*"/,
  );
  const warn = await run(['-f', f, '--config', write('warn.yaml', 'invalidAnnotations: warn\n')]);
  t.equal(warn.code, 0, 'warn: printed');
  t.match(warn.err, /^warning: .*Deployment\/bad.*excludeOutboundIPRanges/m);
});

t.test('warnings go to stderr; YAML with aliases falls back to a clean render', async (t) => {
  const tproxy = structuredClone(pod);
  tproxy.metadata.annotations['sidecar.istio.io/interceptionMode'] = 'TPROXY';
  const r = await run(['-f', '-', '-o', 'yaml'], stringify(tproxy));
  t.equal(r.code, 0);
  t.match(
    r.err,
    /warning: standard input: document 1, Pod\/web-7d4b9c6f5- \(namespace default\): interception mode TPROXY: istio-proxy keeps NET_ADMIN/,
  );
  const aliased = [
    'apiVersion: v1',
    'kind: Pod',
    'metadata:',
    '  annotations: &ann',
    `    sidecar.istio.io/status: '${pod.metadata.annotations['sidecar.istio.io/status']}'`,
    '  labels: *ann',
    `spec: ${JSON.stringify(pod.spec)}`,
  ].join('\n');
  const a = await run(['-f', '-'], aliased);
  t.equal(a.code, 0, a.err);
  const out = parseYaml(a.out) as Obj;
  t.same(initNames(out.spec), ['istio-validation']);
  t.equal(out.metadata.annotations['sidecar.istio.io/interceptionMode'], 'REDIRECT');
  t.notOk('sidecar.istio.io/interceptionMode' in out.metadata.labels, 'the alias did not carry the edit into labels');
});

t.test('the oracle goldens through the CLI', async (t) => {
  if (!requirePrereq(t, oraclesPresent(), 'Istio oracle files not found')) return;
  const native = injectDirs[1]!;
  const list = await run(['-f', path.join(native, 'list.yaml.injected'), '-o', 'json']);
  t.equal(list.code, 0);
  t.same(
    JSON.parse(list.out).items.map((i: Obj) => initNames(i.spec.template.spec)[0]),
    ['istio-validation', 'istio-validation'],
  );
  const multi = await run(['-f', path.join(native, 'hello-multi.yaml.injected')]);
  t.equal(multi.code, 0);
  t.equal(parseAllDocuments(multi.out).length, 2);
  const hello = await run(['-f', path.join(native, 'hello.yaml.injected')]);
  const golden = yamlDocs(path.join(native, 'hello.yaml.cni.injected'))[0] as Obj;
  const out = parseYaml(hello.out) as Obj;
  t.same(
    out.spec.template.spec.initContainers[0],
    golden.spec.template.spec.initContainers[0],
    'istio-validation as Istio renders it',
  );
  t.ok(readFileSync(path.join(native, 'hello.yaml.injected'), 'utf8').length > 0);
});

t.test('JSON error location', async (t) => {
  const ok = ['{}', '[]', ' {"a": [1, -2.5e3, true, false, null, "x\\"y"]} ', '[{"a":{}}, []]', '"s"', '0'];
  for (const text of ok) t.equal(jsonErrorOffset(text), undefined, text);
  const bad: Array<[string, number]> = [
    ['{"a" 1}', 5],
    ['{"a": 1,}', 8],
    ['{"a": 1 "b": 2}', 8],
    ['[1, 2', 5],
    ['[1 2]', 3],
    ['[01]', 2],
    ['tru', 0],
    ['{"a": nul}', 6],
    ['"abc', 4],
    ['"a\u0001"', 2],
    ['{} x', 3],
    ['{a: 1}', 1],
    ['', 0],
  ];
  for (const [text, at] of bad) t.equal(jsonErrorOffset(text), at, JSON.stringify(text));
});

t.test('YAML edit when istio-init is not the first init container (classic multi-init golden)', async (t) => {
  if (!requirePrereq(t, oraclesPresent(), 'Istio oracle files not found')) return;
  const f = path.join(injectDirs[0]!, 'multi-init.yaml.injected');
  const r = await run(['-f', f]);
  t.equal(r.code, 0, r.err);
  const out = parseYaml(r.out) as Obj;
  t.same(initNames(out.spec.template.spec), ['istio-validation', 'init-one', 'init-two']);
  const viaJson = await run(['-f', f, '-o', 'json']);
  t.same(out, JSON.parse(viaJson.out), 'the YAML edit and the JSON patch agree');
});
