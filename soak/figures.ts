// Renders the "Last figures" section of docs/reliability.md from bench/soak.json (run after a full soak:
// node --import @isaacs/ts-node-temp-fork-for-pr-2009/import soak/figures.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './lib/reviews.js';

const MARK = '<!-- soak-figures -->';
const results = JSON.parse(readFileSync(process.env.SOAK_OUT ?? join(repoRoot, 'bench/soak.json'), 'utf8'));
const m = results.machine;
const lines = [
  MARK,
  `Run of ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${results.seconds} s, on ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, node ${m.node}; ` +
    `load average ${m.loadavgAtStart?.[0]} at the start and ${m.loadavgAtEnd?.[0]} at the end (other jobs shared the machine: the latency figures are upper bounds). ` +
    `**${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped.**`,
  '',
  '| check | result | figures |',
  '|---|---|---|',
  ...results.checks.map(
    (c: { id: string; ok: boolean | null; summary: string }) =>
      `| \`${c.id}\` | ${c.ok === null ? 'skipped' : c.ok ? 'pass' : '**FAIL**'} | ${c.summary.replace(/\|/g, '\\|')} |`,
  ),
  '',
];
const docFile = join(repoRoot, 'docs/reliability.md');
const doc = readFileSync(docFile, 'utf8');
const at = doc.indexOf(MARK);
if (at < 0) throw new Error(`${docFile} has no ${MARK} marker`);
writeFileSync(docFile, doc.slice(0, at) + lines.join('\n'));
console.log(`updated ${docFile}`);
