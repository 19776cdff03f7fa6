// The node installer under crashes and a noisy primary CNI, on temp dirs (no root needed):
//  - SIGKILL at random points of its writes, 50 times (the kill lands on the k-th file event the installer causes in
//    the net and bin dirs, k random): every config file the runtime would load is complete, valid, and byte-equal to
//    either the before or the after state; the binary and kubeconfig are old or new, never torn; a restart converges.
//  - the primary CNI rewriting its conflist 100 times in a burst (atomic renames and in-place rewrites mixed) while
//    `run` watches: our entry ends present exactly once, the primary's last content is kept, and no write loop
//    (no writes at all once the burst has settled, across a resync interval).
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
  renameSync,
  type FSWatcher,
} from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { makeCA } from '../../test/harness/certs.js';
import { freePort, run, startLogged, subDir, onCleanup } from '../lib/proc.js';
import { Asserts, type Report } from '../lib/report.js';
import { oraclesDir, repoRoot } from '../lib/reviews.js';
import { sleep, waitFor } from '../lib/stats.js';
import { settings } from '../settings.js';
import { pluginBinary } from './plugin.js';

export const installerCli = process.env.SOAK_INSTALLER_CLI ?? join(repoRoot, 'dist/installer/cli.js');
const LOADABLE = /\.(conf|conflist|json)$/;

interface Layout {
  root: string;
  net: string;
  bin: string;
  sa: string;
}

function layout(root: string): Layout {
  const l = { root, net: join(root, 'net.d'), bin: join(root, 'bin'), sa: join(root, 'sa') };
  for (const d of [l.net, l.bin, l.sa]) mkdirSync(d, { recursive: true });
  return l;
}

function installerArgs(l: Layout, command: string, readinessPort = 0): string[] {
  return [
    installerCli,
    command,
    '--net-dir',
    l.net,
    '--bin-dir',
    l.bin,
    '--sa-dir',
    l.sa,
    '--plugin-binary',
    pluginBinary,
    '--api-server',
    'https://192.0.2.1:6443',
    '--readiness-port',
    String(readinessPort),
  ];
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** File name -> sha of every regular file in dir (temp files included). */
function snapshot(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isFile()) m.set(name, sha(readFileSync(p)));
  }
  return m;
}

function seedSa(l: Layout, caPem: string): void {
  writeFileSync(join(l.sa, 'token'), 'soak-token-not-a-secret\n');
  writeFileSync(join(l.sa, 'ca.crt'), caPem);
  writeFileSync(join(l.sa, 'namespace'), 'asm-cni\n');
}

const PRIMARIES = [
  { name: '10-bridge.conf', source: 'bridge.conf' },
  { name: '10-calico.conflist', source: 'list.conflist' },
];
const OLD_BINARY = '#!/bin/sh\n# an older asm-cni\nexit 1\n';
const OLD_KUBECONFIG = 'apiVersion: v1\nkind: Config\n# older\n';

export async function installerSuite(report: Report): Promise<void> {
  if (!existsSync(installerCli)) throw new Error(`${installerCli} is missing: run npm run build`);
  if (!existsSync(pluginBinary)) throw new Error(`${pluginBinary} is missing: run npm run build`);
  // the cluster CA the kubeconfig embeds (never used to connect: `once` and `run` make no API call without repair)
  const caPem = (await makeCA(subDir('installer-pki'), 'cluster-ca')).cert;
  await report.run('installer.sigkill', () => sigkillCheck(caPem));
  await report.run('installer.primary-burst', () => burstCheck(caPem));
}

async function sigkillCheck(
  caPem: string,
): Promise<{ ok: boolean; summary: string; figures: Record<string, unknown> }> {
  const s = settings();
  const base = subDir('installer-kill');
  const newBinSha = sha(readFileSync(pluginBinary));
  const oldBinSha = sha(OLD_BINARY);
  const oldKcSha = sha(OLD_KUBECONFIG);

  // The after-state of a clean install from each starting point, and how many file events it causes.
  const refs: Array<{
    primary: (typeof PRIMARIES)[number];
    before: Map<string, string>;
    after: Map<string, string>;
    events: number;
    ms: number;
  }> = [];
  for (const p of PRIMARIES) {
    const l = layout(join(base, `ref-${p.source}`));
    seedSa(l, caPem);
    copyFileSync(join(oraclesDir(), 'install', p.source), join(l.net, p.name));
    const before = snapshot(l.net);
    const events = countEvents([l.net, l.bin]);
    const r = await run(process.execPath, installerArgs(l, 'once'), { timeoutMs: 60_000 });
    await sleep(100);
    events.close();
    if (r.code !== 0) throw new Error(`installer once failed on a clean ${p.name}: ${r.stderr || r.stdout}`);
    const after = snapshot(l.net);
    refs.push({ primary: p, before, after, events: events.count, ms: r.ms });
  }

  const a = new Asserts();
  let kills = 0;
  let runs = 0;
  let chains = 0;
  let converged = 0;
  const landed: Record<string, number> = { 'before the first rename': 0, 'partly installed': 0, 'fully installed': 0 };
  let tempLeft = 0;
  let torn = 0;
  let chainsWithKills = 0;
  const lanes = s.installerLanes;
  const perLane = Math.ceil(s.installerKills / lanes);

  /** Whether the dir now holds exactly the clean install's after-state. */
  const isConverged = (l: Layout, ref: (typeof refs)[number]): boolean => {
    const final = snapshot(l.net);
    const bin = join(l.bin, 'asm-cni');
    let same = existsSync(bin) && sha(readFileSync(bin)) === newBinSha;
    for (const [name, h] of ref.after)
      if (LOADABLE.test(name) || name === 'asm-cni-kubeconfig') same &&= final.get(name) === h;
    for (const name of final.keys()) if (LOADABLE.test(name)) same &&= ref.after.has(name);
    return same;
  };

  /** The frozen state after a kill: every file the runtime loads is complete and either before or after; so are
   *  the binary and the kubeconfig. Returns whether anything had been renamed into place yet. */
  const checkFrozen = (l: Layout, ref: (typeof refs)[number], kill: number): void => {
    const failuresBefore = a.failures.length;
    const net = snapshot(l.net);
    let wrote = 0;
    for (const [name, h] of net) {
      if (!LOADABLE.test(name)) {
        if (name.includes('asm-cni-tmp')) tempLeft++;
        continue;
      }
      let valid = true;
      try {
        JSON.parse(readFileSync(join(l.net, name), 'utf8'));
      } catch {
        valid = false;
      }
      a.that(valid, `kill ${kill}: ${name} is not valid JSON (torn write)`);
      const isBefore = ref.before.get(name) === h;
      a.that(
        isBefore || ref.after.get(name) === h,
        `kill ${kill}: ${name} is neither the before nor the after version`,
      );
      if (!isBefore) wrote++;
    }
    const kc = join(l.net, 'asm-cni-kubeconfig');
    if (existsSync(kc)) {
      const h = sha(readFileSync(kc));
      a.that(h === ref.after.get('asm-cni-kubeconfig') || h === oldKcSha, `kill ${kill}: the kubeconfig is torn`);
    }
    const bin = join(l.bin, 'asm-cni');
    if (existsSync(bin)) {
      const h = sha(readFileSync(bin));
      a.that(
        h === newBinSha || h === oldBinSha,
        `kill ${kill}: the plugin binary is torn (${statSync(bin).size} bytes)`,
      );
      if (h === newBinSha) wrote++;
    }
    const entryIn = [...net.keys()]
      .filter((n) => LOADABLE.test(n))
      .some((n) => readFileSync(join(l.net, n), 'utf8').includes('"asm-cni"'));
    landed[wrote === 0 ? 'before the first rename' : entryIn ? 'fully installed' : 'partly installed']!++;
    if (a.failures.length > failuresBefore) torn++;
  };

  // Each lane runs chains: fresh dir (alternately a .conf or a .conflist primary, a first install or an upgrade), then
  // `once` runs, each killed at a random file event, until one completes: that run is the restart of the last kill
  // and must leave exactly the clean after-state. Every kill is followed by a restart; chains end converged or fail.
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      let laneKills = 0;
      for (let chain = 0; laneKills < perLane && chain < perLane * 2; chain++) {
        chains++;
        const ref = refs[(chain + lane) % refs.length]!;
        const l = layout(join(base, `lane${lane}-${chain}`));
        seedSa(l, caPem);
        copyFileSync(join(oraclesDir(), 'install', ref.primary.source), join(l.net, ref.primary.name));
        if ((chain + lane) % 4 >= 2) {
          // an upgrade: an older binary and kubeconfig are in place
          writeFileSync(join(l.bin, 'asm-cni'), OLD_BINARY, { mode: 0o755 });
          writeFileSync(join(l.net, 'asm-cni-kubeconfig'), OLD_KUBECONFIG, { mode: 0o600 });
        }
        let killedInChain = 0;
        for (let attempt = 0; attempt < 20; attempt++) {
          const last = laneKills >= perLane; // budget spent: let this one finish
          const target = last ? Infinity : 1 + Math.floor(Math.random() * ref.events);
          const delayMs = Math.random() < 0.5 ? 0 : Math.random() * 3;
          const child = startLogged(process.execPath, installerArgs(l, 'once'), join(l.root, 'installer.log'));
          runs++;
          const ev = countEvents([l.net, l.bin], target, () => {
            setTimeout(() => child.proc.kill('SIGKILL'), delayMs);
          });
          const exit = await child.exited;
          ev.close();
          if (exit.signal === 'SIGKILL') {
            laneKills++;
            killedInChain++;
            checkFrozen(l, ref, ++kills);
            continue;
          }
          if (killedInChain > 0) chainsWithKills++;
          if (
            killedInChain > 0 &&
            a.that(
              exit.code === 0 && isConverged(l, ref),
              `lane ${lane} chain ${chain}: the restart after ${killedInChain} kills did not converge (exit ${exit.code}; see ${l.root})`,
            )
          )
            converged++;
          else if (killedInChain === 0)
            a.that(
              exit.code === 0 && isConverged(l, ref),
              `lane ${lane} chain ${chain}: an unkilled install did not reach the after-state`,
            );
          break;
        }
        if (a.ok) rmSync(l.root, { recursive: true, force: true });
      }
    }),
  );
  a.that(kills >= s.installerKills, `only ${kills} of ${runs} runs were killed mid-write (want ${s.installerKills})`);
  return {
    ok: a.ok,
    summary: a.summary(
      `${kills} SIGKILLs mid-install (${runs} runs in ${chains} chains; kill on file event k of ~${refs.map((r) => r.events).join('/')}): ` +
        `landed ${JSON.stringify(landed)}; ${torn} kills left a torn, invalid or unknown file; ${converged}/${chainsWithKills} chains with kills converged on restart; ${tempLeft} stale temp files seen (never loadable names)`,
    ),
    figures: {
      kills,
      runs,
      chains,
      landed,
      killsLeavingBadFiles: torn,
      chainsWithKills,
      chainsConverged: converged,
      staleTempFiles: tempLeft,
      cleanInstallMs: refs.map((r) => Math.round(r.ms)),
      fileEventsPerInstall: refs.map((r) => r.events),
      failures: a.failures.slice(0, 10),
    },
  };
}

/** JSON with object keys sorted at every level: equal meaning gives equal text, whatever the key order. */
function canon(x: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v;
  return JSON.stringify(sort(x));
}

/** Counts inotify events in `dirs`; calls `onTarget` once at the `target`-th event. */
function countEvents(dirs: string[], target = Infinity, onTarget?: () => void): { count: number; close: () => void } {
  const state = { count: 0, close: () => undefined as void };
  const watchers: FSWatcher[] = dirs.map((d) =>
    watch(d, () => {
      state.count++;
      if (state.count === target) onTarget?.();
    }),
  );
  state.close = () => {
    for (const w of watchers) w.close();
  };
  return state;
}

async function burstCheck(caPem: string): Promise<{ ok: boolean; summary: string; figures: Record<string, unknown> }> {
  const s = settings();
  const l = layout(subDir('installer-burst'));
  seedSa(l, caPem);
  const primaryName = '10-calico.conflist';
  const primaryFile = join(l.net, primaryName);
  const original = JSON.parse(readFileSync(join(oraclesDir(), 'install/list.conflist'), 'utf8'));
  writeFileSync(primaryFile, JSON.stringify(original, null, 2));
  const port = await freePort();
  const logFile = join(l.root, 'installer.log');
  const child = startLogged(process.execPath, installerArgs(l, 'run', port), logFile);
  onCleanup(async () => {
    if (!child.exit) child.proc.kill('SIGTERM');
    await child.exited;
  });
  const readyz = (): Promise<number> =>
    new Promise((resolve) => {
      const req = get({ host: '127.0.0.1', port, path: '/readyz', timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
    });
  if (!(await waitFor(async () => (await readyz()) === 200, 30_000, 100)))
    throw new Error(`installer run never became ready (log ${logFile})`);
  const entries = (): { count: number; last: boolean; gen: unknown; others: string } => {
    try {
      const c = JSON.parse(readFileSync(primaryFile, 'utf8'));
      const plugins: Array<Record<string, unknown>> = c.plugins ?? [];
      const ours = plugins.filter((p) => p.type === 'asm-cni');
      return {
        count: ours.length,
        last: plugins[plugins.length - 1]?.type === 'asm-cni',
        gen: c.soakGeneration,
        others: canon(plugins.filter((p) => p.type !== 'asm-cni')),
      };
    } catch {
      return { count: -1, last: false, gen: undefined, others: '' };
    }
  };
  const writesLogged = (): number => (readFileSync(logFile, 'utf8').match(/plugin entry written/g) ?? []).length;
  const a = new Asserts();
  a.that(entries().count === 1, 'entry not present once before the burst');
  const writesBefore = writesLogged();

  // The burst: the primary rewrites its file without our entry, half by atomic rename, half in place.
  const t0 = performance.now();
  for (let i = 0; i < s.burstWrites; i++) {
    const text = JSON.stringify({ ...original, soakGeneration: i }, null, 2);
    if (i % 2 === 0) {
      writeFileSync(`${primaryFile}.calico-tmp`, text);
      renameSync(`${primaryFile}.calico-tmp`, primaryFile);
    } else {
      writeFileSync(primaryFile, text);
    }
    if (Math.random() < 0.5) await sleep(Math.random() * 10);
  }
  const burstMs = performance.now() - t0;
  const last = s.burstWrites - 1;
  const restored = await waitFor(
    () => {
      const e = entries();
      return e.count === 1 && e.gen === last ? e : undefined;
    },
    10_000,
    20,
  );
  const settleMs = performance.now() - t0 - burstMs;
  a.that(
    !!restored,
    `entry not back with the primary's last content 10 s after the burst: ${JSON.stringify(entries())}`,
  );
  // settled: one second without any file event in the net dir (bounded at 10 s)
  for (let i = 0; i < 10; i++) {
    const probe = countEvents([l.net]);
    await sleep(1000);
    probe.close();
    if (probe.count === 0) break;
  }
  const writesDuring = writesLogged() - writesBefore;

  // Quiet window longer than the resync interval: no writes at all (inotify on the dir, and the installer's own log).
  const quiet = countEvents([l.net]);
  const mtime = statSync(primaryFile).mtimeMs;
  const writesAtQuiet = writesLogged();
  await sleep(s.quietMs);
  quiet.close();
  const loopWrites = writesLogged() - writesAtQuiet;
  const e = entries();
  a.that(
    quiet.count === 0 && statSync(primaryFile).mtimeMs === mtime,
    `${quiet.count} file events in the net dir during the ${s.quietMs} ms quiet window (write loop)`,
  );
  a.that(loopWrites === 0, `${loopWrites} writes logged during the quiet window`);
  a.that(e.count === 1 && e.last, `our entry present ${e.count} times (last: ${e.last})`);
  a.that(e.gen === last && e.others === canon(original.plugins), "the primary's own content was not kept");
  a.that((await readyz()) === 200, 'readyz not 200 after the burst');
  // SIGTERM leaves everything in place
  child.proc.kill('SIGTERM');
  const exit = await Promise.race([child.exited, sleep(15_000).then(() => undefined)]);
  a.that(!!exit, 'installer run did not exit within 15 s of SIGTERM');
  a.that(
    entries().count === 1 && existsSync(join(l.bin, 'asm-cni')) && existsSync(join(l.net, 'asm-cni-kubeconfig')),
    'SIGTERM removed something',
  );
  return {
    ok: a.ok,
    summary: a.summary(
      `${s.burstWrites} primary rewrites in ${Math.round(burstMs)} ms; our entry back with the primary's last content ${Math.round(settleMs)} ms after the burst; ` +
        `installer wrote ${writesDuring} times during the burst, ${loopWrites} writes and ${quiet.count} file events in the ${s.quietMs / 1000}s after`,
    ),
    figures: {
      burstWrites: s.burstWrites,
      burstMs: Math.round(burstMs),
      settleMs: Math.round(settleMs),
      installerWritesDuringBurst: writesDuring,
      quietWindowMs: s.quietMs,
      quietEvents: quiet.count,
      quietWrites: loopWrites,
      sigtermExit: exit,
    },
  };
}
