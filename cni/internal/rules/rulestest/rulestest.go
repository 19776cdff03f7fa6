// Package rulestest locates the Istio oracle data for tests of the plugin's packages.
package rulestest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

// oracleRel is where the oracles live relative to a directory beside the repository (/work/main →
// /work/shared/oracles/istio).
var oracleRel = filepath.Join("shared", "oracles", "istio")

// OracleDir returns the Istio oracle directory: $ASM_ORACLES when set, else shared/oracles/istio found by
// walking up from this source file (and from the working directory). When it cannot be found the test is
// skipped locally and fails under CI=true.
func OracleDir(t testing.TB) string {
	t.Helper()
	dir, ok := FindOracleDir()
	testenv.Require(t, ok, "Istio oracle directory not found (set ASM_ORACLES, or place shared/oracles/istio beside the repository)")
	return dir
}

// FindOracleDir is OracleDir without the test policy.
func FindOracleDir() (string, bool) {
	if env := os.Getenv("ASM_ORACLES"); env != "" {
		return env, isDir(env)
	}
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			if cand := filepath.Join(dir, oracleRel); isDir(cand) {
				return cand, true
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	return "", false
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

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
