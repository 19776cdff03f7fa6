// Bench inputs built from Istio's own injection goldens, so the webhook is loaded with the pods a real API server sends
// it (after Istio's injector ran) and the plugin looks up the pod the webhook would have produced.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export { oraclesDir as ORACLE_DIR } from '../../test/harness/oracles.js';
import { oraclesDir as ORACLE_DIR } from '../../test/harness/oracles.js';

type Obj = Record<string, any>;

/** The pod template of a Deployment golden, as the Pod the API server would admit. */
export function podFromGolden(relPath: string, namespace: string): Obj {
  // Goldens may hold several documents (e.g. a Deployment and a Service): the first one with a pod template is the workload.
  const docs = parseAllDocuments(readFileSync(join(ORACLE_DIR, 'inject', relPath), 'utf8')).map((d) => d.toJS() as Obj);
  const doc = docs.find((d) => d?.spec?.template?.spec) ?? {};
  const template = doc.spec?.template;
  if (!template?.spec) throw new Error(`bench: ${relPath} has no spec.template (expected a Deployment golden)`);
  const metadata: Obj = { ...(template.metadata ?? {}) };
  delete metadata.creationTimestamp;
  const base = String(doc.metadata?.name ?? 'pod');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...metadata, generateName: `${base}-`, namespace },
    spec: template.spec,
    status: {},
  };
}

export interface ReviewShape {
  /** Short label used in the tables. */
  name: string;
  golden: string;
  /** What the webhook must answer for this shape: a JSON patch or none. */
  expectPatch: boolean;
}

/** The three shapes the webhook is loaded with, in equal parts. */
export const REVIEW_SHAPES: readonly ReviewShape[] = [
  { name: 'classic', golden: 'classic-1.26.8/hello.yaml.injected', expectPatch: true },
  { name: 'native', golden: 'native-master/hello.yaml.injected', expectPatch: true },
  // A pod without a sidecar: most pods of a mixed cluster; the webhook must answer allowed without a patch.
  { name: 'skipped', golden: 'native-master/hello.yaml', expectPatch: false },
];

/** An AdmissionReview request envelope as kube-apiserver sends it on pod CREATE. */
export function admissionReview(pod: Obj, uid: string): Obj {
  const gvk = { group: '', version: 'v1', kind: 'Pod' };
  const gvr = { group: '', version: 'v1', resource: 'pods' };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: gvk,
      resource: gvr,
      requestKind: gvk,
      requestResource: gvr,
      namespace: pod.metadata.namespace,
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '6a1c2e9e-0a43-4d8b-9f1a-3f1e2b7c8d90',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

export interface ReviewPayload {
  shape: string;
  uid: string;
  expectPatch: boolean;
  body: string;
}

/** `perShape` reviews of each shape with distinct uids, interleaved (classic, native, skipped, classic, ...). */
export function buildReviewPayloads(perShape: number, namespace = 'default'): ReviewPayload[] {
  const pods = REVIEW_SHAPES.map((s) => ({ shape: s, pod: podFromGolden(s.golden, namespace) }));
  const out: ReviewPayload[] = [];
  for (let i = 0; i < perShape; i++) {
    for (const { shape, pod } of pods) {
      const uid = `b3c1e6a0-0000-4000-8000-${String(out.length).padStart(12, '0')}`;
      out.push({
        shape: shape.name,
        uid,
        expectPatch: shape.expectPatch,
        body: JSON.stringify(admissionReview(pod, uid)),
      });
    }
  }
  return out;
}

/** The pod the plugin looks up: Istio's CNI-mode injection (istio-validation instead of istio-init). */
export function pluginPod(namespace: string): Obj {
  const pod = podFromGolden('native-master/hello.yaml.cni.injected', namespace);
  pod.metadata.uid = '00000000-0000-4000-8000-000000000000';
  return pod;
}
