// The AdmissionReview envelope: validating what the API server sent and building what it expects back.
// Modelled on controller-runtime's admission package: Handle(request) -> Response, with allowed(), denied(),
// patched() helpers, and the response always echoing request.uid. A throw inside admit() is answered by the one
// safety-net policy (safety-net.ts). Everything here is pure.
import type { Operation } from 'fast-json-patch';
import type { SharedConfig } from '../../common/shared-config.js';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

// The request and outcome shapes are admit()'s own; the envelope only carries them.
import type { AdmissionRequest, AdmitOutcome } from './admit.js';
import { internalError } from './safety-net.js';
export type { AdmissionRequest, AdmitOutcome };

export type AdmitFn = (request: AdmissionRequest, config: SharedConfig) => AdmitOutcome;

/** metav1.Status as the API server reads it in a response: code and message are shown to the user on denial. */
export interface ResponseStatus {
  code: number;
  message: string;
  reason?: string;
}

/** controller-runtime's admission.Response: the decision plus the patch as operations (encoded when enveloped). */
export interface Response {
  uid: string;
  allowed: boolean;
  patch?: Operation[];
  warnings?: string[];
  status?: ResponseStatus;
}

/** The wire form of the response half of an AdmissionReview. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: ResponseStatus;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** Why an envelope was refused; `reason` is the metrics/log code, `message` is for the caller. */
export interface EnvelopeError {
  ok: false;
  reason: 'not-an-object' | 'unsupported-api-version' | 'not-an-admission-review' | 'no-request' | 'no-uid';
  message: string;
}

export type ParsedReview = { ok: true; request: AdmissionRequest } | EnvelopeError;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates the envelope only: the object inside (kind, resource, pod shape) is admit()'s business, which answers
 * "allowed, no patch" for anything that is not a pod. A request without a uid cannot be answered (the API server
 * matches the response by uid), so it is a 400 like any other malformed envelope.
 */
export function parseReview(body: unknown): ParsedReview {
  if (!isObject(body)) {
    return {
      ok: false,
      reason: 'not-an-object',
      message: 'the body must be a JSON object (an admission.k8s.io/v1 AdmissionReview)',
    };
  }
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    return {
      ok: false,
      reason: 'unsupported-api-version',
      message: `apiVersion must be ${ADMISSION_API_VERSION}, got ${JSON.stringify(body.apiVersion ?? null)} (set admissionReviewVersions: ["v1"])`,
    };
  }
  if (body.kind !== 'AdmissionReview') {
    return {
      ok: false,
      reason: 'not-an-admission-review',
      message: `kind must be AdmissionReview, got ${JSON.stringify(body.kind ?? null)}`,
    };
  }
  const request = body.request;
  if (!isObject(request)) {
    return { ok: false, reason: 'no-request', message: 'the AdmissionReview has no request object' };
  }
  if (typeof request.uid !== 'string' || request.uid === '') {
    return { ok: false, reason: 'no-uid', message: 'request.uid is missing or not a non-empty string' };
  }
  return { ok: true, request: request as unknown as AdmissionRequest };
}

export function allowed(uid: string, warnings?: string[]): Response {
  return warnings && warnings.length > 0 ? { uid, allowed: true, warnings } : { uid, allowed: true };
}

export function patched(uid: string, patch: Operation[], warnings?: string[]): Response {
  const res = allowed(uid, warnings);
  if (patch.length > 0) res.patch = patch;
  return res;
}

export function denied(uid: string, code: number, message: string, warnings?: string[]): Response {
  const res: Response = {
    uid,
    allowed: false,
    status: { code, message, reason: code >= 500 ? 'InternalError' : code === 403 ? 'Forbidden' : 'BadRequest' },
  };
  if (warnings && warnings.length > 0) res.warnings = warnings;
  return res;
}

/** admit()'s outcome as a Response. */
export function fromOutcome(uid: string, outcome: AdmitOutcome): Response {
  if (outcome.allowed) return patched(uid, outcome.patch, outcome.warnings);
  const status = outcome.status ?? { code: 403, message: `denied: ${outcome.reason}` };
  return denied(uid, status.code, status.message, outcome.warnings);
}

/** The patch as the wire carries it: its JSON, base64-encoded. */
export function encodePatch(patch: Operation[]): string {
  return Buffer.from(JSON.stringify(patch)).toString('base64');
}

/** Wraps a Response in the v1 envelope; the patch is base64 JSON with patchType JSONPatch, and only when non-empty. */
export function toReview(res: Response): AdmissionReviewResponse {
  const response: AdmissionResponse = { uid: res.uid, allowed: res.allowed };
  if (res.patch && res.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = encodePatch(res.patch);
  }
  if (res.warnings && res.warnings.length > 0) response.warnings = res.warnings;
  if (res.status) response.status = res.status;
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

// The fixed start of every answer; JSON.stringify(toReview(res)) writes these keys in this order.
const REVIEW_HEAD = `{"apiVersion":"${ADMISSION_API_VERSION}","kind":"AdmissionReview","response":{"uid":`;

/**
 * The wire body of toReview(res), byte for byte what JSON.stringify(toReview(res)) gives, written in one pass: the
 * serving path sends this string as it is, so the answer is encoded once (the base64 patch, a ~2 kB string, is not
 * copied into an envelope object and scanned again by a serializer).
 */
export function encodeReview(res: Response): string {
  let out = `${REVIEW_HEAD}${JSON.stringify(res.uid)},"allowed":${res.allowed ? 'true' : 'false'}`;
  // base64 needs no JSON escaping.
  if (res.patch && res.patch.length > 0) out += `,"patchType":"JSONPatch","patch":"${encodePatch(res.patch)}"`;
  if (res.warnings && res.warnings.length > 0) out += `,"warnings":${JSON.stringify(res.warnings)}`;
  if (res.status) out += `,"status":${JSON.stringify(res.status)}`;
  return `${out}}}`;
}

export type ReviewOutcome = 'patched' | 'skipped' | 'denied' | 'error';

export interface Handled {
  response: Response;
  outcome: ReviewOutcome;
  reason: string;
}

/**
 * Handle(request) -> Response: runs admit and maps its outcome. A throw or a malformed outcome (a bug in admit) is
 * answered by the one safety-net policy (safety-net.ts) and counted as an error.
 */
export function handle(request: AdmissionRequest, config: SharedConfig, admit: AdmitFn): Handled {
  try {
    const outcome = admit(request, config);
    const response = fromOutcome(request.uid, outcome);
    // A 'patched' decision with no ops (already rewritten) is reported as what happened: nothing changed.
    const decision: ReviewOutcome =
      outcome.reason === 'internal-error'
        ? 'error'
        : outcome.decision === 'patched' && !response.patch
          ? 'skipped'
          : outcome.decision;
    return { response, outcome: decision, reason: outcome.reason };
  } catch (err) {
    return {
      response: fromOutcome(request.uid, internalError(request, err)),
      outcome: 'error',
      reason: 'internal-error',
    };
  }
}
