package istio

import (
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

func proxyWith(env ...pod.EnvVar) pod.Container {
	return pod.Container{Name: pod.ProxyContainerName, Args: []string{"proxy", "sidecar"}, Env: env}
}

func TestInterceptionModeSources(t *testing.T) {
	none := pod.EnvVar{Name: EnvInterceptionMode, Value: ModeNone}
	cfgNone := pod.EnvVar{Name: EnvProxyConfig, Value: `{"concurrency":2,"interceptionMode":"NONE"}`}
	initWith := func(args ...string) []pod.Container {
		return []pod.Container{{Name: InitContainer, Args: args}}
	}
	cases := []struct {
		name  string
		ann   map[string]string
		inits []pod.Container
		proxy pod.Container
		want  string
	}{
		{"nothing: REDIRECT", nil, nil, proxyWith(), ModeRedirect},
		{"issue 10: NONE from proxy.istio.io/config, env only", nil, nil, proxyWith(none, cfgNone), ModeNone},
		{"PROXY_CONFIG alone (mesh default)", nil, nil, proxyWith(cfgNone), ModeNone},
		{"the env wins over PROXY_CONFIG", nil, nil, proxyWith(pod.EnvVar{Name: EnvInterceptionMode, Value: "TPROXY"}, cfgNone), ModeTProxy},
		{"valueFrom reads as empty and stops the search", nil, nil, proxyWith(pod.EnvVar{Name: EnvInterceptionMode}, cfgNone), ""},
		{"-m wins over the env", nil, initWith("-m", "REDIRECT"), proxyWith(none), ModeRedirect},
		{"the annotation wins over everything", map[string]string{AnnotationInterceptionMode: "TPROXY"}, initWith("-m=NONE"), proxyWith(none), ModeTProxy},
		{"-m=X form", nil, initWith("-p", "15001", "-m=NONE"), proxyWith(), ModeNone},
		{"every short flag takes a value: -k -m NONE has no -m", nil, initWith("-k", "-m", "NONE"), proxyWith(), ModeRedirect},
		{"long flags take none: --x -m NONE", nil, initWith("--x", "-m", "NONE"), proxyWith(), ModeNone},
		{"the last -m wins", nil, initWith("-m", "NONE", "-m", "TPROXY"), proxyWith(), ModeTProxy},
		{"-m as the last argument is no flag", nil, initWith("-m"), proxyWith(), ModeRedirect},
		{"PROXY_CONFIG keys are exact", nil, nil, proxyWith(pod.EnvVar{Name: EnvProxyConfig, Value: `{"INTERCEPTIONMODE":"NONE"}`}), ModeRedirect},
		{"PROXY_CONFIG not JSON", nil, nil, proxyWith(pod.EnvVar{Name: EnvProxyConfig, Value: "interceptionMode: NONE"}), ModeRedirect},
		{"PROXY_CONFIG mode not a string", nil, nil, proxyWith(pod.EnvVar{Name: EnvProxyConfig, Value: `{"interceptionMode":3}`}), ModeRedirect},
		{"PROXY_CONFIG mode null is not set", nil, nil, proxyWith(pod.EnvVar{Name: EnvProxyConfig, Value: `{"interceptionMode": null }`}), ModeRedirect},
		{"PROXY_CONFIG a list", nil, nil, proxyWith(pod.EnvVar{Name: EnvProxyConfig, Value: `["NONE"]`}), ModeRedirect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &pod.Pod{Metadata: pod.ObjectMeta{Annotations: c.ann}, Spec: pod.Spec{
				InitContainers: c.inits, Containers: []pod.Container{{Name: "app"}, c.proxy}}}
			if got := InterceptionMode(p); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestProxyTypeAndEnvoy(t *testing.T) {
	for args, want := range map[string]string{"proxy router": "router", "proxy sidecar": "sidecar", "proxy": "", "router proxy": ""} {
		c := pod.Container{Args: strings.Fields(args)}
		if got := ProxyType(&c); got != want {
			t.Errorf("%q: got %q, want %q", args, got, want)
		}
	}
	for v, want := range map[string]bool{"true": true, "1": true, "T": true, "false": false, "yes": false, " true": false} {
		c := proxyWith(pod.EnvVar{Name: EnvDisableEnvoy, Value: v})
		if got := EnvoyDisabled(&c); got != want {
			t.Errorf("DISABLE_ENVOY=%q: got %v", v, got)
		}
	}
	if c := proxyWith(); EnvoyDisabled(&c) {
		t.Error("unset DISABLE_ENVOY disables")
	}
}
