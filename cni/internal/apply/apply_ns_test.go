package apply_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// owned mirrors what the plugin passes (rules.ChainNames and the TPROXY marks), kept literal here so this
// package's tests do not depend on the renderer.
var owned = apply.Owned{
	Chains: map[string][]string{
		"mangle": {"ISTIO_DIVERT", "ISTIO_TPROXY", "ISTIO_INBOUND", "ISTIO_DROP"},
		"nat":    {"ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_OUTPUT_DNS"},
		"raw":    {"ISTIO_OUTPUT_DNS", "ISTIO_INBOUND"},
	},
	Marks: []uint32{1337, 1338},
}

func applier(t *testing.T, backend string) *apply.Applier {
	t.Helper()
	b, err := apply.DetectBackend(backend)
	if err != nil {
		t.Fatal(err)
	}
	return &apply.Applier{Backend: b, Owned: owned, Route: apply.PolicyRoute{Mark: 1337, Table: 133}, Logf: t.Logf}
}

var cases = []string{"basic", "include-exclude-ports", "tproxy", "custom-uid"}

// The oracle goldens, applied through the runtime, leave exactly the oracle's iptables-save in the netns, a
// second apply changes nothing, CHECK notices a deleted rule, and Remove leaves built-in chains only.
func TestApplyGoldensIdempotentCheckRemove(t *testing.T) {
	nettest.RequireTools(t)
	dir := nettest.RequireOracles(t)
	for _, backend := range []string{"nft", "legacy"} {
		for _, name := range cases {
			t.Run(backend+"/"+name, func(t *testing.T) {
				a := applier(t, backend)
				n := nettest.NewNS(t)
				rules := nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin", name+".txt.golden"))
				want := nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", name+"."+backend+".iptables-save"))
				spec := apply.Spec{IPv4: rules, TPROXY: name == "tproxy"}
				before := nettest.Save(t, n, backend, false)
				for i := 0; i < 2; i++ {
					if _, err := a.Apply(n.Path(), spec, false); err != nil {
						t.Fatalf("apply #%d: %v", i+1, err)
					}
					if got := nettest.Save(t, n, backend, false); got != nettest.Normalize(want) {
						t.Fatalf("apply #%d: iptables-save differs from the golden\n--- got\n%s--- want\n%s", i+1, got, want)
					}
				}
				if err := a.Check(n.Path(), spec, false); err != nil {
					t.Fatalf("check after apply: %v", err)
				}
				if spec.TPROXY {
					out := nettest.Run(t, n, "ip", "rule", "show")
					if strings.Count(out, "fwmark 0x539 lookup 133") != 1 {
						t.Fatalf("want exactly one fwmark rule, got:\n%s", out)
					}
					if r := nettest.Run(t, n, "ip", "route", "show", "table", "133"); !strings.Contains(r, "local default dev lo") {
						t.Fatalf("table 133 lacks the local default route:\n%s", r)
					}
				}
				nettest.Run(t, n, "iptables-"+backend, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-d", "127.0.0.1/32", "-j", "RETURN")
				err := a.Check(n.Path(), spec, false)
				if err == nil || !strings.Contains(err.Error(), "ISTIO_OUTPUT") {
					t.Fatalf("check after deleting a rule: want an error naming ISTIO_OUTPUT, got %v", err)
				}
				if err := a.Remove(n.Path()); err != nil {
					t.Fatalf("remove: %v", err)
				}
				if got := nettest.Save(t, n, backend, false); strings.Contains(got, "ISTIO") || strings.Contains(got, "-A ") {
					t.Fatalf("rules left after remove:\n%s", got)
				}
				_ = before
				if spec.TPROXY {
					if out := nettest.Run(t, n, "ip", "rule", "show"); strings.Contains(out, "lookup 133") {
						t.Fatalf("fwmark rule left after remove:\n%s", out)
					}
				}
			})
		}
	}
}
