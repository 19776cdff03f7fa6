// A directory laid out like a kubelet Secret or ConfigMap volume, updated the way the kubelet's atomic writer does it.
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Kubernetes' atomic writer layout for a Secret or ConfigMap volume: files are symlinks through `..data`, which
 * points at a timestamped directory; an update writes a new directory and renames a new `..data` over the old.
 */
export class AtomicDir {
  private n = 0;
  private current: string | undefined;
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }
  file(name: string): string {
    return path.join(this.dir, name);
  }
  write(files: Record<string, string | Buffer>): void {
    const version = `..2026_01_01_00_00_0${this.n++}.${process.pid}`;
    const vdir = path.join(this.dir, version);
    mkdirSync(vdir);
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(vdir, name), content);
    const tmp = path.join(this.dir, '..data_tmp');
    symlinkSync(version, tmp);
    renameSync(tmp, path.join(this.dir, '..data'));
    for (const name of Object.keys(files)) {
      const link = path.join(this.dir, name);
      if (!existsSync(link)) symlinkSync(path.join('..data', name), link);
    }
    if (this.current) rmSync(path.join(this.dir, this.current), { recursive: true, force: true });
    this.current = version;
  }
}
