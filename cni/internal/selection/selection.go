// Package selection is the plugin's half of the pod predicate shared with the webhook
// (test/vectors/README.md, plugin column): which pods get redirection from the CNI plugin.
package selection

import (
	"strconv"
	"strings"

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
	ReasonInterceptionNone   = "interception-none"
	ReasonIstioInitPresent   = "istio-init-present"
	InjectKey                = "sidecar.istio.io/inject"
	InterceptionModeKey      = "sidecar.istio.io/interceptionMode"
	IstioInitName            = "istio-init"
	InterceptionModeNone     = "NONE"
	InterceptionModeRedirect = "REDIRECT"
	interceptionModeFlag     = "-m"
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
	if v, ok := p.Metadata.Labels[InjectKey]; ok {
		if isFalse(v) {
			return skip(ReasonDisabledLabel)
		}
	} else if v, ok := p.Metadata.Annotations[InjectKey]; ok && isFalse(v) {
		return skip(ReasonDisabledAnnotation)
	}
	if p.ProxyContainer() == nil {
		return skip(ReasonNoIstioProxy)
	}
	if countRunning(p) <= 1 {
		return skip(ReasonSingleContainer)
	}
	if p.Spec.HostNetwork {
		return skip(ReasonHostNetwork)
	}
	if InterceptionMode(p) == InterceptionModeNone {
		return skip(ReasonInterceptionNone)
	}
	// istio-init still there: the webhook did not rewrite this pod, and istio-init programs it itself.
	if p.InitContainer(IstioInitName) != nil {
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

// InterceptionMode is the pod's interception mode: the sidecar.istio.io/interceptionMode annotation when
// present; else istio-init's -m argument ("-m X" or "-m=X", the last one wins, as the webhook reads it);
// else REDIRECT. The value is returned as written (validation is the rules package's job).
func InterceptionMode(p *pod.Pod) string {
	if v, ok := p.Metadata.Annotations[InterceptionModeKey]; ok {
		return v
	}
	if c := p.InitContainer(IstioInitName); c != nil {
		if v, ok := flagValue(c.Args, interceptionModeFlag); ok {
			return v
		}
	}
	return InterceptionModeRedirect
}

// flagValue finds the last occurrence of a flag in "-f value" or "-f=value" form; a value taken by
// "-f value" is not itself read as a flag.
func flagValue(args []string, name string) (string, bool) {
	val, found := "", false
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == name && i+1 < len(args):
			val, found = args[i+1], true
			i++
		case strings.HasPrefix(args[i], name+"="):
			val, found = args[i][len(name)+1:], true
		}
	}
	return val, found
}
