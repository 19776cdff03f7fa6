// What the webhook Deployment in manifests/ gives the process: NODE_OPTIONS (heap sizing) and the memory limit.
// The soak runs the webhook with the same options and holds its RSS to the same limit, so "memory stays bounded"
// means "would not be OOM-killed in the cluster".
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './reviews.js';

export interface DeploymentLimits {
  nodeOptions?: string;
  /** glibc malloc tuning of the container (how much freed memory stays in the process) */
  glibcTunables?: string;
  memoryLimitMiB?: number;
  source: string;
}

function mib(q: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit: Record<string, number> = {
    Ki: 1 / 1024,
    Mi: 1,
    Gi: 1024,
    K: 1000 / 1048576,
    M: 1e6 / 1048576,
    G: 1e9 / 1048576,
  };
  return m[2] ? n * unit[m[2]]! : n / 1048576;
}

export function webhookDeploymentLimits(): DeploymentLimits {
  const source = join(repoRoot, 'manifests/base/webhook-deployment.yaml');
  try {
    for (const d of parseAllDocuments(readFileSync(source, 'utf8'))) {
      const doc = d.toJS();
      if (doc?.kind !== 'Deployment') continue;
      const c =
        (doc.spec?.template?.spec?.containers ?? []).find((x: any) => String(x?.command ?? '').includes('webhook')) ??
        doc.spec?.template?.spec?.containers?.[0];
      if (!c) continue;
      const env = (name: string): string | undefined => (c.env ?? []).find((e: any) => e?.name === name)?.value;
      const limit = c.resources?.limits?.memory;
      return {
        nodeOptions: env('NODE_OPTIONS'),
        glibcTunables: env('GLIBC_TUNABLES'),
        memoryLimitMiB: limit ? mib(String(limit)) : undefined,
        source,
      };
    }
  } catch {
    /* no manifests: defaults */
  }
  return { source: 'none' };
}

/** The shortest timeoutSeconds of our MutatingWebhookConfiguration (a review slower than this fails the pod). */
export function webhookTimeoutSeconds(): number | undefined {
  try {
    let min: number | undefined;
    for (const d of parseAllDocuments(readFileSync(join(repoRoot, 'manifests/base/mutating-webhook.yaml'), 'utf8'))) {
      const doc = d.toJS();
      for (const w of doc?.webhooks ?? [])
        if (typeof w?.timeoutSeconds === 'number') min = Math.min(min ?? Infinity, w.timeoutSeconds);
    }
    return min;
  } catch {
    return undefined;
  }
}

/** The webhook container's liveness probe: how long /healthz may take, and how many failures in a row restart it. */
export function webhookLivenessProbe(): { timeoutSeconds: number; failureThreshold: number } {
  // Kubernetes' defaults when the manifest does not say
  const probe = { timeoutSeconds: 1, failureThreshold: 3 };
  try {
    for (const d of parseAllDocuments(readFileSync(join(repoRoot, 'manifests/base/webhook-deployment.yaml'), 'utf8'))) {
      const doc = d.toJS() as any;
      if (doc?.kind !== 'Deployment') continue;
      const p = doc.spec?.template?.spec?.containers?.[0]?.livenessProbe ?? {};
      if (typeof p.timeoutSeconds === 'number') probe.timeoutSeconds = p.timeoutSeconds;
      if (typeof p.failureThreshold === 'number') probe.failureThreshold = p.failureThreshold;
    }
  } catch {
    /* no manifests: defaults */
  }
  return probe;
}
