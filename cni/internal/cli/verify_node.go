package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/asm-cni/asm-cni/cni/internal/config"
	"github.com/asm-cni/asm-cni/cni/internal/cri"
	"github.com/asm-cni/asm-cni/cni/internal/verify"
)

// verifyOnNode verifies one pod (ref "NAMESPACE/POD") or every ready sandbox of this node (ref ""), with the
// plugin's own config.
func verifyOnNode(o verifyOpts, ref string, stdout io.Writer, couldNot func(error) int) int {
	on, err := onNode(o.confDir, o.kubeconfig, o.crictl, o.criEndpoint)
	if err != nil {
		return couldNot(err)
	}
	var ns, name string
	if ref != "" {
		ns, name, _ = strings.Cut(ref, "/")
	}
	reports, err := on.Pods(ns, name)
	if err != nil {
		return couldNot(err)
	}
	if err := writeNodeReports(stdout, o.output, ref != "", reports); err != nil {
		return couldNot(err)
	}
	return nodeExit(ref != "", reports)
}

// onNode sets up verification with the plugin's config as the installer wrote it into confDir.
func onNode(confDir, kubeconfig, crictl, endpoint string) (verify.OnNode, error) {
	conf, _, err := config.Installed(confDir)
	if err != nil {
		return verify.OnNode{}, err
	}
	if kubeconfig == "" {
		kubeconfig = conf.Kubeconfig
	}
	if kubeconfig == "" {
		return verify.OnNode{}, fmt.Errorf("no kubeconfig: the plugin's config names none; pass --kubeconfig")
	}
	node, backend, err := NewNode(conf.IptablesBackend)
	if err != nil {
		return verify.OnNode{}, err
	}
	return verify.OnNode{Conf: conf, Kubeconfig: kubeconfig, CRI: cri.Client{Crictl: crictl, Endpoint: endpoint}, Node: node, Backend: backend}, nil
}

// nodeExit: one pod gets its verdict's status. For a node, drift or a pod that could not be verified fails
// (1, 5); pods the plugin skips are fine whoever redirects them, so a healthy node exits 0.
func nodeExit(single bool, reports []verify.PodReport) int {
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

func writeNodeReports(w io.Writer, output string, single bool, reports []verify.PodReport) error {
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
