package selection

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/istio"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

type vectorFile struct {
	Cases []struct {
		Name              string          `json:"name"`
		Namespace         string          `json:"namespace"`
		ExcludeNamespaces *[]string       `json:"excludeNamespaces"`
		Pod               json.RawMessage `json:"pod"`
		Plugin            struct {
			Decision string `json:"decision"`
			Reason   string `json:"reason"`
		} `json:"plugin"`
	} `json:"cases"`
}

var defaultExcluded = []string{"kube-system", "istio-system"}

// TestSharedVectors runs the webhook/plugin shared selection vectors (test/vectors/selection.json, plugin
// column). The pods go through pod.Decode, as the runtime's API lookup does.
func TestSharedVectors(t *testing.T) {
	path := filepath.Join(rulestest.ModuleRoot(t), "..", "test", "vectors", "selection.json")
	data, err := os.ReadFile(path)
	testenv.Require(t, err == nil, "shared selection vectors not readable at "+path)
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(vf.Cases) == 0 {
		t.Fatalf("%s has no cases", path)
	}
	reasons := map[string]int{}
	for _, c := range vf.Cases {
		t.Run(c.Name, func(t *testing.T) {
			p, err := pod.Decode(c.Pod)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			excluded := defaultExcluded
			if c.ExcludeNamespaces != nil {
				excluded = *c.ExcludeNamespaces
			}
			d := Decide(p, c.Namespace, excluded)
			want := c.Plugin.Decision == "redirect"
			if c.Plugin.Decision != "redirect" && c.Plugin.Decision != "skip" {
				t.Fatalf("vector has plugin.decision %q", c.Plugin.Decision)
			}
			if d.Redirect != want || d.Reason != c.Plugin.Reason {
				t.Errorf("got redirect=%v reason=%s, want %s/%s", d.Redirect, d.Reason, c.Plugin.Decision, c.Plugin.Reason)
			}
			reasons[d.Reason]++
		})
	}
	// The vectors must exercise every plugin reason, or a branch of Decide goes untested.
	for _, r := range []string{ReasonSelected, ReasonExcludedNamespace, ReasonDisabledLabel, ReasonDisabledAnnotation,
		ReasonNoIstioProxy, ReasonSingleContainer, ReasonHostNetwork, ReasonNotSidecar, ReasonEnvoyDisabled, ReasonInterceptionNone,
		ReasonIstioInitPresent} {
		if reasons[r] == 0 {
			t.Errorf("no vector yields reason %s", r)
		}
	}
}

func TestDecideOwnCases(t *testing.T) {
	app := pod.Container{Name: "app"}
	proxy := pod.Container{Name: "istio-proxy"}
	initC := pod.Container{Name: "istio-init", Args: []string{"istio-iptables", "-p", "15001"}}
	mk := func(f func(p *pod.Pod)) *pod.Pod {
		p := &pod.Pod{Spec: pod.Spec{Containers: []pod.Container{app, proxy}}}
		f(p)
		return p
	}
	cases := []struct {
		name   string
		p      *pod.Pod
		ns     string
		reason string
	}{
		{"selected", mk(func(p *pod.Pod) {}), "shop", ReasonSelected},
		{"metadata namespace used when runtime gives none", mk(func(p *pod.Pod) { p.Metadata.Namespace = "kube-system" }), "", ReasonExcludedNamespace},
		{"runtime namespace wins over metadata", mk(func(p *pod.Pod) { p.Metadata.Namespace = "kube-system" }), "shop", ReasonSelected},
		{"istio-init present", mk(func(p *pod.Pod) { p.Spec.InitContainers = []pod.Container{initC} }), "shop", ReasonIstioInitPresent},
		{"-m=NONE form", mk(func(p *pod.Pod) {
			c := initC
			c.Args = []string{"istio-iptables", "-m=NONE"}
			p.Spec.InitContainers = []pod.Container{c}
		}), "shop", ReasonInterceptionNone},
		{"only -m is read, as by the webhook", mk(func(p *pod.Pod) {
			c := initC
			c.Args = []string{"istio-iptables", "--istio-inbound-interception-mode", "NONE"}
			p.Spec.InitContainers = []pod.Container{c}
		}), "shop", ReasonIstioInitPresent},
		{"a value after -m is not a flag", mk(func(p *pod.Pod) {
			c := initC
			c.Args = []string{"-m", "-m", "NONE"}
			p.Spec.InitContainers = []pod.Container{c}
		}), "shop", ReasonIstioInitPresent},
		{"last -m wins", mk(func(p *pod.Pod) {
			c := initC
			c.Args = []string{"-m", "NONE", "-m", "REDIRECT"}
			p.Spec.InitContainers = []pod.Container{c}
		}), "shop", ReasonIstioInitPresent},
		{"lowercase none is not NONE", mk(func(p *pod.Pod) {
			p.Metadata.Annotations = map[string]string{istio.AnnotationInterceptionMode: "none"}
		}), "shop", ReasonSelected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.p, c.ns, defaultExcluded)
			if d.Reason != c.reason || d.Redirect != (c.reason == ReasonSelected) {
				t.Errorf("got %+v, want %s", d, c.reason)
			}
		})
	}
}
