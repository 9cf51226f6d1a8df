package redact

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
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
		"\u017fecret", "\u212aey", "$FOO", "$", "${1}", "%PATH%", "%d", "@VAR@", "{", "}", "{12}", "{{", "}}", "0123456789abcdef", "/Users/", "/etc/",
		"sha512-", "[[SECRET_1]]", "xxxxxx", "****", "<", ">", "your_", "_here", "null", "false", "\xff", "\u00e9", "Ǆ", "\t"}
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

// shapeRegexes are regexes with anchors in every position, to test shape
// beyond the shipped allowlists.
var shapeRegexes = []string{
	`^$`, `^a*$`, `^a+$`, `^(?:a|b)+c$`, `^(?i)k+$`, `^(?i)s$`, `^[^a]$`, `^.$`, `^(?s).{2,3}$`, `^\x{FFFD}$`, `^é+$`,
	`^(?:ab|c?)d`, `^\bfoo`, `^(?:$|x)`, `(?:^a|^b)c$`, `^a|b$`, `^(a$)*`, `^[a-c]{2,4}$`, `^x{0,2}y$`, `^(?i)ǆ$`,
	`^(?:[0-9]{3}|[a-f]+)-?$`, `^\$\{?[A-Z]+\}?$`, `\A\z`, `^(?m:$)`, `(?m)^a$`, `^(?U)a+?b$`,
	`(?i)^["']?(?:<[^>]*>|x{2,}|[\w-]*[_-]here|me)["']?$`, `^(?:a|b+c|d*)$`, `^(?:ab|cd)(?:ef|)(?:g|h*)$`, `(?:^x|^y)(?:z|$)`,
	`^(?:(?:a|b)(?:c|d)(?:e|f)(?:g|h)(?:i|j)(?:k|l)(?:m|n))$`, `^(?i:é|k)$`, `^(?:a|\b)$`, `^(?:x*|y)z?$`, `^(?:ab|c)(?:d|ef)$`,
}

// TestShape_Exact checks that shape never rejects an input its regex
// matches, for the allowlist regexes and shapeRegexes.
func TestShape_Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	inputs := fastInputs(r, 3000)
	for range 3000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			const alphabet = "ab c$dk{}é\xffK0-_"
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	used := 0
	for _, expr := range append(allowlistRegexes(t), shapeRegexes...) {
		re := regexp.MustCompile(expr)
		p, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		sh := shapeOf(p)
		if sh == nil {
			continue
		}
		used++
		for _, in := range inputs {
			if re.MatchString(in) && !sh.may([]byte(in)) {
				t.Fatalf("%q on %q: shape rejects a match", expr, in)
			}
		}
	}
	if used < 10 {
		t.Fatalf("only %d regexes have a shape: the test proves little", used)
	}
}

// FuzzShape is TestShape_Exact on arbitrary input.
func FuzzShape(f *testing.F) {
	for _, in := range fastInputs(rand.New(rand.NewPCG(7, 8)), 64) {
		f.Add(in)
	}
	type pair struct {
		re *regexp.Regexp
		sh *shape
	}
	var ps []pair
	for _, expr := range append(allowlistRegexes(f), shapeRegexes...) {
		p, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			f.Fatal(err)
		}
		if sh := shapeOf(p); sh != nil {
			ps = append(ps, pair{regexp.MustCompile(expr), sh})
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, p := range ps {
			if p.re.MatchString(in) && !p.sh.may([]byte(in)) {
				t.Fatalf("%q on %q: shape rejects a match", p.re, in)
			}
		}
	})
}
