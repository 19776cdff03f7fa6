package binary_test

import (
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// Issue 10: the values Istio accepts and the webhook now admits (port 0, leading zeros, interface names such as
// "$x", "eth0@if3", "-j", "!", "'x'", "a\b", non-ASCII, empty list entries) go through the real binary: ADD programs
// them, a second ADD changes nothing, CHECK finds every rule again and DEL takes every one out, so the names survive
// iptables-save and the runtime's own reading of it.
func TestEdgeValuesIdempotentAndClean(t *testing.T) {
	f := newFixture(t)
	for _, mode := range []string{"REDIRECT", "TPROXY"} {
		t.Run(mode, func(t *testing.T) {
			p := nettest.Pod("default", "edge", map[string]string{
				"sidecar.istio.io/interceptionMode":             mode,
				"traffic.sidecar.istio.io/excludeInterfaces":    `$x,,eth0@if3, -j ,!,é,a\b,'x',.,`,
				"istio.io/reroute-virtual-interfaces":           "\ufeffv0,v+",
				"traffic.sidecar.istio.io/excludeInboundPorts":  "0,000080",
				"traffic.sidecar.istio.io/excludeOutboundPorts": "0, 00443\u0085",
				"traffic.sidecar.istio.io/includeOutboundPorts": "0",
			}, nil)
			f.api.SetPod(t, "default", "edge", p)
			pod := nettest.NewNS(t)
			conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path(), "192.0.2.11/24"), nil)
			args := podArgs("default", "edge")

			mustSucceed(t, "ADD", f.run(t, "ADD", pod, args, conf))
			v4 := nettest.Save(t, pod, f.backend, false)
			for _, want := range []string{"-i $x ", "-o eth0@if3 ", "-i -j ", "-i ! ", "-i é ", `-i a\b `, "-i 'x' ",
				"-i \ufeffv0 ", "--dport 0 ", "--dport 80 ", "--dport 443 "} {
				if !strings.Contains(v4, want) {
					t.Fatalf("rules lack %q:\n%s", want, v4)
				}
			}
			mustSucceed(t, "ADD again", f.run(t, "ADD", pod, args, conf))
			if got := nettest.Save(t, pod, f.backend, false); got != v4 {
				t.Fatalf("second ADD changed the rules\n--- first\n%s--- second\n%s", v4, got)
			}
			mustSucceed(t, "CHECK", f.run(t, "CHECK", pod, args, conf))
			mustSucceed(t, "DEL", f.run(t, "DEL", pod, args, conf))
			if s := nettest.Save(t, pod, f.backend, false); strings.Contains(s, "-A ") {
				t.Fatalf("left after DEL:\n%s", s)
			}
		})
	}
}
