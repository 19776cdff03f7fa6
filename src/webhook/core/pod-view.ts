// A read-only view of the pod fields selection and rewrite need, built once per review from the decoded JSON (no
// clone, no schema pass), and what an Istio-injected pod says about its proxy. The Go plugin reads the same facts
// the same way (cni/internal/istio, cni/internal/pod); test/vectors/selection.json holds both to it.
import { ANNOTATION, ISTIO_INIT, ISTIO_PROXY, MODE, PROXY_ENV, PROXY_TYPE_SIDECAR } from '../../common/istio-names.js';
import { goParseBool } from './go-strings.js';
import { type JsonObject, asArray, asObject, stringEntry } from './json.js';

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

/**
 * All short flags of istio-init's args in one pass: `-x=value`, or `-x value` where every short flag takes the next
 * argument (pflag's rule); long flags are skipped; the last occurrence wins.
 */
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

/**
 * The literal value of a container's env variable, the last definition winning (as the kubelet does); a definition
 * without a literal value (valueFrom) reads as "", as the plugin's decoder reads it.
 */
export function envValue(container: JsonObject | undefined, name: string): string | undefined {
  const env = asArray(container?.env);
  for (let i = env.length - 1; i >= 0; i--) {
    const e = asObject(env[i]);
    if (e?.name === name) return typeof e.value === 'string' ? e.value : '';
  }
  return undefined;
}

/** The "interceptionMode" string of a ProxyConfig JSON object (exact key), else undefined. */
function proxyConfigMode(json: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  return stringEntry(asObject(parsed), 'interceptionMode');
}

/**
 * Interception mode, from the first source that has one: the annotation; istio-init's -m; the proxy's
 * ISTIO_META_INTERCEPTION_MODE; the interceptionMode of its PROXY_CONFIG; else REDIRECT. Istio sets the env from
 * proxy.istio.io/config or the mesh default, which leave no annotation and no istio-init (issue 10, defect 1).
 */
export function interceptionMode(view: PodView): string {
  const annotated = stringEntry(view.annotations, ANNOTATION.interceptionMode);
  if (annotated !== undefined) return annotated;
  const init = istioInit(view);
  if (init !== undefined) {
    const m = initArgs(asArray(init.args)).get('-m');
    if (m !== undefined) return m;
  }
  const env = envValue(view.proxy, PROXY_ENV.interceptionMode);
  if (env !== undefined) return env;
  const config = envValue(view.proxy, PROXY_ENV.proxyConfig);
  if (config !== undefined) {
    const m = proxyConfigMode(config);
    if (m !== undefined) return m;
  }
  return MODE.redirect;
}

/** What istio-proxy runs as: the TYPE of `proxy TYPE ...` (sidecar, router), or "" when its args do not say. */
export function proxyType(proxy: JsonObject | undefined): string {
  const args = asArray(proxy?.args);
  return args.length >= 2 && args[0] === 'proxy' && typeof args[1] === 'string' ? args[1] : '';
}

/** A proxy that is not a sidecar (a gateway): its traffic must not be redirected. */
export function isNotSidecar(proxy: JsonObject | undefined): boolean {
  const t = proxyType(proxy);
  return t !== '' && t !== PROXY_TYPE_SIDECAR;
}

/** DISABLE_ENVOY on istio-proxy read as true by Go's ParseBool: there is no Envoy to redirect to. */
export function envoyDisabled(proxy: JsonObject | undefined): boolean {
  const v = envValue(proxy, PROXY_ENV.disableEnvoy);
  return v !== undefined && goParseBool(v) === true;
}
