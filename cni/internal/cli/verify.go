package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/cri"
	"github.com/asm-cni/asm-cni/cni/internal/plan"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/verify"
)

// NewNode gives verify the node's iptables (a variable so tests can pass a fake node).
var NewNode = func(backend string) (verify.Node, string, error) {
	b, err := apply.DetectBackend(backend)
	if err != nil {
		return nil, "", err
	}
	return &apply.Applier{Backend: b, Owned: plan.Owned(), Route: plan.Route()}, b.Name, nil
}

type verifyOpts struct {
	file, netns, namespace, exclude, backend, output string
	// On a node: the pod(s) from the API server and their namespaces from the CRI.
	node                                     bool
	confDir, kubeconfig, crictl, criEndpoint string
}

func verifyCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o verifyOpts
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.file, "f", "", "pod manifest (YAML or JSON) as stored in the API server, - for stdin")
	fs.StringVar(&o.file, "filename", "", "same as -f")
	fs.StringVar(&o.netns, "netns", "", "the pod's network namespace (/proc/PID/ns/net or a pinned path)")
	fs.StringVar(&o.namespace, "namespace", "", "namespace the pod runs in (default: the manifest's)")
	fs.StringVar(&o.exclude, "exclude-namespaces", strings.Join(DefaultExcludeNamespaces, ","), "namespaces the plugin skips")
	fs.StringVar(&o.backend, "iptables-backend", "auto", "auto, nft or legacy (as the plugin's iptables_backend)")
	fs.StringVar(&o.output, "output", "text", "text or json")
	fs.StringVar(&o.output, "o", "text", "same as --output")
	fs.BoolVar(&o.node, "node", false, "verify every ready pod sandbox on this node")
	fs.StringVar(&o.confDir, "cni-conf-dir", "/etc/cni/net.d", "where the installer put the plugin's config (kubeconfig, exclude_namespaces, iptables_backend)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to read pods with (default: the plugin's, from its config)")
	fs.StringVar(&o.crictl, "crictl", "crictl", "crictl binary")
	fs.StringVar(&o.criEndpoint, "cri-endpoint", cri.DefaultEndpoint, "the container runtime's CRI socket")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "asm-cni verify: "+format+"\n%s", append(a, usage)...)
		return verify.ExitUsage
	}
	// Flags may come after NAMESPACE/POD: the flag package stops at the first argument, so parse on past it.
	var refs []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, usage)
				return ExitOK
			}
			return fail("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		refs, args = append(refs, fs.Arg(0)), fs.Args()[1:]
	}
	cluster := o.node || len(refs) > 0
	switch {
	case len(refs) > 1 || (o.node && len(refs) > 0):
		return fail("give one NAMESPACE/POD, or --node, not both")
	case cluster && (o.file != "" || o.netns != ""):
		return fail("-f and --netns verify a pod from a file; NAMESPACE/POD and --node look pods up on this node")
	case !cluster && o.file == "":
		return fail("-f FILE is required (- reads stdin), or NAMESPACE/POD, or --node")
	case !cluster && o.netns == "":
		return fail("--netns PATH is required (the pod's network namespace, e.g. /proc/PID/ns/net)")
	case len(refs) == 1 && !validRef(refs[0]):
		return fail("%q is not NAMESPACE/POD", refs[0])
	case o.output != "text" && o.output != "json":
		return fail("--output must be text or json, not %q", o.output)
	case o.backend != "auto" && o.backend != "nft" && o.backend != "legacy":
		return fail("--iptables-backend must be auto, nft or legacy, not %q", o.backend)
	}
	couldNot := func(err error) int {
		fmt.Fprintf(stderr, "asm-cni verify: %v\n", err)
		return verify.ExitError
	}
	if cluster {
		ref := ""
		if len(refs) == 1 {
			ref = refs[0]
		}
		return verifyOnNode(o, ref, stdout, couldNot)
	}
	data, err := readInput(o.file, stdin)
	if err != nil {
		return couldNot(err)
	}
	p, err := pod.Decode(data)
	if err != nil {
		return couldNot(fmt.Errorf("%s: %w", inputName(o.file), err))
	}
	ns := o.namespace
	if ns == "" {
		ns = p.Metadata.Namespace
	}
	pl, err := plan.For(p, ns, splitList(o.exclude))
	if err != nil {
		return couldNot(fmt.Errorf("pod %s: %w (the plugin would fail the pod's network setup)", p.DisplayName(), err))
	}
	node, backend, err := NewNode(o.backend)
	if err != nil {
		return couldNot(err)
	}
	r, err := verify.Check(node, plan.Owned(), pl, o.netns)
	if err != nil {
		return couldNot(fmt.Errorf("pod %s: %w", p.DisplayName(), err))
	}
	r.Pod, r.Backend = p.DisplayName(), backend
	if err := writeReport(stdout, o.output, r); err != nil {
		return couldNot(err)
	}
	return r.Verdict.ExitCode()
}

func writeReport(w io.Writer, output string, r verify.Report) error {
	if output == "json" {
		return json.NewEncoder(w).Encode(r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s: %s", r.Pod, r.Verdict)
	switch r.Verdict {
	case verify.Match:
		fmt.Fprintf(&b, ": the namespace holds exactly the rules the plugin renders (iptables %s)\n", r.Backend)
	case verify.Drift:
		fmt.Fprintf(&b, ": %d difference(s) from the rules the plugin renders (iptables %s)\n", len(r.Differences), r.Backend)
	case verify.NotRedirected:
		fmt.Fprintf(&b, ": the plugin skips this pod (%s: %s) and the namespace has no ISTIO rules\n", r.Reason, explain(r.Reason))
	case verify.OtherOwner:
		fmt.Fprintf(&b, ": the plugin skips this pod (%s: %s) but the namespace has ISTIO rules: someone else (istio-init, another CNI) redirects it\n", r.Reason, explain(r.Reason))
	}
	for _, d := range r.Differences {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func validRef(ref string) bool {
	ns, name, ok := strings.Cut(ref, "/")
	return ok && ns != "" && name != "" && !strings.Contains(name, "/")
}
