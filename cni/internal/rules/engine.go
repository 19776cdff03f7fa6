package rules

// Config is the engine-level description of the redirection, the same knobs Istio's rule engine
// (istio-iptables, which istio-init runs) takes. Settings (what a pod's annotations say) maps onto it with
// the plugin's defaults; the engine goldens drive it directly with their own settings.
//
// All values are kept as the strings that appear in the rules, already validated, so rendering only
// copies bytes.
type Config struct {
	ProxyPort          string // outbound capture port (15001)
	InboundCapturePort string // inbound capture port (15006)
	InboundTunnelPort  string // never redirected inbound (15008)

	ProxyUIDs []string // traffic of these users is never redirected (the proxy itself)
	ProxyGIDs []string // same, by group

	InterceptionMode string // "REDIRECT" or "TPROXY"; anything else is treated as REDIRECT

	// InboundPorts: All = capture every inbound port (then InboundPortsExclude applies); otherwise only the
	// listed ports; none at all when empty.
	InboundPorts        PortList
	InboundPortsExclude []string

	OutboundPortsInclude []string // always redirected, whatever the destination
	OutboundPortsExclude []string // never redirected (tcp and udp)

	OutboundIPRangesInclude CIDRList // All = everything not excluded; else the listed ranges
	OutboundIPRangesExclude CIDRList

	ExcludeInterfaces        []string // traffic through these interfaces is not captured
	RerouteVirtualInterfaces []string // KubeVirt-style interfaces whose traffic is sent to the proxy

	// Owner groups: when OwnerGroupsInclude is non-empty only traffic of these groups is captured;
	// otherwise traffic of OwnerGroupsExclude is not.
	OwnerGroupsInclude []string
	OwnerGroupsExclude []string

	RedirectDNS   bool     // capture DNS to the agent's DNS proxy on 15053
	CaptureAllDNS bool     // capture DNS to any server (the CNI case: the pod's resolvers are not known)
	DNSServersV4  []string // else only DNS to these servers
	DNSServersV6  []string

	DropInvalid bool // drop packets conntrack marks INVALID

	HostIPv4LoopbackCIDR string // default 127.0.0.1/32
	TProxyMark           string // default 1337
	EnableIPv6           bool   // render the ip6tables rules too
}

// PortList is a list of ports, or every port (All).
type PortList struct {
	All   bool
	Ports []string
}

// Empty reports whether the list selects no port.
func (p PortList) Empty() bool { return !p.All && len(p.Ports) == 0 }

// CIDRList is a list of IP ranges split by family, or every destination (All).
type CIDRList struct {
	All bool
	V4  []string
	V6  []string
	// HasLoopback is set when a listed range is a loopback range: the proxy's loopback bypass rules are
	// then left out so that the listed loopback traffic is captured.
	HasLoopback bool
}

// Empty reports whether the list selects no destination.
func (c CIDRList) Empty() bool { return !c.All && len(c.V4) == 0 && len(c.V6) == 0 }

// RuleSet is the rendered redirection of one pod: iptables-restore input for each family (apply with
// `iptables-restore --noflush`; chains are created with -N, so a second restore of the same input fails
// with "Chain already exists" and the runtime must remove the chains first). IPv6 is always rendered for a
// pod; the runtime applies it when the pod has IPv6 addresses.
type RuleSet struct {
	IPv4   string
	IPv6   string
	TPROXY bool // the runtime must also set up the TPROXY policy routing (TProxyMark, TProxyRouteTable)
}

// Empty reports whether there is nothing to apply.
func (r RuleSet) Empty() bool { return r.IPv4 == "" && r.IPv6 == "" }

// DefaultEngineConfig is the base configuration of Istio's engine goldens: ports 15001/15006/15008,
// UID and GID 1337, REDIRECT, and no inbound or outbound capture, no IPv6. It is NOT the plugin's default.
func DefaultEngineConfig() Config {
	return Config{
		ProxyPort:            "15001",
		InboundCapturePort:   "15006",
		InboundTunnelPort:    "15008",
		ProxyUIDs:            []string{"1337"},
		ProxyGIDs:            []string{"1337"},
		InterceptionMode:     ModeRedirect,
		HostIPv4LoopbackCIDR: v4Loopback,
		TProxyMark:           tproxyMarkStr,
	}
}

// RenderConfig renders the rules for an engine configuration. Deterministic: the same Config always gives
// the same bytes.
func RenderConfig(c *Config) RuleSet {
	rs := RuleSet{TPROXY: c.InterceptionMode == ModeTProxy}
	b := newBuilder()
	renderFamily(c, false, b)
	rs.IPv4 = b.String()
	if c.EnableIPv6 {
		b = newBuilder()
		renderFamily(c, true, b)
		rs.IPv6 = b.String()
	}
	return rs
}

// renderFamily writes the rules of one address family, in the order Istio's engine emits them (the order
// matters: iptables evaluates rules top down, and the goldens pin it byte for byte).
func renderFamily(c *Config, v6 bool, b *builder) {
	loopback, passthrough := c.HostIPv4LoopbackCIDR, v4Passthrough
	if loopback == "" {
		loopback = v4Loopback
	}
	dnsServers, hostSuffix := c.DNSServersV4, "/32"
	includeRanges, excludeRanges := c.OutboundIPRangesInclude.V4, c.OutboundIPRangesExclude.V4
	if v6 {
		loopback, passthrough = v6Loopback, v6Passthrough
		dnsServers, hostSuffix = c.DNSServersV6, "/128"
		includeRanges, excludeRanges = c.OutboundIPRangesInclude.V6, c.OutboundIPRangesExclude.V6
	}
	mark := c.TProxyMark
	if mark == "" {
		mark = tproxyMarkStr
	}
	tproxy := c.InterceptionMode == ModeTProxy
	// DNS capture needs somewhere to capture: all DNS, or known servers of either family.
	redirectDNS := c.RedirectDNS && (c.CaptureAllDNS || len(c.DNSServersV4) > 0 || len(c.DNSServersV6) > 0)
	keepLoopbackBypass := !c.OutboundIPRangesInclude.HasLoopback

	// Interfaces that are not captured at all.
	for _, ifc := range c.ExcludeInterfaces {
		b.add(nat, "PREROUTING", "-i", ifc, "-j", "RETURN")
		b.add(nat, "OUTPUT", "-o", ifc, "-j", "RETURN")
	}
	if tproxy {
		for _, ifc := range c.ExcludeInterfaces {
			b.add(mangle, "PREROUTING", "-i", ifc, "-j", "RETURN")
			b.add(mangle, "OUTPUT", "-o", ifc, "-j", "RETURN")
		}
	}
	// Virtual interfaces' inbound traffic is not treated as the pod's inbound traffic.
	for _, ifc := range c.RerouteVirtualInterfaces {
		b.insert(nat, "PREROUTING", "1", "-i", ifc, "-j", "RETURN")
	}
	if c.DropInvalid {
		b.add(mangle, "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID", "-j", ChainDrop)
		b.add(mangle, ChainDrop, "-j", "DROP")
	}

	b.add(nat, ChainInbound, "-p", "tcp", "--dport", c.InboundTunnelPort, "-j", "RETURN")
	b.add(nat, ChainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", c.ProxyPort)
	b.add(nat, ChainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", c.InboundCapturePort)

	renderInbound(c, b, loopback, mark, tproxy)

	b.add(nat, "OUTPUT", "-j", ChainOutput)
	for _, p := range c.OutboundPortsExclude {
		b.add(nat, ChainOutput, "-p", "tcp", "--dport", p, "-j", "RETURN")
		b.add(nat, ChainOutput, "-p", "udp", "--dport", p, "-j", "RETURN")
	}
	// The proxy's inbound passthrough connections (source 127.0.0.6) go straight to the app.
	b.add(nat, ChainOutput, "-o", "lo", "-s", passthrough, "-j", "RETURN")

	// The proxy's users, then its groups. Only the user rules skip DNS in the VIP-to-self rule, as Istio's.
	renderProxyBypass(c, b, "--uid-owner", c.ProxyUIDs, loopback, redirectDNS, redirectDNS, keepLoopbackBypass)
	renderProxyBypass(c, b, "--gid-owner", c.ProxyGIDs, loopback, false, redirectDNS, keepLoopbackBypass)

	renderOwnerGroups(c, b)

	if redirectDNS {
		renderDNS(c, b, dnsServers, hostSuffix)
	}

	// Envoy-aware apps and container-to-container traffic use localhost explicitly.
	b.add(nat, ChainOutput, "-d", loopback, "-j", "RETURN")
	for _, cidr := range excludeRanges {
		b.add(nat, ChainOutput, "-d", cidr, "-j", "RETURN")
	}
	for _, p := range c.OutboundPortsInclude {
		b.add(nat, ChainOutput, "-p", "tcp", "--dport", p, "-j", ChainRedirect)
	}
	if c.OutboundIPRangesInclude.All {
		b.add(nat, ChainOutput, "-j", ChainRedirect)
		for _, ifc := range c.RerouteVirtualInterfaces {
			b.insert(nat, "PREROUTING", "1", "-i", ifc, "-j", ChainRedirect)
		}
	} else {
		for _, cidr := range includeRanges {
			for _, ifc := range c.RerouteVirtualInterfaces {
				b.insert(nat, "PREROUTING", "1", "-i", ifc, "-d", cidr, "-j", ChainRedirect)
			}
			b.add(nat, ChainOutput, "-d", cidr, "-j", ChainRedirect)
		}
	}

	if tproxy {
		renderTProxyMarks(c, b, loopback, passthrough, mark)
	}
}

// renderProxyBypass keeps the proxy's own traffic (by user or group) from being redirected to itself, while
// the proxy calling the pod's own service VIP back over lo still goes to inbound capture.
func renderProxyBypass(c *Config, b *builder, ownerFlag string, ids []string, loopback string, skipDNSInVIP, redirectDNS, keepLoopbackBypass bool) {
	for _, id := range ids {
		if skipDNSInVIP {
			b.add(nat, ChainOutput, "-o", "lo", "!", "-d", loopback, "-p", "tcp", "-m", "multiport",
				"!", "--dports", dnsAndTunnelPorts(c.InboundTunnelPort), "-m", "owner", ownerFlag, id, "-j", ChainInRedirect)
		} else {
			b.add(nat, ChainOutput, "-o", "lo", "!", "-d", loopback, "-p", "tcp",
				"!", "--dport", c.InboundTunnelPort, "-m", "owner", ownerFlag, id, "-j", ChainInRedirect)
		}
		// App to itself over lo is not redirected (unless loopback ranges are explicitly included); with DNS
		// capture, TCP DNS to a resolver on localhost still is.
		if keepLoopbackBypass {
			if redirectDNS {
				b.add(nat, ChainOutput, "-o", "lo", "-p", "tcp", "!", "--dport", "53",
					"-m", "owner", "!", ownerFlag, id, "-j", "RETURN")
			} else {
				b.add(nat, ChainOutput, "-o", "lo", "-m", "owner", "!", ownerFlag, id, "-j", "RETURN")
			}
		}
		// The proxy's own traffic, whatever its destination, is never redirected back to itself.
		b.add(nat, ChainOutput, "-m", "owner", ownerFlag, id, "-j", "RETURN")
	}
}

func dnsAndTunnelPorts(tunnel string) string {
	if tunnel == "15008" {
		return "53,15008" // the usual case, without an allocation
	}
	return "53," + tunnel
}

// renderInbound captures inbound TCP: with REDIRECT in nat to the inbound capture port; with TPROXY in
// mangle, marking packets for the policy route to lo.
func renderInbound(c *Config, b *builder, loopback, mark string, tproxy bool) {
	if c.InboundPorts.Empty() {
		return
	}
	t := nat
	if tproxy {
		b.add(mangle, ChainDivert, "-j", "MARK", "--set-mark", mark)
		b.add(mangle, ChainDivert, "-j", "ACCEPT")
		b.add(mangle, ChainTProxy, "!", "-d", loopback, "-p", "tcp", "-j", "TPROXY",
			"--tproxy-mark", mark+"/0xffffffff", "--on-port", c.InboundCapturePort)
		t = mangle
	}
	b.add(t, "PREROUTING", "-p", "tcp", "-j", ChainInbound)
	if c.InboundPorts.All {
		for _, p := range c.InboundPortsExclude {
			b.add(t, ChainInbound, "-p", "tcp", "--dport", p, "-j", "RETURN")
		}
		if tproxy {
			b.add(mangle, ChainInbound, "-p", "tcp", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", ChainDivert)
			b.add(mangle, ChainInbound, "-p", "tcp", "-j", ChainTProxy)
		} else {
			b.add(nat, ChainInbound, "-p", "tcp", "-j", ChainInRedirect)
		}
		return
	}
	for _, p := range c.InboundPorts.Ports {
		if tproxy {
			b.add(mangle, ChainInbound, "-p", "tcp", "--dport", p, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", ChainDivert)
			b.add(mangle, ChainInbound, "-p", "tcp", "--dport", p, "-j", ChainTProxy)
		} else {
			b.add(nat, ChainInbound, "-p", "tcp", "--dport", p, "-j", ChainInRedirect)
		}
	}
}

func renderOwnerGroups(c *Config, b *builder) {
	if len(c.OwnerGroupsInclude) > 0 {
		// Capture only these groups: return for traffic of none of them (one rule, matchers combined).
		b.begin(nat, ChainOutput, "")
		for _, g := range c.OwnerGroupsInclude {
			b.arg(nat, "-m")
			b.arg(nat, "owner")
			b.arg(nat, "!")
			b.arg(nat, "--gid-owner")
			b.arg(nat, g)
		}
		b.arg(nat, "-j")
		b.arg(nat, "RETURN")
		b.end(nat, "-j", "RETURN")
		return
	}
	for _, g := range c.OwnerGroupsExclude {
		b.add(nat, ChainOutput, "-m", "owner", "--gid-owner", g, "-j", "RETURN")
	}
}

// renderDNS sends the app's DNS to the agent's DNS proxy and splits DNS conntrack into two zones (proxy to
// upstream, app to proxy) so that UDP conntrack entries of the two legs do not collide.
func renderDNS(c *Config, b *builder, servers []string, hostSuffix string) {
	b.add(raw, "OUTPUT", "-j", ChainOutputDNS)
	if c.CaptureAllDNS || len(servers) > 0 {
		b.add(nat, ChainOutput, "-j", ChainOutputDNS)
	}
	if c.CaptureAllDNS {
		b.add(nat, ChainOutputDNS, "-p", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports", dnsPortStr)
		b.add(nat, ChainOutputDNS, "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-port", dnsPortStr)
	} else {
		for _, s := range servers {
			b.add(nat, ChainOutputDNS, "-p", "tcp", "--dport", "53", "-d", s+hostSuffix, "-j", "REDIRECT", "--to-ports", dnsPortStr)
		}
		for _, s := range servers {
			b.add(nat, ChainOutputDNS, "-p", "udp", "--dport", "53", "-d", s+hostSuffix, "-j", "REDIRECT", "--to-port", dnsPortStr)
		}
	}
	for _, uid := range c.ProxyUIDs {
		b.add(raw, ChainOutputDNS, "-p", "udp", "--dport", "53", "-m", "owner", "--uid-owner", uid, "-j", "CT", "--zone", "1")
		b.add(raw, ChainOutputDNS, "-p", "udp", "--sport", dnsPortStr, "-m", "owner", "--uid-owner", uid, "-j", "CT", "--zone", "2")
	}
	for _, gid := range c.ProxyGIDs {
		b.add(raw, ChainOutputDNS, "-p", "udp", "--dport", "53", "-m", "owner", "--gid-owner", gid, "-j", "CT", "--zone", "1")
		b.add(raw, ChainOutputDNS, "-p", "udp", "--sport", dnsPortStr, "-m", "owner", "--gid-owner", gid, "-j", "CT", "--zone", "2")
	}
	if c.CaptureAllDNS {
		b.add(raw, "PREROUTING", "-j", ChainInbound)
		b.add(raw, ChainOutputDNS, "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2")
		b.add(raw, ChainInbound, "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1")
		return
	}
	if len(servers) > 0 {
		b.add(raw, "PREROUTING", "-j", ChainInbound)
	}
	for _, s := range servers {
		b.add(raw, ChainOutputDNS, "-p", "udp", "--dport", "53", "-d", s+hostSuffix, "-j", "CT", "--zone", "2")
		b.add(raw, ChainInbound, "-p", "udp", "--sport", "53", "-s", s+hostSuffix, "-j", "CT", "--zone", "1")
	}
}

// renderTProxyMarks keeps TPROXY from looping: connection marks are saved and restored, the proxy's
// connections to the pod IP are marked 1338, and marked or local traffic skips ISTIO_INBOUND.
func renderTProxyMarks(c *Config, b *builder, loopback, passthrough, mark string) {
	b.add(mangle, "PREROUTING", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark")
	b.add(mangle, "OUTPUT", "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", mark, "-j", "RETURN")
	for _, uid := range c.ProxyUIDs {
		b.add(mangle, "OUTPUT", "!", "-d", loopback, "-p", "tcp", "-o", "lo", "-m", "owner", "--uid-owner", uid,
			"-j", "MARK", "--set-mark", outboundMarkStr)
	}
	for _, gid := range c.ProxyGIDs {
		b.add(mangle, "OUTPUT", "!", "-d", loopback, "-p", "tcp", "-o", "lo", "-m", "owner", "--gid-owner", gid,
			"-j", "MARK", "--set-mark", outboundMarkStr)
	}
	b.add(mangle, "OUTPUT", "-p", "tcp", "-m", "connmark", "--mark", mark, "-j", "CONNMARK", "--restore-mark")
	b.insert(mangle, ChainInbound, "1", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "RETURN")
	b.insert(mangle, ChainInbound, "2", "-p", "tcp", "-s", passthrough, "-i", "lo", "-j", "RETURN")
	b.insert(mangle, ChainInbound, "3", "-p", "tcp", "-i", "lo", "-m", "mark", "!", "--mark", outboundMarkStr, "-j", "RETURN")
}
