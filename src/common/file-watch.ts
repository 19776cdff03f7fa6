// Noticing that mounted files changed: Secret and ConfigMap volumes are updated by kubelet's atomic writer, which
// writes a new timestamped directory and swaps the `..data` symlink (the files themselves are symlinks through it),
// so the event to catch is a rename in the watched file's directory, not a write to the file. cert-manager's csi
// driver and plain `cp` write in place. Watching the directories (the file's own and, when it is a symlink, its
// target's) catches all of these. Only events about the watched names or the atomic writer's `..`-entries count, so
// a busy neighbour (a log file written next to the config) cannot keep the debounce from ever firing; events come in
// bursts, so they are debounced, but never for longer than maxWaitMs; and a slow poll backs the watch up on
// filesystems where inotify says nothing (some network and overlay mounts). The callback decides whether anything
// really changed (by content), so a spurious event costs a few small reads.
import { watch, realpathSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface WatchOptions {
  files: string[];
  onChange: () => void;
  /** Quiet time after the last event before onChange runs (ms). */
  debounceMs?: number;
  /** Longest a burst of events may postpone onChange (ms). */
  maxWaitMs?: number;
  /** Unconditional re-check interval (ms); 0 disables polling. */
  pollMs?: number;
  /** Told about a directory that cannot be watched (polling still covers it). */
  onWatchError?: (dir: string, err: Error) => void;
}

export interface FileWatch {
  close(): void;
}

export const DEFAULT_DEBOUNCE_MS = 250;
export const DEFAULT_MAX_WAIT_MS = 1_000;
export const DEFAULT_POLL_MS = 30_000;

/** Each directory to watch, with the names in it that matter. */
function directoriesOf(files: string[]): Map<string, Set<string>> {
  const dirs = new Map<string, Set<string>>();
  const add = (path: string) => {
    const dir = dirname(path);
    if (!dirs.has(dir)) dirs.set(dir, new Set());
    dirs.get(dir)!.add(basename(path));
  };
  for (const file of files) {
    add(file);
    try {
      add(realpathSync(file));
    } catch {
      // The file is missing right now; its own directory is still watched.
    }
  }
  return dirs;
}

/** kubelet's atomic writer: `..data`, `..data_tmp` and the timestamped `..2024_...` directories. */
const relevant = (names: Set<string>, filename: string | null): boolean =>
  filename === null || names.has(filename) || filename.startsWith('..');

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
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of directoriesOf(opts.files)) {
    try {
      const w = watch(dir, { persistent: false }, (_event, filename) => {
        if (relevant(names, filename)) schedule();
      });
      w.on('error', (err) => opts.onWatchError?.(dir, err));
      watchers.push(w);
    } catch (err) {
      opts.onWatchError?.(dir, err as Error);
    }
  }
  const poll = pollMs > 0 ? setInterval(schedule, pollMs) : undefined;
  poll?.unref();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
