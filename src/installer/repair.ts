// Repair: a pod that started on this node before the plugin was in place has no redirection, so its
// istio-validation init container fails (and crash-loops). Deleting the pod lets its controller create a new one,
// which now goes through the plugin. Only pods with a controller are deleted: a bare pod would be lost for good.
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { ISTIO_VALIDATION } from '../common/istio-names.js';

export type RepairVerdict = 'repair' | 'healthy' | 'no-controller' | 'terminating';

/** Pure: does this pod's istio-validation init container show a failure (non-zero exit now or before a restart)? */
export function validationFailed(pod: V1Pod): boolean {
  const status = pod.status?.initContainerStatuses?.find((s) => s.name === ISTIO_VALIDATION);
  if (!status) return false;
  const now = status.state?.terminated;
  if (now && now.exitCode !== 0) return true;
  const before = status.lastState?.terminated;
  return before !== undefined && before.exitCode !== 0 && !status.ready && now?.exitCode !== 0;
}

export function repairVerdict(pod: V1Pod): RepairVerdict {
  if (!validationFailed(pod)) return 'healthy';
  if (pod.metadata?.deletionTimestamp) return 'terminating';
  if (!pod.metadata?.ownerReferences?.some((o) => o.controller === true)) return 'no-controller';
  return 'repair';
}

export interface PodApi {
  listPodsOnNode(nodeName: string): Promise<V1Pod[]>;
  /** Deletes the pod only if it is still the same object (uid precondition). */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
}

export function podApiFrom(api: CoreV1Api): PodApi {
  return {
    async listPodsOnNode(nodeName) {
      // resourceVersion 0: served from the API server's watch cache, cheap to poll from every node.
      const list = await api.listPodForAllNamespaces({
        fieldSelector: `spec.nodeName=${nodeName}`,
        resourceVersion: '0',
      });
      return list.items;
    },
    async deletePod(namespace, name, uid) {
      await api.deleteNamespacedPod({ name, namespace, body: { preconditions: { uid } } });
    },
  };
}

export interface RepairDeps {
  api: PodApi;
  nodeName: string;
  log: Logger;
  /** Called with the outcome of every pod acted on (metrics). */
  onOutcome?: (outcome: 'deleted' | 'failed' | 'no-controller') => void;
}

export class RepairController {
  /** Pods already acted on (by uid), so one pod is deleted or reported once. */
  private readonly seen = new Set<string>();
  constructor(private readonly deps: RepairDeps) {}

  /** One pass over the pods of this node; returns how many were deleted. */
  async runOnce(): Promise<number> {
    const pods = await this.deps.api.listPodsOnNode(this.deps.nodeName);
    const live = new Set<string>();
    let deleted = 0;
    for (const pod of pods) {
      const uid = pod.metadata?.uid ?? '';
      live.add(uid);
      if (this.seen.has(uid)) continue;
      const verdict = repairVerdict(pod);
      if (verdict === 'healthy' || verdict === 'terminating') continue;
      const { namespace = '', name = '' } = pod.metadata ?? {};
      this.seen.add(uid);
      if (verdict === 'no-controller') {
        this.deps.log.warn({ namespace, name }, 'pod failed istio-validation but has no controller; not deleting it');
        this.deps.onOutcome?.('no-controller');
        continue;
      }
      try {
        await this.deps.api.deletePod(namespace, name, uid);
        deleted++;
        this.deps.log.info(
          { namespace, name },
          'deleted pod that failed istio-validation; its controller recreates it',
        );
        this.deps.onOutcome?.('deleted');
      } catch (err) {
        this.seen.delete(uid); // try again next pass
        this.deps.log.error({ namespace, name, err: (err as Error).message }, 'could not delete pod for repair');
        this.deps.onOutcome?.('failed');
      }
    }
    for (const uid of this.seen) if (!live.has(uid)) this.seen.delete(uid);
    return deleted;
  }
}
