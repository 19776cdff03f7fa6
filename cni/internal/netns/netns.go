// Package netns holds the plugin's checks on a pod's network namespace: that it exists, that it is not the
// namespace the plugin itself runs in (the node's: never to be touched), and whether the pod has IPv6 addresses.
package netns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrHostNetNS is returned when CNI_NETNS is the plugin's own (the node's) network namespace.
var ErrHostNetNS = errors.New("CNI_NETNS is the node's own network namespace; asm-cni only programs pod namespaces")

// Exists reports whether path names a network namespace that still exists (DEL may come after it is gone).
func Exists(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// A bind-mounted netns is on nsfs; /proc/PID/ns/net is a magic link on proc that resolves to nsfs too.
	return st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC
}

// NotHost fails with ErrHostNetNS when path is the calling process's network namespace.
func NotHost(path string) error {
	var target, self unix.Stat_t
	if err := unix.Stat(path, &target); err != nil {
		return fmt.Errorf("cannot stat network namespace %s: %w", path, err)
	}
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return fmt.Errorf("cannot stat the plugin's own network namespace: %w", err)
	}
	if target.Dev == self.Dev && target.Ino == self.Ino {
		return ErrHostNetNS
	}
	return nil
}

// ThreadHasGlobalIPv6 reports whether the network namespace of the calling OS thread (call it inside
// ns.WithNetNSPath) has an IPv6 address of global scope on an interface other than lo. Link-local addresses
// exist on every IPv6-enabled interface and do not make a pod an IPv6 pod.
func ThreadHasGlobalIPv6() (bool, error) {
	f, err := os.Open("/proc/thread-self/net/if_inet6")
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // IPv6 disabled in this kernel or namespace
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	return hasGlobalIPv6(f)
}

// hasGlobalIPv6 reads the if_inet6 format: address ifindex prefixlen scope flags name.
func hasGlobalIPv6(r io.Reader) (bool, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		if f[5] != "lo" && f[3] == "00" {
			return true, nil
		}
	}
	return false, sc.Err()
}
