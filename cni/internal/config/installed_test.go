package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInstalled(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "05-other.conf", `{"cniVersion":"1.0.0","name":"x","type":"bridge"}`)
	write(t, dir, "10-calico.conflist", `{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"calico"},{"type":"asm-cni","kubeconfig":"/k","exclude_namespaces":["a"],"iptables_backend":"legacy"}]}`)
	write(t, dir, "99-broken.conflist", `{`)
	c, file, err := Installed(dir)
	if err != nil || filepath.Base(file) != "10-calico.conflist" || c.Kubeconfig != "/k" || c.IptablesBackend != "legacy" ||
		c.CNIVersion != "1.0.0" || c.Name != "k8s-pod-network" || len(c.ExcludeNamespaces) != 1 {
		t.Fatalf("got %+v %s %v", c, file, err)
	}

	bad := t.TempDir()
	write(t, bad, "10.conflist", `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"asm-cni","iptables_backend":"ebpf"}]}`)
	if _, _, err := Installed(bad); err == nil || !strings.Contains(err.Error(), "iptables_backend") {
		t.Fatalf("invalid entry: want the key named, got %v", err)
	}
	if _, _, err := Installed(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no CNI config") {
		t.Fatalf("empty dir: got %v", err)
	}
	if _, _, err := Installed(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing dir: want an error")
	}
}
