package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
	"github.com/asm-cni/asm-cni/cni/internal/selection"
)

// basePod is the pod of Istio's CNI plugin goldens: containers test, istio-proxy, istio-validate and the
// sidecar status annotation.
func basePod() *pod.Pod {
	return &pod.Pod{
		APIVersion: "v1", Kind: "Pod",
		Metadata: pod.ObjectMeta{
			Name: "test-pod", Namespace: "default",
			Annotations: map[string]string{"sidecar.istio.io/status": `{"initContainers":["istio-validation"],"containers":["istio-proxy"]}`},
		},
		Spec: pod.Spec{Containers: []pod.Container{{Name: "test"}, {Name: "istio-proxy"}, {Name: "istio-validate"}}},
	}
}

func int64p(v int64) *int64 { return &v }

// pluginCases are the cni-plugin goldens and what each changes from the base pod (oracle README).
var pluginCases = map[string]func(p *pod.Pod){
	"basic": func(p *pod.Pod) {},
	"include-exclude-ports": func(p *pod.Pod) {
		p.Metadata.Annotations[AnnotationIncludeInboundPorts] = "1111,2222"
		p.Metadata.Annotations[AnnotationExcludeInboundPorts] = "3333,4444"
		p.Metadata.Annotations[AnnotationExcludeOutboundPorts] = "5555,6666"
	},
	"tproxy": func(p *pod.Pod) { p.Metadata.Annotations[AnnotationInterceptionMode] = ModeTProxy },
	"custom-uid": func(p *pod.Pod) {
		p.Spec.Containers[1].SecurityContext = &pod.SecurityContext{RunAsUser: int64p(1000670000), RunAsGroup: int64p(1000670001)}
	},
}

func TestPluginGoldens(t *testing.T) {
	dir := filepath.Join(rulestest.OracleDir(t), "iptables", "cni-plugin")
	files, err := filepath.Glob(filepath.Join(dir, "*.txt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no cni-plugin goldens in %s", dir)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt.golden")
		t.Run(name, func(t *testing.T) {
			mutate, ok := pluginCases[name]
			if !ok {
				t.Fatalf("golden %s has no case here: add it to pluginCases", name)
			}
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p := basePod()
			mutate(p)
			if d := selection.Decide(p, "default", []string{"kube-system"}); !d.Redirect {
				t.Fatalf("golden pod not selected: %s", d.Reason)
			}
			s, err := FromPod(p)
			if err != nil {
				t.Fatalf("FromPod: %v", err)
			}
			rs := Render(s)
			if rs.IPv4 != string(want) {
				t.Errorf("IPv4 rules differ from the golden\n%s", lineDiff(string(want), rs.IPv4))
			}
			if rs.TPROXY != (name == "tproxy") {
				t.Errorf("TPROXY = %v", rs.TPROXY)
			}
			// IPv6 is Istio's rendering of the same settings: same lines with the v6 loopback addresses.
			v6FromV4 := strings.NewReplacer("127.0.0.6/32", "::6/128", "127.0.0.1/32", "::1/128").Replace(rs.IPv4)
			if rs.IPv6 != v6FromV4 {
				t.Errorf("IPv6 rules are not the IPv4 rules with v6 loopback addresses\n%s", lineDiff(v6FromV4, rs.IPv6))
			}
		})
	}
	for name := range pluginCases {
		if _, err := os.Stat(filepath.Join(dir, name+".txt.golden")); err != nil {
			t.Errorf("case %s has no golden file", name)
		}
	}
}

// TestIstioCNIInjectionGetsBasicRules: a workload as Istio's own CNI-mode injection renders it (the shape the
// webhook's rewrite produces) is selected by the plugin and gets exactly the basic golden's rules, which are
// the rules its istio-init would have programmed; the same workload injected with istio-init is left alone.
func TestIstioCNIInjectionGetsBasicRules(t *testing.T) {
	root := rulestest.OracleDir(t)
	basic, err := os.ReadFile(filepath.Join(root, "iptables", "cni-plugin", "basic.txt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, flavour := range []string{"classic-1.26.8", "native-master"} {
		t.Run(flavour, func(t *testing.T) {
			cni := decodeOracle(t, filepath.Join(root, "inject", flavour, "hello.yaml.cni.injected"))
			if d := selection.Decide(cni, "default", []string{"kube-system", "istio-system"}); !d.Redirect {
				t.Fatalf("CNI-mode pod not selected: %s", d.Reason)
			}
			rs := Render(mustFromPod(t, cni))
			if rs.IPv4 != string(basic) {
				t.Errorf("rules differ from basic.txt.golden\n%s", lineDiff(string(basic), rs.IPv4))
			}
			classic := decodeOracle(t, filepath.Join(root, "inject", flavour, "hello.yaml.injected"))
			if d := selection.Decide(classic, "default", nil); d.Redirect || d.Reason != selection.ReasonIstioInitPresent {
				t.Errorf("istio-init pod: %+v", d)
			}
		})
	}
}

func decodeOracle(t *testing.T, path string) *pod.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pod.DecodeWorkload([]byte(strings.SplitN(string(data), "\n---", 2)[0]))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}
