// Package apply programs, checks and removes a pod's redirection inside the pod's network namespace: one
// iptables-restore transaction per address family (plus the TPROXY policy routing), all inside
// ns.WithNetNSPath so that nothing ever runs in the node's own namespace.
package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/asm-cni/asm-cni/cni/internal/netns"
)

// Spec is what one pod gets: restore input per family (rendered with -N chains) and whether TPROXY routing
// is needed.
type Spec struct {
	IPv4   string
	IPv6   string
	TPROXY bool
}

// Applier holds what does not change from pod to pod.
type Applier struct {
	Backend Backend
	Owned   Owned
	Route   PolicyRoute
	// Timeout bounds each iptables command (the legacy xtables lock may make them wait).
	Timeout time.Duration
	// Logf receives debug lines (the transactions applied); nil discards them.
	Logf func(format string, a ...any)
}

// Result says what Apply did.
type Result struct {
	IPv6 bool // IPv6 rules were applied too
}

func (a *Applier) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

func (a *Applier) ctx() (context.Context, context.CancelFunc) {
	t := a.Timeout
	if t <= 0 {
		t = 60 * time.Second
	}
	return context.WithTimeout(context.Background(), t)
}

type family struct {
	name             string // "IPv4" / "IPv6"
	restore, save, c string
}

func (a *Applier) fam(v6 bool) family {
	if v6 {
		return family{"IPv6", a.Backend.Restore6, a.Backend.Save6, a.Backend.Cmd6}
	}
	return family{"IPv4", a.Backend.Restore4, a.Backend.Save4, a.Backend.Cmd4}
}

func (a *Applier) dump(f family) (Dump, error) {
	ctx, cancel := a.ctx()
	defer cancel()
	out, err := run(ctx, f.save, nil)
	if err != nil {
		return nil, err
	}
	return ParseRestore(out)
}

func (a *Applier) restore(f family, tx string) error {
	ctx, cancel := a.ctx()
	defer cancel()
	a.logf("%s restore transaction:\n%s", f.name, tx)
	_, err := run(ctx, f.restore, []byte(tx), "--noflush", "--wait")
	return err
}

// clear removes the family's state of ours; a namespace without tables of the family has none (no exec).
func (a *Applier) clear(f family, v6 bool) error {
	if !a.tablesPresent(v6) {
		return nil
	}
	return a.replace(f, nil)
}

// replaceJob is one family to bring to desired (nil: nothing of ours) by reading and replacing.
type replaceJob struct {
	f       family
	v6      bool
	desired Dump
}

// replaceAll does replace for each job, the families side by side: both saves at once, then both restores.
// It returns one error (or nil) per job.
func (a *Applier) replaceAll(jobs []replaceJob) []error {
	errs := make([]error, len(jobs))
	ctx, cancel := a.ctx()
	defer cancel()
	procs := make([]*proc, len(jobs))
	for i, j := range jobs {
		p, err := start(ctx, j.f.save, nil)
		if errors.Is(err, errNoMemfd) {
			for _, p := range procs[:i] {
				if p != nil {
					_, _ = p.wait()
				}
			}
			for i, j := range jobs {
				errs[i] = a.replace(j.f, j.desired)
			}
			return errs
		}
		procs[i], errs[i] = p, err
	}
	txs := make([]string, len(jobs))
	for i, j := range jobs {
		if procs[i] == nil {
			errs[i] = fmt.Errorf("reading the pod's %s rules: %w", j.f.name, errs[i])
			continue
		}
		out, err := procs[i].wait()
		var cur Dump
		if err == nil {
			cur, err = ParseRestore(out)
		}
		if err != nil {
			errs[i] = fmt.Errorf("reading the pod's %s rules: %w", j.f.name, err)
			continue
		}
		if j.desired == nil && a.Owned.present(cur).empty() {
			continue
		}
		txs[i] = Transaction(cur, j.desired, a.Owned)
	}
	for i, j := range jobs {
		procs[i] = nil
		if errs[i] != nil || txs[i] == "" {
			continue
		}
		a.logf("%s restore transaction:\n%s", j.f.name, txs[i])
		procs[i], errs[i] = start(ctx, j.f.restore, []byte(txs[i]), "--noflush", "--wait")
	}
	for i, j := range jobs {
		if procs[i] != nil {
			_, errs[i] = procs[i].wait()
		}
		if errs[i] != nil && txs[i] != "" {
			errs[i] = fmt.Errorf("applying the pod's %s rules: %w", j.f.name, errs[i])
		}
	}
	return errs
}

// replace makes the family's state of ours equal desired (nil desired: remove ours), in one transaction.
func (a *Applier) replace(f family, desired Dump) error {
	cur, err := a.dump(f)
	if err != nil {
		return fmt.Errorf("reading the pod's %s rules: %w", f.name, err)
	}
	if desired == nil && a.Owned.present(cur).empty() {
		return nil
	}
	if err := a.restore(f, Transaction(cur, desired, a.Owned)); err != nil {
		return fmt.Errorf("applying the pod's %s rules: %w", f.name, err)
	}
	return nil
}

// Apply programs spec in the netns at path. IPv6 rules are applied when wantV6 (the pod has an IPv6 address in
// prevResult) or the netns has a global IPv6 address. A retried Apply gives the same state. On any failure
// everything of ours is removed again, so the pod is left with no partial redirection.
func (a *Applier) Apply(path string, spec Spec, wantV6 bool) (Result, error) {
	var res Result
	if err := netns.NotHost(path); err != nil {
		return res, err
	}
	v4, err := ParseRestore(spec.IPv4)
	if err != nil {
		return res, fmt.Errorf("rendered IPv4 rules: %w", err)
	}
	v6, err := ParseRestore(spec.IPv6)
	if err != nil {
		return res, fmt.Errorf("rendered IPv6 rules: %w", err)
	}
	err = ns.WithNetNSPath(path, func(ns.NetNS) error {
		hasV6, err := netns.ThreadHasGlobalIPv6()
		if err != nil {
			return fmt.Errorf("reading the pod's IPv6 addresses: %w", err)
		}
		res.IPv6 = (wantV6 || hasV6) && spec.IPv6 != ""
		if err := a.apply(spec, v4, v6, res.IPv6); err != nil {
			if cerr := a.removeHere(); cerr != nil {
				return fmt.Errorf("%w (and removing the partial state failed: %v)", err, cerr)
			}
			return err
		}
		return nil
	})
	return res, err
}

// familyJob is one family's part of an ADD.
type familyJob struct {
	f        family
	v6       bool
	rendered string
	desired  Dump
	p        *proc // the restore into a fresh namespace, when started
	err      error // why the fresh restore did not do it
}

// apply gives each family exactly the rendered rules. A family without any table in the namespace (a pod's
// first ADD) needs one exec: the rendered input restored as it is, its -N declaring our chains; the families'
// restores then run at the same time (their tables are independent; with legacy iptables the xtables lock
// serialises them). Otherwise, or if such a restore fails (an earlier ADD's chains exist after all: a failed
// restore commits nothing), the current rules are read and replaced.
func (a *Applier) apply(spec Spec, v4, v6 Dump, withV6 bool) error {
	jobs := []*familyJob{{f: a.fam(false), rendered: spec.IPv4, desired: v4}}
	if withV6 {
		jobs = append(jobs, &familyJob{f: a.fam(true), v6: true, rendered: spec.IPv6, desired: v6})
	}
	ctx, cancel := a.ctx()
	defer cancel()
	for _, j := range jobs {
		if a.tablesPresent(j.v6) {
			continue
		}
		a.logf("%s restore into the fresh namespace:\n%s", j.f.name, j.rendered)
		if j.p, j.err = start(ctx, j.f.restore, []byte(j.rendered), "--noflush", "--wait"); j.err != nil {
			j.p = nil
		}
	}
	var pending []*familyJob
	for _, j := range jobs {
		if j.p != nil {
			if _, j.err = j.p.wait(); j.err == nil {
				continue
			}
		}
		if j.err != nil {
			a.logf("%s: restoring into the fresh namespace failed (%v); replacing what is there", j.f.name, j.err)
		}
		pending = append(pending, j)
	}
	var retry []replaceJob
	for _, j := range pending {
		retry = append(retry, replaceJob{f: j.f, v6: j.v6, desired: j.desired})
	}
	for _, err := range a.replaceAll(retry) {
		if err != nil {
			return err
		}
	}
	if !withV6 {
		if err := a.clear(a.fam(true), true); err != nil {
			// No IPv6 wanted: leftovers of an earlier ADD are removed, but a node without ip6tables is fine.
			a.logf("no IPv6 rules applied; ip6tables cleanup skipped: %v", err)
		}
	}
	if spec.TPROXY {
		return a.Route.Setup(withV6)
	}
	return a.Route.Remove()
}

// Remove deletes everything of ours from the netns at path: our chains, our rules in the built-in chains and
// the TPROXY routing. A missing netns is not an error (DEL after the sandbox is gone).
func (a *Applier) Remove(path string) error {
	if !netns.Exists(path) {
		return nil
	}
	if err := netns.NotHost(path); err != nil {
		return err
	}
	err := ns.WithNetNSPath(path, func(ns.NetNS) error { return a.removeHere() })
	var nsErr ns.NSPathNotExistErr
	if errors.As(err, &nsErr) {
		return nil
	}
	return err
}

func (a *Applier) removeHere() error {
	var jobs []replaceJob
	for _, v6 := range []bool{false, true} {
		if a.tablesPresent(v6) {
			jobs = append(jobs, replaceJob{f: a.fam(v6), v6: v6})
		}
	}
	var errs []error
	for i, err := range a.replaceAll(jobs) {
		switch {
		case err == nil:
		case jobs[i].v6:
			a.logf("ip6tables cleanup skipped: %v", err)
		default:
			errs = append(errs, err)
		}
	}
	if err := a.Route.Remove(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// MissingError lists what CHECK found missing or unexpected.
type MissingError struct{ Problems []string }

func (e *MissingError) Error() string {
	const max = 8
	p := e.Problems
	more := ""
	if len(p) > max {
		more = fmt.Sprintf(" (and %d more)", len(p)-max)
		p = p[:max]
	}
	return fmt.Sprintf("the pod's redirection is incomplete: %s%s", strings.Join(p, "; "), more)
}

// Check verifies that every rule of spec is in the netns (and nothing extra in our chains), plus the TPROXY
// routing. withV6 says whether IPv6 rules are expected.
func (a *Applier) Check(path string, spec Spec, withV6 bool) error {
	if err := netns.NotHost(path); err != nil {
		return err
	}
	var problems []string
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		hasV6, err := netns.ThreadHasGlobalIPv6()
		if err != nil {
			return err
		}
		withV6 = (withV6 || hasV6) && spec.IPv6 != ""
		texts := []string{spec.IPv4}
		if withV6 {
			texts = append(texts, spec.IPv6)
		}
		for i, text := range texts {
			p, err := a.checkFamily(a.fam(i == 1), text)
			if err != nil {
				return err
			}
			problems = append(problems, p...)
		}
		if spec.TPROXY {
			problems = append(problems, a.Route.Check(withV6)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &MissingError{Problems: problems}
	}
	return nil
}

func (a *Applier) checkFamily(f family, text string) ([]string, error) {
	desired, err := ParseRestore(text)
	if err != nil {
		return nil, err
	}
	cur, err := a.dump(f)
	if err != nil {
		return nil, fmt.Errorf("reading the pod's %s rules: %w", f.name, err)
	}
	var problems []string
	for _, t := range desired {
		ct := cur.table(t.Name)
		for _, c := range t.Chains {
			want := len(c.Rules)
			var have int
			var cc *Chain
			if ct != nil {
				cc = ct.chain(c.Name)
			}
			switch {
			case cc == nil && !c.Builtin:
				problems = append(problems, fmt.Sprintf("%s chain %s/%s is missing", f.name, t.Name, c.Name))
				continue
			case cc == nil:
				have = 0
			case c.Builtin:
				for _, r := range cc.Rules {
					if a.Owned.ownsRule(t.Name, r) {
						have++
					}
				}
			default:
				have = len(cc.Rules)
			}
			if have != want {
				problems = append(problems, fmt.Sprintf("%s chain %s/%s has %d of our rules, expected %d", f.name, t.Name, c.Name, have, want))
			}
		}
		for _, line := range t.Lines {
			args, err := checkArgs(t.Name, line)
			if err != nil {
				return nil, err
			}
			ctx, cancel := a.ctx()
			_, err = run(ctx, f.c, nil, args...)
			cancel()
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s rule missing in %s: %s", f.name, t.Name, line))
			}
		}
	}
	return problems, nil
}

// checkArgs turns a rendered rule line ("-A CHAIN spec" or "-I CHAIN N spec") into `-w -t TABLE -C CHAIN spec`.
func checkArgs(table, line string) ([]string, error) {
	f, err := splitRule(line)
	if err != nil {
		return nil, err
	}
	if len(f) < 2 {
		return nil, fmt.Errorf("bad rule %q", line)
	}
	rest := f[2:]
	if f[0] == "-I" && len(rest) > 0 && isNumber(rest[0]) {
		rest = rest[1:]
	}
	return append([]string{"-w", "-t", table, "-C", f[1]}, rest...), nil
}

func isNumber(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// splitRule splits a rule line into words, honouring double quotes (as iptables-save prints comments).
func splitRule(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote, have = !inQuote, true
		case (ch == ' ' || ch == '\t') && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in rule %q", line)
	}
	if have {
		out = append(out, cur.String())
	}
	return out, nil
}
