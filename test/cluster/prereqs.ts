// What every cluster-tier file needs before it starts a cluster; locally a missing piece skips with the reason, under
// CI=true it fails (requirePrereq).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { helmPath } from '../harness/helm.js';
import { insideNodeNamespace } from '../harness/node.js';
import { oraclesDir } from '../harness/oracles.js';
import { pluginBinary } from '../harness/pod-redirect.js';
import { isRoot, requirePrereq } from '../harness/prereq.js';
import { binPath, toolchainMissing } from '../harness/toolchain.js';

export function clusterPrereqs(t: Test): boolean {
  const missing =
    toolchainMissing() ??
    (['kubelet', 'kube-scheduler', 'kube-controller-manager', 'kube-proxy'] as const)
      .filter((b) => !existsSync(binPath(b)))
      .map((b) => `${b} not built (bash test/e2e/toolchain.sh)`)[0];
  return (
    requirePrereq(t, isRoot(), 'containerd, kubelet and network namespaces need root') &&
    requirePrereq(t, insideNodeNamespace(), 'run through test/cluster/run.sh (it makes the private namespaces)') &&
    requirePrereq(
      t,
      !!process.env.ASM_IMAGE_REF,
      'no image built from the Dockerfile (test/cluster/run.sh builds it)',
    ) &&
    requirePrereq(t, missing === undefined, missing ?? '') &&
    requirePrereq(t, existsSync(helmPath()), 'helm is not built (bash test/setup/helm.sh)') &&
    requirePrereq(
      t,
      existsSync(join(oraclesDir, 'inject')),
      `Istio's injection goldens not in ${oraclesDir} (ASM_ORACLES)`,
    ) &&
    requirePrereq(t, existsSync(pluginBinary), `${pluginBinary} not built (npm run build): asm-cni render`)
  );
}
