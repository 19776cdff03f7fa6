package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/asm-cni/asm-cni/cni/internal/istio"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

// Interception modes (sidecar.istio.io/interceptionMode), as package istio defines them.
const (
	ModeRedirect = istio.ModeRedirect
	ModeTProxy   = istio.ModeTProxy
	ModeNone     = istio.ModeNone
)

// The pod annotations the plugin reads: exactly the ones Istio's CNI plugin reads.
const (
	AnnotationInterceptionMode         = istio.AnnotationInterceptionMode
	AnnotationIncludeOutboundIPRanges  = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutboundIPRanges  = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationIncludeInboundPorts      = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInboundPorts      = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationIncludeOutboundPorts     = "traffic.sidecar.istio.io/includeOutboundPorts"
	AnnotationExcludeOutboundPorts     = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationExcludeInterfaces        = "traffic.sidecar.istio.io/excludeInterfaces"
	AnnotationKubevirtInterfaces       = "traffic.sidecar.istio.io/kubevirtInterfaces" // deprecated alias
	AnnotationRerouteVirtualInterfaces = "istio.io/reroute-virtual-interfaces"
)

// Environment variables of the istio-proxy container the plugin reads.
const (
	EnvDNSCapture  = "ISTIO_META_DNS_CAPTURE"
	EnvInvalidDrop = "INVALID_DROP"
)

// Annotations lists every annotation FromPod reads, in the order it reads them.
var Annotations = []string{
	AnnotationInterceptionMode,
	AnnotationIncludeOutboundIPRanges,
	AnnotationExcludeOutboundIPRanges,
	AnnotationIncludeInboundPorts,
	AnnotationExcludeInboundPorts,
	AnnotationIncludeOutboundPorts,
	AnnotationExcludeOutboundPorts,
	AnnotationExcludeInterfaces,
	AnnotationRerouteVirtualInterfaces,
	AnnotationKubevirtInterfaces,
}

// Ports excluded from inbound capture whatever the annotation says: the agent's status port, the health
// port and Envoy's Prometheus port (as Istio's CNI plugin does).
var alwaysExcludedInboundPorts = []string{"15020", "15021", "15090"}

// Settings is what a pod's annotations, its istio-proxy's securityContext and env ask for, validated and
// normalised, with the plugin's defaults filled in.
type Settings struct {
	InterceptionMode string // REDIRECT, TPROXY or NONE (NONE renders nothing)
	ProxyUID         string // istio-proxy's runAsUser; 1337 when unset or 0
	ProxyGID         string // istio-proxy's runAsGroup; 1337 when unset or 0

	IncludeOutboundIPRanges CIDRList // default All
	ExcludeOutboundIPRanges CIDRList // default none
	IncludeInboundPorts     PortList // default All
	// ExcludeInboundPorts is the annotation's list (default 15020) followed by 15020,15021,15090,
	// de-duplicated. It applies only when IncludeInboundPorts is All.
	ExcludeInboundPorts  []string
	IncludeOutboundPorts []string // default none
	ExcludeOutboundPorts []string // default 15020; the annotation replaces it

	ExcludeInterfaces        []string
	RerouteVirtualInterfaces []string // istio.io/reroute-virtual-interfaces, else kubevirtInterfaces

	DNSCapture  bool // ISTIO_META_DNS_CAPTURE on istio-proxy: capture all DNS to the agent (15053)
	DropInvalid bool // INVALID_DROP on istio-proxy: drop conntrack-INVALID packets

	// Warnings are non-fatal findings (e.g. an env value that is not a boolean, read as false, as Istio
	// does), for the runtime to log.
	Warnings []string
}

// AnnotationError is an invalid annotation value. The message names the annotation and the value.
type AnnotationError struct {
	Annotation string
	Value      string
	Reason     string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("invalid annotation %s=%q: %s", e.Annotation, e.Value, e.Reason)
}

// FromPod reads the pod's redirection settings as Istio's CNI plugin does. An invalid annotation value is an
// *AnnotationError naming the annotation and the value; the pod must then not be started half-meshed.
func FromPod(p *pod.Pod) (Settings, error) {
	s := Settings{
		InterceptionMode:        ModeRedirect,
		ProxyUID:                strconv.Itoa(DefaultProxyUID),
		ProxyGID:                strconv.Itoa(DefaultProxyGID),
		IncludeOutboundIPRanges: CIDRList{All: true},
		IncludeInboundPorts:     PortList{All: true},
		ExcludeOutboundPorts:    []string{"15020"},
	}
	ann := p.Metadata.Annotations
	var err error

	if v, ok := ann[AnnotationInterceptionMode]; ok {
		if s.InterceptionMode, err = ParseInterceptionMode(v); err != nil {
			return s, annErr(AnnotationInterceptionMode, v, err)
		}
	}
	if v, ok := ann[AnnotationIncludeOutboundIPRanges]; ok {
		if s.IncludeOutboundIPRanges, err = ParseCIDRList(v, true); err != nil {
			return s, annErr(AnnotationIncludeOutboundIPRanges, v, err)
		}
	}
	if v, ok := ann[AnnotationExcludeOutboundIPRanges]; ok {
		if s.ExcludeOutboundIPRanges, err = ParseCIDRList(v, false); err != nil {
			return s, annErr(AnnotationExcludeOutboundIPRanges, v, err)
		}
	}
	if v, ok := ann[AnnotationIncludeInboundPorts]; ok {
		if s.IncludeInboundPorts, err = ParsePortList(v, true); err != nil {
			return s, annErr(AnnotationIncludeInboundPorts, v, err)
		}
	}
	excludeInbound := []string{"15020"}
	if v, ok := ann[AnnotationExcludeInboundPorts]; ok {
		pl, err := ParsePortList(v, false)
		if err != nil {
			return s, annErr(AnnotationExcludeInboundPorts, v, err)
		}
		excludeInbound = pl.Ports
	}
	s.ExcludeInboundPorts = dedup(append(append(make([]string, 0, len(excludeInbound)+3), excludeInbound...), alwaysExcludedInboundPorts...))
	if v, ok := ann[AnnotationIncludeOutboundPorts]; ok {
		pl, err := ParsePortList(v, false)
		if err != nil {
			return s, annErr(AnnotationIncludeOutboundPorts, v, err)
		}
		s.IncludeOutboundPorts = pl.Ports
	}
	if v, ok := ann[AnnotationExcludeOutboundPorts]; ok {
		pl, err := ParsePortList(v, false)
		if err != nil {
			return s, annErr(AnnotationExcludeOutboundPorts, v, err)
		}
		s.ExcludeOutboundPorts = pl.Ports
	}
	if v, ok := ann[AnnotationExcludeInterfaces]; ok {
		if s.ExcludeInterfaces, err = ParseInterfaceList(v); err != nil {
			return s, annErr(AnnotationExcludeInterfaces, v, err)
		}
	}
	// The deprecated kubevirtInterfaces is read only when istio.io/reroute-virtual-interfaces is absent.
	if v, ok := ann[AnnotationRerouteVirtualInterfaces]; ok {
		if s.RerouteVirtualInterfaces, err = ParseInterfaceList(v); err != nil {
			return s, annErr(AnnotationRerouteVirtualInterfaces, v, err)
		}
	} else if v, ok := ann[AnnotationKubevirtInterfaces]; ok {
		if s.RerouteVirtualInterfaces, err = ParseInterfaceList(v); err != nil {
			return s, annErr(AnnotationKubevirtInterfaces, v, err)
		}
	}

	if proxy := p.ProxyContainer(); proxy != nil {
		if sc := proxy.SecurityContext; sc != nil {
			if sc.RunAsUser != nil && *sc.RunAsUser != 0 {
				s.ProxyUID = strconv.FormatInt(*sc.RunAsUser, 10)
			}
			if sc.RunAsGroup != nil && *sc.RunAsGroup != 0 {
				s.ProxyGID = strconv.FormatInt(*sc.RunAsGroup, 10)
			}
		}
		s.DNSCapture = s.envBool(proxy, EnvDNSCapture)
		s.DropInvalid = s.envBool(proxy, EnvInvalidDrop)
	}
	return s, nil
}

// envBool reads a boolean env var of istio-proxy with strconv.ParseBool; like Istio, a value that is not a
// boolean counts as false and is reported as a warning.
func (s *Settings) envBool(c *pod.Container, name string) bool {
	v, ok := c.EnvValue(name)
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("istio-proxy env %s=%q is not a boolean; read as false", name, v))
		return false
	}
	return b
}

func annErr(name, value string, err error) error {
	return &AnnotationError{Annotation: name, Value: value, Reason: err.Error()}
}

// Engine maps the settings onto the engine configuration the way Istio's CNI plugin configures its
// engine: ports 15001/15006/15008, DNS capture of all DNS (the pod's resolvers are not known at ADD),
// IPv6 rendered (applied by the runtime only when the pod has IPv6 addresses).
func (s *Settings) Engine() Config {
	return Config{
		ProxyPort:                "15001",
		InboundCapturePort:       "15006",
		InboundTunnelPort:        "15008",
		ProxyUIDs:                []string{s.ProxyUID},
		ProxyGIDs:                []string{s.ProxyGID},
		InterceptionMode:         s.InterceptionMode,
		InboundPorts:             s.IncludeInboundPorts,
		InboundPortsExclude:      s.ExcludeInboundPorts,
		OutboundPortsInclude:     s.IncludeOutboundPorts,
		OutboundPortsExclude:     s.ExcludeOutboundPorts,
		OutboundIPRangesInclude:  s.IncludeOutboundIPRanges,
		OutboundIPRangesExclude:  s.ExcludeOutboundIPRanges,
		ExcludeInterfaces:        s.ExcludeInterfaces,
		RerouteVirtualInterfaces: s.RerouteVirtualInterfaces,
		RedirectDNS:              s.DNSCapture,
		CaptureAllDNS:            s.DNSCapture,
		DropInvalid:              s.DropInvalid,
		HostIPv4LoopbackCIDR:     v4Loopback,
		TProxyMark:               tproxyMarkStr,
		EnableIPv6:               true,
	}
}

// Render renders the pod's rules. Interception mode NONE renders nothing (such a pod is not selected).
func Render(s Settings) RuleSet {
	if s.InterceptionMode == ModeNone {
		return RuleSet{}
	}
	c := s.Engine()
	return RenderConfig(&c)
}

// ParseInterceptionMode accepts REDIRECT, TPROXY and NONE, exactly (case-sensitive, as Istio).
func ParseInterceptionMode(v string) (string, error) {
	switch v {
	case ModeRedirect, ModeTProxy, ModeNone:
		return v, nil
	}
	return "", fmt.Errorf("want one of REDIRECT, TPROXY, NONE")
}

// ParsePortList parses a comma-separated list of ports as Istio's CNI plugin does: the value and each entry
// trimmed of Unicode white space (strings.TrimSpace), an empty value is an empty list, every entry is decimal
// digits read as 0-65535 (strconv.ParseUint, base 10, 16 bits: no sign, no empty entry, leading zeros allowed).
// Entries are written back without leading zeros: iptables reads "080" as bad octal and "00443" as port 291.
// With wildcard, exactly "*" means every port.
func ParsePortList(v string, wildcard bool) (PortList, error) {
	if v == "*" {
		if wildcard {
			return PortList{All: true}, nil
		}
		return PortList{}, fmt.Errorf("\"*\" is not allowed here; list the ports")
	}
	t := strings.TrimSpace(v)
	if t == "" {
		return PortList{}, nil
	}
	parts := strings.Split(t, ",")
	ports := make([]string, 0, len(parts))
	for _, part := range parts {
		p := strings.TrimSpace(part)
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return PortList{}, fmt.Errorf("%q is not a port (want 0-65535)", p)
		}
		ports = append(ports, strconv.FormatUint(n, 10))
	}
	return PortList{Ports: ports}, nil
}

// ParseCIDRList parses a comma-separated list of IPv4/IPv6 CIDRs (an empty value is an empty list). With
// wildcard, "*" means every destination. Entries are written back in canonical form.
func ParseCIDRList(v string, wildcard bool) (CIDRList, error) {
	if v == "*" {
		if wildcard {
			return CIDRList{All: true}, nil
		}
		return CIDRList{}, fmt.Errorf("\"*\" is not allowed here; list the ranges")
	}
	var out CIDRList
	if v == "" {
		return out, nil
	}
	for _, part := range strings.Split(v, ",") {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return CIDRList{}, fmt.Errorf("%q is not a CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)", part)
		}
		if p.Addr().Is4() {
			out.V4 = append(out.V4, p.String())
		} else {
			out.V6 = append(out.V6, p.String())
		}
		if p.Addr().IsLoopback() {
			out.HasLoopback = true
		}
	}
	return out, nil
}

// ParseInterfaceList parses a comma-separated list of network interface names: the value and each entry
// trimmed of Unicode white space, empty entries dropped (as Istio's rule engine drops them), an empty value
// is an empty list. Each name is one word that iptables-restore takes verbatim and iptables-save prints back
// verbatim (validInterfaceName), so DEL and CHECK can find the rule again.
func ParseInterfaceList(v string) ([]string, error) {
	t := strings.TrimSpace(v)
	if t == "" {
		return nil, nil
	}
	parts := strings.Split(t, ",")
	out := make([]string, 0, len(parts))
	for _, part := range parts {
		name := strings.TrimSpace(part)
		if name == "" {
			continue
		}
		if err := validInterfaceName(name); err != nil {
			return nil, fmt.Errorf("%q is not an interface name: %v", name, err)
		}
		out = append(out, name)
	}
	return out, nil
}

// MaxInterfaceName is the longest name iptables takes (Linux IFNAMSIZ 16, less the terminating NUL), in bytes.
const MaxInterfaceName = 15

// validInterfaceName accepts what iptables -i/-o accepts as written (Istio passes the names through
// unchecked), except what would not survive the restore input and the save output as one word: white space
// and control characters split or end the line, '"' opens a quote in iptables-restore, and "+" alone makes
// iptables drop the -i match altogether (every interface). "$x", "eth0@if3", "." are fine: iptables takes them.
func validInterfaceName(n string) error {
	if len(n) > MaxInterfaceName {
		return fmt.Errorf("longer than %d bytes", MaxInterfaceName)
	}
	if n == "+" {
		return fmt.Errorf("\"+\" alone matches every interface")
	}
	for _, r := range n {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' {
			return fmt.Errorf("contains %q (no white space, control characters or '\"')", r)
		}
	}
	return nil
}

func dedup(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		seen := false
		for _, w := range out {
			if w == v {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, v)
		}
	}
	return out
}
