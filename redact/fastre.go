package redact

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// fastRegexp matches like its regexp.Regexp, faster for the big
// alternations of some allowlists (one of gitleaks' takes ~45 µs per
// 60-byte match in Go's NFA). The branches whose every match begins with
// one of a few literals run anchored, only where a literal occurs (an
// Aho-Corasick pass finds them); the other branches run together as one
// unanchored regex. A hit of the prefilter is always confirmed by the
// branch's own regex, so the answer is exactly the original's.
type fastRegexp struct {
	re     *regexp.Regexp   // the whole regex, when not split
	ac     *acMatcher       // literal starts, lower case, matched ignoring ASCII case
	lit    []int            // AC pattern id → branch
	branch []*regexp.Regexp // ^(?:branch), with the original flags
	window []int            // bytes a branch's run needs to see (0: all)
	rest   *regexp.Regexp   // the branches without a literal start, or nil
	must   *acMatcher       // finds a literal in every match of rest, or nil
	need   *acMatcher       // unsplit: finds a literal in every match of re, or nil
	shape  *shape           // what every match of re looks like, or nil
	restSh *shape           // what every match of rest looks like, or nil
}

// minSplitBranches is the smallest alternation worth splitting.
const minSplitBranches = 2

// compileFast compiles expr, split when it is a big alternation.
func compileFast(expr string) (*fastRegexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	f := &fastRegexp{re: re}
	t, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return f, nil
	}
	for t.Op == syntax.OpCapture && len(t.Sub) == 1 {
		t = t.Sub[0]
	}
	f.shape = shapeOf(t)
	f.need = requiredLiteral(t).matcher()
	if t.Op != syntax.OpAlternate || len(t.Sub) < minSplitBranches || re.NumSubexp() > 0 {
		return f, nil
	}
	f.need = nil
	var pats []string
	var rest []*syntax.Regexp
	for _, b := range t.Sub {
		b = dropNullablePrefix(b)
		set, _, ok := literals(b)
		// A branch opening with an assertion (\b, ^) depends on what comes
		// before its start, which an anchored run cannot see.
		usable := ok && len(set) > 0 && len(set) <= 256 && !opensWithAssertion(b)
		for _, s := range set {
			if s == "" {
				usable = false
			}
		}
		if !usable {
			rest = append(rest, b)
			continue
		}
		anch, err := regexp.Compile(`^(?:` + b.String() + `)`)
		if err != nil {
			return f, nil
		}
		for _, s := range set {
			pats = append(pats, s)
			f.lit = append(f.lit, len(f.branch))
		}
		f.branch = append(f.branch, anch)
		// A match is at most n bytes long; one byte more lets an assertion
		// at its end see what follows. Go's backtracker clears state per
		// input byte, so short inputs are much cheaper.
		win := 0
		if n := maxLen1(b); n < maxUnbounded {
			win = n + 1
		}
		f.window = append(f.window, win)
	}
	if len(f.branch) == 0 {
		return f, nil
	}
	if len(rest) > 0 {
		r := &syntax.Regexp{Op: syntax.OpAlternate, Sub: rest}
		if len(rest) == 1 {
			r = rest[0]
		}
		if f.rest, err = regexp.Compile(r.String()); err != nil {
			return &fastRegexp{re: re}, nil
		}
		f.must = requiredLiteral(r).matcher()
		f.restSh = shapeOf(r)
	}
	f.ac = newAC(pats, true)
	return f, nil
}

// Match reports whether b contains a match.
func (f *fastRegexp) Match(b []byte) bool {
	if !f.shape.may(b) {
		return false
	}
	if f.ac == nil {
		if f.need != nil && !f.need.match(b) {
			return false
		}
		return f.re.Match(b)
	}
	found := false
	f.ac.scan(b, func(id, start int) {
		if found {
			return
		}
		br := f.lit[id]
		in := b[start:]
		if w := f.window[br]; w > 0 && len(in) > w {
			in = in[:w]
		}
		found = f.branch[br].Match(in)
	})
	if found || f.rest == nil || !f.restSh.may(b) || (f.must != nil && !f.must.match(b)) {
		return found
	}
	return f.rest.Match(b)
}

// String returns the source regex.
func (f *fastRegexp) String() string { return f.re.String() }

// opensWithAssertion reports whether a match of re may begin with an
// empty-width assertion.
func opensWithAssertion(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEndLine, syntax.OpEndText:
		return true
	case syntax.OpConcat, syntax.OpCapture:
		return len(re.Sub) > 0 && opensWithAssertion(re.Sub[0])
	case syntax.OpAlternate, syntax.OpQuest, syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		for _, s := range re.Sub {
			if opensWithAssertion(s) {
				return true
			}
		}
	}
	return false
}

// dropNullablePrefix removes the leading elements of a concatenation that
// can match the empty string (x*, x?, x{0,n}): an unanchored search finds a
// match with them iff it finds one without them.
func dropNullablePrefix(re *syntax.Regexp) *syntax.Regexp {
	if re.Op != syntax.OpConcat {
		return re
	}
	i := 0
	for i < len(re.Sub)-1 {
		s := re.Sub[i]
		if (s.Op == syntax.OpStar || s.Op == syntax.OpQuest || (s.Op == syntax.OpRepeat && s.Min == 0)) && !opensWithAssertion(s) {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return re
	}
	if len(re.Sub)-i == 1 {
		return re.Sub[i]
	}
	return &syntax.Regexp{Op: syntax.OpConcat, Flags: re.Flags, Sub: re.Sub[i:]}
}

// literal is a string every match of a regex contains; with fold, in any
// ASCII case (lit is then lower case).
type literal struct {
	lit  string
	fold bool
}

// requiredLiteral returns a literal that occurs in every match of re, or
// the zero literal when none is known. Non-ASCII literals under case
// folding are not used (Unicode folds more than ASCII).
func requiredLiteral(re *syntax.Regexp) literal {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return literal{lit: string(re.Rune)}
		}
		for _, c := range re.Rune {
			if c >= 128 || c == 'k' || c == 'K' || c == 's' || c == 'S' { // K and S fold to Kelvin and long s
				return literal{}
			}
		}
		return literal{lit: strings.ToLower(string(re.Rune)), fold: true}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min > 0 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		var best literal
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l.lit) > len(best.lit) {
				best = l
			}
		}
		return best
	case syntax.OpAlternate:
		var common literal
		for i, sub := range re.Sub {
			l := requiredLiteral(sub)
			if l.lit == "" || (i > 0 && l != common) {
				return literal{}
			}
			common = l
		}
		return common
	}
	return literal{}
}

// matcher returns an automaton finding l, or nil for the zero literal.
func (l literal) matcher() *acMatcher {
	if l.lit == "" {
		return nil
	}
	return newAC([]string{l.lit}, l.fold)
}

// shape holds necessary conditions for a match of a regex anchored with ^
// (and $), read from its syntax, so most inputs are rejected without
// running it: the allowlists are full of such regexes (^\$…, ^%…%$,
// ^[0-9a-f]{40}$), and a candidate secret matches none of them. A match
// of the regex is a match of one of its branches (its alternations
// multiplied out), so b can hold a match only if some branch allows it.
type shape struct {
	branches []branchShape
}

// branchShape holds the conditions for one branch.
type branchShape struct {
	first *[256]bool // bytes a match begins with; nil: no check
	// With whole, every match is all of the input: its length is within
	// [minLen, maxLen], its bytes are in all and its last one in last
	// (nil: no check).
	whole          bool
	last           *[256]bool
	all            [256]bool
	minLen, maxLen int
}

// maxShapeBranches bounds the branches a shape checks.
const maxShapeBranches = 64

// may reports whether b can contain a match; false is exact.
func (s *shape) may(b []byte) bool {
	if s == nil {
		return true
	}
	for i := range s.branches {
		if s.branches[i].may(b) {
			return true
		}
	}
	return false
}

// may reports whether b can contain a match of the branch.
func (s *branchShape) may(b []byte) bool {
	if s.first != nil && (len(b) == 0 || !s.first[b[0]]) {
		return false
	}
	if s.whole {
		if len(b) < s.minLen || len(b) > s.maxLen {
			return false
		}
		if s.last != nil && (len(b) == 0 || !s.last[b[len(b)-1]]) {
			return false
		}
		for _, c := range b {
			if !s.all[c] {
				return false
			}
		}
	}
	return true
}

// shapeOf returns the shape of re's matches, or nil when it has no check
// to offer (a branch is not anchored at the start of the text, or can be
// empty without being anchored at the end).
func shapeOf(re *syntax.Regexp) *shape {
	s := &shape{}
	for _, b := range branches(re) {
		if !anchoredAt(b, syntax.OpBeginText) {
			return nil
		}
		var bs branchShape
		var first [256]bool
		if !firstBytes(b, &first) {
			bs.first = &first
		}
		if anchoredAt(b, syntax.OpEndText) {
			bs.whole = true
			addBytes(b, &bs.all)
			bs.minLen, bs.maxLen = minLen(b), maxLen1(b)
			var last [256]bool
			if !lastBytes(b, &last) {
				bs.last = &last
			}
		}
		if bs.first == nil && !bs.whole {
			return nil
		}
		s.branches = append(s.branches, bs)
	}
	return s
}

// branches returns regexes whose matches together are the matches of re:
// its alternations multiplied out, or re itself when there would be more
// than maxShapeBranches.
func branches(re *syntax.Regexp) []*syntax.Regexp {
	all := []*syntax.Regexp{re}
	switch re.Op {
	case syntax.OpCapture:
		return branches(re.Sub[0])
	case syntax.OpAlternate:
		var out []*syntax.Regexp
		for _, sub := range re.Sub {
			out = append(out, branches(sub)...)
			if len(out) > maxShapeBranches {
				return all
			}
		}
		return out
	case syntax.OpConcat:
		acc := [][]*syntax.Regexp{nil}
		for _, sub := range re.Sub {
			bs := branches(sub)
			if len(acc)*len(bs) > maxShapeBranches {
				return all
			}
			var next [][]*syntax.Regexp
			for _, a := range acc {
				for _, b := range bs {
					next = append(next, append(a[:len(a):len(a)], b))
				}
			}
			acc = next
		}
		out := make([]*syntax.Regexp, len(acc))
		for i, subs := range acc {
			out[i] = &syntax.Regexp{Op: syntax.OpConcat, Sub: subs}
		}
		return out
	}
	return all
}

// anchoredAt reports whether every match of re begins (op is
// OpBeginText) or ends (OpEndText) with op.
func anchoredAt(re *syntax.Regexp, op syntax.Op) bool {
	switch re.Op {
	case op:
		return true
	case syntax.OpCapture:
		return anchoredAt(re.Sub[0], op)
	case syntax.OpConcat:
		if len(re.Sub) == 0 {
			return false
		}
		if op == syntax.OpBeginText {
			return anchoredAt(re.Sub[0], op)
		}
		return anchoredAt(re.Sub[len(re.Sub)-1], op)
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !anchoredAt(sub, op) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

// firstBytes adds to set the bytes a non-empty match of re can begin with
// and reports whether re can match the empty string (when it may, set is
// not a complete answer).
func firstBytes(re *syntax.Regexp, set *[256]bool) (nullable bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return true
		}
		addRune(re.Rune[0], re.Flags&syntax.FoldCase != 0, set)
		return false
	case syntax.OpCharClass:
		addClass(re.Rune, set)
		return false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for c := range set {
			set[c] = true
		}
		return false
	case syntax.OpNoMatch:
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return firstBytes(re.Sub[0], set)
	case syntax.OpStar, syntax.OpQuest:
		firstBytes(re.Sub[0], set)
		return true
	case syntax.OpRepeat:
		n := firstBytes(re.Sub[0], set)
		return n || re.Min == 0
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !firstBytes(sub, set) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		nullable = false
		for _, sub := range re.Sub {
			if firstBytes(sub, set) {
				nullable = true
			}
		}
		return nullable
	}
	// Empty matches and empty-width assertions.
	return true
}

// lastBytes is firstBytes for the last byte of a match.
func lastBytes(re *syntax.Regexp, set *[256]bool) (nullable bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return true
		}
		addRune(re.Rune[len(re.Rune)-1], re.Flags&syntax.FoldCase != 0, set)
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return lastBytes(re.Sub[0], set)
	case syntax.OpStar, syntax.OpQuest:
		lastBytes(re.Sub[0], set)
		return true
	case syntax.OpRepeat:
		n := lastBytes(re.Sub[0], set)
		return n || re.Min == 0
	case syntax.OpConcat:
		for i := len(re.Sub) - 1; i >= 0; i-- {
			if !lastBytes(re.Sub[i], set) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		nullable = false
		for _, sub := range re.Sub {
			if lastBytes(sub, set) {
				nullable = true
			}
		}
		return nullable
	}
	// One-character nodes end where they begin.
	return firstBytes(re, set)
}

// addBytes adds to set every byte a match of re can hold.
func addBytes(re *syntax.Regexp, set *[256]bool) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			addRune(r, re.Flags&syntax.FoldCase != 0, set)
		}
	case syntax.OpCharClass:
		addClass(re.Rune, set)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for c := range set {
			set[c] = true
		}
	}
	for _, sub := range re.Sub {
		addBytes(sub, set)
	}
}

// addRune adds r and, with fold, the runes it folds to, to set. Any
// non-ASCII one adds all bytes from 0x80 on: every byte of its encoding is
// one, and such bytes also stand for invalid UTF-8, matched as U+FFFD.
func addRune(r rune, fold bool, set *[256]bool) {
	for f := r; ; {
		if f < utf8.RuneSelf {
			set[f] = true
		} else {
			addHigh(set)
		}
		if !fold {
			return
		}
		if f = unicode.SimpleFold(f); f == r {
			return
		}
	}
}

// addClass adds the bytes the ranges of a character class begin with.
func addClass(ranges []rune, set *[256]bool) {
	for i := 0; i+1 < len(ranges); i += 2 {
		for c := ranges[i]; c <= ranges[i+1] && c < utf8.RuneSelf; c++ {
			set[c] = true
		}
		if ranges[i+1] >= utf8.RuneSelf {
			addHigh(set)
		}
	}
}

// addHigh adds the bytes 0x80-0xff to set.
func addHigh(set *[256]bool) {
	for c := utf8.RuneSelf; c < len(set); c++ {
		set[c] = true
	}
}

// minLen returns the fewest bytes a match of re holds.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, sub := range re.Sub {
			n += minLen(sub)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, sub := range re.Sub {
			if m := minLen(sub); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0
}
