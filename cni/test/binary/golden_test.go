package binary_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// For every oracle cni-plugin case, the binary run as a runtime runs it leaves exactly the oracle's
// iptables-save in the pod namespace; a second ADD gives the same; CHECK passes and then fails once a rule is
// deleted; DEL removes everything (twice, and after the namespace is gone).
func TestOracleCasesThroughTheBinary(t *testing.T) {
	dir := nettest.RequireOracles(t)
	f := newFixture(t)
	for _, backend := range []string{"auto", "legacy"} {
		for _, c := range nettest.OracleCases {
			if backend == "legacy" && c.Name != "basic" && c.Name != "tproxy" {
				continue // the apply package's tests cover every case on both backends
			}
			t.Run(backend+"/"+c.Name, func(t *testing.T) {
				want := f.backend
				extra := map[string]any{}
				if backend != "auto" {
					want = backend
					extra["iptables_backend"] = backend
				}
				golden := nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", c.Name+"."+want+".iptables-save"))
				pod := nettest.NewNS(t)
				name := "pod-" + c.Name
				f.api.SetPod(t, "default", name, nettest.Pod("default", name, c.Annotations, c.ProxySC))
				conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), extra)
				args := podArgs("default", name)

				for i := 1; i <= 2; i++ {
					o := f.run(t, "ADD", pod, args, conf)
					mustSucceed(t, "ADD", o)
					samePrevResult(t, conf, o.Stdout)
					if got := nettest.Save(t, pod, want, false); got != nettest.Normalize(golden) {
						t.Fatalf("ADD #%d: iptables-save (%s) differs from the golden\n--- got\n%s--- want\n%s", i, want, got, golden)
					}
				}
				if c.TPROXY {
					rules := nettest.Run(t, pod, "ip", "rule", "show")
					if strings.Count(rules, "fwmark 0x539 lookup 133") != 1 {
						t.Fatalf("want one fwmark rule after two ADDs:\n%s", rules)
					}
				}
				mustSucceed(t, "CHECK", f.run(t, "CHECK", pod, args, conf))

				nettest.Run(t, pod, "iptables-"+want, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-j", "ISTIO_REDIRECT")
				e := f.run(t, "CHECK", pod, args, conf).Error(t)
				if e.Code != 107 || !strings.Contains(e.Msg, "ISTIO_OUTPUT") {
					t.Fatalf("CHECK after deleting a rule: want code 107 naming ISTIO_OUTPUT, got %+v", e)
				}

				for i := 0; i < 2; i++ {
					mustSucceed(t, "DEL", f.run(t, "DEL", pod, args, conf))
					noRules(t, pod, want)
				}
			})
		}
	}
}

// samePrevResult checks that ADD printed prevResult back unchanged, in the config's version.
func samePrevResult(t *testing.T, conf []byte, stdout string) {
	t.Helper()
	var c struct {
		CNIVersion string         `json:"cniVersion"`
		Prev       map[string]any `json:"prevResult"`
	}
	if err := json.Unmarshal(conf, &c); err != nil {
		t.Fatal(err)
	}
	pb, _ := json.Marshal(c.Prev)
	want, err := create.Create(c.CNIVersion, pb)
	if err != nil {
		t.Fatal(err)
	}
	got, err := create.Create(c.CNIVersion, []byte(stdout))
	if err != nil {
		t.Fatalf("ADD stdout is not a %s result: %v\n%s", c.CNIVersion, err, stdout)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil || raw["cniVersion"] != c.CNIVersion {
		t.Fatalf("ADD stdout cniVersion = %v, want %s", raw["cniVersion"], c.CNIVersion)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ADD changed prevResult:\n got %s\nwant %s", stdout, pb)
	}
}

// Every supported spec version: ADD passes the result through in that version's shape; the pod gets its rules.
func TestSpecVersions(t *testing.T) {
	f := newFixture(t)
	pod := nettest.NewNS(t)
	f.api.SetPod(t, "default", "v", nettest.Pod("default", "v", nil, nil))
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		conf := f.conf(t, v, prevResult(v, pod.Path()), nil)
		o := f.run(t, "ADD", pod, podArgs("default", "v"), conf)
		mustSucceed(t, "ADD "+v, o)
		samePrevResult(t, conf, o.Stdout)
		if !strings.Contains(nettest.Save(t, pod, f.backend, false), "-A OUTPUT -j ISTIO_OUTPUT") {
			t.Fatalf("%s: no rules", v)
		}
		if v == "1.1.0" {
			mustSucceed(t, "STATUS", f.run(t, "STATUS", pod, "", f.conf(t, v, nil, nil)))
			e := f.run(t, "STATUS", pod, "", f.conf(t, v, nil, map[string]any{"kubeconfig": "/nonexistent/kubeconfig"})).Error(t)
			if e.Code != 50 || !strings.Contains(e.Msg, "/nonexistent/kubeconfig") {
				t.Fatalf("STATUS with a missing kubeconfig: %+v", e)
			}
		}
	}
	o := nettest.RunPlugin(t, f.node, nettest.Invocation{Command: "VERSION"})
	mustSucceed(t, "VERSION", o)
	for _, v := range []string{"0.3.0", "1.1.0"} {
		if !strings.Contains(o.Stdout, `"`+v+`"`) {
			t.Fatalf("VERSION lacks %s: %s", v, o.Stdout)
		}
	}
}

// On a node whose own iptables are legacy (rules only in legacy tables), the plugin in auto mode programs the
// pod with legacy iptables: the legacy golden in the legacy tables, nothing in nft.
func TestLegacyNodeIsDetected(t *testing.T) {
	dir := nettest.RequireOracles(t)
	f := newFixture(t)
	nettest.Run(t, f.node, "iptables-legacy", "-w", "-A", "INPUT", "-s", "192.0.2.99/32", "-j", "ACCEPT")
	pod := nettest.NewNS(t)
	f.api.SetPod(t, "default", "p", nettest.Pod("default", "p", nil, nil))
	mustSucceed(t, "ADD", f.run(t, "ADD", pod, podArgs("default", "p"), f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), nil)))
	golden := nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", "basic.legacy.iptables-save"))
	if got := nettest.Save(t, pod, "legacy", false); got != nettest.Normalize(golden) {
		t.Fatalf("legacy tables differ from the golden:\n%s", got)
	}
	if got := nettest.Save(t, pod, "nft", false); strings.Contains(got, "ISTIO") {
		t.Fatalf("nft tables hold rules too:\n%s", got)
	}
	if log := nettest.ReadFile(t, f.logFile); !strings.Contains(log, "iptables legacy") {
		t.Fatalf("the log does not say which backend was used:\n%s", log)
	}
}
