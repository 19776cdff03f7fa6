// Command asm-cni is the chained CNI plugin (when the runtime runs it with CNI_COMMAND set) and the admin's
// command line otherwise (asm-cni render -f POD.yaml, asm-cni version).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/asm-cni/asm-cni/cni/internal/cli"
	"github.com/asm-cni/asm-cni/cni/internal/plugin"
	"github.com/asm-cni/asm-cni/cni/internal/recovery"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// commands are the CNI commands; only a test build (tag asmcni_testpanic, testpanic.go) replaces them.
var commands = plugin.Funcs

func main() {
	cli.Version = version
	if os.Getenv("CNI_COMMAND") == "" {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	// A panic becomes a CNI error naming the plugin; its stack goes to stderr, never to stdout.
	skel.PluginMainFuncs(recovery.Wrap(commands(), "asm-cni", os.Stderr), plugin.SupportedVersions, "asm-cni "+version)
}
