//go:build asmcni_testpanic

package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/asm-cni/asm-cni/cni/internal/plugin"
)

// Test builds only (go build -tags asmcni_testpanic): ASM_CNI_TEST_PANIC=1 makes ADD panic, so a test can check
// through the binary what the runtime sees when the plugin has a bug. The shipped binary has no such switch.
func init() {
	commands = func() skel.CNIFuncs {
		funcs := plugin.Funcs()
		if os.Getenv("ASM_CNI_TEST_PANIC") == "1" {
			funcs.Add = func(*skel.CmdArgs) error { panic("test panic requested by ASM_CNI_TEST_PANIC") }
		}
		return funcs
	}
}
