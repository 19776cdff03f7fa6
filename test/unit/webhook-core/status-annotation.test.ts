// rewriteStatus: the status annotation is parsed as JSON (linear in its length, never searched with a pattern) and
// written back as Go's json.Marshal writes it, so Istio's own value comes back byte-exact.
import t from 'tap';
import fc from 'fast-check';
import { rewriteStatus } from '../../../src/webhook/core/rewrite.js';

t.test('Go escapes round-trip byte-exact: <, >, & and the JavaScript line terminators', async (t) => {
  const goWritten = '{"initContainers":["istio-init"],"revision":"a\\u003cb\\u003e\\u0026c\\u2028d\\u2029"}';
  t.equal(rewriteStatus(goWritten), goWritten.replace('istio-init', 'istio-validation'));
});

t.test('only the first istio-init is renamed; other names, keys and their order stay', async (t) => {
  t.equal(
    rewriteStatus('{"revision":"x","initContainers":["a","istio-init","istio-init"],"containers":["istio-proxy"]}'),
    '{"revision":"x","initContainers":["a","istio-validation","istio-init"],"containers":["istio-proxy"]}',
  );
});

t.test('anything but an object with an initContainers list naming istio-init is left alone', async (t) => {
  for (const v of [
    'null',
    '[]',
    '"istio-init"',
    '42',
    '{}',
    '{"initContainers":null}',
    '{"initContainers":"istio-init"}',
    '',
    '{"initContainers":["istio-init"]} x',
  ])
    t.equal(rewriteStatus(v), undefined, JSON.stringify(v));
});

t.test('property: any Istio-shaped status round-trips through the rewrite as Go would write it', async (t) => {
  const name = fc.string({ maxLength: 12 });
  fc.assert(
    fc.property(
      fc.array(name, { maxLength: 4 }),
      fc.array(name, { maxLength: 4 }),
      fc.option(name),
      (before, volumes, rev) => {
        const status = {
          initContainers: [...before.filter((n) => n !== 'istio-init'), 'istio-init'],
          volumes,
          revision: rev,
        };
        const out = rewriteStatus(JSON.stringify(status));
        const parsed = JSON.parse(out!);
        t.same(parsed.initContainers, [...status.initContainers.slice(0, -1), 'istio-validation']);
        t.same(parsed.volumes, volumes);
        t.notOk(/[<>&\u2028\u2029]/.test(out!), 'nothing Go would escape is left raw');
      },
    ),
    { numRuns: 200 },
  );
});

t.test('a pod injected twice lists istio-validation once, where istio-init was', async (t) => {
  t.equal(
    rewriteStatus('{"initContainers":["istio-validation","istio-init"],"containers":["istio-proxy"]}'),
    '{"initContainers":["istio-validation"],"containers":["istio-proxy"]}',
  );
});
