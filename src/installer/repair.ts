// Repair: a pod that started on this node before the plugin was in place has no redirection, so its
// istio-validation init container fails (and crash-loops). Deleting the pod lets its controller create a new one,
// which now goes through the plugin. Only pods with a controller are deleted: a bare pod would be lost for good, so
// its owner is told with an Event instead.
//
// Deleting only helps when the replacement passes. When the plugin is in place but does not redirect (a broken node,
// a rule the kernel refuses), every replacement fails too: deletion rounds per owner are spaced out exponentially
// (from the repair interval up to a cap) and stop after a few, with an Event on the pod and the owner saying why. A
// change of the node's state (the plugin reinstalled, or an installer restart, which starts with no state) resumes.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event, V1ObjectReference, V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ISTIO_VALIDATION } from '../common/istio-names.js';

/** The component name on Events (source and reportingComponent). */
export const EVENT_COMPONENT = 'asm-cni-install';

/** Event reasons (docs/operations.md says what each means and what to do). */
export const REASON_NO_CONTROLLER = 'IstioValidationFailedNoController';
export const REASON_REPAIR_STOPPED = 'RepairStopped';

export type RepairVerdict = 'repair' | 'healthy' | 'no-controller' | 'terminating';
export type RepairOutcome = 'deleted' | 'failed' | 'no-controller' | 'stopped';

function validationStatus(pod: V1Pod) {
  return pod.status?.initContainerStatuses?.find((s) => s.name === ISTIO_VALIDATION);
}

/** Pure: does this pod's istio-validation init container show a failure (non-zero exit now or before a restart)? */
export function validationFailed(pod: V1Pod): boolean {
  const status = validationStatus(pod);
  if (!status) return false;
  const now = status.state?.terminated;
  if (now && now.exitCode !== 0) return true;
  const before = status.lastState?.terminated;
  return before !== undefined && before.exitCode !== 0 && !status.ready && now?.exitCode !== 0;
}

/** Pure: did istio-validation finish successfully (redirection works for this pod)? */
export function validationPassed(pod: V1Pod): boolean {
  return validationStatus(pod)?.state?.terminated?.exitCode === 0;
}

export function repairVerdict(pod: V1Pod): RepairVerdict {
  if (!validationFailed(pod)) return 'healthy';
  if (pod.metadata?.deletionTimestamp) return 'terminating';
  if (!controllerOf(pod)) return 'no-controller';
  return 'repair';
}

const controllerOf = (pod: V1Pod): V1OwnerReference | undefined =>
  pod.metadata?.ownerReferences?.find((o) => o.controller === true);

export interface RepairEvent {
  /** What the Event is about (a pod or its owner), in the pod's namespace. */
  regarding: V1ObjectReference & { namespace: string; name: string };
  reason: string;
  message: string;
}

export interface PodApi {
  listPodsOnNode(nodeName: string): Promise<V1Pod[]>;
  /** Deletes the pod only if it is still the same object (uid precondition). */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /** Records a Warning Event (core/v1) reported by this node's installer. */
  createEvent(event: RepairEvent, nodeName: string, now: Date): Promise<void>;
}

/** Pure: the core/v1 Event for `event`; named like client-go's recorder does (object name, unique suffix). */
export function eventObject(event: RepairEvent, nodeName: string, now: Date): CoreV1Event {
  const { regarding } = event;
  return {
    metadata: { name: `${regarding.name}.${randomBytes(8).toString('hex')}`, namespace: regarding.namespace },
    involvedObject: regarding,
    reason: event.reason,
    message: event.message,
    type: 'Warning',
    count: 1,
    firstTimestamp: now,
    lastTimestamp: now,
    source: { component: EVENT_COMPONENT, host: nodeName },
    reportingComponent: EVENT_COMPONENT,
    reportingInstance: nodeName,
  };
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
    async createEvent(event, nodeName, now) {
      await api.createNamespacedEvent({
        namespace: event.regarding.namespace,
        body: eventObject(event, nodeName, now),
      });
    },
  };
}

/**
 * Backoff per owner. A round is one pass that deletes the owner's failing pods (all of them that fail at that time:
 * several replicas on one node fail together when the plugin came late); the next round waits.
 */
export interface RepairBackoff {
  /** Wait after the first round for an owner; doubles after each further one. */
  baseMs: number;
  /** Longest wait between two rounds for one owner. */
  capMs: number;
  /** Rounds per owner (without a replacement passing) before repair stops for that owner. */
  maxRounds: number;
}

/** Spacing in repair intervals: 1, 2, 4, 8, 8 intervals between six rounds (about 12 min at 30 s), then stop. */
export function defaultBackoff(repairIntervalMs: number): RepairBackoff {
  return { baseMs: repairIntervalMs, capMs: 8 * repairIntervalMs, maxRounds: 6 };
}

/** Pure: how long to wait after the n-th round (n >= 1) for one owner. */
export function backoffDelay(b: RepairBackoff, rounds: number): number {
  return Math.min(b.baseMs * 2 ** Math.max(0, rounds - 1), b.capMs);
}

export interface RepairDeps {
  api: PodApi;
  nodeName: string;
  log: Logger;
  backoff: RepairBackoff;
  /** Injected clock (ms since epoch). */
  now?: () => number;
  /** Called with the outcome of every pod acted on (metrics). */
  onOutcome?: (outcome: RepairOutcome) => void;
}

interface OwnerState {
  ref: V1OwnerReference;
  rounds: number;
  /** No deletion for this owner before this time. */
  notBefore: number;
  stopped: boolean;
  /** Last time a failing pod of this owner was seen (to forget owners that are gone). */
  lastSeen: number;
}

type Handled = 'deleted' | 'no-controller' | 'stopped';

export class RepairController {
  /** Pods already acted on (by uid), so one pod is deleted or reported once. */
  private readonly seen = new Map<string, Handled>();
  /** Backoff state per owner (by the controller's uid). */
  private readonly owners = new Map<string, OwnerState>();
  /** Owners whose round is this pass: their other failing pods go in the same round. */
  private readonly roundNow = new Set<string>();
  private readonly now: () => number;
  constructor(private readonly deps: RepairDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * The node's state changed (plugin binary or config entry rewritten): a replacement pod may pass now, so forget
   * the backoff of every owner and judge the pods that repair gave up on again.
   */
  nodeChanged(why: string): void {
    const stopped = [...this.owners.values()].filter((o) => o.stopped).length;
    this.owners.clear();
    for (const [uid, handled] of this.seen) if (handled === 'stopped') this.seen.delete(uid);
    if (stopped > 0) this.deps.log.info({ why, owners: stopped }, 'node state changed; repair resumes for every owner');
  }

  /** One pass over the pods of this node; returns how many were deleted. */
  async runOnce(): Promise<number> {
    const pods = await this.deps.api.listPodsOnNode(this.deps.nodeName);
    const now = this.now();
    this.roundNow.clear();
    const live = new Set<string>();
    let deleted = 0;
    for (const pod of pods) {
      const uid = pod.metadata?.uid ?? '';
      live.add(uid);
      if (this.seen.has(uid)) continue;
      const verdict = repairVerdict(pod);
      if (verdict === 'healthy') {
        // A replacement passed: deleting helped, so that owner starts from no backoff again.
        const owner = controllerOf(pod);
        if (owner && validationPassed(pod)) this.owners.delete(owner.uid);
        continue;
      }
      if (verdict === 'terminating') continue;
      if (verdict === 'no-controller') {
        this.seen.set(uid, 'no-controller');
        await this.reportBare(pod, now);
        continue;
      }
      if (await this.repair(pod, controllerOf(pod)!, now)) deleted++;
    }
    for (const uid of this.seen.keys()) if (!live.has(uid)) this.seen.delete(uid);
    // An owner with no failing pod for a long while is gone or healthy: its state would only grow the map.
    for (const [key, o] of this.owners) if (now - o.lastSeen > 4 * this.deps.backoff.capMs) this.owners.delete(key);
    return deleted;
  }

  private async repair(pod: V1Pod, ref: V1OwnerReference, now: number): Promise<boolean> {
    const { namespace = '', name = '', uid = '' } = pod.metadata ?? {};
    const { backoff } = this.deps;
    const owner = this.owners.get(ref.uid) ?? { ref, rounds: 0, notBefore: 0, stopped: false, lastSeen: now };
    this.owners.set(ref.uid, owner);
    owner.lastSeen = now;
    const sameRound = this.roundNow.has(ref.uid);
    if (!owner.stopped && !sameRound && owner.rounds >= backoff.maxRounds) {
      owner.stopped = true;
      await this.reportStopped(pod, owner, true, now);
      return false;
    }
    if (owner.stopped) {
      await this.reportStopped(pod, owner, false, now);
      return false;
    }
    if (!sameRound && now < owner.notBefore) {
      this.deps.log.debug(
        { namespace, name, owner: `${ref.kind}/${ref.name}`, retryInMs: owner.notBefore - now },
        'pod failed istio-validation; waiting before deleting another pod of its owner',
      );
      return false; // not marked seen: judged again on a later pass
    }
    this.seen.set(uid, 'deleted');
    try {
      await this.deps.api.deletePod(namespace, name, uid);
    } catch (err) {
      this.seen.delete(uid); // try again next pass
      this.deps.log.error({ namespace, name, err: (err as Error).message }, 'could not delete pod for repair');
      this.deps.onOutcome?.('failed');
      return false;
    }
    if (!sameRound) {
      this.roundNow.add(ref.uid);
      owner.rounds++;
      owner.notBefore = now + backoffDelay(backoff, owner.rounds);
    }
    this.deps.log.info(
      { namespace, name, owner: `${ref.kind}/${ref.name}`, rounds: owner.rounds },
      'deleted pod that failed istio-validation; its controller recreates it',
    );
    this.deps.onOutcome?.('deleted');
    return true;
  }

  private async reportBare(pod: V1Pod, now: number): Promise<void> {
    const { namespace = '', name = '' } = pod.metadata ?? {};
    const node = this.deps.nodeName;
    this.deps.log.warn({ namespace, name }, 'pod failed istio-validation but has no controller; not deleting it');
    this.deps.onOutcome?.('no-controller');
    await this.event(now, {
      regarding: podRef(pod),
      reason: REASON_NO_CONTROLLER,
      message:
        `istio-validation failed: this pod started on node ${node} before the asm-cni plugin was installed there, ` +
        `so its traffic is not redirected. It has no controller, so asm-cni does not delete it: delete and recreate ` +
        `the pod (kubectl delete pod -n ${namespace} ${name}, then create it again).`,
    });
  }

  private async reportStopped(pod: V1Pod, owner: OwnerState, first: boolean, now: number): Promise<void> {
    const { namespace = '', name = '', uid = '' } = pod.metadata ?? {};
    const node = this.deps.nodeName;
    const ownerName = `${owner.ref.kind}/${owner.ref.name}`;
    this.seen.set(uid, 'stopped');
    this.deps.log.warn(
      { namespace, name, owner: ownerName, rounds: owner.rounds },
      'pod failed istio-validation again after repeated repairs; repair stopped for its owner',
    );
    this.deps.onOutcome?.('stopped');
    const why =
      `istio-validation keeps failing on node ${node}: asm-cni deleted failing pods of ${ownerName} ` +
      `${owner.rounds} times and each replacement failed too, so the plugin is installed but does not redirect ` +
      `on this node (see the plugin log on the node). asm-cni stops deleting pods of ${ownerName} until the ` +
      `plugin is reinstalled on the node or the installer restarts.`;
    await this.event(now, { regarding: podRef(pod), reason: REASON_REPAIR_STOPPED, message: why });
    if (first) {
      const { apiVersion, kind, name: ownerObj, uid: ownerUid } = owner.ref;
      await this.event(now, {
        regarding: { apiVersion, kind, name: ownerObj, uid: ownerUid, namespace },
        reason: REASON_REPAIR_STOPPED,
        message: why,
      });
    }
  }

  /** Events are best effort: a failure is logged and never stops the pass. */
  private async event(now: number, event: RepairEvent): Promise<void> {
    try {
      await this.deps.api.createEvent(event, this.deps.nodeName, new Date(now));
    } catch (err) {
      const { kind, namespace, name } = event.regarding;
      this.deps.log.warn(
        { kind, namespace, name, reason: event.reason, err: (err as Error).message },
        'could not record Event',
      );
    }
  }
}

function podRef(pod: V1Pod): RepairEvent['regarding'] {
  const { namespace = '', name = '', uid } = pod.metadata ?? {};
  return { apiVersion: 'v1', kind: 'Pod', namespace, name, uid };
}
