import t from 'tap';
import fc from 'fast-check';
import {
  RULES,
  checkAnnotation,
  isValidPrefix,
  problemMessage,
  validateTraffic,
} from '../../../src/webhook/core/validate.js';
import { annotationCases, show } from './fixtures/helpers.js';

t.test('every shared annotation vector', async (t) => {
  const cases = annotationCases();
  const annotations = new Set(cases.map((c) => c.annotation));
  t.same([...annotations].sort(), [...RULES.keys()].sort(), 'the vectors cover exactly the validated annotations');
  for (const c of cases) {
    const detail = checkAnnotation(c.annotation, c.value);
    t.equal(
      detail === undefined,
      c.valid,
      `${c.annotation}=${show(c.value)} valid=${c.valid}${detail ? ` (${show(detail)})` : ''}`,
    );
  }
  t.ok(cases.some((c) => c.valid) && cases.some((c) => !c.valid));
});

t.test('the annotation vector file is well-formed', async (t) => {
  const seen = new Set<string>();
  for (const c of annotationCases()) {
    t.same(Object.keys(c).sort(), ['annotation', 'valid', 'value']);
    t.type(c.value, 'string');
    t.type(c.valid, 'boolean');
    const k = `${c.annotation}\0${c.value}`;
    t.notOk(seen.has(k), `unique: ${k}`);
    seen.add(k);
  }
});

t.test('an annotation without a rule is always valid', async (t) => {
  t.equal(checkAnnotation('example.com/anything', '*'), undefined);
});

t.test('IP prefixes: a few beyond the vectors', async (t) => {
  for (const ok of [
    '1:2:3:4:5:6:1.2.3.4/128',
    '::1.2.3.4/128',
    '1::/64',
    '1:2:3:4:5:6:7::/128',
    'ABCD::/16',
    '0000::/8',
    '0.0.0.0/0',
  ]) {
    t.ok(isValidPrefix(ok), ok);
  }
  for (const bad of [
    '1:2:3:4::5:6:7:8/128',
    '1:2:3:4:5:6:7:8::/128',
    '1:2:3:4:5:1.2.3.4/128',
    '1::2::3/64',
    ':1::/64',
    '1::2:/64',
    '00000::/8',
    '::1.2.3/128',
    '::1.2.3.4.5/128',
    '1.2.3.04/8',
    '1..2.3/8',
    '1.2.3.4./8',
    '1.2.3.4/0000',
    '1.2.3.4/1234',
    '::%/64',
    '/8',
    '',
    '1.2.3.4',
    ':::/0',
    'g::/16',
    '1:2/64',
    '1:2:3:4:5:6:7:1.2.3.4/128',
  ]) {
    t.notOk(isValidPrefix(bad), bad);
  }
});

t.test(
  'property: every generated well-formed prefix is accepted, every one with a mangled length is not',
  async (t) => {
    const v4 = fc
      .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(32))
      .map(([a, b, c, d, n]) => `${a}.${b}.${c}.${d}/${n}`);
    const group = fc.nat(0xffff).map((n) => n.toString(16));
    const v6 = fc
      .tuple(fc.array(group, { minLength: 8, maxLength: 8 }), fc.nat(128))
      .map(([g, n]) => `${g.join(':')}/${n}`);
    const v6short = fc
      .tuple(fc.array(group, { minLength: 0, maxLength: 6 }), fc.nat(128))
      .map(([g, n]) => `${g.join(':')}::/${n}`);
    fc.assert(fc.property(fc.oneof(v4, v6, v6short), (p) => isValidPrefix(p)));
    fc.assert(fc.property(fc.oneof(v4, v6), (p) => !isValidPrefix(p.replace('/', '/0')) || p.endsWith('/0')));
    t.pass('fast-check properties held');
  },
);

t.test('validateTraffic: the pod value, or the value the rewrite writes instead', async (t) => {
  const annotations = {
    'traffic.sidecar.istio.io/includeInboundPorts': 'bad',
    'traffic.sidecar.istio.io/excludeOutboundPorts': 7 as unknown as string,
    'traffic.sidecar.istio.io/excludeInboundPorts': '4,5,6',
    unrelated: 'x',
  };
  const problems = validateTraffic(annotations);
  t.same(
    problems.map((p) => p.annotation),
    ['traffic.sidecar.istio.io/includeInboundPorts', 'traffic.sidecar.istio.io/excludeOutboundPorts'],
  );
  t.match(problems[1]!.detail, /must be strings/);
  const overridden = validateTraffic(annotations, [
    { annotation: 'traffic.sidecar.istio.io/includeInboundPorts', value: '*', source: 'istio-init argument -b' },
    { annotation: 'traffic.sidecar.istio.io/excludeInboundPorts', value: '*,15020', source: 'istio-init argument -d' },
  ]);
  t.same(
    overridden.map((p) => p.annotation),
    ['traffic.sidecar.istio.io/excludeInboundPorts', 'traffic.sidecar.istio.io/excludeOutboundPorts'],
  );
  t.equal(
    problemMessage(overridden[0]!),
    'annotation traffic.sidecar.istio.io/excludeInboundPorts="*,15020" (from istio-init argument -d) is invalid: "*" is not a port (0-65535)',
  );
  t.equal(
    problemMessage(problems[0]!),
    'annotation traffic.sidecar.istio.io/includeInboundPorts="bad" is invalid: "bad" is not a port (0-65535)',
  );
  t.same(validateTraffic(undefined), []);
});

t.test('kubevirtInterfaces is validated only where the plugin reads it (no reroute-virtual-interfaces)', async (t) => {
  const bad = { 'traffic.sidecar.istio.io/kubevirtInterfaces': 'eth 1' };
  t.same(
    validateTraffic(bad).map((p) => p.annotation),
    ['traffic.sidecar.istio.io/kubevirtInterfaces'],
  );
  t.same(validateTraffic({ ...bad, 'istio.io/reroute-virtual-interfaces': 'eth1' }), []);
});
