package main

// Prototypes for the plugin's cold path (docs/bench.md, "The plugin's cold path"): each probe is a fresh process that
// reads one pod the way a plugin variant would, and exits. The driver times the whole exec, so the figures include
// what a cold process pays (runtime start, first use of crypto) and compare the variants with each other:
//
//	start   exits at once: the probe binary's own process start
//	get     one HTTPS GET on a fresh connection with a full TLS handshake (what the plugin does today)
//	resume  the same GET resuming the TLS session persisted in a file by the previous probe (and saving the new one)
//	agent   one round trip over a unix socket to a node agent that holds a warm connection to the API server
//
// The agent itself (startAgent) runs inside the driver; the plugin's own prototype client is cni/cmd/asm-cni/benchagent.go.
//
// Usage: plugin-bench probe MODE -url URL -ca FILE -session FILE -socket PATH -pod NS/NAME

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func probeMain(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "probe: MODE is required")
		return 2
	}
	mode := args[0]
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	url := fs.String("url", "", "API server URL")
	ca := fs.String("ca", "", "CA file")
	session := fs.String("session", "", "session file (resume)")
	socket := fs.String("socket", "", "agent socket (agent)")
	podRef := fs.String("pod", "bench/probe", "NS/NAME")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ns, name, _ := strings.Cut(*podRef, "/")
	var body []byte
	var err error
	switch mode {
	case "start":
		return 0
	case "get", "resume":
		body, err = probeGet(*url, *ca, ns, name, map[bool]string{true: *session}[mode == "resume"])
	case "agent":
		body, err = agentGet(*socket, ns, name)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err == nil && !bytes.Contains(body, []byte(`"name":"`+name+`"`)) {
		err = fmt.Errorf("the answer is not pod %s: %.200s", *podRef, body)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe %s: %v\n", mode, err)
		return 1
	}
	return 0
}

// probeGet reads the pod as the plugin does (CA from a file, bearer token, fresh connection); with a session file, the
// TLS session is loaded from it and the one the server issues is written back.
func probeGet(url, caFile, ns, name, sessionFile string) ([]byte, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	var cache *fileSessionCache
	if sessionFile != "" {
		cache = &fileSessionCache{path: sessionFile}
		cfg.ClientSessionCache = cache
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/namespaces/"+ns+"/pods/"+name, nil)
	req.Header.Set("Authorization", "Bearer bench-token")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if cache != nil && cache.loaded && !resp.TLS.DidResume {
		err = errors.Join(err, errors.New("the persisted TLS session was not resumed"))
	}
	// A resumed session's ticket stays valid: the file is rewritten only after a full handshake.
	if cache != nil && err == nil && !resp.TLS.DidResume {
		cache.save()
	}
	return body, err
}

// fileSessionCache is a one-entry tls.ClientSessionCache kept in a file (ticket and session state, length-prefixed),
// replaced by an atomic rename. Anything unreadable is a miss. The session the server issues is kept in memory until
// save.
type fileSessionCache struct {
	path    string
	loaded  bool
	pending *tls.ClientSessionState
}

func (c *fileSessionCache) Get(string) (*tls.ClientSessionState, bool) {
	data, err := os.ReadFile(c.path)
	if err != nil || len(data) < 4 {
		return nil, false
	}
	n := int(data[0])<<24 | int(data[1])<<16 | int(data[2])<<8 | int(data[3])
	if n > len(data)-4 {
		return nil, false
	}
	state, err := tls.ParseSessionState(data[4+n:])
	if err != nil {
		return nil, false
	}
	cs, err := tls.NewResumptionState(data[4:4+n], state)
	if err != nil {
		return nil, false
	}
	c.loaded = true
	return cs, true
}

func (c *fileSessionCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		os.Remove(c.path)
		return
	}
	c.pending = cs
}

func (c *fileSessionCache) save() {
	if c.pending == nil {
		return
	}
	ticket, state, err := c.pending.ResumptionState()
	if err != nil || state == nil {
		return
	}
	b, err := state.Bytes()
	if err != nil {
		return
	}
	n := len(ticket)
	out := append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, ticket...)
	out = append(out, b...)
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".session-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(out)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), c.path) != nil {
		os.Remove(tmp.Name())
	}
}

// agentGet asks the node agent for the pod: one request line "NS/NAME", answered by a line "STATUS LENGTH" and the body
// (the length lets a client tell a complete answer from one cut short by an agent that went away).
func agentGet(socket, ns, name string) ([]byte, error) {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "%s/%s\n", ns, name); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	status, size, _ := strings.Cut(strings.TrimSpace(head), " ")
	n, err := strconv.Atoi(size)
	if status != "200" || err != nil || n <= 0 || n > 8<<20 {
		return nil, fmt.Errorf("agent answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return body, err
}

// agent is the prototype node agent: it keeps one warm, kept-alive HTTPS connection to the API server and answers
// each request on its unix socket with a fresh GET of the pod over it (no cache: a pod created a moment ago is read
// as the plugin would read it).
type agent struct {
	ln       net.Listener
	client   *http.Client
	url      string
	requests atomic.Int64
}

func startAgent(socket, url string, pool *x509.CertPool) (*agent, error) {
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	a := &agent{ln: ln, url: url, client: &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 4,
	}}}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serve(conn)
		}
	}()
	return a, nil
}

func (a *agent) serve(conn net.Conn) {
	defer conn.Close()
	a.requests.Add(1)
	line, err := bufio.NewReader(io.LimitReader(conn, 512)).ReadString('\n')
	if err != nil {
		return
	}
	ns, name, _ := strings.Cut(strings.TrimSpace(line), "/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/api/v1/namespaces/"+ns+"/pods/"+name, nil)
	req.Header.Set("Authorization", "Bearer bench-token")
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		fmt.Fprintf(conn, "502 0\n")
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	if err != nil {
		fmt.Fprintf(conn, "502 0\n")
		return
	}
	fmt.Fprintf(conn, "%d %d\n", resp.StatusCode, len(body))
	conn.Write(body)
}

func (a *agent) Close() { a.ln.Close() }
