package plugin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/asm-cni/asm-cni/cni/internal/config"
	"github.com/asm-cni/asm-cni/cni/internal/kube"
)

// podServer is an API server answering a pod without a sidecar, recording whether each handshake resumed; it returns
// a kubeconfig for it in dir.
func podServer(t *testing.T, dir string, resumed *[]bool, mu *sync.Mutex) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*resumed = append(*resumed, r.TLS.DidResume)
		mu.Unlock()
		fmt.Fprint(w, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-0","namespace":"shop"},"spec":{"containers":[{"name":"app"}]}}`)
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: u
  user: {token: tok}
`, srv.URL, base64.StdEncoding.EncodeToString(ca))), 0o600); err != nil {
		t.Fatal(err)
	}
	return kc
}

// lookupLogged runs one lookup of shop/web-0 as ADD does and returns its log line.
func lookupLogged(t *testing.T, kc string) map[string]any {
	t.Helper()
	var logs bytes.Buffer
	c := newLogger("info", "", &logs).call("ADD", "c", "/var/run/netns/x")
	conf := &config.Config{Kubeconfig: kc, APITimeout: 5 * time.Second}
	spec, skip, err := lookup(conf, target{ref: kube.PodRef{Namespace: "shop", Name: "web-0"}}, c)
	if err != nil || spec != nil || skip == "" {
		t.Fatalf("lookup: spec %v, skip %q, err %v (want: not selected, no sidecar)", spec, skip, err)
	}
	c.done(DecisionSkipped, skip, nil)
	var m map[string]any
	if err := json.Unmarshal(logs.Bytes(), &m); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	return m
}

// Each lookup runs as a process of its own in production; here two lookups in a row stand for two plugin processes:
// the second resumes the TLS session the first saved in SessionFile, and each log line says which.
func TestLookupResumesTheSavedSession(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	dir := t.TempDir()
	kc := podServer(t, dir, &resumed, &mu)
	defer func(old string) { SessionFile = old }(SessionFile)
	SessionFile = filepath.Join(dir, "state", kube.SessionFileName)

	first, second := lookupLogged(t, kc), lookupLogged(t, kc)
	if first["tls_resumed"] != false || second["tls_resumed"] != true {
		t.Fatalf("tls_resumed in the log lines: %v, %v; want false, true", first["tls_resumed"], second["tls_resumed"])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) != 2 || resumed[0] || !resumed[1] {
		t.Fatalf("handshakes resumed: %v, want [false true]", resumed)
	}
	if _, err := os.Stat(SessionFile); err != nil {
		t.Fatalf("no session file: %v", err)
	}
}

func TestNoSessionWithoutSessionFile(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	kc := podServer(t, t.TempDir(), &resumed, &mu)
	defer func(old string) { SessionFile = old }(SessionFile)
	SessionFile = ""
	for i := 0; i < 2; i++ {
		if line := lookupLogged(t, kc); line["tls_resumed"] != nil {
			t.Fatalf("tls_resumed logged with no session file: %v", line)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) != 2 || resumed[1] {
		t.Fatalf("handshakes resumed: %v, want two full ones", resumed)
	}
}
