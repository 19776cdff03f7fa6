import t from 'tap';
import { ConfigError, DEFAULT_CONFIG, parseConfig } from '../../../src/common/shared-config.js';

t.test('empty file gives the defaults', async (t) => {
  t.same(parseConfig(''), DEFAULT_CONFIG);
  t.same(parseConfig('# nothing\n'), DEFAULT_CONFIG);
});

t.test('every key is read', async (t) => {
  const c = parseConfig(
    'excludeNamespaces: [a, b-c]\ninvalidAnnotations: warn\ncniProvider: multus\nmultusNetwork: istio-cni\nlogLevel: debug\nrepairPods: false\n',
  );
  t.same(c, {
    excludeNamespaces: ['a', 'b-c'],
    invalidAnnotations: 'warn',
    cniProvider: 'multus',
    multusNetwork: 'istio-cni',
    logLevel: 'debug',
    repairPods: false,
  });
});

t.test('defaults are not shared between results', async (t) => {
  const a = parseConfig('');
  a.excludeNamespaces.push('x');
  t.same(parseConfig('').excludeNamespaces, ['kube-system', 'istio-system']);
});

t.test('bad input names the key', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['excludeNamespace: [a]', /unknown key "excludeNamespace"/],
    ['excludeNamespaces: a', /excludeNamespaces must be a list/],
    ['excludeNamespaces: [Bad_NS]', /excludeNamespaces\[0\] must be a DNS label/],
    ['invalidAnnotations: maybe', /invalidAnnotations must be one of deny, warn/],
    ['cniProvider: calico', /cniProvider must be one of default, multus/],
    ['logLevel: loud', /logLevel must be one of/],
    ['repairPods: "yes"', /repairPods must be true or false/],
    ['multusNetwork: "a b"', /multusNetwork must be a DNS label/],
    ['- a\n- b', /must be a mapping/],
    ['a: [', /not valid YAML/],
  ];
  for (const [text, message] of cases) {
    t.throws(() => parseConfig(text), message, text);
    t.throws(() => parseConfig(text), ConfigError, text);
  }
});
