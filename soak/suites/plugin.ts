// The CNI plugin under contention and API faults, run exactly as a runtime runs it (env + stdin) from a "node"
// network namespace of our own, against a local HTTPS stand-in for the API server (kubeconfig pointing at it):
//  - 50 pods ADDed at once, each in its own pod netns, with the nft backend and again with legacy (xtables lock):
//    all succeed and each netns holds exactly the rules `asm-cni render` gives for its pod (applied by us in a
//    reference netns and dumped by the same iptables-save); DEL then leaves none of ours;
//  - API server slow past api_timeout, a black hole, and down: the ADD fails within the bound with code 11 and a
//    clear message, leaves nothing behind; slow within the bound and 503-then-OK succeed (the bound is not too tight).
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments } from 'yaml';
import { makeCA, makeLeaf } from '../../test/harness/certs.js';
import { addNetns, addPodNetns, canUseNetns, inNetns, nsPath } from '../lib/netns.js';
import { onCleanup, subDir, track, type Child } from '../lib/proc.js';
import { Asserts, type Report } from '../lib/report.js';
import { oraclesDir, repoRoot } from '../lib/reviews.js';
import { round, summarize } from '../lib/stats.js';
import { settings } from '../settings.js';

export const pluginBinary = process.env.SOAK_PLUGIN_BINARY ?? join(repoRoot, 'dist/cni/asm-cni');
const LOADER = '@isaacs/ts-node-temp-fork-for-pr-2009/import';
const TOKEN = 'soak-token-not-a-secret';

type Flavour = 'nft' | 'legacy';
type Obj = Record<string, any>;

interface Ctx {
  dir: string;
  node: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export async function pluginSuite(report: Report): Promise<void> {
  const s = settings();
  const why = await canUseNetns();
  if (why) {
    report.add('plugin', process.env.CI === 'true' ? false : null, `not run: ${why}`);
    return;
  }
  if (!existsSync(pluginBinary)) throw new Error(`${pluginBinary} is missing: run npm run build`);
  const dir = subDir('plugin');
  const ca = await makeCA(dir, 'apiserver-ca');
  const leaf = await makeLeaf(dir, ca, 'apiserver', 'server');
  const node = await addNetns('node');
  const ctx: Ctx = { dir, node, caFile: ca.certFile, certFile: leaf.certFile, keyFile: leaf.keyFile };

  const pods = Array.from({ length: s.pods }, (_, i) => podFor(i));
  const api = await fakeApi(ctx, 'api', {
    port: 6443,
    pods: Object.fromEntries(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p])),
  });
  void api;

  for (const flavour of ['nft', 'legacy'] as Flavour[]) {
    await report.run(`plugin.concurrent-add-${flavour}`, () =>
      concurrentAdds(ctx, pods, flavour, kubeconfig(ctx, 'main', 6443)),
    );
  }

  await report.run('plugin.api-faults', async () => {
    const one = podFor(999);
    const podsMap = { [`${one.metadata.namespace}/${one.metadata.name}`]: one };
    await fakeApi(ctx, 'slow', { port: 6444, pods: podsMap, delayMs: 30_000 });
    await fakeApi(ctx, 'blackhole', { port: 6445, pods: podsMap, mode: 'blackhole' });
    await fakeApi(ctx, 'slow-ok', { port: 6447, pods: podsMap, delayMs: 300 });
    await fakeApi(ctx, 'flaky', { port: 6448, pods: podsMap, fail503First: 2 });
    const timeoutMs = durationMs(s.apiTimeout);
    const boundMs = timeoutMs + 1500;
    const scenarios: Array<{ name: string; port: number; succeed: boolean }> = [
      { name: 'slow (answers after 30 s)', port: 6444, succeed: false },
      { name: 'black hole (TCP accepted, never answered)', port: 6445, succeed: false },
      { name: 'down (connection refused)', port: 6446, succeed: false },
      { name: 'slow within api_timeout (300 ms)', port: 6447, succeed: true },
      { name: 'two 503s, then OK', port: 6448, succeed: true },
    ];
    const a = new Asserts();
    const rows: Obj[] = [];
    let n = 0;
    for (const sc of scenarios) {
      const attempts = sc.succeed ? 1 : 3;
      const kc = kubeconfig(ctx, `fault-${sc.port}`, sc.port);
      const results = await Promise.all(
        Array.from({ length: attempts }, async () => {
          const k = n++;
          const ns = await addPodNetns(`f${k}`, node, `vf${k}`, `198.51.100.${10 + k}/24`);
          const r = await cniAdd(ctx, ns, one, kc, `198.51.100.${10 + k}/24`, 'nft', s.apiTimeout);
          const left = await ourChains(ns, 'nft');
          return { ...r, chainsLeft: left };
        }),
      );
      for (const r of results) {
        rows.push({
          scenario: sc.name,
          code: r.code,
          ms: Math.round(r.ms),
          cniCode: r.error?.code,
          msg: r.error?.msg,
          chainsLeft: r.chainsLeft,
        });
        if (sc.succeed) {
          a.that(r.code === 0, `${sc.name}: ADD failed (${r.error?.code}: ${r.error?.msg ?? r.stderr.slice(0, 200)})`);
        } else {
          a.that(r.code !== 0, `${sc.name}: ADD succeeded without the API server`);
          a.that(
            r.ms <= boundMs,
            `${sc.name}: took ${Math.round(r.ms)} ms (api_timeout ${s.apiTimeout}, bound ${boundMs} ms)`,
          );
          a.that(r.error?.code === 11, `${sc.name}: CNI error code ${r.error?.code} (want 11: try again later)`);
          a.that(
            /unreachable|timed? ?out|deadline|refused/i.test(r.error?.msg ?? ''),
            `${sc.name}: the message does not say what is wrong: ${r.error?.msg}`,
          );
          a.that(r.chainsLeft === 0, `${sc.name}: ${r.chainsLeft} chains of ours left in the pod netns`);
        }
      }
    }
    const fails = rows.filter((r) => r.code !== 0);
    const worst = Math.max(...fails.map((r) => r.ms as number));
    return {
      ok: a.ok,
      summary: a.summary(
        `api_timeout ${s.apiTimeout}: ${fails.length} failing ADDs all ended in ≤${worst} ms (bound ${boundMs}) with code ${[...new Set(fails.map((r) => r.cniCode))].join(',')}; ` +
          `slow-within-bound and 503-then-OK succeeded in ${rows
            .filter((r) => r.code === 0)
            .map((r) => r.ms)
            .join('/')} ms; e.g. "${fails[0]?.msg ?? ''}"`,
      ),
      figures: { apiTimeout: s.apiTimeout, boundMs, attempts: rows },
    };
  });
}

/** Pod i: Istio's CNI-mode injection of hello.yaml (what the webhook produces), with ports and a range of its own. */
let template: Obj | undefined;
function podFor(i: number): Obj {
  if (!template) {
    const doc = parseAllDocuments(
      readFileSync(join(oraclesDir(), 'inject/native-master/hello.yaml.cni.injected'), 'utf8'),
    )[0]!.toJS() as Obj;
    template = doc.spec.template as Obj;
  }
  const t = JSON.parse(JSON.stringify(template)) as Obj;
  const annotations: Record<string, string> = {
    ...t.metadata.annotations,
    'traffic.sidecar.istio.io/excludeInboundPorts': String(20000 + i),
    'traffic.sidecar.istio.io/excludeOutboundPorts': String(30000 + i),
    'traffic.sidecar.istio.io/excludeOutboundIPRanges': `198.51.100.${i % 250}/32`,
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...t.metadata, name: `soak-pod-${i}`, namespace: 'soak-apps', uid: `uid-${i}`, annotations },
    spec: t.spec,
  };
}

function kubeconfig(ctx: Ctx, name: string, port: number): string {
  const file = join(ctx.dir, `kubeconfig-${name}`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'soak',
      clusters: [
        { name: 'soak', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority': ctx.caFile } },
      ],
      users: [{ name: 'soak', user: { token: TOKEN } }],
      contexts: [{ name: 'soak', context: { cluster: 'soak', user: 'soak' } }],
    }),
    { mode: 0o600 },
  );
  return file;
}

async function fakeApi(ctx: Ctx, name: string, spec: Obj): Promise<Child> {
  const file = join(ctx.dir, `api-${name}.json`);
  writeFileSync(file, JSON.stringify({ cert: ctx.certFile, key: ctx.keyFile, token: TOKEN, ...spec }));
  const proc = spawn(
    'nsenter',
    [
      `--net=${nsPath(ctx.node)}`,
      '--',
      process.execPath,
      '--import',
      LOADER,
      join(repoRoot, 'soak/fixtures/fake-apiserver.ts'),
      file,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const child = track(proc);
  onCleanup(async () => {
    if (!child.exit) proc.kill('SIGTERM');
    await child.exited;
  });
  const lines = createInterface({ input: proc.stdout });
  const ready = await Promise.race([
    new Promise<boolean>((resolve) => lines.on('line', (l) => l.startsWith('ready') && resolve(true))),
    child.exited.then(() => false),
    new Promise<boolean>((r) => setTimeout(() => r(false), 20_000)),
  ]);
  if (!ready) throw new Error(`fake API server ${name} did not start`);
  return child;
}

interface AddResult {
  code: number;
  ms: number;
  stdout: string;
  stderr: string;
  error?: { code?: number; msg?: string };
}

async function cniAdd(
  ctx: Ctx,
  podNs: string,
  pod: Obj,
  kubeconfigFile: string,
  address: string,
  flavour: Flavour | 'auto',
  apiTimeout: string,
  command = 'ADD',
): Promise<AddResult> {
  const containerId = `soak-${podNs}`;
  const conf = {
    cniVersion: '1.0.0',
    name: 'soak-net',
    type: 'asm-cni',
    kubeconfig: kubeconfigFile,
    exclude_namespaces: ['kube-system', 'istio-system'],
    log_level: 'info',
    log_file: join(ctx.dir, 'asm-cni.log'),
    api_timeout: apiTimeout,
    ...(flavour === 'legacy' ? { iptables_backend: 'legacy' } : {}),
    prevResult: {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', sandbox: nsPath(podNs) }],
      ips: [{ address, interface: 0 }],
    },
  };
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: nsPath(podNs),
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.metadata.namespace};K8S_POD_NAME=${pod.metadata.name};K8S_POD_INFRA_CONTAINER_ID=${containerId}`,
  };
  const r = await inNetns(ctx.node, pluginBinary, [], { input: JSON.stringify(conf), env, timeoutMs: 60_000 });
  let error: AddResult['error'];
  if (r.code !== 0) {
    try {
      error = JSON.parse(r.stdout);
    } catch {
      error = { msg: `stdout is not CNI error JSON: ${r.stdout.slice(0, 200)}` };
    }
  }
  return { code: r.code, ms: r.ms, stdout: r.stdout, stderr: r.stderr, error };
}

const saveCmd = (f: Flavour, v6 = false): string => `${v6 ? 'ip6tables' : 'iptables'}-${f}-save`;
const restoreCmd = (f: Flavour): string => `iptables-${f}-restore`;

/** iptables-save output reduced to what must match: per table, chains (policy without counters) and rules, in order;
 *  tables with nothing but empty built-in chains are left out (whether they exist depends on who looked). */
export function normalizeSave(text: string): string {
  const tables: string[] = [];
  let cur: string[] = [];
  let interesting = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      cur = [line];
      interesting = false;
      continue;
    }
    if (line === 'COMMIT') {
      if (interesting) tables.push(cur.join('\n'));
      continue;
    }
    const chain = /^:(\S+) (\S+)/.exec(line);
    if (chain) {
      cur.push(`:${chain[1]} ${chain[2]}`);
      if (chain[2] === '-')
        interesting = true; // a user chain
      else if (chain[2] !== 'ACCEPT') interesting = true;
      continue;
    }
    cur.push(line.replace(/^\[\d+:\d+\] /, ''));
    interesting = true;
  }
  return tables.sort().join('\n');
}

async function ourChains(ns: string, f: Flavour): Promise<number> {
  let n = 0;
  for (const v6 of [false, true]) {
    const r = await inNetns(ns, saveCmd(f, v6), []);
    n += (r.stdout.match(/^:ISTIO_\S+/gm) ?? []).length;
  }
  return n;
}

/** What the pod should have: `asm-cni render` applied by us in a scratch netns, dumped by the same iptables-save. */
async function reference(ctx: Ctx, refNs: string, pod: Obj, f: Flavour): Promise<string> {
  const podFile = join(ctx.dir, `${pod.metadata.name}.json`);
  writeFileSync(podFile, JSON.stringify(pod));
  const r = await inNetns(refNs, pluginBinary, ['render', '-f', podFile], { env: { PATH: process.env.PATH } });
  if (r.code !== 0) throw new Error(`asm-cni render failed for ${pod.metadata.name}: ${r.stderr}`);
  const v4 = r.stdout.split(/^# -+ IPv6/m)[0]!;
  const flush = '*nat\nCOMMIT\n*mangle\nCOMMIT\n';
  await inNetns(refNs, restoreCmd(f), [], { input: flush });
  const ap = await inNetns(refNs, restoreCmd(f), ['--noflush'], { input: v4 });
  if (ap.code !== 0) throw new Error(`reference restore failed for ${pod.metadata.name}: ${ap.stderr}`);
  const dump = await inNetns(refNs, saveCmd(f), []);
  await inNetns(refNs, restoreCmd(f), [], { input: flush });
  return normalizeSave(dump.stdout);
}

async function concurrentAdds(
  ctx: Ctx,
  pods: Obj[],
  f: Flavour,
  kc: string,
): Promise<{ ok: boolean; summary: string; figures: Obj }> {
  const s = settings();
  const refNs = await addNetns(`ref-${f}`);
  const expected: string[] = [];
  for (const p of pods) expected.push(await reference(ctx, refNs, p, f));
  const nss = await pool(
    8,
    pods.map((_, i) => i),
    (i) => addPodNetns(`${f[0]}${i}`, ctx.node, `v${f[0]}${i}`, `192.0.2.${10 + i}/24`),
  );

  const t0 = performance.now();
  const results = await Promise.all(
    pods.map((p, i) => cniAdd(ctx, nss[i]!, p, kc, `192.0.2.${10 + i}/24`, f, s.apiTimeout)),
  );
  const wall = performance.now() - t0;

  const a = new Asserts();
  let exact = 0;
  const other: Flavour = f === 'nft' ? 'legacy' : 'nft';
  for (let i = 0; i < pods.length; i++) {
    const r = results[i]!;
    if (!a.that(r.code === 0, `pod ${i}: ADD failed: ${r.error?.code} ${r.error?.msg ?? r.stderr.slice(0, 200)}`))
      continue;
    let out: Obj = {};
    try {
      out = JSON.parse(r.stdout);
    } catch {
      /* checked below */
    }
    a.that(out.ips?.[0]?.address === `192.0.2.${10 + i}/24`, `pod ${i}: stdout is not the prevResult passed through`);
    // the reference must hold this pod's own rules, or comparing with it proves nothing
    a.that(
      expected[i]!.includes(':ISTIO_OUTPUT -') &&
        expected[i]!.includes(`--dport ${20000 + i} `) &&
        expected[i]!.includes(`198.51.100.${i % 250}/32`),
      `pod ${i}: the reference rendering lacks the pod's own ports and range`,
    );
    const got = normalizeSave((await inNetns(nss[i]!, saveCmd(f), [])).stdout);
    if (a.that(got === expected[i], `pod ${i}: rules differ from its rendering:\n${diff(expected[i]!, got)}`)) exact++;
    const v6 = await inNetns(nss[i]!, saveCmd(f, true), []);
    a.that(!/ISTIO_/.test(v6.stdout), `pod ${i}: ip6tables rules in an IPv4-only pod`);
    const wrong = await inNetns(nss[i]!, saveCmd(other), []);
    a.that(!/ISTIO_/.test(wrong.stdout), `pod ${i}: rules also written with iptables-${other}`);
  }
  // DEL for all at once, then nothing of ours may be left.
  const dels = await Promise.all(
    pods.map((p, i) => cniAdd(ctx, nss[i]!, p, kc, `192.0.2.${10 + i}/24`, f, s.apiTimeout, 'DEL')),
  );
  a.that(
    dels.every((d) => d.code === 0),
    `${dels.filter((d) => d.code !== 0).length} DELs failed`,
  );
  let left = 0;
  for (const ns of nss) left += await ourChains(ns, f);
  a.that(left === 0, `${left} chains of ours left after DEL`);
  const lat = summarize(results.map((r) => r.ms));
  return {
    ok: a.ok,
    summary: a.summary(
      `${pods.length} concurrent ADDs (${f}): ${results.filter((r) => r.code === 0).length} succeeded, ${exact} with exactly their rendered rules; wall ${round(wall / 1000, 2)}s, per ADD p50 ${lat.p50} p99 ${lat.p99} max ${lat.max} ms; DEL left ${left} chains`,
    ),
    figures: {
      backend: f,
      pods: pods.length,
      succeeded: results.filter((r) => r.code === 0).length,
      exactRules: exact,
      wallMs: Math.round(wall),
      addLatencyMs: lat,
      delFailed: dels.filter((d) => d.code !== 0).length,
      chainsLeftAfterDel: left,
      failures: a.failures.slice(0, 5),
    },
  };
}

/** Runs `fn` over `items` with at most `n` at a time, keeping the order of results. */
async function pool<T, R>(n: number, items: T[], fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const k = next++;
        out[k] = await fn(items[k]!);
      }
    }),
  );
  return out;
}

function diff(want: string, got: string): string {
  const w = new Set(want.split('\n'));
  const g = new Set(got.split('\n'));
  return [
    ...[...w].filter((l) => !g.has(l)).map((l) => `  - ${l}`),
    ...[...g].filter((l) => !w.has(l)).map((l) => `  + ${l}`),
  ]
    .slice(0, 12)
    .join('\n');
}

function durationMs(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`SOAK_API_TIMEOUT ${d}: use e.g. 2s or 1500ms`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}
