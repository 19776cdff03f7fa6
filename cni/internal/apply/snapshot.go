package apply

import (
	"fmt"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/asm-cni/asm-cni/cni/internal/netns"
)

// State is what of ours one network namespace holds, read without changing anything: per family the
// iptables-save of the tables we use, and the TPROXY policy routing.
type State struct {
	IPv4, IPv6 Dump
	// HasIPv6 says the namespace has a global IPv6 address (the plugin programs IPv6 rules only then).
	HasIPv6 bool
	// RouteMissing lists the TPROXY routing entries absent for the families that have addresses;
	// RoutePresent says whether any of ours (the fwmark rule) is there at all.
	RouteMissing []string
	RoutePresent bool
}

// Read reads the netns at path: iptables-save of both families (IPv6 only where ip6tables works) and the
// policy routing. It never writes to the namespace.
func (a *Applier) Read(path string) (State, error) {
	var st State
	if err := netns.NotHost(path); err != nil {
		return st, err
	}
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		var err error
		if st.HasIPv6, err = netns.ThreadHasGlobalIPv6(); err != nil {
			return fmt.Errorf("reading the pod's IPv6 addresses: %w", err)
		}
		if st.IPv4, err = a.dump(a.fam(false)); err != nil {
			return fmt.Errorf("reading the pod's IPv4 rules: %w", err)
		}
		if v6, err := a.dump(a.fam(true)); err == nil {
			st.IPv6 = v6
		} else if st.HasIPv6 {
			return fmt.Errorf("reading the pod's IPv6 rules: %w", err)
		}
		st.RouteMissing = a.Route.Check(st.HasIPv6)
		for _, fam := range families(st.HasIPv6) {
			if r, err := a.Route.rules(fam); err == nil && len(r) > 0 {
				st.RoutePresent = true
			}
		}
		return nil
	})
	return st, err
}

// Canonical returns spec as this node's iptables prints it back: the rendered input restored into a scratch
// network namespace of its own, then saved. Comparing saved text with saved text makes a verdict exact
// (iptables-save adds "-m tcp", prints masks and marks in its own way) without a second parser of iptables
// syntax. The scratch namespace belongs to one locked OS thread and is gone when that thread ends.
func (a *Applier) Canonical(spec Spec, withV6 bool) (v4, v6 Dump, err error) {
	type out struct {
		v4, v6 Dump
		err    error
	}
	done := make(chan out, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with this goroutine, and the namespace with it.
		runtime.LockOSThread()
		var o out
		defer func() { done <- o }()
		if o.err = unix.Unshare(unix.CLONE_NEWNET); o.err != nil {
			o.err = fmt.Errorf("creating a scratch network namespace to render the expected rules: %w", o.err)
			return
		}
		if o.v4, o.err = a.restoreAndSave(a.fam(false), spec.IPv4); o.err != nil || !withV6 || spec.IPv6 == "" {
			return
		}
		o.v6, o.err = a.restoreAndSave(a.fam(true), spec.IPv6)
	}()
	o := <-done
	return o.v4, o.v6, o.err
}

func (a *Applier) restoreAndSave(f family, text string) (Dump, error) {
	if text == "" {
		return nil, nil
	}
	if err := a.restore(f, text); err != nil {
		return nil, fmt.Errorf("the rendered %s rules do not load: %w", f.name, err)
	}
	return a.dump(f)
}
