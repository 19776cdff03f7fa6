// The selection predicate shared with the Go plugin (test/vectors/README.md): the seed rule, then the webhook's
// extra conditions. The first condition that applies names the reason.
import { ANNOTATION, LABEL_INJECT, type PodView, interceptionMode, quote, stringEntry } from './annotations.js';

export type SeedReason =
  | 'excluded-namespace'
  | 'injection-disabled-label'
  | 'injection-disabled-annotation'
  | 'no-istio-proxy'
  | 'single-container'
  | 'selected';
export type WebhookReason = SeedReason | 'not-create' | 'host-network' | 'interception-none' | 'no-istio-init';
export type PluginReason = SeedReason | 'host-network' | 'interception-none' | 'istio-init-present';

/**
 * Go's strconv.ParseBool, exactly: `1 t T TRUE true True` and `0 f F FALSE false False`; anything else
 * (no trimming, no other casing) is unparseable and gives undefined.
 */
export function parseBool(value: string): boolean | undefined {
  switch (value) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
    default:
      return undefined;
  }
}

export interface SeedResult {
  reason: SeedReason;
  /** Set when the deciding sidecar.istio.io/inject value was unparseable (it then does not disable injection). */
  injectWarning?: string;
}

/** Rows 1-5: the seed predicate. */
export function seedSelection(view: PodView, namespace: string, excludeNamespaces: readonly string[]): SeedResult {
  if (excludeNamespaces.includes(namespace)) return { reason: 'excluded-namespace' };
  let injectWarning: string | undefined;
  // The label, when present, decides alone; the annotation is consulted only without it.
  const label = stringEntry(view.labels, LABEL_INJECT);
  if (label !== undefined) {
    const b = parseBool(label);
    if (b === false) return { reason: 'injection-disabled-label' };
    if (b === undefined) injectWarning = unparseable('label', label);
  } else {
    const annotation = stringEntry(view.annotations, ANNOTATION.inject);
    if (annotation !== undefined) {
      const b = parseBool(annotation);
      if (b === false) return { reason: 'injection-disabled-annotation' };
      if (b === undefined) injectWarning = unparseable('annotation', annotation);
    }
  }
  const result = seedRest(view);
  return injectWarning === undefined ? { reason: result } : { reason: result, injectWarning };
}

function seedRest(view: PodView): SeedReason {
  if (view.proxy === undefined) return 'no-istio-proxy';
  if (view.containerCount <= 1) return 'single-container';
  return 'selected';
}

// Admission warnings are shown to kubectl users and truncated past 256 characters: keep them short.
function unparseable(where: 'label' | 'annotation', value: string): string {
  return `${where} ${LABEL_INJECT}=${quote(value)} is not a boolean (true/false, 1/0, t/f, True/False, TRUE/FALSE): ignored, injection stays on`;
}

/** Rows 6-7, common to webhook and plugin: no CNI call for hostNetwork pods; NONE means no redirection at all. */
function extraReason(view: PodView): 'host-network' | 'interception-none' | undefined {
  if (view.spec?.hostNetwork === true) return 'host-network';
  if (interceptionMode(view) === 'NONE') return 'interception-none';
  return undefined;
}

export interface WebhookSelection {
  decision: 'patch' | 'skip';
  reason: WebhookReason;
  injectWarning?: string;
}

/** The webhook's decision: row 0 (operation), the seed, rows 6-7, then row 8 (nothing to rewrite without istio-init). */
export function webhookSelection(
  view: PodView,
  namespace: string,
  excludeNamespaces: readonly string[],
  operation = 'CREATE',
): WebhookSelection {
  if (operation !== 'CREATE') return { decision: 'skip', reason: 'not-create' };
  const seed = seedSelection(view, namespace, excludeNamespaces);
  let reason: WebhookReason = seed.reason;
  if (reason === 'selected') reason = extraReason(view) ?? (view.istioInitIndex < 0 ? 'no-istio-init' : 'selected');
  const out: WebhookSelection = { decision: reason === 'selected' ? 'patch' : 'skip', reason };
  if (seed.injectWarning !== undefined) out.injectWarning = seed.injectWarning;
  return out;
}

/** The plugin's decision, kept here so one test can check both columns of the shared vectors against each other. */
export function pluginSelection(
  view: PodView,
  namespace: string,
  excludeNamespaces: readonly string[],
): { decision: 'redirect' | 'skip'; reason: PluginReason } {
  let reason: PluginReason = seedSelection(view, namespace, excludeNamespaces).reason;
  if (reason === 'selected')
    reason = extraReason(view) ?? (view.istioInitIndex >= 0 ? 'istio-init-present' : 'selected');
  return { decision: reason === 'selected' ? 'redirect' : 'skip', reason };
}
