// Plugin half of `npm run bench`: prepares the pod, the floor's rules and the certificates, runs the Go driver
// (bench/plugin, which needs root) and summarises its raw samples.
// Usage: node plugin-bench.js --out FILE --driver PATH [--floor-only]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCerts } from './certs.js';
import { ORACLE_DIR, pluginPod } from './fixtures.js';
import { percentileCurve, ratio, summarize } from '../../test/harness/stats.js';
import { repoRoot as ROOT } from '../../test/harness/toolchain.js';

const env = (k: string, d: string): string => process.env[k] ?? d;

function log(msg: string): void {
  process.stderr.write(`[bench plugin] ${msg}\n`);
}

export interface RenderedRules {
  ipv4: string;
  ipv6: string;
  source: string;
}

/** The floor's rules: what the plugin renders for the pod, or (plugin not built) Istio's golden for the same pod. */
export function floorRules(plugin: string | null, podFile: string): RenderedRules {
  if (plugin) {
    // The pod is dual-stack (prevResult has an IPv4 and an IPv6 address), so the plugin applies both families.
    const render = (family: string): string =>
      execFileSync(plugin, ['render', '-f', podFile, '--family', family], { encoding: 'utf8' });
    const ipv4 = render('ipv4');
    const ipv6 = render('ipv6');
    if (!ipv4.includes('COMMIT') || !ipv6.includes('COMMIT')) {
      throw new Error(`bench: 'asm-cni render -f pod.json' printed no restore input:\n${ipv4}\n${ipv6}`);
    }
    return { ipv4, ipv6, source: 'asm-cni render -f pod.json --family ipv4|ipv6' };
  }
  const ipv4 = readFileSync(join(ORACLE_DIR, 'iptables/cni-plugin/basic.txt.golden'), 'utf8');
  // Istio's IPv6 rules are the IPv4 ones with the loopback addresses of IPv6 (README of the oracles).
  const ipv6 = ipv4.replaceAll('127.0.0.6/32', '::6/128').replaceAll('127.0.0.1/32', '::1/128');
  return { ipv4, ipv6, source: 'oracle iptables/cni-plugin/basic.txt.golden (+ its IPv6 form)' };
}

interface DriverOutput {
  binary: { path: string; sizeBytes: number };
  coldStartMs: number[] | null;
  trueExecMs: number[] | null;
  addMs: number[] | null;
  delMs: number[] | null;
  floorMs: number[];
  floorGetMs: number[];
  floorRestoreMs: number[];
  parallelAddMs: number[] | null;
  parallelDelMs: number[] | null;
  parallelFloorMs: number[];
  floorFamilies: string[];
  apiRequests: number;
  verifiedPods: number;
  parallelism: number;
  rounds: number;
  iptablesMode: string;
  coldPath: Record<string, number[]> | null;
  coldPathCpu: Record<string, number[]> | null;
  coldPathPods: number;
  agentRequests: number;
  initMs: number[] | null;
}

/**
 * Builds what the cold-path comparison runs besides the shipped plugin: a Go program that only exits (the least a Go
 * plugin's process start costs) and the plugin with the node-agent prototype (tag asmcni_benchagent, never shipped).
 */
function buildColdPathExtras(outDir: string): { goStart: string; agentPlugin: string } {
  const goStart = join(outDir, 'gostart');
  const agentPlugin = join(outDir, 'asm-cni-benchagent');
  const env = { ...process.env, CGO_ENABLED: '0' };
  execFileSync('go', ['build', '-trimpath', '-ldflags', '-s -w', '-o', goStart, './gostart'], {
    cwd: join(ROOT, 'bench/plugin'),
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  execFileSync('bash', [join(ROOT, 'cni/build.sh')], {
    env: { ...env, ASM_CNI_OUT: agentPlugin, ASM_CNI_TAGS: 'asmcni_benchagent' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { goStart, agentPlugin };
}

type ColdSummary = Record<string, ReturnType<typeof summarize>>;

/**
 * Median over the rounds of a[i] − b[i]: both steps ran in the same round, moments apart, so the drift of a shared
 * machine cancels out of each difference instead of widening the gap between two medians.
 */
function pairedMedian(a: number[] | undefined, b: number[] | undefined): number | null {
  if (!a?.length || !b?.length || a.length !== b.length) return null;
  return summarize(a.map((v, i) => v - b[i]!)).p50;
}

/**
 * Share of the rounds in which b was faster than a: a sign test against noise (with no real difference it is near
 * 0.5; over 200 rounds, more than 0.56 happens by chance in about 4 % of runs).
 */
function fasterShare(a: number[] | undefined, b: number[] | undefined): number | null {
  if (!a?.length || !b?.length || a.length !== b.length) return null;
  return Number((a.filter((v, i) => b[i]! < v).length / a.length).toFixed(3));
}

/** The cold-path comparison (docs/bench.md): every step's summary, and the derived figures the decision reads. */
function coldPathSummary(
  d: Pick<DriverOutput, 'coldPath' | 'coldPathCpu' | 'coldPathPods' | 'agentRequests' | 'initMs'>,
) {
  if (!d.coldPath) return null;
  const wall = d.coldPath;
  const cpu = d.coldPathCpu ?? {};
  const steps: ColdSummary = Object.fromEntries(Object.entries(wall).map(([k, v]) => [k, summarize(v)]));
  const cpuSteps: ColdSummary = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, summarize(v)]));
  const over = (a: string): number | null => {
    const x = steps[a]?.p50;
    const fl = steps.floor?.p50;
    return x === undefined || fl === undefined ? null : ratio(x, fl);
  };
  const paired = (m: Record<string, number[]>) => ({
    resumeAdd: pairedMedian(m.addFullHandshake, m.add),
    resumeAddRSA: pairedMedian(m.addFullHandshakeRSA, m.addRSA),
    agentAdd: pairedMedian(m.add, m.addAgent),
  });
  return {
    pods: d.coldPathPods,
    steps,
    cpuMs: cpuSteps,
    initMs: d.initMs?.length ? summarize(d.initMs) : null,
    agentRequests: d.agentRequests,
    addRatio: over('add'),
    addFullHandshakeRatio: over('addFullHandshake'),
    addAgentRatio: over('addAgent'),
    // What a lookup adds to a cold process: the probe minus a probe that exits at once, round by round.
    lookupMs: {
      get: pairedMedian(wall.probeGet, wall.probeStart),
      getRSA: pairedMedian(wall.probeGetRSA, wall.probeStart),
      agent: pairedMedian(wall.probeAgent, wall.probeStart),
    },
    // Savings, as medians of the per-round differences: in wall time, and in CPU time (the plugin's process and the
    // commands it ran; the API server's side is not in it).
    savedMs: paired(wall),
    savedCpuMs: paired(cpu),
    fasterShare: {
      resumeAdd: fasterShare(wall.addFullHandshake, wall.add),
      resumeAddRSA: fasterShare(wall.addFullHandshakeRSA, wall.addRSA),
      agentAdd: fasterShare(wall.add, wall.addAgent),
    },
    processStartMs: {
      goRuntime: pairedMedian(wall.goStart, wall.true),
      aboveGo: pairedMedian(wall.version, wall.goStart),
    },
  };
}

/** How many of the run's ADDs resumed a TLS session, from the plugin's own log lines (`tls_resumed`). */
function tlsResumedAdds(logFile: string): { resumed: number; of: number } | null {
  if (!existsSync(logFile)) return null;
  let resumed = 0;
  let of = 0;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"cmd":"ADD"')) continue;
    const entry = JSON.parse(line) as { tls_resumed?: boolean };
    if (entry.tls_resumed === undefined) continue;
    of++;
    if (entry.tls_resumed) resumed++;
  }
  return { resumed, of };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, driver: { type: 'string' }, 'floor-only': { type: 'boolean', default: false } },
  });
  if (!values.out || !values.driver) throw new Error('plugin-bench: --out and --driver are required');
  if (process.getuid?.() !== 0) throw new Error('plugin-bench: needs root (network namespaces and iptables)');
  // ASM_BENCH_PLUGIN_BINARY: what-if runs of another build of the plugin (results.md then says so).
  const pluginPath = process.env.ASM_BENCH_PLUGIN_BINARY ?? join(ROOT, 'dist/cni/asm-cni');
  const plugin = !values['floor-only'] && existsSync(pluginPath) ? pluginPath : null;
  if (!plugin) log(values['floor-only'] ? 'floor only (--floor-only)' : `floor only: ${pluginPath} is not built`);

  const work = mkdtempSync(join(tmpdir(), 'asm-cni-bench-plugin-'));
  try {
    const certs = await generateCerts(work);
    // The cold-path comparison needs the plugin's source: not for floor-only runs or another build of the plugin.
    const coldPods = plugin && !process.env.ASM_BENCH_PLUGIN_BINARY ? env('ASM_BENCH_COLD_PATH_PODS', '200') : '0';
    const extras = coldPods !== '0' ? buildColdPathExtras(join(ROOT, 'bench/.build')) : null;
    const podFile = join(work, 'pod.json');
    writeFileSync(podFile, JSON.stringify(pluginPod('bench')));
    const rules = floorRules(plugin, podFile);
    writeFileSync(join(work, 'rules4'), rules.ipv4);
    writeFileSync(join(work, 'rules6'), rules.ipv6);
    const args = [
      '-pod',
      podFile,
      '-rules4',
      join(work, 'rules4'),
      '-rules6',
      join(work, 'rules6'),
      '-cert',
      certs.certFile,
      '-key',
      certs.keyFile,
      '-ca',
      certs.caFile,
      '-workdir',
      work,
      '-pods',
      env('ASM_BENCH_PODS', '200'),
      '-parallel',
      env('ASM_BENCH_PARALLEL', '20'),
      '-rounds',
      env('ASM_BENCH_ROUNDS', '5'),
      '-cold-starts',
      env('ASM_BENCH_COLD_STARTS', '100'),
      ...(plugin ? ['-plugin', plugin] : []),
      '-cold-path-pods',
      coldPods,
      ...(extras ? ['-go-start', extras.goStart, '-plugin-agent', extras.agentPlugin] : []),
      ...(process.env.ASM_BENCH_IPTABLES_BACKEND ? ['-iptables-backend', process.env.ASM_BENCH_IPTABLES_BACKEND] : []),
    ];
    const run = spawnSync(values.driver, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 << 20,
    });
    if (run.status !== 0) {
      const pluginLog = join(work, 'asm-cni.log');
      if (existsSync(pluginLog))
        log(`plugin log (tail):\n${readFileSync(pluginLog, 'utf8').split('\n').slice(-20).join('\n')}`);
      throw new Error(`plugin driver exited with ${run.status}`);
    }
    const d = JSON.parse(run.stdout) as DriverOutput;
    const resumedAdds = plugin ? tlsResumedAdds(join(work, 'asm-cni.log')) : null;
    const s = (xs: number[] | null) => (xs && xs.length ? summarize(xs) : null);
    const curve = (xs: number[] | null) =>
      xs && xs.length ? percentileCurve(xs).map(([q, v]) => [q, Number(v.toFixed(3))]) : null;
    const add = s(d.addMs);
    const floor = s(d.floorMs)!;
    const result = {
      config: {
        pods: d.floorMs.length,
        parallelism: d.parallelism,
        rounds: d.rounds,
        floorFamilies: d.floorFamilies,
        floorRules: rules.source,
        iptables: d.iptablesMode,
        iptablesBackendSetting: process.env.ASM_BENCH_IPTABLES_BACKEND ?? null,
        pluginBinaryOverride: process.env.ASM_BENCH_PLUGIN_BINARY ?? null,
      },
      binary: plugin
        ? {
            path: 'dist/cni/asm-cni',
            sizeBytes: d.binary.sizeBytes,
            sizeMB: Number((d.binary.sizeBytes / 2 ** 20).toFixed(2)),
          }
        : null,
      coldStartMs: s(d.coldStartMs),
      trueExecMs: s(d.trueExecMs),
      addMs: add,
      delMs: s(d.delMs),
      floorMs: floor,
      floorGetMs: s(d.floorGetMs),
      floorRestoreMs: s(d.floorRestoreMs),
      parallelAddMs: s(d.parallelAddMs),
      parallelDelMs: s(d.parallelDelMs),
      parallelFloorMs: s(d.parallelFloorMs),
      curves: {
        addMs: curve(d.addMs),
        floorMs: curve(d.floorMs),
        parallelAddMs: curve(d.parallelAddMs),
        parallelFloorMs: curve(d.parallelFloorMs),
      },
      coldPath: coldPathSummary(d),
      tlsResumedAdds: resumedAdds,
      apiRequests: d.apiRequests,
      verifiedPods: d.verifiedPods,
      ratios: add
        ? { pluginAddMedianRatio: ratio(add.p50, floor.p50), pluginAddP95Ratio: ratio(add.p95, floor.p95) }
        : null,
    };
    writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
    log(
      `floor median ${floor.p50} ms` +
        (add ? `, ADD median ${add.p50} ms (ratio ${result.ratios!.pluginAddMedianRatio})` : ''),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench plugin] FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
