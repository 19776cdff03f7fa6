package main

// Prototypes for the plugin's cold path (docs/bench.md, "The plugin's cold path"): each probe is a fresh process that
// reads one pod the way a plugin variant would, and exits. The driver times the whole exec, so the figures include
// what a cold process pays (runtime start, first use of crypto) and compare the variants with each other:
//
//	start   exits at once: the probe binary's own process start
//	get     one HTTPS GET on a fresh connection with a full TLS handshake (what a plugin without a session does)
//	agent   one round trip over a unix socket to a node agent that holds a warm connection to the API server
//
// The agent itself (startAgent) runs inside the driver; the plugin's own prototype client is
// cni/cmd/asm-cni/benchagent.go. Resuming a persisted TLS session is measured with the plugin itself (coldpath.go).
//
// Usage: plugin-bench probe MODE -url URL -ca FILE -socket PATH -pod NS/NAME

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
	case "get":
		body, err = probeGet(*url, *ca, ns, name)
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

// probeGet reads the pod as the plugin does (CA from a file, bearer token, fresh connection, full handshake).
func probeGet(url, caFile, ns, name string) ([]byte, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate")
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
		DisableKeepAlives: true,
	}}
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
	return body, err
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
