// Package nettest holds helpers for the plugin's namespace tests: network namespaces that are removed when
// the test ends, commands run inside them, iptables-save normalisation and the oracle goldens' location.
// Nothing here touches the machine's own network namespace.
package nettest

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string { return testenv.RepoRoot() }

// RequireOracles skips (locally) or fails (CI) when the oracle data is not there (testenv.OracleDir).
func RequireOracles(t testing.TB) string {
	t.Helper()
	return testenv.RequireOracleDir(t)
}

// RequireTools needs root and the iptables / iproute2 tools of test/setup/system-deps.sh.
func RequireTools(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, c := range []string{"iptables-nft-restore", "iptables-nft-save", "ip"} {
		_, err := exec.LookPath(c)
		testenv.Require(t, err == nil, c+" not installed (run test/setup/system-deps.sh)")
	}
}

// NewNS creates a network namespace that is closed and unmounted when the test ends. lo is brought up.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = testutils.UnmountNS(n)
	})
	Run(t, n, "ip", "link", "set", "lo", "up")
	return n
}

// InNS runs f with the calling thread inside n.
func InNS(t testing.TB, n ns.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// Output runs a command inside n and returns its stdout and error (stderr folded into the error).
func Output(n ns.NetNS, name string, args ...string) (string, error) {
	var out string
	var runErr error
	err := n.Do(func(ns.NetNS) error {
		c := exec.Command(name, args...)
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		runErr = c.Run()
		out = o.String()
		if runErr != nil {
			runErr = &CmdError{Cmd: name + " " + strings.Join(args, " "), Err: runErr, Stderr: e.String()}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return out, runErr
}

// CmdError is a failed command with its stderr.
type CmdError struct {
	Cmd, Stderr string
	Err         error
}

func (e *CmdError) Error() string {
	return e.Cmd + ": " + e.Err.Error() + ": " + strings.TrimSpace(e.Stderr)
}

// Run runs a command inside n and fails the test when it fails.
func Run(t testing.TB, n ns.NetNS, name string, args ...string) string {
	t.Helper()
	out, err := Output(n, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// Normalize drops comment lines and blank lines and zeroes the counters of iptables-save output.
func Normalize(save string) string {
	var b strings.Builder
	for _, l := range strings.Split(save, "\n") {
		l = strings.TrimRight(l, " \r")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		b.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
	}
	return b.String()
}

// Save returns the normalised iptables-save (or ip6tables-save with v6) of n for a backend ("nft"/"legacy").
func Save(t testing.TB, n ns.NetNS, backend string, v6 bool) string {
	t.Helper()
	cmd := "iptables-" + backend + "-save"
	if v6 {
		cmd = "ip6tables-" + backend + "-save"
	}
	return Normalize(Run(t, n, cmd))
}

// ReadFile reads a file or fails the test.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
