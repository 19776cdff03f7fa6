package apply

import (
	"fmt"
	"maps"
	"slices"
)

// Difference is one way a namespace's rules of ours differ from the expected ones.
type Difference struct {
	Family string `json:"family"`          // IPv4, IPv6, or "route" for the TPROXY policy routing
	Table  string `json:"table,omitempty"` // nat, mangle, raw
	Chain  string `json:"chain,omitempty"`
	Kind   string `json:"kind"`           // missing, extra, changed, order
	Want   string `json:"want,omitempty"` // the expected line (missing, changed)
	Have   string `json:"have,omitempty"` // the line found (extra, changed)
}

func (d Difference) String() string {
	where := d.Family
	if d.Table != "" {
		where += " " + d.Table + "/" + d.Chain
	}
	switch d.Kind {
	case "missing":
		return fmt.Sprintf("%s missing: %s", where, d.Want)
	case "extra":
		return fmt.Sprintf("%s extra: %s", where, d.Have)
	case "changed":
		return fmt.Sprintf("%s changed: %s (expected %s)", where, d.Have, d.Want)
	default:
		return fmt.Sprintf("%s: rules in another order than expected", where)
	}
}

// ours is the part of a dump that belongs to asm-cni: per table and chain, the rules in order. Our own chains
// are listed even when empty (declaring them is part of the state); built-in chains only when they hold a rule
// of ours, and then only those rules.
type ours map[string]map[string][]string

func (o Owned) extract(d Dump) ours {
	out := ours{}
	for _, t := range d {
		for _, c := range t.Chains {
			var lines []string
			switch {
			case !c.Builtin && o.isChain(t.Name, c.Name):
				lines = append([]string{}, c.Rules...)
			case c.Builtin:
				for _, r := range c.Rules {
					if o.ownsRule(t.Name, r) {
						lines = append(lines, r)
					}
				}
				if lines == nil {
					continue
				}
			default:
				continue
			}
			if out[t.Name] == nil {
				out[t.Name] = map[string][]string{}
			}
			out[t.Name][c.Name] = lines
		}
	}
	return out
}

// Holds reports whether the dump has anything of ours: a chain of ours or a rule of ours in a built-in chain.
func (o Owned) Holds(d Dump) bool { return len(o.extract(d)) > 0 }

// Diff compares what of ours have holds with want (both iptables-save output of one family), chain by chain.
// A chain whose rules differ only in order gives one "order" difference; otherwise the rules missing and extra
// are listed, paired as "changed" where a chain has as many of each.
func (o Owned) Diff(family string, want, have Dump) []Difference {
	w, h := o.extract(want), o.extract(have)
	var diffs []Difference
	for _, table := range sortedUnion(w, h) {
		names := sortedUnion(w[table], h[table])
		for _, chain := range names {
			wl, wok := w[table][chain]
			hl, hok := h[table][chain]
			at := Difference{Family: family, Table: table, Chain: chain}
			switch {
			case wok && !hok && !isBuiltinChain(chain):
				d := at
				d.Kind, d.Want = "missing", "-N "+chain
				diffs = append(diffs, d)
			case hok && !wok && !isBuiltinChain(chain):
				d := at
				d.Kind, d.Have = "extra", "-N "+chain
				diffs = append(diffs, d)
			}
			diffs = append(diffs, diffLines(at, wl, hl)...)
		}
	}
	return diffs
}

// isBuiltinChain: the chains iptables itself has in the tables we use (upper-case names of ours never clash).
func isBuiltinChain(name string) bool {
	switch name {
	case "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING":
		return true
	}
	return false
}

func diffLines(at Difference, want, have []string) []Difference {
	if slices.Equal(want, have) {
		return nil
	}
	missing, extra := multisetMinus(want, have), multisetMinus(have, want)
	if len(missing) == 0 && len(extra) == 0 {
		d := at
		d.Kind = "order"
		return []Difference{d}
	}
	var out []Difference
	if len(missing) == len(extra) {
		for i := range missing {
			d := at
			d.Kind, d.Want, d.Have = "changed", missing[i], extra[i]
			out = append(out, d)
		}
		return out
	}
	for _, l := range missing {
		d := at
		d.Kind, d.Want = "missing", l
		out = append(out, d)
	}
	for _, l := range extra {
		d := at
		d.Kind, d.Have = "extra", l
		out = append(out, d)
	}
	return out
}

// multisetMinus returns the lines of a not matched by a line of b (counting repeats), in a's order.
func multisetMinus(a, b []string) []string {
	left := map[string]int{}
	for _, l := range b {
		left[l]++
	}
	var out []string
	for _, l := range a {
		if left[l] > 0 {
			left[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// sortedUnion is the keys of both maps, sorted (a stable order of tables and chains in the report).
func sortedUnion[V any](a, b map[string]V) []string {
	keys := maps.Clone(a)
	if keys == nil {
		keys = map[string]V{}
	}
	maps.Copy(keys, b)
	return slices.Sorted(maps.Keys(keys))
}
