// The Fastify app through inject(): the admission round trip with the real admit(), every kind of bad input, the
// probes, the per-review log line and the metrics it records.
import t from 'tap';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_CONFIG, type SharedConfig } from '../../../src/common/shared-config.js';
import { admit } from '../../../src/webhook/core/admit.js';
import { DEFAULT_BODY_LIMIT, buildApp } from '../../../src/webhook/server/app.js';
import { WebhookMetrics } from '../../../src/webhook/server/metrics.js';
import { decodePatch, goldenPod, haveOracles, meshedPod, memoryLogger, oracleRoot, review } from './helpers.js';
import { requirePrereq } from '../../harness/prereq.js';

const cfg = (over: Partial<SharedConfig> = {}): SharedConfig => ({
  ...DEFAULT_CONFIG,
  excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces],
  ...over,
});

function setup(
  over: { ready?: () => boolean; config?: () => SharedConfig; admit?: typeof admit; bodyLimit?: number } = {},
) {
  const log = memoryLogger();
  const metrics = new WebhookMetrics({ defaultMetrics: false });
  const app = buildApp({
    admit: over.admit ?? admit,
    config: over.config ?? (() => DEFAULT_CONFIG),
    ready: over.ready ?? (() => true),
    logger: log.logger,
    metrics,
    ...(over.bodyLimit !== undefined ? { bodyLimit: over.bodyLimit } : {}),
  });
  return { app, log, metrics };
}

type Review = {
  apiVersion: string;
  kind: string;
  response: {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string };
  };
};

async function post(app: ReturnType<typeof setup>['app'], body: unknown) {
  const res = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  return { res, review: res.statusCode === 200 ? res.json<Review>() : undefined };
}

async function counter(metrics: WebhookMetrics, outcome: string, reason: string): Promise<number> {
  const m = await metrics.reviews.get();
  return m.values.find((v) => v.labels.outcome === outcome && v.labels.reason === reason)?.value ?? 0;
}

t.test('a selected pod gets a JSON patch that, applied with validation, gives the CNI-mode rewrite', async (t) => {
  const { app, log, metrics } = setup();
  const pod = meshedPod();
  const body = review(pod);
  const { res, review: out } = await post(app, body);
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.equal(out!.apiVersion, 'admission.k8s.io/v1');
  t.equal(out!.kind, 'AdmissionReview');
  t.equal(out!.response.uid, (body.request as { uid: string }).uid, 'uid echoed');
  t.equal(out!.response.allowed, true);
  t.equal(out!.response.patchType, 'JSONPatch');
  const ops = decodePatch(out!.response) as Operation[];
  t.ok(ops.length > 0);
  const patched = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as {
    spec: { initContainers: Array<{ name: string; securityContext?: { capabilities?: { add?: string[] } } }> };
  };
  const inits = patched.spec.initContainers;
  t.equal(inits[0]!.name, 'istio-validation');
  t.notOk(
    inits.some((c) => c.name === 'istio-init'),
    'istio-init is gone',
  );
  t.notOk(JSON.stringify(inits).includes('NET_ADMIN'), 'no NET_ADMIN left in init containers');
  t.same(
    patched,
    jsonpatch.applyPatch(structuredClone(pod), admit(body.request as never, DEFAULT_CONFIG).patch, true, false)
      .newDocument,
    "the patch is admit()'s",
  );
  t.equal(await counter(metrics, 'patched', 'selected'), 1);
  const line = log.lines.find((l) => l.msg === 'review');
  t.match(line, {
    level: 'info',
    uid: (body.request as { uid: string }).uid,
    namespace: 'team-a',
    pod: 'web',
    operation: 'CREATE',
    decision: 'patched',
    reason: 'selected',
  });
  t.type(line!.durationMs, 'number');
  t.notOk(JSON.stringify(log.lines).includes('istio-iptables'), 'the object is never logged at info');
});

t.test(
  'an injected encode writes the answer: it gets the Response the handler decided, its string is the body',
  async (t) => {
    const log = memoryLogger();
    const seen: unknown[] = [];
    const app = buildApp({
      admit,
      config: () => DEFAULT_CONFIG,
      ready: () => true,
      logger: log.logger,
      metrics: new WebhookMetrics({ defaultMetrics: false }),
      encode: (response) => {
        seen.push(response);
        return '{"precomputed":true}';
      },
    });
    const body = review(meshedPod());
    const res = await app.inject({
      method: 'POST',
      url: '/mutate',
      payload: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    t.equal(res.statusCode, 200);
    t.equal(res.body, '{"precomputed":true}');
    t.match(res.headers['content-type'], /^application\/json/);
    t.equal(seen.length, 1);
    t.match(seen[0], { uid: (body.request as { uid: string }).uid, allowed: true });
    t.ok((seen[0] as { patch?: unknown[] }).patch!.length > 0, "the patch ops are admit()'s, not yet encoded");
  },
);

t.test("Istio golden: the patched pod deep-equals Istio's own CNI-mode rendering", async (t) => {
  if (!requirePrereq(t, haveOracles(), `Istio oracles under ${oracleRoot}`)) return;
  const { app } = setup();
  const pod = goldenPod('hello.yaml.injected');
  const { review: out } = await post(app, review(pod, { namespace: 'default' }));
  const ops = decodePatch(out!.response) as Operation[];
  const patched = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as {
    metadata: Record<string, unknown>;
    spec: Record<string, unknown>;
  };
  const golden = parseAllDocuments(
    readFileSync(path.join(oracleRoot, 'inject/classic-1.26.8/hello.yaml.cni.injected'), 'utf8'),
  )[0]!.toJS() as {
    spec: {
      template: {
        metadata: { labels: Record<string, string> };
        spec: { containers: Array<{ name: string; env?: Array<{ name: string }> }> };
      };
    };
  };
  // The documented confound of this golden (README fact 6): a mesh network setting unrelated to CNI mode.
  delete golden.spec.template.metadata.labels['topology.istio.io/network'];
  for (const c of golden.spec.template.spec.containers)
    if (c.name === 'istio-proxy') c.env = c.env!.filter((e) => e.name !== 'ISTIO_META_NETWORK');
  t.same(patched.spec, golden.spec.template.spec);
  t.same(
    { ...patched.metadata, generateName: undefined },
    { ...golden.spec.template.metadata, generateName: undefined },
  );
});

t.test('skips and denials: allowed without a patch, or denied with a status naming the problem', async (t) => {
  const { app, metrics } = setup();
  const skip = await post(app, review(meshedPod(), { namespace: 'kube-system' }));
  t.same(
    skip.review!.response,
    { uid: skip.review!.response.uid, allowed: true },
    'excluded namespace: no patch, no patchType',
  );
  t.equal(await counter(metrics, 'skipped', 'excluded-namespace'), 1);

  const bad = meshedPod();
  (bad.metadata as { annotations: Record<string, string> }).annotations[
    'traffic.sidecar.istio.io/excludeOutboundIPRanges'
  ] = 'not-a-cidr';
  const deny = await post(app, review(bad));
  t.equal(deny.res.statusCode, 200);
  t.equal(deny.review!.response.allowed, false);
  t.notOk(deny.review!.response.patch);
  t.match(deny.review!.response.status, { code: 400, message: /excludeOutboundIPRanges.*not-a-cidr/ });
  t.equal(await counter(metrics, 'denied', 'invalid-annotation'), 1);
});

t.test('config is read per review: a reload applies to the next request', async (t) => {
  let config = cfg();
  const { app } = setup({ config: () => config });
  t.ok((await post(app, review(meshedPod()))).review!.response.patch);
  config = cfg({ excludeNamespaces: ['team-a'] });
  t.notOk((await post(app, review(meshedPod()))).review!.response.patch);
});

t.test('dryRun requests get the same answer', async (t) => {
  const { app, log } = setup();
  const a = await post(app, review(meshedPod()));
  const b = await post(app, review(meshedPod(), { dryRun: true }));
  t.equal(b.review!.response.patch, a.review!.response.patch);
  t.ok(log.lines.some((l) => l.msg === 'review' && l.dryRun === true));
});

t.test("warnings are passed through (TPROXY keeps the proxy's NET_ADMIN and says so)", async (t) => {
  const { app } = setup();
  const pod = meshedPod();
  (pod.metadata as { annotations: Record<string, string> }).annotations['sidecar.istio.io/interceptionMode'] = 'TPROXY';
  const { review: out } = await post(app, review(pod));
  t.ok(out!.response.patch);
  t.ok(out!.response.warnings && out!.response.warnings.length > 0, 'a warning');
});

t.test('a throwing admit (a bug) is an errored response, never a 500', async (t) => {
  const { app, metrics, log } = setup({
    admit: () => {
      throw new Error('boom');
    },
  });
  const { res, review: out } = await post(app, review(meshedPod()));
  t.equal(res.statusCode, 200);
  t.match(out!.response, { allowed: false, status: { code: 500, message: /boom/ } });
  t.equal(await counter(metrics, 'error', 'internal-error'), 1);
  t.ok(log.lines.some((l) => l.level === 'error' && l.msg === 'review failed'));
});

t.test(
  'bad input: a clear 4xx or an allowed response without a patch; never a 500; the server keeps serving',
  async (t) => {
    const limit = 64 * 1024;
    const { app, metrics } = setup({ bodyLimit: limit });
    const json = { 'content-type': 'application/json' };
    const envelope = (request: unknown) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
    const cases: Array<{
      name: string;
      method?: string;
      url?: string;
      payload?: string;
      headers?: Record<string, string>;
      status: number;
      reason?: RegExp;
      allowedNoPatch?: boolean;
    }> = [
      { name: 'not JSON', payload: '{"apiVersion": ', headers: json, status: 400, reason: /invalid-json/ },
      { name: 'empty body', payload: '', headers: json, status: 400, reason: /empty-body/ },
      { name: 'a JSON array', payload: '[1,2]', headers: json, status: 400, reason: /not-an-object/ },
      { name: 'a JSON string', payload: '"AdmissionReview"', headers: json, status: 400, reason: /not-an-object/ },
      { name: 'JSON null', payload: 'null', headers: json, status: 400, reason: /not-an-object/ },
      {
        name: 'JSON that is not an AdmissionReview',
        payload: '{"apiVersion":"v1","kind":"Pod"}',
        headers: json,
        status: 400,
        reason: /unsupported-api-version/,
      },
      {
        name: 'v1beta1 review',
        payload: JSON.stringify({ ...envelope({ uid: 'x' }), apiVersion: 'admission.k8s.io/v1beta1' }),
        headers: json,
        status: 400,
        reason: /unsupported-api-version/,
      },
      {
        name: 'wrong kind of review',
        payload: JSON.stringify({ ...envelope({ uid: 'x' }), kind: 'AdmissionRequest' }),
        headers: json,
        status: 400,
        reason: /not-an-admission-review/,
      },
      {
        name: 'no request',
        payload: JSON.stringify(envelope(undefined)),
        headers: json,
        status: 400,
        reason: /no-request/,
      },
      {
        name: 'request not an object',
        payload: JSON.stringify(envelope('x')),
        headers: json,
        status: 400,
        reason: /no-request/,
      },
      {
        name: 'missing uid',
        payload: JSON.stringify(review(meshedPod(), { uid: undefined })),
        headers: json,
        status: 400,
        reason: /no-uid/,
      },
      {
        name: 'uid not a string',
        payload: JSON.stringify(review(meshedPod(), { uid: 42 })),
        headers: json,
        status: 400,
        reason: /no-uid/,
      },
      {
        name: 'wrong kind (Deployment)',
        payload: JSON.stringify(
          review(meshedPod(), {
            kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
            resource: { group: 'apps', version: 'v1', resource: 'deployments' },
          }),
        ),
        headers: json,
        status: 200,
        allowedNoPatch: true,
      },
      {
        name: 'wrong resource (pods/exec)',
        payload: JSON.stringify(review(meshedPod(), { subResource: 'exec' })),
        headers: json,
        status: 200,
        allowedNoPatch: true,
      },
      {
        name: 'missing object',
        payload: JSON.stringify(review(undefined)),
        headers: json,
        status: 200,
        allowedNoPatch: true,
      },
      {
        name: 'object is a string',
        payload: JSON.stringify(review('pod')),
        headers: json,
        status: 200,
        allowedNoPatch: true,
      },
      {
        name: 'object not a Pod',
        payload: JSON.stringify(review({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: {} })),
        headers: json,
        status: 200,
        allowedNoPatch: true,
      },
      {
        name: 'body over the limit',
        payload: JSON.stringify(review({ ...meshedPod(), pad: 'x'.repeat(limit) })),
        headers: json,
        status: 413,
        reason: /body-too-large/,
      },
      {
        name: 'Content-Type text/plain',
        payload: '{}',
        headers: { 'content-type': 'text/plain' },
        status: 415,
        reason: /unsupported-media-type/,
      },
      {
        name: 'Content-Type application/yaml',
        payload: 'a: 1',
        headers: { 'content-type': 'application/yaml' },
        status: 415,
        reason: /unsupported-media-type/,
      },
      { name: 'no body, no Content-Type', status: 415, reason: /unsupported-media-type/ },
      { name: 'GET /mutate', method: 'GET', status: 405, reason: /method-not-allowed/ },
      { name: 'PUT /mutate', method: 'PUT', payload: '{}', headers: json, status: 405, reason: /method-not-allowed/ },
      {
        name: 'POST /healthz',
        method: 'POST',
        url: '/healthz',
        payload: 'x',
        headers: { 'content-type': 'text/plain' },
        status: 405,
        reason: /method-not-allowed/,
      },
      { name: 'DELETE /readyz', method: 'DELETE', url: '/readyz', status: 405, reason: /method-not-allowed/ },
      { name: 'wrong path', url: '/validate', payload: '{}', headers: json, status: 404, reason: /not-found/ },
      { name: 'wrong path with a query', method: 'GET', url: '/metrics?x=1', status: 404, reason: /not-found/ },
    ];
    for (const c of cases) {
      const res = await app.inject({
        method: (c.method ?? 'POST') as 'POST',
        url: c.url ?? '/mutate',
        ...(c.payload !== undefined ? { payload: c.payload } : {}),
        headers: c.headers ?? {},
      });
      t.equal(res.statusCode, c.status, `${c.name}: status ${c.status}`);
      if (c.reason) {
        const body = res.json<{ statusCode: number; reason: string; message: string }>();
        t.match(body.reason, c.reason, `${c.name}: reason`);
        t.equal(body.statusCode, c.status);
        t.ok(body.message.length > 10, `${c.name}: a message (${body.message})`);
      }
      if (c.status === 405) t.ok(res.headers.allow, `${c.name}: Allow header`);
      if (c.allowedNoPatch) {
        const out = res.json<Review>();
        t.equal(out.response.allowed, true, `${c.name}: allowed`);
        t.notOk(out.response.patch, `${c.name}: no patch`);
        t.notOk(out.response.patchType, `${c.name}: no patchType`);
      }
      // The server keeps serving after every bad input.
      const ok = await post(app, review(meshedPod()));
      t.ok(ok.review?.response.patch, `${c.name}: still serving`);
    }
    t.equal(await counter(metrics, 'error', 'body-too-large'), 1);
    t.equal(await counter(metrics, 'error', 'invalid-json'), 1);
    t.equal(await counter(metrics, 'error', 'no-uid'), 2);
    t.equal(await counter(metrics, 'skipped', 'not-a-pod'), 3);
    t.equal(await counter(metrics, 'skipped', 'no-object'), 2);
    t.ok(DEFAULT_BODY_LIMIT >= 3 * 1024 * 1024, 'the default limit admits the largest object the API server accepts');
  },
);

t.test('while draining, answers carry Connection: close', async (t) => {
  let draining = false;
  const log = memoryLogger();
  const app = buildApp({
    admit,
    config: () => DEFAULT_CONFIG,
    ready: () => !draining,
    draining: () => draining,
    logger: log.logger,
  });
  const send = () =>
    app.inject({
      method: 'POST',
      url: '/mutate',
      payload: JSON.stringify(review(meshedPod())),
      headers: { 'content-type': 'application/json' },
    });
  t.not((await send()).headers.connection, 'close');
  draining = true;
  const res = await send();
  t.equal(res.statusCode, 200);
  t.equal(res.headers.connection, 'close');
});

t.test('probes', async (t) => {
  let ready = false;
  const { app } = setup({ ready: () => ready });
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  const notReady = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(notReady.statusCode, 503);
  t.match(notReady.body, /not ready/);
  ready = true;
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  t.equal((await app.inject({ method: 'HEAD', url: '/readyz' })).statusCode, 200);
});

t.test('the debug level adds the patch; info never does', async (t) => {
  const { app, log } = setup();
  log.logger.level = 'debug';
  await post(app, review(meshedPod()));
  t.ok(log.lines.some((l) => l.level === 'debug' && Array.isArray(l.patch)));
});

t.test('fuzz: any JSON body, any request shape: a 200 review or a 400, never a 500', async (t) => {
  const fc = (await import('fast-check')).default;
  const { app } = setup();
  const anything = fc.anything({
    maxDepth: 4,
    withNullPrototype: false,
    withBigInt: false,
    withDate: false,
    withTypedArray: false,
    withSparseArray: false,
    withMap: false,
    withSet: false,
  });
  const requestShape = fc.record(
    {
      uid: fc.oneof(fc.string({ minLength: 1 }), anything),
      kind: anything,
      resource: anything,
      operation: fc.oneof(fc.constant('CREATE'), anything),
      namespace: anything,
      object: fc.oneof(anything, fc.constant(meshedPod())),
      dryRun: anything,
    },
    { requiredKeys: [] },
  );
  const body = fc.oneof(
    fc.jsonValue(),
    requestShape.map((request) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request })),
  );
  await fc.assert(
    fc.asyncProperty(body, async (b) => {
      const res = await app.inject({
        method: 'POST',
        url: '/mutate',
        payload: JSON.stringify(b) ?? 'null',
        headers: { 'content-type': 'application/json' },
      });
      if (res.statusCode === 200) {
        const out = res.json<Review>();
        const uid = (b as { request: { uid: unknown } }).request.uid;
        return out.response.uid === uid && typeof out.response.allowed === 'boolean';
      }
      return res.statusCode === 400;
    }),
    { numRuns: 300 },
  );
  t.ok((await post(app, review(meshedPod()))).review?.response.patch, 'still serving');
});
