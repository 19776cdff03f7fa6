// The shared vector file checked against its own contract (test/vectors/README.md), independently of any implementation:
// a malformed or self-contradicting vector would otherwise make both languages agree on a wrong answer.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const vectorsDir = fileURLToPath(new URL('../../vectors/', import.meta.url));
const readme = readFileSync(vectorsDir + 'README.md', 'utf8');
const selection = JSON.parse(readFileSync(vectorsDir + 'selection.json', 'utf8')) as {
  cases: Array<Record<string, unknown>>;
};

// Rows of the README's reason table: | # | condition | `reason` | who |
const rows = [...readme.matchAll(/^\| *([-\d]+) *\|[^|]*\| *`([a-z-]+)` *\|([^|]+)\|$/gm)].map((m) => ({
  order: m[1]!,
  reason: m[2]!,
  who: m[3]!.trim(),
}));
const reasonsFor = (side: 'webhook' | 'plugin' | 'seed'): Set<string> =>
  new Set(
    rows
      .filter((r) => {
        if (r.reason === 'selected') return true;
        if (side === 'seed') return r.who === 'both';
        return r.who.startsWith('both') || r.who === side;
      })
      .map((r) => r.reason),
  );

t.test('the README table parses into the known reason codes', async (t) => {
  t.same(
    rows.map((r) => r.reason).sort(),
    [
      'excluded-namespace',
      'host-network',
      'injection-disabled-annotation',
      'injection-disabled-label',
      'interception-none',
      'istio-init-present',
      'no-istio-init',
      'no-istio-proxy',
      'not-create',
      'not-sidecar',
      'envoy-disabled',
      'selected',
      'single-container',
    ].sort(),
  );
});

t.test('every case is well-formed and uses reasons from the table', async (t) => {
  const names = new Set<string>();
  const seedReasons = reasonsFor('seed');
  const webhookReasons = reasonsFor('webhook');
  const pluginReasons = reasonsFor('plugin');
  t.ok(selection.cases.length > 50, 'a real table, not a sample');
  for (const c of selection.cases) {
    const name = c.name as string;
    t.type(name, 'string');
    t.notOk(names.has(name), `unique name: ${name}`);
    names.add(name);
    t.type(c.namespace, 'string', `${name}: namespace`);
    t.ok(c.pod && typeof c.pod === 'object', `${name}: pod`);
    const pod = c.pod as Record<string, unknown>;
    t.equal(pod.kind, 'Pod', `${name}: kind Pod`);
    t.equal(pod.apiVersion, 'v1', `${name}: apiVersion v1`);
    if (c.excludeNamespaces !== undefined)
      t.ok(Array.isArray(c.excludeNamespaces), `${name}: excludeNamespaces is a list`);
    if (c.operation !== undefined) t.match(c.operation, /^(CREATE|UPDATE|DELETE|CONNECT)$/, `${name}: operation`);
    const allowed = new Set([
      'name',
      'namespace',
      'excludeNamespaces',
      'operation',
      'pod',
      'seed',
      'webhook',
      'plugin',
    ]);
    for (const k of Object.keys(c)) t.ok(allowed.has(k), `${name}: known field ${k}`);

    const seed = c.seed as { selected: boolean; reason: string };
    const webhook = c.webhook as { decision: string; reason: string };
    const plugin = c.plugin as { decision: string; reason: string };
    t.type(seed.selected, 'boolean', `${name}: seed.selected`);
    t.ok(seedReasons.has(seed.reason), `${name}: seed reason ${seed.reason}`);
    t.ok(webhookReasons.has(webhook.reason), `${name}: webhook reason ${webhook.reason}`);
    t.ok(pluginReasons.has(plugin.reason), `${name}: plugin reason ${plugin.reason}`);
    t.equal(seed.selected, seed.reason === 'selected', `${name}: seed selected iff reason selected`);
    t.equal(webhook.decision === 'patch', webhook.reason === 'selected', `${name}: webhook patch iff selected`);
    t.equal(plugin.decision === 'redirect', plugin.reason === 'selected', `${name}: plugin redirect iff selected`);
    t.ok(['patch', 'skip'].includes(webhook.decision), `${name}: webhook decision`);
    t.ok(['redirect', 'skip'].includes(plugin.decision), `${name}: plugin decision`);
    // The invariant: at CREATE the webhook and the plugin never both take over istio-init's job.
    if ((c.operation ?? 'CREATE') === 'CREATE') {
      t.notOk(webhook.decision === 'patch' && plugin.decision === 'redirect', `${name}: not both`);
      // A rejected seed is rejected by both extensions with the same reason.
      if (!seed.selected) {
        t.equal(webhook.reason, seed.reason, `${name}: webhook agrees with the seed`);
        t.equal(plugin.reason, seed.reason, `${name}: plugin agrees with the seed`);
      }
      // The plugin's and the webhook's row 8 are two sides of one fact.
      if (webhook.reason === 'selected')
        t.equal(plugin.reason, 'istio-init-present', `${name}: patched pods keep no job for the plugin`);
      if (webhook.reason === 'no-istio-init')
        t.equal(plugin.reason, 'selected', `${name}: CNI-mode pods are the plugin's`);
    }
  }
});

t.test('the table covers what the README promises', async (t) => {
  const all = JSON.stringify(selection.cases);
  for (const reason of rows.map((r) => r.reason)) t.ok(all.includes(`"reason":"${reason}"`), `some case has ${reason}`);
  const inject = (where: 'labels' | 'annotations', v: string) =>
    selection.cases.some((c) => {
      const meta = (c.pod as { metadata?: Record<string, Record<string, string>> }).metadata;
      return meta?.[where]?.['sidecar.istio.io/inject'] === v;
    });
  for (const v of [
    '1',
    't',
    'T',
    'TRUE',
    'true',
    'True',
    '0',
    'f',
    'F',
    'FALSE',
    'false',
    'False',
    '',
    'yes',
    'no',
    ' false',
    'FALSE ',
  ]) {
    t.ok(inject('labels', v), `label spelling ${JSON.stringify(v)}`);
    t.ok(inject('annotations', v), `annotation spelling ${JSON.stringify(v)}`);
  }
  t.ok(all.includes('"restartPolicy":"Always"'), 'native sidecars');
  t.ok(all.includes('"hostNetwork":true'), 'hostNetwork');
  t.ok(
    selection.cases.some((c) => c.excludeNamespaces !== undefined),
    'a custom excluded list',
  );
  t.ok(
    selection.cases.some((c) => c.operation !== undefined && c.operation !== 'CREATE'),
    'a non-CREATE operation',
  );
});
