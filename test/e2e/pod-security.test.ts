// Every pod the project ships passes the PodSecurity level docs/install.md claims for it, judged by the real
// kube-apiserver's PodSecurity admission (not a YAML scan). The claims are the `test:pod-security` table of
// docs/install.md; the pods are the templates of every workload that kustomize renders from manifests/ (the default,
// each overlay and each component) and that the chart renders (defaults, the node audit, uninstall mode). Each pod is
// created with a server-side dry run: admitted in a namespace enforcing its claimed level and in the shipped
// `asm-cni` Namespace (its labels as shipped), refused, naming PodSecurity, where the table says it is refused.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startControlPlane } from '../harness/control-plane.js';
import { podSecurityClaims, type PodSecurityLevel } from '../harness/doc-blocks.js';
import {
  helmPath,
  kustomizeCommand,
  kustomizeVariants,
  objectKey,
  parseObjects,
  renderChart,
} from '../harness/helm.js';
import type { K8sObject } from '../harness/manifests.js';
import { runOk } from '../harness/proc.js';
import { requirePrereq } from '../harness/prereq.js';
import { toolchainMissing } from '../harness/toolchain.js';

const WORKLOAD_KINDS = ['Deployment', 'DaemonSet', 'StatefulSet', 'Job', 'CronJob', 'ReplicaSet', 'Pod'];

/** The pod a workload's controller would create: its template's metadata and spec. */
function podOf(w: K8sObject, name: string): object {
  const template = w.kind === 'Pod' ? w : w.kind === 'CronJob' ? w.spec.jobTemplate.spec.template : w.spec.template;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name }, spec: template.spec };
}

async function main(t: Test): Promise<void> {
  const missing = toolchainMissing();
  if (!requirePrereq(t, !missing, missing ?? '')) return;
  if (!requirePrereq(t, existsSync(helmPath()), 'helm is not built (run bash test/setup/helm.sh)')) return;
  const kustomize = kustomizeCommand();
  if (!requirePrereq(t, !!kustomize, 'neither kubectl nor kustomize is built (bash test/setup/helm.sh)')) return;

  const claims = podSecurityClaims();
  t.ok(claims.length > 0, 'docs/install.md claims PodSecurity levels');

  // Everything shipped, rendered.
  const work = mkdtempSync(join(tmpdir(), 'asm-cni-pod-security-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const variants: Record<string, K8sObject[]> = {};
  for (const [name, dir] of Object.entries(kustomizeVariants(work))) {
    variants[`kustomize ${name}`] = parseObjects(await runOk(kustomize!.cmd, kustomize!.args(dir)));
  }
  variants['chart defaults'] = await renderChart();
  variants['chart installer.audit.enabled'] = await renderChart(['--set', 'installer.audit.enabled=true']);
  variants['chart uninstall'] = await renderChart(['--set', 'uninstall=true']);

  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  t.teardown(() => {
    if (!t.passing()) t.comment(cp.logs());
  });

  // One namespace per level, and the shipped Namespace's labels on one more; each with every ServiceAccount a pod names.
  const shippedNs = variants['kustomize default']!.find((o) => o.kind === 'Namespace');
  t.ok(shippedNs, 'manifests/ ship a Namespace');
  const enforce = (l: string) => ({
    'pod-security.kubernetes.io/enforce': l,
    'pod-security.kubernetes.io/enforce-version': 'latest',
  });
  const levelNs: Record<string, string> = {};
  for (const l of ['privileged', 'baseline', 'restricted'] as PodSecurityLevel[])
    levelNs[l] = await cp.namespace(`pss-${l}`, { labels: enforce(l) });
  const shippedLabels = (shippedNs?.metadata.labels ?? {}) as Record<string, string>;
  const asShipped = await cp.namespace('pss-shipped', { labels: shippedLabels });
  const accounts = new Set(
    Object.values(variants)
      .flat()
      .filter((o) => WORKLOAD_KINDS.includes(o.kind))
      .map((o) => (podOf(o, 'x') as { spec: { serviceAccountName?: string } }).spec.serviceAccountName)
      .filter((sa): sa is string => !!sa),
  );
  for (const ns of [...Object.values(levelNs), asShipped])
    for (const sa of accounts) await cp.kubectlOk(['create', 'serviceaccount', sa, '-n', ns]);

  let n = 0;
  const dryRun = (ns: string, pod: object) =>
    cp.kubectl(['create', '-n', ns, '-f', '-', '--dry-run=server', '-o', 'name'], { input: JSON.stringify(pod) });

  for (const [variant, objects] of Object.entries(variants)) {
    await t.test(variant, async (t) => {
      const workloads = objects.filter((o) => WORKLOAD_KINDS.includes(o.kind));
      t.ok(workloads.length > 0, 'it ships workloads');
      for (const w of workloads) {
        const claim = claims.find((c) => c.kind === w.kind && c.name === w.metadata.name);
        t.ok(claim, `${objectKey(w)} has a row in the pod-security table of docs/install.md`);
        if (!claim) continue;
        const pod = podOf(w, `pss-${++n}`);
        const at = await dryRun(levelNs[claim.passes]!, pod);
        t.equal(
          at.code,
          0,
          `${objectKey(w)}: admitted where ${claim.passes} is enforced${at.code ? `: ${at.stderr}` : ''}`,
        );
        const shipped = await dryRun(asShipped, pod);
        t.equal(
          shipped.code,
          0,
          `${objectKey(w)}: admitted in the shipped Namespace${shipped.code ? `: ${shipped.stderr}` : ''}`,
        );
        if (!claim.refusedAt) continue;
        const refused = await dryRun(levelNs[claim.refusedAt]!, pod);
        t.not(refused.code, 0, `${objectKey(w)}: refused where ${claim.refusedAt} is enforced`);
        t.match(
          refused.stderr,
          new RegExp(`violates PodSecurity "${claim.refusedAt}:latest"`),
          'by PodSecurity, naming the level',
        );
      }
    });
  }
}

t.test('PodSecurity: every shipped pod passes the level docs/install.md claims, by the real admission', main);
