// A small, dependency-free SVG chart of latency distributions: one panel per component, one line per series, latency
// against percentile on an axis that stretches the tail (x = -log10(1 - q/100): 90% at 1, 99% at 2, 99.9% at 3), so
// p50 and p99 are both readable.

export interface Series {
  label: string;
  color: string;
  dashed?: boolean;
  /** (percentile 0..100, latency ms) */
  points: Array<[number, number]>;
}

export interface Panel {
  title: string;
  subtitle: string;
  series: Series[];
}

const W = 520;
const H = 320;
const M = { left: 58, right: 16, top: 46, bottom: 64 };
const X_MAX = 3; // 99.9th percentile

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const tailX = (q: number): number => Math.min(X_MAX, -Math.log10(Math.max(1 - q / 100, 10 ** -X_MAX)));

/** A "nice" axis maximum and step: 1, 2 or 5 times a power of ten, about five ticks. */
export function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.2 };
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step, step };
}

function panel(p: Panel, ox: number): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const shown = (q: number): boolean => q <= 100 - 10 ** -X_MAX * 100 + 1e-9; // up to p99.9; the maximum is in results.json
  const visible = p.series.flatMap((s) => s.points.filter(([q]) => shown(q)).map(([, v]) => v));
  const { top, step } = niceScale(Math.max(0, ...visible));
  const x = (q: number): number => ox + M.left + (tailX(q) / X_MAX) * pw;
  const y = (v: number): number => M.top + ph - (Math.min(v, top) / top) * ph;
  const out: string[] = [];
  out.push(`<text x="${ox + M.left}" y="20" class="t">${esc(p.title)}</text>`);
  out.push(`<text x="${ox + M.left}" y="36" class="s">${esc(p.subtitle)}</text>`);
  for (let v = 0; v <= top + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${ox + M.left}" x2="${ox + M.left + pw}" y1="${yy}" y2="${yy}" class="g"/>`);
    out.push(
      `<text x="${ox + M.left - 6}" y="${yy}" class="a" text-anchor="end" dominant-baseline="middle">${Number(v.toPrecision(6))}</text>`,
    );
  }
  for (const q of [0, 50, 90, 99, 99.9]) {
    const xx = x(q).toFixed(1);
    out.push(`<line x1="${xx}" x2="${xx}" y1="${M.top}" y2="${M.top + ph}" class="g"/>`);
    out.push(`<text x="${xx}" y="${M.top + ph + 14}" class="a" text-anchor="middle">p${q}</text>`);
  }
  out.push(
    `<text x="${ox + M.left + pw / 2}" y="${M.top + ph + 30}" class="a" text-anchor="middle">percentile (tail stretched)</text>`,
  );
  out.push(
    `<text transform="translate(${ox + 14},${M.top + ph / 2}) rotate(-90)" class="a" text-anchor="middle">latency (ms)</text>`,
  );
  p.series.forEach((s, i) => {
    const pts = s.points
      .filter(([q]) => shown(q))
      .map(([q, v]) => `${x(q).toFixed(1)},${y(v).toFixed(1)}`)
      .join(' ');
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    const lx = ox + M.left + i * 170;
    const ly = H - 10;
    out.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${lx + 28}" y="${ly}" class="a">${esc(s.label)}</text>`);
  });
  return out.join('\n');
}

export function renderChart(panels: Panel[]): string {
  const width = W * panels.length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H}" viewBox="0 0 ${width} ${H}" font-family="sans-serif">`,
    '<style>.t{font-size:14px;font-weight:bold;fill:#222}.s{font-size:11px;fill:#555}.a{font-size:11px;fill:#444}.g{stroke:#e3e3e3;stroke-width:1}</style>',
    `<rect width="${width}" height="${H}" fill="#fff"/>`,
    ...panels.map((p, i) => panel(p, i * W)),
    '</svg>',
    '',
  ].join('\n');
}
