package apply

import (
	"reflect"
	"strings"
	"testing"
)

var testOwned = Owned{
	Chains: map[string][]string{
		"mangle": {"ISTIO_DIVERT", "ISTIO_TPROXY", "ISTIO_INBOUND", "ISTIO_DROP"},
		"nat":    {"ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_OUTPUT_DNS"},
	},
	Marks: []uint32{1337, 1338},
}

const rendered = `* nat
-N ISTIO_OUTPUT
-N ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-I ISTIO_OUTPUT 1 -d 127.0.0.1/32 -j RETURN
COMMIT
`

func TestParseRestore(t *testing.T) {
	d, err := ParseRestore(rendered)
	if err != nil {
		t.Fatal(err)
	}
	nat := d.table("nat")
	if nat == nil || len(nat.Chains) != 3 || nat.chain("OUTPUT") == nil || !nat.chain("OUTPUT").Builtin || nat.chain("ISTIO_OUTPUT").Builtin {
		t.Fatalf("parsed %+v", d)
	}
	if len(nat.Lines) != 4 || !strings.HasPrefix(nat.Lines[3], "-I ISTIO_OUTPUT 1") {
		t.Fatalf("line order lost: %v", nat.Lines)
	}
	save := "# Generated\n*nat\n:PREROUTING ACCEPT [1:2]\n:ISTIO_OUTPUT - [0:0]\n-A PREROUTING -j ISTIO_OUTPUT\nCOMMIT\n# done\n"
	d, err = ParseRestore(save)
	if err != nil || !d.table("nat").chain("PREROUTING").Builtin || d.table("nat").chain("ISTIO_OUTPUT").Builtin {
		t.Fatalf("save parse: %+v %v", d, err)
	}
	for _, bad := range []string{"-A X -j Y\n", "*nat\n-A X -j Y\n", "*nat\n-F X\nCOMMIT\n", "*\nCOMMIT\n", "*nat\n:X\nCOMMIT\n"} {
		if _, err := ParseRestore(bad); err == nil {
			t.Errorf("%q must not parse", bad)
		}
	}
}

func TestOwnsRule(t *testing.T) {
	cases := map[string]struct {
		table, line string
		want        bool
	}{
		"jump":              {"nat", "-A OUTPUT -j ISTIO_OUTPUT", true},
		"goto":              {"nat", "-A OUTPUT -g ISTIO_OUTPUT", true},
		"foreign jump":      {"nat", "-A OUTPUT -j KUBE-SERVICES", false},
		"other table chain": {"nat", "-A OUTPUT -j ISTIO_DIVERT", false},
		"mark":              {"mangle", "-A OUTPUT -o lo -p tcp -m mark --mark 0x539 -j RETURN", true},
		"xmark":             {"mangle", "-A OUTPUT -p tcp -j MARK --set-xmark 0x53a/0xffffffff", true},
		"other mark":        {"mangle", "-A OUTPUT -j MARK --set-xmark 0x4000/0x4000", false},
		"mark in nat":       {"nat", "-A OUTPUT -m mark --mark 0x539 -j RETURN", false},
		"exclude iface":     {"nat", "-A PREROUTING -i not-istio-nic -j RETURN", true},
		"iface accept":      {"nat", "-A PREROUTING -i eth1 -j ACCEPT", false},
	}
	for name, c := range cases {
		if got := testOwned.ownsRule(c.table, c.line); got != c.want {
			t.Errorf("%s: ownsRule(%s, %q) = %v", name, c.table, c.line, got)
		}
	}
}

func TestTransaction(t *testing.T) {
	desired, _ := ParseRestore(rendered)

	// Fresh namespace: declare our chains, then the rendered rules in their order.
	fresh, _ := ParseRestore("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
	want := "*nat\n:ISTIO_OUTPUT - [0:0]\n:ISTIO_REDIRECT - [0:0]\n" +
		"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n-A OUTPUT -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n" +
		"-I ISTIO_OUTPUT 1 -d 127.0.0.1/32 -j RETURN\nCOMMIT\n"
	if got := Transaction(fresh, desired, testOwned); got != want {
		t.Fatalf("fresh:\n%s\nwant:\n%s", got, want)
	}

	// Retried ADD after an earlier one (in a mode that also used mangle): our jumps deleted by their saved
	// form, stale chains deleted, foreign rules untouched.
	cur, _ := ParseRestore(`*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_DIVERT - [0:0]
-A PREROUTING -p tcp -m mark --mark 0x539 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A OUTPUT -j MARK --set-xmark 0x4000/0x4000
-A ISTIO_DIVERT -j ACCEPT
COMMIT
*nat
:OUTPUT ACCEPT [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_INBOUND - [0:0]
:FOREIGN - [0:0]
-A OUTPUT -j FOREIGN
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -j RETURN
COMMIT
`)
	got := Transaction(cur, desired, testOwned)
	want = `*mangle
:ISTIO_DIVERT - [0:0]
-D PREROUTING -p tcp -m mark --mark 0x539 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff
-X ISTIO_DIVERT
COMMIT
*nat
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_INBOUND - [0:0]
-D OUTPUT -j ISTIO_OUTPUT
-X ISTIO_INBOUND
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-I ISTIO_OUTPUT 1 -d 127.0.0.1/32 -j RETURN
COMMIT
`
	if got != want {
		t.Fatalf("retry:\n%s\nwant:\n%s", got, want)
	}

	// Removal: nothing desired.
	got = Transaction(cur, nil, testOwned)
	if strings.Contains(got, "-A ") || !strings.Contains(got, "-X ISTIO_OUTPUT") || strings.Contains(got, "FOREIGN") {
		t.Fatalf("removal:\n%s", got)
	}
	if !testOwned.present(fresh).empty() || testOwned.present(cur).empty() {
		t.Fatal("present() is wrong")
	}
}

func TestCheckArgs(t *testing.T) {
	got, err := checkArgs("nat", "-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN")
	want := []string{"-w", "-t", "nat", "-C", "ISTIO_INBOUND", "-p", "tcp", "-s", "127.0.0.6/32", "-i", "lo", "-j", "RETURN"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v %v", got, err)
	}
	got, err = checkArgs("nat", `-A X -m comment --comment "two words" -j RETURN`)
	if err != nil || got[8] != "two words" {
		t.Fatalf("quoted: %q %v", got, err)
	}
	if _, err := checkArgs("nat", `-A X -m comment --comment "open`); err == nil {
		t.Fatal("unterminated quote must fail")
	}
	if _, err := checkArgs("nat", "-A"); err == nil {
		t.Fatal("short rule must fail")
	}
}

func TestMissingErrorTruncates(t *testing.T) {
	var p []string
	for i := 0; i < 10; i++ {
		p = append(p, "r")
	}
	if msg := (&MissingError{Problems: p}).Error(); !strings.Contains(msg, "and 2 more") {
		t.Fatal(msg)
	}
}
