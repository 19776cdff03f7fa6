package rules

// Chains the rules create. They are the names Istio's own engine uses, so that tooling and runbooks written
// for istio-init and Istio's CNI plugin (iptables -t nat -L ISTIO_OUTPUT, ...) work unchanged.
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainRedirect   = "ISTIO_REDIRECT"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	ChainOutputDNS  = "ISTIO_OUTPUT_DNS"
	ChainDivert     = "ISTIO_DIVERT"
	ChainTProxy     = "ISTIO_TPROXY"
	ChainDrop       = "ISTIO_DROP"
)

// ChainNames lists, per table, every chain the renderer may create. The runtime uses it to clean up on DEL
// (flush and delete these chains after removing the jumps to them from the built-in chains) and to check
// on CHECK. Tables are listed in the order the restore input uses (alphabetical, like Istio's).
var ChainNames = map[string][]string{
	TableMangle: {ChainDivert, ChainTProxy, ChainInbound, ChainDrop},
	TableNat:    {ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput, ChainOutputDNS},
	TableRaw:    {ChainOutputDNS, ChainInbound},
}

// Tables, in the order they appear in the restore input.
const (
	TableMangle = "mangle"
	TableNat    = "nat"
	TableRaw    = "raw"
)

// Tables lists the tables the rules may touch, in restore order.
var Tables = []string{TableMangle, TableNat, TableRaw}

// TPROXY policy routing. Under TPROXY interception, inbound packets are marked TProxyMark; the runtime must
// route marked packets to the loopback interface: `ip rule add fwmark 1337 lookup 133` and
// `ip route add local default dev lo table 133` (and the -6 equivalents when IPv6 rules are applied).
const (
	TProxyMark       = 1337
	TProxyRouteTable = 133
	// OutboundMark marks the proxy's own connections to the pod IP so that TPROXY sends them to the app.
	OutboundMark = 1338
)

// Ports and identities of the sidecar, as Istio's injection template and CNI plugin use them.
const (
	ProxyPort           = 15001 // outbound capture (ISTIO_REDIRECT)
	InboundCapturePort  = 15006 // inbound capture (ISTIO_IN_REDIRECT / TPROXY)
	InboundTunnelPort   = 15008 // HBONE tunnel, never redirected
	DNSListenerPort     = 15053 // istio-agent's DNS proxy
	StatusPort          = 15020 // merged Prometheus / agent status
	HealthPort          = 15021 // readiness
	EnvoyPrometheusPort = 15090
	DefaultProxyUID     = 1337
	DefaultProxyGID     = 1337
)

const (
	tproxyMarkStr   = "1337"
	outboundMarkStr = "1338"
	dnsPortStr      = "15053"
	v4Loopback      = "127.0.0.1/32"
	v6Loopback      = "::1/128"
	v4Passthrough   = "127.0.0.6/32" // source of the proxy's inbound passthrough connections
	v6Passthrough   = "::6/128"
)
