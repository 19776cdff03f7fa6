package verify_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/plan"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/verify"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

func node(t *testing.T, backend string) *apply.Applier {
	t.Helper()
	b, err := apply.DetectBackend(backend)
	if err != nil {
		t.Fatal(err)
	}
	return &apply.Applier{Backend: b, Owned: plan.Owned(), Route: plan.Route()}
}

func decode(t *testing.T, m map[string]any) *pod.Pod {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pod.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func planFor(t *testing.T, annotations map[string]string) plan.Plan {
	t.Helper()
	pl, err := plan.For(decode(t, nettest.Pod("apps", "web", annotations, nil)), "apps", nil)
	if err != nil || pl.Spec == nil {
		t.Fatalf("plan: %+v %v", pl, err)
	}
	return pl
}

// programmed is a fresh namespace holding what the plugin's ADD programs for pl.
func programmed(t *testing.T, a *apply.Applier, pl plan.Plan) ns.NetNS {
	t.Helper()
	n := nettest.NewNS(t)
	if _, err := a.Apply(n.Path(), *pl.Spec, false); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return n
}

func check(t *testing.T, a *apply.Applier, pl plan.Plan, n ns.NetNS) verify.Report {
	t.Helper()
	r, err := verify.Check(a, plan.Owned(), pl, n.Path())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

func wantDiff(t *testing.T, r verify.Report, kind, fragment string) {
	t.Helper()
	if r.Verdict != verify.Drift {
		t.Fatalf("verdict %s, want drift; %+v", r.Verdict, r)
	}
	for _, d := range r.Differences {
		if d.Kind == kind && strings.Contains(d.String(), fragment) {
			return
		}
	}
	t.Fatalf("no %s difference mentioning %q in %v", kind, fragment, r.Differences)
}

// Every verdict, on both iptables backends, against namespaces programmed by the plugin's own Apply and then
// changed by hand the way an admin, a bug or another mesh would.
func TestVerdicts(t *testing.T) {
	nettest.RequireTools(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			a := node(t, backend)
			ipt := "iptables-" + backend
			basic := planFor(t, nil)

			t.Run("exact match", func(t *testing.T) {
				if r := check(t, a, basic, programmed(t, a, basic)); r.Verdict != verify.Match || len(r.Differences) != 0 {
					t.Fatalf("want match, got %+v", r)
				}
			})
			t.Run("deleted rule", func(t *testing.T) {
				n := programmed(t, a, basic)
				nettest.Run(t, n, ipt, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-d", "127.0.0.1/32", "-j", "RETURN")
				r := check(t, a, basic, n)
				wantDiff(t, r, "missing", "nat/ISTIO_OUTPUT missing: -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN")
				if r.Verdict.ExitCode() != verify.ExitDrift || r.Bare || r.Unredirected() {
					t.Fatalf("one rule missing is drift, not a pod without redirection: %+v", r)
				}
			})
			t.Run("added rule", func(t *testing.T) {
				n := programmed(t, a, basic)
				nettest.Run(t, n, ipt, "-w", "-t", "nat", "-A", "ISTIO_INBOUND", "-p", "tcp", "--dport", "9999", "-j", "RETURN")
				wantDiff(t, check(t, a, basic, n), "extra", "--dport 9999 -j RETURN")
			})
			t.Run("changed port", func(t *testing.T) {
				pl := planFor(t, map[string]string{"traffic.sidecar.istio.io/excludeInboundPorts": "3333"})
				n := programmed(t, a, pl)
				pos := ruleIndex(t, nettest.Run(t, n, ipt, "-w", "-t", "nat", "-S", "ISTIO_INBOUND"), "--dport 3333 ")
				nettest.Run(t, n, ipt, "-w", "-t", "nat", "-R", "ISTIO_INBOUND", pos, "-p", "tcp", "--dport", "3334", "-j", "RETURN")
				r := check(t, a, pl, n)
				wantDiff(t, r, "changed", "--dport 3334 -j RETURN (expected -A ISTIO_INBOUND -p tcp -m tcp --dport 3333 -j RETURN)")
			})
			t.Run("reordered rules", func(t *testing.T) {
				n := programmed(t, a, basic)
				nettest.Run(t, n, ipt, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-d", "127.0.0.1/32", "-j", "RETURN")
				nettest.Run(t, n, ipt, "-w", "-t", "nat", "-A", "ISTIO_OUTPUT", "-d", "127.0.0.1/32", "-j", "RETURN")
				wantDiff(t, check(t, a, basic, n), "order", "nat/ISTIO_OUTPUT")
			})
			t.Run("tproxy without its ip rule", func(t *testing.T) {
				pl := planFor(t, map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"})
				n := programmed(t, a, pl)
				if r := check(t, a, pl, n); r.Verdict != verify.Match {
					t.Fatalf("tproxy pod as programmed: want match, got %+v", r)
				}
				nettest.Run(t, n, "ip", "rule", "del", "fwmark", "1337", "lookup", "133")
				wantDiff(t, check(t, a, pl, n), "missing", "ip -4 rule fwmark 1337 lookup 133")
			})
			t.Run("both: istio-init-style rules beside the plugin's", func(t *testing.T) {
				n := programmed(t, a, basic)
				// What a second redirection source adds: its own jump from PREROUTING into the same chain.
				nettest.Run(t, n, ipt, "-w", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "ISTIO_INBOUND")
				wantDiff(t, check(t, a, basic, n), "extra", "nat/PREROUTING extra: -A PREROUTING -p tcp -j ISTIO_INBOUND")
			})
			t.Run("nothing programmed for a selected pod", func(t *testing.T) {
				r := check(t, a, basic, nettest.NewNS(t))
				wantDiff(t, r, "missing", "-N ISTIO_INBOUND")
				if !r.Bare || !r.Unredirected() {
					t.Fatalf("nothing of ours in the namespace: want a pod without redirection, got %+v", r)
				}
			})

			withInit := nettest.Pod("apps", "web", nil, nil)
			spec := withInit["spec"].(map[string]any)
			spec["initContainers"] = []any{map[string]any{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.29.6"}}
			skipped, err := plan.For(decode(t, withInit), "apps", nil)
			if err != nil || skipped.Spec != nil {
				t.Fatalf("a pod with istio-init: want a skip, got %+v %v", skipped, err)
			}
			t.Run("skipped pod, clean namespace", func(t *testing.T) {
				r := check(t, a, skipped, nettest.NewNS(t))
				if r.Verdict != verify.NotRedirected || r.Verdict.ExitCode() != verify.ExitNotRedirected || r.Reason == "" {
					t.Fatalf("want not-redirected with a reason, got %+v", r)
				}
			})
			t.Run("skipped pod redirected by someone else", func(t *testing.T) {
				n := programmed(t, a, basic) // istio-init programs the same rules the plugin would
				r := check(t, a, skipped, n)
				if r.Verdict != verify.OtherOwner || r.Verdict.ExitCode() != verify.ExitOtherOwner {
					t.Fatalf("want other-owner, got %+v", r)
				}
			})
		})
	}
}

// ruleIndex is the 1-based position (as iptables -R takes it) of the rule containing fragment in `iptables -S
// CHAIN` output, whose first line declares the chain.
func ruleIndex(t *testing.T, listing, fragment string) string {
	t.Helper()
	for i, l := range strings.Split(listing, "\n") {
		if strings.Contains(l+" ", fragment) {
			return strconv.Itoa(i)
		}
	}
	t.Fatalf("no rule with %q in:\n%s", fragment, listing)
	return ""
}

// A pod with a global IPv6 address is compared in both families: the plugin's IPv6 rules match, and one
// deleted from ip6tables is drift in IPv6 only.
func TestIPv6(t *testing.T) {
	nettest.RequireTools(t)
	a := node(t, "nft")
	pl := planFor(t, nil)
	n := nettest.NewNS(t)
	nettest.Run(t, n, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	nettest.Run(t, n, "ip", "link", "set", "eth0", "up")
	nettest.Run(t, n, "ip", "link", "set", "peer0", "up")
	nettest.Run(t, n, "ip", "-6", "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad")
	res, err := a.Apply(n.Path(), *pl.Spec, true)
	if err != nil || !res.IPv6 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if r := check(t, a, pl, n); r.Verdict != verify.Match {
		t.Fatalf("want match in both families, got %+v", r)
	}
	nettest.Run(t, n, "ip6tables-nft", "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-d", "::1/128", "-j", "RETURN")
	r := check(t, a, pl, n)
	wantDiff(t, r, "missing", "IPv6 nat/ISTIO_OUTPUT missing: -A ISTIO_OUTPUT -d ::1/128 -j RETURN")
	for _, d := range r.Differences {
		if d.Family != "IPv6" {
			t.Fatalf("only IPv6 differs, got %v", d)
		}
	}
}

// verify only reads: the namespace's rules are the same bytes before and after.
func TestReadOnly(t *testing.T) {
	nettest.RequireTools(t)
	a := node(t, "nft")
	pl := planFor(t, nil)
	n := programmed(t, a, pl)
	nettest.Run(t, n, "iptables-nft", "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-d", "127.0.0.1/32", "-j", "RETURN")
	before := nettest.Save(t, n, "nft", false)
	check(t, a, pl, n)
	if after := nettest.Save(t, n, "nft", false); after != before {
		t.Fatalf("verify changed the namespace:\n--- before\n%s--- after\n%s", before, after)
	}
}
