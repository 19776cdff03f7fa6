// Where test/e2e/toolchain.sh put the Kubernetes binaries (run.sh exports ASM_K8S_BIN).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's top directory, found upwards from this file (also when bench runs a compiled copy of it). */
export const repoRoot = ((): string => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'cni', 'go.mod'))) return dir;
    if (dirname(dir) === dir) throw new Error(`repository root not found above ${import.meta.url}`);
  }
})();

let cached: string | undefined;
export function binDir(): string {
  if (cached) return cached;
  cached =
    process.env.ASM_K8S_BIN ||
    execFileSync('bash', [join(repoRoot, 'test/e2e/toolchain.sh'), '--bin-dir'], { encoding: 'utf8' }).trim();
  return cached;
}

export type K8sBinary =
  'etcd' | 'kube-apiserver' | 'kubectl' | 'kubelet' | 'kube-scheduler' | 'kube-controller-manager' | 'kube-proxy';
export const binPath = (name: K8sBinary): string => join(binDir(), name);

/** Undefined when the toolchain is complete, else what is missing. */
export function toolchainMissing(): string | undefined {
  const missing = (['kube-apiserver', 'kubectl', 'etcd'] as const).filter((b) => !existsSync(binPath(b)));
  return missing.length ? `${missing.join(', ')} not built in ${binDir()} (run bash test/e2e/toolchain.sh)` : undefined;
}
