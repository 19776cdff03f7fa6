package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

// TestRestoreAccepts loads rendered rules with the real iptables-restore / ip6tables-restore in a private,
// throw-away network namespace (unshare -n), so that every option combination the renderer produces is
// input the kernel accepts, not just text that matches a golden. The machine's own namespace is untouched.
func TestRestoreAccepts(t *testing.T) {
	testenv.RequireRoot(t)
	for _, bin := range []string{"unshare", "iptables-restore", "ip6tables-restore"} {
		_, err := exec.LookPath(bin)
		testenv.Require(t, err == nil, bin+" not installed (Debian packages util-linux, iptables)")
	}
	configs := map[string]Config{}
	for name, mutate := range engineCases {
		c := DefaultEngineConfig()
		mutate(&c)
		if numericGroups(c.OwnerGroupsInclude) && numericGroups(c.OwnerGroupsExclude) {
			configs["engine/"+name] = c // group names like "java" need the group to exist on this host
		}
	}
	plugin := func(mutate func(s *Settings)) Config {
		s := mustFromPod(t, basePod())
		mutate(&s)
		return s.Engine()
	}
	configs["plugin/default"] = plugin(func(s *Settings) {})
	configs["plugin/everything-redirect"] = plugin(func(s *Settings) {
		s.DNSCapture, s.DropInvalid = true, true
		s.ExcludeInterfaces, s.RerouteVirtualInterfaces = []string{"net1"}, []string{"veth+"}
		s.IncludeOutboundPorts = []string{"8080"}
		s.ExcludeOutboundIPRanges = cidrs("10.96.0.0/12,fd00::/8")
	})
	configs["plugin/everything-tproxy"] = plugin(func(s *Settings) {
		s.InterceptionMode = ModeTProxy
		s.DNSCapture, s.DropInvalid = true, true
		s.ExcludeInterfaces = []string{"net1"}
		s.IncludeOutboundIPRanges = cidrs("10.0.0.0/8,2001:db8::/32,127.0.0.1/32")
		s.IncludeInboundPorts = ports("80", "443")
	})
	// Issue 10: the edge values Istio accepts (port 0, leading zeros, odd interface names) load as rendered.
	for name, ann := range map[string]map[string]string{
		"plugin/issue-10-edge-values-redirect": {
			AnnotationIncludeInboundPorts: "0,000080", AnnotationExcludeOutboundPorts: "0, 00443", AnnotationIncludeOutboundPorts: "0",
			AnnotationExcludeInterfaces:        "$x,eth0@if3,.,..,eth0:1,é,-j,!,#x,'x',a\\b,*,eth1/2",
			AnnotationRerouteVirtualInterfaces: "\ufeffveth,,v+",
		},
		"plugin/issue-10-edge-values-tproxy": {
			AnnotationInterceptionMode: "TPROXY", AnnotationIncludeInboundPorts: "0,080", AnnotationExcludeInterfaces: "$x,-x",
		},
	} {
		s, err := FromPod(podWith(ann))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		configs[name] = s.Engine()
	}
	names := make([]string, 0, len(configs))
	for n := range configs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := configs[name]
		c.EnableIPv6 = true
		t.Run(name, func(t *testing.T) {
			rs := RenderConfig(&c)
			restore(t, "iptables-restore", rs.IPv4)
			restore(t, "ip6tables-restore", rs.IPv6)
		})
	}
}

func restore(t *testing.T, bin, input string) {
	t.Helper()
	cmd := exec.Command("unshare", "-n", bin, "--noflush")
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s refused the rules: %v\n%s\ninput:\n%s", bin, err, out, input)
	}
}

func numericGroups(groups []string) bool {
	for _, g := range groups {
		for i := 0; i < len(g); i++ {
			if g[i] < '0' || g[i] > '9' {
				return false
			}
		}
	}
	return true
}

// TestPluginGoldensRoundTrip loads each cni-plugin case's rendered IPv4 rules with the nft and the legacy
// iptables backends in a private network namespace and compares iptables-save's dump with the oracle's
// cni-plugin-iptables-save golden: the kernel holds exactly the rules Istio's plugin leaves.
func TestPluginGoldensRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(rulestest.OracleDir(t), "iptables", "cni-plugin-iptables-save")
	for _, backend := range []string{"nft", "legacy"} {
		for _, bin := range []string{"iptables-" + backend + "-restore", "iptables-" + backend + "-save"} {
			_, err := exec.LookPath(bin)
			testenv.Require(t, err == nil, bin+" not installed (Debian package iptables)")
		}
	}
	names := make([]string, 0, len(pluginCases))
	for n := range pluginCases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := basePod()
		pluginCases[name](p)
		rs := Render(mustFromPod(t, p))
		for _, backend := range []string{"nft", "legacy"} {
			t.Run(name+"/"+backend, func(t *testing.T) {
				want, err := os.ReadFile(filepath.Join(dir, name+"."+backend+".iptables-save"))
				if err != nil {
					t.Fatal(err)
				}
				script := "iptables-" + backend + "-restore --noflush && iptables-" + backend + "-save"
				cmd := exec.Command("unshare", "-n", "sh", "-c", script)
				cmd.Stdin = strings.NewReader(rs.IPv4)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v", script, err)
				}
				var got strings.Builder
				for _, l := range strings.SplitAfter(string(out), "\n") {
					if !strings.HasPrefix(l, "#") {
						got.WriteString(l)
					}
				}
				if got.String() != string(want) {
					t.Errorf("dump differs from the golden\n%s", lineDiff(string(want), got.String()))
				}
			})
		}
	}
}
