package rules

import (
	"os/exec"
	"sort"
	"strings"
	"testing"

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
