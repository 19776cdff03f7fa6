// Command plugin-bench times the asm-cni plugin's CNI ADD and DEL against the floor the machine allows, each pod in a
// fresh network namespace, with the pod served by a small HTTPS "API server" on loopback inside this process.
//
// The floor for one pod is what any implementation must at least do: one HTTPS GET of the pod (fresh connection, as a
// short-lived plugin process has) plus one iptables-restore exec per family in the pod's netns, with the rules the
// plugin itself renders (asm-cni render). Ours and the floor alternate pod by pod so machine noise hits both alike.
//
// It prints one JSON document of raw samples (milliseconds) on stdout; bench/src/plugin-bench.ts summarises them.
// Needs root (network namespaces, iptables). Everything it creates is named asmbench-<pid>-* and removed on exit.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	plugin, podFile, rules4, rules6, certFile, keyFile, caFile, workdir string
	backend                                                             string
	pods, parallel, rounds, coldStarts, coldPathPods                    int
	goStart, agentPlugin                                                string
	verify                                                              bool
}

type results struct {
	Binary struct {
		Path      string `json:"path"`
		SizeBytes int64  `json:"sizeBytes"`
	} `json:"binary"`
	ColdStartMs   []float64 `json:"coldStartMs"`
	TrueExecMs    []float64 `json:"trueExecMs"`
	AddMs         []float64 `json:"addMs"`
	DelMs         []float64 `json:"delMs"`
	FloorMs       []float64 `json:"floorMs"`
	FloorGetMs    []float64 `json:"floorGetMs"`
	FloorRestMs   []float64 `json:"floorRestoreMs"`
	ParallelAddMs []float64 `json:"parallelAddMs"`
	ParallelDelMs []float64 `json:"parallelDelMs"`
	ParallelFlMs  []float64 `json:"parallelFloorMs"`
	Families      []string  `json:"floorFamilies"`
	APIRequests   int64     `json:"apiRequests"`
	Verified      int       `json:"verifiedPods"`
	Parallelism   int       `json:"parallelism"`
	Rounds        int       `json:"rounds"`
	IptablesMode  string    `json:"iptablesMode"`
	// ColdPath: the plugin's cold-path variants and prototypes beside the floor, one sample list per step (ms).
	ColdPath      map[string][]float64 `json:"coldPath"`
	ColdPathCPU   map[string][]float64 `json:"coldPathCpu"` // CPU time of the steps that are processes of their own
	ColdPathPods  int                  `json:"coldPathPods"`
	AgentRequests int64                `json:"agentRequests"`
	InitMs        []float64            `json:"initMs"`
}

var (
	prefix  = fmt.Sprintf("asmbench-%d-", os.Getpid())
	created sync.Map // netns name -> struct{}
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probeMain(os.Args[2:]))
	}
	var o options
	flag.StringVar(&o.plugin, "plugin", "", "asm-cni binary (if empty, only the floor is measured)")
	flag.StringVar(&o.podFile, "pod", "", "pod JSON the API server serves (name and namespace are filled per request)")
	flag.StringVar(&o.rules4, "rules4", "", "IPv4 iptables-restore input of the floor")
	flag.StringVar(&o.rules6, "rules6", "", "IPv6 ip6tables-restore input of the floor (empty file: no IPv6 restore)")
	flag.StringVar(&o.certFile, "cert", "", "serving certificate of the fake API server")
	flag.StringVar(&o.keyFile, "key", "", "its key")
	flag.StringVar(&o.caFile, "ca", "", "CA that signed it (written into the plugin's kubeconfig)")
	flag.StringVar(&o.workdir, "workdir", "", "scratch directory (kubeconfig, plugin log)")
	flag.StringVar(&o.backend, "iptables-backend", "", "what-if: iptables_backend in the network config (empty: unset, as the installer writes it)")
	flag.IntVar(&o.pods, "pods", 200, "sequential pods (each ADD and floor in a fresh netns)")
	flag.IntVar(&o.parallel, "parallel", 20, "concurrent ADDs per round")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of concurrent ADDs")
	flag.IntVar(&o.coldStarts, "cold-starts", 100, "runs of 'asm-cni version'")
	flag.IntVar(&o.coldPathPods, "cold-path-pods", 200, "pods of the cold-path comparison (0: skip it)")
	flag.StringVar(&o.agentPlugin, "plugin-agent", "", "the plugin built with the node-agent prototype (tag asmcni_benchagent)")
	flag.StringVar(&o.goStart, "go-start", "", "a Go program that only exits (the least a Go plugin's process start costs)")
	flag.BoolVar(&o.verify, "verify", true, "check with iptables-save that every ADD and floor left the ISTIO chains in place")
	flag.Parse()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		cleanup()
		os.Exit(130)
	}()
	res, err := run(o)
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "plugin-bench:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "plugin-bench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "[bench plugin] "+format+"\n", a...) }

func run(o options) (*results, error) {
	res := &results{Parallelism: o.parallel, Rounds: o.rounds}
	podTemplate, err := os.ReadFile(o.podFile)
	if err != nil {
		return nil, err
	}
	rules4, err := os.ReadFile(o.rules4)
	if err != nil {
		return nil, err
	}
	rules6, err := os.ReadFile(o.rules6)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	res.Families = []string{"ipv4"}
	if len(bytes.TrimSpace(rules6)) > 0 {
		res.Families = append(res.Families, "ipv6")
	}
	if out, err := exec.Command("iptables", "--version").Output(); err == nil {
		res.IptablesMode = strings.TrimSpace(string(out))
	}
	caPEM, err := os.ReadFile(o.caFile)
	if err != nil {
		return nil, err
	}
	api, err := startAPIServer(o.certFile, o.keyFile, podTemplate)
	if err != nil {
		return nil, err
	}
	defer api.Close()
	kubeconfig := filepath.Join(o.workdir, "asm-cni-kubeconfig")
	if err := writeKubeconfig(kubeconfig, api.URL, caPEM); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	fl := &floor{url: api.URL, pool: pool, rules4: rules4, rules6: rules6}
	pl := &pluginRunner{bin: o.plugin, kubeconfig: kubeconfig, logFile: filepath.Join(o.workdir, "asm-cni.log"), backend: o.backend}

	if o.plugin != "" {
		st, err := os.Stat(o.plugin)
		if err != nil {
			return nil, err
		}
		res.Binary.Path, res.Binary.SizeBytes = o.plugin, st.Size()
		logf("cold start: %d x 'asm-cni version'", o.coldStarts)
		for i := 0; i < o.coldStarts; i++ {
			d, err := timeExec(exec.Command(o.plugin, "version"))
			if err != nil {
				return nil, fmt.Errorf("asm-cni version: %w", err)
			}
			res.ColdStartMs = append(res.ColdStartMs, d)
			d, err = timeExec(exec.Command("/bin/true"))
			if err != nil {
				return nil, err
			}
			res.TrueExecMs = append(res.TrueExecMs, d)
		}
	}

	logf("sequential: %d pods, each in a fresh netns (ours and floor alternate)", o.pods)
	for i := 0; i < o.pods; i++ {
		steps := []func() error{
			func() error { // floor
				ns, err := newNetns(fmt.Sprintf("f%d", i), i)
				if err != nil {
					return err
				}
				defer deleteNetns(ns)
				get, rest, err := fl.run(ns)
				if err != nil {
					return fmt.Errorf("floor pod %d: %w", i, err)
				}
				res.FloorMs = append(res.FloorMs, get+rest)
				res.FloorGetMs = append(res.FloorGetMs, get)
				res.FloorRestMs = append(res.FloorRestMs, rest)
				if o.verify {
					return verifyRules(ns, len(res.Families) == 2)
				}
				return nil
			},
		}
		if o.plugin != "" {
			steps = append(steps, func() error { // ours
				ns, err := newNetns(fmt.Sprintf("p%d", i), i)
				if err != nil {
					return err
				}
				defer deleteNetns(ns)
				add, err := pl.call("ADD", ns, i)
				if err != nil {
					return fmt.Errorf("ADD pod %d: %w", i, err)
				}
				res.AddMs = append(res.AddMs, add)
				if o.verify {
					if err := verifyRules(ns, len(res.Families) == 2); err != nil {
						return fmt.Errorf("after ADD of pod %d: %w", i, err)
					}
					res.Verified++
				}
				del, err := pl.call("DEL", ns, i)
				if err != nil {
					return fmt.Errorf("DEL pod %d: %w", i, err)
				}
				res.DelMs = append(res.DelMs, del)
				return nil
			})
			if i%2 == 1 {
				steps[0], steps[1] = steps[1], steps[0]
			}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
	}

	logf("parallel: %d rounds of %d concurrent pods", o.rounds, o.parallel)
	for r := 0; r < o.rounds; r++ {
		base := 1000 + r*o.parallel
		if o.plugin != "" {
			adds, dels, err := parallelRound(o.parallel, base, "p", func(ns string, idx int) (float64, error) { return pl.call("ADD", ns, idx) },
				func(ns string, idx int) (float64, error) { return pl.call("DEL", ns, idx) }, o.verify, len(res.Families) == 2)
			if err != nil {
				return nil, fmt.Errorf("parallel round %d: %w", r, err)
			}
			res.ParallelAddMs = append(res.ParallelAddMs, adds...)
			res.ParallelDelMs = append(res.ParallelDelMs, dels...)
		}
		fls, _, err := parallelRound(o.parallel, base, "f", func(ns string, _ int) (float64, error) {
			get, rest, err := fl.run(ns)
			return get + rest, err
		}, nil, o.verify, len(res.Families) == 2)
		if err != nil {
			return nil, fmt.Errorf("parallel floor round %d: %w", r, err)
		}
		res.ParallelFlMs = append(res.ParallelFlMs, fls...)
	}
	if o.plugin != "" && o.coldPathPods > 0 {
		if err := coldPath(o, res, fl, pl, api.URL, podTemplate); err != nil {
			return nil, fmt.Errorf("cold path: %w", err)
		}
	}
	res.APIRequests = api.requests.Load()
	return res, nil
}

// parallelRound creates n fresh netns, starts n calls of op at once (after a barrier), then n calls of del at once.
func parallelRound(n, base int, tag string, op, del func(ns string, idx int) (float64, error), verify, v6 bool) ([]float64, []float64, error) {
	names := make([]string, n)
	for i := range names {
		ns, err := newNetns(fmt.Sprintf("%s%d", tag, base+i), base+i)
		if err != nil {
			return nil, nil, err
		}
		names[i] = ns
	}
	defer func() {
		for _, ns := range names {
			deleteNetns(ns)
		}
	}()
	do := func(f func(ns string, idx int) (float64, error)) ([]float64, error) {
		out := make([]float64, n)
		errs := make([]error, n)
		var ready, done sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			ready.Add(1)
			done.Add(1)
			go func(i int) {
				defer done.Done()
				ready.Done()
				<-start
				out[i], errs[i] = f(names[i], base+i)
			}(i)
		}
		ready.Wait()
		close(start)
		done.Wait()
		return out, errors.Join(errs...)
	}
	ops, err := do(op)
	if err != nil {
		return nil, nil, err
	}
	if verify {
		for _, ns := range names {
			if err := verifyRules(ns, v6); err != nil {
				return nil, nil, err
			}
		}
	}
	var dels []float64
	if del != nil {
		if dels, err = do(del); err != nil {
			return nil, nil, err
		}
	}
	return ops, dels, nil
}

// ---- the plugin under test ----

type pluginRunner struct{ bin, kubeconfig, logFile, backend string }

func (p *pluginRunner) call(command, ns string, idx int) (float64, error) {
	return p.callEnv(command, ns, idx, nil)
}

// callEnv runs the plugin with extra environment variables (what-if variants of the cold path).
func (p *pluginRunner) callEnv(command, ns string, idx int, extraEnv []string) (float64, error) {
	wall, _, err := p.run(command, ns, idx, extraEnv)
	return wall, err
}

// run is one call of the plugin; it returns the wall time and the CPU time of the plugin and the commands it ran.
func (p *pluginRunner) run(command, ns string, idx int, extraEnv []string) (wallMs, cpuMs float64, err error) {
	conf := map[string]any{
		"cniVersion":         "1.0.0",
		"name":               "k8s-pod-network",
		"type":               "asm-cni",
		"kubeconfig":         p.kubeconfig,
		"exclude_namespaces": []string{"kube-system", "istio-system"},
		"log_level":          "info",
		"log_file":           p.logFile,
		"api_timeout":        "5s",
		"prevResult":         prevResult(ns, idx),
	}
	if p.backend != "" {
		conf["iptables_backend"] = p.backend
	}
	stdin, _ := json.Marshal(conf)
	cmd := exec.Command(p.bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + ns,
		"CNI_NETNS=/var/run/netns/" + ns,
		"CNI_IFNAME=eth0",
		"CNI_PATH=/opt/cni/bin:/usr/lib/cni",
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-%d;K8S_POD_INFRA_CONTAINER_ID=%s", idx, ns),
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	wallMs, cpuMs, err = timeExecCPU(cmd)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: stdout %s stderr %s", err, stdout.String(), stderr.String())
	}
	return wallMs, cpuMs, nil
}

func prevResult(ns string, idx int) map[string]any {
	host := idx%250 + 2
	return map[string]any{
		"cniVersion": "1.0.0",
		"interfaces": []any{map[string]any{"name": "eth0", "mac": fmt.Sprintf("02:42:c6:33:%02x:%02x", host/256, host%256), "sandbox": "/var/run/netns/" + ns}},
		"ips": []any{
			map[string]any{"address": fmt.Sprintf("198.51.100.%d/24", host), "gateway": "198.51.100.1", "interface": 0},
			map[string]any{"address": fmt.Sprintf("2001:db8::%x/64", host), "gateway": "2001:db8::1", "interface": 0},
		},
	}
}

// ---- the floor ----

type floor struct {
	url            string
	pool           *x509.CertPool
	rules4, rules6 []byte
}

// run: one HTTPS GET of the pod on a fresh connection, then one restore exec per family inside ns. Returns ms of each part.
func (f *floor) run(ns string) (getMs, restoreMs float64, err error) {
	t0 := time.Now()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.pool}, DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, f.url+"/api/v1/namespaces/bench/pods/floor-"+ns, nil)
	req.Header.Set("Authorization", "Bearer bench-token")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(body) == 0 {
		return 0, 0, fmt.Errorf("GET pod: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	t1 := time.Now()
	err = inNetns(ns, func() error {
		if err := restore("iptables-restore", f.rules4); err != nil {
			return err
		}
		if len(bytes.TrimSpace(f.rules6)) > 0 {
			return restore("ip6tables-restore", f.rules6)
		}
		return nil
	})
	t2 := time.Now()
	return ms(t1.Sub(t0)), ms(t2.Sub(t1)), err
}

func restore(bin string, rules []byte) error {
	cmd := exec.Command(bin, "--noflush")
	cmd.Stdin = bytes.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", bin, err, out)
	}
	return nil
}

// ---- fake API server ----

type apiServer struct {
	*http.Server
	URL      string
	requests atomic.Int64
}

func startAPIServer(certFile, keyFile string, podTemplate []byte) (*apiServer, error) {
	var pod map[string]any
	if err := json.Unmarshal(podTemplate, &pod); err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	meta, _ := pod["metadata"].(map[string]any)
	if meta == nil {
		return nil, errors.New("pod template has no metadata")
	}
	// Serialise once with placeholders; each answer is two byte replacements away.
	meta["name"], meta["namespace"] = "@@NAME@@", "@@NAMESPACE@@"
	delete(meta, "generateName")
	tmpl, _ := json.Marshal(pod)

	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &apiServer{URL: "https://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer bench-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body := bytes.Replace(tmpl, []byte("@@NAME@@"), []byte(r.PathValue("name")), 1)
		body = bytes.Replace(body, []byte("@@NAMESPACE@@"), []byte(r.PathValue("ns")), 1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		logf("API server: unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	})
	s.Server = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: nil}
	go s.Server.ServeTLS(ln, "", "")
	return s, nil
}

func writeKubeconfig(path, server string, caPEM []byte) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: asm-cni
  user:
    token: bench-token
contexts:
- name: asm-cni
  context:
    cluster: local
    user: asm-cni
current-context: asm-cni
`, server, base64.StdEncoding.EncodeToString(caPEM))
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// ---- network namespaces ----

// newNetns creates a pod netns the way a runtime leaves it for a chained plugin: lo up and eth0 carrying the pod's
// documentation addresses. eth0 is one end of a veth pair whose other end stays in the same netns, so no traffic leaves
// it and deleting the netns removes both (the dummy link type is not available on every kernel).
func newNetns(tag string, idx int) (string, error) {
	name := prefix + tag
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	created.Store(name, struct{}{})
	host := idx%250 + 2
	batch := fmt.Sprintf("link set lo up\nlink add eth0 type veth peer name peer0\nlink set peer0 up\naddr add 198.51.100.%d/24 dev eth0\naddr add 2001:db8::%x/64 dev eth0 nodad\nlink set eth0 up\n", host, host)
	cmd := exec.Command("ip", "-n", name, "-b", "-")
	cmd.Stdin = strings.NewReader(batch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("set up %s: %v: %s", name, err, out)
	}
	return name, nil
}

func deleteNetns(name string) {
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		logf("ip netns delete %s: %v: %s", name, err, out)
	}
	created.Delete(name)
}

func cleanup() {
	created.Range(func(k, _ any) bool {
		exec.Command("ip", "netns", "delete", k.(string)).Run()
		return true
	})
}

// inNetns runs f on an OS thread switched into netns `name`; processes f starts inherit that netns.
func inNetns(name string, f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", name, err)
	}
	ferr := f()
	if err := setns(orig); err != nil {
		// Leave the thread locked: the runtime discards it when this goroutine exits, so no other goroutine runs in ns.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(f *os.File) error {
	if _, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// verifyRules checks that ns holds the ISTIO nat chains (and the IPv6 ones when v6): the run measured real work.
func verifyRules(ns string, v6 bool) error {
	return inNetns(ns, func() error {
		check := func(bin string) error {
			out, err := exec.Command(bin, "-t", "nat").Output()
			if err != nil {
				return fmt.Errorf("%s in %s: %w", bin, ns, err)
			}
			for _, chain := range []string{":ISTIO_OUTPUT", ":ISTIO_INBOUND", "-A OUTPUT -j ISTIO_OUTPUT", "-A ISTIO_OUTPUT"} {
				if !bytes.Contains(out, []byte(chain)) {
					return fmt.Errorf("%s in %s: %q missing; got:\n%s", bin, ns, chain, out)
				}
			}
			return nil
		}
		if err := check("iptables-save"); err != nil {
			return err
		}
		if v6 {
			return check("ip6tables-save")
		}
		return nil
	})
}

// ---- timing ----

func timeExec(cmd *exec.Cmd) (float64, error) {
	wall, _, err := timeExecCPU(cmd)
	return wall, err
}

// timeExecCPU also returns the CPU time (user + system) of the process and of the children it waited for: far less
// disturbed by other work on the machine than the wall time.
func timeExecCPU(cmd *exec.Cmd) (wallMs, cpuMs float64, err error) {
	t0 := time.Now()
	err = cmd.Run()
	wallMs = ms(time.Since(t0))
	if cmd.ProcessState != nil {
		cpuMs = ms(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime())
	}
	return wallMs, cpuMs, err
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// setns(2): the syscall package names no constant for it.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268}[runtime.GOARCH]
