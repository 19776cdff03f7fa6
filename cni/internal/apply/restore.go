package apply

import (
	"fmt"
	"sort"
	"strings"
)

// Table is one table of iptables-restore input or iptables-save output.
type Table struct {
	Name   string
	Chains []Chain
	// Lines are the table's rule lines in input order (rendered input may -I into a chain after -A into others).
	Lines []string
}

// Chain is a chain with its rules (each a full line: "-A CHAIN ...", "-I CHAIN N ...").
type Chain struct {
	Name    string
	Builtin bool // from iptables-save: has a policy (ACCEPT/DROP), not "-"
	Rules   []string
}

// Dump is a parsed iptables-save output or rendered restore input, tables in their order.
type Dump []Table

func (d Dump) table(name string) *Table {
	for i := range d {
		if d[i].Name == name {
			return &d[i]
		}
	}
	return nil
}

func (t *Table) chain(name string) *Chain {
	for i := range t.Chains {
		if t.Chains[i].Name == name {
			return &t.Chains[i]
		}
	}
	return nil
}

// ParseRestore parses rendered restore input ("* nat", "-N X", "-A X ...", "-I X N ...", "COMMIT") or
// iptables-save output ("*nat", ":X ACCEPT [0:0]", "-A X ...", "COMMIT"). Comments and blank lines are skipped.
func ParseRestore(text string) (Dump, error) {
	var d Dump
	var cur *Table
	for n, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			name := strings.TrimSpace(line[1:])
			if name == "" {
				return nil, fmt.Errorf("line %d: table header without a name", n+1)
			}
			d = append(d, Table{Name: name})
			cur = &d[len(d)-1]
		case cur == nil:
			return nil, fmt.Errorf("line %d: %q outside a table", n+1, line)
		case line == "COMMIT":
			cur = nil
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("line %d: bad chain line %q", n+1, line)
			}
			addChain(cur, f[0], f[1] != "-")
		case strings.HasPrefix(line, "-N "):
			addChain(cur, strings.TrimSpace(line[3:]), false)
		case strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, "-I "):
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("line %d: bad rule %q", n+1, line)
			}
			c := cur.chain(f[1])
			if c == nil {
				// Rules into built-in chains in rendered input: the chain is not declared there.
				addChain(cur, f[1], true)
				c = cur.chain(f[1])
			}
			c.Rules = append(c.Rules, line)
			cur.Lines = append(cur.Lines, line)
		default:
			return nil, fmt.Errorf("line %d: unsupported restore line %q", n+1, line)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("table %s has no COMMIT", cur.Name)
	}
	return d, nil
}

func addChain(t *Table, name string, builtin bool) {
	if c := t.chain(name); c != nil {
		return
	}
	t.Chains = append(t.Chains, Chain{Name: name, Builtin: builtin})
}

// Owned says what in a netns belongs to asm-cni: chains by table, and in mangle the packet marks of TPROXY.
type Owned struct {
	Chains map[string][]string
	Marks  []uint32
}

func (o Owned) isChain(table, name string) bool {
	for _, c := range o.Chains[table] {
		if c == name {
			return true
		}
	}
	return false
}

// ownsRule reports whether a rule of a built-in chain (a line of iptables-save) is ours: it jumps to one of
// our chains, it is an excluded interface's RETURN, or (mangle) it carries one of our marks, as the save
// output prints them (hex).
func (o Owned) ownsRule(table, line string) bool {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && o.isChain(table, f[i+1]) {
			return true
		}
	}
	// excludeInterfaces: "-A CHAIN -i IFACE -j RETURN" / "-o IFACE": an interface-only RETURN, which only the
	// redirection has a reason to put first in a built-in chain.
	if len(f) == 6 && (f[2] == "-i" || f[2] == "-o") && f[4] == "-j" && f[5] == "RETURN" {
		return true
	}
	if table != "mangle" {
		return false
	}
	for _, m := range o.Marks {
		hex := fmt.Sprintf("0x%x", m)
		for _, tok := range f {
			if tok == hex || strings.HasPrefix(tok, hex+"/") {
				return true
			}
		}
	}
	return false
}

// presentOwned lists, per table of the current state, our chains present and our rules in built-in chains.
type presentOwned struct {
	chains map[string][]string
	rules  map[string][]string // "-A CHAIN ..." lines of built-in chains
}

func (o Owned) present(cur Dump) presentOwned {
	p := presentOwned{chains: map[string][]string{}, rules: map[string][]string{}}
	for _, t := range cur {
		for _, c := range t.Chains {
			if c.Builtin {
				for _, r := range c.Rules {
					if o.ownsRule(t.Name, r) {
						p.rules[t.Name] = append(p.rules[t.Name], r)
					}
				}
			} else if o.isChain(t.Name, c.Name) {
				p.chains[t.Name] = append(p.chains[t.Name], c.Name)
			}
		}
	}
	return p
}

func (p presentOwned) empty() bool { return len(p.chains) == 0 && len(p.rules) == 0 }

// Transaction builds one iptables-restore --noflush input that replaces whatever of ours the current state
// holds with the desired rules: our chains are declared (which creates them or flushes them), our rules in the
// built-in chains are deleted, chains no longer wanted are deleted, then the desired rules are added. Being
// one restore, it applies completely or not at all. A nil desired removes everything of ours.
func Transaction(cur, desired Dump, owned Owned) string {
	p := owned.present(cur)
	tables := map[string]bool{}
	for t := range p.chains {
		tables[t] = true
	}
	for t := range p.rules {
		tables[t] = true
	}
	for _, t := range desired {
		tables[t.Name] = true
	}
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	sort.Strings(names)

	var b strings.Builder
	for _, tname := range names {
		want := desired.table(tname)
		wanted := map[string]bool{}
		var declare []string
		if want != nil {
			for _, c := range want.Chains {
				if !c.Builtin {
					wanted[c.Name] = true
					declare = append(declare, c.Name)
				}
			}
		}
		for _, c := range p.chains[tname] {
			if !wanted[c] {
				declare = append(declare, c)
			}
		}
		fmt.Fprintf(&b, "*%s\n", tname)
		for _, c := range declare {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, r := range p.rules[tname] {
			b.WriteString("-D" + strings.TrimPrefix(r, "-A") + "\n")
		}
		for _, c := range p.chains[tname] {
			if !wanted[c] {
				fmt.Fprintf(&b, "-X %s\n", c)
			}
		}
		if want != nil {
			for _, r := range want.Lines {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
