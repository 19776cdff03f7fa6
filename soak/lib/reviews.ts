// Realistic AdmissionReviews: the Istio-injected pods of the oracle goldens (what the API server sends us after Istio's
// injector ran), wrapped as pod CREATE reviews. Bodies are pre-serialised around a uid placeholder so that the load
// client spends its time on the wire, not in JSON.stringify.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { oraclesDir as oraclesPath } from '../../test/harness/oracles.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function oraclesDir(): string {
  if (existsSync(join(oraclesPath, 'inject'))) return oraclesPath;
  throw new Error(`Istio oracles not found at ${oraclesPath} (set ASM_ORACLES to the oracles/istio folder)`);
}

type Obj = Record<string, any>;

export interface ReviewTemplate {
  /** where the pod came from, e.g. native-master/hello.yaml.injected#0 */
  source: string;
  namespace: string;
  /** serialised AdmissionReview with UID_PLACEHOLDER where request.uid goes */
  before: string;
  after: string;
}

const UID = '@@UID@@';

export function body(t: ReviewTemplate, uid: string): string {
  return t.before + uid + t.after;
}

export function newUid(): string {
  return randomUUID();
}

/** Pods found in one YAML document: a Pod, a workload's pod template, or the items of a List. */
function podsOf(doc: Obj | null): Obj[] {
  if (!doc || typeof doc !== 'object') return [];
  if (doc.kind === 'List' && Array.isArray(doc.items)) return doc.items.flatMap((i: Obj) => podsOf(i));
  if (doc.kind === 'Pod') return [doc];
  const template = doc.spec?.template ?? doc.spec?.jobTemplate?.spec?.template;
  if (template) {
    return [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { ...template.metadata, generateName: `${doc.metadata?.name ?? 'pod'}-` },
        spec: template.spec,
      },
    ];
  }
  return [];
}

function hasIstioInit(pod: Obj): boolean {
  return Array.isArray(pod.spec?.initContainers) && pod.spec.initContainers.some((c: Obj) => c?.name === 'istio-init');
}

export function reviewFor(pod: Obj, namespace: string, source: string): ReviewTemplate {
  const object = { ...pod, metadata: { ...pod.metadata, namespace } };
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: UID,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: object.metadata.name,
      namespace,
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: 'soak',
        groups: ['system:serviceaccounts', 'system:authenticated'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
  const text = JSON.stringify(review);
  const at = text.indexOf(UID);
  return { source, namespace, before: text.slice(0, at), after: text.slice(at + UID.length) };
}

/** Every Istio-injected pod with an istio-init container from the oracle goldens (the pods the webhook is called for). */
export function loadCorpus(namespace = 'soak-apps'): ReviewTemplate[] {
  const root = join(oraclesDir(), 'inject');
  const out: ReviewTemplate[] = [];
  for (const flavour of readdirSync(root).sort()) {
    for (const file of readdirSync(join(root, flavour)).sort()) {
      if (!file.endsWith('.yaml.injected')) continue;
      const docs = parseAllDocuments(readFileSync(join(root, flavour, file), 'utf8'));
      let n = 0;
      for (const d of docs) {
        for (const pod of podsOf(d.toJS() as Obj)) {
          if (hasIstioInit(pod)) out.push(reviewFor(pod, namespace, `${flavour}/${file}#${n++}`));
        }
      }
    }
  }
  if (out.length === 0) throw new Error(`no istio-init pods found under ${root}`);
  return out;
}
