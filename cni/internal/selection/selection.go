// Package selection is the plugin's half of the pod predicate shared with the webhook
// (test/vectors/README.md, plugin column): which pods get redirection from the CNI plugin.
package selection

import (
	"strconv"

	"github.com/asm-cni/asm-cni/cni/internal/istio"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

// Reason codes, exactly as test/vectors/README.md spells them.
const (
	ReasonSelected           = "selected"
	ReasonExcludedNamespace  = "excluded-namespace"
	ReasonDisabledLabel      = "injection-disabled-label"
	ReasonDisabledAnnotation = "injection-disabled-annotation"
	ReasonNoIstioProxy       = "no-istio-proxy"
	ReasonSingleContainer    = "single-container"
	ReasonHostNetwork        = "host-network"
	ReasonNotSidecar         = "not-sidecar"
	ReasonEnvoyDisabled      = "envoy-disabled"
	ReasonInterceptionNone   = "interception-none"
	ReasonIstioInitPresent   = "istio-init-present"
)

// Decision says whether the plugin programs redirection for a pod, and why.
type Decision struct {
	Redirect bool
	Reason   string
}

// Decide applies the predicate in the order of test/vectors/README.md; the first condition that applies
// gives the reason. namespace is the pod's namespace as the runtime reports it (K8S_POD_NAMESPACE); when
// empty, the pod's metadata.namespace is used. excluded is matched exactly (case-sensitive).
func Decide(p *pod.Pod, namespace string, excluded []string) Decision {
	if namespace == "" {
		namespace = p.Metadata.Namespace
	}
	for _, ns := range excluded {
		if ns == namespace {
			return skip(ReasonExcludedNamespace)
		}
	}
	// The label, when present, decides alone; only a value ParseBool reads as false disables.
	if v, ok := p.Metadata.Labels[istio.AnnotationInject]; ok {
		if isFalse(v) {
			return skip(ReasonDisabledLabel)
		}
	} else if v, ok := p.Metadata.Annotations[istio.AnnotationInject]; ok && isFalse(v) {
		return skip(ReasonDisabledAnnotation)
	}
	proxy := p.ProxyContainer()
	if proxy == nil {
		return skip(ReasonNoIstioProxy)
	}
	if countRunning(p) <= 1 {
		return skip(ReasonSingleContainer)
	}
	if p.Spec.HostNetwork {
		return skip(ReasonHostNetwork)
	}
	// A gateway ("proxy router") serves its own ports: redirecting its traffic to 15001/15006 breaks it.
	if t := istio.ProxyType(proxy); t != "" && t != istio.ProxyTypeSidecar {
		return skip(ReasonNotSidecar)
	}
	// No Envoy to redirect to.
	if istio.EnvoyDisabled(proxy) {
		return skip(ReasonEnvoyDisabled)
	}
	if istio.InterceptionMode(p) == istio.ModeNone {
		return skip(ReasonInterceptionNone)
	}
	// istio-init still there: the webhook did not rewrite this pod, and istio-init programs it itself.
	if p.InitContainer(istio.InitContainer) != nil {
		return skip(ReasonIstioInitPresent)
	}
	return Decision{Redirect: true, Reason: ReasonSelected}
}

func skip(reason string) Decision { return Decision{Redirect: false, Reason: reason} }

func isFalse(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && !b
}

// countRunning counts the containers that run beside each other: containers plus native sidecars.
func countRunning(p *pod.Pod) int {
	n := len(p.Spec.Containers)
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].IsNativeSidecar() {
			n++
		}
	}
	return n
}
