// Noticing that mounted files changed: Secret and ConfigMap volumes are updated by kubelet's atomic writer, which
// writes a new timestamped directory and swaps the `..data` symlink (the files themselves are symlinks through it),
// so the event to catch is a rename in the watched file's directory, not a write to the file. cert-manager's csi
// driver and plain `cp` write in place. Watching the directories (the file's own and, when it is a symlink, its
// target's) catches all of these. Only events about the watched names or the atomic writer's `..`-entries count, so
// a busy neighbour (a log file written next to the config) cannot keep the debounce from ever firing; events come in
// bursts, so they are debounced, but never for longer than maxWaitMs; and a slow poll backs the watch up on
// filesystems where inotify says nothing (some network and overlay mounts). The callback decides whether anything
// really changed (by content), so a spurious event costs a few small reads.
// Whole directories can be watched too (the installer's CNI net dir: any file there may be the primary config);
// a directory that does not exist yet, or whose watch failed, is watched again on rewatch().
import { watch, realpathSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface WatchOptions {
  /** Files whose changes count (their directories are watched, and their symlink targets' directories). */
  files?: string[];
  /** Directories in which any change counts. */
  dirs?: string[];
  onChange: () => void;
  /** Quiet time after the last event before onChange runs (ms). */
  debounceMs?: number;
  /** Longest a burst of events may postpone onChange (ms). */
  maxWaitMs?: number;
  /** Unconditional re-check interval (ms); 0 disables polling. */
  pollMs?: number;
  /** Told about a directory that cannot be watched (polling or rewatch() still covers it). */
  onWatchError?: (dir: string, err: Error) => void;
}

export interface FileWatch {
  /** Watches again the directories that could not be watched (missing then, or their watch failed since). */
  rewatch(): void;
  close(): void;
}

export const DEFAULT_DEBOUNCE_MS = 250;
export const DEFAULT_MAX_WAIT_MS = 1_000;
export const DEFAULT_POLL_MS = 30_000;

/** Every name in the directory counts. */
const ALL = null;

/** Each directory to watch, with the names in it that matter (ALL for a watched directory). */
function directoriesOf(files: string[], dirs: string[]): Map<string, Set<string> | typeof ALL> {
  const out = new Map<string, Set<string> | typeof ALL>();
  const add = (path: string) => {
    const dir = dirname(path);
    const names = out.get(dir);
    if (names === ALL) return;
    if (names === undefined) out.set(dir, new Set([basename(path)]));
    else names.add(basename(path));
  };
  for (const file of files) {
    add(file);
    try {
      add(realpathSync(file));
    } catch {
      // The file is missing right now; its own directory is still watched.
    }
  }
  for (const dir of dirs) out.set(dir, ALL);
  return out;
}

/** A watched name, or kubelet's atomic writer: `..data`, `..data_tmp` and the timestamped `..2024_...` directories. */
export const relevant = (names: Set<string> | typeof ALL, filename: string | null): boolean =>
  names === ALL || filename === null || names.has(filename) || filename.startsWith('..');

export function watchFiles(opts: WatchOptions): FileWatch {
  const debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  let timer: NodeJS.Timeout | undefined;
  let burstStart = 0;
  let closed = false;
  const fire = () => {
    timer = undefined;
    if (!closed) opts.onChange();
  };
  const schedule = () => {
    if (closed) return;
    const now = Date.now();
    if (timer) clearTimeout(timer);
    else burstStart = now;
    timer = setTimeout(fire, Math.max(0, Math.min(debounceMs, burstStart + maxWaitMs - now)));
    timer.unref();
  };
  const targets = directoriesOf(opts.files ?? [], opts.dirs ?? []);
  const watchers = new Map<string, FSWatcher>();
  const rewatch = () => {
    for (const [dir, names] of targets) {
      if (closed || watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          if (relevant(names, filename)) schedule();
        });
        w.on('error', (err) => {
          w.close();
          watchers.delete(dir); // watched again on the next rewatch() (the directory may be recreated)
          opts.onWatchError?.(dir, err);
          schedule();
        });
        watchers.set(dir, w);
      } catch (err) {
        opts.onWatchError?.(dir, err as Error);
      }
    }
  };
  rewatch();
  const poll = pollMs > 0 ? setInterval(schedule, pollMs) : undefined;
  poll?.unref();
  return {
    rewatch,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
