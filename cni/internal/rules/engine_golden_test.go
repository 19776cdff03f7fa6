package rules

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
)

// engineCases are the settings of Istio's engine goldens (oracles/istio/iptables/istio-iptables), as the
// oracle README lists them, applied to the goldens' base config (DefaultEngineConfig).
var engineCases = map[string]func(c *Config){
	"empty":                  func(c *Config) {},
	"inbound-ports-wildcard": func(c *Config) { c.InboundPorts = PortList{All: true} },
	"inbound-ports-include":  func(c *Config) { c.InboundPorts = ports("32000", "31000") },
	"inbound-ports-tproxy": func(c *Config) {
		c.InboundPorts = ports("32000", "31000")
		c.InterceptionMode = ModeTProxy
	},
	"outbound-ports-include": func(c *Config) { c.OutboundPortsInclude = []string{"32000", "31000"} },
	"ipnets":                 func(c *Config) { c.OutboundIPRangesInclude = cidrs("10.0.0.0/8") },
	"ipnets-with-kube-virt-interfaces": func(c *Config) {
		c.RerouteVirtualInterfaces = []string{"eth1", "eth2"}
		c.OutboundIPRangesInclude = cidrs("10.0.0.0/8")
	},
	"basic-exclude-nic":       func(c *Config) { c.ExcludeInterfaces = []string{"not-istio-nic"} },
	"drop-invalid":            func(c *Config) { c.DropInvalid = true },
	"host-ipv4-loopback-cidr": func(c *Config) { c.HostIPv4LoopbackCIDR = "127.0.0.1/8" },
	"outbound-owner-groups":   func(c *Config) { c.OwnerGroupsInclude = []string{"java", "202"} },
	"ip-range": func(c *Config) {
		c.OutboundIPRangesExclude = cidrs("1.1.0.0/16")
		c.OutboundIPRangesInclude = cidrs("9.9.0.0/16")
		c.RedirectDNS = true
		c.DNSServersV4 = []string{"127.0.0.53"}
		c.ProxyUIDs, c.ProxyGIDs = []string{"3", "4"}, []string{"1", "2"}
	},
	"dns-uid-gid": func(c *Config) {
		c.RedirectDNS = true
		c.DNSServersV4, c.DNSServersV6 = []string{"127.0.0.53"}, []string{"::127.0.0.53"}
		c.ProxyUIDs, c.ProxyGIDs = []string{"3", "4"}, []string{"1", "2"}
		c.EnableIPv6 = true
	},
	"ipv6-dns-outbound-owner-groups": func(c *Config) {
		c.EnableIPv6, c.RedirectDNS = true, true // no DNS servers: DNS capture stays off
		c.OwnerGroupsInclude = []string{"java", "202"}
	},
	"ipv6-dns-outbound-owner-groups-exclude": func(c *Config) {
		c.EnableIPv6, c.RedirectDNS = true, true
		c.OwnerGroupsExclude = []string{"888", "ftp"}
	},
	"ipv6-empty-inbound-ports": func(c *Config) { c.EnableIPv6 = true },
	"ipv6-inbound-ports": func(c *Config) {
		c.InboundPorts = ports("4000", "5000")
		c.EnableIPv6 = true
	},
	"ipv6-outbound-ports": func(c *Config) {
		c.OutboundPortsInclude = []string{"32000", "31000"}
		c.EnableIPv6 = true
	},
	"ipv6-virt-interfaces": func(c *Config) {
		c.InboundPorts = ports("4000", "5000")
		c.RerouteVirtualInterfaces = []string{"eth0", "eth1"}
		c.EnableIPv6 = true
	},
	"ipv6-uid-gid": func(c *Config) {
		c.InboundPorts = ports("4000", "5000")
		c.InboundPortsExclude = []string{"6000", "7000"} // ignored: inbound include is not "*"
		c.RerouteVirtualInterfaces = []string{"eth0", "eth1"}
		c.OutboundIPRangesInclude = cidrs("2001:db8::/32")
		c.OutboundIPRangesExclude = cidrs("2001:db8::/32")
		c.ProxyUIDs, c.ProxyGIDs = []string{"3", "4"}, []string{"1", "2"}
		c.EnableIPv6 = true
	},
	"tproxy": func(c *Config) {
		c.InterceptionMode = ModeTProxy
		c.InboundPorts = PortList{All: true}
		c.OutboundIPRangesExclude = cidrs("1.1.0.0/16")
		c.OutboundIPRangesInclude = cidrs("9.9.0.0/16")
		c.RedirectDNS = true
		c.DNSServersV4 = []string{"127.0.0.53"}
		c.ExcludeInterfaces = []string{"not-istio-nic"}
		c.EnableIPv6 = true
	},
}

func ports(p ...string) PortList { return PortList{Ports: p} }

func cidrs(list string) CIDRList {
	c, err := ParseCIDRList(list, true)
	if err != nil {
		panic(err)
	}
	return c
}

// engineGolden is one golden file split into what the engine ran: the restore input (IPv4 then IPv6) between
// the state dumps, and whether IPv6 was on (the final dump then includes ip6tables-save).
type engineGolden struct {
	restore string
	ipv6    bool
}

func readEngineGolden(t *testing.T, path string) engineGolden {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	// Leading "iptables-save", "ip6tables-save": the engine reading the state before applying.
	if len(lines) < 3 || lines[0] != "iptables-save" || lines[1] != "ip6tables-save" {
		t.Fatalf("%s: unexpected golden header %q", path, lines[:min(2, len(lines))])
	}
	lines = lines[2:]
	var g engineGolden
	// Trailing dumps: "iptables-save" and, with IPv6 on, "ip6tables-save".
	if n := len(lines); n > 0 && lines[n-1] == "ip6tables-save" {
		g.ipv6 = true
		lines = lines[:n-1]
	}
	if n := len(lines); n == 0 || lines[n-1] != "iptables-save" {
		t.Fatalf("%s: golden does not end with iptables-save", path)
	}
	lines = lines[:len(lines)-1]
	g.restore = strings.Join(lines, "\n") + "\n"
	return g
}

func TestEngineGoldens(t *testing.T) {
	dir := filepath.Join(rulestest.OracleDir(t), "iptables", "istio-iptables")
	files, err := filepath.Glob(filepath.Join(dir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no engine goldens in %s", dir)
	}
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".golden")
		t.Run(name, func(t *testing.T) {
			mutate, ok := engineCases[name]
			if !ok {
				t.Fatalf("golden %s has no case config here: add it to engineCases", name)
			}
			g := readEngineGolden(t, f)
			c := DefaultEngineConfig()
			mutate(&c)
			if c.EnableIPv6 != g.ipv6 {
				t.Fatalf("case config IPv6=%v but the golden ran with IPv6=%v", c.EnableIPv6, g.ipv6)
			}
			rs := RenderConfig(&c)
			if !strings.HasPrefix(g.restore, rs.IPv4) {
				t.Errorf("IPv4 rules differ from the golden\n%s", lineDiff(g.restore, rs.IPv4))
				return
			}
			wantV6 := g.restore[len(rs.IPv4):]
			if rs.IPv6 != wantV6 {
				t.Errorf("IPv6 rules differ from the golden\n%s", lineDiff(wantV6, rs.IPv6))
				return
			}
			if c.EnableIPv6 && rs.IPv6 == "" {
				t.Errorf("IPv6 on but no IPv6 rules rendered")
			}
		})
	}
	for name := range engineCases {
		if _, err := os.Stat(filepath.Join(dir, name+".golden")); err != nil {
			t.Errorf("case %s has no golden file", name)
		}
	}
}

// lineDiff shows the first differing line with a little context, enough to locate a rendering mistake.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "first difference at line " + itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl +
				"\n--- want ---\n" + want + "--- got ---\n" + got
		}
	}
	return "(identical lines; lengths differ)"
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}
