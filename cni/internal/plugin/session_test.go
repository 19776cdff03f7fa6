package plugin

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
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

// Each lookup runs as a process of its own in production; here two lookups in a row stand for two plugin processes:
// the second resumes the TLS session the first saved in SessionFile.
func TestLookupResumesTheSavedSession(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS.DidResume)
		mu.Unlock()
		fmt.Fprint(w, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-0","namespace":"shop"},"spec":{"containers":[{"name":"app"}]}}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
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
	defer func(old string) { SessionFile = old }(SessionFile)
	SessionFile = filepath.Join(dir, "state", kube.SessionFileName)

	conf := &config.Config{Kubeconfig: kc, APITimeout: 5 * time.Second}
	tg := target{ref: kube.PodRef{Namespace: "shop", Name: "web-0"}}
	l := newLogger("info", "", io.Discard)
	for i := 0; i < 2; i++ {
		if spec, skip, err := lookup(conf, tg, l); err != nil || spec != nil || skip == "" {
			t.Fatalf("lookup %d: spec %v, skip %q, err %v (want: not selected, no sidecar)", i, spec, skip, err)
		}
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
