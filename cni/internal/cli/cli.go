// Package cli is the plugin binary's command-line mode (when CNI_COMMAND is not set): `render` shows the
// iptables-restore input a pod would get, without a cluster or a network namespace; `verify` compares a running
// pod's namespace with it; `version` prints the build version.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/rules"
	"github.com/asm-cni/asm-cni/cni/internal/selection"
)

// Version is the plugin version, set by the binary's main from its -X ldflag.
var Version = "dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1 // unreadable or invalid input, invalid annotation
	ExitUsage   = 2 // bad command line
	ExitSkipped = 3 // render: the plugin would not redirect this pod (the reason is printed)
)

// maxInput bounds what render reads: a Pod manifest is a few KiB; anything near this is not a pod.
const maxInput = 8 << 20

// DefaultExcludeNamespaces mirrors the installer's default exclude_namespaces.
var DefaultExcludeNamespaces = []string{"kube-system", "istio-system"}

const usage = `usage:
  asm-cni render -f FILE|- [--namespace NS] [--exclude-namespaces LIST] [--family ipv4|ipv6|both] [--force]
      Print the iptables-restore input the plugin would apply in the pod's network namespace.
      FILE is a Pod (or a workload with a pod template) in YAML or JSON; - reads stdin.
      Exit status: 0 rules printed; 1 invalid input or annotation; 2 usage; 3 the plugin skips this pod.
  asm-cni verify -f FILE|- --netns PATH [--namespace NS] [--exclude-namespaces LIST] [--iptables-backend auto|nft|legacy] [--output text|json]
      Compare the rules in a running pod's network namespace (only read) with what the plugin renders for it.
      FILE is the Pod as stored in the API server (kubectl get pod -o yaml); PATH e.g. /proc/PID/ns/net.
      Exit status: 0 exactly the rendered rules; 1 drift (each differing line printed); 2 usage;
      3 the plugin skips this pod and the namespace has no ISTIO rules; 4 the plugin skips this pod but the
      namespace has ISTIO rules (redirected by someone else, e.g. istio-init); 5 could not verify.
  asm-cni verify NAMESPACE/POD | --node [--cni-conf-dir DIR] [--kubeconfig FILE] [--crictl BIN] [--cri-endpoint EP] [--output text|json]
      On a node (root): the same check for one pod, or a table of every ready pod sandbox of the node. Pods come
      from the API server with the plugin's own config (found in DIR, default /etc/cni/net.d), their network
      namespaces from the container runtime through crictl (containerd's socket by default).
      --node exits 0 when no pod drifts and every pod could be verified, 1 on drift, 5 when a pod could not be.
  asm-cni audit [--interval 60s] [--listen :9091] [--events=true] [--cni-conf-dir DIR] [--kubeconfig FILE] [--crictl BIN] [--cri-endpoint EP]
      The node audit (a container of the installer DaemonSet, see docs/verify.md): verify --node on an interval
      and after each change in DIR; metrics asm_cni_audit_* on /metrics; a Warning Event on each pod that drifts
      or has lost its redirection.
  asm-cni version
      Print the plugin version.

When the container runtime runs asm-cni (CNI_COMMAND set), it acts as a chained CNI plugin instead.
`

// Main runs the command line and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "asm-cni: no command given\n", usage)
		return ExitUsage
	}
	switch args[0] {
	case "render":
		return render(args[1:], stdin, stdout, stderr)
	case "verify":
		return verifyCmd(args[1:], stdin, stdout, stderr)
	case "audit":
		return auditCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "asm-cni: version takes no arguments\n%s", usage)
			return ExitUsage
		}
		fmt.Fprintf(stdout, "asm-cni %s\n", Version)
		return ExitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "asm-cni: unknown command %q (CNI_COMMAND is not set, so this is command-line mode)\n%s", args[0], usage)
		return ExitUsage
	}
}

type renderOpts struct {
	file      string
	namespace string
	exclude   string
	family    string
	force     bool
}

func render(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o renderOpts
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.file, "f", "", "pod manifest (YAML or JSON), - for stdin")
	fs.StringVar(&o.file, "filename", "", "same as -f")
	fs.StringVar(&o.namespace, "namespace", "", "namespace the pod runs in (default: the manifest's)")
	fs.StringVar(&o.exclude, "exclude-namespaces", strings.Join(DefaultExcludeNamespaces, ","), "namespaces the plugin skips")
	fs.StringVar(&o.family, "family", "both", "ipv4, ipv6 or both")
	fs.BoolVar(&o.force, "force", false, "render even when the plugin would skip the pod")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return ExitOK
		}
		fmt.Fprintf(stderr, "asm-cni render: %v\n%s", err, usage)
		return ExitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "asm-cni render: unexpected argument %q\n%s", fs.Arg(0), usage)
		return ExitUsage
	case o.file == "":
		fmt.Fprintf(stderr, "asm-cni render: -f FILE is required (- reads stdin)\n%s", usage)
		return ExitUsage
	case o.family != "ipv4" && o.family != "ipv6" && o.family != "both":
		fmt.Fprintf(stderr, "asm-cni render: --family must be ipv4, ipv6 or both, not %q\n%s", o.family, usage)
		return ExitUsage
	}

	data, err := readInput(o.file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "asm-cni render: %v\n", err)
		return ExitError
	}
	p, err := pod.DecodeWorkload(data)
	if err != nil {
		fmt.Fprintf(stderr, "asm-cni render: %s: %v\n", inputName(o.file), err)
		return ExitError
	}
	ns := o.namespace
	if ns == "" {
		ns = p.Metadata.Namespace
	}
	d := selection.Decide(p, ns, splitList(o.exclude))
	if !d.Redirect && !o.force {
		fmt.Fprintf(stderr, "asm-cni render: pod %s is not redirected by the plugin: %s (%s)\n", p.DisplayName(), d.Reason, explain(d.Reason))
		return ExitSkipped
	}
	s, err := rules.FromPod(p)
	if err != nil {
		fmt.Fprintf(stderr, "asm-cni render: pod %s: %v (the plugin would fail the pod's network setup)\n", p.DisplayName(), err)
		return ExitError
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(stderr, "asm-cni render: warning: %s\n", w)
	}
	if s.InterceptionMode == rules.ModeNone {
		fmt.Fprintf(stderr, "asm-cni render: pod %s has interception mode NONE: no rules\n", p.DisplayName())
		return ExitSkipped
	}
	rs := rules.Render(s)
	var b strings.Builder
	fmt.Fprintf(&b, "# asm-cni %s: rules for pod %s (interception %s, proxy uid %s gid %s)\n",
		Version, p.DisplayName(), s.InterceptionMode, s.ProxyUID, s.ProxyGID)
	if !d.Redirect {
		fmt.Fprintf(&b, "# --force: the plugin itself skips this pod (%s)\n", d.Reason)
	}
	if o.family != "ipv6" {
		writeFamily(&b, "IPv4", "iptables-restore --noflush", "ip", rs.IPv4, rs.TPROXY)
	}
	if o.family != "ipv4" {
		writeFamily(&b, "IPv6", "ip6tables-restore --noflush (applied when the pod has IPv6 addresses)", "ip -6", rs.IPv6, rs.TPROXY)
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		fmt.Fprintf(stderr, "asm-cni render: writing output: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// writeFamily writes one family's restore input under a comment header iptables-restore accepts.
func writeFamily(b *strings.Builder, family, tool, ipCmd, restore string, tproxy bool) {
	fmt.Fprintf(b, "# ---- %s: %s ----\n", family, tool)
	if tproxy {
		fmt.Fprintf(b, "# TPROXY policy routing, set up beside these rules:\n#   %s rule add fwmark %d lookup %d\n#   %s route add local default dev lo table %d\n",
			ipCmd, rules.TProxyMark, rules.TProxyRouteTable, ipCmd, rules.TProxyRouteTable)
	}
	b.WriteString(restore)
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	if file == "-" {
		if stdin == nil {
			return nil, errors.New("no stdin to read")
		}
		r = stdin
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", inputName(file), err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a pod manifest", inputName(file), maxInput>>20)
	}
	return data, nil
}

func inputName(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// explain says in a few words what a skip reason means for the admin.
func explain(reason string) string {
	switch reason {
	case selection.ReasonExcludedNamespace:
		return "the namespace is in exclude_namespaces"
	case selection.ReasonDisabledLabel:
		return "label sidecar.istio.io/inject is false"
	case selection.ReasonDisabledAnnotation:
		return "annotation sidecar.istio.io/inject is false"
	case selection.ReasonNoIstioProxy:
		return "the pod has no istio-proxy sidecar"
	case selection.ReasonSingleContainer:
		return "the pod has only one container"
	case selection.ReasonHostNetwork:
		return "the pod uses the host network"
	case selection.ReasonNotSidecar:
		return "istio-proxy is not a sidecar (e.g. a gateway: proxy router)"
	case selection.ReasonEnvoyDisabled:
		return "istio-proxy runs without Envoy (DISABLE_ENVOY)"
	case selection.ReasonInterceptionNone:
		return "interception mode NONE (annotation, istio-init -m, or the proxy's ISTIO_META_INTERCEPTION_MODE / PROXY_CONFIG)"
	case selection.ReasonIstioInitPresent:
		return "istio-init is still in the pod and programs the rules itself"
	}
	return reason
}
