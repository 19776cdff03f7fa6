package rules

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// Native fuzz targets on the plugin's annotation parsers (issue 10). test/go-tests.sh runs each for a bounded
// number of inputs; `go test` alone runs the seeds. The properties are what the rest of the plugin relies on:
// no panic, accepted output is canonical (parsing it again gives the same), and every rendered word stays one
// word of the iptables-restore input.

var fuzzSeeds = []string{
	"", "*", " * ", "80", "080", "000080", "0", "65535", "65536", "80,", ",", "80,,81", "\ufeff80", "80\u0085",
	"\u00a080 , 443\u3000", "99999999999999999999", "+80", "-1", "0x50", "\uff18\uff10", "8\u200b0",
	"10.0.0.0/8", "10.0.0.0/08", "010.0.0.0/8", "2001:db8::/32", "::ffff:192.0.2.1/128", "fe80::1%eth0/64",
	"eth0", "$x", "eth0@if3", "+", "veth+", ".", "..", "a\"b", "eth 1", "eth1\n-A OUTPUT -j ACCEPT", "ééééééé+",
	"REDIRECT", "NONE", "TPROXY", "none",
}

func FuzzParsePortList(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, v string, wildcard bool) {
		pl, err := ParsePortList(v, wildcard)
		if err != nil {
			return
		}
		if pl.All {
			if v != "*" || !wildcard {
				t.Fatalf("%q (wildcard %v) read as every port", v, wildcard)
			}
			return
		}
		for _, p := range pl.Ports {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != p {
				t.Fatalf("%q gave port %q, not canonical decimal 0-65535", v, p)
			}
		}
		again, err := ParsePortList(strings.Join(pl.Ports, ","), wildcard)
		if err != nil || strings.Join(again.Ports, ",") != strings.Join(pl.Ports, ",") {
			t.Fatalf("%q: the canonical form %v does not parse back (%v)", v, pl.Ports, err)
		}
	})
}

func FuzzParseCIDRList(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, v string, wildcard bool) {
		cl, err := ParseCIDRList(v, wildcard)
		if err != nil || cl.All {
			return
		}
		for _, c := range append(append([]string{}, cl.V4...), cl.V6...) {
			if strings.ContainsFunc(c, unicode.IsSpace) || strings.Contains(c, ",") {
				t.Fatalf("%q gave %q, not one word", v, c)
			}
			again, err := ParseCIDRList(c, false)
			if err != nil || len(again.V4)+len(again.V6) != 1 {
				t.Fatalf("%q: canonical %q does not parse back: %v", v, c, err)
			}
		}
	})
}

func FuzzParseInterfaceList(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		names, err := ParseInterfaceList(v)
		if err != nil {
			return
		}
		for _, n := range names {
			if n == "" || len(n) > MaxInterfaceName || n == "+" {
				t.Fatalf("%q gave the name %q", v, n)
			}
			// One word of the restore input, read back the same by iptables-save and by our own parsers.
			if f := strings.Fields(n); len(f) != 1 || f[0] != n || strings.ContainsAny(n, "\"\x00") {
				t.Fatalf("%q gave %q, not one plain word", v, n)
			}
		}
		// The rendered rules keep one rule per line: a name never adds a line.
		c := DefaultEngineConfig()
		c.ExcludeInterfaces = names
		plain := RenderConfig(&c)
		c.ExcludeInterfaces = nil
		without := RenderConfig(&c)
		if got, want := strings.Count(plain.IPv4, "\n"), strings.Count(without.IPv4, "\n")+4*len(names); got > want {
			t.Fatalf("%q: %d lines rendered, at most %d expected", v, got, want)
		}
	})
}

func FuzzParseInterceptionMode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		m, err := ParseInterceptionMode(v)
		if (err == nil) != (v == ModeRedirect || v == ModeTProxy || v == ModeNone) || (err == nil && m != v) {
			t.Fatalf("%q read as %q, %v", v, m, err)
		}
	})
}
