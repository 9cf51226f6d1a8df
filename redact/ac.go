package redact

import "math"

// acMatcher is an Aho-Corasick automaton compiled to a dense DFA over byte
// classes: one table lookup per input byte, all occurrences reported.
//
// Most text holds no pattern, and the table is too big for the CPU's
// caches, so scan first skips the positions where no pattern can start:
// two small tables over the byte classes of three bytes (tri, tri1) answer
// that from the next four bytes. The DFA runs only from such a position,
// until it is back in a state of depth 2 or less; see scan for why that
// finds exactly what the plain DFA finds.
type acMatcher struct {
	classes [256]uint16 // input byte → class (0: byte in no pattern)
	nclass  int
	trans   []int32   // state*nclass + class → next state*nclass, with flags
	out     [][]int32 // state → ids of the patterns ending here
	lens    []int     // pattern id → length in bytes
	state   int32     // mask of the next state in trans entries
	// tri[c0<<6|c1] has bit c2 set when a pattern can start with bytes
	// of classes c0 c1 c2, a pattern shorter than 3 bytes standing for
	// all its continuations; tri1 is the same for the pattern's bytes 1
	// to 3 (every pattern shorter than 2 bytes sets all of it). A pattern
	// starting at j thus passes tri at j and, if src[j+3] exists, tri1
	// at j+1. Both are nil when there are more than 64 classes; the
	// stride of 64 makes an index a shift and an or.
	tri, tri1 []uint64
}

// Flags of trans entries; the low bits are the premultiplied next state.
// Tables too big for acShallow (2^30 entries) do without it and tri.
const (
	acOut     = -1 << 31 // patterns end in the next state
	acShallow = 1 << 30  // the next state has depth 2 or less
	acState   = acShallow - 1
)

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
	type node struct {
		next  map[uint16]int32
		depth int
	}
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
				nodes = append(nodes, node{next: map[uint16]int32{}, depth: i + 1})
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
	small := len(m.trans) <= acState
	m.state = math.MaxInt32
	if small {
		m.state = acState
	}
	for i, t := range m.trans {
		v := t * int32(m.nclass) // #nosec G115 -- nclass ≤ 257
		if len(outs[t]) > 0 {
			v |= acOut
		}
		if small && nodes[t].depth <= 2 {
			v |= acShallow
		}
		m.trans[i] = v
	}
	m.out = outs
	if small && m.nclass <= 64 {
		m.tri = make([]uint64, m.nclass<<6)
		m.tri1 = make([]uint64, m.nclass<<6)
		for _, p := range patterns {
			if p != "" {
				m.markTri(m.tri, p)
				m.markTri(m.tri1, p[1:])
			}
		}
	}
	return m
}

// markTri sets the bits of t that p's first three bytes can take, all
// classes standing for the bytes past p's end.
func (m *acMatcher) markTri(t []uint64, p string) {
	switch len(p) {
	case 0:
		for i := range t {
			t[i] = ^uint64(0)
		}
	case 1:
		for c := range m.nclass {
			t[int(m.classes[p[0]])<<6|c] = ^uint64(0)
		}
	case 2:
		t[int(m.classes[p[0]])<<6|int(m.classes[p[1]])] = ^uint64(0)
	default:
		t[int(m.classes[p[0]])<<6|int(m.classes[p[1]])] |= 1 << m.classes[p[2]]
	}
}

// scan calls fn for every occurrence of every pattern in src, with the
// pattern id and the occurrence's start, in order of end position.
//
// It reports exactly what scanAll does, in the same order. A pattern
// occurrence starts only where tri and tri1 allow, so the positions skip
// passes over start none. A run of the DFA from the root at j reports, at
// each end e, the patterns that are suffixes of src[j:e]; those are all
// the patterns ending at e unless one starts before j. None does for e past the
// previous run's end: that run stopped at byte i in a state of depth ≤ 2,
// so every pattern still open then started at i-1 or later, where the
// skipping resumes; earlier ones ended by i+1 and were reported then (a
// run repeats at most the two bytes before that end, and reports nothing
// there again). The patterns ending at e come in the same order as in
// scanAll, since a state's ids are sorted by length, then by id.
func (m *acMatcher) scan(src []byte, fn func(id, start int)) {
	if m == nil || len(m.trans) == 0 {
		return
	}
	if m.tri == nil {
		m.scanAll(src, fn)
		return
	}
	trans, classes := m.trans, &m.classes
	nc := int32(m.nclass) // #nosec G115 -- nclass ≤ 64 here
	n := len(src)
	done := 0 // occurrences ending at or before done are reported
	for k := 0; k < n; {
		j := m.skip(src, k)
		// Run the DFA from the root at j until it is shallow again.
		s := int32(0)
		i := j
		for ; i < n; i++ {
			v := trans[s+int32(classes[src[i]])]
			s = v & acState
			if v&(acOut|acShallow) == 0 {
				continue
			}
			if v < 0 && i >= done {
				for _, id := range m.out[s/nc] {
					fn(int(id), i+1-m.lens[id])
				}
			}
			if v&acShallow != 0 && i >= j+2 {
				break
			}
		}
		if i >= n {
			return
		}
		done, k = i+1, i-1
	}
}

// skip returns the first j ≥ k where a pattern may start by tri and
// tri1, or max(k, len(src)-3) if there is none before: the last three
// positions are not filtered, which is safe since scan may start the DFA
// anywhere no pattern starts before. The inner loop, where scan spends
// most of its time, tests tri only and is kept small so that it runs in
// registers; tri1 then rules out most of the positions it stops at.
func (m *acMatcher) skip(src []byte, k int) int {
	n := len(src)
	tri, tri1, classes := m.tri, m.tri1, &m.classes
	j := k
	for ; j+3 < n; j++ {
		c0, c1 := uint(classes[src[j]]), uint(classes[src[j+1]])
		for _, b := range src[j+2 : n-1] {
			c2 := uint(classes[b])
			if tri[c0<<6|c1]>>(c2&63)&1 != 0 {
				break
			}
			c0, c1 = c1, c2
			j++
		}
		// Either tri allows j, or the loop ran out at j = n-3.
		if j+3 == n || tri1[uint(classes[src[j+1]])<<6|uint(classes[src[j+2]])]>>(classes[src[j+3]]&63)&1 != 0 {
			break
		}
	}
	return j
}

// scanAll is scan without skipping: the DFA reads every byte.
func (m *acMatcher) scanAll(src []byte, fn func(id, start int)) {
	if m == nil || len(m.trans) == 0 {
		return
	}
	// States are premultiplied by nclass (trans[s+class] is the next
	// state, with the flags).
	s := int32(0)
	trans, classes, nc, mask := m.trans, &m.classes, int32(m.nclass), m.state // #nosec G115 -- nclass ≤ 257
	for i, b := range src {
		v := trans[s+int32(classes[b])]
		s = v & mask
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
	trans, classes, mask := m.trans, &m.classes, m.state
	for _, b := range src {
		v := trans[s+int32(classes[b])]
		if v < 0 {
			return true
		}
		s = v & mask
	}
	return false
}
