// Where the webhook's CPU goes: self time per function and per area from a V8 .cpuprofile (node --cpu-prof).
// Usage: node profile-top.js FILE.cpuprofile [N]   (npm run bench writes one with ASM_BENCH_PROFILE=1)
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Hotspot {
  name: string;
  where: string;
  selfPct: number;
}

/** The area a frame belongs to: our module, a package, or a node internal. */
export function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/dist\/(.+)\.js$/.exec(url);
  if (ours) return ours[1]!;
  if (url.startsWith('node:'))
    return url
      .replace(/^node:(internal\/)?/, 'node:')
      .split('/')
      .slice(0, 2)
      .join('/');
  return url.split('/').slice(-2).join('/');
}

export function hotspots(profile: CpuProfile, top = 25): { total: number; functions: Hotspot[]; areas: Hotspot[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  let total = 0;
  const fns = new Map<string, { where: string; us: number }>();
  const areas = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)' || cf.functionName === '(program)') continue;
    total += us;
    const where = cf.url ? `${cf.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`;
    const f = fns.get(key) ?? { where, us: 0 };
    f.us += us;
    fns.set(key, f);
    const a = area(cf.url, cf.functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const pct = (us: number): number => Number(((100 * us) / total).toFixed(1));
  return {
    total,
    functions: [...fns.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([k, v]) => ({ name: k.split(' ')[0]!, where: v.where, selfPct: pct(v.us) })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, where: '', selfPct: pct(us) })),
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node profile-top.js FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  const h = hotspots(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(process.argv[3] ?? 25));
  process.stdout.write(`busy CPU in profile: ${(h.total / 1e6).toFixed(2)} s\n\nby area (self time):\n`);
  for (const a of h.areas) process.stdout.write(`  ${String(a.selfPct).padStart(5)}%  ${a.name}\n`);
  process.stdout.write('\nby function (self time):\n');
  for (const f of h.functions) process.stdout.write(`  ${String(f.selfPct).padStart(5)}%  ${f.name}  ${f.where}\n`);
}
