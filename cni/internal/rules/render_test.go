package rules

import (
	"strings"
	"testing"
)

func renderPod(t *testing.T, ann map[string]string, mutate func(s *Settings)) RuleSet {
	t.Helper()
	s := mustFromPod(t, podWith(ann))
	if mutate != nil {
		mutate(&s)
	}
	return Render(s)
}

func hasLines(t *testing.T, family, rules string, lines ...string) {
	t.Helper()
	have := strings.Split(rules, "\n")
	for _, l := range lines {
		found := false
		for _, h := range have {
			if h == l {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s rules lack %q\n%s", family, l, rules)
		}
	}
}

func lacks(t *testing.T, family, rules string, substrings ...string) {
	t.Helper()
	for _, s := range substrings {
		if strings.Contains(rules, s) {
			t.Errorf("%s rules contain %q\n%s", family, s, rules)
		}
	}
}

func TestRenderDNSCapture(t *testing.T) {
	rs := renderPod(t, nil, func(s *Settings) { s.DNSCapture = true })
	for fam, rules := range map[string]string{"IPv4": rs.IPv4, "IPv6": rs.IPv6} {
		hasLines(t, fam, rules,
			"* raw",
			"-N ISTIO_OUTPUT_DNS",
			"-A OUTPUT -j ISTIO_OUTPUT_DNS",
			"-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS",
			"-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053",
			"-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-port 15053",
			"-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1",
			"-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 1337 -j CT --zone 2",
			"-A PREROUTING -j ISTIO_INBOUND",
			"-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j CT --zone 2",
			"-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1",
			"-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN",
		)
	}
	hasLines(t, "IPv4", rs.IPv4, "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
	hasLines(t, "IPv6", rs.IPv6, "-A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
	// The DNS jump comes before the loopback return and the catch-all redirect.
	if i, j := strings.Index(rs.IPv4, "-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS"), strings.Index(rs.IPv4, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"); i < 0 || j < i {
		t.Errorf("DNS jump not before the catch-all redirect")
	}
	off := renderPod(t, nil, nil)
	lacks(t, "IPv4", off.IPv4, "ISTIO_OUTPUT_DNS", "* raw", "53")
}

func TestRenderPodFeatures(t *testing.T) {
	t.Run("drop invalid", func(t *testing.T) {
		rs := renderPod(t, nil, func(s *Settings) { s.DropInvalid = true })
		if !strings.HasPrefix(rs.IPv4, "* mangle\n-N ISTIO_DROP\n-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP\n-A ISTIO_DROP -j DROP\nCOMMIT\n* nat\n") {
			t.Errorf("unexpected start:\n%s", rs.IPv4)
		}
	})
	t.Run("exclude interfaces", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationExcludeInterfaces: "net1"}, nil)
		hasLines(t, "IPv4", rs.IPv4, "-A PREROUTING -i net1 -j RETURN", "-A OUTPUT -o net1 -j RETURN")
		hasLines(t, "IPv6", rs.IPv6, "-A PREROUTING -i net1 -j RETURN", "-A OUTPUT -o net1 -j RETURN")
		lacks(t, "IPv4", rs.IPv4, "* mangle")
	})
	t.Run("exclude interfaces under TPROXY also in mangle", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationExcludeInterfaces: "net1", AnnotationInterceptionMode: "TPROXY"}, nil)
		mangle := rs.IPv4[:strings.Index(rs.IPv4, "* nat")]
		hasLines(t, "IPv4 mangle", mangle, "-A PREROUTING -i net1 -j RETURN", "-A OUTPUT -o net1 -j RETURN")
	})
	t.Run("reroute virtual interfaces with wildcard include", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationRerouteVirtualInterfaces: "eth1"}, nil)
		hasLines(t, "IPv4", rs.IPv4, "-I PREROUTING 1 -i eth1 -j RETURN", "-I PREROUTING 1 -i eth1 -j ISTIO_REDIRECT")
	})
	t.Run("include and exclude ranges per family", func(t *testing.T) {
		rs := renderPod(t, map[string]string{
			AnnotationIncludeOutboundIPRanges: "10.0.0.0/8,2001:db8::/32",
			AnnotationExcludeOutboundIPRanges: "10.1.0.0/16,2001:db8:1::/48",
		}, nil)
		hasLines(t, "IPv4", rs.IPv4, "-A ISTIO_OUTPUT -d 10.1.0.0/16 -j RETURN", "-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT")
		lacks(t, "IPv4", rs.IPv4, "2001:db8", "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
		hasLines(t, "IPv6", rs.IPv6, "-A ISTIO_OUTPUT -d 2001:db8:1::/48 -j RETURN", "-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT")
		lacks(t, "IPv6", rs.IPv6, "10.0.0.0/8", "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
	})
	t.Run("no outbound and no inbound capture", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationIncludeOutboundIPRanges: "", AnnotationIncludeInboundPorts: ""}, nil)
		lacks(t, "IPv4", rs.IPv4, "-j ISTIO_REDIRECT", "-A PREROUTING")
	})
	t.Run("included loopback range drops the lo bypass", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationIncludeOutboundIPRanges: "127.0.0.1/24"}, nil)
		lacks(t, "IPv4", rs.IPv4, "-o lo -m owner ! --uid-owner")
		hasLines(t, "IPv4", rs.IPv4, "-A ISTIO_OUTPUT -d 127.0.0.1/24 -j ISTIO_REDIRECT")
	})
	t.Run("include outbound ports", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationIncludeOutboundPorts: "8080"}, nil)
		hasLines(t, "IPv4", rs.IPv4, "-A ISTIO_OUTPUT -p tcp --dport 8080 -j ISTIO_REDIRECT")
	})
	t.Run("TPROXY IPv6", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationInterceptionMode: "TPROXY"}, nil)
		hasLines(t, "IPv6", rs.IPv6,
			"-A ISTIO_TPROXY ! -d ::1/128 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006",
			"-I ISTIO_INBOUND 2 -p tcp -s ::6/128 -i lo -j RETURN")
		if !rs.TPROXY {
			t.Error("TPROXY not reported")
		}
	})
	t.Run("NONE renders nothing", func(t *testing.T) {
		rs := renderPod(t, map[string]string{AnnotationInterceptionMode: "NONE"}, nil)
		if !rs.Empty() || rs.TPROXY {
			t.Errorf("got %+v", rs)
		}
	})
}

func TestRenderChainsKnown(t *testing.T) {
	// Every chain any rendering creates must be in ChainNames, or the runtime would leave it behind on DEL.
	c := DefaultEngineConfig()
	c.InterceptionMode = ModeTProxy
	c.InboundPorts = PortList{All: true}
	c.DropInvalid, c.RedirectDNS, c.CaptureAllDNS, c.EnableIPv6 = true, true, true, true
	rs := RenderConfig(&c)
	for _, rules := range []string{rs.IPv4, rs.IPv6} {
		tbl := ""
		for _, l := range strings.Split(rules, "\n") {
			if strings.HasPrefix(l, "* ") {
				tbl = l[2:]
			}
			if name, ok := strings.CutPrefix(l, "-N "); ok {
				found := false
				for _, c := range ChainNames[tbl] {
					found = found || c == name
				}
				if !found {
					t.Errorf("chain %s in table %s is not in ChainNames", name, tbl)
				}
			}
		}
	}
}

func TestRenderDeterministic(t *testing.T) {
	s := mustFromPod(t, podWith(map[string]string{
		AnnotationInterceptionMode: "TPROXY", AnnotationExcludeInboundPorts: "1,2,3",
		AnnotationIncludeOutboundIPRanges: "10.0.0.0/8,2001:db8::/32", AnnotationRerouteVirtualInterfaces: "a,b",
	}))
	s.DNSCapture = true
	first := Render(s)
	for i := 0; i < 50; i++ {
		if got := Render(s); got != first {
			t.Fatalf("render %d differs", i)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	s, err := FromPod(basePod())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Render(s)
	}
}

func BenchmarkFromPodAndRender(b *testing.B) {
	p := podWith(map[string]string{AnnotationExcludeInboundPorts: "8080,9090", AnnotationExcludeOutboundIPRanges: "10.0.0.0/8"})
	b.ReportAllocs()
	for b.Loop() {
		s, err := FromPod(p)
		if err != nil {
			b.Fatal(err)
		}
		_ = Render(s)
	}
}

// TestRenderConcurrent: renders share no state (the plugin renders for many pods at once when run as a
// library, and tests run with -race).
func TestRenderConcurrent(t *testing.T) {
	plain := mustFromPod(t, basePod())
	tproxy := mustFromPod(t, podWith(map[string]string{AnnotationInterceptionMode: "TPROXY"}))
	tproxy.DNSCapture = true
	wantPlain, wantTProxy := Render(plain), Render(tproxy)
	errs := make(chan string, 16)
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				if g%2 == 0 {
					if Render(plain) != wantPlain {
						errs <- "plain render differs under concurrency"
						return
					}
				} else if Render(tproxy) != wantTProxy {
					errs <- "tproxy render differs under concurrency"
					return
				}
			}
		}(g)
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
