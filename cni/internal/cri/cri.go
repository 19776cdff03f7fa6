// Package cri finds running pods' network namespaces on this node through the container runtime's CRI, by
// running crictl (present on CRI nodes; no gRPC client in the plugin binary). The pod sandboxes' JSON is
// parsed here; which path names the namespace differs by runtime: containerd reports the sandbox's PID and the
// OCI spec's network namespace path in `crictl inspectp` info.
package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is containerd's CRI socket, the runtime asm-cni is tested with.
const DefaultEndpoint = "unix:///run/containerd/containerd.sock"

// Sandbox is a ready pod sandbox on this node.
type Sandbox struct {
	ID        string
	Namespace string
	Name      string
	UID       string
}

// Client runs crictl against one runtime endpoint.
type Client struct {
	Crictl   string // crictl binary (a name on PATH or a path)
	Endpoint string
	Timeout  time.Duration
}

func (c Client) run(args ...string) ([]byte, error) {
	t := c.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	all := append([]string{"--runtime-endpoint", c.Endpoint, "--timeout", strconv.Itoa(int(t.Seconds())) + "s"}, args...)
	cmd := exec.CommandContext(ctx, c.Crictl, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("crictl not found (%v): verify needs crictl to find pods' network namespaces through the CRI", err)
		}
		return nil, fmt.Errorf("crictl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// Ready lists the ready pod sandboxes, optionally only those of one pod (namespace and name both set).
func (c Client) Ready(namespace, name string) ([]Sandbox, error) {
	args := []string{"pods", "--state", "ready", "-o", "json"}
	if namespace != "" {
		args = append(args, "--namespace", namespace, "--name", name)
	}
	out, err := c.run(args...)
	if err != nil {
		return nil, err
	}
	all, err := ParsePods(out)
	if err != nil || name == "" {
		return all, err
	}
	// crictl's --name and --namespace filter by substring; keep exact matches only.
	var exact []Sandbox
	for _, s := range all {
		if s.Namespace == namespace && s.Name == name {
			exact = append(exact, s)
		}
	}
	return exact, nil
}

// NetNS is the path of the sandbox's network namespace, or "" when it has none of its own (host network).
func (c Client) NetNS(id string) (string, error) {
	out, err := c.run("inspectp", "-o", "json", id)
	if err != nil {
		return "", err
	}
	return ParseNetNS(out)
}

// ParsePods reads `crictl pods -o json`.
func ParsePods(data []byte) ([]Sandbox, error) {
	var doc struct {
		Items []struct {
			ID       string `json:"id"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
				UID       string `json:"uid"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("crictl pods: output is not the expected JSON: %v", err)
	}
	out := make([]Sandbox, 0, len(doc.Items))
	for _, it := range doc.Items {
		out = append(out, Sandbox{ID: it.ID, Namespace: it.Metadata.Namespace, Name: it.Metadata.Name, UID: it.Metadata.UID})
	}
	return out, nil
}

// ParseNetNS reads `crictl inspectp -o json`: a host-network sandbox (namespace mode NODE) has none of its
// own; otherwise the runtime spec's network namespace path, else the sandbox process's.
func ParseNetNS(data []byte) (string, error) {
	var doc struct {
		Status struct {
			Linux struct {
				Namespaces struct {
					Options struct {
						Network string `json:"network"`
					} `json:"options"`
				} `json:"namespaces"`
			} `json:"linux"`
		} `json:"status"`
		Info struct {
			Pid         int `json:"pid"`
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("crictl inspectp: output is not the expected JSON: %v", err)
	}
	if doc.Status.Linux.Namespaces.Options.Network == "NODE" {
		return "", nil
	}
	for _, n := range doc.Info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" && n.Path != "" {
			return n.Path, nil
		}
	}
	if doc.Info.Pid > 0 {
		return "/proc/" + strconv.Itoa(doc.Info.Pid) + "/ns/net", nil
	}
	return "", errors.New("crictl inspectp names no network namespace for the sandbox (verbose info is needed; containerd reports it, other runtimes may not)")
}
