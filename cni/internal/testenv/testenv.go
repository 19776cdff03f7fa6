// Package testenv holds the skip policy shared by every test tier: locally a test whose prerequisite is
// missing skips with a printed reason; under CI=true the same gap is a failure, never a skip.
package testenv

import (
	"os"
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
