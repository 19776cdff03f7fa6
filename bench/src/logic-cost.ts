// CPU per review of the webhook's pure steps, in-process (no TLS, HTTP, logging or metrics), on the bench payloads:
// what the rewrite and the patch generation cost by themselves. CPU time (process.cpuUsage), not wall time, so the
// figure holds on a busy machine too.
import { pathToFileURL } from 'node:url';
import type { ReviewPayload } from './fixtures.js';

type AdmitFn = (request: unknown, config: unknown) => { patch: unknown[] };

export interface LogicCost {
  reviews: number;
  /** JSON.parse of the body: every webhook pays it (the floor too). */
  parseUs: number;
  /** admit(): selection, annotation validation, rewrite and its JSON patch ops. */
  admitUs: number;
  /** The answer: patch ops to JSON, base64, the AdmissionReview envelope to JSON. */
  answerUs: number;
}

function perReview(n: number, f: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 5000); i++) f(i); // warm up the JIT
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) f(i);
  const d = process.cpuUsage(t0);
  return Number(((d.user + d.system) / n).toFixed(2));
}

export async function logicCost(distDir: string, payloads: readonly ReviewPayload[], n = 30000): Promise<LogicCost> {
  const { admit } = (await import(pathToFileURL(`${distDir}/webhook/core/admit.js`).href)) as { admit: AdmitFn };
  const { DEFAULT_CONFIG } = (await import(pathToFileURL(`${distDir}/common/shared-config.js`).href)) as {
    DEFAULT_CONFIG: unknown;
  };
  const bodies = payloads.map((p) => Buffer.from(p.body));
  const requests = payloads.map((p) => (JSON.parse(p.body) as { request: unknown }).request);
  const outcomes = requests.map((r) => admit(r, DEFAULT_CONFIG));
  const uids = payloads.map((p) => p.uid);
  let sink = 0;
  const parseUs = perReview(n, (i) => {
    sink += (JSON.parse(bodies[i % bodies.length]!.toString('utf8')) as object) ? 1 : 0;
  });
  const admitUs = perReview(n, (i) => {
    sink += admit(requests[i % requests.length], DEFAULT_CONFIG).patch.length;
  });
  const answerUs = perReview(n, (i) => {
    const o = outcomes[i % outcomes.length]!;
    const response: Record<string, unknown> = { uid: uids[i % uids.length], allowed: true };
    if (o.patch.length) {
      response.patchType = 'JSONPatch';
      response.patch = Buffer.from(JSON.stringify(o.patch)).toString('base64');
    }
    sink += JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }).length;
  });
  if (sink < 0) throw new Error('unreachable');
  return { reviews: n, parseUs, admitUs, answerUs };
}
