// Package rulestest locates the Istio oracle data for tests of the plugin's packages.
package rulestest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

// OracleDir returns the Istio oracle directory (testenv.OracleDir); when it is not there the test is skipped
// locally and fails under CI=true.
func OracleDir(t testing.TB) string {
	t.Helper()
	return testenv.RequireOracleDir(t)
}

// ModuleRoot returns the cni module root (the directory holding go.mod), found from this source file.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the rulestest source file")
	}
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if parent := filepath.Dir(dir); parent == dir {
			t.Fatal("go.mod not found above " + file)
		}
	}
}
