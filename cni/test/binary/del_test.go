package binary_test

import (
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// DEL always succeeds: after the namespace is gone, and with a config that has since become invalid (the
// cleanup still runs, with defaults).
func TestDelAlwaysSucceeds(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "p", nettest.Pod("default", "p", map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"}, nil))
	pod := nettest.NewNS(t)
	args := podArgs("default", "p")
	mustSucceed(t, "ADD", f.run(t, "ADD", pod, args, f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), nil)))

	before := f.api.Requests.Load()
	broken := f.conf(t, "1.0.0", nil, map[string]any{"api_timeout": "never", "kubeconfig": "/nonexistent"})
	mustSucceed(t, "DEL with an invalid config", f.run(t, "DEL", pod, args, broken))
	noRules(t, pod, f.backend)
	if f.api.Requests.Load() != before {
		t.Fatal("DEL called the API server")
	}

	gone := nettest.NewNS(t)
	path := gone.Path()
	_ = gone.Close()
	if err := testutils.UnmountNS(gone); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, "DEL of a removed namespace", nettest.RunPlugin(t, f.node, nettest.Invocation{Command: "DEL", Netns: path, Args: args,
		Config: f.conf(t, "1.0.0", nil, nil)}))
	mustSucceed(t, "DEL without CNI_NETNS", nettest.RunPlugin(t, f.node, nettest.Invocation{Command: "DEL", Args: args,
		Config: f.conf(t, "1.0.0", nil, nil), Unset: []string{"CNI_NETNS"}}))
}

// The node's own namespace is never programmed, even when the runtime passes it as CNI_NETNS.
func TestNodeNamespaceRefused(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "p", nettest.Pod("default", "p", nil, nil))
	conf := f.conf(t, "1.0.0", prevResult("1.0.0", f.node.Path()), nil)
	e := f.run(t, "ADD", f.node, podArgs("default", "p"), conf).Error(t)
	if e.Code != 8 || !strings.Contains(e.Msg, "node's own network namespace") {
		t.Fatalf("want code 8, got %+v", e)
	}
	if got := nettest.Save(t, f.node, f.backend, false); strings.Contains(got, "ISTIO") {
		t.Fatalf("the node namespace got rules:\n%s", got)
	}
	// skel itself refuses DEL on the plugin's own namespace (after our DEL declined to touch it).
	if e := f.run(t, "DEL", f.node, podArgs("default", "p"), conf).Error(t); e.Code != 8 {
		t.Fatalf("DEL on the node namespace: want code 8, got %+v", e)
	}
}
