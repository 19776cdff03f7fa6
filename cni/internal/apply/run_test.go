package apply

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// run passes stdin, returns stdout, puts stderr and the exit status into its error, and kills a command that
// outlives the context, both with memory files and (kernels without memfd_create) with pipes.
func TestRun(t *testing.T) {
	for _, memfd := range []bool{true, false} {
		name := "memfd"
		if !memfd {
			name = "pipes"
			memfdCreate = func(string, int) (int, error) { return -1, unix.ENOSYS }
			t.Cleanup(func() { memfdCreate = unix.MemfdCreate })
		}
		t.Run(name, func(t *testing.T) {
			out, err := run(context.Background(), "/bin/sh", []byte("hello\n"), "-c", "tr a-z A-Z")
			if err != nil || out != "HELLO\n" {
				t.Fatalf("stdin to stdout: %q, %v", out, err)
			}
			out, err = run(context.Background(), "/bin/sh", nil, "-c", "echo partial; echo broken >&2; exit 3")
			if err == nil || out != "partial\n" || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "broken") {
				t.Fatalf("failure: %q, %v", out, err)
			}
			if _, err := run(context.Background(), "/nonexistent/iptables-restore", nil); err == nil {
				t.Fatal("a missing command must fail")
			}
			// Killed at the deadline: a run that ignored it would return only when sleep ends, two minutes later.
			// The bound only tells those apart; it does not measure speed.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			t0 := time.Now()
			if _, err := run(ctx, "/bin/sleep", nil, "120"); err == nil || time.Since(t0) > time.Minute {
				t.Fatalf("timeout: %v after %v", err, time.Since(t0))
			}
		})
	}
}

// Two started commands run side by side: both are running before either is waited for.
func TestStartRunsSideBySide(t *testing.T) {
	dir := t.TempDir()
	// Were they one after the other, the first would wait for the second forever: the deadline ends that.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := start(ctx, "/bin/sh", nil, "-c", "touch "+dir+"/a; while [ ! -e "+dir+"/b ]; do sleep 0.01; done")
	if err != nil {
		t.Fatal(err)
	}
	b, err := start(ctx, "/bin/sh", nil, "-c", "touch "+dir+"/b; while [ ! -e "+dir+"/a ]; do sleep 0.01; done")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.wait(); err != nil {
		t.Fatal(err)
	}
}
