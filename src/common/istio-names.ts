// The names Istio gives to what asm-cni reads and writes: annotations, containers, the proxy's environment. One home
// for each, shared by the webhook and the installer (the Go plugin has its own in cni/internal/istio).

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
/** The privileged init container that programs the rules without CNI. */
export const ISTIO_INIT = 'istio-init';
/** The unprivileged init container of CNI mode: it checks the rules are in place. */
export const ISTIO_VALIDATION = 'istio-validation';
export const ISTIO_PROXY = 'istio-proxy';
export const DEFAULT_PROXY_ID = 1337;

/** The only proxy type that gets redirection (`proxy sidecar ...`; a gateway runs `proxy router ...`). */
export const PROXY_TYPE_SIDECAR = 'sidecar';

/** Environment of istio-proxy that selection reads. */
export const PROXY_ENV = {
  /** The effective interception mode, also when it came from proxy.istio.io/config or the mesh default. */
  interceptionMode: 'ISTIO_META_INTERCEPTION_MODE',
  /** The effective ProxyConfig as JSON. */
  proxyConfig: 'PROXY_CONFIG',
  /** true: the agent runs without Envoy, there is nothing to redirect to. */
  disableEnvoy: 'DISABLE_ENVOY',
} as const;

export const MODE = { redirect: 'REDIRECT', tproxy: 'TPROXY', none: 'NONE' } as const;
