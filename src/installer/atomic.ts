// Crash-safe file writes: the runtime (and a racing installer) only ever sees the old bytes or the new bytes.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Extension of our temp files: not one the CNI loader reads, and a dotfile, so a half-written file is never loaded. */
export const TEMP_SUFFIX = '.asm-cni-tmp';

export function isTempFile(fileName: string): boolean {
  return fileName.startsWith('.') && fileName.endsWith(TEMP_SUFFIX);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `target` via a temp file in the same directory: write, fsync, chmod, rename, fsync the directory.
 * A kill at any point leaves either the old file or the new one, plus at worst a stale temp file.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(target);
  const temp = path.join(
    dir,
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`,
  );
  const handle = await fs.open(temp, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.chmod(mode); // the umask may have narrowed the create mode
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, target);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/** Mode of a directory the installer creates: what /opt/cni/bin and /etc/cni/net.d have on a node (root-owned). */
export const NODE_DIR_MODE = 0o755;

/**
 * Creates `dir` and its missing parents with `mode` (exactly: the umask does not narrow it). Directories that exist
 * keep their mode: they are the node's, not ours.
 */
export async function ensureDir(dir: string, mode = NODE_DIR_MODE): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true, mode });
  if (first === undefined) return;
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    await fs.chmod(d, mode);
    if (d === path.resolve(first)) break;
  }
}

/** The file's bytes, or null when it does not exist. */
export async function readIfExists(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes only when the bytes (or the mode) differ. Returns true when it wrote. */
export async function writeIfChanged(target: string, data: string | Buffer, mode = 0o644): Promise<boolean> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const current = await readIfExists(target);
  if (current !== null && current.equals(bytes)) {
    const stat = await fs.stat(target);
    if ((stat.mode & 0o777) === mode) return false;
  }
  await writeFileAtomic(target, bytes, mode);
  return true;
}

/**
 * The file a write to `file` must replace so that a symbolic link stays a link: the link's final target, or `file`
 * itself when it is not a link (or does not exist). A link whose target this container cannot see is an error naming
 * both: replacing the link with a file would hide every later change the primary CNI makes to the target.
 */
export async function resolveWriteTarget(file: string): Promise<string> {
  const st = await fs.lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (st === null || !st.isSymbolicLink()) return file;
  try {
    return await fs.realpath(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new Error(
      `${file} is a symbolic link to ${await fs.readlink(file)}, which does not exist in this container: ` +
        'mount the directory it points into, or replace the link with the file',
      { cause: err },
    );
  }
}

/**
 * Replaces the bytes of a config file the node owns, atomically, only when they differ: through a symbolic link to its
 * target (the link stays), keeping the file's mode (`newMode` for a new file). Returns true when it wrote.
 */
export async function replaceContent(file: string, data: string | Buffer, newMode = 0o644): Promise<boolean> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const target = await resolveWriteTarget(file);
  const current = await readIfExists(target);
  if (current !== null && current.equals(bytes)) return false;
  const mode = current === null ? newMode : (await fs.stat(target)).mode & 0o7777;
  await writeFileAtomic(target, bytes, mode);
  return true;
}

/** Removes a file, ignoring one that is already gone. Returns true when it removed something. */
export async function removeIfExists(file: string): Promise<boolean> {
  try {
    await fs.unlink(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Removes our temp files older than `maxAgeMs` (left by a killed writer); younger ones may belong to a live racer. */
export async function removeStaleTempFiles(dir: string, maxAgeMs: number, now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(dir)) {
    if (!isTempFile(name)) continue;
    const file = path.join(dir, name);
    try {
      const stat = await fs.stat(file);
      if (now - stat.mtimeMs >= maxAgeMs && (await removeIfExists(file))) removed.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}
