package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/verify"
)

type sent struct{ ns, name, uid, reason, msg string }

type fakeSink struct {
	events []sent
	fail   error
}

func (f *fakeSink) Warn(_ context.Context, ns, name, uid, reason, msg string) error {
	if f.fail != nil {
		return f.fail
	}
	f.events = append(f.events, sent{ns, name, uid, reason, msg})
	return nil
}

func pod(name string, v verify.Verdict, diffs ...apply.Difference) verify.PodReport {
	return verify.PodReport{Report: verify.Report{Pod: "apps/" + name, Verdict: v, Differences: diffs}, UID: "uid-" + name}
}

var (
	missing = apply.Difference{Family: "IPv4", Table: "nat", Chain: "ISTIO_OUTPUT", Kind: "missing", Want: "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"}
	extra   = apply.Difference{Family: "IPv4", Table: "nat", Chain: "ISTIO_INBOUND", Kind: "extra", Have: "-A ISTIO_INBOUND -p tcp -m tcp --dport 9 -j RETURN"}
)

func metrics(t *testing.T, a *Auditor) string {
	t.Helper()
	var b strings.Builder
	if err := a.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAuditRounds(t *testing.T) {
	clock := time.Unix(1700000000, 0)
	var round []verify.PodReport
	sink := &fakeSink{}
	a := &Auditor{Check: func() ([]verify.PodReport, error) { return round, nil }, Events: sink, Now: func() time.Time { return clock }}

	// A healthy node: counts only, no Event.
	round = []verify.PodReport{pod("web", verify.Match), pod("plain", verify.NotRedirected), {Report: verify.Report{Pod: "apps/x"}, Error: "api down"}}
	if err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := metrics(t, a)
	for _, want := range []string{`asm_cni_audit_pods{verdict="match"} 1`, `asm_cni_audit_pods{verdict="not-redirected"} 1`,
		`asm_cni_audit_pods{verdict="error"} 1`, `asm_cni_audit_pods{verdict="drift"} 0`,
		"asm_cni_audit_last_run_timestamp_seconds 1.7e+09", "asm_cni_audit_runs_total 1", "asm_cni_audit_events_total 0"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	if len(sink.events) != 0 {
		t.Fatalf("healthy node: no Event expected, got %v", sink.events)
	}

	// A rule deleted in web: one Warning Event naming the line; the same drift next round: no second Event.
	round = []verify.PodReport{pod("web", verify.Drift, missing, extra)}
	for i := 0; i < 2; i++ {
		if err := a.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.events) != 1 || sink.events[0].reason != ReasonDrift || sink.events[0].uid != "uid-web" ||
		!strings.Contains(sink.events[0].msg, "ISTIO_REDIRECT") || !strings.Contains(sink.events[0].msg, "asm-cni verify apps/web") {
		t.Fatalf("want one drift Event naming the rule, got %+v", sink.events)
	}
	if m := metrics(t, a); !strings.Contains(m, `asm_cni_audit_pods{verdict="drift"} 1`) || !strings.Contains(m, "asm_cni_audit_events_total 1") {
		t.Fatalf("metrics after drift:\n%s", m)
	}

	// Everything gone: a new problem, reported as missing redirection.
	bare := pod("web", verify.Drift, missing)
	bare.Bare = true
	round = []verify.PodReport{bare}
	_ = a.RunOnce(context.Background())
	if len(sink.events) != 2 || sink.events[1].reason != ReasonUnredirected {
		t.Fatalf("want a RedirectionMissing Event, got %+v", sink.events)
	}

	// Healed, then broken again: reported again.
	round = []verify.PodReport{pod("web", verify.Match)}
	_ = a.RunOnce(context.Background())
	round = []verify.PodReport{pod("web", verify.Drift, missing)}
	_ = a.RunOnce(context.Background())
	if len(sink.events) != 3 {
		t.Fatalf("a problem that comes back is reported again, got %d events", len(sink.events))
	}

	// An Event the API server refuses is tried again next round.
	sink.fail = errors.New("forbidden")
	round = []verify.PodReport{pod("api", verify.Drift, extra)}
	_ = a.RunOnce(context.Background())
	sink.fail = nil
	_ = a.RunOnce(context.Background())
	if len(sink.events) != 4 || sink.events[3].name != "api" {
		t.Fatalf("a refused Event is retried, got %+v", sink.events)
	}
}

func TestAuditListingFails(t *testing.T) {
	a := &Auditor{Check: func() ([]verify.PodReport, error) { return nil, errors.New("crictl not found") }, Now: time.Now}
	if err := a.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "crictl not found") {
		t.Fatalf("want the listing error, got %v", err)
	}
	if m := metrics(t, a); !strings.Contains(m, "asm_cni_audit_failures_total 1") || !strings.Contains(m, "asm_cni_audit_last_run_timestamp_seconds 0") {
		t.Fatalf("metrics:\n%s", m)
	}
}

// The loop audits at once, then on each tick and each config change, and stops with its context.
func TestLoopAndWatch(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trigger, err := WatchDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rounds := 0
	a := &Auditor{Check: func() ([]verify.PodReport, error) { rounds++; return nil, nil }, Now: time.Now}
	ticks := make(chan time.Time)
	ran := make(chan error)
	done := make(chan struct{})
	go func() { a.Loop(ctx, ticks, trigger, ran); close(done) }()
	const hang = time.Minute // only catches a hang
	wait := func(what string) {
		t.Helper()
		select {
		case <-ran:
		case <-time.After(hang):
			t.Fatalf("no audit after %s", what)
		}
	}
	wait("start")
	ticks <- time.Now()
	wait("a tick")
	if err := os.WriteFile(filepath.Join(dir, "10-bridge.conflist"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("a conflist write")
	cancel()
	select {
	case <-done:
	case <-time.After(hang):
		t.Fatal("the loop did not stop with its context")
	}
	// A write may raise more than one inotify event (create, close): at least one round each for start, tick, write.
	if rounds < 3 {
		t.Fatalf("want at least 3 rounds, got %d", rounds)
	}
}
