package pod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

const podYAML = `
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
  annotations:
    sidecar.istio.io/interceptionMode: TPROXY
spec:
  hostNetwork: false
  initContainers:
  - name: istio-validation
    args: ["istio-iptables", "--run-validation"]
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
  - name: istio-proxy
    env:
    - {name: ISTIO_META_DNS_CAPTURE, value: "true"}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    securityContext:
      runAsUser: 1337
      runAsGroup: 1338
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
`

func TestDecodeYAML(t *testing.T) {
	p, err := Decode([]byte(podYAML))
	if err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Name != "web-1" || p.Metadata.Namespace != "shop" || p.Metadata.Labels["app"] != "web" {
		t.Errorf("metadata: %+v", p.Metadata)
	}
	if p.Metadata.Annotations["sidecar.istio.io/interceptionMode"] != "TPROXY" {
		t.Errorf("annotations: %+v", p.Metadata.Annotations)
	}
	proxy := p.ProxyContainer()
	if proxy == nil || proxy.Name != "istio-proxy" {
		t.Fatalf("proxy: %+v", proxy)
	}
	if v, ok := proxy.EnvValue("ISTIO_META_DNS_CAPTURE"); !ok || v != "true" {
		t.Errorf("env: %q %v", v, ok)
	}
	if v, ok := proxy.EnvValue("POD_NAME"); !ok || v != "" {
		t.Errorf("valueFrom env: %q %v", v, ok)
	}
	sc := proxy.SecurityContext
	if sc == nil || *sc.RunAsUser != 1337 || *sc.RunAsGroup != 1338 || sc.Capabilities.Add[0] != "NET_ADMIN" {
		t.Errorf("securityContext: %+v", sc)
	}
	if p.InitContainer("istio-validation") == nil || p.InitContainer("istio-init") != nil {
		t.Error("InitContainer lookup")
	}
}

func TestDecodeJSONMatchesYAML(t *testing.T) {
	j := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop"},
	"spec":{"hostNetwork":true,"initContainers":[{"name":"istio-proxy","restartPolicy":"Always"}],"containers":[{"name":"web"}]}}`
	p, err := Decode([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Spec.HostNetwork || p.ProxyContainer() == nil || !p.ProxyContainer().IsNativeSidecar() {
		t.Errorf("decoded %+v", p.Spec)
	}
	// YAML flow style starting with '{' is YAML, not broken JSON.
	if p, err := Decode([]byte(`{kind: Pod, metadata: {name: x}}`)); err != nil || p.Metadata.Name != "x" {
		t.Errorf("flow YAML: %v %+v", err, p)
	}
}

func TestProxyContainerRules(t *testing.T) {
	p := &Pod{Spec: Spec{InitContainers: []Container{{Name: "istio-proxy"}}}}
	if p.ProxyContainer() != nil {
		t.Error("an istio-proxy init container without restartPolicy Always is not the sidecar")
	}
	p.Spec.Containers = []Container{{Name: "istio-proxy-2"}, {Name: "Istio-Proxy"}}
	if p.ProxyContainer() != nil {
		t.Error("name match must be exact")
	}
}

func TestEnvLastWins(t *testing.T) {
	c := Container{Env: []EnvVar{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}}}
	if v, _ := c.EnvValue("A"); v != "2" {
		t.Errorf("got %q", v)
	}
	if _, ok := c.EnvValue("B"); ok {
		t.Error("B found")
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "empty input"},
		{"   \n", "empty input"},
		{"---\n", "empty input"},
		{`{"metadata": {"name": 5}}`, "metadata.name"},
		{`{"spec": {"hostNetwork": "yes"}}`, "spec.hostNetwork"},
		{`{"spec": {"containers": {"name": "x"}}}`, "spec.containers"},
		{`{"kind": "Pod", "metadata": `, "invalid JSON"},
		{"kind: Pod\nmetadata:\n  name: [unclosed\n", "invalid YAML"},
		{"- a\n- b\n", "expected an object, got a list"},
		{"just a string", "expected an object"},
		{"kind: Service\nmetadata: {name: x}\n", `kind is "Service"`},
		{`{"spec":{"containers":[{"securityContext":{"runAsUser":"root"}}]}}`, "runAsUser"},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		if err == nil {
			t.Errorf("%q: accepted", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "decode pod:") {
			t.Errorf("%q: error %q does not mention %q", c.in, err, c.want)
		}
	}
	if _, err := Decode(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("nil input: %v", err)
	}
}

func TestDecodeWorkload(t *testing.T) {
	deploy := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: hello}
      annotations: {sidecar.istio.io/status: "{}"}
    spec:
      containers: [{name: hello}, {name: istio-proxy}]
`
	p, err := DecodeWorkload([]byte(deploy))
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != "Pod" || p.Metadata.Namespace != "shop" || p.Metadata.GenerateName != "hello-" || len(p.Spec.Containers) != 2 {
		t.Errorf("template pod: %+v", p)
	}
	cron := "kind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: a}]\n"
	if p, err := DecodeWorkload([]byte(cron)); err != nil || len(p.Spec.Containers) != 1 {
		t.Errorf("cronjob: %v %+v", err, p)
	}
	if _, err := DecodeWorkload([]byte("kind: ConfigMap\ndata: {a: b}\n")); err == nil || !strings.Contains(err.Error(), "no pod template") {
		t.Errorf("configmap: %v", err)
	}
	if p, err := DecodeWorkload([]byte(podYAML)); err != nil || p.Metadata.Name != "web-1" {
		t.Errorf("pod: %v", err)
	}
}

// TestDecodeOracleInjections decodes every injected workload of the Istio oracles: real-world pods with
// many fields this model ignores must decode, and the injected ones must have their istio-proxy.
func TestDecodeOracleInjections(t *testing.T) {
	dir := rulestest.OracleDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "inject", "*", "*.injected"))
	testenv.Require(t, len(files) > 0, "no injected oracle files under "+dir)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Some goldens hold several documents; decode the first.
		doc := strings.SplitN(string(data), "\n---", 2)[0]
		if strings.HasPrefix(doc, "apiVersion: v1\nitems:") || strings.Contains(doc, "\nkind: List") {
			continue // a List of objects, not one workload
		}
		p, err := DecodeWorkload([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if strings.Contains(doc, "name: istio-proxy") && p.ProxyContainer() == nil {
			t.Errorf("%s: istio-proxy not found", filepath.Base(f))
		}
	}
}

func TestDisplayName(t *testing.T) {
	cases := []struct {
		meta ObjectMeta
		want string
	}{
		{ObjectMeta{Name: "web", Namespace: "shop"}, "shop/web"},
		{ObjectMeta{GenerateName: "web-7d4-", Namespace: "shop"}, "shop/web-7d4-<generated>"},
		{ObjectMeta{Name: "web"}, "web"},
		{ObjectMeta{}, "<unnamed>"},
	}
	for _, c := range cases {
		if got := (&Pod{Metadata: c.meta}).DisplayName(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.meta, got, c.want)
		}
	}
}
