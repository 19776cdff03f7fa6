package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"sigs.k8s.io/yaml"
)

const prev = `"prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": [{"address": "192.0.2.10/24", "interface": 0}]}`

func TestParseInstallerEntry(t *testing.T) {
	in := `{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "asm-cni",
	  "kubeconfig": "/etc/cni/net.d/asm-cni-kubeconfig", "exclude_namespaces": ["kube-system", "istio-system", "monitoring"],
	  "log_level": "DEBUG", "log_file": "/var/log/asm-cni.log", "api_timeout": "1500ms", "runtimeConfig": {"x": 1}, ` + prev + `}`
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kubeconfig != "/etc/cni/net.d/asm-cni-kubeconfig" || c.LogLevel != "debug" || c.LogFile != "/var/log/asm-cni.log" ||
		c.APITimeout != 1500*time.Millisecond || c.IptablesBackend != BackendAuto || c.Name != "k8s-pod-network" || c.Type != "asm-cni" {
		t.Fatalf("unexpected config: %+v", c)
	}
	if !reflect.DeepEqual(c.ExcludeNamespaces, []string{"kube-system", "istio-system", "monitoring"}) {
		t.Fatalf("exclude_namespaces = %v", c.ExcludeNamespaces)
	}
	if c.PrevResult == nil {
		t.Fatal("prevResult not parsed")
	}
	if !c.Excluded("monitoring") || c.Excluded("default") {
		t.Fatal("Excluded is wrong")
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"cniVersion": "0.4.0", "name": "n", "type": "asm-cni"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.APITimeout != DefaultAPITimeout || c.LogLevel != "info" || c.LogFile != "" || c.PrevResult != nil ||
		!reflect.DeepEqual(c.ExcludeNamespaces, DefaultExcludeNamespaces) {
		t.Fatalf("defaults not applied: %+v", c)
	}
	// An explicit empty list excludes nothing.
	c, err = Parse([]byte(`{"cniVersion": "0.4.0", "name": "n", "exclude_namespaces": []}`))
	if err != nil || len(c.ExcludeNamespaces) != 0 {
		t.Fatalf("empty exclude list: %v %v", c.ExcludeNamespaces, err)
	}
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		in   string
		code uint
		msg  string
	}{
		{`not json`, types.ErrDecodingFailure, "not a JSON object"},
		{`{"cniVersion": "1.0.0", "name": `, types.ErrDecodingFailure, "cannot decode"},
		{`{"name": "n"}`, types.ErrInvalidNetworkConfig, "cniVersion is required"},
		{`{"cniVersion": "1.0.0", "kubeconfig": 3}`, types.ErrInvalidNetworkConfig, "kubeconfig must be a string"},
		{`{"cniVersion": "1.0.0", "api_timeout": "5"}`, types.ErrInvalidNetworkConfig, `api_timeout "5" is not a duration`},
		{`{"cniVersion": "1.0.0", "api_timeout": "-1s"}`, types.ErrInvalidNetworkConfig, "greater than 0"},
		{`{"cniVersion": "1.0.0", "api_timeout": "1h"}`, types.ErrInvalidNetworkConfig, "at most"},
		{`{"cniVersion": "1.0.0", "api_timeout": 5}`, types.ErrInvalidNetworkConfig, "api_timeout must be a string"},
		{`{"cniVersion": "1.0.0", "log_level": "chatty"}`, types.ErrInvalidNetworkConfig, `log_level "chatty"`},
		{`{"cniVersion": "1.0.0", "iptables_backend": "ebpf"}`, types.ErrInvalidNetworkConfig, `iptables_backend "ebpf"`},
		{`{"cniVersion": "1.0.0", "exclude_namespaces": "kube-system"}`, types.ErrInvalidNetworkConfig, "must be a list"},
		{`{"cniVersion": "1.0.0", "exclude_namespaces": ["ok", "Not_A_Namespace"]}`, types.ErrInvalidNetworkConfig, `exclude_namespaces[1] "Not_A_Namespace"`},
		{`{"cniVersion": "1.0.0", "prevResult": {"ips": "nope"}}`, types.ErrInvalidNetworkConfig, "prevResult"},
		{`{"cniVersion": "1.0.0", "standalone": "true"}`, types.ErrInvalidNetworkConfig, `standalone must be true or false, got "true"`},
		{`{"cniVersion": "1.0.0", "standalone": 1}`, types.ErrInvalidNetworkConfig, "standalone must be true or false, got 1"},
		{`{"cniVersion": "1.0.0", "standalone": {}}`, types.ErrInvalidNetworkConfig, "standalone must be true or false"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in))
		var te *types.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: want a *types.Error, got %v", c.in, err)
			continue
		}
		if te.Code != c.code || !strings.Contains(te.Msg, c.msg) {
			t.Errorf("%s: got code %d %q, want code %d containing %q", c.in, te.Code, te.Msg, c.code, c.msg)
		}
	}
}

func TestStandalone(t *testing.T) {
	for in, want := range map[string]bool{
		`{"cniVersion": "1.0.0"}`:                      false,
		`{"cniVersion": "1.0.0", "standalone": null}`:  false,
		`{"cniVersion": "1.0.0", "standalone": false}`: false,
		`{"cniVersion": "1.0.0", "standalone": true}`:  true,
	} {
		c, err := Parse([]byte(in))
		if err != nil || c.Standalone != want {
			t.Errorf("%s: standalone = %v (%v), want %v", in, c != nil && c.Standalone, err, want)
		}
	}
}

// The NetworkAttachmentDefinition shipped for Multus (manifests/components/multus) carries a config this parser
// accepts as a standalone plugin config with the installer's values.
func TestMultusNetworkAttachmentDefinition(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "manifests", "components", "multus", "network-attachment-definition.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var nad struct {
		Kind string `json:"kind"`
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &nad); err != nil || nad.Kind != "NetworkAttachmentDefinition" {
		t.Fatalf("%s: %v (kind %q)", path, err, nad.Kind)
	}
	c, err := Parse([]byte(nad.Spec.Config))
	if err != nil {
		t.Fatalf("the NAD's spec.config is refused: %v", err)
	}
	if !c.Standalone || c.PrevResult != nil || c.Type != "asm-cni" || c.Kubeconfig != "/etc/cni/net.d/asm-cni-kubeconfig" ||
		c.LogFile != "/var/log/asm-cni.log" || c.APITimeout != DefaultAPITimeout || c.LogLevel != "info" {
		t.Fatalf("unexpected config from the NAD: %+v", c)
	}
	if !reflect.DeepEqual(c.ExcludeNamespaces, []string{"kube-system", "istio-system", "asm-cni"}) {
		t.Fatalf("exclude_namespaces = %v", c.ExcludeNamespaces)
	}
}

func TestIsDNSLabel(t *testing.T) {
	for s, want := range map[string]bool{"a": true, "kube-system": true, "a1-b2": true, "": false, "-a": false, "a-": false,
		"A": false, "a.b": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if got := isDNSLabel(s); got != want {
			t.Errorf("isDNSLabel(%q) = %v", s, got)
		}
	}
}
