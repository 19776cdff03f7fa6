package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asm-cni/asm-cni/cni/internal/atomicfile"
)

// The node's iptables flavour hardly ever changes, but detecting it costs an exec of iptables-nft-save (two on
// nodes with legacy tables), about as much as programming a whole pod. So auto-detection is remembered for a
// short time in a small file under the plugin's state directory, shared by all plugin processes of the node.

// DefaultStateDir is where the plugin keeps its node-level cache (tmpfs on current distributions: gone at reboot).
const DefaultStateDir = "/var/run/asm-cni"

// BackendCacheTTL bounds how long a detected flavour is reused: a node switched to the other flavour gets pods
// of the new one after at most this long.
const BackendCacheTTL = time.Minute

const backendCacheFile = "iptables-backend.json"

// backendCache is the file's content. Node identifies the network namespace (and boot) the detection ran in,
// so a file written from another namespace (tests run "nodes" in namespaces of their own) is never reused.
type backendCache struct {
	Node     string    `json:"node"`
	Detected time.Time `json:"detected"`
	Backend  Backend   `json:"backend"`
}

// BackendCache remembers auto-detection results in Dir. The zero Dir disables it.
type BackendCache struct {
	Dir string
	TTL time.Duration
	Now func() time.Time // nil: time.Now
}

func (c BackendCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Detect returns the backend for mode: forced modes and a disabled cache go straight to DetectBackend; in auto
// mode a fresh, valid cache entry of this node is used, otherwise the node is read and the result stored.
// cached says whether the answer came from the file; note explains a cache that could not be used or written
// (for the debug log), empty when all went well.
func (c BackendCache) Detect(mode string) (b Backend, cached bool, note string, err error) {
	if (mode != "" && mode != "auto") || c.Dir == "" {
		b, err = DetectBackend(mode)
		return b, false, "", err
	}
	node, idErr := nodeID()
	if idErr != nil {
		b, err = DetectBackend(mode)
		return b, false, "backend cache off: " + idErr.Error(), err
	}
	path := filepath.Join(c.Dir, backendCacheFile)
	hit, why := c.load(path, node)
	if hit != nil {
		return *hit, true, "", nil
	}
	b, err = DetectBackend(mode)
	if err != nil {
		return b, false, why, err
	}
	if werr := c.store(path, backendCache{Node: node, Detected: c.now().UTC(), Backend: b}); werr != nil {
		why = strings.TrimPrefix(why+"; ", "; ") + "not cached: " + werr.Error()
	}
	return b, false, why, nil
}

// load returns the cached backend, or nil and why not.
func (c BackendCache) load(path, node string) (*Backend, string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ""
	}
	if err != nil {
		return nil, "backend cache unreadable: " + err.Error()
	}
	var e backendCache
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, "backend cache corrupt: " + err.Error()
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = BackendCacheTTL
	}
	age := c.now().Sub(e.Detected)
	switch {
	case e.Node != node:
		return nil, "backend cache is of another network namespace or boot"
	case age > ttl || age < -5*time.Second: // expired, or the clock went back
		return nil, fmt.Sprintf("backend cache expired (%s old)", age.Round(time.Second))
	case e.Backend.Name != "nft" && e.Backend.Name != "legacy":
		return nil, "backend cache corrupt: flavour " + e.Backend.Name
	}
	for _, p := range []string{e.Backend.Restore4, e.Backend.Save4, e.Backend.Cmd4, e.Backend.Restore6, e.Backend.Save6, e.Backend.Cmd6} {
		if st, err := os.Stat(p); p == "" || !filepath.IsAbs(p) || err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return nil, "backend cache names a missing command " + p
		}
	}
	e.Backend.Reason += fmt.Sprintf("; cached %s ago", age.Round(time.Millisecond))
	return &e.Backend, ""
}

// store writes the entry atomically: a temporary file renamed over the old one, so concurrent plugin processes
// only ever read a whole entry (the last writer wins; all write the same answer).
func (c BackendCache) store(path string, e backendCache) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}

// nodeID names the network namespace the plugin runs in (the node's) uniquely for this boot: the kernel's
// netns cookie, which is never reused (unlike namespace inode numbers), plus the boot id.
func nodeID() (string, error) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the boot id: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return "", fmt.Errorf("network namespace cookie (SO_NETNS_COOKIE, Linux 5.14+): %w", err)
	}
	return fmt.Sprintf("%s/netns-%d", strings.TrimSpace(string(boot)), cookie), nil
}
