// Package istio holds the names Istio gives to what the plugin reads (annotation keys, containers, proxy
// environment) and what an Istio-injected pod says about its proxy: its interception mode and its type. The
// selection predicate and the rule settings both read them from here, so each fact has one home.
package istio

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

// Interception modes (sidecar.istio.io/interceptionMode, istio-init's -m, ProxyConfig.interceptionMode).
const (
	ModeRedirect = "REDIRECT"
	ModeTProxy   = "TPROXY"
	ModeNone     = "NONE"
)

const (
	// AnnotationInterceptionMode is the pod annotation naming the interception mode.
	AnnotationInterceptionMode = "sidecar.istio.io/interceptionMode"
	// AnnotationInject is sidecar.istio.io/inject (also a label of the same name).
	AnnotationInject = "sidecar.istio.io/inject"
	// InitContainer is the privileged init container that programs the rules without CNI.
	InitContainer = "istio-init"
	// ProxyTypeSidecar is the only proxy type that gets redirection ("router" is a gateway).
	ProxyTypeSidecar = "sidecar"
)

// Environment of the istio-proxy container.
const (
	// EnvInterceptionMode is set by the injector from the effective mode, including a mode that came from
	// proxy.istio.io/config or the mesh default (which leave no annotation and no istio-init).
	EnvInterceptionMode = "ISTIO_META_INTERCEPTION_MODE"
	// EnvProxyConfig is the effective ProxyConfig as JSON.
	EnvProxyConfig = "PROXY_CONFIG"
	// EnvDisableEnvoy true runs the agent without Envoy: nothing to redirect to.
	EnvDisableEnvoy = "DISABLE_ENVOY"
)

const interceptionModeFlag = "-m"

// InterceptionMode is the pod's interception mode, from the first source that has one: the annotation;
// istio-init's -m ("-m X" or "-m=X", the last one wins); the proxy's ISTIO_META_INTERCEPTION_MODE; the
// "interceptionMode" of the proxy's PROXY_CONFIG JSON; else REDIRECT. The value is returned as written
// (validation is the rules package's job). The webhook reads the same sources in the same order.
func InterceptionMode(p *pod.Pod) string {
	if v, ok := p.Metadata.Annotations[AnnotationInterceptionMode]; ok {
		return v
	}
	if c := p.InitContainer(InitContainer); c != nil {
		if v, ok := flagValue(c.Args, interceptionModeFlag); ok {
			return v
		}
	}
	if proxy := p.ProxyContainer(); proxy != nil {
		if v, ok := proxy.EnvValue(EnvInterceptionMode); ok {
			return v
		}
		if v, ok := proxy.EnvValue(EnvProxyConfig); ok {
			if m, ok := proxyConfigMode(v); ok {
				return m
			}
		}
	}
	return ModeRedirect
}

// proxyConfigMode reads the "interceptionMode" string of a ProxyConfig JSON object (exact key: Go's
// case-insensitive struct matching would read keys the webhook does not). Anything else: not set.
func proxyConfigMode(v string) (string, bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(v), &fields) != nil {
		return "", false
	}
	raw, ok := fields["interceptionMode"]
	if !ok || string(raw) == "null" { // null would decode into "" without an error
		return "", false
	}
	var m string
	if json.Unmarshal(raw, &m) != nil {
		return "", false
	}
	return m, true
}

// ProxyType is what istio-proxy runs as: the second argument of "proxy TYPE ..." ("sidecar", "router"), or
// "" when its args do not say. Istio's plugin reads it the same way.
func ProxyType(c *pod.Container) string {
	if len(c.Args) >= 2 && c.Args[0] == "proxy" {
		return c.Args[1]
	}
	return ""
}

// EnvoyDisabled reports DISABLE_ENVOY on istio-proxy read as true by strconv.ParseBool.
func EnvoyDisabled(c *pod.Container) bool {
	v, ok := c.EnvValue(EnvDisableEnvoy)
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

// flagValue reads istio-init's short flags as the webhook does (initArgs): "-f=value", or "-f value" where
// every short flag takes the next argument as its value (pflag's rule: "-x -m NONE" gives -x the value "-m");
// long flags ("--x") are skipped. The last occurrence wins.
func flagValue(args []string, name string) (string, bool) {
	val, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a[1] == '-' {
			continue
		}
		if eq := strings.IndexByte(a, '='); eq > 0 {
			if a[:eq] == name {
				val, found = a[eq+1:], true
			}
		} else if i+1 < len(args) {
			if a == name {
				val, found = args[i+1], true
			}
			i++
		}
	}
	return val, found
}
