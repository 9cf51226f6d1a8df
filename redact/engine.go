package redact

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"math/bits"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Config selects what an Engine finds.
type Config struct {
	// Secrets runs the secret rules (gitleaks' default set plus custos'
	// own). DefaultConfig sets it.
	Secrets bool
	// Known are exact values to find, with their base64 (standard and URL
	// alphabets, padded and not), hex (lower and upper case) and URL
	// query-escaped forms. Values shorter than 4 bytes are ignored.
	Known []string
	// KnownLabels name the Known values, index by index (a stored secret's
	// name); findings of a value carry its label. Optional.
	KnownLabels []string
	// Detectors are extra detectors (redact/pii provides them); their
	// findings join the rest.
	Detectors []Detector
	// AllowWords are extra stopwords: a secret candidate containing one
	// (case-insensitively) is not a finding.
	AllowWords []string
	// AllowRegexes are extra allowlist regexes matched against the
	// candidate secret; a candidate matching one is not a finding.
	AllowRegexes []string
}

// DefaultConfig returns the configuration with the secret rules on.
func DefaultConfig() Config {
	return Config{Secrets: true}
}

// minKnownLen is the shortest Known value the engine looks for.
const minKnownLen = 4

// RuleKnown is the RuleID prefix of findings of Config.Known values; the
// suffix names the encoding (RuleKnown, RuleKnown+"-base64", …).
const RuleKnown = "known"

// Engine finds secrets, known values and the findings of extra detectors.
// It is compiled once by New and is safe for concurrent use.
type Engine struct {
	rules     []*rule
	global    []*allowlist
	skipped   []string
	kw        *acMatcher
	kwRules   [][]int32 // keyword id → rules using it
	user      *allowlist
	known     *acMatcher
	knownIDs  []string // known pattern id → rule id
	knownLbl  []string // known pattern id → label
	detectors []Detector
	pool      sync.Pool
	id        uint64 // unique per Engine of this process
}

// engineIDs numbers Engines.
var engineIDs atomic.Uint64

// ID returns a number no other Engine of this process has, for caches of
// its results that must not keep the Engine itself alive.
func (e *Engine) ID() uint64 { return e.id }

// rulesOnce caches the parsed rule files: they are the same for every Engine.
var rulesOnce = sync.OnceValues(loadRules)

// New compiles an Engine. It returns an error if an allowlist regex in cfg
// does not compile.
func New(cfg Config) (*Engine, error) {
	e := &Engine{detectors: slices.Clone(cfg.Detectors), id: engineIDs.Add(1)}
	if cfg.Secrets {
		rs, err := rulesOnce()
		if err != nil {
			return nil, fmt.Errorf("load rules: %w", err)
		}
		e.rules, e.global, e.skipped = rs.rules, rs.global, rs.skipped
		e.kw, e.kwRules = rs.kw, rs.kwRules
	}
	if len(cfg.AllowWords) > 0 || len(cfg.AllowRegexes) > 0 {
		al, err := compileAllowlist(tomlAllowlist{Regexes: cfg.AllowRegexes, StopWords: cfg.AllowWords})
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		e.user = al
	}
	e.compileKnown(cfg.Known, cfg.KnownLabels)
	e.pool.New = func() any { return new(scratch) }
	return e, nil
}

// compileKnown builds the automaton over the Known values and their encodings.
func (e *Engine) compileKnown(values, labels []string) {
	seen := map[string]bool{}
	var pats []string
	label := ""
	add := func(p, id string) {
		if len(p) >= minKnownLen && !seen[p] {
			seen[p] = true
			pats = append(pats, p)
			e.knownIDs = append(e.knownIDs, id)
			e.knownLbl = append(e.knownLbl, label)
		}
	}
	for i, v := range values {
		if len(v) < minKnownLen {
			continue
		}
		label = ""
		if i < len(labels) {
			label = labels[i]
		}
		b := []byte(v)
		add(v, RuleKnown)
		add(base64.StdEncoding.EncodeToString(b), RuleKnown+"-base64")
		add(base64.RawStdEncoding.EncodeToString(b), RuleKnown+"-base64")
		add(base64.URLEncoding.EncodeToString(b), RuleKnown+"-base64url")
		add(base64.RawURLEncoding.EncodeToString(b), RuleKnown+"-base64url")
		h := hex.EncodeToString(b)
		add(h, RuleKnown+"-hex")
		add(strings.ToUpper(h), RuleKnown+"-hex")
		add(url.QueryEscape(v), RuleKnown+"-url")
		add(url.PathEscape(v), RuleKnown+"-url")
	}
	if len(pats) > 0 {
		e.known = newAC(pats, false)
	}
}

// Rules returns the number of secret rules loaded.
// It compiles every rule (rules are otherwise compiled on their first hit).
func (e *Engine) Rules() int {
	n := 0
	for _, r := range e.rules {
		if r.ready() {
			n++
		}
	}
	return n
}

// Skipped returns the ids of the rules of the embedded rule files that the
// engine does not run, each with the reason (path-only rules, regexes RE2
// cannot compile).
// It compiles every rule, as Rules does.
func (e *Engine) Skipped() []string {
	out := slices.Clone(e.skipped)
	for _, r := range e.rules {
		if !r.ready() {
			out = append(out, r.id+": "+r.whyNot)
		}
	}
	return out
}

// scratch is per-call working memory, pooled.
type scratch struct {
	found   []Finding
	windows []window
}

// window is a span of the input a window-mode rule runs over.
type window struct {
	rule   int32
	lo, hi int
}

// Find returns the findings in src, sorted by Start and not overlapping:
// of overlapping findings the one starting first is kept, then the longest.
func (e *Engine) Find(src []byte) []Finding {
	sc, _ := e.pool.Get().(*scratch)
	defer e.pool.Put(sc)
	sc.found = sc.found[:0]
	sc.windows = sc.windows[:0]
	emit := func(f Finding) {
		if f.Start >= 0 && f.End <= len(src) && f.Start < f.End {
			sc.found = append(sc.found, f)
		}
	}
	if e.kw != nil {
		e.kw.scan(src, func(id, p int) {
			for _, ri := range e.kwRules[id] {
				r := e.rules[ri]
				if !r.ready() {
					continue
				}
				if r.anch != nil {
					e.runAnchored(r, src, p, emit)
					continue
				}
				lo, hi := r.window(src, p, e.kw.lens[id])
				sc.windows = append(sc.windows, window{ri, lo, hi})
			}
		})
		e.runWindows(src, sc.windows, emit)
	}
	if e.known != nil {
		e.known.scan(src, func(id, p int) {
			emit(Finding{Kind: KindKnown, RuleID: e.knownIDs[id], Start: p, End: p + e.known.lens[id], Label: e.knownLbl[id]})
		})
	}
	for _, d := range e.detectors {
		d.Detect(src, emit)
	}
	return resolve(sc.found)
}

// resolve sorts findings and drops overlaps (earliest start, then longest
// wins), returning a fresh slice.
func resolve(found []Finding) []Finding {
	if len(found) == 0 {
		return nil
	}
	slices.SortFunc(found, func(a, b Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := make([]Finding, 0, len(found))
	end := -1
	for _, f := range found {
		if f.Start >= end {
			out = append(out, f)
			end = f.End
			continue
		}
		// A credential overlapping personal data wins over it: a token in a
		// URL's user info (https://ghp_…@github.com) is a SECRET, not the
		// local part of an email address.
		last := &out[len(out)-1]
		label := last.Label
		if credential(f.Kind) && !credential(last.Kind) {
			*last = f
			end = f.End
		}
		// The span still holds the known value the loser found.
		if last.Label == "" {
			last.Label = label
			if last.Label == "" {
				last.Label = f.Label
			}
		}
	}
	return out
}

// credential reports whether k is a credential kind rather than personal data.
func credential(k Kind) bool { return k == KindSecret || k == KindKnown }

// isWord reports whether b is an ASCII word character (RE2's \w).
func isWord(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// lineEnd returns the index just past the '\n' ending the line at i (or
// len(src)), looking at most limit bytes ahead.
func lineEnd(src []byte, i, limit int) int {
	end := min(len(src), i+limit)
	for j := i; j < end; j++ {
		if src[j] == '\n' {
			return j + 1
		}
	}
	return end
}

// lineStart returns the index of the start of the line holding i, looking
// at most limit bytes back.
func lineStart(src []byte, i, limit int) int {
	stop := max(0, i-limit)
	for j := i - 1; j >= stop; j-- {
		if src[j] == '\n' {
			return j + 1
		}
	}
	return stop
}

// runAnchored runs an anchored rule at the keyword hit p.
func (e *Engine) runAnchored(r *rule, src []byte, p int, emit func(Finding)) {
	if r.wordB && p > 0 && isWord(src[p-1]) == isWord(src[p]) {
		return
	}
	if r.assign && !assignAhead(src, p, r.generic) {
		return
	}
	hi := min(len(src), p+r.maxLen+1)
	if !r.multiline {
		hi = min(hi, lineEnd(src, p, hi-p))
	}
	m := r.anch.FindSubmatchIndex(src[p:spanEnd(r.span, src, p, hi)])
	if m == nil {
		return
	}
	for i := range m {
		if m[i] >= 0 {
			m[i] += p
		}
	}
	if m[1] == hi && hi < len(src) && src[hi-1] != '\n' {
		return // cut by the window: `$` matched where the text goes on
	}
	mstart := p
	if r.prefix != nil {
		for n := 0; mstart > 0 && n < r.prefixMax && r.prefix[src[mstart-1]]; n++ {
			mstart--
		}
	}
	e.check(r, src, m, mstart, emit)
}

// spanEnd returns an end for running a regex anchored at p that gives the
// same result as hi: just past the first byte from p on that no match can
// hold (span), if there is one before hi. No match reaches that byte, and
// every assertion a match checks (\b, $) looks at the same bytes either
// way; Go's backtracker, much faster than its NFA, only runs on short
// inputs.
func spanEnd(span *[256]bool, src []byte, p, hi int) int {
	for z := p; z < hi; z++ {
		if !span[src[z]] {
			return z + 1
		}
	}
	return hi
}

// assignAhead is a necessary condition for gitleaks' generic `name = value`
// template: within a few name/space/quote bytes after the keyword at p
// comes an assignment operator. With value, it also checks the value of
// the generic-api-key rule: a run of at least 10 value bytes ([\w.=+/-])
// with 12 distinct ones (entropy > 3.5 needs them), then a terminator.
func assignAhead(src []byte, p int, value bool) bool {
	end := min(len(src), p+48)
	o := -1
	for i := p; i < end && o < 0; i++ {
		switch c := src[i]; {
		case c == '=' || c == '>' || c == ':' || c == ',' || c == '|' || c == '?':
			o = i
		case isWord(c) || isSpace(c) || c == '.' || c == '-' || c == '\'' || c == '"':
		default:
			return false
		}
	}
	if o < 0 {
		return false
	}
	if !value {
		return true
	}
	i := o
	for n := 0; i < len(src) && n < 4 && strings.IndexByte("=>:|?,", src[i]) >= 0; n++ {
		i++
	}
	for n := 0; i < len(src) && n < 5 && (src[i] == '`' || src[i] == '\'' || src[i] == '"' || src[i] == '=' || isSpace(src[i])); n++ {
		i++
	}
	start := i
	for start > o && src[start-1] == '=' {
		start--
	}
	for i < len(src) && (isWord(src[i]) || strings.IndexByte(".=+/-", src[i]) >= 0) {
		i++
	}
	if i-start < 10 || i < len(src) && !isSpace(src[i]) && strings.IndexByte("`'\";\\", src[i]) < 0 {
		return false
	}
	var seen [256]bool
	distinct := 0
	for _, c := range src[start:i] {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	return distinct >= 12
}

// isSpace reports whether c is in RE2's \s.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// window returns the span a window-mode rule runs over for a keyword hit.
func (r *rule) window(src []byte, p, kwLen int) (lo, hi int) {
	if r.multiline {
		lo = lineStart(src, max(0, p-r.maxLen), 1024)
		hi = lineEnd(src, min(len(src), p+kwLen+r.maxLen), 1024)
	} else {
		ls := lineStart(src, p, r.maxLen)
		lo = max(ls, p-r.maxLen)
		hi = lineEnd(src, p, kwLen+r.maxLen+1)
	}
	// Do not start inside a word: \b would match where it should not.
	for lo > 0 && lo < p-1 && isWord(src[lo-1]) && isWord(src[lo]) {
		lo++
	}
	return lo, hi
}

// runWindows merges the windows of each rule and runs the rule over them.
func (e *Engine) runWindows(src []byte, ws []window, emit func(Finding)) {
	if len(ws) == 0 {
		return
	}
	slices.SortFunc(ws, func(a, b window) int {
		if a.rule != b.rule {
			return int(a.rule - b.rule)
		}
		return a.lo - b.lo
	})
	for i := 0; i < len(ws); {
		w := ws[i]
		j := i + 1
		for j < len(ws) && ws[j].rule == w.rule && ws[j].lo <= w.hi {
			w.hi = max(w.hi, ws[j].hi)
			j++
		}
		i = j
		r := e.rules[w.rule]
		for _, m := range r.re.FindAllSubmatchIndex(src[w.lo:w.hi], -1) {
			for k := range m {
				if m[k] >= 0 {
					m[k] += w.lo
				}
			}
			if m[1] == w.hi && w.hi < len(src) && src[w.hi-1] != '\n' {
				continue
			}
			e.check(r, src, m, m[0], emit)
		}
	}
}

// check applies the secret group, entropy and allowlists to a match m (the
// submatch indices, absolute) and emits the finding.
func (e *Engine) check(r *rule, src []byte, m []int, mstart int, emit func(Finding)) {
	s, t := m[0], m[1]
	if r.secretGroup > 0 {
		s, t = m[2*r.secretGroup], m[2*r.secretGroup+1]
	} else {
		for g := 1; 2*g+1 < len(m); g++ {
			if m[2*g] >= 0 && m[2*g+1] > m[2*g] {
				s, t = m[2*g], m[2*g+1]
				break
			}
		}
	}
	if s < 0 {
		return
	}
	for s < t && src[s] == '\n' {
		s++
	}
	for t > s && src[t-1] == '\n' {
		t--
	}
	if s >= t {
		return
	}
	secret := src[s:t]
	if r.entropy > 0 && entropy(secret) <= r.entropy {
		return
	}
	match := src[mstart:m[1]]
	var line []byte
	lineOf := func() []byte {
		if line == nil {
			ls := lineStart(src, mstart, 4096)
			le := lineEnd(src, m[1], 4096)
			line = src[ls:le]
		}
		return line
	}
	allowed := func(a *allowlist) bool {
		if a.target == targetLine {
			return a.allowed(secret, match, lineOf())
		}
		return a.allowed(secret, match, nil)
	}
	for _, a := range e.global {
		if (a.rules == nil || a.rules[r.id]) && allowed(a) {
			return
		}
	}
	for _, a := range r.allow {
		if allowed(a) {
			return
		}
	}
	if e.user != nil && allowed(e.user) {
		return
	}
	emit(Finding{Kind: KindSecret, RuleID: r.id, Start: s, End: t})
}

// entropy returns the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	if len(b) < 256 {
		// Secrets are short: byte-sized counts are an eighth of the
		// memory to clear and to bring into the cache.
		var counts [256]uint8
		return entropyCounts(&counts, b)
	}
	var counts [256]int
	return entropyCounts(&counts, b)
}

// entropyCounts is entropy with counts, all zero, to count b's bytes in;
// a count must hold len(b).
func entropyCounts[C uint8 | int](counts *[256]C, b []byte) float64 {
	var present [4]uint64 // the byte values in b
	for _, c := range b {
		counts[c]++
		present[c>>6] |= 1 << (c & 63)
	}
	n := float64(len(b))
	h := 0.0
	// Most counts are small and repeat: their logarithms are computed once
	// (the sum is the same, term by term and in the same order of byte
	// values, as without the cache; only the values present are visited).
	var logs [16]float64
	for w, set := range present {
		for set != 0 {
			c := int(counts[w<<6|bits.TrailingZeros64(set)])
			set &= set - 1
			p := float64(c) / n
			var l float64
			if c < len(logs) {
				if logs[c] == 0 {
					logs[c] = math.Log2(p)
				}
				l = logs[c]
			} else {
				l = math.Log2(p)
			}
			h -= p * l
		}
	}
	return h
}
