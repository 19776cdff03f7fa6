// A serving-certificate directory laid out the way the kubelet mounts a Secret (tls.crt -> ..data/tls.crt,
// ..data -> ..<timestamp>), so rotation can be done exactly as the kubelet does it (one atomic symlink swap) or as an
// admin or a hostPath setup does it (the files rewritten in place, key first, so the server also sees a moment where
// key and certificate do not match and must keep the old pair until they do).
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyPair } from '../../test/harness/certs.js';

export class SecretDir {
  private generation = 0;
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  get certFile(): string {
    return join(this.dir, 'tls.crt');
  }
  get keyFile(): string {
    return join(this.dir, 'tls.key');
  }

  /** First population, or a kubelet-style update: a new timestamped dir, then an atomic swap of ..data. */
  swap(pair: KeyPair, ca: string): void {
    const name = `..soak_${Date.now()}_${this.generation++}`;
    const data = join(this.dir, name);
    mkdirSync(data);
    writeFileSync(join(data, 'tls.crt'), pair.cert);
    writeFileSync(join(data, 'tls.key'), pair.key, { mode: 0o600 });
    writeFileSync(join(data, 'ca.crt'), ca);
    let old: string | undefined;
    try {
      old = readlinkSync(join(this.dir, '..data'));
    } catch {
      /* first time */
    }
    symlinkSync(name, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) {
      try {
        symlinkSync(join('..data', f), join(this.dir, f));
      } catch {
        /* already linked */
      }
    }
    if (old) rmSync(join(this.dir, old), { recursive: true, force: true });
  }

  /** In-place rewrite through the links: key first, then certificate (the non-atomic way). */
  rewriteInPlace(pair: KeyPair): void {
    writeFileSync(this.keyFile, pair.key);
    writeFileSync(this.certFile, pair.cert);
  }
}
