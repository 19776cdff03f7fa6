package kube

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func caPEM(s *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))
}

// clientCertKubeconfig writes a kubeconfig that trusts srv and presents srv's own certificate and key as the client's
// pair (srv asks for any client certificate).
func clientCertKubeconfig(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.TLS.Certificates[0].Certificate[0]})
	key := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: mustPKCS1(t, srv.TLS.Certificates[0])})
	b64 := base64.StdEncoding.EncodeToString
	return writeFile(t, t.TempDir(), "kc", kubeconfigFor(srv.URL, "    certificate-authority-data: "+b64([]byte(caPEM(srv))),
		"    client-certificate-data: "+b64(cert)+"\n    client-key-data: "+b64(key)))
}

func kubeconfigFor(server, cluster, user string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: c
contexts:
- name: other
  context: {cluster: nope, user: nope}
- name: c
  context: {cluster: local, user: u}
clusters:
- name: nope
  cluster: {server: "https://192.0.2.1:1"}
- name: local
  cluster:
    server: %s
%s
users:
- name: u
  user:
%s
`, server, cluster, user)
}

func TestPodFromArgs(t *testing.T) {
	ref, ok := PodFromArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc")
	if !ok || ref.Namespace != "shop" || ref.Name != "web-0" {
		t.Fatalf("got %+v %v", ref, ok)
	}
	for _, in := range []string{"", "IgnoreUnknown=1", "K8S_POD_NAME=x", "K8S_POD_NAMESPACE=y;K8S_POD_NAME="} {
		if _, ok := PodFromArgs(in); ok {
			t.Errorf("%q must name no pod", in)
		}
	}
}

func TestLoadEndpoint(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", caPEM(srv))
	writeFile(t, dir, "token", "  file-token\n")

	ep, err := LoadEndpoint(writeFile(t, dir, "kc1", kubeconfigFor(srv.URL+"/",
		"    certificate-authority-data: "+base64.StdEncoding.EncodeToString([]byte(caPEM(srv))), "    token: inline")))
	if err != nil {
		t.Fatal(err)
	}
	if ep.Server != srv.URL || ep.Token != "inline" || ep.TLS.RootCAs == nil || ep.TLS.InsecureSkipVerify {
		t.Fatalf("endpoint %+v", ep)
	}
	// Relative CA and token files resolve against the kubeconfig's directory.
	ep, err = LoadEndpoint(writeFile(t, dir, "kc2", kubeconfigFor(srv.URL, "    certificate-authority: ca.crt", "    tokenFile: token")))
	if err != nil || ep.Token != "file-token" || ep.TLS.RootCAs == nil {
		t.Fatalf("relative files: %+v %v", ep, err)
	}
	ep, err = LoadEndpoint(writeFile(t, dir, "kc3", kubeconfigFor(srv.URL, "    insecure-skip-tls-verify: true", "    token: x")))
	if err != nil || !ep.TLS.InsecureSkipVerify {
		t.Fatalf("insecure-skip-tls-verify not honoured: %+v %v", ep, err)
	}

	bad := map[string]string{
		"missing file":     "",
		"not yaml":         "clusters: [",
		"no server":        kubeconfigFor("", "", "    token: x"),
		"bad scheme":       kubeconfigFor("ftp://x", "", "    token: x"),
		"bad ca data":      kubeconfigFor(srv.URL, "    certificate-authority-data: '%%%'", "    token: x"),
		"ca not pem":       kubeconfigFor(srv.URL, "    certificate-authority-data: "+base64.StdEncoding.EncodeToString([]byte("hello")), "    token: x"),
		"no token file":    kubeconfigFor(srv.URL, "", "    tokenFile: /nonexistent/token"),
		"cert without key": kubeconfigFor(srv.URL, "", "    client-certificate-data: "+base64.StdEncoding.EncodeToString([]byte("x"))),
		"unknown context":  "current-context: zzz\nclusters: []\n",
	}
	for name, content := range bad {
		path := filepath.Join(dir, "missing")
		if content != "" {
			path = writeFile(t, dir, "bad", content)
		}
		if _, err := LoadEndpoint(path); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
			t.Errorf("%s: want an error naming the kubeconfig, got %v", name, err)
		}
	}
}

type api struct {
	srv   *httptest.Server
	calls atomic.Int32
}

func newAPI(t *testing.T, h func(n int32, w http.ResponseWriter, r *http.Request)) (*api, string) {
	a := &api{}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(a.calls.Add(1), w, r)
	}))
	t.Cleanup(a.srv.Close)
	kc := writeFile(t, t.TempDir(), "kc", kubeconfigFor(a.srv.URL,
		"    certificate-authority-data: "+base64.StdEncoding.EncodeToString([]byte(caPEM(a.srv))), "    token: tok"))
	return a, kc
}

func TestGetPod(t *testing.T) {
	defer func(f, m time.Duration) { firstBackoff, maxBackoff = f, m }(firstBackoff, maxBackoff)
	firstBackoff, maxBackoff = 10*time.Millisecond, 20*time.Millisecond

	t.Run("ok with path and token", func(t *testing.T) {
		_, kc := newAPI(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
			if r.URL.EscapedPath() != "/api/v1/namespaces/shop/pods/web-0" || r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(400)
				return
			}
			fmt.Fprint(w, `{"kind":"Pod"}`)
		})
		body, err := GetPod(context.Background(), kc, "shop", "web-0", time.Second, nil)
		if err != nil || string(body) != `{"kind":"Pod"}` {
			t.Fatalf("%s %v", body, err)
		}
	})
	final := []struct {
		status int
		kind   Kind
	}{{401, KindUnauthorized}, {403, KindForbidden}, {404, KindNotFound}, {400, KindBadResponse}}
	for _, c := range final {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			a, kc := newAPI(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(c.status)
				fmt.Fprint(w, `{"kind":"Status","message":"the reason"}`)
			})
			_, err := GetPod(context.Background(), kc, "ns", "p", time.Second, nil)
			var le *LookupError
			if !errors.As(err, &le) || le.Kind != c.kind || !strings.Contains(le.Error(), "the reason") || !strings.Contains(le.Error(), "ns/p") {
				t.Fatalf("got %v", err)
			}
			if a.calls.Load() != 1 {
				t.Fatalf("%d is final: want 1 call, got %d", c.status, a.calls.Load())
			}
		})
	}
	t.Run("5xx and 429 retried", func(t *testing.T) {
		a, kc := newAPI(t, func(n int32, w http.ResponseWriter, _ *http.Request) {
			switch n {
			case 1:
				w.WriteHeader(500)
			case 2:
				w.WriteHeader(429)
			default:
				fmt.Fprint(w, `{}`)
			}
		})
		if _, err := GetPod(context.Background(), kc, "ns", "p", 2*time.Second, nil); err != nil || a.calls.Load() != 3 {
			t.Fatalf("err %v after %d calls", err, a.calls.Load())
		}
	})
	t.Run("persistent 5xx is retried, then given up at the timeout", func(t *testing.T) {
		a, kc := newAPI(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
		// The budget leaves room for retries on a busy machine; the bound on the wait only catches a hang
		// (a lookup that ignores its timeout), it does not measure speed.
		start := time.Now()
		_, err := GetPod(context.Background(), kc, "ns", "p", 3*time.Second, nil)
		var le *LookupError
		if !errors.As(err, &le) || le.Kind != KindServerError || !le.Retryable() || time.Since(start) > time.Minute || a.calls.Load() < 2 {
			t.Fatalf("got %v after %s and %d calls", err, time.Since(start), a.calls.Load())
		}
	})
	t.Run("wrong CA is unreachable", func(t *testing.T) {
		other := httptest.NewTLSServer(http.NotFoundHandler())
		defer other.Close()
		kc := writeFile(t, t.TempDir(), "kc", kubeconfigFor(other.URL, "", "    token: x")) // system roots only
		// A certificate error is retried until the timeout; the message keeps it once one attempt got that far, so
		// the timeout is generous (a busy machine can take longer than a short one for the first handshake).
		_, err := GetPod(context.Background(), kc, "ns", "p", 3*time.Second, nil)
		var le *LookupError
		if !errors.As(err, &le) || le.Kind != KindUnreachable || !strings.Contains(le.Error(), "certificate") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("kubeconfig error", func(t *testing.T) {
		_, err := GetPod(context.Background(), "/nonexistent/kc", "ns", "p", time.Second, nil)
		var le *LookupError
		if !errors.As(err, &le) || le.Kind != KindKubeconfig {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("client certificate is presented", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) == 0 {
				w.WriteHeader(401)
				return
			}
			fmt.Fprint(w, `{}`)
		}))
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		srv.StartTLS()
		defer srv.Close()
		kc := clientCertKubeconfig(t, srv)
		if _, err := GetPod(context.Background(), kc, "ns", "p", time.Second, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// The shape of kubeconfig Istio's installer writes for its plugin (oracle install/kubeconfig-skip-tls) loads.
func TestLoadOracleKubeconfig(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "shared", "oracles", "istio", "install", "kubeconfig-skip-tls")
	_, err := os.Stat(path)
	testenv.Require(t, err == nil, "oracle data not found at "+path)
	ep, err := LoadEndpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Server != "https://10.96.0.1:443" || ep.Token != "service_account_token_string" || !ep.TLS.InsecureSkipVerify {
		t.Fatalf("got %+v", ep)
	}
}
