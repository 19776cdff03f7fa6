package binary_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// runRaw runs a plugin binary with a CNI ADD environment, without a network namespace: the calls here end before
// the plugin would touch one.
func runRaw(t *testing.T, binary string, env ...string) (stdout, stderr string, exit int) {
	t.Helper()
	c := exec.Command(binary)
	c.Env = append([]string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=0123456789ab", "CNI_NETNS=/var/run/netns/none",
		"CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni", "PATH=" + os.Getenv("PATH")}, env...)
	c.Stdin = strings.NewReader(`{"cniVersion":"1.0.0","name":"net","type":"asm-cni"}`)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", binary, err)
	}
	if ee != nil {
		exit = ee.ExitCode()
	}
	return so.String(), se.String(), exit
}

// A panic in a command is a CNI error result naming the plugin (code 999), never a Go stack on stdout.
func TestPanicIsACNIError(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "asm-cni")
	build := exec.Command("go", "build", "-tags", "asmcni_testpanic", "-o", bin, "./cmd/asm-cni")
	build.Dir = filepath.Join(nettest.RepoRoot(), "cni")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags asmcni_testpanic: %v\n%s", err, out)
	}
	stdout, stderr, exit := runRaw(t, bin, "ASM_CNI_TEST_PANIC=1")
	if exit == 0 {
		t.Fatalf("exit 0 after a panic; stdout %q", stdout)
	}
	var e nettest.CNIError
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("stdout is not a CNI error JSON (%v): %q", err, stdout)
	}
	if e.Code != 999 || !strings.Contains(e.Msg, "asm-cni") || !strings.Contains(e.Msg, "panic in ADD") {
		t.Fatalf("want code 999 naming asm-cni and the panic: %+v", e)
	}
	if strings.Contains(stdout, "goroutine") {
		t.Fatalf("a Go stack on stdout: %q", stdout)
	}
	if !strings.Contains(stderr, "goroutine") || !strings.Contains(stderr, "test panic requested") {
		t.Fatalf("the stack belongs on stderr: %q", stderr)
	}
}

// The shipped binary has no panic switch: the same environment is an ordinary config error.
func TestShippedBinaryIgnoresThePanicSwitch(t *testing.T) {
	stdout, _, exit := runRaw(t, nettest.Binary(t), "ASM_CNI_TEST_PANIC=1")
	var e nettest.CNIError
	if err := json.Unmarshal([]byte(stdout), &e); err != nil || exit == 0 {
		t.Fatalf("want a CNI error, got exit %d stdout %q", exit, stdout)
	}
	if e.Code == 999 || strings.Contains(e.Msg, "panic") {
		t.Fatalf("the shipped binary panicked on request: %+v", e)
	}
}
