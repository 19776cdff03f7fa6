package netns

import (
	"strings"
	"testing"
)

func TestHasGlobalIPv6(t *testing.T) {
	cases := []struct {
		name, in string
		want     bool
	}{
		{"none", "", false},
		{"loopback only", "00000000000000000000000000000001 01 80 10 80       lo\n", false},
		{"link-local only", "fe80000000000000e0e1fffffe2f6a5e 02 40 20 80     eth0\n", false},
		{"global", "fe80000000000000e0e1fffffe2f6a5e 02 40 20 80     eth0\n20010db8000000000000000000000002 02 40 00 80     eth0\n", true},
		{"short line ignored", "garbage\n", false},
	}
	for _, c := range cases {
		got, err := hasGlobalIPv6(strings.NewReader(c.in))
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestExistsAndNotHost(t *testing.T) {
	if Exists("") || Exists("/nonexistent/netns") {
		t.Fatal("Exists must be false for a missing path")
	}
	if !Exists("/proc/self/ns/net") {
		t.Fatal("Exists must be true for the process's own namespace")
	}
	if err := NotHost("/proc/self/ns/net"); err != ErrHostNetNS {
		t.Fatalf("NotHost(own namespace) = %v, want ErrHostNetNS", err)
	}
	if err := NotHost("/nonexistent/netns"); err == nil {
		t.Fatal("NotHost must fail for a missing path")
	}
}
