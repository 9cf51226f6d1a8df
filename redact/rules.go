package redact

import (
	"embed"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// rulesFS holds the secret rules: gitleaks' default set (MIT, see
// rules/NOTICE) and custos' additions in the same format.
//
//go:embed rules/gitleaks.toml rules/custos.toml
var rulesFS embed.FS

// ruleFiles are loaded in order; a later rule with the same id replaces an
// earlier one.
var ruleFiles = []string{"rules/gitleaks.toml", "rules/custos.toml"}

// tomlFile is the gitleaks configuration format (the subset custos uses).
type tomlFile struct {
	Allowlist  *tomlAllowlist  `toml:"allowlist"`
	Allowlists []tomlAllowlist `toml:"allowlists"`
	Rules      []tomlRule      `toml:"rules"`
}

type tomlAllowlist struct {
	Description string   `toml:"description"`
	Condition   string   `toml:"condition"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	StopWords   []string `toml:"stopwords"`
	Paths       []string `toml:"paths"`
	Commits     []string `toml:"commits"`
	TargetRules []string `toml:"targetRules"`
}

type tomlRule struct {
	ID          string          `toml:"id"`
	Description string          `toml:"description"`
	Regex       string          `toml:"regex"`
	SecretGroup int             `toml:"secretGroup"`
	Entropy     float64         `toml:"entropy"`
	Keywords    []string        `toml:"keywords"`
	Path        string          `toml:"path"`
	Allowlists  []tomlAllowlist `toml:"allowlists"`
}

// Targets of an allowlist's regexes.
const (
	targetSecret = iota
	targetMatch
	targetLine
)

// allowlist is a compiled gitleaks allowlist. Path and commit checks never
// apply (the engine sees text, not files).
type allowlist struct {
	target  int
	regexes []*fastRegexp
	stop    []string // lower case
	and     bool     // condition AND: every present check must hold
	rules   map[string]bool

	stopOnce sync.Once
	stopSet  *stopSet // stop, compiled on first use
}

// allowed reports whether a candidate is allowed (not a finding).
func (a *allowlist) allowed(secret, match, line []byte) bool {
	t := secret
	switch a.target {
	case targetMatch:
		t = match
	case targetLine:
		t = line
	}
	// The stopwords are one automaton pass; the regexes are the expensive
	// part, so they run last and only when they can change the answer.
	sw := a.stopword(secret)
	if !a.and && sw {
		return true
	}
	if a.and && len(a.stop) > 0 && !sw {
		return false
	}
	if len(a.regexes) == 0 {
		return a.and
	}
	for _, r := range a.regexes {
		if len(t) > 0 && r.Match(t) {
			return true
		}
	}
	return false
}

// stopword reports whether s contains one of the stopwords, ignoring ASCII
// case.
func (a *allowlist) stopword(s []byte) bool {
	if len(a.stop) == 0 || len(s) == 0 {
		return false
	}
	if len(a.stop) < 8 && !isASCII(s) {
		return containsStopword(s, a.stop) // Unicode lowering, as gitleaks
	}
	// The same answer for ASCII text; for any text with many words.
	a.stopOnce.Do(func() { a.stopSet = newStopSet(a.stop) })
	return a.stopSet.match(s)
}

// stopSet finds any of many stopwords in a string, ignoring ASCII case,
// as an Aho-Corasick automaton over them would (newAC with fold), but in
// a few KB instead of the automaton's hundreds (gitleaks' generic rule
// has 1,446 stopwords): the candidate secrets it checks are short, and
// its table would come from main memory on each.
//
// A word of 3 bytes or more can start only where the three bytes there,
// lowered, are its first three: a 32,768-bit filter hashed from them
// rules out most positions, and the words with those first three bytes
// are compared at the others. Shorter words are searched for one by one.
type stopSet struct {
	filter [1 << (stopHashBits - 6)]uint64
	words  map[uint32][]string // first three bytes → the words starting so
	short  []string
}

const stopHashBits = 15

// stopHash maps three bytes (b0 | b1<<8 | b2<<16) to a filter bit.
func stopHash(k uint32) uint32 { return k * 0x9E3779B1 >> (32 - stopHashBits) }

// newStopSet compiles words, which must be lower case.
func newStopSet(words []string) *stopSet {
	st := &stopSet{words: map[uint32][]string{}}
	for _, w := range words {
		if len(w) < 3 {
			st.short = append(st.short, w)
			continue
		}
		k := uint32(w[0]) | uint32(w[1])<<8 | uint32(w[2])<<16
		st.words[k] = append(st.words[k], w)
		h := stopHash(k)
		st.filter[h>>6] |= 1 << (h & 63)
	}
	return st
}

// match reports whether s with A-Z lowered contains one of the words.
func (st *stopSet) match(s []byte) bool {
	for _, w := range st.short {
		if containsFold(s, w) {
			return true
		}
	}
	if len(s) < 3 {
		return false
	}
	k := uint32(lowerASCII(s[0]))<<8 | uint32(lowerASCII(s[1]))<<16
	for i := 0; i+3 <= len(s); i++ {
		k = k>>8 | uint32(lowerASCII(s[i+2]))<<16
		if h := stopHash(k); st.filter[h>>6]>>(h&63)&1 == 0 {
			continue
		}
		for _, w := range st.words[k] {
			if hasPrefixFold(s[i:], w) {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold reports whether s with A-Z lowered begins with w.
func hasPrefixFold(s []byte, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		if lowerASCII(s[j]) != w[j] {
			return false
		}
	}
	return true
}

// containsStopword reports whether s, lowered as gitleaks lowers it
// (Unicode), contains one of words. ASCII text goes to the stopSet,
// which answers the same without a copy.
func containsStopword(s []byte, words []string) bool {
	if len(words) == 0 || len(s) == 0 {
		return false
	}
	low := strings.ToLower(string(s))
	for _, w := range words {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

// isASCII reports whether s is all ASCII.
func isASCII(s []byte) bool {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// containsFold reports whether s with A-Z lowered contains w.
func containsFold(s []byte, w string) bool {
	if len(w) == 0 {
		return true
	}
	for i := 0; i+len(w) <= len(s); i++ {
		if lowerASCII(s[i]) != w[0] {
			continue
		}
		j := 1
		for j < len(w) && lowerASCII(s[i+j]) == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// lowerASCII maps A-Z to a-z.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// compileAllowlist compiles a, or returns nil if it can never apply here
// (only path or commit checks, or an AND over them).
func compileAllowlist(a tomlAllowlist) (*allowlist, error) {
	and := strings.EqualFold(a.Condition, "AND")
	if and && (len(a.Paths) > 0 || len(a.Commits) > 0) {
		return nil, nil
	}
	if len(a.Regexes) == 0 && len(a.StopWords) == 0 {
		return nil, nil
	}
	al := &allowlist{and: and}
	switch a.RegexTarget {
	case "match":
		al.target = targetMatch
	case "line":
		al.target = targetLine
	}
	for _, r := range a.Regexes {
		re, err := compileFast(r)
		if err != nil {
			return nil, fmt.Errorf("allowlist regex %q: %w", r, err)
		}
		al.regexes = append(al.regexes, re)
	}
	for _, w := range a.StopWords {
		al.stop = append(al.stop, strings.ToLower(w))
	}
	if len(a.TargetRules) > 0 {
		al.rules = map[string]bool{}
		for _, id := range a.TargetRules {
			al.rules[id] = true
		}
	}
	return al, nil
}

// rule is one compiled secret rule.
type rule struct {
	// src is compiled on the rule's first keyword hit (see ready), so
	// starting a short-lived `custos redact` does not compile 230 regexes.
	src         tomlRule
	once        sync.Once
	ok          bool   // compiled and usable
	whyNot      string // why a rule failed to compile
	id          string
	keywords    []string
	re          *regexp.Regexp // the rule's regex, unanchored (window mode)
	anch        *regexp.Regexp // `^` + the regex from its keyword on; nil: window mode
	wordB       bool           // anch begins with \b
	prefix      *[256]bool     // bytes of the stripped lazy prefix ([\w.-]{0,50}?), if any
	prefixMax   int
	span        *[256]bool // bytes a match of anch can hold
	maxLen      int        // bound on a match's length from its keyword (anch) or in all (re)
	multiline   bool       // the regex can match a newline
	assign      bool       // the generic `key = value` template: cheap precheck
	generic     bool       // generic-api-key: also precheck the value
	secretGroup int
	entropy     float64
	allow       []*allowlist
}

// maxUnbounded bounds the window of rules whose matches have no length
// limit; maxPrivateKey is the bound for private key blocks, which are long.
const (
	maxUnbounded  = 1 << 10
	maxPrivateKey = 32 << 10
)

// ruleSet is the parsed result of the rule files.
type ruleSet struct {
	rules   []*rule
	global  []*allowlist
	skipped []string // ids of rules that cannot run here, with the reason

	// The keyword automaton over every rule's keywords and, per keyword
	// id, the rules using it: the same for every Engine, so built once
	// (an org's Engine is rebuilt whenever its stored values change).
	kw      *acMatcher
	kwRules [][]int32
}

// loadRules parses and compiles the embedded rule files.
func loadRules() (*ruleSet, error) {
	rs := &ruleSet{}
	index := map[string]int{}
	for _, name := range ruleFiles {
		data, err := rulesFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		var f tomlFile
		if _, err := toml.Decode(string(data), &f); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		als := f.Allowlists
		if f.Allowlist != nil {
			als = append([]tomlAllowlist{*f.Allowlist}, als...)
		}
		for _, a := range als {
			al, err := compileAllowlist(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if al != nil {
				rs.global = append(rs.global, al)
			}
		}
		for _, tr := range f.Rules {
			r, why, err := compileRule(tr)
			if err != nil {
				return nil, fmt.Errorf("%s: rule %s: %w", name, tr.ID, err)
			}
			if r == nil {
				rs.skipped = append(rs.skipped, tr.ID+": "+why)
				continue
			}
			if i, ok := index[r.id]; ok {
				rs.rules[i] = r
				continue
			}
			index[r.id] = len(rs.rules)
			rs.rules = append(rs.rules, r)
		}
	}
	rs.keywords()
	return rs, nil
}

// keywords builds rs.kw and rs.kwRules.
func (rs *ruleSet) keywords() {
	kwIndex := map[string]int{}
	var kws []string
	for ri, r := range rs.rules {
		for _, k := range r.keywords {
			id, ok := kwIndex[k]
			if !ok {
				id = len(kws)
				kwIndex[k] = id
				kws = append(kws, k)
				rs.kwRules = append(rs.kwRules, nil)
			}
			if !slices.Contains(rs.kwRules[id], int32(ri)) { // #nosec G115 -- a few hundred rules
				rs.kwRules[id] = append(rs.kwRules[id], int32(ri)) // #nosec G115 -- a few hundred rules
			}
		}
	}
	rs.kw = newAC(kws, true)
}

// compileRule compiles one rule; it returns nil and a reason for rules that
// cannot run on text (path-only, or a regex RE2 rejects, or no keywords).
func compileRule(tr tomlRule) (*rule, string, error) {
	if tr.Regex == "" {
		return nil, "path-only rule", nil
	}
	if tr.Path != "" {
		return nil, "path-restricted rule (the engine sees text, not files)", nil
	}
	if len(tr.Keywords) == 0 {
		return nil, "no keywords", nil
	}
	r := &rule{
		src:         tr,
		id:          tr.ID,
		secretGroup: tr.SecretGroup,
		entropy:     tr.Entropy,
		assign:      strings.Contains(tr.Regex, assignTemplate),
		generic:     tr.ID == "generic-api-key",
	}
	for _, k := range tr.Keywords {
		if k = strings.ToLower(k); k != "" {
			r.keywords = append(r.keywords, k)
		}
	}
	return r, "", nil
}

// ready compiles the rule on first use and reports whether it can run. A
// rule whose regex RE2 rejects is disabled (Engine.Skipped names it).
func (r *rule) ready() bool {
	r.once.Do(func() {
		if err := r.compile(); err != nil {
			r.whyNot = err.Error()
			return
		}
		r.ok = true
	})
	return r.ok
}

// compile compiles the rule's regex, allowlists and anchored form.
func (r *rule) compile() error {
	tr := r.src
	re, err := regexp.Compile(tr.Regex)
	if err != nil {
		return fmt.Errorf("regex: %w", err)
	}
	r.re = re
	if r.secretGroup > re.NumSubexp() {
		return fmt.Errorf("secretGroup %d > %d groups", r.secretGroup, re.NumSubexp())
	}
	for _, a := range tr.Allowlists {
		al, err := compileAllowlist(a)
		if err != nil {
			return err
		}
		if al != nil {
			r.allow = append(r.allow, al)
		}
	}
	parsed, err := syntax.Parse(tr.Regex, syntax.Perl)
	if err != nil {
		return err
	}
	r.multiline = matchesNewline(parsed)
	r.maxLen = maxLen(parsed)
	r.anchor(parsed, re.NumSubexp())
	if r.id == "private-key" && r.maxLen == maxUnbounded {
		r.maxLen = maxPrivateKey
	}
	return nil
}

// assignTemplate is the part of gitleaks' generic `name = value` rules
// that requires an assignment operator shortly after the keyword.
const assignTemplate = `[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)`

// anchor sets r.anch when every match of the rule begins (after an optional
// \b and an optional lazy [\w.-]{0,N}? prefix) with one of its keywords, so
// the regex can run anchored at each keyword hit instead of over a window.
func (r *rule) anchor(re *syntax.Regexp, ncap int) {
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	i := 0
	wordB := false
	if i < len(subs) && subs[i].Op == syntax.OpWordBoundary {
		wordB = true
		i++
	}
	var prefix *[256]bool
	prefixMax := 0
	if i < len(subs) && subs[i].Op == syntax.OpRepeat && subs[i].Min == 0 && subs[i].Max > 0 && subs[i].Max <= 64 &&
		subs[i].Sub[0].Op == syntax.OpCharClass && !matchesNewline(subs[i].Sub[0]) {
		prefix = classBytes(subs[i].Sub[0])
		prefixMax = subs[i].Max
		i++
	}
	rest := subs[i:]
	if len(rest) == 0 {
		return
	}
	restRe := &syntax.Regexp{Op: syntax.OpConcat, Sub: rest}
	set, _, ok := literals(restRe)
	if !ok || len(set) == 0 {
		return
	}
	for _, w := range set {
		found := false
		for _, k := range r.keywords {
			if strings.HasPrefix(w, k) {
				found = true
				break
			}
		}
		if !found {
			return
		}
	}
	all := append([]*syntax.Regexp{{Op: syntax.OpBeginText}}, subs[:i]...)
	if prefix != nil {
		all = all[:len(all)-1] // drop the lazy prefix
	}
	all = append(all, rest...)
	src := (&syntax.Regexp{Op: syntax.OpConcat, Sub: all}).String()
	anch, err := regexp.Compile(src)
	if err != nil || anch.NumSubexp() != ncap {
		return
	}
	r.anch, r.wordB, r.prefix, r.prefixMax = anch, wordB, prefix, prefixMax
	r.maxLen = maxLen(restRe)
	r.span = new([256]bool)
	addBytes(restRe, r.span)
}

// classBytes returns the ASCII bytes a character class matches.
func classBytes(re *syntax.Regexp) *[256]bool {
	var t [256]bool
	for i := 0; i+1 < len(re.Rune); i += 2 {
		for c := re.Rune[i]; c <= re.Rune[i+1] && c < 128; c++ {
			t[c] = true
		}
	}
	return &t
}

// literals returns strings (lower case) one of which begins every match of
// re; complete reports whether they are whole matches; ok is false when no
// such set is known.
func literals(re *syntax.Regexp) (set []string, complete, ok bool) {
	const limit = 256
	switch re.Op {
	case syntax.OpLiteral:
		return []string{strings.ToLower(string(re.Rune))}, true, true
	case syntax.OpCharClass:
		var out []string
		seen := map[string]bool{}
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i+1]-re.Rune[i] > 16 {
				return nil, false, false
			}
			for c := re.Rune[i]; c <= re.Rune[i+1]; c++ {
				s := strings.ToLower(string(c))
				if !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
		if len(out) > 16 {
			return nil, false, false
		}
		return out, true, true
	case syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpBeginText, syntax.OpBeginLine:
		return []string{""}, true, true
	case syntax.OpCapture:
		return literals(re.Sub[0])
	case syntax.OpConcat:
		acc := []string{""}
		for _, sub := range re.Sub {
			s, c, ok := literals(sub)
			if !ok {
				return acc, false, true
			}
			if len(acc)*len(s) > limit {
				return acc, false, true
			}
			var next []string
			for _, a := range acc {
				for _, b := range s {
					next = append(next, a+b)
				}
			}
			acc = next
			if !c {
				return acc, false, true
			}
		}
		return acc, true, true
	case syntax.OpAlternate:
		var out []string
		complete = true
		for _, sub := range re.Sub {
			s, c, ok := literals(sub)
			if !ok {
				return nil, false, false
			}
			complete = complete && c
			out = append(out, s...)
		}
		return out, complete, len(out) <= limit
	case syntax.OpQuest:
		s, c, ok := literals(re.Sub[0])
		if !ok {
			return nil, false, false
		}
		return append(s, ""), c, true
	case syntax.OpPlus:
		s, _, ok := literals(re.Sub[0])
		return s, false, ok
	case syntax.OpRepeat:
		if re.Min == 0 {
			return nil, false, false
		}
		s, _, ok := literals(re.Sub[0])
		return s, false, ok
	}
	return nil, false, false
}

// matchesNewline reports whether re can match a '\n'.
func matchesNewline(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			if c == '\n' {
				return true
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i] <= '\n' && '\n' <= re.Rune[i+1] {
				return true
			}
		}
		return false
	}
	for _, s := range re.Sub {
		if matchesNewline(s) {
			return true
		}
	}
	return false
}

// maxLen bounds the byte length of a match of re (maxUnbounded if none).
func maxLen(re *syntax.Regexp) int {
	n := maxLen1(re)
	if n > maxUnbounded {
		return maxUnbounded
	}
	return n
}

// maxLen1 bounds the bytes a match of re holds (1<<30: no bound).
func maxLen1(re *syntax.Regexp) int {
	const inf = 1 << 30
	sat := func(n int) int {
		if n > inf {
			return inf
		}
		return n
	}
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, c := range re.Rune {
			if l := utf8.RuneLen(c); l > 0 && re.Flags&syntax.FoldCase == 0 {
				n += l
			} else {
				n += utf8.UTFMax
			}
		}
		return n
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0
		}
		if l := utf8.RuneLen(re.Rune[len(re.Rune)-1]); l > 0 {
			return l
		}
		return utf8.UTFMax
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax
	case syntax.OpStar, syntax.OpPlus:
		return inf
	case syntax.OpRepeat:
		if re.Max < 0 {
			return inf
		}
		return sat(re.Max * maxLen1(re.Sub[0]))
	case syntax.OpQuest, syntax.OpCapture:
		return maxLen1(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n = sat(n + maxLen1(s))
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			n = max(n, maxLen1(s))
		}
		return n
	}
	return 0
}
