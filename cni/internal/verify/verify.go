// Package verify compares what a running pod's network namespace holds with what the plugin would program for
// the pod: the automated form of ASM's manual check (crictl, the container's PID, nsenter, iptables -t nat -L).
// The namespace is only read. Expected rules are rendered as the plugin renders them and turned into this
// node's iptables-save form in a scratch namespace, so the comparison is text against text, line by line.
package verify

import (
	"fmt"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/plan"
	"github.com/asm-cni/asm-cni/cni/internal/rules"
)

// Verdict is the outcome for one pod; each has its exit status (ExitCode).
type Verdict string

const (
	// Match: the namespace holds exactly the rules the plugin renders for the pod.
	Match Verdict = "match"
	// Drift: the plugin redirects this pod and the rules differ (missing, extra, changed, reordered).
	Drift Verdict = "drift"
	// NotRedirected: the plugin would skip the pod, and nothing of ISTIO's is in the namespace.
	NotRedirected Verdict = "not-redirected"
	// OtherOwner: the namespace holds ISTIO rules although the plugin would not redirect the pod: someone
	// else programmed them (istio-init, another mesh's CNI), so "both" or "wrong owner" becomes visible.
	OtherOwner Verdict = "other-owner"
)

// Exit statuses of `asm-cni verify` (ExitError: the pod or namespace could not be read).
const (
	ExitMatch         = 0
	ExitDrift         = 1
	ExitUsage         = 2
	ExitNotRedirected = 3
	ExitOtherOwner    = 4
	ExitError         = 5
)

// ExitCode is the process exit status for the verdict.
func (v Verdict) ExitCode() int {
	switch v {
	case Match:
		return ExitMatch
	case Drift:
		return ExitDrift
	case NotRedirected:
		return ExitNotRedirected
	case OtherOwner:
		return ExitOtherOwner
	}
	return ExitError
}

// Report is the verdict for one pod and the evidence for it.
type Report struct {
	Pod         string             `json:"pod"`
	Netns       string             `json:"netns"`
	Verdict     Verdict            `json:"verdict"`
	Reason      string             `json:"reason,omitempty"` // why the plugin skips the pod
	Backend     string             `json:"backend,omitempty"`
	Differences []apply.Difference `json:"differences,omitempty"`
	// Bare: the namespace holds none of asm-cni's rules or routing (with Drift: the pod has no redirection at all).
	Bare     bool     `json:"bare,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Node is what verify needs of the node: the live state of a namespace and the canonical form of a spec.
// *apply.Applier is the real one.
type Node interface {
	Read(path string) (apply.State, error)
	Canonical(spec apply.Spec, withV6 bool) (v4, v6 apply.Dump, err error)
}

// Check reads the namespace at path and gives the verdict for plan.
func Check(n Node, owned apply.Owned, plan plan.Plan, path string) (Report, error) {
	r := Report{Netns: path, Warnings: plan.Warnings}
	st, err := n.Read(path)
	if err != nil {
		return r, err
	}
	if plan.Spec == nil {
		r.Reason = plan.Skip
		r.Verdict = NotRedirected
		if owned.Holds(st.IPv4) || owned.Holds(st.IPv6) || st.RoutePresent {
			r.Verdict = OtherOwner
		}
		return r, nil
	}
	r.Bare = !owned.Holds(st.IPv4) && !owned.Holds(st.IPv6) && !st.RoutePresent
	withV6 := st.HasIPv6 && plan.Spec.IPv6 != ""
	want4, want6, err := n.Canonical(*plan.Spec, withV6)
	if err != nil {
		return r, err
	}
	r.Differences = append(owned.Diff("IPv4", want4, st.IPv4), owned.Diff("IPv6", want6, st.IPv6)...)
	r.Differences = append(r.Differences, routeDiffs(plan.Spec.TPROXY, st)...)
	r.Verdict = Match
	if len(r.Differences) > 0 {
		r.Verdict = Drift
	}
	return r, nil
}

func routeDiffs(tproxy bool, st apply.State) []apply.Difference {
	var out []apply.Difference
	if tproxy {
		for _, m := range st.RouteMissing {
			out = append(out, apply.Difference{Family: "route", Kind: "missing", Want: m})
		}
	} else if st.RoutePresent {
		out = append(out, apply.Difference{Family: "route", Kind: "extra",
			Have: fmt.Sprintf("ip rule fwmark %d lookup %d (TPROXY routing on a REDIRECT pod)", rules.TProxyMark, rules.TProxyRouteTable)})
	}
	return out
}
