package nettest

// Pod builds the base pod of the oracle's cni-plugin cases: containers test, istio-proxy and istio-validate,
// the sidecar.istio.io/status annotation, plus extra annotations and istio-proxy's securityContext.
func Pod(namespace, name string, annotations map[string]string, proxySecurityContext map[string]any) map[string]any {
	ann := map[string]any{
		"sidecar.istio.io/status": `{"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":["istio-envoy"]}`,
	}
	for k, v := range annotations {
		ann[k] = v
	}
	proxy := map[string]any{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.29.6"}
	if proxySecurityContext != nil {
		proxy["securityContext"] = proxySecurityContext
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "namespace": namespace, "annotations": ann},
		"spec": map[string]any{
			"containers": []any{
				map[string]any{"name": "test", "image": "registry.example/test:1"},
				proxy,
				map[string]any{"name": "istio-validate", "image": "docker.io/istio/proxyv2:1.29.6"},
			},
		},
	}
}

// OracleCase is one of the oracle's cni-plugin cases: the pod that produces it.
type OracleCase struct {
	Name        string
	Annotations map[string]string
	ProxySC     map[string]any
	TPROXY      bool
}

// OracleCases are the cases of iptables/cni-plugin (see the oracle README's table).
var OracleCases = []OracleCase{
	{Name: "basic"},
	{Name: "include-exclude-ports", Annotations: map[string]string{
		"traffic.sidecar.istio.io/includeInboundPorts":  "1111,2222",
		"traffic.sidecar.istio.io/excludeInboundPorts":  "3333,4444",
		"traffic.sidecar.istio.io/excludeOutboundPorts": "5555,6666",
	}},
	{Name: "tproxy", Annotations: map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"}, TPROXY: true},
	{Name: "custom-uid", ProxySC: map[string]any{"runAsUser": 1000670000, "runAsGroup": 1000670001}},
}
