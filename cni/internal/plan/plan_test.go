package plan

import (
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/selection"
)

func meshed(annotations map[string]string, initContainers ...string) *pod.Pod {
	p := &pod.Pod{}
	p.Metadata.Name, p.Metadata.Namespace, p.Metadata.Annotations = "web", "apps", annotations
	p.Spec.Containers = []pod.Container{{Name: "app"}, {Name: "istio-proxy", Args: []string{"proxy", "sidecar"}}}
	for _, n := range initContainers {
		p.Spec.InitContainers = append(p.Spec.InitContainers, pod.Container{Name: n})
	}
	return p
}

func TestFor(t *testing.T) {
	pl, err := For(meshed(nil), "apps", nil)
	if err != nil || pl.Spec == nil || !strings.Contains(pl.Spec.IPv4, "ISTIO_OUTPUT") || pl.Skip != "" {
		t.Fatalf("a selected pod gets rules: %+v %v", pl, err)
	}
	if pl, err := For(meshed(nil, "istio-init"), "apps", nil); err != nil || pl.Spec != nil || pl.Skip != selection.ReasonIstioInitPresent {
		t.Fatalf("istio-init keeps the pod: %+v %v", pl, err)
	}
	if pl, err := For(meshed(nil), "apps", []string{"apps"}); err != nil || pl.Skip != selection.ReasonExcludedNamespace {
		t.Fatalf("excluded namespace: %+v %v", pl, err)
	}
	if _, err := For(meshed(map[string]string{"traffic.sidecar.istio.io/excludeInboundPorts": "http"}), "apps", nil); err == nil {
		t.Fatal("an invalid annotation is an error")
	}
	if pl, _ := For(meshed(map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"}), "apps", nil); pl.Spec == nil || !pl.Spec.TPROXY {
		t.Fatalf("TPROXY pods need the policy routing: %+v", pl)
	}
}
