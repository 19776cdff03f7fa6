// Command asm-cni is the chained CNI plugin (when the runtime runs it with CNI_COMMAND set) and the admin's
// command line otherwise (asm-cni render -f POD.yaml, asm-cni version).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/asm-cni/asm-cni/cni/internal/cli"
	"github.com/asm-cni/asm-cni/cni/internal/plugin"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	cli.Version = version
	if os.Getenv("CNI_COMMAND") == "" {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	skel.PluginMainFuncs(plugin.Funcs(), plugin.SupportedVersions, "asm-cni "+version)
}
