// The rewrite from istio-init to CNI redirection, exactly as Istio's own CNI-mode injection renders a pod
// (../shared/oracles/istio/README.md, facts 1-8). It reads the request object and yields JSON-patch operations;
// it never clones the pod nor mutates it. Patch values share untouched sub-objects (env, resources) with the input:
// they are serialized into the response right away.
import type { Operation } from 'fast-json-patch';
import type { SharedConfig } from '../../common/shared-config.js';
import { ANNOTATION, DEFAULT_PROXY_ID, ISTIO_INIT, ISTIO_VALIDATION } from '../../common/istio-names.js';
import { goTrimSpace } from './go-strings.js';
import { type JsonObject, asArray, asObject, quote, stringEntry } from './json.js';
import { pointerToken } from './json-pointer.js';
import { type PodView, initArgs, istioInit } from './pod-view.js';
import { type AnnotationProblem } from './validate.js';

/** A traffic annotation the rewrite derives from one of istio-init's arguments. */
export interface DerivedAnnotation {
  annotation: string;
  value: string;
  source: string;
}

/** The metrics and health ports istio-init always excludes; CNI mode leaves them out of the annotation (fact 3). */
const IMPLICIT_INBOUND_EXCLUDES = '15090,15021';
const VALIDATION_FLAGS = ['--run-validation', '--skip-rule-apply'] as const;

/**
 * Fact 3: the annotations that carry what istio-init's args said, in the order Istio renders them.
 * The pod's own annotation is replaced when the argument says otherwise (Istio renders both from the same value;
 * -d adds the status port, e.g. annotation `4,5,6` with `-d 15090,15021,4,5,6,15020` becomes `4,5,6,15020`),
 * except the interception mode, whose annotation wins.
 */
export function annotationsFromInitArgs(
  args: readonly unknown[],
  current: JsonObject | undefined,
): DerivedAnnotation[] {
  const out: DerivedAnnotation[] = [];
  const flags = initArgs(args);
  const from = (flag: string, annotation: string, keepEmpty: boolean, transform?: (v: string) => string): void => {
    const raw = flags.get(flag);
    if (raw === undefined) return;
    const value = transform === undefined ? raw : transform(raw);
    if (value === '' && !keepEmpty) return;
    out.push({ annotation, value, source: `istio-init argument ${flag}` });
  };
  // The mode annotation, when present, is what selection read (webhook and plugin alike): it stays, so the pod is
  // rewritten and redirected under the same mode. Istio renders -m from that same annotation anyway.
  if (stringEntry(current, ANNOTATION.interceptionMode) === undefined) {
    from('-m', ANNOTATION.interceptionMode, true);
    if (!flags.has('-m')) {
      out.push({ annotation: ANNOTATION.interceptionMode, value: 'REDIRECT', source: 'the default interception mode' });
    }
  }
  from('-i', ANNOTATION.includeOutboundIPRanges, false);
  from('-x', ANNOTATION.excludeOutboundIPRanges, false);
  from('-b', ANNOTATION.includeInboundPorts, true);
  from('-d', ANNOTATION.excludeInboundPorts, true, stripImplicitExcludes);
  from('-q', ANNOTATION.includeOutboundPorts, true);
  from('-o', ANNOTATION.excludeOutboundPorts, true);
  return out;
}

function stripImplicitExcludes(d: string): string {
  if (d === IMPLICIT_INBOUND_EXCLUDES) return '';
  return d.startsWith(IMPLICIT_INBOUND_EXCLUDES + ',') ? d.slice(IMPLICIT_INBOUND_EXCLUDES.length + 1) : d;
}

function positiveId(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/** Fact 2: the proxy's UID/GID (1337 when unset or 0, and always under TPROXY, where the proxy itself runs as root). */
export function proxyIds(proxy: JsonObject | undefined, mode: string): { uid: number; gid: number } {
  if (mode === 'TPROXY') return { uid: DEFAULT_PROXY_ID, gid: DEFAULT_PROXY_ID };
  const sc = asObject(proxy?.securityContext);
  return { uid: positiveId(sc?.runAsUser) ?? DEFAULT_PROXY_ID, gid: positiveId(sc?.runAsGroup) ?? DEFAULT_PROXY_ID };
}

/** Facts 1-2: istio-init as istio-validation. A new top-level object; nested objects it does not change are shared. */
export function validationContainer(init: JsonObject, ids: { uid: number; gid: number }): JsonObject {
  const args = asArray(init.args);
  const newArgs = [...args];
  for (const flag of VALIDATION_FLAGS) if (!args.includes(flag)) newArgs.push(flag);
  const sc = asObject(init.securityContext);
  const { capabilities, ...rest } = sc ?? {};
  const caps = asObject(capabilities);
  let keptCaps: JsonObject | undefined;
  if (caps !== undefined) {
    const { add: _dropped, ...others } = caps;
    if (Object.keys(others).length > 0) keptCaps = others;
  }
  return {
    ...init,
    name: ISTIO_VALIDATION,
    args: newArgs,
    securityContext: {
      ...rest,
      ...(keptCaps === undefined ? {} : { capabilities: keptCaps }),
      readOnlyRootFilesystem: true,
      runAsGroup: ids.gid,
      runAsNonRoot: true,
      runAsUser: ids.uid,
    },
  };
}

/** Go's json.Marshal escapes these (HTML safety, JavaScript line terminators); JSON.stringify does not. */
const GO_ESCAPED = /[<>&\u2028\u2029]/g;
const goEscape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Fact 4: the status annotation lists istio-validation instead of istio-init. The value is user-controlled and may be
 * megabytes long (mutating admission runs before the API server's annotation size check), so it is parsed once with
 * the native JSON parser, linear in its length, and never searched with a pattern. It is written back as Go's
 * json.Marshal writes it, as Istio does: Istio's own value (compact, keys in struct order) comes back byte-exact.
 * Undefined when the value is not a JSON object whose `initContainers` lists istio-init.
 */
export function rewriteStatus(status: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(status);
  } catch {
    return undefined;
  }
  const obj = asObject(parsed);
  const inits: unknown = obj?.initContainers;
  if (!Array.isArray(inits)) return undefined;
  const names = inits as unknown[];
  const at = names.indexOf(ISTIO_INIT);
  if (at < 0) return undefined;
  // The first istio-init becomes istio-validation in its place; one already listed (a pod injected twice) goes, as
  // the rewrite keeps a single istio-validation init container.
  const initContainers = names
    .map((name, i) => (i === at ? ISTIO_VALIDATION : name))
    .filter((name, i) => i === at || name !== ISTIO_VALIDATION);
  const next = { ...obj, initContainers };
  return JSON.stringify(next).replace(GO_ESCAPED, goEscape);
}

export type NetworksResult = { value: string } | { unchanged: true } | { problem: AnnotationProblem };

/**
 * Fact 7: `k8s.v1.cni.cncf.io/networks` gains `default/<network>` (Multus), in the flat form
 * (`a, ns/b@eth1`) or the JSON form (`[{"name":"b","namespace":"ns"}]`), unless the pod already names it.
 */
export function appendNetwork(current: string | undefined, network: string, podNamespace: string): NetworksResult {
  const qualified = `default/${network}`;
  if (current === undefined || current.trim() === '') return { value: qualified };
  const text = current.trim();
  if (text.startsWith('[')) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch {
      list = undefined;
    }
    if (
      !Array.isArray(list) ||
      !list.every((e) => asObject(e) !== undefined && typeof asObject(e)!.name === 'string')
    ) {
      return {
        problem: {
          annotation: ANNOTATION.multusNetworks,
          value: current,
          detail: 'the JSON form must be a list of objects with a "name" (Multus network selection elements)',
        },
      };
    }
    const present = list.some((e: JsonObject) => {
      const ns = typeof e.namespace === 'string' ? e.namespace : podNamespace;
      return (e.name === network && ns === 'default') || e.name === qualified;
    });
    if (present) return { unchanged: true };
    return { value: JSON.stringify([...(list as unknown[]), { name: network, namespace: 'default' }]) };
  }
  for (const raw of current.split(',')) {
    const entry = raw.trim();
    const name = entry.split('@')[0]!;
    if (name === qualified || (name === network && podNamespace === 'default')) return { unchanged: true };
  }
  return { value: `${current}, ${qualified}` };
}

/** Collects annotation writes and emits valid ops for them, whether or not the annotations map exists yet. */
class AnnotationWrites {
  private readonly writes: Array<[string, string]> = [];
  constructor(private readonly view: PodView) {}

  set(key: string, value: string): void {
    if (stringEntry(this.view.annotations, key) !== value) this.writes.push([key, value]);
  }

  emit(ops: Operation[]): void {
    if (this.writes.length === 0) return;
    if (this.view.annotations === undefined) {
      const map = Object.fromEntries(this.writes);
      if (this.view.metadata === undefined) ops.push({ op: 'add', path: '/metadata', value: { annotations: map } });
      else ops.push({ op: 'add', path: '/metadata/annotations', value: map });
      return;
    }
    for (const [key, value] of this.writes) {
      const exists = Object.prototype.hasOwnProperty.call(this.view.annotations, key);
      ops.push({ op: exists ? 'replace' : 'add', path: `/metadata/annotations/${pointerToken(key)}`, value });
    }
  }
}

export interface RewritePlan {
  ops: Operation[];
  warnings: string[];
  /** Values the plugin would refuse; the caller denies (or warns and leaves the pod alone). */
  problems: AnnotationProblem[];
  /** The traffic annotations the rewrite writes, for validation. */
  derived: DerivedAnnotation[];
}

/**
 * The ops that turn a selected pod (istio-init present) into its CNI-mode rendering. Paths are valid when applied
 * in order: istio-init leaves its index before istio-validation takes index 0.
 */
export function planRewrite(view: PodView, mode: string, config: SharedConfig, namespace: string): RewritePlan {
  const init = istioInit(view);
  const ops: Operation[] = [];
  const warnings: string[] = [];
  const problems: AnnotationProblem[] = [];
  if (init === undefined) return { ops, warnings, problems, derived: [] };

  const validation = validationContainer(init, proxyIds(view.proxy, mode));
  // A pod injected twice can carry istio-validation beside istio-init: the API server refuses two init containers of
  // one name, so the old one goes and the one derived from istio-init (what the plugin will program) takes index 0.
  const stale = staleValidations(view);
  if (view.istioInitIndex === 0 && stale.length === 0) {
    ops.push({ op: 'replace', path: '/spec/initContainers/0', value: validation });
  } else {
    for (const i of [view.istioInitIndex, ...stale].sort((a, b) => b - a)) {
      ops.push({ op: 'remove', path: `/spec/initContainers/${i}` });
    }
    ops.push({ op: 'add', path: '/spec/initContainers/0', value: validation });
  }
  if (stale.length > 0) warnings.push(DUPLICATE_VALIDATION_WARNING);

  const writes = new AnnotationWrites(view);
  const derived = annotationsFromInitArgs(asArray(init.args), view.annotations);
  for (const d of derived) {
    const own = stringEntry(view.annotations, d.annotation);
    if (own !== undefined && !sameMeaning(d.annotation, own, d.value)) warnings.push(replacedWarning(d, own));
    writes.set(d.annotation, d.value);
  }

  const status = stringEntry(view.annotations, ANNOTATION.status);
  if (status !== undefined) {
    const next = rewriteStatus(status);
    if (next !== undefined) writes.set(ANNOTATION.status, next);
    else warnings.push(`annotation ${ANNOTATION.status} lists no ${ISTIO_INIT} init container; left as it is`);
  }

  networkWrite(view, config, namespace, writes, problems);
  if (mode === 'TPROXY') warnings.push(TPROXY_WARNING);
  writes.emit(ops);
  return { ops, warnings, problems, derived };
}

export const DUPLICATE_VALIDATION_WARNING = `the pod already had an ${ISTIO_VALIDATION} init container beside ${ISTIO_INIT} (injected twice?): replaced by the one derived from ${ISTIO_INIT}`;

/** Indices of init containers already named istio-validation. */
function staleValidations(view: PodView): number[] {
  const out: number[] = [];
  view.initContainers.forEach((c, i) => {
    if (asObject(c)?.name === ISTIO_VALIDATION) out.push(i);
  });
  return out;
}

/**
 * Whether the pod's own value says what istio-init's argument says. Lists compare as sets of trimmed, non-empty
 * entries (ports without leading zeros); excludeInboundPorts leaves out the ports the plugin always excludes
 * (15020, 15021, 15090: Istio's -d adds them), so Istio's ordinary rendering never warns.
 */
function sameMeaning(annotation: string, own: string, derived: string): boolean {
  if (own === derived) return true;
  const isPorts = PORT_ANNOTATIONS.has(annotation);
  const entries = (v: string): string => {
    const set = new Set<string>();
    for (const raw of v.split(',')) {
      let e = goTrimSpace(raw);
      if (isPorts && /^[0-9]+$/.test(e)) e = String(Number(e));
      if (e === '' || (annotation === ANNOTATION.excludeInboundPorts && ALWAYS_EXCLUDED.has(e))) continue;
      set.add(e);
    }
    return [...set].sort().join(',');
  };
  return entries(own) === entries(derived);
}
const PORT_ANNOTATIONS = new Set<string>([
  ANNOTATION.includeInboundPorts,
  ANNOTATION.excludeInboundPorts,
  ANNOTATION.includeOutboundPorts,
  ANNOTATION.excludeOutboundPorts,
]);
const ALWAYS_EXCLUDED = new Set(['15020', '15021', '15090']);

/** Issue 10, defect 8: the pod's own value is replaced by what istio-init would have applied; say so. */
function replacedWarning(d: DerivedAnnotation, own: string): string {
  return `annotation ${d.annotation}=${quote(own)} replaced by ${quote(d.value)} (${d.source}): what istio-init would have applied`;
}

export const TPROXY_WARNING =
  'interception mode TPROXY: istio-proxy keeps NET_ADMIN and runs as root, as in Istio CNI mode; not PodSecurity baseline';

function networkWrite(
  view: PodView,
  config: SharedConfig,
  namespace: string,
  writes: AnnotationWrites,
  problems: AnnotationProblem[],
): void {
  if (config.cniProvider !== 'multus') return;
  const r = appendNetwork(stringEntry(view.annotations, ANNOTATION.multusNetworks), config.multusNetwork, namespace);
  if ('problem' in r) problems.push(r.problem);
  else if ('value' in r) writes.set(ANNOTATION.multusNetworks, r.value);
}

/**
 * For a pod Istio already rendered in CNI mode (no istio-init): under Multus it still has to name the plugin's
 * network, or the plugin never runs for it. Returns the ops (possibly none) and any problem.
 */
export function planNetworkOnly(
  view: PodView,
  config: SharedConfig,
  namespace: string,
): { ops: Operation[]; problems: AnnotationProblem[] } {
  const ops: Operation[] = [];
  const problems: AnnotationProblem[] = [];
  const writes = new AnnotationWrites(view);
  networkWrite(view, config, namespace, writes, problems);
  writes.emit(ops);
  return { ops, problems };
}
