package binary_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// fakeCRI is a stand-in crictl: it answers `pods` and `inspectp ID` from files, as containerd's CRI would.
type fakeCRI struct {
	dir   string
	items []any
}

func newFakeCRI(t *testing.T) *fakeCRI {
	t.Helper()
	c := &fakeCRI{dir: t.TempDir()}
	script := `#!/bin/sh
# Stand-in crictl for tests: prints pods.json for "pods" and inspectp-ID.json for "inspectp ... ID".
dir=$(dirname "$0")
for a in "$@"; do last=$a; done
case " $* " in
  *" pods "*) cat "$dir/pods.json" ;;
  *" inspectp "*) cat "$dir/inspectp-$last.json" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(c.dir, "crictl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// add registers a ready sandbox; netns "" is a host-network sandbox.
func (c *fakeCRI) add(t *testing.T, id, namespace, name, netns string) {
	t.Helper()
	c.items = append(c.items, map[string]any{"id": id, "state": "SANDBOX_READY",
		"metadata": map[string]any{"name": name, "namespace": namespace, "uid": ""}})
	inspect := map[string]any{"info": map[string]any{"runtimeSpec": map[string]any{"linux": map[string]any{
		"namespaces": []any{map[string]any{"type": "network", "path": netns}}}}}}
	if netns == "" {
		inspect = map[string]any{"status": map[string]any{"linux": map[string]any{"namespaces": map[string]any{"options": map[string]any{"network": "NODE"}}}}}
	}
	writeJSON(t, filepath.Join(c.dir, "inspectp-"+id+".json"), inspect)
	writeJSON(t, filepath.Join(c.dir, "pods.json"), map[string]any{"items": c.items})
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// installedConfDir is a CNI config dir as the installer leaves it: a bridge conflist with the asm-cni entry.
func (f *fixture) installedConfDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "10-bridge.conflist"), map[string]any{
		"cniVersion": "1.0.0", "name": "k8s-pod-network",
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": "cni0"},
			map[string]any{"type": "asm-cni", "kubeconfig": f.kubeconfig, "exclude_namespaces": []string{"kube-system"}},
		},
	})
	return dir
}

// runVerifyOnNode runs `asm-cni verify` in the node namespace, where the stand-in API server listens.
func (f *fixture) runVerifyOnNode(t *testing.T, args ...string) verifyRun {
	t.Helper()
	out, err := nettest.Output(f.node, nettest.Binary(t), append([]string{"verify"}, args...)...)
	r := verifyRun{stdout: out}
	var ce *nettest.CmdError
	if errors.As(err, &ce) {
		r.stderr = ce.Stderr
		var ee *exec.ExitError
		if errors.As(ce.Err, &ee) {
			r.exit = ee.ExitCode()
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// `verify NAMESPACE/POD` and `verify --node` find pods through the CRI and the API server with the plugin's
// own config: a healthy node exits 0, a drifted pod makes it exit 1 and is named in the table.
func TestVerifyOnNode(t *testing.T) {
	f := newFixture(t)
	cri := newFakeCRI(t)
	confDir := f.installedConfDir(t)
	common := []string{"--cni-conf-dir", confDir, "--crictl", filepath.Join(cri.dir, "crictl"), "--cri-endpoint", "unix:///nonexistent.sock"}

	web := nettest.NewNS(t)
	f.api.SetPod(t, "apps", "web", nettest.Pod("apps", "web", nil, nil))
	mustSucceed(t, "ADD", f.run(t, "ADD", web, podArgs("apps", "web"), f.conf(t, "1.0.0", prevResult("1.0.0", web.Path()), nil)))
	cri.add(t, "sb-web", "apps", "web", web.Path())

	plain := nettest.NewNS(t)
	f.api.SetPod(t, "apps", "plain", map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "plain", "namespace": "apps"},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app"}}}})
	cri.add(t, "sb-plain", "apps", "plain", plain.Path())

	f.api.SetPod(t, "kube-system", "proxy", map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "proxy", "namespace": "kube-system"},
		"spec":     map[string]any{"hostNetwork": true, "containers": []any{map[string]any{"name": "p", "image": "p"}}}})
	cri.add(t, "sb-proxy", "kube-system", "proxy", "")

	r := f.runVerifyOnNode(t, append([]string{"--node"}, common...)...)
	if r.exit != 0 {
		t.Fatalf("healthy node: want exit 0, got %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	for _, want := range []string{"apps/web", "match", "apps/plain", "not-redirected", "kube-system/proxy"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("table lacks %q:\n%s", want, r.stdout)
		}
	}

	r = f.runVerifyOnNode(t, append([]string{"apps/web", "-o", "json"}, common...)...)
	var one struct{ Pod, Verdict string }
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || r.exit != 0 || one.Pod != "apps/web" || one.Verdict != "match" {
		t.Fatalf("verify apps/web: want exit 0 and match, got %d %+v\n%s%s", r.exit, one, r.stdout, r.stderr)
	}

	nettest.Run(t, web, "iptables-"+f.backend, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-j", "ISTIO_REDIRECT")
	r = f.runVerifyOnNode(t, append([]string{"--node"}, common...)...)
	if r.exit != 1 || !strings.Contains(r.stdout, "apps/web") || !strings.Contains(r.stdout, "drift") || !strings.Contains(r.stdout, "ISTIO_REDIRECT") {
		t.Fatalf("drifted pod: want exit 1 naming it, got %d\n%s%s", r.exit, r.stdout, r.stderr)
	}

	if r := f.runVerifyOnNode(t, append([]string{"apps/gone"}, common...)...); r.exit != 5 || !strings.Contains(r.stderr, "no ready sandbox") {
		t.Fatalf("unknown pod: want exit 5, got %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	if r := f.runVerifyOnNode(t, "--node", "--cni-conf-dir", t.TempDir()); r.exit != 5 || !strings.Contains(r.stderr, "no CNI config") {
		t.Fatalf("no plugin config: want exit 5, got %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	if r := f.runVerifyOnNode(t, "--node", "apps/web"); r.exit != 2 {
		t.Fatalf("--node with a pod: want usage exit 2, got %d", r.exit)
	}
}
