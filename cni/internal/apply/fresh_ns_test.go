package apply_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// tracedApplier is applier(t, backend) with every iptables command wrapped in a script that appends its
// role (restore4, save6, ...) to a log before running the real command, so tests see which execs an Apply
// costs. failFresh makes the restores refuse (exit 1, applying nothing) any input that declares chains with -N,
// which only the fresh-namespace path sends.
func tracedApplier(t *testing.T, backend string, failFresh bool) (*apply.Applier, func() []string) {
	t.Helper()
	a := applier(t, backend)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "execs.log")
	wrap := func(role, real string) string {
		guard := ""
		if failFresh && strings.HasPrefix(role, "restore") {
			guard = `input=$(cat)
case "$input" in *"-N "*) echo "` + role + `-refused" >> "` + logFile + `"; exit 1;; esac
printf '%s\n' "$input" | `
		}
		script := fmt.Sprintf("#!/bin/sh\necho %s >> %q\n%sexec %q \"$@\"\n", role, logFile, guard, real)
		if guard != "" {
			script = fmt.Sprintf("#!/bin/sh\necho %s >> %q\n%s%q \"$@\"\n", role, logFile, guard, real)
		}
		p := filepath.Join(dir, role)
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b := &a.Backend
	b.Restore4, b.Save4, b.Cmd4 = wrap("restore4", b.Restore4), wrap("save4", b.Save4), wrap("cmd4", b.Cmd4)
	b.Restore6, b.Save6, b.Cmd6 = wrap("restore6", b.Restore6), wrap("save6", b.Save6), wrap("cmd6", b.Cmd6)
	execs := func() []string {
		data, err := os.ReadFile(logFile)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(logFile)
		return strings.Fields(string(data))
	}
	return a, execs
}

// dualStackSpec is the oracle's basic case for IPv4 and, as Istio renders it, for IPv6 (loopback addresses
// of IPv6), with the oracle's iptables-save for IPv4.
func dualStackSpec(t *testing.T, backend string) (apply.Spec, string) {
	t.Helper()
	dir := nettest.RequireOracles(t)
	v4 := nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin", "basic.txt.golden"))
	v6 := strings.NewReplacer("127.0.0.6/32", "::6/128", "127.0.0.1/32", "::1/128").Replace(v4)
	want := nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", "basic."+backend+".iptables-save"))
	return apply.Spec{IPv4: v4, IPv6: v6}, nettest.Normalize(want)
}

func sameExecs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	// The two families' fresh restores run at the same time: their order in the log is not fixed.
	if strings.Join(sortedCopy(got), " ") != strings.Join(sortedCopy(want), " ") {
		t.Fatalf("%s: execs %v, want %v", what, got, want)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// A pod's first ADD costs one restore per family and nothing else; a retried ADD (our chains are there) reads
// and replaces, ending in the same rules; removal of a namespace without tables execs nothing.
func TestFreshNamespaceOneRestorePerFamily(t *testing.T) {
	nettest.RequireTools(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			a, execs := tracedApplier(t, backend, false)
			spec, want := dualStackSpec(t, backend)
			n := nettest.NewNS(t)
			if _, err := a.Apply(n.Path(), spec, true); err != nil {
				t.Fatal(err)
			}
			sameExecs(t, "first ADD", execs(), "restore4", "restore6")
			v4, v6 := nettest.Save(t, n, backend, false), nettest.Save(t, n, backend, true)
			if v4 != want {
				t.Fatalf("IPv4 rules differ from the golden:\n%s", v4)
			}
			if !strings.Contains(v6, "-A ISTIO_OUTPUT -d ::1/128 -j RETURN") {
				t.Fatalf("IPv6 rules missing:\n%s", v6)
			}
			if _, err := a.Apply(n.Path(), spec, true); err != nil {
				t.Fatalf("retried ADD: %v", err)
			}
			sameExecs(t, "retried ADD", execs(), "save4", "restore4", "save6", "restore6")
			if got := nettest.Save(t, n, backend, false); got != v4 {
				t.Fatalf("retried ADD changed the IPv4 rules:\n%s", got)
			}
			if got := nettest.Save(t, n, backend, true); got != v6 {
				t.Fatalf("retried ADD changed the IPv6 rules:\n%s", got)
			}

			// An IPv4-only pod in a fresh namespace: no ip6tables exec at all.
			n4 := nettest.NewNS(t)
			if _, err := a.Apply(n4.Path(), spec, false); err != nil {
				t.Fatal(err)
			}
			sameExecs(t, "IPv4-only ADD", execs(), "restore4")
			if err := a.Remove(n4.Path()); err != nil {
				t.Fatal(err)
			}
			sameExecs(t, "DEL of the IPv4-only pod", execs(), "save4", "restore4")
			if err := a.Remove(nettest.NewNS(t).Path()); err != nil {
				t.Fatal(err)
			}
			sameExecs(t, "DEL of an empty namespace", execs())
		})
	}
}

// A plugin killed half-way through an ADD (IPv4 programmed, IPv6 not) is followed by the runtime's retried ADD:
// the IPv4 family now has tables and is replaced, IPv6 is still fresh; both end exactly as in a clean ADD.
// A leftover chain of ours that the new rules do not use (an earlier TPROXY pod's mangle chain) is removed.
func TestRetriedAddAfterCrashMidway(t *testing.T) {
	nettest.RequireTools(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			a, execs := tracedApplier(t, backend, false)
			spec, want := dualStackSpec(t, backend)
			clean := nettest.NewNS(t)
			if _, err := a.Apply(clean.Path(), spec, true); err != nil {
				t.Fatal(err)
			}
			wantV6 := nettest.Save(t, clean, backend, true)
			execs()

			n := nettest.NewNS(t)
			restore := "iptables-" + backend + "-restore"
			if _, err := nettest.Output(n, "sh", "-c", fmt.Sprintf("printf '%%s' \"$0\" | %s --noflush", restore), spec.IPv4); err != nil {
				t.Fatal(err)
			}
			nettest.Run(t, n, "iptables-"+backend, "-w", "-t", "mangle", "-N", "ISTIO_DIVERT")
			if _, err := a.Apply(n.Path(), spec, true); err != nil {
				t.Fatalf("retried ADD: %v", err)
			}
			sameExecs(t, "retried ADD", execs(), "save4", "restore4", "restore6")
			got := nettest.Save(t, n, backend, false)
			if strings.Contains(got, "ISTIO_DIVERT") {
				t.Fatalf("leftover chain kept:\n%s", got)
			}
			// The leftover created the mangle table itself, which stays (empty) behind; nat is what counts.
			if nat := natOnly(got); nat != natOnly(want) {
				t.Fatalf("IPv4 nat differs from the golden:\n%s\nwant\n%s", nat, natOnly(want))
			}
			if got := nettest.Save(t, n, backend, true); got != wantV6 {
				t.Fatalf("IPv6 differs from a clean ADD:\n%s\nwant\n%s", got, wantV6)
			}
		})
	}
}

func natOnly(save string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "*") {
			in = l == "*nat"
		}
		if in {
			b.WriteString(l + "\n")
		}
		if l == "COMMIT" {
			in = false
		}
	}
	return b.String()
}

// When the restore into a namespace that looked fresh fails, the plugin reads the rules and replaces them
// instead, and the pod still ends with exactly its rules.
func TestFreshRestoreFailureFallsBack(t *testing.T) {
	nettest.RequireTools(t)
	backend := "nft"
	a, execs := tracedApplier(t, backend, true)
	spec, want := dualStackSpec(t, backend)
	n := nettest.NewNS(t)
	if _, err := a.Apply(n.Path(), spec, false); err != nil {
		t.Fatal(err)
	}
	sameExecs(t, "ADD", execs(), "restore4", "restore4-refused", "save4", "restore4")
	if got := nettest.Save(t, n, backend, false); got != want {
		t.Fatalf("rules differ from the golden:\n%s", got)
	}
}
