package redact

import "math"

// acMatcher is an Aho-Corasick automaton compiled to a dense DFA over byte
// classes: one table lookup per input byte, all occurrences reported.
type acMatcher struct {
	classes [256]uint16 // input byte → class (0: byte in no pattern)
	nclass  int
	trans   []int32   // state*nclass + class → next state
	out     [][]int32 // state → ids of the patterns ending here
	lens    []int     // pattern id → length in bytes
}

// newAC compiles patterns; with fold, ASCII letters match either case
// (patterns must then be lower case). Empty patterns are ignored.
func newAC(patterns []string, fold bool) *acMatcher {
	m := &acMatcher{lens: make([]int, len(patterns))}
	// Byte classes: one per distinct byte used by a pattern.
	var used [256]bool
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			used[p[i]] = true
		}
	}
	m.nclass = 1
	for b := 0; b < 256; b++ {
		if used[b] {
			m.classes[b] = uint16(m.nclass) // #nosec G115 -- at most 257 classes
			m.nclass++
		}
	}
	if fold {
		for b := 'A'; b <= 'Z'; b++ {
			m.classes[b] = m.classes[b+'a'-'A']
		}
	}
	// Trie.
	type node struct{ next map[uint16]int32 }
	nodes := []node{{next: map[uint16]int32{}}}
	var outs [][]int32
	outs = append(outs, nil)
	for id, p := range patterns {
		m.lens[id] = len(p)
		if p == "" {
			continue
		}
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := m.classes[p[i]]
			n, ok := nodes[s].next[c]
			if !ok {
				n = int32(len(nodes)) // #nosec G115 -- bounded by total pattern length
				nodes = append(nodes, node{next: map[uint16]int32{}})
				outs = append(outs, nil)
				nodes[s].next[c] = n
			}
			s = n
		}
		outs[s] = append(outs[s], int32(id)) // #nosec G115 -- bounded by pattern count
	}
	// BFS: failure links and the dense transition table.
	n := len(nodes)
	m.trans = make([]int32, n*m.nclass)
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := 1; c < m.nclass; c++ {
		if t, ok := nodes[0].next[uint16(c)]; ok { // #nosec G115 -- c ≤ 256
			m.trans[c] = t
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outs[s] = append(outs[s], outs[fail[s]]...)
		for c := 0; c < m.nclass; c++ {
			if t, ok := nodes[s].next[uint16(c)]; ok && c != 0 { // #nosec G115 -- c ≤ 256
				fail[t] = m.trans[int(fail[s])*m.nclass+c]
				m.trans[int(s)*m.nclass+c] = t
				queue = append(queue, t)
			} else {
				m.trans[int(s)*m.nclass+c] = m.trans[int(fail[s])*m.nclass+c]
			}
		}
	}
	for i, t := range m.trans {
		v := t * int32(m.nclass) // #nosec G115 -- nclass ≤ 257
		if len(outs[t]) > 0 {
			v |= math.MinInt32
		}
		m.trans[i] = v
	}
	m.out = outs
	return m
}

// scan calls fn for every occurrence of every pattern in src, with the
// pattern id and the occurrence's start, in order of end position.
func (m *acMatcher) scan(src []byte, fn func(id, start int)) {
	if m == nil || len(m.trans) == 0 {
		return
	}
	// States are premultiplied by nclass (trans[s+class] is the next
	// state); the sign bit marks states where patterns end.
	s := int32(0)
	trans, classes, nc := m.trans, &m.classes, int32(m.nclass) // #nosec G115 -- nclass ≤ 257
	for i, b := range src {
		v := trans[s+int32(classes[b])]
		s = v & math.MaxInt32
		if v < 0 {
			for _, id := range m.out[s/nc] {
				fn(int(id), i+1-m.lens[id])
			}
		}
	}
}

// match reports whether any pattern occurs in src.
func (m *acMatcher) match(src []byte) bool {
	if m == nil || len(m.trans) == 0 {
		return false
	}
	s := int32(0)
	trans, classes := m.trans, &m.classes
	for _, b := range src {
		v := trans[s+int32(classes[b])]
		if v < 0 {
			return true
		}
		s = v & math.MaxInt32
	}
	return false
}
