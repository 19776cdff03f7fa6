package cri

import (
	"strings"
	"testing"
)

func TestParsePods(t *testing.T) {
	got, err := ParsePods([]byte(`{"items":[{"id":"abc","metadata":{"name":"web","namespace":"apps","uid":"u1"},"state":"SANDBOX_READY"}]}`))
	if err != nil || len(got) != 1 || got[0] != (Sandbox{ID: "abc", Namespace: "apps", Name: "web", UID: "u1"}) {
		t.Fatalf("got %+v %v", got, err)
	}
	if _, err := ParsePods([]byte("not json")); err == nil || !strings.Contains(err.Error(), "crictl pods") {
		t.Fatalf("want an error naming crictl pods, got %v", err)
	}
}

func TestParseNetNS(t *testing.T) {
	for _, c := range []struct{ name, in, want, err string }{
		{"containerd spec path", `{"info":{"pid":42,"runtimeSpec":{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"}]}}}}`, "/var/run/netns/cni-1", ""},
		{"pid only", `{"info":{"pid":42}}`, "/proc/42/ns/net", ""},
		{"host network", `{"status":{"linux":{"namespaces":{"options":{"network":"NODE"}}}},"info":{"pid":42}}`, "", ""},
		{"no verbose info", `{"status":{}}`, "", "names no network namespace"},
		{"not json", `<`, "", "crictl inspectp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseNetNS([]byte(c.in))
			if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("got %q %v, want %q %q", got, err, c.want, c.err)
			}
		})
	}
}

func TestMissingCrictl(t *testing.T) {
	_, err := Client{Crictl: "/nonexistent/crictl", Endpoint: DefaultEndpoint}.Ready("", "")
	if err == nil || !strings.Contains(err.Error(), "crictl not found") {
		t.Fatalf("want crictl not found, got %v", err)
	}
}
