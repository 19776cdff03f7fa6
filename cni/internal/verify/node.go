package verify

import (
	"context"
	"fmt"

	"github.com/asm-cni/asm-cni/cni/internal/config"
	"github.com/asm-cni/asm-cni/cni/internal/cri"
	"github.com/asm-cni/asm-cni/cni/internal/kube"
	"github.com/asm-cni/asm-cni/cni/internal/plan"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

// PodReport is one pod's verdict on a node, or why there is none (Error).
type PodReport struct {
	Report
	UID   string `json:"uid,omitempty"`
	Error string `json:"error,omitempty"`
}

// OnNode verifies the pods of this node as the plugin sees them: each pod as the API server stores it (read with
// the plugin's own kubeconfig and config), its network namespace as the container runtime reports it.
type OnNode struct {
	Conf       *config.Config
	Kubeconfig string
	CRI        cri.Client
	Node       Node
	Backend    string
}

// Pods verifies one pod (namespace and name set) or every ready pod sandbox of the node.
func (o OnNode) Pods(namespace, name string) ([]PodReport, error) {
	sandboxes, err := o.CRI.Ready(namespace, name)
	if err != nil {
		return nil, err
	}
	if name != "" && len(sandboxes) == 0 {
		return nil, fmt.Errorf("pod %s/%s has no ready sandbox on this node (is it scheduled here and running?)", namespace, name)
	}
	reports := make([]PodReport, 0, len(sandboxes))
	for _, s := range sandboxes {
		r := PodReport{Report: Report{Pod: s.Namespace + "/" + s.Name, Backend: o.Backend}, UID: s.UID}
		rep, err := o.sandbox(s)
		if err != nil {
			r.Error = err.Error()
		} else {
			rep.Pod, rep.Backend = r.Pod, o.Backend
			r.Report = rep
		}
		reports = append(reports, r)
	}
	return reports, nil
}

func (o OnNode) sandbox(s cri.Sandbox) (Report, error) {
	body, err := kube.GetPod(context.Background(), o.Kubeconfig, s.Namespace, s.Name, o.Conf.APITimeout, nil)
	if err != nil {
		return Report{}, err
	}
	p, err := pod.Decode(body)
	if err != nil {
		return Report{}, fmt.Errorf("the API server's answer is not a pod: %w", err)
	}
	if s.UID != "" && p.Metadata.UID != "" && s.UID != p.Metadata.UID {
		return Report{}, fmt.Errorf("the sandbox belongs to an earlier pod of that name (uid %s, the API server has %s)", s.UID, p.Metadata.UID)
	}
	pl, err := plan.For(p, s.Namespace, o.Conf.ExcludeNamespaces)
	if err != nil {
		return Report{}, fmt.Errorf("the plugin would refuse this pod: %w", err)
	}
	path, err := o.CRI.NetNS(s.ID)
	if err != nil {
		return Report{}, err
	}
	if path == "" {
		return Report{Verdict: NotRedirected, Reason: "host-network"}, nil
	}
	return Check(o.Node, plan.Owned(), pl, path)
}

// Unredirected reports whether the plugin redirects the pod and its namespace holds none of the rules (as after a
// reboot that lost them, or a sandbox set up without the plugin), as opposed to rules that merely differ.
func (r Report) Unredirected() bool { return r.Verdict == Drift && r.Bare }
