package apply_test

import (
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// Auto-detection follows the node namespace's own iptables: kubelet hint chains first, then which flavour holds
// more rules, nft when nothing is there. Each case is a fresh "node" namespace.
func TestDetectBackend(t *testing.T) {
	nettest.RequireTools(t)
	cases := []struct {
		name   string
		setup  [][]string
		want   string
		reason string
	}{
		{"empty node", nil, "nft", "default"},
		{"legacy rules only", [][]string{{"iptables-legacy", "-w", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT"}}, "legacy", "legacy rules"},
		{"nft rules only", [][]string{{"iptables-nft", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT"}}, "nft", "default"},
		{"nft hint beats more legacy rules", [][]string{
			{"iptables-legacy", "-w", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT"},
			{"iptables-legacy", "-w", "-A", "INPUT", "-s", "192.0.2.2/32", "-j", "ACCEPT"},
			{"iptables-nft", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT"},
		}, "nft", "KUBE-IPTABLES-HINT"},
		{"legacy canary beats more nft rules", [][]string{
			{"iptables-nft", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT"},
			{"iptables-nft", "-A", "INPUT", "-s", "192.0.2.2/32", "-j", "ACCEPT"},
			{"iptables-legacy", "-w", "-t", "mangle", "-N", "KUBE-KUBELET-CANARY"},
		}, "legacy", "KUBE-KUBELET-CANARY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			node := nettest.NewNS(t)
			for _, cmd := range c.setup {
				nettest.Run(t, node, cmd[0], cmd[1:]...)
			}
			var b apply.Backend
			nettest.InNS(t, node, func() error {
				var err error
				b, err = apply.DetectBackend("auto")
				return err
			})
			if b.Name != c.want || !strings.Contains(b.Reason, c.reason) {
				t.Fatalf("got %s (%s), want %s (%s)", b.Name, b.Reason, c.want, c.reason)
			}
			if !strings.HasSuffix(b.Restore4, "iptables-"+c.want+"-restore") || !strings.HasSuffix(b.Cmd6, "ip6tables-"+c.want) {
				t.Fatalf("commands do not match the flavour: %+v", b)
			}
		})
	}
	for _, forced := range []string{"nft", "legacy"} {
		b, err := apply.DetectBackend(forced)
		if err != nil || b.Name != forced || !strings.HasSuffix(b.Save4, "iptables-"+forced+"-save") {
			t.Fatalf("forced %s: %+v %v", forced, b, err)
		}
	}
}
