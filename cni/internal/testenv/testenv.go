// Package testenv holds the skip policy shared by every test tier: locally a test whose prerequisite is
// missing skips with a printed reason; under CI=true the same gap is a failure, never a skip.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where no tier may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips (locally) or fails (under CI) the test when ok is false, naming the missing prerequisite.
func Require(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", reason)
	}
	t.Skipf("skipped: %s", reason)
}

// RequireRoot needs uid 0, for tests that create network namespaces and program iptables.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "needs root to create network namespaces")
}

// RepoRoot is the repository's top directory (this file is cni/internal/testenv/testenv.go).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// OracleDir is where the Istio oracles are: $ASM_ORACLES, else ../shared/oracles/istio beside the repository. The
// one lookup of the Go side (the TypeScript side's is test/harness/oracles.ts).
func OracleDir() string {
	if d := os.Getenv("ASM_ORACLES"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared", "oracles", "istio")
}

// RequireOracleDir is OracleDir for a test that needs the oracles: it skips (locally) or fails (CI) when they are
// not there.
func RequireOracleDir(t testing.TB) string {
	t.Helper()
	d := OracleDir()
	info, err := os.Stat(filepath.Join(d, "iptables"))
	Require(t, err == nil && info.IsDir(), "Istio oracle data not found at "+d+" (set ASM_ORACLES)")
	return d
}
