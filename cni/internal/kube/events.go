package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ServiceAccountDir is where a pod's ServiceAccount token and the cluster CA are mounted.
var ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster is the endpoint of the API server for a process in a pod: the kubernetes Service from the
// environment, the pod's ServiceAccount token and CA.
func InCluster() (*Endpoint, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set")
	}
	tok, err := os.ReadFile(filepath.Join(ServiceAccountDir, "token"))
	if err != nil {
		return nil, fmt.Errorf("reading the pod's ServiceAccount token: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(ServiceAccountDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("the cluster CA %s holds no PEM certificate", filepath.Join(ServiceAccountDir, "ca.crt"))
	}
	return &Endpoint{
		Server: "https://" + net.JoinHostPort(host, port),
		Token:  strings.TrimSpace(string(tok)),
		TLS:    &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
	}, nil
}

// Events creates core/v1 Events about pods through one endpoint.
type Events struct {
	Endpoint  *Endpoint
	Component string // source.component and reportingComponent
	Host      string // the node: source.host and reportingInstance
	Timeout   time.Duration
	Now       func() time.Time
}

// Warn creates a Warning Event on the pod.
func (e Events) Warn(ctx context.Context, namespace, name, uid, reason, message string) error {
	now := e.Now().UTC().Format(time.RFC3339)
	ev := map[string]any{
		"apiVersion": "v1",
		"kind":       "Event",
		"metadata":   map[string]any{"generateName": name + ".", "namespace": namespace},
		"involvedObject": map[string]any{
			"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name, "uid": uid,
		},
		"type":               "Warning",
		"reason":             reason,
		"message":            message,
		"source":             map[string]any{"component": e.Component, "host": e.Host},
		"reportingComponent": e.Component,
		"reportingInstance":  e.Host,
		"firstTimestamp":     now,
		"lastTimestamp":      now,
		"count":              1,
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	t := e.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	u := e.Endpoint.Server + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.Endpoint.Token != "" {
		req.Header.Set("Authorization", "Bearer "+e.Endpoint.Token)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.Endpoint.TLS, Proxy: http.ProxyFromEnvironment}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("creating an Event on pod %s/%s: %w", namespace, name, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("creating an Event on pod %s/%s: HTTP %d: %s", namespace, name, resp.StatusCode, statusMessage(answer))
	}
	return nil
}
