// Package audit verifies every pod of the node on an interval and after each change of the CNI config dir, and
// says what it found: Prometheus metrics of the verdicts, and a Kubernetes Event on each pod that drifts or has
// lost its redirection (once per change of what is wrong, not every round).
package audit

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asm-cni/asm-cni/cni/internal/verify"
)

// Event reasons, for `kubectl get events --field-selector reason=...`.
const (
	ReasonDrift         = "RedirectionDrift"
	ReasonUnredirected  = "RedirectionMissing"
	maxDetailsInMessage = 5
)

// Sink receives the Warning events the audit emits about a pod.
type Sink interface {
	Warn(ctx context.Context, namespace, name, uid, reason, message string) error
}

// Auditor holds the last round's verdicts and what has been reported about each pod.
type Auditor struct {
	Check  func() ([]verify.PodReport, error)
	Events Sink // nil: metrics only
	Now    func() time.Time
	Logf   func(format string, a ...any)

	mu       sync.Mutex
	counts   map[string]int
	last     time.Time
	runs     int
	failures int
	events   int
	reported map[string]string // pod key -> what was last reported as wrong with it
}

func (a *Auditor) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

// RunOnce verifies the node's pods, updates the metrics and emits an Event for each pod whose problem is new.
func (a *Auditor) RunOnce(ctx context.Context) error {
	reports, err := a.Check()
	a.mu.Lock()
	a.runs++
	if err != nil {
		a.failures++
		a.mu.Unlock()
		return fmt.Errorf("audit: %w", err)
	}
	counts := map[string]int{}
	seen := map[string]bool{}
	type warning struct {
		r           verify.PodReport
		reason, msg string
	}
	var warn []warning
	for _, r := range reports {
		verdict := string(r.Verdict)
		if r.Error != "" {
			verdict = "error"
		}
		counts[verdict]++
		key := r.Pod + "/" + r.UID
		seen[key] = true
		reason, msg := problem(r)
		if reason == "" {
			delete(a.reported, key)
			continue
		}
		if a.reported[key] == msg {
			continue
		}
		warn = append(warn, warning{r, reason, msg})
	}
	for key := range a.reported {
		if !seen[key] {
			delete(a.reported, key)
		}
	}
	a.counts, a.last = counts, a.Now()
	a.mu.Unlock()

	for _, w := range warn {
		a.logf("pod %s: %s: %s", w.r.Pod, w.reason, w.msg)
		if a.Events == nil {
			continue
		}
		ns, name, _ := strings.Cut(w.r.Pod, "/")
		if err := a.Events.Warn(ctx, ns, name, w.r.UID, w.reason, w.msg); err != nil {
			a.logf("pod %s: the Event could not be created (reported again next round): %v", w.r.Pod, err)
			continue
		}
		a.mu.Lock()
		if a.reported == nil {
			a.reported = map[string]string{}
		}
		a.reported[w.r.Pod+"/"+w.r.UID] = w.msg
		a.events++
		a.mu.Unlock()
	}
	return nil
}

// problem says what is wrong with a pod worth an Event ("" when nothing).
func problem(r verify.PodReport) (reason, msg string) {
	switch {
	case r.Error != "":
		return "", ""
	case r.Unredirected():
		return ReasonUnredirected, fmt.Sprintf("asm-cni should redirect this pod's traffic, but its network namespace has none of the rules (%d missing): the sidecar is bypassed. Recreate the pod; if it recurs, check the asm-cni plugin on this node.", len(r.Differences))
	case r.Verdict == verify.Drift:
		details := make([]string, 0, maxDetailsInMessage)
		for i, d := range r.Differences {
			if i == maxDetailsInMessage {
				details = append(details, fmt.Sprintf("and %d more", len(r.Differences)-i))
				break
			}
			details = append(details, d.String())
		}
		return ReasonDrift, fmt.Sprintf("the pod's redirection rules differ from what asm-cni programs (%d difference(s)): %s. Run `asm-cni verify %s` on the node for all of them.", len(r.Differences), strings.Join(details, "; "), r.Pod)
	}
	return "", ""
}

// WriteMetrics writes the Prometheus text exposition of the last round.
func (a *Auditor) WriteMetrics(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP asm_cni_audit_pods Pods of this node by the verdict of the last audit.\n# TYPE asm_cni_audit_pods gauge\n")
	verdicts := []string{string(verify.Match), string(verify.Drift), string(verify.NotRedirected), string(verify.OtherOwner), "error"}
	for v := range a.counts {
		if !slices.Contains(verdicts, v) {
			verdicts = append(verdicts, v)
		}
	}
	sort.Strings(verdicts)
	for _, v := range verdicts {
		fmt.Fprintf(&b, "asm_cni_audit_pods{verdict=%q} %d\n", v, a.counts[v])
	}
	b.WriteString("# HELP asm_cni_audit_last_run_timestamp_seconds When the last audit that listed the node's pods finished.\n# TYPE asm_cni_audit_last_run_timestamp_seconds gauge\n")
	last := 0.0
	if !a.last.IsZero() {
		last = float64(a.last.UnixNano()) / 1e9
	}
	fmt.Fprintf(&b, "asm_cni_audit_last_run_timestamp_seconds %g\n", last)
	fmt.Fprintf(&b, "# HELP asm_cni_audit_runs_total Audits started.\n# TYPE asm_cni_audit_runs_total counter\nasm_cni_audit_runs_total %d\n", a.runs)
	fmt.Fprintf(&b, "# HELP asm_cni_audit_failures_total Audits that could not list the node's pods.\n# TYPE asm_cni_audit_failures_total counter\nasm_cni_audit_failures_total %d\n", a.failures)
	fmt.Fprintf(&b, "# HELP asm_cni_audit_events_total Warning Events created about pods.\n# TYPE asm_cni_audit_events_total counter\nasm_cni_audit_events_total %d\n", a.events)
	_, err := io.WriteString(w, b.String())
	return err
}

// Loop audits at once, then on every tick and every trigger (a change of the CNI config dir), until ctx ends.
// ran, when set, receives each round's error (nil on success): tests wait on it instead of on time.
func (a *Auditor) Loop(ctx context.Context, ticks <-chan time.Time, trigger <-chan struct{}, ran chan<- error) {
	for {
		err := a.RunOnce(ctx)
		if err != nil {
			a.logf("%v", err)
		}
		if ran != nil {
			select {
			case ran <- err:
			case <-ctx.Done():
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		case <-trigger:
		}
	}
}
