package redact

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Differential tests of the fast paths against the plain ones they
// replace: any divergence changes findings, so it must fail here.

// entropyPlain is entropy without the logarithm cache.
func entropyPlain(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	n := float64(len(b))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// randomBytes returns n bytes drawn from alphabet.
func randomBytes(r *rand.Rand, alphabet string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}

// Ensure entropy returns bit for bit what the plain formula does.
func TestEntropy_Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	alphabets := []string{"ab", "abc", "0123456789abcdef", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=", "aaaaaaaab"}
	for i := range 20000 {
		b := randomBytes(r, alphabets[i%len(alphabets)], r.IntN(300))
		if got, want := entropy(b), entropyPlain(b); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("entropy(%q) = %v, want %v", b, got, want)
		}
	}
}

// containsStopwordPlain is gitleaks' stopword check: strings.ToLower,
// then strings.Contains.
func containsStopwordPlain(s []byte, words []string) bool {
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

// Ensure an allowlist's stopword check (the stopSet for ASCII text,
// Unicode lowering otherwise) answers like strings.ToLower and
// strings.Contains.
func TestContainsStopword_Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	words := [][]string{{"abc"}, {"ab", "b"}, {"k", "s"}, {""}, {"é"}, {"your_api_key", "placeholder", "014df517-39d1"}}
	lists := make([]*allowlist, len(words))
	for i, ws := range words {
		lists[i] = &allowlist{stop: ws}
	}
	for i := range 50000 {
		ws := words[i%len(words)]
		s := randomBytes(r, "abcABC_ksKS\xc3\xa9\xe2\x84\xaa_-yourAPIKEYplaceholder014df517-39d1", r.IntN(24))
		want := containsStopwordPlain(s, ws)
		if got := containsStopword(s, ws); got != want {
			t.Fatalf("containsStopword(%q, %q) = %v, want %v", s, ws, got, want)
		}
		// An allowlist with so few words answers the same, through its
		// stopSet for ASCII text.
		if got := lists[i%len(words)].stopword(s); got != want && len(s) > 0 {
			t.Fatalf("allowlist.stopword(%q) over %q = %v, want %v", s, ws, got, want)
		}
	}
}

// scanHits returns the occurrences scan (or scanAll) reports, in order.
func scanHits(m *acMatcher, src []byte, all bool) [][2]int {
	var out [][2]int
	fn := func(id, start int) { out = append(out, [2]int{id, start}) }
	if all {
		m.scanAll(src, fn)
	} else {
		m.scan(src, fn)
	}
	return out
}

// acPatternSets are automata to compare scan with scanAll on: short and
// overlapping patterns, one- and two-byte ones, repeats.
func acPatternSets(t testing.TB) []*acMatcher {
	t.Helper()
	e, err := New(Config{Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	sets := []*acMatcher{e.kw}
	for _, ps := range [][]string{
		{"a"}, {"ab"}, {"abc"}, {"a", "ab", "abc", "bc", "c"}, {"aa", "aaa", "aaaa"}, {"s.", "ey", "key", "api", "apikey", "eyj"},
		{"abab", "bab", "ba"}, {"x", "xyzzy", "yz"}, {"hunter2", "aHVudGVy", "68756e"}, {"ab", "ab", "b"},
		{"abcd", "abcx", "bcyz", "cab", "zz"}, {"keys", "apis", "ey_", "s-ap"},
	} {
		sets = append(sets, newAC(ps, true), newAC(ps, false))
	}
	return sets
}

// Ensure scan reports exactly what the plain DFA does, in the same order.
func TestACScan_Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	sets := acPatternSets(t)
	var texts [][]byte
	for _, p := range []string{"testdata/source.go.txt"} {
		if b, err := os.ReadFile(p); err == nil {
			texts = append(texts, b)
		}
	}
	files, _ := filepath.Glob("testdata/corpus/*/*")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			texts = append(texts, b)
		}
	}
	for range 3000 {
		texts = append(texts, randomBytes(r, "abcxyzABCKEYSey.s_-api\n ", r.IntN(64)))
		texts = append(texts, randomBytes(r, "abcdxyz", r.IntN(32)))
	}
	for _, c := range secretCases() {
		texts = append(texts, []byte(c))
	}
	for _, m := range sets {
		if m.tri == nil || m.tri1 == nil {
			t.Fatal("no skip table: the test proves nothing")
		}
		for _, src := range texts {
			if got, want := scanHits(m, src, false), scanHits(m, src, true); !slices.Equal(got, want) {
				t.Fatalf("scan(%.200q) = %v, want %v", src, got, want)
			}
		}
	}
}

// secretCases are texts with keyword hits.
func secretCases() []string {
	return []string{
		"key", "ey", "s.", "apikey=1234", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW",
		"AKIAQ7XK2MPZ2LWR4TYV", "xoxb-1234", "api_key = \"q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW\"", "sk", "k", "",
	}
}

// FuzzACScan compares scan with scanAll on arbitrary text.
func FuzzACScan(f *testing.F) {
	for _, c := range secretCases() {
		f.Add([]byte(c))
	}
	sets := acPatternSets(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, m := range sets {
			if got, want := scanHits(m, src, false), scanHits(m, src, true); !slices.Equal(got, want) {
				t.Fatalf("scan(%q) = %v, want %v", src, got, want)
			}
		}
	})
}

// anchoredTexts are texts to run the anchored rules on: the test corpus,
// secret-looking cases and random text around the rules' keywords.
func anchoredTexts(t testing.TB, e *Engine) [][]byte {
	t.Helper()
	var texts [][]byte
	files, _ := filepath.Glob("testdata/corpus/*/*")
	files = append(files, "testdata/source.go.txt")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			texts = append(texts, b)
		}
	}
	r := rand.New(rand.NewPCG(4, 4))
	var kws []string
	for _, ru := range e.rules {
		kws = append(kws, ru.keywords...)
	}
	glue := []string{" ", "=", " = ", ": ", "\"", "'", "\n", "\t", "_", "-", ".", "/", "(", ")", "{", "}", "`", ";", "\\n", "é", "\xff", "\u212a"}
	for range 4000 {
		var b strings.Builder
		for range 1 + r.IntN(6) {
			switch r.IntN(3) {
			case 0:
				k := kws[r.IntN(len(kws))]
				if r.IntN(2) == 0 {
					k = strings.ToUpper(k)
				}
				b.WriteString(k)
			case 1:
				b.WriteString(glue[r.IntN(len(glue))])
			default:
				b.Write(randomBytes(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=_-", r.IntN(60)))
			}
		}
		texts = append(texts, []byte(b.String()))
	}
	return texts
}

// Ensure running an anchored rule up to spanEnd finds what running it up
// to the window's end does, at every keyword hit.
func TestSpanEnd_Exact(t *testing.T) {
	e, err := New(Config{Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	runs, shorter := 0, 0
	for _, src := range anchoredTexts(t, e) {
		e.kw.scanAll(src, func(id, p int) {
			for _, ri := range e.kwRules[id] {
				r := e.rules[ri]
				if !r.ready() || r.anch == nil {
					continue
				}
				hi := min(len(src), p+r.maxLen+1)
				if !r.multiline {
					hi = min(hi, lineEnd(src, p, hi-p))
				}
				end := spanEnd(r.span, src, p, hi)
				runs++
				if end < hi {
					shorter++
				}
				got, want := r.anch.FindSubmatchIndex(src[p:end]), r.anch.FindSubmatchIndex(src[p:hi])
				if !slices.Equal(got, want) {
					t.Fatalf("%s at %d of %q: %v up to %d, %v up to %d", r.id, p, src, got, end, want, hi)
				}
			}
		})
	}
	if shorter == 0 {
		t.Fatalf("spanEnd never cut a window in %d runs: the test proves nothing", runs)
	}
	t.Logf("%d runs, %d on a shorter input", runs, shorter)
}

// Ensure stopSet answers as the automaton it replaces: newAC over the
// words with ASCII case folded.
func TestStopSet_Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	e, err := New(Config{Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	var generic []string
	for _, ru := range e.rules {
		ru.ready()
		for _, a := range ru.allow {
			if len(a.stop) > len(generic) {
				generic = a.stop
			}
		}
	}
	if len(generic) < 1000 {
		t.Fatalf("the generic rule's stopwords: %d, want over 1000", len(generic))
	}
	sets := [][]string{
		generic,
		{"abc", "abd", "bcd", "ab", "x", "é", "éa", "\xc3\xa9tat", "zzzz", "abcabc"},
		{"aaa", "aaaa", "aa"},
		{"k\xe2\x84\xaa", "014df517-39d1", "your_api_key", "a-b", "_ec2_"},
	}
	sts, acs := make([]*stopSet, len(sets)), make([]*acMatcher, len(sets))
	for i, ws := range sets {
		sts[i], acs[i] = newStopSet(ws), newAC(ws, true)
	}
	for i := range 60000 {
		ws, st, ac := sets[i%len(sets)], sts[i%len(sets)], acs[i%len(sets)]
		var s []byte
		switch i % 3 {
		case 0: // words glued together with random case and noise
			for n := r.IntN(4); n >= 0; n-- {
				s = append(s, randomBytes(r, "xyzXYZ09-_\xc3\xa9", r.IntN(4))...)
				w := []byte(ws[r.IntN(len(ws))])
				if cut := r.IntN(3); cut > 0 && len(w) > cut {
					w = w[:len(w)-cut] // a prefix: a near miss
				}
				for j := range w {
					if r.IntN(2) == 0 && 'a' <= w[j] && w[j] <= 'z' {
						w[j] -= 'a' - 'A'
					}
				}
				s = append(s, w...)
			}
		default:
			s = randomBytes(r, "abcdABCDxyzé\xe2\x84\xaa_-014dfKk", r.IntN(40))
		}
		if got, want := st.match(s), ac.match(s); got != want {
			t.Fatalf("stopSet.match(%q) over %d words = %v, want %v", s, len(ws), got, want)
		}
	}
}
