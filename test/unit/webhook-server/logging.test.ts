// The webhook's logger: the batched stdout destination loses no line (on exit, and on a quiet process through the
// periodic flush).
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { LOG_FLUSH_MS } from '../../../src/common/logging.js';
import { repoRoot, tsChild } from './helpers.js';

const burst = path.join(repoRoot, 'test/unit/webhook-server/fixtures/log-burst.ts');

/** A hung test, not a slow machine: no periodic flush at all within a minute. */
const HANG_MS = 60_000;

/**
 * Runs the fixture. In "wait" mode the child lives until its stdin closes, which happens once its first output was
 * read (or, should nothing ever come, after HANG_MS): output seen before that was written while it still ran.
 */
function runBurst(count: number, mode: 'exit' | 'wait', onFirstData?: (out: string) => void) {
  const { execArgv, env } = tsChild({ ...process.env, NODE_ENV: 'production' });
  const child = spawn(process.execPath, [...execArgv, burst, String(count), mode], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // closing the stdin of a child that already exited
  const hang = setTimeout(() => child.stdin.end(), HANG_MS);
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    const first = out === '';
    out += c.toString();
    if (first) {
      onFirstData?.(out);
      clearTimeout(hang);
      child.stdin.end();
    }
  });
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise<{ code: number | null; lines: Array<Record<string, unknown>>; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(hang);
      resolve({
        code,
        stderr: err,
        lines: out
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      });
    }),
  );
}

t.test('batched stdout: every line is written when the process exits without flushing', async (t) => {
  const r = await runBurst(5000, 'exit');
  t.equal(r.code, 0, r.stderr);
  t.equal(r.lines.length, 5000, 'no line lost');
  t.same(r.lines.map((l) => l.uid).slice(-2), ['u-4998', 'u-4999'], 'in order, up to the last');
  t.match(r.lines[0], {
    level: 'info',
    component: 'asm-cni-webhook',
    msg: 'review',
    time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
  });
});

t.test('batched stdout: a few lines on a quiet process appear through the periodic flush', async (t) => {
  let seen = '';
  const r = await runBurst(3, 'wait', (out) => (seen = out));
  t.equal(r.lines.length, 3);
  t.match(seen, /"uid":"u-0"/, `written while the process still ran (flush every ${LOG_FLUSH_MS} ms)`);
});
