// The envelope helpers (pure), the metrics registry and the logger choices.
import t from 'tap';
import { DEFAULT_CONFIG } from '../../../src/common/shared-config.js';
import {
  allowed,
  denied,
  encodeReview,
  fromOutcome,
  handle,
  parseReview,
  patched,
  toReview,
} from '../../../src/webhook/core/review.js';
import { WebhookMetrics } from '../../../src/webhook/server/metrics.js';
import { createLogger, wantPretty } from '../../../src/common/logging.js';

const op = { op: 'remove' as const, path: '/spec/initContainers/0' };

t.test('parseReview accepts a v1 AdmissionReview with a uid and names what is wrong otherwise', async (t) => {
  const ok = parseReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u' } });
  t.same(ok, { ok: true, request: { uid: 'u' } });
  t.match(parseReview([]), { ok: false, reason: 'not-an-object' });
  t.match(parseReview({ kind: 'AdmissionReview' }), {
    ok: false,
    reason: 'unsupported-api-version',
    message: /got null/,
  });
  t.match(parseReview({ apiVersion: 'admission.k8s.io/v1' }), { ok: false, reason: 'not-an-admission-review' });
  t.match(parseReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: [] }), {
    ok: false,
    reason: 'no-request',
  });
  t.match(parseReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '' } }), {
    ok: false,
    reason: 'no-uid',
  });
});

t.test('response helpers and the v1 envelope', async (t) => {
  t.same(allowed('u'), { uid: 'u', allowed: true });
  t.same(allowed('u', []), { uid: 'u', allowed: true });
  t.same(patched('u', [], ['w']), { uid: 'u', allowed: true, warnings: ['w'] }, 'an empty patch is no patch');
  t.same(denied('u', 403, 'no'), {
    uid: 'u',
    allowed: false,
    status: { code: 403, message: 'no', reason: 'Forbidden' },
  });
  t.same(denied('u', 400, 'bad', ['w']).warnings, ['w']);
  t.same(denied('u', 500, 'bug').status, { code: 500, message: 'bug', reason: 'InternalError' });
  const env = toReview(patched('u', [op], ['careful']));
  t.same(env, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: 'u',
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify([op])).toString('base64'),
      warnings: ['careful'],
    },
  });
  t.same(toReview(denied('u', 400, 'bad')).response, {
    uid: 'u',
    allowed: false,
    status: { code: 400, message: 'bad', reason: 'BadRequest' },
  });
  t.same(
    fromOutcome('u', { allowed: false, patch: [], warnings: [], decision: 'denied', reason: 'invalid-annotation' })
      .status,
    { code: 403, message: 'denied: invalid-annotation', reason: 'Forbidden' },
  );
});

t.test('encodeReview writes exactly JSON.stringify(toReview(res)) for every kind of response', async (t) => {
  const bigPatch = [
    op,
    {
      op: 'add' as const,
      path: '/metadata/annotations/a~1b',
      value: { nested: ['\u00e9', '"quoted"', 'line\nbreak'] },
    },
  ];
  const cases = [
    allowed('u'),
    allowed('uid with "quotes" and \\ and \u2028', ['w1', 'w "2"']),
    patched('u', [op]),
    patched('u', bigPatch, ['TPROXY keeps NET_ADMIN']),
    patched('u', [], ['empty patch, warning only']),
    denied('u', 400, 'annotation x has "bad" value', ['w']),
    denied('u', 403, 'no'),
    denied('u', 500, 'asm-cni webhook internal error: boom'),
    { uid: 'u', allowed: true, patch: [], warnings: [] },
  ];
  for (const res of cases) {
    const text = encodeReview(res);
    t.equal(text, JSON.stringify(toReview(res)));
    t.same(JSON.parse(text), toReview(res));
  }
});

t.test('handle maps outcomes; a patched decision with no ops counts as skipped', async (t) => {
  const h = handle({ uid: 'u' }, DEFAULT_CONFIG, () => ({
    allowed: true,
    patch: [],
    warnings: [],
    decision: 'patched',
    reason: 'selected',
  }));
  t.match(h, { outcome: 'skipped', reason: 'selected' });
  const p = handle({ uid: 'u' }, DEFAULT_CONFIG, () => ({
    allowed: true,
    patch: [op],
    warnings: [],
    decision: 'patched',
    reason: 'selected',
  }));
  t.match(p, { outcome: 'patched', response: { patch: [op] } });
  // The safety net (safety-net.ts): a pod with istio-init is refused, anything else admitted unchanged.
  const meshed = { uid: 'u', object: { spec: { initContainers: [{ name: 'istio-init' }] } } };
  const bad = handle(meshed, DEFAULT_CONFIG, () => undefined as never);
  t.match(
    bad,
    {
      outcome: 'error',
      reason: 'internal-error',
      response: { uid: 'u', allowed: false, status: { code: 500, reason: 'InternalError' } },
    },
    'a malformed outcome for a pod with istio-init: refused, counted as an error, not a crash',
  );
  const plain = handle({ uid: 'u', object: { spec: {} } }, DEFAULT_CONFIG, () => {
    throw new Error('boom');
  });
  t.match(
    plain,
    { outcome: 'error', reason: 'internal-error', response: { uid: 'u', allowed: true, warnings: [/boom/] } },
    'a throw for a pod without istio-init: admitted unchanged with a warning',
  );
  t.notOk(plain.response.patch, 'no patch');
});

t.test('metrics: counters by outcome and reason, latency histogram, own registry', async (t) => {
  const a = new WebhookMetrics({ defaultMetrics: false });
  const b = new WebhookMetrics();
  a.recordReview('patched', 'selected', 0.0004);
  a.recordReview('patched', 'selected', 0.002);
  a.recordReview('skipped', 'not-create', 0.0001);
  const text = await a.registry.metrics();
  t.match(text, /asm_cni_webhook_reviews_total\{outcome="patched",reason="selected"\} 2/);
  t.match(text, /asm_cni_webhook_reviews_total\{outcome="skipped",reason="not-create"\} 1/);
  t.match(text, /asm_cni_webhook_review_duration_seconds_bucket\{le="0.0005",outcome="patched"\} 1/);
  t.match(text, /asm_cni_webhook_review_duration_seconds_count\{outcome="patched"\} 2/);
  t.notMatch(text, /process_cpu/, 'no default metrics when asked not to');
  t.notMatch(await b.registry.metrics(), /outcome="patched"/, 'registries are separate');
  t.match(await b.registry.metrics(), /nodejs_eventloop_lag_seconds/);
  // Counted between scrapes and added at each scrape: never twice, never lost.
  t.match(
    await a.registry.metrics(),
    /asm_cni_webhook_reviews_total\{outcome="patched",reason="selected"\} 2\n/,
    'a second scrape adds nothing',
  );
  a.recordReview('patched', 'selected', 0.0004);
  a.recordReview('denied', 'invalid-annotation', 0.0004);
  const again = await a.registry.metrics();
  t.match(again, /asm_cni_webhook_reviews_total\{outcome="patched",reason="selected"\} 3\n/);
  t.match(again, /asm_cni_webhook_reviews_total\{outcome="denied",reason="invalid-annotation"\} 1\n/);
  t.match(again, /asm_cni_webhook_reviews_total\{outcome="skipped",reason="not-create"\} 1\n/);
  t.match(again, /asm_cni_webhook_review_duration_seconds_count\{outcome="patched"\} 3\n/);
  t.match(
    await a.reviews.get(),
    { values: [{ labels: { outcome: 'patched', reason: 'selected' }, value: 3 }, {}, {}] },
    'get() collects too',
  );
});

t.test('logger: pretty only for development or a terminal outside production', async (t) => {
  t.equal(wantPretty({ NODE_ENV: 'development' }, false), true);
  t.equal(wantPretty({}, true), true);
  t.equal(wantPretty({ NODE_ENV: 'production' }, true), false);
  t.equal(wantPretty({}, false), false);
  const lines: string[] = [];
  const { logger, flush } = createLogger({
    level: 'warn',
    pretty: false,
    destination: { write: (s: string) => lines.push(s) },
  });
  logger.info('hidden');
  logger.warn({ uid: 'u' }, 'shown');
  flush();
  t.equal(lines.length, 1);
  t.match(JSON.parse(lines[0]!), { level: 'warn', uid: 'u', msg: 'shown', component: 'asm-cni-webhook' });
  const pretty = createLogger({ pretty: true });
  t.ok(pretty.logger, 'pino-pretty stream when available');
  const plain = createLogger({ pretty: false });
  plain.flush();
  t.equal(plain.logger.level, 'info');
});
