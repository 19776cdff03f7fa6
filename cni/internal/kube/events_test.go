package kube

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEventsWarn(t *testing.T) {
	var got map[string]any
	var path, auth string
	status := http.StatusCreated
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.URL.Path, r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"kind":"Status","message":"events is forbidden"}`)
	}))
	defer srv.Close()
	tls := srv.Client().Transport.(*http.Transport).TLSClientConfig
	e := Events{Endpoint: &Endpoint{Server: srv.URL, Token: "tok", TLS: tls}, Component: "asm-cni-audit", Host: "node-1",
		Now: func() time.Time { return time.Unix(1700000000, 0) }}
	if err := e.Warn(context.Background(), "apps", "web", "u1", "RedirectionDrift", "rules differ"); err != nil {
		t.Fatal(err)
	}
	io := got["involvedObject"].(map[string]any)
	if path != "/api/v1/namespaces/apps/events" || auth != "Bearer tok" || got["type"] != "Warning" || got["reason"] != "RedirectionDrift" ||
		io["name"] != "web" || io["uid"] != "u1" || io["kind"] != "Pod" || got["lastTimestamp"] != "2023-11-14T22:13:20Z" ||
		got["source"].(map[string]any)["host"] != "node-1" {
		t.Fatalf("unexpected request %s %s %v", path, auth, got)
	}
	status = http.StatusForbidden
	if err := e.Warn(context.Background(), "apps", "web", "u1", "R", "m"); err == nil || !strings.Contains(err.Error(), "HTTP 403: events is forbidden") {
		t.Fatalf("want the refusal named, got %v", err)
	}
}

func TestInCluster(t *testing.T) {
	dir := t.TempDir()
	old := ServiceAccountDir
	ServiceAccountDir = dir
	defer func() { ServiceAccountDir = old }()
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := InCluster(); err == nil || !strings.Contains(err.Error(), "not in a pod") {
		t.Fatalf("outside a pod: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "2001:db8::1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if _, err := InCluster(); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("no token: %v", err)
	}
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	_ = os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600)
	ep, err := InCluster()
	if err != nil || ep.Server != "https://[2001:db8::1]:443" || ep.Token != "tok" || ep.TLS.RootCAs == nil {
		t.Fatalf("got %+v %v", ep, err)
	}
}
