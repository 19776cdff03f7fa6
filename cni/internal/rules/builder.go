package rules

import "strings"

type table uint8

const (
	mangle table = iota
	nat
	raw
	numTables
)

var tableNames = [numTables]string{TableMangle, TableNat, TableRaw}

// builder accumulates the restore input of one address family: per table, the chains to create (in order
// of first use, then chains only jumped to) and the rule lines. The plugin renders once per process, so a
// fresh builder each time costs nothing worth pooling.
type builder struct {
	chains [numTables][]string
	jumps  [numTables][]string
	rules  [numTables][]byte
}

func newBuilder() *builder { return &builder{} }

func isBuiltinChain(c string) bool {
	switch c {
	case "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING":
		return true
	}
	return false
}

func addOnce(list []string, c string) []string {
	for _, x := range list {
		if x == c {
			return list
		}
	}
	return append(list, c)
}

// begin starts a rule line: "-A CHAIN" (pos == "") or "-I CHAIN POS".
func (b *builder) begin(t table, chain, pos string) {
	if !isBuiltinChain(chain) {
		b.chains[t] = addOnce(b.chains[t], chain)
	}
	buf := b.rules[t]
	if pos == "" {
		buf = append(buf, "-A "...)
		buf = append(buf, chain...)
	} else {
		buf = append(buf, "-I "...)
		buf = append(buf, chain...)
		buf = append(buf, ' ')
		buf = append(buf, pos...)
	}
	b.rules[t] = buf
}

// arg appends one argument to the current rule line.
func (b *builder) arg(t table, a string) {
	b.rules[t] = append(append(b.rules[t], ' '), a...)
}

// end finishes the rule line; target is the chain jumped to when the rule ends in "-j CHAIN".
func (b *builder) end(t table, last2, last string) {
	if last2 == "-j" && strings.HasPrefix(last, "ISTIO_") {
		b.jumps[t] = addOnce(b.jumps[t], last)
	}
	b.rules[t] = append(b.rules[t], '\n')
}

// add appends "-A chain args...".
func (b *builder) add(t table, chain string, args ...string) {
	b.begin(t, chain, "")
	for _, a := range args {
		b.arg(t, a)
	}
	b.finish(t, args)
}

// insert appends "-I chain pos args..." (rendered in sequence, as iptables-restore applies it).
func (b *builder) insert(t table, chain, pos string, args ...string) {
	b.begin(t, chain, pos)
	for _, a := range args {
		b.arg(t, a)
	}
	b.finish(t, args)
}

func (b *builder) finish(t table, args []string) {
	if n := len(args); n >= 2 {
		b.end(t, args[n-2], args[n-1])
	} else {
		b.end(t, "", "")
	}
}

// String renders the iptables-restore input: for each non-empty table, "* table", the -N lines, the rules
// and COMMIT. Built-in chains are never created.
func (b *builder) String() string {
	size := 0
	for t := range b.rules {
		for _, j := range b.jumps[t] {
			b.chains[t] = addOnce(b.chains[t], j)
		}
		if len(b.rules[t]) == 0 {
			continue
		}
		size += len(tableNames[t]) + 10 + len(b.rules[t])
		for _, c := range b.chains[t] {
			size += len(c) + 4
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	for t := range b.rules {
		if len(b.rules[t]) == 0 {
			continue
		}
		sb.WriteString("* ")
		sb.WriteString(tableNames[t])
		sb.WriteByte('\n')
		for _, c := range b.chains[t] {
			sb.WriteString("-N ")
			sb.WriteString(c)
			sb.WriteByte('\n')
		}
		sb.Write(b.rules[t])
		sb.WriteString("COMMIT\n")
	}
	return sb.String()
}
