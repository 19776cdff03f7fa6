// Package plan is what the plugin does for a pod, decided once for everyone who needs it: ADD and CHECK program
// or check it, `asm-cni verify` compares a namespace with it. Pure: the pod in, the rules or the reason out.
package plan

import (
	"fmt"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/rules"
	"github.com/asm-cni/asm-cni/cni/internal/selection"
)

// Plan is a spec to program, or the reason nothing is programmed.
type Plan struct {
	Spec     *apply.Spec
	Skip     string
	Warnings []string
}

// For decides for pod p in namespace as the plugin's ADD does. An error is an annotation the plugin refuses.
func For(p *pod.Pod, namespace string, exclude []string) (Plan, error) {
	d := selection.Decide(p, namespace, exclude)
	if !d.Redirect {
		return Plan{Skip: d.Reason}, nil
	}
	s, err := rules.FromPod(p)
	if err != nil {
		return Plan{}, err
	}
	rs := rules.Render(s)
	if rs.Empty() {
		return Plan{Skip: fmt.Sprintf("interception mode %s renders no rules", s.InterceptionMode), Warnings: s.Warnings}, nil
	}
	return Plan{Spec: &apply.Spec{IPv4: rs.IPv4, IPv6: rs.IPv6, TPROXY: rs.TPROXY}, Warnings: s.Warnings}, nil
}

// Owned is what belongs to asm-cni in a pod's network namespace: the renderer's chains and TPROXY's marks.
func Owned() apply.Owned {
	return apply.Owned{Chains: rules.ChainNames, Marks: []uint32{rules.TProxyMark, rules.OutboundMark}}
}

// Route is the TPROXY policy routing the plugin sets up.
func Route() apply.PolicyRoute {
	return apply.PolicyRoute{Mark: rules.TProxyMark, Table: rules.TProxyRouteTable}
}
