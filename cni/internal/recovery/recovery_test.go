package recovery

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

func TestWrapTurnsAPanicIntoACNIError(t *testing.T) {
	var stack bytes.Buffer
	calls := 0
	funcs := Wrap(skel.CNIFuncs{
		//lint:ignore SA5000 the panic of a nil map write is what this test recovers from
		Add:   func(*skel.CmdArgs) error { var m map[string]int; m["boom"]++; return nil },
		Del:   func(*skel.CmdArgs) error { calls++; return nil },
		Check: func(*skel.CmdArgs) error { return errors.New("plain error") },
	}, "asm-cni", &stack)

	err := funcs.Add(&skel.CmdArgs{})
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("want a *types.Error, got %T %v", err, err)
	}
	if te.Code != 999 {
		t.Fatalf("code %d, want %d", te.Code, CodePanic)
	}
	for _, want := range []string{"asm-cni", "panic", "ADD", "assignment to entry in nil map"} {
		if !strings.Contains(te.Msg, want) {
			t.Fatalf("message %q lacks %q", te.Msg, want)
		}
	}
	if !strings.Contains(stack.String(), "goroutine") || !strings.Contains(stack.String(), "recovery_test.go") {
		t.Fatalf("the stack goes to the stack writer: %q", stack.String())
	}

	if err := funcs.Del(&skel.CmdArgs{}); err != nil || calls != 1 {
		t.Fatalf("a command that does not panic runs as before: err %v calls %d", err, calls)
	}
	if err := funcs.Check(&skel.CmdArgs{}); err == nil || err.Error() != "plain error" {
		t.Fatalf("errors pass through unchanged: %v", err)
	}
	if funcs.GC != nil || funcs.Status != nil {
		t.Fatalf("unimplemented commands stay nil, so skel answers them itself")
	}
}
