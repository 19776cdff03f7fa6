// Package chain_test runs asm-cni the way a node runs it: a conflist of Debian's bridge + host-local and
// asm-cni (with loopback) executed by libcni inside a "node" network namespace of the test's own, then real
// TCP traffic through the pod's redirection.
package chain_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/testenv"
	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

const token = "chain-token"

// hangWait bounds waiting for a connection or an answer: it only catches a hang, never a slow machine.
const hangWait = 60 * time.Second

func sysctl(t *testing.T, n ns.NetNS, kv ...string) {
	t.Helper()
	nettest.Run(t, n, "sysctl", append([]string{"-q", "-w"}, kv...)...)
}

func ipv6Supported() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}

// topology: node namespace (bridge asmbr0 192.0.2.1/24 + 2001:db8:1::1/64 from the bridge plugin; veth to the
// remote host 198.51.100.1/24 + 2001:db8:2::1/64) and a remote test host (198.51.100.2, .3, 2001:db8:2::2, ::3).
type topology struct {
	node, remote ns.NetNS
	v6           bool
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	tp := &topology{node: nettest.NewNS(t), remote: nettest.NewNS(t), v6: ipv6Supported()}
	if !tp.v6 {
		t.Logf("IPv6 parts skipped: the kernel has no IPv6 (/proc/sys/net/ipv6 missing)")
	}
	sysctl(t, tp.node, "net.ipv4.ip_forward=1")
	if tp.v6 {
		for _, n := range []ns.NetNS{tp.node, tp.remote} {
			sysctl(t, n, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		}
		sysctl(t, tp.node, "net.ipv6.conf.all.forwarding=1")
	}
	nettest.InNS(t, tp.node, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "vnode"
		veth := &netlink.Veth{LinkAttrs: la, PeerName: "vremote", PeerNamespace: netlink.NsFd(int(tp.remote.Fd()))}
		return netlink.LinkAdd(veth)
	})
	nettest.Run(t, tp.node, "ip", "addr", "add", "198.51.100.1/24", "dev", "vnode")
	nettest.Run(t, tp.node, "ip", "link", "set", "vnode", "up")
	nettest.Run(t, tp.remote, "ip", "addr", "add", "198.51.100.2/24", "dev", "vremote")
	nettest.Run(t, tp.remote, "ip", "addr", "add", "198.51.100.3/24", "dev", "vremote")
	nettest.Run(t, tp.remote, "ip", "link", "set", "vremote", "up")
	nettest.Run(t, tp.remote, "ip", "route", "add", "default", "via", "198.51.100.1")
	if tp.v6 {
		nettest.Run(t, tp.node, "ip", "addr", "add", "2001:db8:2::1/64", "dev", "vnode", "nodad")
		nettest.Run(t, tp.remote, "ip", "addr", "add", "2001:db8:2::2/64", "dev", "vremote", "nodad")
		nettest.Run(t, tp.remote, "ip", "addr", "add", "2001:db8:2::3/64", "dev", "vremote", "nodad")
		nettest.Run(t, tp.remote, "ip", "-6", "route", "add", "default", "via", "2001:db8:2::1")
	}
	return tp
}

func (tp *topology) conflist(t *testing.T, kubeconfig string) []byte {
	ranges := `[{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}]`
	if tp.v6 {
		ranges += `, [{"subnet": "2001:db8:1::/64", "gateway": "2001:db8:1::1"}]`
	}
	return []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "bridge", "bridge": "asmbr0", "isGateway": true, "isDefaultGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [%s]}},
    {"type": "asm-cni", "kubeconfig": %q, "exclude_namespaces": ["kube-system", "istio-system"],
     "log_level": "info", "log_file": %q, "api_timeout": "5s"}
  ]
}`, filepath.Join(t.TempDir(), "ipam"), ranges, kubeconfig, filepath.Join(t.TempDir(), "asm-cni.log")))
}

// conn is one accepted connection: which listener got it, the client's tag, and SO_ORIGINAL_DST.
type conn struct {
	listener, tag, origDst, peer, local string
}

// serve accepts on l and reports every connection on ch.
func serve(l net.Listener, name string, ch chan<- conn) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(hangWait))
			tag, _ := bufio.NewReader(c).ReadString('\n')
			ch <- conn{listener: name, tag: strings.TrimSpace(tag), origDst: originalDst(c), peer: c.RemoteAddr().String(), local: c.LocalAddr().String()}
		}(c)
	}
}

// originalDst reads SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6); "" when the connection was not NATed.
func originalDst(c net.Conn) string {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return ""
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return ""
	}
	v4 := tc.LocalAddr().(*net.TCPAddr).IP.To4() != nil
	var out string
	_ = raw.Control(func(fd uintptr) {
		if v4 {
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				return
			}
			port := binary.BigEndian.Uint16(m.Multiaddr[2:4])
			out = net.JoinHostPort(net.IP(m.Multiaddr[4:8]).String(), fmt.Sprint(port))
			return
		}
		info, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, unix.SO_ORIGINAL_DST)
		if err != nil {
			return
		}
		port := binary.BigEndian.Uint16((*[2]byte)(unsafePort(&info.Addr))[:])
		out = net.JoinHostPort(net.IP(info.Addr.Addr[:]).String(), fmt.Sprint(port))
	})
	// A connection that was not redirected reports its own local address (no conntrack NAT): treat as none.
	if out == tc.LocalAddr().String() {
		return ""
	}
	return out
}

func listen(t *testing.T, n ns.NetNS, network, addr, name string, ch chan<- conn) {
	t.Helper()
	var l net.Listener
	nettest.InNS(t, n, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	t.Cleanup(func() { l.Close() })
	go serve(l, name, ch)
}

// dial connects from inside n and sends tag.
func dial(t *testing.T, n ns.NetNS, addr, tag string) {
	t.Helper()
	nettest.InNS(t, n, func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return fmt.Errorf("dial %s (%s): %w", addr, tag, err)
		}
		defer c.Close()
		_, err = fmt.Fprintln(c, tag)
		return err
	})
}

// dialAs connects as uid/gid through bash's /dev/tcp (a process of its own, so the owner match sees that uid).
func dialAs(t *testing.T, n ns.NetNS, uid, gid uint32, host, port, tag string) {
	t.Helper()
	nettest.InNS(t, n, func() error {
		c := exec.Command("bash", "-c", fmt.Sprintf("echo %s > /dev/tcp/%s/%s", tag, host, port))
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: true}}
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("dial as uid %d to %s:%s: %v: %s", uid, host, port, err, out)
		}
		return nil
	})
}

func expect(t *testing.T, ch <-chan conn, tag, listener, origDst string) {
	t.Helper()
	timeout := time.After(hangWait)
	for {
		select {
		case c := <-ch:
			if c.tag != tag {
				t.Errorf("unexpected connection %+v while waiting for %s", c, tag)
				continue
			}
			if c.listener != listener || c.origDst != origDst {
				t.Fatalf("%s: landed on %s with original destination %q; want %s with %q", tag, c.listener, c.origDst, listener, origDst)
			}
			return
		case <-timeout:
			t.Fatalf("%s: no connection arrived (want %s)", tag, listener)
		}
	}
}

// setup checks the prerequisites and builds the topology with a stand-in API server in the node namespace.
func setup(t *testing.T) (*topology, *nettest.API, string) {
	t.Helper()
	nettest.RequireTools(t)
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		_, err := os.Stat("/usr/lib/cni/" + p)
		testenv.Require(t, err == nil, "/usr/lib/cni/"+p+" missing (Debian containernetworking-plugins; run test/setup/system-deps.sh)")
	}
	tp := newTopology(t)
	api := nettest.StartAPI(t, tp.node, token)
	return tp, api, nettest.Kubeconfig(t, api.URL, api.CAData, token, "")
}

// chain is the runtime side: libcni with Debian's plugins and the asm-cni binary, the conflist and loopback.
type chain struct {
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	lo   *libcni.NetworkConfig
	tp   *topology
}

func newChain(t *testing.T, tp *topology, kubeconfig string) *chain {
	t.Helper()
	var err error
	c := &chain{tp: tp, cni: libcni.NewCNIConfigWithCacheDir([]string{"/usr/lib/cni", nettest.PluginDir(t)}, t.TempDir(), nil)}
	if c.list, err = libcni.ConfListFromBytes(tp.conflist(t, kubeconfig)); err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the loopback plugin runs alone, as a runtime runs it: a single-plugin config
	if c.lo, err = libcni.ConfFromBytes([]byte(`{"cniVersion": "1.0.0", "name": "cni-loopback", "type": "loopback"}`)); err != nil {
		t.Fatal(err)
	}
	return c
}

// add runs loopback and then the conflist for a pod, as the runtime does, from inside the node namespace.
func (c *chain) add(t *testing.T, pod ns.NetNS, namespace, name string) (*libcni.RuntimeConf, *types100.Result) {
	t.Helper()
	if c.tp.v6 {
		sysctl(t, pod, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	rt := &libcni.RuntimeConf{ContainerID: "chain-" + name, NetNS: pod.Path(), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", namespace}, {"K8S_POD_NAME", name}}}
	var result *types100.Result
	ctx := context.Background()
	nettest.InNS(t, c.tp.node, func() error {
		if _, err := c.cni.AddNetwork(ctx, c.lo, rt); err != nil {
			return fmt.Errorf("loopback ADD: %w", err)
		}
		r, err := c.cni.AddNetworkList(ctx, c.list, rt)
		if err != nil {
			return fmt.Errorf("chain ADD: %w", err)
		}
		result, err = types100.NewResultFromResult(r)
		return err
	})
	return rt, result
}

// addrs returns the pod's IPv4 and IPv6 addresses from the chain's result, checking they are in the ranges.
func addrs(t *testing.T, tp *topology, result *types100.Result) (v4, v6 string) {
	t.Helper()
	for _, ip := range result.IPs {
		if ip.Address.IP.To4() != nil {
			v4 = ip.Address.IP.String()
		} else {
			v6 = ip.Address.IP.String()
		}
	}
	if !strings.HasPrefix(v4, "192.0.2.") || (tp.v6 && !strings.HasPrefix(v6, "2001:db8:1:")) {
		t.Fatalf("the chain's result lacks the pod's addresses: %+v", result.IPs)
	}
	return v4, v6
}

func TestChainAndTraffic(t *testing.T) {
	tp, api, kc := setup(t)
	api.SetPod(t, "shop", "web-0", nettest.Pod("shop", "web-0", map[string]string{
		"traffic.sidecar.istio.io/excludeOutboundPorts":    "8081",
		"traffic.sidecar.istio.io/excludeOutboundIPRanges": "198.51.100.3/32,2001:db8:2::3/128",
		"traffic.sidecar.istio.io/excludeInboundPorts":     "9090",
	}, nil))

	pod := nettest.NewNS(t)
	env := newChain(t, tp, kc)
	rt, result := env.add(t, pod, "shop", "web-0")
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = tp.node.Do(func(ns.NetNS) error { return env.cni.DelNetworkList(context.Background(), env.list, rt) })
		}
	})
	cni, list, ctx := env.cni, env.list, context.Background()
	podIP4, podIP6 := addrs(t, tp, result)
	if out := nettest.Run(t, pod, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, podIP4+"/24") {
		t.Fatalf("pod eth0 lacks %s:\n%s", podIP4, out)
	}
	var backend string
	nettest.InNS(t, tp.node, func() error {
		b, err := apply.DetectBackend("auto")
		backend = b.Name
		return err
	})
	if s := nettest.Save(t, pod, backend, false); !strings.Contains(s, "-A OUTPUT -j ISTIO_OUTPUT") || !strings.Contains(s, "198.51.100.3/32") {
		t.Fatalf("pod lacks its IPv4 rules:\n%s", s)
	}
	if tp.v6 {
		if s := nettest.Save(t, pod, backend, true); !strings.Contains(s, "-A OUTPUT -j ISTIO_OUTPUT") {
			t.Fatalf("pod with an IPv6 address lacks its IPv6 rules:\n%s", s)
		}
	}
	nettest.InNS(t, tp.node, func() error { return cni.CheckNetworkList(ctx, list, rt) })

	// The proxy's stand-ins in the pod, the app's excluded inbound port, and the remote test host's servers.
	events := make(chan conn, 32)
	listen(t, pod, "tcp4", "0.0.0.0:15001", "proxy-outbound", events)
	listen(t, pod, "tcp4", "0.0.0.0:15006", "proxy-inbound", events)
	listen(t, pod, "tcp4", "0.0.0.0:9090", "app-9090", events)
	listen(t, tp.remote, "tcp4", "0.0.0.0:8080", "remote-8080", events)
	listen(t, tp.remote, "tcp4", "0.0.0.0:8081", "remote-8081", events)
	if tp.v6 {
		listen(t, pod, "tcp6", "[::]:15001", "proxy-outbound", events)
		listen(t, pod, "tcp6", "[::]:15006", "proxy-inbound", events)
		listen(t, pod, "tcp6", "[::]:9090", "app-9090", events)
		listen(t, tp.remote, "tcp6", "[::]:8080", "remote-8080", events)
		listen(t, tp.remote, "tcp6", "[::]:8081", "remote-8081", events)
	}

	families := []struct {
		name, remote, excludedRemote, podIP string
		ok                                  bool
	}{
		{"ipv4", "198.51.100.2", "198.51.100.3", podIP4, true},
		{"ipv6", "2001:db8:2::2", "2001:db8:2::3", podIP6, tp.v6},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if !fam.ok {
				t.Skip("skipped: the kernel has no IPv6 (/proc/sys/net/ipv6 missing)")
			}
			hp := func(host, port string) string { return net.JoinHostPort(host, port) }
			tag := func(s string) string { return s + "-" + fam.name }
			// Outbound to a test host: the proxy's 15001, which learns the real destination.
			dial(t, pod, hp(fam.remote, "8080"), tag("out"))
			expect(t, events, tag("out"), "proxy-outbound", hp(fam.remote, "8080"))
			// Inbound to the app's port: the proxy's 15006.
			dial(t, tp.remote, hp(fam.podIP, "9080"), tag("in"))
			expect(t, events, tag("in"), "proxy-inbound", hp(fam.podIP, "9080"))
			// The proxy's own traffic (uid 1337) goes out untouched.
			dialAs(t, pod, 1337, 1000, fam.remote, "8080", tag("uid1337"))
			expect(t, events, tag("uid1337"), "remote-8080", "")
			// Excluded outbound port and CIDR, excluded inbound port: untouched.
			dial(t, pod, hp(fam.remote, "8081"), tag("port8081"))
			expect(t, events, tag("port8081"), "remote-8081", "")
			dial(t, pod, hp(fam.excludedRemote, "8080"), tag("cidr"))
			expect(t, events, tag("cidr"), "remote-8080", "")
			dial(t, tp.remote, hp(fam.podIP, "9090"), tag("in9090"))
			expect(t, events, tag("in9090"), "app-9090", "")
		})
	}

	// DEL undoes the chain: our rules, the pod's interface and its address allocation.
	nettest.InNS(t, tp.node, func() error { return cni.DelNetworkList(ctx, list, rt) })
	deleted = true
	for _, v6 := range []bool{false, true} {
		if s := nettest.Save(t, pod, backend, v6); strings.Contains(s, "ISTIO") {
			t.Fatalf("rules left after DEL (v6=%v):\n%s", v6, s)
		}
	}
	if out, err := nettest.Output(pod, "ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("eth0 still in the pod after DEL:\n%s", out)
	}
}
