// Names the webhook reads and writes, and a read-only view of the pod fields it needs.
// The view is built once per review from the decoded JSON (no clone, no schema pass): every reader tolerates
// any shape, because admission input is untrusted and admit() must never throw.

export const ANNOTATION = {
  inject: 'sidecar.istio.io/inject',
  status: 'sidecar.istio.io/status',
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  kubevirtInterfaces: 'traffic.sidecar.istio.io/kubevirtInterfaces',
  rerouteVirtualInterfaces: 'istio.io/reroute-virtual-interfaces',
  excludeInterfaces: 'traffic.sidecar.istio.io/excludeInterfaces',
  multusNetworks: 'k8s.v1.cni.cncf.io/networks',
} as const;

export const LABEL_INJECT = 'sidecar.istio.io/inject';
export const ISTIO_INIT = 'istio-init';
export const ISTIO_VALIDATION = 'istio-validation';
export const ISTIO_PROXY = 'istio-proxy';
export const DEFAULT_PROXY_ID = 1337;

export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

export function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : EMPTY;
}
const EMPTY: readonly unknown[] = Object.freeze([]);

/** A string-valued entry of a labels/annotations map; anything else reads as absent. */
export function stringEntry(map: JsonObject | undefined, key: string): string | undefined {
  if (map === undefined || !Object.prototype.hasOwnProperty.call(map, key)) return undefined;
  const v = map[key];
  return typeof v === 'string' ? v : undefined;
}

const isNativeSidecar = (c: unknown): boolean => asObject(c)?.restartPolicy === 'Always';
const nameOf = (c: unknown): unknown => asObject(c)?.name;

/** What selection and rewrite read from a pod, computed in one pass over its containers. */
export interface PodView {
  pod: JsonObject;
  metadata: JsonObject | undefined;
  labels: JsonObject | undefined;
  annotations: JsonObject | undefined;
  spec: JsonObject | undefined;
  containers: readonly unknown[];
  initContainers: readonly unknown[];
  /** Index of the init container named istio-init, -1 when absent. */
  istioInitIndex: number;
  /** The istio-proxy container (classic, or native: an init container with restartPolicy Always), if any. */
  proxy: JsonObject | undefined;
  /** containers plus native sidecars: what "more than one container" counts. */
  containerCount: number;
}

export function viewPod(pod: JsonObject): PodView {
  const metadata = asObject(pod.metadata);
  const spec = asObject(pod.spec);
  const containers = asArray(spec?.containers);
  const initContainers = asArray(spec?.initContainers);
  let proxy: JsonObject | undefined;
  for (const c of containers) {
    if (nameOf(c) === ISTIO_PROXY) {
      proxy = asObject(c);
      break;
    }
  }
  let istioInitIndex = -1;
  let native = 0;
  for (let i = 0; i < initContainers.length; i++) {
    const c = initContainers[i];
    const name = nameOf(c);
    if (isNativeSidecar(c)) {
      native++;
      if (name === ISTIO_PROXY && proxy === undefined) proxy = asObject(c);
    }
    if (name === ISTIO_INIT && istioInitIndex < 0) istioInitIndex = i;
  }
  return {
    pod,
    metadata,
    labels: asObject(metadata?.labels),
    annotations: asObject(metadata?.annotations),
    spec,
    containers,
    initContainers,
    istioInitIndex,
    proxy,
    containerCount: containers.length + native,
  };
}

export function istioInit(view: PodView): JsonObject | undefined {
  return view.istioInitIndex < 0 ? undefined : asObject(view.initContainers[view.istioInitIndex]);
}

/** All short flags of istio-init's args in one pass (`-x value` and `-x=value`; the last occurrence wins). */
export function initArgs(args: readonly unknown[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (typeof a !== 'string' || a.length < 2 || a[0] !== '-' || a[1] === '-') continue;
    const eq = a.indexOf('=');
    if (eq > 0) {
      flags.set(a.slice(0, eq), a.slice(eq + 1));
    } else {
      const next = args[i + 1];
      if (typeof next === 'string') {
        flags.set(a, next);
        i++;
      }
    }
  }
  return flags;
}

/** Interception mode: the annotation when present, else istio-init's -m, else REDIRECT. */
export function interceptionMode(view: PodView): string {
  const annotated = stringEntry(view.annotations, ANNOTATION.interceptionMode);
  if (annotated !== undefined) return annotated;
  const init = istioInit(view);
  if (init !== undefined) {
    const m = initArgs(asArray(init.args)).get('-m');
    if (m !== undefined) return m;
  }
  return 'REDIRECT';
}

/** A value for a message: JSON-quoted, cut at 40 characters so a huge annotation cannot flood a response. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

/** RFC 6901 escaping of one reference token ("/" and "~" in annotation keys). */
export function pointerToken(key: string): string {
  let token = TOKENS.get(key);
  if (token === undefined) {
    token = key.replace(/~/g, '~0').replace(/\//g, '~1');
    // Only the webhook's own fixed keys are cached, so the cache stays a handful of entries.
    if (KNOWN_KEYS.has(key)) TOKENS.set(key, token);
  }
  return token;
}
const TOKENS = new Map<string, string>();
const KNOWN_KEYS = new Set<string>(Object.values(ANNOTATION));
