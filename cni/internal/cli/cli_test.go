package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// goldenBasePod is the pod of the cni-plugin goldens, as a manifest.
const goldenBasePod = `apiVersion: v1
kind: Pod
metadata:
  name: test-pod
  namespace: default
  annotations:
    sidecar.istio.io/status: '{"initContainers":["istio-validation"],"containers":["istio-proxy"]}'
spec:
  containers:
  - name: test
  - name: istio-proxy
  - name: istio-validate
`

func TestVersion(t *testing.T) {
	old := Version
	Version = "1.2.3-test"
	defer func() { Version = old }()
	code, out, _ := run(t, "", "version")
	if code != 0 || out != "asm-cni 1.2.3-test\n" {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := run(t, "", "version", "extra"); code != ExitUsage || !strings.Contains(errOut, "no arguments") {
		t.Errorf("version extra: %d %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"render"}, "-f FILE is required"},
		{[]string{"render", "-f"}, "flag needs an argument"},
		{[]string{"render", "--bogus"}, "flag provided but not defined"},
		{[]string{"render", "-f", "-", "--family", "ipv5"}, "--family must be"},
		{[]string{"render", "-f", "-", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		code, out, errOut := run(t, goldenBasePod, c.args...)
		if code != ExitUsage || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "usage:") || out != "" {
			t.Errorf("%q: code %d, stderr %q", c.args, code, errOut)
		}
	}
	for _, h := range [][]string{{"help"}, {"--help"}, {"render", "-h"}} {
		if code, out, _ := run(t, "", h...); code != 0 || !strings.Contains(out, "asm-cni render -f") {
			t.Errorf("%q: %d %q", h, code, out)
		}
	}
}

// sections splits render output into its IPv4 and IPv6 parts with the comment lines removed: exactly the
// restore input of each family.
func sections(t *testing.T, out string) (v4, v6 string) {
	t.Helper()
	var cur *strings.Builder
	var b4, b6 strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		switch {
		case strings.HasPrefix(l, "# ---- IPv4"):
			cur = &b4
		case strings.HasPrefix(l, "# ---- IPv6"):
			cur = &b6
		case strings.HasPrefix(l, "#"), l == "":
		default:
			if cur == nil {
				t.Fatalf("rule line before a family header: %q", l)
			}
			cur.WriteString(l)
		}
	}
	return b4.String(), b6.String()
}

func TestRenderMatchesGolden(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join(rulestest.OracleDir(t), "iptables", "cni-plugin", "basic.txt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, goldenBasePod, "render", "-f", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "# asm-cni ") || !strings.Contains(out, "pod default/test-pod (interception REDIRECT, proxy uid 1337 gid 1337)") {
		t.Errorf("header: %q", strings.SplitN(out, "\n", 2)[0])
	}
	v4, v6 := sections(t, out)
	if v4 != string(golden) {
		t.Errorf("IPv4 section differs from basic.txt.golden:\n%s", v4)
	}
	if !strings.Contains(v6, "-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN") || strings.Contains(v6, "127.0.0.") {
		t.Errorf("IPv6 section:\n%s", v6)
	}
	if strings.Index(out, "# ---- IPv4") > strings.Index(out, "# ---- IPv6") {
		t.Error("IPv4 must come first")
	}
}

func TestRenderFromFileAndFamilies(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pod.json")
	json := `{"kind":"Pod","metadata":{"name":"p","namespace":"shop","annotations":{"sidecar.istio.io/interceptionMode":"TPROXY"}},
	"spec":{"containers":[{"name":"app"},{"name":"istio-proxy"}]}}`
	if err := os.WriteFile(path, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "render", "-f", path, "--family", "ipv4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "IPv6") || !strings.Contains(out, "* mangle") || !strings.Contains(out, "#   ip rule add fwmark 1337 lookup 133") {
		t.Errorf("ipv4 only, TPROXY routing hint expected:\n%s", out)
	}
	code, out, _ = run(t, "", "render", "--filename", path, "--family", "ipv6")
	if code != 0 || strings.Contains(out, "IPv4") || !strings.Contains(out, "#   ip -6 route add local default dev lo table 133") {
		t.Errorf("ipv6 only:\n%s", out)
	}
}

func TestRenderWorkload(t *testing.T) {
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: shop}
spec:
  template:
    metadata:
      annotations: {traffic.sidecar.istio.io/includeInboundPorts: "8080"}
    spec:
      containers: [{name: hello}, {name: istio-proxy}]
`
	code, out, errOut := run(t, deploy, "render", "-f", "-")
	if code != 0 || !strings.Contains(out, "-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT") || !strings.Contains(out, "pod shop/hello-") {
		t.Errorf("exit %d %s\n%s", code, errOut, out)
	}
}

func TestRenderSkipped(t *testing.T) {
	withInit := strings.Replace(goldenBasePod, "spec:\n", "spec:\n  initContainers:\n  - name: istio-init\n", 1)
	cases := []struct {
		name, pod string
		args      []string
		reason    string
	}{
		{"istio-init present", withInit, nil, "istio-init-present"},
		{"excluded namespace", goldenBasePod, []string{"--namespace", "kube-system"}, "excluded-namespace"},
		{"custom exclusions", goldenBasePod, []string{"--exclude-namespaces", "default, other"}, "excluded-namespace"},
		{"interception NONE", strings.Replace(goldenBasePod, "  annotations:\n", "  annotations:\n    sidecar.istio.io/interceptionMode: NONE\n", 1), nil, "interception-none"},
		// Issue 10: NONE through proxy.istio.io/config leaves only the proxy's env; a gateway; no Envoy.
		{"NONE from the proxy env", strings.Replace(goldenBasePod, "  - name: istio-proxy\n", "  - name: istio-proxy\n    env:\n    - name: PROXY_CONFIG\n      value: '{\"interceptionMode\":\"NONE\"}'\n", 1), nil, "interception-none"},
		{"gateway", strings.Replace(goldenBasePod, "  - name: istio-proxy\n", "  - name: istio-proxy\n    args: [proxy, router]\n", 1), nil, "not-sidecar"},
		{"DISABLE_ENVOY", strings.Replace(goldenBasePod, "  - name: istio-proxy\n", "  - name: istio-proxy\n    env: [{name: DISABLE_ENVOY, value: \"true\"}]\n", 1), nil, "envoy-disabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, c.pod, append([]string{"render", "-f", "-"}, c.args...)...)
			if code != ExitSkipped || out != "" || !strings.Contains(errOut, "not redirected by the plugin: "+c.reason) {
				t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
			}
		})
	}
	t.Run("--force renders anyway", func(t *testing.T) {
		code, out, _ := run(t, withInit, "render", "-f", "-", "--force")
		if code != 0 || !strings.Contains(out, "# --force: the plugin itself skips this pod (istio-init-present)") || !strings.Contains(out, "* nat") {
			t.Errorf("code %d:\n%s", code, out)
		}
	})
	t.Run("--exclude-namespaces empty excludes nothing", func(t *testing.T) {
		if code, _, errOut := run(t, goldenBasePod, "render", "-f", "-", "--namespace", "kube-system", "--exclude-namespaces", ""); code != 0 {
			t.Errorf("code %d: %s", code, errOut)
		}
	})
}

func TestRenderErrors(t *testing.T) {
	bad := strings.Replace(goldenBasePod, "  annotations:\n", "  annotations:\n    traffic.sidecar.istio.io/includeInboundPorts: \"80,http\"\n", 1)
	code, out, errOut := run(t, bad, "render", "-f", "-")
	if code != ExitError || out != "" || !strings.Contains(errOut, `traffic.sidecar.istio.io/includeInboundPorts="80,http"`) {
		t.Errorf("invalid annotation: code %d stderr %q", code, errOut)
	}
	code, _, errOut = run(t, "", "render", "-f", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != ExitError || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: %d %q", code, errOut)
	}
	code, _, errOut = run(t, "spec: {hostNetwork: maybe}\n", "render", "-f", "-")
	if code != ExitError || !strings.Contains(errOut, "stdin: decode pod: field spec.hostNetwork") {
		t.Errorf("bad pod: %d %q", code, errOut)
	}
	code, _, errOut = run(t, "", "render", "-f", "-")
	if code != ExitError || !strings.Contains(errOut, "empty input") {
		t.Errorf("empty stdin: %d %q", code, errOut)
	}
	warn := strings.Replace(goldenBasePod, "  - name: istio-proxy\n", "  - name: istio-proxy\n    env: [{name: ISTIO_META_DNS_CAPTURE, value: \"yes\"}]\n", 1)
	code, _, errOut = run(t, warn, "render", "-f", "-")
	if code != 0 || !strings.Contains(errOut, `warning: istio-proxy env ISTIO_META_DNS_CAPTURE="yes" is not a boolean`) {
		t.Errorf("warning: %d %q", code, errOut)
	}
}

func TestRenderInputTooLarge(t *testing.T) {
	big := strings.Repeat("#", maxInput+10)
	code, _, errOut := run(t, big, "render", "-f", "-")
	if code != ExitError || !strings.Contains(errOut, "larger than") {
		t.Errorf("%d %q", code, errOut)
	}
}

func TestExplainEveryReason(t *testing.T) {
	for _, r := range []string{"excluded-namespace", "injection-disabled-label", "injection-disabled-annotation",
		"no-istio-proxy", "single-container", "host-network", "not-sidecar", "envoy-disabled", "interception-none",
		"istio-init-present"} {
		if e := explain(r); e == r || e == "" {
			t.Errorf("reason %s has no explanation", r)
		}
	}
	if explain("something-new") != "something-new" {
		t.Error("unknown reasons are shown as they are")
	}
}
