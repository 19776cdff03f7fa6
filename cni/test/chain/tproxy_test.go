package chain_test

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// listenTransparent listens with IP_TRANSPARENT / IPV6_TRANSPARENT, as Envoy's inbound listener does under TPROXY.
func listenTransparent(t *testing.T, n ns.NetNS, network, addr, name string, ch chan<- conn) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var l net.Listener
	nettest.InNS(t, n, func() error {
		var err error
		l, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	t.Cleanup(func() { l.Close() })
	go serve(l, name, ch)
}

func expectLocal(t *testing.T, ch <-chan conn, tag, listener, local string) {
	t.Helper()
	select {
	case c := <-ch:
		if c.tag != tag || c.listener != listener || c.local != local {
			t.Fatalf("%s: got %+v; want listener %s with local address %s", tag, c, listener, local)
		}
	case <-time.After(hangWait):
		t.Fatalf("%s: no connection arrived", tag)
	}
}

// Under TPROXY, inbound connections reach the transparent 15006 listener with their original destination as
// the socket's local address (no NAT), through the mangle rules and the fwmark policy routing; outbound still
// lands on 15001; DEL removes the ip rule and the route table.
func TestTPROXYTraffic(t *testing.T) {
	tp, api, kc := setup(t)
	api.SetPod(t, "shop", "web-t", nettest.Pod("shop", "web-t", map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"},
		map[string]any{"runAsUser": 0, "runAsGroup": 0}))
	pod := nettest.NewNS(t)
	env := newChain(t, tp, kc)
	rt, result := env.add(t, pod, "shop", "web-t")
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = tp.node.Do(func(ns.NetNS) error { return env.cni.DelNetworkList(context.Background(), env.list, rt) })
		}
	})
	podIP4, podIP6 := addrs(t, tp, result)
	if rules := nettest.Run(t, pod, "ip", "rule", "show"); !strings.Contains(rules, "fwmark 0x539 lookup 133") {
		t.Fatalf("no TPROXY ip rule:\n%s", rules)
	}

	events := make(chan conn, 16)
	listen(t, pod, "tcp4", "0.0.0.0:15001", "proxy-outbound", events)
	listenTransparent(t, pod, "tcp4", "0.0.0.0:15006", "proxy-inbound", events)
	if tp.v6 {
		listen(t, pod, "tcp6", "[::]:15001", "proxy-outbound", events)
		listenTransparent(t, pod, "tcp6", "[::]:15006", "proxy-inbound", events)
	}

	dial(t, tp.remote, podIP4+":9080", "tproxy-in4")
	expectLocal(t, events, "tproxy-in4", "proxy-inbound", podIP4+":9080")
	dial(t, pod, "198.51.100.2:8080", "tproxy-out4")
	expect(t, events, "tproxy-out4", "proxy-outbound", "198.51.100.2:8080")
	if tp.v6 {
		if rules := nettest.Run(t, pod, "ip", "-6", "rule", "show"); !strings.Contains(rules, "fwmark 0x539 lookup 133") {
			t.Fatalf("no IPv6 TPROXY ip rule:\n%s", rules)
		}
		dial(t, tp.remote, "["+podIP6+"]:9080", "tproxy-in6")
		expectLocal(t, events, "tproxy-in6", "proxy-inbound", "["+podIP6+"]:9080")
	}

	nettest.InNS(t, tp.node, func() error { return env.cni.DelNetworkList(context.Background(), env.list, rt) })
	deleted = true
	for _, fam := range []string{"-4", "-6"} {
		if rules := nettest.Run(t, pod, "ip", fam, "rule", "show"); strings.Contains(rules, "lookup 133") {
			t.Fatalf("ip %s rule left after DEL:\n%s", fam, rules)
		}
	}
}
