// npm run soak: runs the reliability suites one after another, prints one line per check, writes bench/soak.json,
// and exits non-zero when any check failed. Everything it creates is removed at the end, also on failure or signal.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { cleanupAll } from './lib/proc.js';
import { Report } from './lib/report.js';
import { repoRoot } from './lib/reviews.js';
import { settings } from './settings.js';
import { webhookLoadSuite } from './suites/webhook-load.js';
import { webhookAbuseSuite } from './suites/webhook-abuse.js';
import { webhookLargeSuite } from './suites/webhook-large.js';
import { webhookTlsSuite } from './suites/webhook-tls.js';
import { pluginSuite } from './suites/plugin.js';
import { installerSuite } from './suites/installer.js';

const suites: Record<string, (r: Report) => Promise<void>> = {
  'webhook-load': webhookLoadSuite,
  'webhook-abuse': webhookAbuseSuite,
  'webhook-large': webhookLargeSuite,
  'webhook-tls': webhookTlsSuite,
  plugin: pluginSuite,
  installer: installerSuite,
};

async function main(): Promise<number> {
  const s = settings();
  const report = new Report();
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      console.error(`soak: ${sig}, cleaning up`);
      void cleanupAll().then(() => process.exit(130));
    });
  }
  const started = performance.now();
  const loadAtStart = loadavg().map((x) => Math.round(x * 10) / 10);
  for (const name of s.suites) {
    if (interrupted) break;
    console.log(`soak ==== suite ${name}`);
    const t0 = performance.now();
    try {
      await suites[name]!(report);
    } catch (err) {
      if (process.env.SOAK_DEBUG && err instanceof Error) console.error(err.stack);
      report.add(`${name}`, false, `suite aborted: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await cleanupAll();
    }
    console.log(`soak ==== suite ${name} done in ${Math.round((performance.now() - t0) / 1000)}s`);
  }
  const failed = report.failed;
  const out = {
    tool: 'npm run soak',
    startedAt: report.startedAt.toISOString(),
    seconds: Math.round((performance.now() - started) / 1000),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      loadavgAtStart: loadAtStart,
      loadavgAtEnd: loadavg().map((x) => Math.round(x * 10) / 10),
    },
    settings: s,
    ok: failed.length === 0,
    passed: report.checks.filter((c) => c.ok === true).length,
    failed: failed.length,
    skipped: report.checks.filter((c) => c.ok === null).length,
    checks: report.checks,
  };
  const file = process.env.SOAK_OUT ?? join(repoRoot, 'bench/soak.json');
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(
    `soak: ${out.passed} passed, ${out.failed} failed, ${out.skipped} skipped in ${out.seconds}s; results in ${file}`,
  );
  for (const c of failed) console.log(`soak FAILED ${c.id}: ${c.summary}`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    console.error(err);
    await cleanupAll();
    process.exit(2);
  },
);
