package redact

import (
	"regexp"
	"regexp/syntax"
	"strings"
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
	}
	f.ac = newAC(pats, true)
	return f, nil
}

// Match reports whether b contains a match.
func (f *fastRegexp) Match(b []byte) bool {
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
	if found || f.rest == nil || (f.must != nil && !f.must.match(b)) {
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
