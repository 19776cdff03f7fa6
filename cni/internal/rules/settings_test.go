package rules

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

func podWith(ann map[string]string) *pod.Pod {
	p := basePod()
	for k, v := range ann {
		p.Metadata.Annotations[k] = v
	}
	return p
}

func mustFromPod(t *testing.T, p *pod.Pod) Settings {
	t.Helper()
	s, err := FromPod(p)
	if err != nil {
		t.Fatalf("FromPod: %v", err)
	}
	return s
}

func TestFromPodDefaults(t *testing.T) {
	s := mustFromPod(t, basePod())
	want := Settings{
		InterceptionMode:        ModeRedirect,
		ProxyUID:                "1337",
		ProxyGID:                "1337",
		IncludeOutboundIPRanges: CIDRList{All: true},
		IncludeInboundPorts:     PortList{All: true},
		ExcludeInboundPorts:     []string{"15020", "15021", "15090"},
		ExcludeOutboundPorts:    []string{"15020"},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("defaults\n got %+v\nwant %+v", s, want)
	}
}

func TestFromPodAnnotations(t *testing.T) {
	cases := []struct {
		name  string
		ann   map[string]string
		check func(t *testing.T, s Settings)
	}{
		{"interception TPROXY", map[string]string{AnnotationInterceptionMode: "TPROXY"}, func(t *testing.T, s Settings) {
			eq(t, s.InterceptionMode, ModeTProxy)
		}},
		{"interception NONE", map[string]string{AnnotationInterceptionMode: "NONE"}, func(t *testing.T, s Settings) {
			eq(t, s.InterceptionMode, ModeNone)
		}},
		{"include ranges split by family", map[string]string{AnnotationIncludeOutboundIPRanges: "10.0.0.0/8,2001:db8::/32,192.168.1.7/24"}, func(t *testing.T, s Settings) {
			eq(t, s.IncludeOutboundIPRanges, CIDRList{V4: []string{"10.0.0.0/8", "192.168.1.7/24"}, V6: []string{"2001:db8::/32"}})
		}},
		{"include ranges empty = capture no destination", map[string]string{AnnotationIncludeOutboundIPRanges: ""}, func(t *testing.T, s Settings) {
			if !s.IncludeOutboundIPRanges.Empty() {
				t.Errorf("want empty, got %+v", s.IncludeOutboundIPRanges)
			}
		}},
		{"include loopback range", map[string]string{AnnotationIncludeOutboundIPRanges: "127.0.0.1/24"}, func(t *testing.T, s Settings) {
			eq(t, s.IncludeOutboundIPRanges.HasLoopback, true)
		}},
		{"exclude ranges", map[string]string{AnnotationExcludeOutboundIPRanges: "10.96.0.2/24,10.96.0.3/24"}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeOutboundIPRanges.V4, []string{"10.96.0.2/24", "10.96.0.3/24"})
		}},
		{"include inbound list", map[string]string{AnnotationIncludeInboundPorts: "1, 2 ,3"}, func(t *testing.T, s Settings) {
			eq(t, s.IncludeInboundPorts, PortList{Ports: []string{"1", "2", "3"}})
		}},
		{"include inbound empty = no inbound capture", map[string]string{AnnotationIncludeInboundPorts: ""}, func(t *testing.T, s Settings) {
			eq(t, s.IncludeInboundPorts.Empty(), true)
		}},
		{"exclude inbound merged with the fixed ports", map[string]string{AnnotationExcludeInboundPorts: "4,5,15021,6"}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeInboundPorts, []string{"4", "5", "15021", "6", "15020", "15090"})
		}},
		{"exclude inbound empty still excludes the fixed ports", map[string]string{AnnotationExcludeInboundPorts: ""}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeInboundPorts, []string{"15020", "15021", "15090"})
		}},
		{"exclude outbound replaces 15020", map[string]string{AnnotationExcludeOutboundPorts: "7,8"}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeOutboundPorts, []string{"7", "8"})
		}},
		{"exclude outbound empty excludes nothing", map[string]string{AnnotationExcludeOutboundPorts: ""}, func(t *testing.T, s Settings) {
			eq(t, len(s.ExcludeOutboundPorts), 0)
		}},
		{"include outbound ports", map[string]string{AnnotationIncludeOutboundPorts: "32000,31000"}, func(t *testing.T, s Settings) {
			eq(t, s.IncludeOutboundPorts, []string{"32000", "31000"})
		}},
		{"ports written canonically", map[string]string{AnnotationIncludeOutboundPorts: "080"}, func(t *testing.T, s Settings) {
			eq(t, s.IncludeOutboundPorts, []string{"80"})
		}},
		{"issue 10: leading zeros beyond five digits, port 0, Go white space", map[string]string{
			AnnotationExcludeInboundPorts: "\u0085000080, 0\u00a0"}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeInboundPorts, []string{"80", "0", "15020", "15021", "15090"})
		}},
		{"issue 10: interface names iptables takes, empty entries dropped", map[string]string{
			AnnotationExcludeInterfaces: "$x,,eth0@if3, .,"}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeInterfaces, []string{"$x", "eth0@if3", "."})
		}},
		{"exclude interfaces", map[string]string{AnnotationExcludeInterfaces: "eth1, net1"}, func(t *testing.T, s Settings) {
			eq(t, s.ExcludeInterfaces, []string{"eth1", "net1"})
		}},
		{"kubevirt interfaces", map[string]string{AnnotationKubevirtInterfaces: "eth1,eth2"}, func(t *testing.T, s Settings) {
			eq(t, s.RerouteVirtualInterfaces, []string{"eth1", "eth2"})
		}},
		{"reroute-virtual-interfaces wins over kubevirtInterfaces", map[string]string{
			AnnotationKubevirtInterfaces: "eth1", AnnotationRerouteVirtualInterfaces: "veth+"}, func(t *testing.T, s Settings) {
			eq(t, s.RerouteVirtualInterfaces, []string{"veth+"})
		}},
		{"an invalid kubevirtInterfaces is not read when reroute is present", map[string]string{
			AnnotationKubevirtInterfaces: "bad name!", AnnotationRerouteVirtualInterfaces: "eth3"}, func(t *testing.T, s Settings) {
			eq(t, s.RerouteVirtualInterfaces, []string{"eth3"})
		}},
		{"unrelated annotations ignored", map[string]string{"sidecar.istio.io/proxyCPU": "4000m"}, func(t *testing.T, s Settings) {
			eq(t, s.InterceptionMode, ModeRedirect)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, mustFromPod(t, podWith(c.ann))) })
	}
}

func TestFromPodInvalid(t *testing.T) {
	cases := []struct{ ann, value string }{
		{AnnotationInterceptionMode, "redirect"},
		{AnnotationInterceptionMode, ""},
		{AnnotationInterceptionMode, "TPROXY "},
		{AnnotationIncludeOutboundIPRanges, "10.0.0.0/8, 192.168.0.0/16"},
		{AnnotationIncludeOutboundIPRanges, "10.0.0.0"},
		{AnnotationIncludeOutboundIPRanges, "10.0.0.0/33"},
		{AnnotationIncludeOutboundIPRanges, "*,10.0.0.0/8"},
		{AnnotationExcludeOutboundIPRanges, "*"},
		{AnnotationExcludeOutboundIPRanges, "fe80::1%eth0/64"},
		{AnnotationIncludeInboundPorts, "bad"},
		{AnnotationIncludeInboundPorts, "80,"},
		{AnnotationIncludeInboundPorts, " * "},
		{AnnotationIncludeInboundPorts, "\ufeff80"},
		{AnnotationExcludeInboundPorts, "*"},
		{AnnotationExcludeInboundPorts, "65536"},
		{AnnotationIncludeOutboundPorts, "*"},
		{AnnotationIncludeOutboundPorts, "-1"},
		{AnnotationIncludeOutboundPorts, "99999999999999999999"},
		{AnnotationExcludeOutboundPorts, "80:90"},
		{AnnotationExcludeInterfaces, "eth0 -j ACCEPT"},
		{AnnotationExcludeInterfaces, "averyveryverylongname"},
		{AnnotationExcludeInterfaces, "eth0,+"},
		{AnnotationRerouteVirtualInterfaces, "a\"b"},
		{AnnotationRerouteVirtualInterfaces, "eth\u00a01"},
		{AnnotationKubevirtInterfaces, "eth1\n-A OUTPUT -j ACCEPT"},
	}
	for _, c := range cases {
		t.Run(c.ann+"="+c.value, func(t *testing.T) {
			_, err := FromPod(podWith(map[string]string{c.ann: c.value}))
			if err == nil {
				t.Fatal("accepted")
			}
			var ae *AnnotationError
			if !errors.As(err, &ae) {
				t.Fatalf("error is %T, want *AnnotationError", err)
			}
			if ae.Annotation != c.ann || ae.Value != c.value {
				t.Errorf("error names %s=%q", ae.Annotation, ae.Value)
			}
			if !strings.Contains(err.Error(), c.ann) || !strings.Contains(err.Error(), strings.TrimSpace(c.ann)) {
				t.Errorf("message %q does not name the annotation", err)
			}
		})
	}
}

func TestFromPodProxyIdentity(t *testing.T) {
	cases := []struct {
		name     string
		sc       *pod.SecurityContext
		uid, gid string
	}{
		{"unset", nil, "1337", "1337"},
		{"zero (TPROXY runs the proxy as root)", &pod.SecurityContext{RunAsUser: int64p(0), RunAsGroup: int64p(0)}, "1337", "1337"},
		{"custom", &pod.SecurityContext{RunAsUser: int64p(1000670000), RunAsGroup: int64p(1000670001)}, "1000670000", "1000670001"},
		{"user only", &pod.SecurityContext{RunAsUser: int64p(2000)}, "2000", "1337"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := basePod()
			p.Spec.Containers[1].SecurityContext = c.sc
			s := mustFromPod(t, p)
			eq(t, s.ProxyUID, c.uid)
			eq(t, s.ProxyGID, c.gid)
		})
	}
	t.Run("native sidecar", func(t *testing.T) {
		p := basePod()
		p.Spec.Containers = []pod.Container{{Name: "app"}}
		p.Spec.InitContainers = []pod.Container{{Name: "istio-proxy", RestartPolicy: "Always",
			SecurityContext: &pod.SecurityContext{RunAsUser: int64p(4242)},
			Env:             []pod.EnvVar{{Name: EnvDNSCapture, Value: "true"}}}}
		s := mustFromPod(t, p)
		eq(t, s.ProxyUID, "4242")
		eq(t, s.DNSCapture, true)
	})
	t.Run("other containers' securityContext is not read", func(t *testing.T) {
		p := basePod()
		p.Spec.Containers[0].SecurityContext = &pod.SecurityContext{RunAsUser: int64p(5)}
		eq(t, mustFromPod(t, p).ProxyUID, "1337")
	})
}

func TestFromPodProxyEnv(t *testing.T) {
	cases := []struct {
		env          []pod.EnvVar
		dns, drop    bool
		warningCount int
	}{
		{nil, false, false, 0},
		{[]pod.EnvVar{{Name: EnvDNSCapture, Value: "true"}}, true, false, 0},
		{[]pod.EnvVar{{Name: EnvDNSCapture, Value: "1"}, {Name: EnvInvalidDrop, Value: "True"}}, true, true, 0},
		{[]pod.EnvVar{{Name: EnvDNSCapture, Value: "false"}}, false, false, 0},
		{[]pod.EnvVar{{Name: EnvDNSCapture, Value: "yes"}, {Name: EnvInvalidDrop, Value: ""}}, false, false, 2},
		{[]pod.EnvVar{{Name: EnvDNSCapture, Value: "true"}, {Name: EnvDNSCapture, Value: "false"}}, false, false, 0}, // last wins
	}
	for i, c := range cases {
		p := basePod()
		p.Spec.Containers[1].Env = c.env
		p.Spec.Containers[0].Env = []pod.EnvVar{{Name: EnvDNSCapture, Value: "true"}} // app env is not read
		s := mustFromPod(t, p)
		if s.DNSCapture != c.dns || s.DropInvalid != c.drop || len(s.Warnings) != c.warningCount {
			t.Errorf("case %d: dns=%v drop=%v warnings=%q", i, s.DNSCapture, s.DropInvalid, s.Warnings)
		}
	}
}

func eq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}
