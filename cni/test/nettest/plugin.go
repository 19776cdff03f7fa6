package nettest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Binary is the plugin binary the tests run: ASM_CNI_BINARY (set by test/go-tests.sh), else built once.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("ASM_CNI_BINARY"); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("ASM_CNI_BINARY=%s: %v", b, err)
		}
		return b
	}
	buildOnce.Do(func() {
		// Built into the user's cache dir (not the repo, not a leaked temp dir); written to a temporary name
		// and renamed, so test packages running in parallel never see a half-written binary.
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "asm-cni", "test-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "asm-cni")
		tmp := fmt.Sprintf("%s.%d", built, os.Getpid())
		c := exec.Command("go", "build", "-o", tmp, "./cmd/asm-cni")
		c.Dir = filepath.Join(RepoRoot(), "cni")
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		buildErr = os.Rename(tmp, built)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// PluginDir is a directory holding only a copy of the binary named asm-cni: a runtime's CNI_PATH entry for libcni.
func PluginDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "asm-cni"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// API is a stand-in for the API server: HTTPS on 127.0.0.1 inside a node namespace, serving pods by
// namespace/name and checking the bearer token.
type API struct {
	Server   *httptest.Server
	URL      string
	CAData   []byte // PEM
	mu       sync.Mutex
	pods     map[string][]byte
	token    string
	status   map[string]int // per pod: answer this HTTP status instead
	fail5xx  int32          // answer 503 to this many requests first
	Requests atomic.Int32
}

// StartAPI serves on 127.0.0.1 inside node (the listener is created in node, so the server is reachable only
// from there). The server stops when the test ends.
func StartAPI(t testing.TB, node ns.NetNS, token string) *API {
	t.Helper()
	a := &API{pods: map[string][]byte{}, token: token, status: map[string]int{}}
	var l net.Listener
	InNS(t, node, func() error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.Server.Listener.Close()
	a.Server.Listener = l
	a.Server.StartTLS()
	t.Cleanup(a.Server.Close)
	a.URL = a.Server.URL
	a.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Server.Certificate().Raw})
	return a
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": msg, "code": code})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	a.Requests.Add(1)
	a.mu.Lock()
	token := a.token
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+token {
		status(w, 401, "Unauthorized", "Unauthorized")
		return
	}
	if atomic.AddInt32(&a.fail5xx, -1) >= 0 {
		status(w, 503, "ServiceUnavailable", "etcd is having a moment")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) != 6 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "pods" {
		status(w, 404, "NotFound", "the server could not find the requested resource")
		return
	}
	key := parts[3] + "/" + parts[5]
	a.mu.Lock()
	body, ok := a.pods[key]
	code := a.status[key]
	a.mu.Unlock()
	if code != 0 {
		status(w, code, http.StatusText(code), fmt.Sprintf("pods %q is %s", parts[5], strings.ToLower(http.StatusText(code))))
		return
	}
	if !ok {
		status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", parts[5]))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// SetPod serves pod (any JSON-marshalable object) as namespace/name.
func (a *API) SetPod(t testing.TB, namespace, name string, pod any) {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.pods[namespace+"/"+name] = b
	a.mu.Unlock()
}

// SetStatus makes the API answer code for namespace/name.
func (a *API) SetStatus(namespace, name string, code int) {
	a.mu.Lock()
	a.status[namespace+"/"+name] = code
	a.mu.Unlock()
}

// SetToken changes the token the API accepts (token rotation).
func (a *API) SetToken(tok string) {
	a.mu.Lock()
	a.token = tok
	a.mu.Unlock()
}

// Fail5xx makes the next n requests answer 503.
func (a *API) Fail5xx(n int) { atomic.StoreInt32(&a.fail5xx, int32(n)) }

// Kubeconfig writes a kubeconfig for server with the CA and either an inline token or a tokenFile.
func Kubeconfig(t testing.TB, server string, caPEM []byte, token, tokenFile string) string {
	t.Helper()
	user := "token: " + token
	if tokenFile != "" {
		user = "tokenFile: " + tokenFile
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: asm-cni
  user:
    %s
contexts:
- name: asm-cni
  context:
    cluster: local
    user: asm-cni
current-context: asm-cni
`, server, base64.StdEncoding.EncodeToString(caPEM), user)
	p := filepath.Join(t.TempDir(), "asm-cni-kubeconfig")
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Invocation is one run of the plugin binary as a runtime runs it.
type Invocation struct {
	Command     string // ADD, DEL, CHECK, STATUS, VERSION
	ContainerID string
	Netns       string
	IfName      string
	Args        string // CNI_ARGS
	Config      []byte // stdin
	Env         map[string]string
	Unset       []string // variables to leave out (e.g. CNI_NETNS)
}

// Outcome is what the runtime sees.
type Outcome struct {
	Stdout, Stderr string
	Exit           int
	Took           time.Duration
}

// CNIError is the error JSON of a failed call.
type CNIError struct {
	CNIVersion string `json:"cniVersion"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details"`
}

// Error decodes stdout as a CNI error, failing the test when it is not one.
func (o Outcome) Error(t testing.TB) CNIError {
	t.Helper()
	var e CNIError
	if o.Exit == 0 {
		t.Fatalf("expected a failure, got exit 0; stdout=%s stderr=%s", o.Stdout, o.Stderr)
	}
	dec := json.NewDecoder(strings.NewReader(o.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Code == 0 || e.Msg == "" {
		t.Fatalf("stdout is not a CNI error JSON (%v): %q (stderr %s)", err, o.Stdout, o.Stderr)
	}
	return e
}

// RunPlugin executes the binary inside the node namespace with the CNI environment and stdin.
func RunPlugin(t testing.TB, node ns.NetNS, inv Invocation) Outcome {
	t.Helper()
	env := map[string]string{
		"CNI_COMMAND":     inv.Command,
		"CNI_CONTAINERID": inv.ContainerID,
		"CNI_NETNS":       inv.Netns,
		"CNI_IFNAME":      inv.IfName,
		"CNI_ARGS":        inv.Args,
		"CNI_PATH":        "/usr/lib/cni",
		"PATH":            os.Getenv("PATH"),
	}
	if env["CNI_CONTAINERID"] == "" {
		env["CNI_CONTAINERID"] = "0123456789abcdef"
	}
	if env["CNI_IFNAME"] == "" {
		env["CNI_IFNAME"] = "eth0"
	}
	for k, v := range inv.Env {
		env[k] = v
	}
	for _, k := range inv.Unset {
		delete(env, k)
	}
	var o Outcome
	var runErr error
	err := node.Do(func(ns.NetNS) error {
		c := exec.Command(Binary(t))
		for k, v := range env {
			c.Env = append(c.Env, k+"="+v)
		}
		c.Stdin = bytes.NewReader(inv.Config)
		var so, se bytes.Buffer
		c.Stdout, c.Stderr = &so, &se
		start := time.Now()
		runErr = c.Run()
		o.Took = time.Since(start)
		o.Stdout, o.Stderr = so.String(), se.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
		o.Exit = ee.ExitCode()
	default:
		t.Fatalf("running the plugin: %v", runErr)
	}
	return o
}
