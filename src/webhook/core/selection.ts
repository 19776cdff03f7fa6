// The selection predicate shared with the Go plugin (test/vectors/README.md): the seed rule, then the webhook's
// extra conditions. The first condition that applies names the reason.
import { ANNOTATION, LABEL_INJECT, MODE } from '../../common/istio-names.js';
import { goParseBool } from './go-strings.js';
import { quote, stringEntry } from './json.js';
import { type PodView, envoyDisabled, interceptionMode, isNotSidecar } from './pod-view.js';

export type SeedReason =
  | 'excluded-namespace'
  | 'injection-disabled-label'
  | 'injection-disabled-annotation'
  | 'no-istio-proxy'
  | 'single-container'
  | 'selected';
/** Rows 6-9: skip reasons common to webhook and plugin beyond the seed. */
export type ExtraReason = 'host-network' | 'not-sidecar' | 'envoy-disabled' | 'interception-none';
export type WebhookReason = SeedReason | ExtraReason | 'not-create' | 'no-istio-init';
export type PluginReason = SeedReason | ExtraReason | 'istio-init-present';

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
    const b = goParseBool(label);
    if (b === false) return { reason: 'injection-disabled-label' };
    if (b === undefined) injectWarning = unparseable('label', label);
  } else {
    const annotation = stringEntry(view.annotations, ANNOTATION.inject);
    if (annotation !== undefined) {
      const b = goParseBool(annotation);
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

/**
 * Rows 6-9, common to webhook and plugin: no CNI call for hostNetwork pods; a gateway (`proxy router`) or a proxy
 * without Envoy is not redirected, as Istio's plugin does; NONE (from any source) means no redirection at all.
 */
function extraReason(view: PodView): ExtraReason | undefined {
  if (view.spec?.hostNetwork === true) return 'host-network';
  if (isNotSidecar(view.proxy)) return 'not-sidecar';
  if (envoyDisabled(view.proxy)) return 'envoy-disabled';
  if (interceptionMode(view) === MODE.none) return 'interception-none';
  return undefined;
}

export interface WebhookSelection {
  decision: 'patch' | 'skip';
  reason: WebhookReason;
  injectWarning?: string;
}

/** The webhook's decision: row 0 (operation), the seed, rows 6-9, then row 10 (nothing to rewrite without istio-init). */
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
