package binary_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

const token = "test-token-1"

// fixture is a node namespace with a stand-in API server in it; the plugin binary runs there.
type fixture struct {
	node       ns.NetNS
	api        *nettest.API
	kubeconfig string
	logFile    string
	backend    string // what the plugin detects in the node namespace
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	nettest.RequireTools(t)
	f := &fixture{node: nettest.NewNS(t)}
	f.api = nettest.StartAPI(t, f.node, token)
	f.kubeconfig = nettest.Kubeconfig(t, f.api.URL, f.api.CAData, token, "")
	f.logFile = filepath.Join(t.TempDir(), "asm-cni.log")
	nettest.InNS(t, f.node, func() error {
		b, err := apply.DetectBackend("auto")
		f.backend = b.Name
		return err
	})
	return f
}

// prevResult is a bridge-like result for the pod, in the given spec version's shape.
func prevResult(version, netnsPath string, ips ...string) map[string]any {
	if len(ips) == 0 {
		ips = []string{"192.0.2.10/24"}
	}
	var list []any
	for _, ip := range ips {
		e := map[string]any{"address": ip, "interface": 0}
		if strings.HasPrefix(version, "0.") {
			v := "4"
			if strings.Contains(ip, ":") {
				v = "6"
			}
			e["version"] = v
		}
		list = append(list, e)
	}
	return map[string]any{
		"cniVersion": version,
		"interfaces": []any{map[string]any{"name": "eth0", "sandbox": netnsPath}},
		"ips":        list,
	}
}

// conf is the network config the installer writes, with prevResult (unless nil) and overrides.
func (f *fixture) conf(t *testing.T, version string, prev map[string]any, extra map[string]any) []byte {
	t.Helper()
	c := map[string]any{
		"cniVersion":         version,
		"name":               "k8s-pod-network",
		"type":               "asm-cni",
		"kubeconfig":         f.kubeconfig,
		"exclude_namespaces": []string{"kube-system", "istio-system"},
		"log_level":          "debug",
		"log_file":           f.logFile,
		"api_timeout":        "5s",
	}
	if prev != nil {
		c["prevResult"] = prev
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func podArgs(namespace, name string) string {
	return fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=0123456789abcdef;K8S_POD_UID=1234", namespace, name)
}

func (f *fixture) run(t *testing.T, cmd string, pod ns.NetNS, args string, conf []byte) nettest.Outcome {
	t.Helper()
	return nettest.RunPlugin(t, f.node, nettest.Invocation{Command: cmd, Netns: pod.Path(), Args: args, Config: conf})
}

func mustSucceed(t *testing.T, what string, o nettest.Outcome) {
	t.Helper()
	if o.Exit != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, o.Exit, o.Stdout, o.Stderr)
	}
}

// noRules fails when the pod namespace holds any rule or chain of ours (v4 and v6) or the TPROXY ip rule.
func noRules(t *testing.T, pod ns.NetNS, backend string) {
	t.Helper()
	for _, v6 := range []bool{false, true} {
		if got := nettest.Save(t, pod, backend, v6); strings.Contains(got, "ISTIO") || strings.Contains(got, "-A ") {
			t.Fatalf("rules left in the pod namespace (v6=%v):\n%s", v6, got)
		}
	}
	if out := nettest.Run(t, pod, "ip", "rule", "show"); strings.Contains(out, "lookup 133") {
		t.Fatalf("TPROXY ip rule left:\n%s", out)
	}
}
