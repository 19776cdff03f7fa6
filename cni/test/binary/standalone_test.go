package binary_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"
	"sigs.k8s.io/yaml"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// emptyResult checks that ADD printed a result of the requested spec version that adds nothing: no interface,
// no address, no route (what a Multus additional network that only programs rules returns).
func emptyResult(t *testing.T, version, stdout string) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil || raw["cniVersion"] != version {
		t.Fatalf("ADD stdout cniVersion = %v (%v), want %s: %s", raw["cniVersion"], err, version, stdout)
	}
	r, err := create.Create(version, []byte(stdout))
	if err != nil {
		t.Fatalf("ADD stdout is not a valid %s result: %v\n%s", version, err, stdout)
	}
	cur, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("the %s result does not convert to the current version: %v", version, err)
	}
	if len(cur.Interfaces) != 0 || len(cur.IPs) != 0 || len(cur.Routes) != 0 {
		t.Fatalf("standalone ADD reported something it did not create: %s", stdout)
	}
}

// checkCatchesDeletion: CHECK passes, and after the command deletes one of the pod's rules it is error 107 naming want.
func (f *fixture) checkCatchesDeletion(t *testing.T, pod ns.NetNS, args string, conf []byte, want string, deleteRule ...string) {
	t.Helper()
	mustSucceed(t, "CHECK", f.run(t, "CHECK", pod, args, conf))
	nettest.Run(t, pod, deleteRule[0], deleteRule[1:]...)
	if e := f.run(t, "CHECK", pod, args, conf).Error(t); e.Code != 107 || !strings.Contains(e.Msg, want) {
		t.Fatalf("CHECK after %v: want code 107 naming %s, got %+v", deleteRule, want, e)
	}
}

// standalone: true (the Multus NetworkAttachmentDefinition) and no prevResult, in every supported spec version: the
// pod gets exactly the golden rules, ADD prints a valid empty result, CHECK works without prevResult and notices a
// deleted rule, DEL cleans up. Without standalone the same call is still error 7.
func TestStandaloneWithoutPrevResult(t *testing.T) {
	dir := nettest.RequireOracles(t)
	f := newFixture(t)
	golden := nettest.Normalize(nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", "basic."+f.backend+".iptables-save")))
	f.api.SetPod(t, "default", "web", nettest.Pod("default", "web", nil, nil))
	args := podArgs("default", "web")
	standalone := map[string]any{"standalone": true}

	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			pod := nettest.NewNS(t)
			conf := f.conf(t, v, nil, standalone)
			for i := 1; i <= 2; i++ {
				o := f.run(t, "ADD", pod, args, conf)
				mustSucceed(t, "standalone ADD", o)
				emptyResult(t, v, o.Stdout)
				if got := nettest.Save(t, pod, f.backend, false); got != golden {
					t.Fatalf("ADD #%d: iptables-save differs from the golden\n--- got\n%s--- want\n%s", i, got, golden)
				}
			}
			if v != "0.3.0" && v != "0.3.1" { // CHECK exists from 0.4.0
				f.checkCatchesDeletion(t, pod, args, conf, "ISTIO_OUTPUT", "iptables-"+f.backend, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-j", "ISTIO_REDIRECT")
			}
			mustSucceed(t, "DEL", f.run(t, "DEL", pod, args, conf))
			noRules(t, pod, f.backend)
		})
	}

	for name, extra := range map[string]map[string]any{"no standalone key": nil, "standalone false": {"standalone": false}} {
		t.Run(name, func(t *testing.T) {
			pod := nettest.NewNS(t)
			before := f.api.Requests.Load()
			e := f.run(t, "ADD", pod, args, f.conf(t, "1.0.0", nil, extra)).Error(t)
			if e.Code != 7 || !strings.Contains(e.Msg, "prevResult is missing") || !strings.Contains(e.Msg, "standalone") {
				t.Fatalf("chained ADD without prevResult: want code 7 about prevResult, got %+v", e)
			}
			e = f.run(t, "CHECK", pod, args, f.conf(t, "1.0.0", nil, extra)).Error(t)
			if e.Code != 7 || !strings.Contains(e.Msg, "prevResult is missing") {
				t.Fatalf("chained CHECK without prevResult: want code 7, got %+v", e)
			}
			if f.api.Requests.Load() != before {
				t.Fatal("the plugin called the API server")
			}
			noRules(t, pod, f.backend)
		})
	}

	t.Run("a non-bool standalone", func(t *testing.T) {
		pod := nettest.NewNS(t)
		e := f.run(t, "ADD", pod, args, f.conf(t, "1.0.0", nil, map[string]any{"standalone": "yes"})).Error(t)
		if e.Code != 7 || !strings.Contains(e.Msg, "standalone") || !strings.Contains(e.Msg, `"yes"`) {
			t.Fatalf("want code 7 naming standalone, got %+v", e)
		}
		noRules(t, pod, f.backend)
	})

	t.Run("a prevResult is still passed through", func(t *testing.T) {
		pod := nettest.NewNS(t)
		conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), standalone)
		o := f.run(t, "ADD", pod, args, conf)
		mustSucceed(t, "standalone ADD with prevResult", o)
		samePrevResult(t, conf, o.Stdout)
	})
}

// Without prevResult the pod's IPv6 addresses are not known from the chain: the netns decides.
func TestStandaloneDetectsIPv6FromTheNetns(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "v6", nettest.Pod("default", "v6", nil, nil))
	args := podArgs("default", "v6")
	conf := f.conf(t, "1.0.0", nil, map[string]any{"standalone": true})

	plain := nettest.NewNS(t)
	mustSucceed(t, "ADD (IPv4 only)", f.run(t, "ADD", plain, args, conf))
	if got := nettest.Save(t, plain, f.backend, true); strings.Contains(got, "ISTIO") {
		t.Fatalf("IPv6 rules in a pod without an IPv6 address:\n%s", got)
	}

	dual := nettest.NewNS(t)
	nettest.Run(t, dual, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
	nettest.Run(t, dual, "ip", "link", "set", "eth0peer", "up")
	nettest.Run(t, dual, "ip", "link", "set", "eth0", "up")
	nettest.Run(t, dual, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad")
	mustSucceed(t, "ADD (dual stack)", f.run(t, "ADD", dual, args, conf))
	if got := nettest.Save(t, dual, f.backend, true); !strings.Contains(got, "-A OUTPUT -j ISTIO_OUTPUT") {
		t.Fatalf("no IPv6 rules in a pod with a global IPv6 address:\n%s", got)
	}
	f.checkCatchesDeletion(t, dual, args, conf, "IPv6", "ip6tables-"+f.backend, "-w", "-t", "nat", "-D", "OUTPUT", "-j", "ISTIO_OUTPUT")
	mustSucceed(t, "DEL", f.run(t, "DEL", dual, args, conf))
	noRules(t, dual, f.backend)
}

// The shipped NetworkAttachmentDefinition's config, run the way Multus runs an additional network: libcni's
// AddNetwork with no prevResult and an interface name of its own, then CheckNetwork (with the cached result as
// prevResult) and DelNetwork. Only the node-specific paths (kubeconfig, log file) are replaced.
func TestMultusNetworkThroughLibcni(t *testing.T) {
	dir := nettest.RequireOracles(t)
	f := newFixture(t)
	data := nettest.ReadFile(t, filepath.Join(nettest.RepoRoot(), "manifests", "components", "multus", "network-attachment-definition.yaml"))
	var nad struct {
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(data), &nad); err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
		t.Fatal(err)
	}
	conf["kubeconfig"], conf["log_file"] = f.kubeconfig, f.logFile
	b, _ := json.Marshal(conf)
	//lint:ignore SA1019 a single-plugin .conf (a Multus NetworkAttachmentDefinition) is the format under test
	net, err := libcni.ConfFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{nettest.PluginDir(t)}, t.TempDir(), nil)

	f.api.SetPod(t, "shop", "web", nettest.Pod("shop", "web", nil, nil))
	pod := nettest.NewNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "multus-web", NetNS: pod.Path(), IfName: "net1",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "web"}}}
	ctx := context.Background()
	var out []byte
	nettest.InNS(t, f.node, func() error {
		r, err := cni.AddNetwork(ctx, net, rt)
		if err != nil {
			return fmt.Errorf("AddNetwork: %w", err)
		}
		out, err = json.Marshal(r)
		return err
	})
	emptyResult(t, net.Network.CNIVersion, string(out))
	golden := nettest.Normalize(nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", "basic."+f.backend+".iptables-save")))
	if got := nettest.Save(t, pod, f.backend, false); got != golden {
		t.Fatalf("iptables-save differs from the golden\n--- got\n%s--- want\n%s", got, golden)
	}
	nettest.InNS(t, f.node, func() error {
		if err := cni.CheckNetwork(ctx, net, rt); err != nil {
			return fmt.Errorf("CheckNetwork: %w", err)
		}
		return cni.DelNetwork(ctx, net, rt)
	})
	noRules(t, pod, f.backend)
}
