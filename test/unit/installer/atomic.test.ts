import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {
  isTempFile,
  readIfExists,
  removeIfExists,
  removeStaleTempFiles,
  replaceContent,
  resolveWriteTarget,
  writeFileAtomic,
  writeIfChanged,
} from '../../../src/installer/atomic.js';
import { sleep, tempDir } from './helpers.js';

t.test('writeFileAtomic writes the bytes with the mode and leaves no temp file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'kc');
  await writeFileAtomic(file, 'secret', 0o600);
  t.equal(await fs.readFile(file, 'utf8'), 'secret');
  t.equal((await fs.stat(file)).mode & 0o777, 0o600);
  await writeFileAtomic(file, Buffer.from('again'), 0o644);
  t.equal(await fs.readFile(file, 'utf8'), 'again');
  t.equal((await fs.stat(file)).mode & 0o777, 0o644);
  t.same(await fs.readdir(dir), ['kc']);
});

t.test('a failed rename removes the temp file and reports the error', async (t) => {
  const dir = tempDir(t);
  await fs.mkdir(path.join(dir, 'target-is-a-dir'));
  await fs.writeFile(path.join(dir, 'target-is-a-dir', 'x'), '');
  await t.rejects(writeFileAtomic(path.join(dir, 'target-is-a-dir'), 'x'));
  t.same((await fs.readdir(dir)).filter(isTempFile), []);
  await t.rejects(writeFileAtomic(path.join(dir, 'missing-dir', 'f'), 'x'), { code: 'ENOENT' });
});

t.test('writeIfChanged compares bytes and mode before writing', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'f');
  t.equal(await writeIfChanged(file, 'one'), true);
  const before = (await fs.stat(file)).ino;
  t.equal(await writeIfChanged(file, 'one'), false, 'same bytes: no write');
  t.equal((await fs.stat(file)).ino, before, 'the file was not replaced');
  t.equal(await writeIfChanged(file, 'one', 0o600), true, 'mode differs: rewrite');
  t.equal((await fs.stat(file)).mode & 0o777, 0o600);
  t.equal(await writeIfChanged(file, Buffer.from('two'), 0o600), true);
  t.equal(await fs.readFile(file, 'utf8'), 'two');
});

t.test('readIfExists, removeIfExists', async (t) => {
  const dir = tempDir(t);
  t.equal(await readIfExists(path.join(dir, 'none')), null);
  await t.rejects(readIfExists(dir), { code: 'EISDIR' });
  t.equal(await removeIfExists(path.join(dir, 'none')), false);
  await fs.writeFile(path.join(dir, 'x'), '');
  t.equal(await removeIfExists(path.join(dir, 'x')), true);
  await t.rejects(removeIfExists(dir));
});

t.test('stale temp files are removed, fresh ones (a live racer) and others kept', async (t) => {
  const dir = tempDir(t);
  const stale = '.10-x.conflist.1.aaaa.asm-cni-tmp';
  const fresh = '.10-x.conflist.2.bbbb.asm-cni-tmp';
  for (const n of [stale, fresh, 'other.tmp', '10-x.conflist']) await fs.writeFile(path.join(dir, n), '');
  const old = new Date(Date.now() - 120_000);
  await fs.utimes(path.join(dir, stale), old, old);
  t.same(await removeStaleTempFiles(dir, 60_000), [stale]);
  t.same((await fs.readdir(dir)).sort(), [fresh, '10-x.conflist', 'other.tmp'].sort());
});

t.test('SIGKILL in the middle of writes never leaves a torn file', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, '10-x.conflist');
  const size = 4 * 1024 * 1024;
  await fs.writeFile(target, Buffer.alloc(size, 'a'));
  const child = path.join(import.meta.dirname, 'atomic-writer.child.ts');
  for (let round = 0; round < 4; round++) {
    const proc = spawn(process.execPath, [...process.execArgv, child, target, String(size)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => proc.stdout.once('data', () => resolve()));
    await sleep(20 + round * 53);
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    t.equal(await exited, null, `round ${round}: killed`);
    const bytes = await fs.readFile(target);
    t.equal(bytes.length, size, `round ${round}: full length`);
    const first = bytes[0]!;
    t.ok(
      bytes.every((b) => b === first),
      `round ${round}: one whole version (${String.fromCharCode(first)})`,
    );
  }
  // what a killed writer leaves behind is a temp file the runtime never reads, cleaned up later
  const leftovers = (await fs.readdir(dir)).filter((n) => n !== '10-x.conflist');
  t.ok(leftovers.every(isTempFile), `only temp files left: ${leftovers.join(', ')}`);
  await removeStaleTempFiles(dir, 0);
  t.same(await fs.readdir(dir), ['10-x.conflist']);
});

t.test('resolveWriteTarget and replaceContent: links are written through, everything else in place', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'a.conflist');
  t.equal(await resolveWriteTarget(file), file, 'a missing file is written where it is named');
  t.equal(await replaceContent(file, 'one\n', 0o640), true);
  t.equal((await fs.stat(file)).mode & 0o777, 0o640, 'a new file gets the given mode');
  t.equal(await replaceContent(file, 'one\n'), false, 'same bytes: no write');
  await fs.chmod(file, 0o600);
  t.equal(await replaceContent(file, 'two\n'), true);
  t.equal((await fs.stat(file)).mode & 0o777, 0o600, 'an existing file keeps its mode');
  const link = path.join(dir, 'link.conflist');
  await fs.symlink('a.conflist', link);
  t.equal(await resolveWriteTarget(link), await fs.realpath(file));
  await replaceContent(link, 'three\n');
  t.ok((await fs.lstat(link)).isSymbolicLink(), 'the link stays');
  t.equal(await fs.readFile(file, 'utf8'), 'three\n');
  await fs.symlink('loop-b', path.join(dir, 'loop-a'));
  await fs.symlink('loop-a', path.join(dir, 'loop-b'));
  await t.rejects(resolveWriteTarget(path.join(dir, 'loop-a')), { code: 'ELOOP' }, 'other errors pass through');
  await t.rejects(resolveWriteTarget(path.join(file, 'below-a-file')), { code: 'ENOTDIR' });
});
