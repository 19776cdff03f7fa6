package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/asm-cni/asm-cni/cni/internal/config"
	"github.com/asm-cni/asm-cni/cni/internal/kube"
)

func TestLookupErrCodes(t *testing.T) {
	for kind, code := range map[kube.Kind]uint{
		kube.KindKubeconfig: types.ErrInvalidNetworkConfig, kube.KindUnreachable: types.ErrTryAgainLater,
		kube.KindServerError: types.ErrTryAgainLater, kube.KindUnauthorized: CodeUnauthorized, kube.KindForbidden: CodeForbidden,
		kube.KindNotFound: CodePodNotFound, kube.KindBadResponse: CodeBadAPIResponse,
	} {
		err := lookupErr(&kube.LookupError{Kind: kind, Namespace: "ns", Name: "p", Detail: "why"})
		var te *types.Error
		if !errors.As(err, &te) || te.Code != code || !strings.Contains(te.Msg, "ns/p") || !strings.Contains(te.Msg, "why") {
			t.Errorf("%s: got %v, want code %d", kind, err, code)
		}
	}
	var te *types.Error
	if !errors.As(lookupErr(errors.New("odd")), &te) || te.Code != types.ErrInternal {
		t.Error("unknown errors are internal")
	}
}

func TestTargetOf(t *testing.T) {
	conf := &config.Config{ExcludeNamespaces: []string{"kube-system"}}
	if tg := targetOf(&skel.CmdArgs{Args: "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web"}, conf); tg.skip != "" || tg.ref.Name != "web" {
		t.Fatalf("%+v", tg)
	}
	if tg := targetOf(&skel.CmdArgs{Args: "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns"}, conf); !strings.Contains(tg.skip, "exclude_namespaces") {
		t.Fatalf("%+v", tg)
	}
	if tg := targetOf(&skel.CmdArgs{Args: "IgnoreUnknown=1"}, conf); !strings.Contains(tg.skip, "no Kubernetes pod") {
		t.Fatalf("%+v", tg)
	}
}

func TestHasIPv6(t *testing.T) {
	mk := func(addrs ...string) types.Result {
		r := &current.Result{CNIVersion: "1.0.0"}
		for _, a := range addrs {
			ipn, err := types.ParseCIDR(a)
			if err != nil {
				t.Fatal(err)
			}
			r.IPs = append(r.IPs, &current.IPConfig{Address: *ipn})
		}
		return r
	}
	if hasIPv6(nil) || hasIPv6(mk("192.0.2.1/24")) || !hasIPv6(mk("192.0.2.1/24", "2001:db8::1/64")) {
		t.Fatal("hasIPv6 is wrong")
	}
}

func TestLoggerLevelsAndFile(t *testing.T) {
	var stderr bytes.Buffer
	file := filepath.Join(t.TempDir(), "asm-cni.log")
	l := newLogger("warn", file, &stderr)
	l.Info("hidden")
	l.Debugf("hidden %d", 2)
	l.Warn("shown", "n", 1)
	l.close()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{stderr.String(), string(data)} {
		var m map[string]any
		if strings.Contains(out, "hidden") || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("log output %q", out)
		}
		if m["level"] != "warn" || m["msg"] != "shown" || m["n"] != 1.0 || m["component"] != "asm-cni" {
			t.Fatalf("fields %v", m)
		}
		if ts, _ := m["time"].(string); !strings.HasSuffix(ts, "Z") {
			t.Fatalf("time not in UTC: %v", m["time"])
		}
	}
	stderr.Reset()
	l = newLogger("bogus", "/nonexistent/dir/asm-cni.log", &stderr)
	l.Info("still logged")
	l.Debug("below the default level")
	l.close()
	if !strings.Contains(stderr.String(), "cannot open log_file") || !strings.Contains(stderr.String(), `"msg":"still logged"`) ||
		strings.Contains(stderr.String(), "below") {
		t.Fatalf("stderr %q", stderr.String())
	}
}

// The line of a call carries what the call knew: the pod only when there is one, durations only when measured,
// the error at error level (warn for DEL, which never fails).
func TestCallLine(t *testing.T) {
	for _, c := range []struct {
		cmd, decision, level string
		err                  error
	}{
		{"ADD", DecisionFailed, "error", errors.New("boom")},
		{"DEL", DecisionFailed, "warn", errors.New("boom")},
		{"CHECK", DecisionSkipped, "info", nil},
	} {
		var out bytes.Buffer
		l := newLogger("info", "", &out)
		call := l.call(c.cmd, "c1", "")
		call.done(c.decision, "", c.err)
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m["level"] != c.level || m["msg"] != c.cmd+" "+c.decision || m["container"] != "c1" {
			t.Errorf("%s: %v", c.cmd, m)
		}
		for _, k := range []string{"pod", "pod_uid", "netns", "reason", "lookup_ms", "rules_ms"} {
			if _, ok := m[k]; ok {
				t.Errorf("%s: unexpected %s in %v", c.cmd, k, m)
			}
		}
		if (c.err != nil) != (m["error"] == "boom") {
			t.Errorf("%s: error field %v", c.cmd, m["error"])
		}
	}
}

func TestMissingPrevResult(t *testing.T) {
	prev := &current.Result{CNIVersion: "1.0.0"}
	var te *types.Error
	if err := missingPrevResult(&config.Config{}, "why"); !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig ||
		!strings.Contains(te.Msg, "prevResult is missing: why") || !strings.Contains(te.Msg, `"standalone": true`) {
		t.Fatalf("chained without prevResult: %v", err)
	}
	for _, c := range []*config.Config{
		{Standalone: true},
		{PluginConf: types.PluginConf{PrevResult: prev}},
		{Standalone: true, PluginConf: types.PluginConf{PrevResult: prev}},
	} {
		if err := missingPrevResult(c, "why"); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}

// A config that cannot be parsed is logged (to stderr: there is no log_file yet) with the pod it was for.
func TestInvalidConfigLogNamesThePod(t *testing.T) {
	var buf bytes.Buffer
	saved := Stderr
	Stderr = &buf
	defer func() { Stderr = saved }()
	if err := CmdAdd(&skel.CmdArgs{ContainerID: "c1", StdinData: []byte("{"), Args: "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web"}); err == nil {
		t.Fatal("ADD with an unparsable config succeeded")
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	if m["level"] != "error" || m["msg"] != "invalid network config" || m["pod"] != "shop/web" || m["container"] != "c1" {
		t.Fatalf("%v", m)
	}
}
