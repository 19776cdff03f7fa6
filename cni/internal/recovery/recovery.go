// Package recovery turns a panic in a CNI command into a CNI error result. The runtime shows the error's message in
// the pod's events, so a bug in the plugin fails that one sandbox setup with a message naming asm-cni, instead of
// a Go stack on stdout that the runtime cannot decode.
package recovery

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// CodePanic is the CNI error code of a recovered panic: the spec's generic internal error.
const CodePanic = types.ErrInternal

// Wrap returns funcs whose commands recover a panic into a CNI error (CodePanic) naming the plugin and the command.
// The stack goes to stack (the runtime's stderr, which it logs), never to stdout, where only the result belongs.
func Wrap(funcs skel.CNIFuncs, plugin string, stack io.Writer) skel.CNIFuncs {
	guard := func(command string, f func(*skel.CmdArgs) error) func(*skel.CmdArgs) error {
		if f == nil {
			return nil // skel answers an unimplemented command itself
		}
		return func(args *skel.CmdArgs) (err error) {
			defer func() {
				if v := recover(); v != nil {
					fmt.Fprintf(stack, "%s: panic in %s: %v\n%s", plugin, command, v, debug.Stack())
					err = types.NewError(CodePanic, fmt.Sprintf("%s: internal error: panic in %s: %v", plugin, command, v),
						"a bug in the plugin; its stderr has the stack")
				}
			}()
			return f(args)
		}
	}
	return skel.CNIFuncs{
		Add:    guard("ADD", funcs.Add),
		Del:    guard("DEL", funcs.Del),
		Check:  guard("CHECK", funcs.Check),
		GC:     guard("GC", funcs.GC),
		Status: guard("STATUS", funcs.Status),
	}
}
