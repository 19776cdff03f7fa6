// Last step of `npm run bench`: merges the two halves with the machine's description into bench/results.json, writes
// bench/results.md (the table the README shows) and bench/latency.svg, and prints the table.
// Usage: node report.js --webhook FILE --plugin FILE --out-dir DIR [--started ISO] [--load-start "1 5 15"]
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Summary } from '../../test/harness/stats.js';
import { renderChart, type Panel } from './svg.js';
import { coldPathTable } from './plugin-cold-report.js';
import { repoRoot as ROOT } from '../../test/harness/toolchain.js';

function cmd(file: string, args: string[]): string | null {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function readJson(file: string | undefined): any {
  if (!file || !existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

export function machine(loadAtStart: string | undefined): Record<string, unknown> {
  const model =
    /^model name[^:\n]*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
    cpus()[0]?.model ??
    'unknown';
  return {
    cpuModel: model,
    cores: cpus().length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    kernel: release(),
    node: process.version,
    go: cmd('go', ['env', 'GOVERSION']),
    iptables: cmd('iptables', ['--version']),
    autocannon: JSON.parse(readFileSync(join(ROOT, 'node_modules/autocannon/package.json'), 'utf8')).version,
    loadAverageAtStart: loadAtStart ? loadAtStart.split(/\s+/).slice(0, 3).map(Number) : null,
    loadAverageAtEnd: loadavg().map((v) => Number(v.toFixed(2))),
  };
}

const TARGETS = {
  webhookThroughputRatio: { op: '>=', value: 0.8 },
  webhookP99Ratio: { op: '<=', value: 2 },
  webhookRssMB: { op: '<=', value: 100 },
  pluginAddMedianRatio: { op: '<=', value: 1.3 },
} as const;

type Ratios = Record<keyof typeof TARGETS, number | null>;

function met(name: keyof typeof TARGETS, v: number | null): boolean | null {
  if (v === null || !Number.isFinite(v)) return null;
  const t = TARGETS[name];
  return t.op === '>=' ? v >= t.value : v <= t.value;
}

const f = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : String(Number(v.toFixed(digits)));
const mark = (ok: boolean | null): string => (ok === null ? '' : ok ? ' ✅' : ' ❌');

export function markdownTable(r: any): string {
  const w = r.webhook;
  const p = r.plugin;
  const ratios: Ratios = r.ratios;
  const rows: string[][] = [];
  const row = (...cells: string[]): void => {
    rows.push(cells);
  };
  if (w?.floor) {
    const rate = w.floor.rate.offeredRate;
    const ours = w.webhook;
    row(
      'Webhook max throughput (req/s)',
      f(ours?.max.reqPerSec, 0),
      f(w.floor.max.reqPerSec, 0),
      f(ratios.webhookThroughputRatio) + mark(met('webhookThroughputRatio', ratios.webhookThroughputRatio)),
      '≥ 0.8',
    );
    // Latency at the same offered rates for both, each a share of asm-cni's own max (older results: one rate).
    const pairs: any[] = w.rates ?? [{ offeredRate: rate, floor: w.floor.rate, webhook: ours?.rate }];
    for (const pr of pairs) {
      const share = pr.shareOfCapacity ? ` (${Math.round(pr.shareOfCapacity * 100)} % of asm-cni's max)` : '';
      row(
        `Webhook p50 / p99 at ${pr.offeredRate} req/s${share} (ms)`,
        pr.webhook ? `${f(pr.webhook.latencyMs.p50, 3)} / ${f(pr.webhook.latencyMs.p99, 3)}` : '–',
        `${f(pr.floor.latencyMs.p50, 3)} / ${f(pr.floor.latencyMs.p99, 3)}`,
        pr.webhook
          ? `${f(pr.webhook.latencyMs.p50 / pr.floor.latencyMs.p50)} / ${f(pr.webhook.latencyMs.p99 / pr.floor.latencyMs.p99)}`
          : '',
        '',
      );
    }
    row(
      'Webhook p99 ratio, worst over those rates',
      '',
      '',
      f(ratios.webhookP99Ratio) + mark(met('webhookP99Ratio', ratios.webhookP99Ratio)),
      '≤ 2',
    );
    row(
      `Webhook RSS after ${ours?.memory.reviews ?? '100000'} reviews (MB)`,
      f(ours?.memory.rssMB, 1),
      '',
      '',
      ratios.webhookRssMB === null ? '≤ 100' : `≤ 100${mark(met('webhookRssMB', ratios.webhookRssMB))}`,
    );
    row(
      'Webhook server CPU per review (µs)',
      f(ours?.max.cpuUsPerReview, 0),
      f(w.floor.max.cpuUsPerReview, 0),
      f(w.ratios?.webhookCpuPerReviewRatio),
      '',
    );
    row(
      'Webhook capacity of one core, 10⁶ / CPU per review (req/s)',
      f(ours ? 1e6 / ours.max.cpuUsPerReview : null, 0),
      f(1e6 / w.floor.max.cpuUsPerReview, 0),
      f(w.ratios?.webhookCapacityRatio),
      '≥ 0.8',
    );
    row(
      'CPU during the max runs, server / load generator (cores)',
      ours ? `${f(ours.max.serverCpuCores)} / ${f(ours.max.clientCpuCores)}` : '–',
      `${f(w.floor.max.serverCpuCores)} / ${f(w.floor.max.clientCpuCores)}`,
      '',
      '',
    );
    if (ours?.logicCpuUsPerReview) {
      const l = ours.logicCpuUsPerReview;
      row(
        'Webhook in-process CPU per review: parse / admit() / answer (µs)',
        `${f(l.parseUs, 1)} / ${f(l.admitUs, 1)} / ${f(l.answerUs, 1)}`,
        `${f(l.parseUs, 1)} / – / –`,
        '',
        '',
      );
    }
    row('Webhook errors (all runs)', ours ? String(ours.errors) : '–', String(w.floor.errors), '', '0');
  }
  if (p?.floorMs) {
    const sm = (s: Summary | null, k: 'p50' | 'p95'): string => f(s?.[k], 2);
    row(
      `Plugin ADD median, ${p.config.pods} pods (ms)`,
      sm(p.addMs, 'p50'),
      sm(p.floorMs, 'p50'),
      f(ratios.pluginAddMedianRatio) + mark(met('pluginAddMedianRatio', ratios.pluginAddMedianRatio)),
      '≤ 1.3',
    );
    row('Plugin ADD p95 (ms)', sm(p.addMs, 'p95'), sm(p.floorMs, 'p95'), f(p.ratios?.pluginAddP95Ratio), '');
    row(
      `Plugin ADD, ${p.config.parallelism} concurrent: median / p95 (ms)`,
      p.parallelAddMs ? `${sm(p.parallelAddMs, 'p50')} / ${sm(p.parallelAddMs, 'p95')}` : '–',
      `${sm(p.parallelFloorMs, 'p50')} / ${sm(p.parallelFloorMs, 'p95')}`,
      '',
      '',
    );
    row('Plugin DEL median / p95 (ms)', p.delMs ? `${sm(p.delMs, 'p50')} / ${sm(p.delMs, 'p95')}` : '–', '', '', '');
    row(
      'Plugin cold start, `asm-cni version` median (ms)',
      sm(p.coldStartMs, 'p50'),
      p.trueExecMs ? `${sm(p.trueExecMs, 'p50')} (exec of /bin/true)` : '',
      '',
      '',
    );
    row('Plugin binary size (MB)', f(p.binary?.sizeMB, 2), '', '', '');
  }
  const head = ['', 'asm-cni', 'floor', 'ratio', 'target'];
  const lines = [head, ['---', '---:', '---:', '---:', '---']].concat(rows).map((c) => `| ${c.join(' | ')} |`);
  return lines.join('\n');
}

/**
 * The webhook's CPU waterfall (webhook-bench.ts, waterfall.ts): server CPU per review from the floor to the shipped
 * webhook, one row per piece added, all at the same offered rate in one run. Empty when the run had none.
 */
export function waterfallTable(w: any): string {
  const wf = w?.waterfall;
  if (wf?.error) return `**The CPU waterfall failed:** ${wf.error}`;
  if (!wf?.rows?.length) return '';
  const lines = [
    `Webhook server CPU per review, built up from the floor to the shipped webhook: every step its own server, all at ${wf.offeredRate} req/s (50 % of asm-cni's max) in the same run, ${wf.secondsPerStep} s each (docs/bench.md).`,
    '',
    `| step | adds | CPU per review (µs), median of ${wf.rounds} rounds | rounds, lowest – highest | delta (µs) |`,
    '| --- | --- | ---: | ---: | ---: |',
    ...wf.rows.map(
      (r: any, i: number) =>
        `| ${r.step} | ${r.adds} | ${f(r.cpuUsPerReview, 1)} | ${f(Math.min(...r.roundsUs), 1)} – ${f(Math.max(...r.roundsUs), 1)} | ${i === 0 ? '' : (r.deltaUs >= 0 ? '+' : '') + f(r.deltaUs, 1)} |`,
    ),
    `| | beyond the floor | | | ${f(wf.beyondFloorUs, 1)} |`,
  ];
  const errors = wf.rows.reduce((a: number, r: any) => a + r.errors, 0);
  if (errors > 0) lines.push('', `**${errors} errors or wrong answers in the waterfall runs.**`);
  return lines.join('\n');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      webhook: { type: 'string' },
      plugin: { type: 'string' },
      'out-dir': { type: 'string' },
      started: { type: 'string' },
      'load-start': { type: 'string' },
    },
  });
  const outDir = values['out-dir'] ?? join(ROOT, 'bench');
  const webhook = readJson(values.webhook);
  const plugin = readJson(values.plugin);
  const ratios: Ratios = {
    webhookThroughputRatio: webhook?.ratios?.webhookThroughputRatio ?? null,
    webhookP99Ratio: webhook?.ratios?.webhookP99Ratio ?? null,
    webhookRssMB: webhook?.ratios?.webhookRssMB ?? null,
    pluginAddMedianRatio: plugin?.ratios?.pluginAddMedianRatio ?? null,
  };
  const commit = cmd('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const mach = machine(values['load-start']);
  // A floor slower than the product, or a busy machine, means the run measured the neighbours, not the software.
  const loadStart = (mach.loadAverageAtStart as number[] | null)?.[0] ?? 0;
  const noisy: string[] = [];
  if (loadStart > 1) noisy.push(`load average ${loadStart} at start (other work shared the CPUs)`);
  if ((ratios.webhookThroughputRatio ?? 0) > 1.05)
    noisy.push('the webhook out-ran its own floor (the floor was starved of CPU)');
  const caveats: string[] = [];
  if (webhook?.ratios?.floorClientBound) {
    caveats.push(
      "the load generator, not the floor server, was the limit of the floor's maximum (the throughput ratio reads high; the capacity ratio does not depend on the client)",
    );
  }
  const results = {
    ...ratios,
    targets: Object.fromEntries(Object.entries(TARGETS).map(([k, t]) => [k, `${t.op} ${t.value}`])),
    targetsMet: Object.fromEntries(
      Object.keys(TARGETS).map((k) => [k, met(k as keyof typeof TARGETS, ratios[k as keyof Ratios])]),
    ),
    generatedAt: new Date().toISOString(),
    startedAt: values.started ?? null,
    command: 'npm run bench',
    commit,
    machine: mach,
    quiet: noisy.length === 0,
    noise: noisy,
    caveats,
    webhook,
    plugin,
    ratios,
  };
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');

  const table = markdownTable(results);
  const coldTable = coldPathTable(plugin?.coldPath, plugin?.tlsResumedAdds);
  const m = results.machine as any;
  const md = [
    `<!-- generated by \`npm run bench\` (bench/src/report.ts); do not edit -->`,
    `Measured ${results.generatedAt.slice(0, 16).replace('T', ' ')} UTC at commit \`${commit ?? 'unknown'}\` on ${m.cpuModel}, ` +
      `${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.go ?? 'go ?'}, ${m.iptables ?? 'iptables ?'}` +
      (m.loadAverageAtStart ? ` (load average at start ${m.loadAverageAtStart.join(' ')}).` : '.'),
    ...(noisy.length
      ? ['', `**Noisy run, not representative:** ${noisy.join('; ')}. Regenerate on an otherwise idle machine.`]
      : []),
    ...(caveats.length ? ['', `**Caveat:** ${caveats.join('; ')}.`] : []),
    ...(webhook?.config && ((webhook.config.logLevel ?? 'info') !== 'info' || webhook.config.nodeFlags?.length)
      ? [
          '',
          `**What-if run, not the shipped configuration:** webhook logLevel ${webhook.config.logLevel}, node flags \`${(webhook.config.nodeFlags ?? []).join(' ')}\`.`,
        ]
      : []),
    ...(plugin?.config?.pluginBinaryOverride
      ? ['', `**What-if run, not the shipped plugin:** ${plugin.config.pluginBinaryOverride}.`]
      : []),
    ...(plugin?.config?.iptablesBackendSetting
      ? [
          '',
          `**What-if run, not the shipped configuration:** plugin network config with \`iptables_backend: ${plugin.config.iptablesBackendSetting}\`.`,
        ]
      : []),
    '',
    table,
    ...(coldTable ? ['', coldTable] : []),
    '',
    ...(waterfallTable(webhook) ? [waterfallTable(webhook), ''] : []),
    '![latency distributions](bench/latency.svg)',
    '',
    'Regenerate with `npm run bench` (as root; see docs/bench.md).',
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'results.md'), md);

  const panels: Panel[] = [];
  if (webhook?.floor) {
    const series = [];
    if (webhook.webhook)
      series.push({ label: 'asm-cni webhook', color: '#d1495b', points: webhook.webhook.rate.curveMs });
    series.push({ label: 'floor (node:https)', color: '#00798c', dashed: true, points: webhook.floor.rate.curveMs });
    panels.push({
      title: 'Webhook: AdmissionReview latency',
      subtitle: `TLS keep-alive, ${webhook.config.connections} connections, open loop at ${webhook.floor.rate.offeredRate} req/s (half of asm-cni's max); the floor sends asm-cni's answers`,
      series,
    });
  }
  if (plugin?.curves?.floorMs) {
    const series = [];
    if (plugin.curves.addMs) series.push({ label: 'asm-cni ADD', color: '#d1495b', points: plugin.curves.addMs });
    series.push({ label: 'floor (GET + restore)', color: '#00798c', dashed: true, points: plugin.curves.floorMs });
    panels.push({
      title: 'CNI plugin: ADD latency',
      subtitle: `${plugin.config.pods} pods one at a time, each in a fresh netns; API server on loopback HTTPS`,
      series,
    });
  }
  if (panels.length) writeFileSync(join(outDir, 'latency.svg'), renderChart(panels));

  process.stdout.write(
    `\n${table}\n\nmachine: ${m.cpuModel}, ${m.cores} cores, load average at start ${m.loadAverageAtStart?.join(' ') ?? '?'}, at end ${m.loadAverageAtEnd.join(' ')}\n`,
  );
  process.stdout.write(`wrote ${join(outDir, 'results.json')}, results.md, latency.svg\n`);
  if (!webhook || !plugin) {
    process.stdout.write(
      `incomplete: ${!webhook ? 'webhook ' : ''}${!plugin ? 'plugin ' : ''}half failed or was skipped (see above)\n`,
    );
  }
}

main();
