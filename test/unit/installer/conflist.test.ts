import t from 'tap';
import {
  canonicalWithoutEntry,
  CniConfigError,
  hasCniExtension,
  insertEntry,
  parseCniConfig,
  removeEntry,
  renderJson,
  targetFileName,
} from '../../../src/installer/conflist.js';
import { hostPathOf, renderEntry } from '../../../src/installer/entry.js';
import { DEFAULT_CONFIG } from '../../../src/common/shared-config.js';
import { hasOracles, oracle } from './helpers.js';
import { requirePrereq } from '../../harness/prereq.js';

const entry = renderEntry(DEFAULT_CONFIG, {
  hostKubeconfigPath: '/etc/cni/net.d/asm-cni-kubeconfig',
  logFile: '/var/log/asm-cni.log',
  apiTimeout: '5s',
});

/** Istio's golden with our entry in place of Istio's (Istio's own entry is the golden's last plugin). */
function goldenWithOurs(golden: string): Record<string, unknown> {
  const g = JSON.parse(golden) as { plugins: Array<Record<string, unknown>> };
  if (g.plugins.at(-1)?.type !== 'istio-cni') throw new Error('the golden does not end with the Istio entry');
  g.plugins[g.plugins.length - 1] = entry;
  return g;
}

t.test('the entry has the keys of the plugin contract', async (t) => {
  t.same(entry, {
    type: 'asm-cni',
    kubeconfig: '/etc/cni/net.d/asm-cni-kubeconfig',
    exclude_namespaces: ['kube-system', 'istio-system'],
    log_level: 'info',
    log_file: '/var/log/asm-cni.log',
    api_timeout: '5s',
  });
  const levels = (['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const).map(
    (logLevel) =>
      renderEntry({ ...DEFAULT_CONFIG, logLevel }, { hostKubeconfigPath: '/k', logFile: '/l', apiTimeout: '5s' })
        .log_level,
  );
  t.same(levels, ['debug', 'debug', 'info', 'warn', 'error', 'error'], 'only levels the plugin accepts');
  const backend = (iptablesBackend?: 'auto' | 'nft' | 'legacy') =>
    renderEntry(DEFAULT_CONFIG, { hostKubeconfigPath: '/k', logFile: '/l', apiTimeout: '5s', iptablesBackend })
      .iptables_backend;
  t.same(
    [backend(), backend('auto'), backend('nft'), backend('legacy')],
    [undefined, undefined, 'nft', 'legacy'],
    'iptables_backend only when not auto (the plugin detects the backend by default)',
  );
  t.equal(
    hostPathOf('/host/etc/cni/net.d/asm-cni-kubeconfig', '/host/etc/cni/net.d', '/etc/cni/net.d'),
    '/etc/cni/net.d/asm-cni-kubeconfig',
  );
  t.equal(hostPathOf('/var/lib/asm/kc', '/host/etc/cni/net.d', '/etc/cni/net.d'), '/var/lib/asm/kc');
});

t.test('Istio oracles: a .conflist gets our entry appended last, bytes as Istio formats them', async (t) => {
  if (!requirePrereq(t, hasOracles(), 'Istio install oracles not found')) return;
  for (const name of ['list.conflist', 'list-with-istio.conflist']) {
    const input = oracle(name);
    const expected = goldenWithOurs(oracle(`${name}.golden`));
    // the Istio entry in list-with-istio is not ours: swap it for ours in the input too so "replace" is what's tested
    const res = insertEntry(input.replaceAll('"istio-cni"', '"asm-cni"'), name, entry);
    t.equal(res.fileName, name, `${name} keeps its name`);
    t.equal(res.text, renderJson(expected), `${name} matches the golden byte for byte`);
    t.equal(insertEntry(res.text, name, entry).text, res.text, `${name}: inserting twice changes nothing`);
  }
  // Istio's golden format itself: sorted keys, two-space indent, trailing newline.
  const golden = oracle('list.conflist.golden');
  t.equal(renderJson(JSON.parse(golden)), golden);
});

t.test(
  'Istio oracle bridge.conf: wrapped into a .conflist, keeping name and cniVersion (our deliberate difference)',
  async (t) => {
    if (!requirePrereq(t, hasOracles(), 'Istio install oracles not found')) return;
    const res = insertEntry(oracle('bridge.conf'), 'bridge.conf', entry);
    t.equal(res.fileName, 'bridge.conflist');
    const expected = goldenWithOurs(oracle('bridge.conf.golden'));
    t.equal(expected.name, 'k8s-pod-network', 'Istio renames the network');
    t.equal(expected.cniVersion, '0.3.1', 'and forces 0.3.1');
    expected.name = 'dbnet';
    expected.cniVersion = '0.4.0';
    t.equal(res.text, renderJson(expected), 'everything else as Istio does it');
    t.equal(insertEntry(res.text, res.fileName, entry).text, res.text, 'idempotent');
  },
);

t.test('Istio oracles: invalid files are refused', async (t) => {
  if (!requirePrereq(t, hasOracles(), 'Istio install oracles not found')) return;
  for (const name of ['invalid-arr.conflist', 'invalid-map.conflist']) {
    t.throws(() => insertEntry(oracle(name), name, entry), CniConfigError, name);
  }
});

t.test('malformed configs are refused with a message naming the problem', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['{', 'a.conflist', /not valid JSON/],
    ['"x"', 'a.conf', /JSON object/],
    ['{"name":"n"}', 'a.conflist', /"plugins" must be a non-empty array/],
    ['{"name":"n","plugins":[]}', 'a.conflist', /non-empty array/],
    ['{"plugins":[{"type":"bridge"}]}', 'a.json', /needs a non-empty string "name"/],
    ['{"name":"n","plugins":[{"type":"bridge"},{"x":1}]}', 'a.conflist', /plugins\[1\] must be an object/],
    ['{"name":"n","plugins":[null]}', 'a.conflist', /plugins\[0\]/],
    ['{"name":"n"}', 'a.conf', /needs a string "type"/],
    ['{"name":"n","type":"asm-cni"}', 'a.conf', /stand-alone asm-cni/],
  ];
  for (const [text, file, re] of cases) t.throws(() => insertEntry(text, file, entry), re, `${file}: ${text}`);
});

t.test('our entry replaces an old one of our type anywhere in the list and goes last', async (t) => {
  const text = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'k8s',
    plugins: [{ type: 'calico' }, { type: 'asm-cni', kubeconfig: '/old', cniVersion: '0.1.0' }, { type: 'portmap' }],
  });
  const out = JSON.parse(insertEntry(text, '10-calico.conflist', { ...entry, cniVersion: '9' }).text);
  t.same(
    out.plugins.map((p: { type: string }) => p.type),
    ['calico', 'portmap', 'asm-cni'],
  );
  t.equal(out.plugins[2].kubeconfig, '/etc/cni/net.d/asm-cni-kubeconfig');
  t.notOk('cniVersion' in out.plugins[2], 'the list carries the version, not the entry');
  t.equal(out.cniVersion, '1.0.0');
});

t.test('a .json with a plugin list stays in place; a single .json or .conf without version is wrapped', async (t) => {
  const list = '{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"ptp"}]}';
  t.equal(insertEntry(list, '10-x.json', entry).fileName, '10-x.json');
  const single = insertEntry('{"type":"ptp"}', '10-x.json', entry);
  t.equal(single.fileName, '10-x.conflist');
  const parsed = JSON.parse(single.text);
  t.equal(parsed.name, 'ptp', 'a nameless network is named after its type');
  t.notOk('cniVersion' in parsed, 'no invented version');
  t.equal(targetFileName('noext', parseCniConfig('{"type":"x"}', 'noext')), 'noext.conflist');
});

t.test('removeEntry and canonicalWithoutEntry undo an insert', async (t) => {
  const input = '{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"ptp","mtu":1400}]}';
  const inserted = insertEntry(input, '10-x.conflist', entry).text;
  t.same(JSON.parse(removeEntry(inserted, '10-x.conflist')!), JSON.parse(input));
  t.equal(removeEntry(input, '10-x.conflist'), null, 'nothing of ours: null');
  t.equal(removeEntry('{"name":"n","plugins":[{"type":"asm-cni"}]}', 'a.conflist'), null, 'only ours: null');
  t.equal(canonicalWithoutEntry(inserted, '10-x.conflist'), canonicalWithoutEntry(input, '10-x.conflist'));
  const conf = '{"cniVersion":"0.4.0","name":"dbnet","type":"bridge"}';
  const wrapped = insertEntry(conf, 'b.conf', entry);
  t.equal(canonicalWithoutEntry(wrapped.text, wrapped.fileName), canonicalWithoutEntry(conf, 'b.conf'));
  t.ok(hasCniExtension('a.conf') && hasCniExtension('a.conflist') && hasCniExtension('a.json'));
  t.notOk(hasCniExtension('.a.conf.asm-cni-orig') || hasCniExtension('asm-cni-kubeconfig'));
});
