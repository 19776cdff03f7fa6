package apply_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

type detection struct {
	b      apply.Backend
	cached bool
	note   string
}

func detectIn(t *testing.T, node ns.NetNS, c apply.BackendCache, mode string) detection {
	t.Helper()
	var d detection
	nettest.InNS(t, node, func() error {
		var err error
		d.b, d.cached, d.note, err = c.Detect(mode)
		return err
	})
	return d
}

func cacheFile(dir string) string { return filepath.Join(dir, "iptables-backend.json") }

// The node's flavour is detected once and then read from the cache file until it expires; a corrupt, stale,
// foreign (another node namespace) or dangling entry is never used but replaced by a fresh detection.
func TestBackendCache(t *testing.T) {
	nettest.RequireTools(t)
	legacyNode := nettest.NewNS(t)
	nettest.Run(t, legacyNode, "iptables-legacy", "-w", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT")
	dir := filepath.Join(t.TempDir(), "state")
	now := time.Now()
	c := apply.BackendCache{Dir: dir, TTL: time.Minute, Now: func() time.Time { return now }}

	d := detectIn(t, legacyNode, c, "auto")
	if d.b.Name != "legacy" || d.cached || d.note != "" {
		t.Fatalf("first detection: %+v", d)
	}
	if _, err := os.Stat(cacheFile(dir)); err != nil {
		t.Fatalf("no cache file written: %v", err)
	}
	// The node changes its mind (an nft hint appears): within the TTL the cached answer stands.
	nettest.Run(t, legacyNode, "iptables-nft", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT")
	now = now.Add(30 * time.Second)
	d = detectIn(t, legacyNode, c, "auto")
	if d.b.Name != "legacy" || !d.cached || !strings.Contains(d.b.Reason, "cached") || !strings.HasSuffix(d.b.Restore4, "iptables-legacy-restore") {
		t.Fatalf("within the TTL: %+v", d)
	}
	// Expired: detected again, and the new answer is stored.
	now = now.Add(time.Minute)
	d = detectIn(t, legacyNode, c, "auto")
	if d.b.Name != "nft" || d.cached || !strings.Contains(d.note, "expired") {
		t.Fatalf("after the TTL: %+v", d)
	}
	if d = detectIn(t, legacyNode, c, "auto"); d.b.Name != "nft" || !d.cached {
		t.Fatalf("re-detection not cached: %+v", d)
	}

	// Another node namespace (a reused path, a reused inode: the cookie differs) never takes the entry.
	otherNode := nettest.NewNS(t)
	nettest.Run(t, otherNode, "iptables-legacy", "-w", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT")
	d = detectIn(t, otherNode, c, "auto")
	if d.b.Name != "legacy" || d.cached || !strings.Contains(d.note, "another network namespace") {
		t.Fatalf("other node namespace: %+v", d)
	}

	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(cacheFile(dir), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(f func(m map[string]any)) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(nettest.ReadFile(t, cacheFile(dir))), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		write(string(b))
	}
	for _, bad := range []struct {
		name, note string
		spoil      func()
	}{
		{"corrupt", "corrupt", func() { write(`{"node": "x", "detec`) }},
		{"empty", "corrupt", func() { write(``) }},
		{"clock went back", "expired", func() {
			edit(func(m map[string]any) { m["detected"] = now.Add(time.Hour).UTC().Format(time.RFC3339Nano) })
		}},
		{"unknown flavour", "corrupt", func() {
			edit(func(m map[string]any) { m["backend"].(map[string]any)["Name"] = "ebpf" })
		}},
		{"command gone", "missing command", func() {
			edit(func(m map[string]any) { m["backend"].(map[string]any)["Restore6"] = "/nonexistent/ip6tables-restore" })
		}},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if d := detectIn(t, otherNode, c, "auto"); !d.cached {
				t.Fatalf("setup: entry not cached: %+v", d)
			}
			bad.spoil()
			d := detectIn(t, otherNode, c, "auto")
			if d.b.Name != "legacy" || d.cached || !strings.Contains(d.note, bad.note) {
				t.Fatalf("got %+v, want a fresh detection noting %q", d, bad.note)
			}
			if d := detectIn(t, otherNode, c, "auto"); !d.cached || d.b.Name != "legacy" {
				t.Fatalf("the entry was not rewritten: %+v", d)
			}
		})
	}

	// Forced flavours do not look at the cache; a cache that cannot be written still gives an answer.
	if d := detectIn(t, otherNode, c, "nft"); d.b.Name != "nft" || d.cached {
		t.Fatalf("forced nft: %+v", d)
	}
	blocked := apply.BackendCache{Dir: filepath.Join(cacheFile(dir), "sub")}
	if d := detectIn(t, otherNode, blocked, "auto"); d.b.Name != "legacy" || !strings.Contains(d.note, "not cached") {
		t.Fatalf("unwritable cache dir: %+v", d)
	}
	if d := detectIn(t, otherNode, apply.BackendCache{}, "auto"); d.b.Name != "legacy" || d.cached || d.note != "" {
		t.Fatalf("cache off: %+v", d)
	}
}

// Plugin processes of one node write the cache at the same time: readers only ever see a whole entry, and no
// temporary file is left behind.
func TestBackendCacheConcurrentWriters(t *testing.T) {
	nettest.RequireTools(t)
	dir := t.TempDir()
	c := apply.BackendCache{Dir: dir}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 20; i++ {
		// Each writer stores from a node namespace of its own (the entry differs by node id).
		n := nettest.NewNS(t)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				if err := n.Do(func(ns.NetNS) error { _, _, _, err := c.Detect("auto"); return err }); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				data, err := os.ReadFile(cacheFile(dir))
				if os.IsNotExist(err) {
					continue
				}
				var m map[string]any
				if err == nil {
					err = json.Unmarshal(data, &m)
				}
				if err != nil {
					errs <- fmt.Errorf("reader saw %q: %v", data, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("want only the cache file in %s, got %v", dir, entries)
	}
}
