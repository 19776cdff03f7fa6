package binary_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// Every bad input is a CNI error JSON on stdout with a fitting code and a message that says what is wrong,
// a non-zero exit, and no rules in the pod namespace.
// hangBound catches a plugin that ignores api_timeout (it would wait for a hung API server forever); it is far above
// api_timeout so that a busy machine, starting the binary slowly, never trips it. The message names api_timeout.
const hangBound = 30 * time.Second

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "good", nettest.Pod("default", "good", nil, nil))
	f.api.SetPod(t, "default", "bad-annotation", nettest.Pod("default", "bad-annotation",
		map[string]string{"traffic.sidecar.istio.io/excludeOutboundPorts": "http"}, nil))
	f.api.SetStatus("default", "secret", 403)

	// An address in the node namespace nobody listens on: connection refused at once, retried until the timeout.
	deadKubeconfig := nettest.Kubeconfig(t, "https://127.0.0.1:1", f.api.CAData, token, "")
	// A listener that accepts and never answers: the lookup must still end within api_timeout.
	var hang net.Listener
	nettest.InNS(t, f.node, func() error {
		var err error
		hang, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	t.Cleanup(func() { hang.Close() })
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	hangKubeconfig := nettest.Kubeconfig(t, "https://"+hang.Addr().String(), f.api.CAData, token, "")
	wrongToken := nettest.Kubeconfig(t, f.api.URL, f.api.CAData, "not-the-token", "")

	cases := []struct {
		name    string
		stdin   func(podPath string) []byte
		pod     string
		unset   []string
		code    uint
		msg     []string
		maxTook time.Duration
		minTook time.Duration
		noAPI   bool // the plugin must fail before any API call
	}{
		{name: "malformed stdin", stdin: func(string) []byte { return []byte(`{"cniVersion": "1.0.0", "name": `) },
			pod: "good", code: 6, msg: []string{"unmarshal"}, noAPI: true},
		{name: "stdin not an object", stdin: func(string) []byte { return []byte(`["asm-cni"]`) },
			pod: "good", code: 6, noAPI: true},
		{name: "missing CNI_NETNS", pod: "good", unset: []string{"CNI_NETNS"}, code: 4, msg: []string{"CNI_NETNS"}, noAPI: true},
		{name: "unsupported cniVersion", stdin: func(p string) []byte { return f.conf(t, "0.2.0", prevResult("0.3.1", p), nil) },
			pod: "good", code: 1, msg: []string{"incompatible CNI versions"}, noAPI: true},
		{name: "missing prevResult", stdin: func(p string) []byte { return f.conf(t, "1.0.0", nil, nil) },
			pod: "good", code: 7, msg: []string{"prevResult is missing"}, noAPI: true},
		{name: "api_timeout not a duration", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"api_timeout": "soon"})
		}, pod: "good", code: 7, msg: []string{"api_timeout", "soon"}, noAPI: true},
		{name: "exclude_namespaces not a list", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"exclude_namespaces": "kube-system"})
		}, pod: "good", code: 7, msg: []string{"exclude_namespaces"}, noAPI: true},
		{name: "no kubeconfig key", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"kubeconfig": nil})
		}, pod: "good", code: 7, msg: []string{"kubeconfig is required"}, noAPI: true},
		{name: "kubeconfig file missing", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"kubeconfig": "/nonexistent/asm-cni-kubeconfig"})
		}, pod: "good", code: 7, msg: []string{"/nonexistent/asm-cni-kubeconfig"}, noAPI: true},
		{name: "API unreachable", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"kubeconfig": deadKubeconfig, "api_timeout": "1s"})
		}, pod: "good", code: 11, msg: []string{"unreachable", "default/good", "connection refused", "api_timeout 1s"},
			minTook: 850 * time.Millisecond, maxTook: hangBound, noAPI: true},
		{name: "API hangs", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"kubeconfig": hangKubeconfig, "api_timeout": "1s"})
		}, pod: "good", code: 11, msg: []string{"unreachable", "default/good"}, maxTook: hangBound, noAPI: true},
		{name: "unauthorized", stdin: func(p string) []byte {
			return f.conf(t, "1.0.0", prevResult("1.0.0", p), map[string]any{"kubeconfig": wrongToken})
		}, pod: "good", code: 101, msg: []string{"unauthorized", "HTTP 401"}},
		{name: "forbidden", pod: "secret", code: 102, msg: []string{"forbidden", "HTTP 403", "get on pods"}},
		{name: "pod not found", pod: "ghost", code: 103, msg: []string{"not found", "default/ghost", `pods "ghost" not found`}},
		{name: "invalid annotation", pod: "bad-annotation", code: 105,
			msg: []string{"traffic.sidecar.istio.io/excludeOutboundPorts", "http"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := nettest.NewNS(t)
			stdin := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), nil)
			if c.stdin != nil {
				stdin = c.stdin(pod.Path())
			}
			before := f.api.Requests.Load()
			o := nettest.RunPlugin(t, f.node, nettest.Invocation{Command: "ADD", Netns: pod.Path(), Args: podArgs("default", c.pod),
				Config: stdin, Unset: c.unset})
			e := o.Error(t)
			if e.Code != c.code {
				t.Fatalf("code %d, want %d: %+v", e.Code, c.code, e)
			}
			full := e.Msg + " " + e.Details
			for _, m := range c.msg {
				if !strings.Contains(full, m) {
					t.Fatalf("message lacks %q: %s", m, full)
				}
			}
			if c.maxTook > 0 && o.Took > c.maxTook {
				t.Fatalf("took %s: api_timeout ignored (bound %s)", o.Took, c.maxTook)
			}
			if c.minTook > 0 && o.Took < c.minTook {
				t.Fatalf("took %s: expected retries up to api_timeout, at least %s", o.Took, c.minTook)
			}
			if c.noAPI && f.api.Requests.Load() != before {
				t.Fatalf("the plugin called the API server")
			}
			noRules(t, pod, f.backend)
		})
	}
}

// A failure while applying (here: a foreign chain still references one of our chains, so the transaction
// cannot delete it) leaves no rule of ours behind, not even in the tables that would have applied.
func TestFailedApplyLeavesNothing(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "p", nettest.Pod("default", "p", nil, nil))
	for _, c := range []struct {
		name string
		v6   bool // the blocking chain is in ip6tables: IPv4 applies first and must be rolled back
	}{{"IPv4 transaction fails", false}, {"IPv6 fails after IPv4 applied", true}} {
		t.Run(c.name, func(t *testing.T) {
			pod := nettest.NewNS(t)
			ipt := "iptables-" + f.backend
			if c.v6 {
				ipt = "ip6tables-" + f.backend
			}
			nettest.Run(t, pod, ipt, "-w", "-t", "mangle", "-N", "ISTIO_DROP")
			nettest.Run(t, pod, ipt, "-w", "-t", "mangle", "-N", "FOREIGN")
			nettest.Run(t, pod, ipt, "-w", "-t", "mangle", "-A", "FOREIGN", "-j", "ISTIO_DROP")
			prev := prevResult("1.0.0", pod.Path(), "192.0.2.10/24", "2001:db8:1::10/64")
			e := f.run(t, "ADD", pod, podArgs("default", "p"), f.conf(t, "1.0.0", prev, nil)).Error(t)
			if e.Code != 106 || !strings.Contains(e.Msg, "not applied") {
				t.Fatalf("want code 106 'not applied', got %+v", e)
			}
			for _, v6 := range []bool{false, true} {
				if got := nettest.Save(t, pod, f.backend, v6); strings.Contains(got, "ISTIO_OUTPUT") || strings.Contains(got, "-A OUTPUT") {
					t.Fatalf("partial rules left (v6=%v):\n%s", v6, got)
				}
			}
		})
	}
}

// Pods that get no redirection pass prevResult through unchanged; excluded namespaces and runtimes that name
// no pod do so without any API call.
func TestPassthrough(t *testing.T) {
	f := newFixture(t)
	withInit := nettest.Pod("default", "with-init", nil, nil)
	withInit["spec"].(map[string]any)["initContainers"] = []any{map[string]any{"name": "istio-init", "image": "proxyv2"}}
	f.api.SetPod(t, "default", "with-init", withInit)
	f.api.SetPod(t, "default", "none", nettest.Pod("default", "none", map[string]string{"sidecar.istio.io/interceptionMode": "NONE"}, nil))
	cases := []struct {
		name, args string
		api        bool
	}{
		{"excluded namespace", podArgs("kube-system", "coredns"), false},
		{"no pod in CNI_ARGS", "IgnoreUnknown=1", false},
		{"istio-init present", podArgs("default", "with-init"), true},
		{"interception NONE", podArgs("default", "none"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := nettest.NewNS(t)
			conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), nil)
			before := f.api.Requests.Load()
			o := f.run(t, "ADD", pod, c.args, conf)
			mustSucceed(t, "ADD", o)
			samePrevResult(t, conf, o.Stdout)
			if called := f.api.Requests.Load() != before; called != c.api {
				t.Fatalf("API called = %v, want %v", called, c.api)
			}
			noRules(t, pod, f.backend)
			mustSucceed(t, "CHECK", f.run(t, "CHECK", pod, c.args, conf))
		})
	}
}

// 5xx answers are retried within api_timeout; a rotated token in tokenFile is used by the next call.
func TestRetriesAndTokenRotation(t *testing.T) {
	f := newFixture(t)
	f.api.SetPod(t, "default", "p", nettest.Pod("default", "p", nil, nil))
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := nettest.Kubeconfig(t, f.api.URL, f.api.CAData, "", tokFile)
	pod := nettest.NewNS(t)
	conf := f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), map[string]any{"kubeconfig": kc})

	f.api.Fail5xx(3)
	before := f.api.Requests.Load()
	mustSucceed(t, "ADD after 503s", f.run(t, "ADD", pod, podArgs("default", "p"), conf))
	if n := f.api.Requests.Load() - before; n != 4 {
		t.Fatalf("want 3 retried 503s and 1 success, got %d requests", n)
	}

	f.api.SetToken("rotated-token")
	e := f.run(t, "ADD", pod, podArgs("default", "p"), conf).Error(t)
	if e.Code != 101 {
		t.Fatalf("old token after rotation on the server: want 101, got %+v", e)
	}
	if err := os.WriteFile(tokFile, []byte("rotated-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, "ADD with the rotated token", f.run(t, "ADD", pod, podArgs("default", "p"), conf))

	f.api.Fail5xx(1000)
	o := f.run(t, "ADD", pod, podArgs("default", "p"), f.conf(t, "1.0.0", prevResult("1.0.0", pod.Path()), map[string]any{"kubeconfig": kc, "api_timeout": "800ms"}))
	if e := o.Error(t); e.Code != 11 || !strings.Contains(e.Msg, "503") || o.Took > hangBound {
		t.Fatalf("persistent 503: want code 11 within api_timeout, got %+v after %s", e, o.Took)
	}
	f.api.Fail5xx(0)
}
