// Noticing that mounted files changed: Secret and ConfigMap volumes are updated by kubelet's atomic writer, which
// writes a new timestamped directory and swaps the `..data` symlink (the files themselves are symlinks through it),
// so the event to catch is a rename in the watched file's directory, not a write to the file. cert-manager's csi
// driver and plain `cp` write in place. Watching the directories (the file's own and, when it is a symlink, its
// target's) catches all of these; events come in bursts, so they are debounced; and a slow poll backs the watch up on
// filesystems where inotify says nothing (some network and overlay mounts). The callback decides whether anything
// really changed (by content), so a spurious event costs a few small reads.
import { watch, realpathSync, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

export interface WatchOptions {
  files: string[];
  onChange: () => void;
  /** Quiet time after the last event before onChange runs (ms). */
  debounceMs?: number;
  /** Unconditional re-check interval (ms); 0 disables polling. */
  pollMs?: number;
  /** Told about a directory that cannot be watched (polling still covers it). */
  onWatchError?: (dir: string, err: Error) => void;
}

export interface FileWatch {
  close(): void;
}

export const DEFAULT_DEBOUNCE_MS = 250;
export const DEFAULT_POLL_MS = 30_000;

function directoriesOf(files: string[]): string[] {
  const dirs = new Set<string>();
  for (const file of files) {
    dirs.add(dirname(file));
    try {
      dirs.add(dirname(realpathSync(file)));
    } catch {
      // The file is missing right now; its own directory is still watched.
    }
  }
  return [...dirs];
}

export function watchFiles(opts: WatchOptions): FileWatch {
  const debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    timer = undefined;
    if (!closed) opts.onChange();
  };
  const schedule = () => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of directoriesOf(opts.files)) {
    try {
      const w = watch(dir, { persistent: false }, schedule);
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
