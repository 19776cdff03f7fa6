package binary_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

type verifyRun struct {
	exit           int
	stdout, stderr string
}

func runVerify(t *testing.T, args ...string) verifyRun {
	t.Helper()
	c := exec.Command(nettest.Binary(t), append([]string{"verify"}, args...)...)
	c.Env = []string{"PATH=" + os.Getenv("PATH")}
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	var ee *exec.ExitError
	r := verifyRun{stdout: so.String(), stderr: se.String()}
	switch {
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

func podFile(t *testing.T, pod map[string]any) string {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// The seam between ADD and verify: for every oracle case, what the plugin binary programs as a runtime runs it
// is exactly what `asm-cni verify` expects (exit 0, verdict match in JSON); a rule deleted afterwards is drift
// (exit 1, the line printed).
func TestVerifyAgreesWithAdd(t *testing.T) {
	f := newFixture(t)
	for _, c := range nettest.OracleCases {
		t.Run(c.Name, func(t *testing.T) {
			pod := nettest.NewNS(t)
			name := "pod-" + c.Name
			manifest := nettest.Pod("default", name, c.Annotations, c.ProxySC)
			f.api.SetPod(t, "default", name, manifest)
			conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), nil)
			mustSucceed(t, "ADD", f.run(t, "ADD", pod, podArgs("default", name), conf))

			file := podFile(t, manifest)
			r := runVerify(t, "-f", file, "--netns", pod.Path(), "--output", "json")
			var rep struct {
				Verdict, Backend string
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.exit != 0 || rep.Verdict != "match" || rep.Backend != f.backend {
				t.Fatalf("after ADD: want exit 0 and verdict match (backend %s), got exit %d %+v\nstdout: %s\nstderr: %s", f.backend, r.exit, rep, r.stdout, r.stderr)
			}

			nettest.Run(t, pod, "iptables-"+f.backend, "-w", "-t", "nat", "-D", "ISTIO_OUTPUT", "-j", "ISTIO_REDIRECT")
			r = runVerify(t, "-f", file, "--netns", pod.Path())
			if r.exit != 1 || !strings.Contains(r.stdout, "drift") || !strings.Contains(r.stdout, "nat/ISTIO_OUTPUT missing: -A ISTIO_OUTPUT -j ISTIO_REDIRECT") {
				t.Fatalf("after deleting a rule: want exit 1 naming the line, got %d\n%s%s", r.exit, r.stdout, r.stderr)
			}
		})
	}
}

// Exit statuses for the pods the plugin skips, and for bad command lines and inputs.
func TestVerifyExitStatuses(t *testing.T) {
	f := newFixture(t)
	withInit := nettest.Pod("apps", "web", nil, nil)
	withInit["spec"].(map[string]any)["initContainers"] = []any{map[string]any{"name": "istio-init", "image": "proxyv2"}}
	skipped := podFile(t, withInit)

	clean := nettest.NewNS(t)
	if r := runVerify(t, "-f", skipped, "--netns", clean.Path()); r.exit != 3 || !strings.Contains(r.stdout, "not-redirected") {
		t.Fatalf("skipped pod, clean namespace: want exit 3, got %d\n%s%s", r.exit, r.stdout, r.stderr)
	}

	// The same rules programmed for a pod that keeps istio-init: someone else redirects it.
	selected := nettest.Pod("apps", "web", nil, nil)
	f.api.SetPod(t, "apps", "web", selected)
	redirected := nettest.NewNS(t)
	mustSucceed(t, "ADD", f.run(t, "ADD", redirected, podArgs("apps", "web"), f.conf(t, "1.0.0", prevResult("1.0.0", redirected.Path()), nil)))
	if r := runVerify(t, "-f", skipped, "--netns", redirected.Path()); r.exit != 4 || !strings.Contains(r.stdout, "other-owner") {
		t.Fatalf("skipped pod with ISTIO rules: want exit 4, got %d\n%s%s", r.exit, r.stdout, r.stderr)
	}

	for _, c := range []struct {
		name string
		args []string
		exit int
		msg  string
	}{
		{"no netns flag", []string{"-f", skipped}, 2, "--netns PATH is required"},
		{"no file", []string{"--netns", clean.Path()}, 2, "-f FILE is required"},
		{"bad output", []string{"-f", skipped, "--netns", clean.Path(), "--output", "yaml"}, 2, "--output must be text or json"},
		{"bad backend", []string{"-f", skipped, "--netns", clean.Path(), "--iptables-backend", "ebpf"}, 2, "--iptables-backend must be"},
		{"netns missing", []string{"-f", skipped, "--netns", filepath.Join(t.TempDir(), "gone")}, 5, "gone"},
		{"host netns", []string{"-f", skipped, "--netns", "/proc/self/ns/net"}, 5, "node's own network namespace"},
		{"not a pod", []string{"-f", podFile(t, map[string]any{"kind": "Service"}), "--netns", clean.Path()}, 5, "pod.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runVerify(t, c.args...)
			if r.exit != c.exit || !strings.Contains(r.stderr, c.msg) {
				t.Fatalf("want exit %d with %q, got %d\nstdout: %s\nstderr: %s", c.exit, c.msg, r.exit, r.stdout, r.stderr)
			}
		})
	}
}
