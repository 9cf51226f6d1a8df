package redact

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// allowlistRegexes returns every allowlist regex of the shipped rule files.
func allowlistRegexes(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, name := range ruleFiles {
		data, err := rulesFS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var f tomlFile
		if _, err := toml.Decode(string(data), &f); err != nil {
			t.Fatal(err)
		}
		als := f.Allowlists
		if f.Allowlist != nil {
			als = append(als, *f.Allowlist)
		}
		for _, r := range f.Rules {
			als = append(als, r.Allowlists...)
		}
		for _, a := range als {
			out = append(out, a.Regexes...)
		}
	}
	return out
}

// fastInputs are inputs built from the pieces allowlists look for, in
// random case, with random glue.
func fastInputs(r *rand.Rand, n int) []string {
	words := []string{"access", "accessibility", "api", "API_", "apiKey", "rapid", "capital", "author", "auth", "Authentication-Results",
		"credential", "credentials_id", "withCredentials", "key", "KEY", "keyId", "primary_key", "turkey", "Monkey", "DONKEY", "keying",
		"secret", "secret_name", "UserSecretsId", "csrf_token", "token", "token_url", "public_token", "io.jsonwebtoken : jjwt",
		"=", "=\n", "A_B=\nC_D=\n", "a.b=\nc.d=", ":jar:", "X-MS-Exchange-Organization-Auth", "keyvault_name", " ", "\"", "-", ".", "_",
		"ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW", "AKIAQ7XK2MPZ9LWR4TYV", "true", "${FOO}", "%s", "{{ .Values.x }}", "/usr/bin/x",
		"\u017fecret", "\u212aey"}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range 1 + r.IntN(6) {
			w := words[r.IntN(len(words))]
			switch r.IntN(3) {
			case 0:
				w = strings.ToUpper(w)
			case 1:
				w = strings.ToLower(w)
			}
			b.WriteString(w)
		}
		out[i] = b.String()
	}
	return out
}

// TestFastRegexp_Equivalent proves the split matcher answers exactly like
// Go's regexp for every allowlist regex of the rule files.
func TestFastRegexp_Equivalent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := fastInputs(r, 4000)
	split := 0
	for _, expr := range allowlistRegexes(t) {
		want := regexp.MustCompile(expr)
		got, err := compileFast(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got.ac != nil || got.need != nil {
			split++
		}
		for _, in := range inputs {
			if w, g := want.MatchString(in), got.Match([]byte(in)); w != g {
				t.Fatalf("%q on %q: fast %v, regexp %v", expr, in, g, w)
			}
		}
	}
	if split == 0 {
		t.Fatal("no allowlist regex was split: the test proves nothing")
	}
	t.Logf("%d allowlist regexes split or prefiltered", split)
}

// FuzzFastRegexp compares the split and prefiltered matchers with Go's
// regexp on arbitrary input, for every allowlist regex they apply to.
func FuzzFastRegexp(f *testing.F) {
	for _, in := range fastInputs(rand.New(rand.NewPCG(3, 4)), 64) {
		f.Add(in)
	}
	type pair struct {
		want *regexp.Regexp
		got  *fastRegexp
	}
	var ps []pair
	for _, expr := range allowlistRegexes(f) {
		got, err := compileFast(expr)
		if err != nil {
			f.Fatal(err)
		}
		if got.ac != nil || got.need != nil {
			ps = append(ps, pair{regexp.MustCompile(expr), got})
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, p := range ps {
			if w, g := p.want.MatchString(in), p.got.Match([]byte(in)); w != g {
				t.Fatalf("%q on %q: fast %v, regexp %v", p.want, in, g, w)
			}
		}
	})
}
