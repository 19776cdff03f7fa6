package binary_test

import (
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// A pod using every setting that puts rules into built-in chains (DNS capture in raw and nat, INVALID drop,
// excluded and virtual interfaces, TPROXY marks) and IPv6: ADD twice gives the same rules in both families,
// CHECK passes, DEL leaves nothing of ours while a foreign rule in the same chains stays.
func TestRichPodIdempotentAndClean(t *testing.T) {
	f := newFixture(t)
	for _, mode := range []string{"REDIRECT", "TPROXY"} {
		t.Run(mode, func(t *testing.T) {
			p := nettest.Pod("default", "rich", map[string]string{
				"sidecar.istio.io/interceptionMode":                mode,
				"traffic.sidecar.istio.io/excludeInterfaces":       "eth9",
				"traffic.sidecar.istio.io/kubevirtInterfaces":      "net1",
				"traffic.sidecar.istio.io/excludeOutboundIPRanges": "198.51.100.0/24,2001:db8:2::/64",
				"traffic.sidecar.istio.io/includeOutboundPorts":    "7777",
			}, nil)
			proxy := p["spec"].(map[string]any)["containers"].([]any)[1].(map[string]any)
			proxy["env"] = []any{
				map[string]any{"name": "ISTIO_META_DNS_CAPTURE", "value": "true"},
				map[string]any{"name": "INVALID_DROP", "value": "true"},
			}
			f.api.SetPod(t, "default", "rich", p)
			pod := nettest.NewNS(t)
			ipt := "iptables-" + f.backend
			// A foreign rule in a built-in chain we also use must survive everything.
			nettest.Run(t, pod, ipt, "-w", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.250/32", "-j", "ACCEPT")
			conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path(), "192.0.2.10/24", "2001:db8:1::10/64"), nil)
			args := podArgs("default", "rich")

			mustSucceed(t, "ADD", f.run(t, "ADD", pod, args, conf))
			v4, v6 := nettest.Save(t, pod, f.backend, false), nettest.Save(t, pod, f.backend, true)
			for _, want := range []string{"*raw", "ISTIO_OUTPUT_DNS", "ISTIO_DROP", "eth9", "net1"} {
				if !strings.Contains(v4, want) {
					t.Fatalf("IPv4 rules lack %q:\n%s", want, v4)
				}
			}
			if !strings.Contains(v6, "ISTIO_OUTPUT") {
				t.Fatalf("IPv6 pod lacks ip6tables rules:\n%s", v6)
			}
			mustSucceed(t, "ADD again", f.run(t, "ADD", pod, args, conf))
			if got := nettest.Save(t, pod, f.backend, false); got != v4 {
				t.Fatalf("second ADD changed IPv4 rules\n--- first\n%s--- second\n%s", v4, got)
			}
			if got := nettest.Save(t, pod, f.backend, true); got != v6 {
				t.Fatalf("second ADD changed IPv6 rules\n--- first\n%s--- second\n%s", v6, got)
			}
			mustSucceed(t, "CHECK", f.run(t, "CHECK", pod, args, conf))

			mustSucceed(t, "DEL", f.run(t, "DEL", pod, args, conf))
			for _, v6 := range []bool{false, true} {
				s := nettest.Save(t, pod, f.backend, v6)
				if strings.Contains(s, "ISTIO") || strings.Contains(s, "eth9") || strings.Contains(s, "0x539") {
					t.Fatalf("left after DEL (v6=%v):\n%s", v6, s)
				}
			}
			if s := nettest.Save(t, pod, f.backend, false); !strings.Contains(s, "-A OUTPUT -d 192.0.2.250/32 -j ACCEPT") {
				t.Fatalf("DEL removed a foreign rule:\n%s", s)
			}
		})
	}
}

// IPv6 rules follow the namespace too: a pod whose prevResult lists only IPv4 but whose namespace has a global
// IPv6 address gets ip6tables rules; link-local addresses alone do not count.
func TestIPv6FromTheNamespace(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "p6", nettest.Pod("default", "p6", nil, nil))
	pod := nettest.NewNS(t)
	nettest.Run(t, pod, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
	nettest.Run(t, pod, "ip", "link", "set", "eth0peer", "up")
	nettest.Run(t, pod, "ip", "link", "set", "eth0", "up")
	conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path(), "192.0.2.10/24"), nil)

	mustSucceed(t, "ADD (link-local only)", f.run(t, "ADD", pod, podArgs("default", "p6"), conf))
	if s := nettest.Save(t, pod, f.backend, true); strings.Contains(s, "ISTIO") {
		t.Fatalf("IPv6 rules without a global IPv6 address:\n%s", s)
	}
	nettest.Run(t, pod, "ip", "addr", "add", "2001:db8:1::5/64", "dev", "eth0", "nodad")
	mustSucceed(t, "ADD (global IPv6)", f.run(t, "ADD", pod, podArgs("default", "p6"), conf))
	if s := nettest.Save(t, pod, f.backend, true); !strings.Contains(s, "-A OUTPUT -j ISTIO_OUTPUT") {
		t.Fatalf("no IPv6 rules for a namespace with 2001:db8:1::5:\n%s", s)
	}
	mustSucceed(t, "CHECK", f.run(t, "CHECK", pod, podArgs("default", "p6"), conf))
	nettest.Run(t, pod, "ip6tables-"+f.backend, "-w", "-t", "nat", "-D", "OUTPUT", "-j", "ISTIO_OUTPUT")
	if e := f.run(t, "CHECK", pod, podArgs("default", "p6"), conf).Error(t); e.Code != 107 || !strings.Contains(e.Msg, "IPv6") {
		t.Fatalf("CHECK after deleting an IPv6 jump: %+v", e)
	}
	mustSucceed(t, "DEL", f.run(t, "DEL", pod, podArgs("default", "p6"), conf))
	noRules(t, pod, f.backend)
}
