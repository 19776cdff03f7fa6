// admit(): one AdmissionRequest in, the decision out. Pure and total: any input gives an outcome, never an exception.
// The server owns the envelope, logging and metrics; this owns what the answer is.
import type { Operation } from 'fast-json-patch';
import type { SharedConfig } from '../../common/shared-config.js';
import { asObject, stringEntry } from './json.js';
import { viewPod, interceptionMode, type PodView } from './pod-view.js';
import { planNetworkOnly, planRewrite } from './rewrite.js';
import { webhookSelection, type WebhookReason } from './selection.js';
import { problemMessage, validateTraffic, type AnnotationProblem } from './validate.js';
import { internalError } from './safety-net.js';

export interface AdmissionRequest {
  uid: string;
  kind?: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  namespace?: string;
  name?: string;
  operation?: string;
  object?: unknown;
  dryRun?: boolean;
}

export interface AdmitOutcome {
  allowed: boolean;
  /** fast-json-patch ops, [] when none. */
  patch: Operation[];
  warnings: string[];
  /** Set when denied. */
  status?: { code: number; message: string };
  decision: 'patched' | 'skipped' | 'denied';
  reason: AdmitReason;
}

export type AdmitReason =
  | WebhookReason
  | 'not-a-pod'
  | 'no-object'
  | 'invalid-annotation'
  /** A CNI-mode pod (no istio-init) that only needed the plugin's Multus network added. */
  | 'multus-network-added'
  | 'internal-error';

function skipped(reason: AdmitReason, warnings: string[] = []): AdmitOutcome {
  return { allowed: true, patch: [], warnings, decision: 'skipped', reason };
}

/** The HTTP-like code of a denial: the object is well-formed but a value in it is not acceptable. */
export const DENY_CODE = 400;

function isCorePods(request: AdmissionRequest): boolean {
  // Absent kind/resource are tolerated (hand-made reviews); present ones must say core v1 pods, in object form.
  if (request.kind !== undefined) {
    const kind = asObject(request.kind);
    if (kind === undefined || !(kind.group === '' && kind.version === 'v1' && kind.kind === 'Pod')) return false;
  }
  if (request.resource !== undefined) {
    const resource = asObject(request.resource);
    if (resource === undefined || !(resource.group === '' && resource.version === 'v1' && resource.resource === 'pods'))
      return false;
  }
  return request.subResource === undefined || request.subResource === '';
}

export function admit(request: AdmissionRequest, config: SharedConfig): AdmitOutcome {
  try {
    return decide(request, config);
  } catch (err) {
    return internalError(request, err); // unreachable by design; the policy and its reason: safety-net.ts
  }
}

function decide(request: AdmissionRequest, config: SharedConfig): AdmitOutcome {
  if (asObject(request) === undefined) return skipped('no-object');
  if (!isCorePods(request)) return skipped('not-a-pod');
  if (request.operation !== 'CREATE') return skipped('not-create');
  const pod = asObject(request.object);
  if (pod === undefined) return skipped('no-object');
  if (pod.kind !== undefined && pod.kind !== 'Pod') return skipped('not-a-pod');

  const view = viewPod(pod);
  const namespace =
    typeof request.namespace === 'string' && request.namespace !== ''
      ? request.namespace
      : (stringEntry(view.metadata, 'namespace') ?? '');
  const selection = webhookSelection(view, namespace, config.excludeNamespaces, 'CREATE');
  const warnings: string[] = selection.injectWarning === undefined ? [] : [selection.injectWarning];

  if (selection.reason === 'no-istio-init') return pluginOwned(view, config, namespace, warnings);
  if (selection.decision === 'skip') return skipped(selection.reason, warnings);

  const mode = interceptionMode(view);
  const plan = planRewrite(view, mode, config, namespace);
  const problems = [...validateTraffic(view.annotations, plan.derived), ...plan.problems];
  if (problems.length > 0) return refuse(problems, config, warnings, 'pod left as it is, istio-init keeps redirecting');
  warnings.push(...plan.warnings);
  return { allowed: true, patch: plan.ops, warnings, decision: 'patched', reason: 'selected' };
}

/** A selected pod without istio-init: the plugin will redirect it, so what it reads must be valid too. */
function pluginOwned(view: PodView, config: SharedConfig, namespace: string, warnings: string[]): AdmitOutcome {
  const network = planNetworkOnly(view, config, namespace);
  const problems = [...validateTraffic(view.annotations), ...network.problems];
  if (problems.length > 0) return refuse(problems, config, warnings, 'the CNI plugin will refuse this pod');
  if (network.ops.length > 0)
    return { allowed: true, patch: network.ops, warnings, decision: 'patched', reason: 'multus-network-added' };
  return skipped('no-istio-init', warnings);
}

function refuse(
  problems: AnnotationProblem[],
  config: SharedConfig,
  warnings: string[],
  consequence: string,
): AdmitOutcome {
  const messages = problems.map(problemMessage);
  if (config.invalidAnnotations === 'warn') {
    return skipped('invalid-annotation', [
      ...warnings,
      ...messages.map((m) => `${m}; admitted (warn): ${consequence}`),
    ]);
  }
  return {
    allowed: false,
    patch: [],
    warnings,
    status: { code: DENY_CODE, message: `asm-cni: ${messages.join('; ')}` },
    decision: 'denied',
    reason: 'invalid-annotation',
  };
}
