// Where pods live inside the objects an admin applies: a Pod itself, the pod template of a workload, the items of a
// List. Used by the mutate CLI to run the same admit() the API server would on every pod an object will create.
import type { Operation } from 'fast-json-patch';
import type { SharedConfig } from '../../common/shared-config.js';
import { admit, type AdmitOutcome } from './admit.js';
import { asArray, asObject, stringEntry, type JsonObject } from './json.js';
import { pointerToken } from './json-pointer.js';

/** Kinds with a pod template at spec.template (CronJob: spec.jobTemplate.spec.template). */
const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export const WORKLOAD_KINDS: readonly string[] = ['Pod', ...Object.keys(TEMPLATE_PATHS), 'List'];

export interface PodSlot {
  /** The Pod, or the pod template ({metadata, spec}). */
  pod: JsonObject;
  /** JSON pointer of `pod` inside the document ("" for a Pod document). */
  pointer: string;
  /** The object that owns the slot: "Deployment/web", "Pod/web-1", for messages. */
  owner: string;
  /** The owning object's metadata.namespace, if set. */
  namespace: string | undefined;
}

function ownerName(obj: JsonObject): string {
  const meta = asObject(obj.metadata);
  const name = stringEntry(meta, 'name') ?? stringEntry(meta, 'generateName') ?? '(unnamed)';
  return `${String(obj.kind)}/${name}`;
}

/** Every pod slot of a document, in document order. Objects of other kinds have none. */
export function podSlots(doc: unknown, pointer = ''): PodSlot[] {
  const obj = asObject(doc);
  if (obj === undefined) return [];
  const kind = obj.kind;
  if (kind === 'List') {
    return asArray(obj.items).flatMap((item, i) => podSlots(item, `${pointer}/items/${i}`));
  }
  const namespace = stringEntry(asObject(obj.metadata), 'namespace');
  if (kind === 'Pod') return [{ pod: obj, pointer, owner: ownerName(obj), namespace }];
  const path =
    typeof kind === 'string' && Object.prototype.hasOwnProperty.call(TEMPLATE_PATHS, kind)
      ? TEMPLATE_PATHS[kind]
      : undefined;
  if (path === undefined) return [];
  let node: JsonObject | undefined = obj;
  for (const key of path) node = asObject(node?.[key]);
  if (node === undefined) return [];
  return [
    { pod: node, pointer: pointer + path.map((k) => `/${pointerToken(k)}`).join(''), owner: ownerName(obj), namespace },
  ];
}

export interface SlotOutcome {
  slot: PodSlot;
  namespace: string;
  outcome: AdmitOutcome;
}

/**
 * Runs admit() on every pod slot of a document, as a CREATE of that pod. The namespace is the object's own, else
 * `fallbackNamespace` (the --namespace flag), else "default". Returns the outcomes and the ops re-rooted at the document.
 */
export function admitDocument(
  doc: unknown,
  config: SharedConfig,
  fallbackNamespace: string | undefined,
): { outcomes: SlotOutcome[]; ops: Operation[] } {
  const outcomes: SlotOutcome[] = [];
  const ops: Operation[] = [];
  for (const slot of podSlots(doc)) {
    const namespace = slot.namespace ?? fallbackNamespace ?? 'default';
    const outcome = admit(
      {
        uid: 'asm-cni-webhook-mutate',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace,
        object: slot.pod,
      },
      config,
    );
    outcomes.push({ slot, namespace, outcome });
    for (const op of outcome.patch) ops.push({ ...op, path: slot.pointer + op.path } as Operation);
  }
  return { outcomes, ops };
}
