package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/asm-cni/asm-cni/cni/internal/config"
	"github.com/asm-cni/asm-cni/cni/internal/cri"
	"github.com/asm-cni/asm-cni/cni/internal/kube"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/verify"
)

// NodeReport is one pod's line of `verify --node`: a verdict, or why there is none (Error).
type NodeReport struct {
	verify.Report
	Error string `json:"error,omitempty"`
}

// verifyOnNode verifies one pod (ref "NAMESPACE/POD") or every ready sandbox of this node (ref ""), with the
// plugin's own config: the pod as the API server stores it, its namespace as the CRI reports it.
func verifyOnNode(o verifyOpts, ref string, stdout io.Writer, couldNot func(error) int) int {
	conf, _, err := config.Installed(o.confDir)
	if err != nil {
		return couldNot(err)
	}
	kubeconfig := conf.Kubeconfig
	if o.kubeconfig != "" {
		kubeconfig = o.kubeconfig
	}
	if kubeconfig == "" {
		return couldNot(fmt.Errorf("no kubeconfig: the plugin's config names none; pass --kubeconfig"))
	}
	node, backend, err := NewNode(conf.IptablesBackend)
	if err != nil {
		return couldNot(err)
	}
	c := cri.Client{Crictl: o.crictl, Endpoint: o.criEndpoint}
	var ns, name string
	if ref != "" {
		ns, name, _ = strings.Cut(ref, "/")
	}
	sandboxes, err := c.Ready(ns, name)
	if err != nil {
		return couldNot(err)
	}
	if ref != "" && len(sandboxes) == 0 {
		return couldNot(fmt.Errorf("pod %s has no ready sandbox on this node (is it scheduled here and running?)", ref))
	}
	var reports []NodeReport
	for _, s := range sandboxes {
		r := NodeReport{Report: verify.Report{Pod: s.Namespace + "/" + s.Name, Backend: backend}}
		if rep, err := verifySandbox(c, node, conf, kubeconfig, s); err != nil {
			r.Error = err.Error()
		} else {
			rep.Pod, rep.Backend = r.Pod, backend
			r.Report = rep
		}
		reports = append(reports, r)
	}
	if err := writeNodeReports(stdout, o.output, ref != "", reports); err != nil {
		return couldNot(err)
	}
	return nodeExit(ref != "", reports)
}

func verifySandbox(c cri.Client, node verify.Node, conf *config.Config, kubeconfig string, s cri.Sandbox) (verify.Report, error) {
	body, err := kube.GetPod(context.Background(), kubeconfig, s.Namespace, s.Name, conf.APITimeout)
	if err != nil {
		return verify.Report{}, err
	}
	p, err := pod.Decode(body)
	if err != nil {
		return verify.Report{}, fmt.Errorf("the API server's answer is not a pod: %w", err)
	}
	if s.UID != "" && p.Metadata.UID != "" && s.UID != p.Metadata.UID {
		return verify.Report{}, fmt.Errorf("the sandbox belongs to an earlier pod of that name (uid %s, the API server has %s)", s.UID, p.Metadata.UID)
	}
	plan, err := verify.PlanFor(p, s.Namespace, conf.ExcludeNamespaces)
	if err != nil {
		return verify.Report{}, fmt.Errorf("the plugin would refuse this pod: %w", err)
	}
	path, err := c.NetNS(s.ID)
	if err != nil {
		return verify.Report{}, err
	}
	if path == "" {
		return verify.Report{Verdict: verify.NotRedirected, Reason: "host-network"}, nil
	}
	return verify.Check(node, verify.Owned(), plan, path)
}

// nodeExit: one pod gets its verdict's status. For a node, drift or a pod that could not be verified fails
// (1, 5); pods the plugin skips are fine whoever redirects them, so a healthy node exits 0.
func nodeExit(single bool, reports []NodeReport) int {
	if single {
		if reports[0].Error != "" {
			return verify.ExitError
		}
		return reports[0].Verdict.ExitCode()
	}
	code := verify.ExitMatch
	for _, r := range reports {
		switch {
		case r.Verdict == verify.Drift:
			return verify.ExitDrift
		case r.Error != "":
			code = verify.ExitError
		}
	}
	return code
}

func writeNodeReports(w io.Writer, output string, single bool, reports []NodeReport) error {
	if output == "json" {
		if single {
			return json.NewEncoder(w).Encode(reports[0])
		}
		return json.NewEncoder(w).Encode(reports)
	}
	if single && reports[0].Error == "" {
		return writeReport(w, output, reports[0].Report)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tVERDICT\tDETAIL")
	for _, r := range reports {
		switch {
		case r.Error != "":
			fmt.Fprintf(tw, "%s\terror\t%s\n", r.Pod, r.Error)
		case r.Verdict == verify.Drift:
			fmt.Fprintf(tw, "%s\t%s\t%d difference(s): %s\n", r.Pod, r.Verdict, len(r.Differences), r.Differences[0])
		case r.Reason != "":
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Pod, r.Verdict, explain(r.Reason))
		default:
			fmt.Fprintf(tw, "%s\t%s\t\n", r.Pod, r.Verdict)
		}
	}
	return tw.Flush()
}
