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
	ReasonSelected            = "selected"
	ReasonExcludedNamespace   = "excluded-namespace"
	ReasonDisabledLabel       = "injection-disabled-label"
	ReasonDisabledAnnotation  = "injection-disabled-annotation"
	ReasonNoIstioProxy        = "no-istio-proxy"
	ReasonSingleContainer     = "single-container"
	ReasonHostNetwork         = "host-network"
	ReasonInterceptionNone    = "interception-none"
	ReasonIstioInitPresent    = "istio-init-present"
	InjectKey                 = "sidecar.istio.io/inject"
	InterceptionModeKey       = "sidecar.istio.io/interceptionMode"
	IstioInitName             = "istio-init"
	InterceptionModeNone      = "NONE"
	InterceptionModeRedirect  = "REDIRECT"
	interceptionModeLongFlag  = "--istio-inbound-interception-mode"
	interceptionModeShortFlag = "-m"
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
// present; else the mode istio-init's arguments give (-m X, -m=X or --istio-inbound-interception-mode);
// else REDIRECT. The value is returned as written (validation is the rules package's job).
func InterceptionMode(p *pod.Pod) string {
	if v, ok := p.Metadata.Annotations[InterceptionModeKey]; ok {
		return v
	}
	if c := p.InitContainer(IstioInitName); c != nil {
		if v, ok := flagValue(c.Args, interceptionModeShortFlag, interceptionModeLongFlag); ok {
			return v
		}
	}
	return InterceptionModeRedirect
}

// flagValue finds the last occurrence of a flag in "-f value", "-f=value" form (last wins, as in pflag).
func flagValue(args []string, names ...string) (string, bool) {
	val, found := "", false
	for i := 0; i < len(args); i++ {
		for _, n := range names {
			switch {
			case args[i] == n && i+1 < len(args):
				val, found = args[i+1], true
			case strings.HasPrefix(args[i], n+"="):
				val, found = args[i][len(n)+1:], true
			}
		}
	}
	return val, found
}
