package binary_test

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// logLines returns the JSON lines of the plugin's log file that report a command (they carry "cmd"); every line
// of the file must be JSON.
func logLines(t *testing.T, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON (%v): %s", err, sc.Text())
		}
		for _, k := range []string{"time", "level", "msg", "component"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("log line without %q: %s", k, sc.Text())
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil || !strings.HasSuffix(m["time"].(string), "Z") {
			t.Fatalf("time is not RFC 3339 UTC: %v", m["time"])
		}
		if _, ok := m["cmd"]; ok {
			out = append(out, m)
		}
	}
	return out
}

// checkLine compares the fields of a command's line; a "ms" value asks for a non-negative number, "" for absence.
func checkLine(t *testing.T, what string, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		g, present := got[k]
		switch {
		case w == "":
			if present {
				t.Errorf("%s: %s = %v, want none", what, k, g)
			}
		case w == "ms":
			if n, ok := g.(float64); !ok || n < 0 {
				t.Errorf("%s: %s = %v, want a duration in ms", what, k, g)
			}
		default:
			if g != w {
				t.Errorf("%s: %s = %v, want %v", what, k, g, w)
			}
		}
	}
}

// One info line per ADD and DEL: the pod, its UID, the container, the decision and why, and how long the lookup
// and the rule programming took.
func TestLogLinesOfAddSkippedAddAndDel(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "web", nettest.Pod("default", "web", nil, nil))
	withInit := nettest.Pod("default", "with-init", nil, nil)
	withInit["spec"].(map[string]any)["initContainers"] = []any{map[string]any{"name": "istio-init", "image": "proxyv2"}}
	f.api.SetPod(t, "default", "with-init", withInit)

	pod := nettest.NewNS(t)
	conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), map[string]any{"log_level": "info"})
	mustSucceed(t, "ADD", f.run(t, "ADD", pod, podArgs("default", "web"), conf))
	other := nettest.NewNS(t)
	mustSucceed(t, "skipped ADD", f.run(t, "ADD", other, podArgs("default", "with-init"),
		f.conf(t, "1.0.0", prevResult("1.0.0", other.Path()), map[string]any{"log_level": "info"})))
	mustSucceed(t, "DEL", f.run(t, "DEL", pod, podArgs("default", "web"), conf))
	f.api.SetStatus("default", "gone", 404)
	third := nettest.NewNS(t)
	f.run(t, "ADD", third, podArgs("default", "gone"), f.conf(t, "1.0.0", prevResult("1.0.0", third.Path()), map[string]any{"log_level": "info"}))

	lines := logLines(t, f.logFile)
	if len(lines) != 4 {
		t.Fatalf("want one line per command (4), got %d: %v", len(lines), lines)
	}
	// podArgs passes K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID; the runner sets CNI_CONTAINERID.
	container := lines[0]["container"]
	if s, ok := container.(string); !ok || s == "" {
		t.Fatalf("no container ID: %v", lines[0])
	}
	checkLine(t, "ADD", lines[0], map[string]any{
		"level": "info", "msg": "ADD redirected", "component": "asm-cni", "cmd": "ADD", "pod": "default/web",
		"pod_uid": "1234", "netns": pod.Path(), "decision": "redirected", "lookup_ms": "ms", "rules_ms": "ms", "error": "",
	})
	if r, _ := lines[0]["reason"].(string); !strings.Contains(r, "iptables "+f.backend) {
		t.Errorf("ADD reason %q does not name the iptables backend %s", r, f.backend)
	}
	checkLine(t, "skipped ADD", lines[1], map[string]any{
		"level": "info", "msg": "ADD skipped", "cmd": "ADD", "pod": "default/with-init", "pod_uid": "1234",
		"decision": "skipped", "reason": "istio-init-present", "lookup_ms": "ms", "rules_ms": "", "error": "",
	})
	checkLine(t, "DEL", lines[2], map[string]any{
		"level": "info", "msg": "DEL removed", "cmd": "DEL", "pod": "default/web", "pod_uid": "1234",
		"container": container, "decision": "removed", "lookup_ms": "", "rules_ms": "ms", "error": "",
	})
	checkLine(t, "failed ADD", lines[3], map[string]any{
		"level": "error", "msg": "ADD failed", "cmd": "ADD", "pod": "default/gone", "decision": "failed",
		"lookup_ms": "ms", "rules_ms": "",
	})
	if e, _ := lines[3]["error"].(string); !strings.Contains(e, "default/gone") {
		t.Errorf("the error does not name the pod: %q", e)
	}
}
