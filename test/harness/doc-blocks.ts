// The parts of the docs that tests run or check, so each fact has one home: what the reader reads is what the test
// uses. A part is marked by a line `<!-- test:NAME -->` right before a fenced code block or a Markdown table.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './toolchain.js';

export const installDoc = join(repoRoot, 'docs', 'install.md');

const marker = (name: string): string => `<!-- test:${name} -->`;

/** The lines after the marker, or an error naming the marker and the file. */
function afterMarker(text: string, name: string, file: string): string[] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trim() === marker(name));
  if (at < 0) throw new Error(`${file} has no ${marker(name)}`);
  if (lines.findIndex((l, i) => i > at && l.trim() === marker(name)) >= 0)
    throw new Error(`${file} has ${marker(name)} more than once`);
  return lines.slice(at + 1);
}

/** The fenced code block right after the marker (its info string and body, without the fences). */
export function markedBlock(name: string, text = readFileSync(installDoc, 'utf8'), file = installDoc): string {
  const rest = afterMarker(text, name, file);
  const open = rest[0]?.match(/^(\s*)(`{3,})[^`\s]*\s*$/);
  if (!open) throw new Error(`${marker(name)} in ${file} is not followed by a fenced code block`);
  const [, indent, fence] = open;
  const close = rest.findIndex((l, i) => i > 0 && l.trim() === fence);
  if (close < 0) throw new Error(`the code block after ${marker(name)} in ${file} is not closed`);
  return `${rest
    .slice(1, close)
    .map((l) => (l.startsWith(indent!) ? l.slice(indent!.length) : l))
    .join('\n')}\n`;
}

/** The body rows of the Markdown table right after the marker, as trimmed cells (header and rule dropped). */
export function markedTable(name: string, text = readFileSync(installDoc, 'utf8'), file = installDoc): string[][] {
  const rest = afterMarker(text, name, file);
  const end = rest.findIndex((l) => !l.trim().startsWith('|'));
  const rows = rest.slice(0, end < 0 ? rest.length : end);
  if (rows.length < 3 || !/^\|[\s|:-]+\|$/.test(rows[1]!.trim()))
    throw new Error(`${marker(name)} in ${file} is not followed by a Markdown table`);
  return rows.slice(2).map((r) =>
    r
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim()),
  );
}

export const POD_SECURITY_LEVELS = ['privileged', 'baseline', 'restricted'] as const;
export type PodSecurityLevel = (typeof POD_SECURITY_LEVELS)[number];

export interface PodSecurityClaim {
  kind: string;
  name: string;
  /** The level its pods pass. */
  passes: PodSecurityLevel;
  /** A stricter level that refuses them; undefined for `restricted` (nothing is stricter). */
  refusedAt?: PodSecurityLevel;
}

const level = (cell: string, row: string): PodSecurityLevel => {
  const m = cell.match(/^`(\w+)`$/);
  const l = m?.[1] as PodSecurityLevel | undefined;
  if (!l || !POD_SECURITY_LEVELS.includes(l))
    throw new Error(`pod-security table, row "${row}": "${cell}" is not a level`);
  return l;
};

/** The PodSecurity levels docs/install.md claims per shipped workload (the `test:pod-security` table). */
export function podSecurityClaims(text?: string): PodSecurityClaim[] {
  return markedTable('pod-security', text).map((cells) => {
    const row = cells.join(' | ');
    const w = cells[0]?.match(/^(\w+) `([^`]+)`$/);
    if (!w || cells.length < 3)
      throw new Error(`pod-security table, row "${row}": expected "Kind \`name\` | level | level or —"`);
    const passes = level(cells[1]!, row);
    const refusedAt = cells[2] === '—' ? undefined : level(cells[2]!, row);
    if (refusedAt && POD_SECURITY_LEVELS.indexOf(refusedAt) <= POD_SECURITY_LEVELS.indexOf(passes))
      throw new Error(`pod-security table, row "${row}": "refused at" must be stricter than "passes"`);
    return { kind: w[1]!, name: w[2]!, passes, refusedAt };
  });
}
