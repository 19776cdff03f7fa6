// The one answer to a throw inside the decision (a bug: every reader tolerates any shape, so no input should cause
// one). It answers the way the API server answers when the webhook is down, so that a bug never does what an outage
// would not:
// - a pod that carries istio-init is refused (code 500, InternalError). The rewrite entry that sends such pods has
//   failurePolicy Fail because the cluster admin chose "reject and let the controller retry" over "admit istio-init
//   and its NET_ADMIN/NET_RAW"; admitting it on a bug would silently undo that choice. The message names the error.
// - any other pod is admitted unchanged with a warning. Those pods reach us through the late entries, whose
//   failurePolicy is Ignore: an outage admits them as they are, and a bug must not block pods Istio will not even mesh.
// - a pod whose shape cannot even be read is refused: when in doubt, fail closed like the Fail entry.
import type { AdmissionRequest, AdmitOutcome } from './admit.js';
import { ISTIO_INIT } from '../../common/istio-names.js';
import { asArray, asObject } from './json.js';

export const INTERNAL_ERROR_CODE = 500;

function carriesIstioInit(request: AdmissionRequest): boolean {
  try {
    const spec = asObject(asObject(asObject(request)?.object)?.spec);
    return asArray(spec?.initContainers).some((c) => asObject(c)?.name === ISTIO_INIT);
  } catch {
    return true; // unreadable: fail closed
  }
}

export function internalError(request: AdmissionRequest, err: unknown): AdmitOutcome {
  let detail: string;
  try {
    detail = err instanceof Error ? err.message : String(err);
  } catch {
    detail = 'unprintable error';
  }
  if (carriesIstioInit(request)) {
    const message = `asm-cni webhook internal error, pod with istio-init refused (its controller retries): ${detail}`;
    return {
      allowed: false,
      patch: [],
      warnings: [],
      status: { code: INTERNAL_ERROR_CODE, message },
      decision: 'denied',
      reason: 'internal-error',
    };
  }
  return {
    allowed: true,
    patch: [],
    warnings: [`asm-cni webhook internal error, pod without istio-init admitted unchanged: ${detail}`],
    decision: 'skipped',
    reason: 'internal-error',
  };
}
