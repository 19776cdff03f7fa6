package kube

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// resumeAPI is an API server that answers every pod and records whether each handshake resumed a session.
type resumeAPI struct {
	srv     *httptest.Server
	mu      sync.Mutex
	resumed []bool
}

func newResumeAPI(t *testing.T) *resumeAPI {
	t.Helper()
	a := &resumeAPI{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.resumed = append(a.resumed, r.TLS.DidResume)
		a.mu.Unlock()
		w.Write([]byte(`{"kind":"Pod"}`))
	}))
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *resumeAPI) requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.resumed)
}

// last says whether the last request came over a resumed session.
func (a *resumeAPI) last(t *testing.T) bool {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.resumed) == 0 {
		t.Fatal("no request reached the server")
	}
	return a.resumed[len(a.resumed)-1]
}

// kubeconfigTrusting writes a kubeconfig for server that trusts the certificate of ca (an httptest server).
func kubeconfigTrusting(t *testing.T, server string, ca *httptest.Server) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "kc", kubeconfigFor(server,
		"    certificate-authority-data: "+base64.StdEncoding.EncodeToString([]byte(caPEM(ca))), "    token: tok"))
}

func getWithSession(t *testing.T, kc, session string) error {
	t.Helper()
	_, err := GetPod(context.Background(), kc, "ns", "p", 5*time.Second, &Session{Path: session})
	return err
}

func mustGet(t *testing.T, kc, session string) {
	t.Helper()
	if err := getWithSession(t, kc, session); err != nil {
		t.Fatal(err)
	}
}

func TestSessionResumedAcrossCalls(t *testing.T) {
	a := newResumeAPI(t)
	kc := kubeconfigTrusting(t, a.srv.URL, a.srv)
	session := filepath.Join(t.TempDir(), "state", SessionFileName) // the directory is created on the first save

	mustGet(t, kc, session)
	if a.last(t) {
		t.Fatal("first call (no session file) resumed")
	}
	st, err := os.Stat(session)
	if err != nil {
		t.Fatalf("no session saved after a full handshake: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("session file mode %v, want 0600", st.Mode().Perm())
	}
	saved, _ := os.ReadFile(session)

	mustGet(t, kc, session)
	if !a.last(t) {
		t.Fatal("second call did not resume the saved session")
	}
	mustGet(t, kc, session)
	if !a.last(t) {
		t.Fatal("third call did not resume the saved session")
	}
	if now, _ := os.ReadFile(session); !bytes.Equal(now, saved) {
		t.Fatal("the session file was rewritten after a resumed handshake")
	}
	entries, _ := os.ReadDir(filepath.Dir(session))
	if len(entries) != 1 {
		t.Fatalf("temporary files left beside the session: %v", entries)
	}
}

func TestSessionFileUnusable(t *testing.T) {
	a := newResumeAPI(t)
	kc := kubeconfigTrusting(t, a.srv.URL, a.srv)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	mustGet(t, kc, good)
	valid, _ := os.ReadFile(good)

	cases := map[string][]byte{
		"empty":               {},
		"garbage":             []byte("not a session\n"),
		"magic only":          sessionMagic,
		"truncated":           valid[:len(valid)/2],
		"state corrupted":     corruptState(t, valid),
		"length out of range": append(bytes.Clone(sessionMagic), 0xff, 0xff, 0xff, 0xff),
		"too large":           append(bytes.Clone(valid), make([]byte, maxSessionFile)...),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			session := filepath.Join(t.TempDir(), SessionFileName)
			if err := os.WriteFile(session, content, 0o600); err != nil {
				t.Fatal(err)
			}
			mustGet(t, kc, session) // a full handshake, never an error
			if a.last(t) {
				t.Fatal("resumed from an unusable file")
			}
			mustGet(t, kc, session) // the file was replaced by a good session
			if !a.last(t) {
				t.Fatal("the unusable file was not replaced by the new session")
			}
		})
	}
	t.Run("missing directory that cannot be created", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		mustGet(t, kc, filepath.Join(blocker, "sub", SessionFileName)) // the lookup succeeds without a cache
	})
}

// corruptState returns a copy of a saved session whose TLS state has an invalid session type.
func corruptState(t *testing.T, saved []byte) []byte {
	t.Helper()
	_, rest, ok := cut(saved[len(sessionMagic):]) // the key
	if ok {
		_, rest, ok = cut(rest) // the ticket
	}
	if !ok || len(rest) < 3 {
		t.Fatal("saved session does not have the expected layout")
	}
	out := bytes.Clone(saved)
	out[len(saved)-len(rest)+2] = 0xff // version (2 bytes), then the type: 1 server, 2 client
	return out
}

func TestSessionStale(t *testing.T) {
	t.Run("the server rotated its ticket keys", func(t *testing.T) {
		a := newResumeAPI(t)
		kc := kubeconfigTrusting(t, a.srv.URL, a.srv)
		session := filepath.Join(t.TempDir(), SessionFileName)
		mustGet(t, kc, session)
		a.srv.TLS.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
		mustGet(t, kc, session)
		if a.last(t) {
			t.Fatal("resumed with a ticket the server can no longer decrypt")
		}
		mustGet(t, kc, session)
		if !a.last(t) {
			t.Fatal("the stale session was not replaced")
		}
	})
	t.Run("another API server", func(t *testing.T) {
		first, second := newResumeAPI(t), newResumeAPI(t)
		session := filepath.Join(t.TempDir(), SessionFileName)
		mustGet(t, kubeconfigTrusting(t, first.srv.URL, first.srv), session)
		kc2 := kubeconfigTrusting(t, second.srv.URL, second.srv)
		mustGet(t, kc2, session)
		if second.last(t) {
			t.Fatal("a session of another server was offered")
		}
		mustGet(t, kc2, session)
		if !second.last(t) {
			t.Fatal("the other server's session was not replaced")
		}
	})
}

// A session made while the kubeconfig trusted the server's CA must not open a connection once it no longer does:
// resumption never stands in for verification.
func TestSessionNeverBypassesVerification(t *testing.T) {
	a := newResumeAPI(t)
	// httptest servers all present the same certificate: the kubeconfig's new CA is a certificate of our own.
	own := selfSigned(t)
	session := filepath.Join(t.TempDir(), SessionFileName)
	mustGet(t, kubeconfigTrusting(t, a.srv.URL, a.srv), session)

	before := a.requests()
	kc := writeFile(t, t.TempDir(), "kc", kubeconfigFor(a.srv.URL,
		"    certificate-authority-data: "+base64.StdEncoding.EncodeToString(own), "    token: tok"))
	err := getWithSession(t, kc, session) // same server, its CA no longer trusted
	var le *LookupError
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("lookup with an untrusted server certificate: got %v", err)
	}
	if !errors.As(err, &le) || le.Kind != KindUnreachable {
		t.Fatalf("want an unreachable lookup error, got %v", err)
	}
	if a.requests() != before {
		t.Fatal("a request reached the server over the old session")
	}
}

// selfSigned returns the PEM of a new self-signed CA certificate.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestSessionConcurrentProcesses(t *testing.T) {
	a := newResumeAPI(t)
	kc := kubeconfigTrusting(t, a.srv.URL, a.srv)
	session := filepath.Join(t.TempDir(), SessionFileName)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = getWithSession(t, kc, session)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mustGet(t, kc, session) // whichever writer won, the file holds one whole session
	if !a.last(t) {
		t.Fatal("no usable session after concurrent writers")
	}
}

// A TLS 1.2 resumption reuses the old master secret (no fresh key exchange): such sessions are never kept.
func TestSessionNotKeptForTLS12(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.Version != tls.VersionTLS12 {
			w.WriteHeader(400)
			return
		}
		w.Write([]byte(`{}`))
	}))
	srv.TLS = &tls.Config{MaxVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	session := filepath.Join(t.TempDir(), SessionFileName)
	mustGet(t, kubeconfigTrusting(t, srv.URL, srv), session)
	if _, err := os.Stat(session); !os.IsNotExist(err) {
		t.Fatalf("a TLS 1.2 session was saved (stat: %v)", err)
	}
}

func TestSessionNotKeptWithClientCertificate(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{}`)) }))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	kc := clientCertKubeconfig(t, srv)
	session := filepath.Join(t.TempDir(), SessionFileName)
	mustGet(t, kc, session)
	if _, err := os.Stat(session); !os.IsNotExist(err) {
		t.Fatalf("a session carrying the client certificate's identity was saved (stat: %v)", err)
	}
}
