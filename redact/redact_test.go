package redact_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact"
)

// MustEngine returns an engine for cfg or fails the test.
func MustEngine(tb testing.TB, cfg redact.Config) *redact.Engine {
	tb.Helper()
	e, err := redact.New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return e
}

// gen returns n random characters from alphabet, deterministic per seed, so
// fake secrets are assembled at run time and never sit in the repository.
func gen(seed uint64, alphabet string, n int) string {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	lowerAlnum  = "abcdefghijklmnopqrstuvwxyz0123456789"
	hexLower    = "0123456789abcdef"
	b64url      = alnum + "-_"
)

// secretCase is a text and the secret in it, if any.
type secretCase struct {
	name   string
	text   string
	secret string // "" for a false positive: no finding expected
}

func secretCases() []secretCase {
	awsID := "AK" + "IA" + gen(1, upperDigits, 16)
	awsSecret := gen(2, alnum+"+/", 40)
	ghp := "gh" + "p_" + gen(3, alnum, 36)
	ghFine := "github" + "_pat_" + gen(4, alnum+"_", 82)
	glpat := "gl" + "pat-" + gen(5, b64url, 20)
	slackBot := "xo" + "xb-" + gen(6, "0123456789", 12) + "-" + gen(7, "0123456789", 12) + "-" + gen(8, alnum, 24)
	stripe := "sk" + "_live_" + gen(9, alnum, 24)
	openai := "sk" + "-proj-" + gen(10, b64url, 74) + "T3Blbk" + "FJ" + gen(11, b64url, 74)
	openaiNew := "sk" + "-proj-" + gen(12, b64url, 156)
	anthropic := "sk" + "-ant-api03-" + gen(13, b64url, 93) + "AA"
	npm := "np" + "m_" + gen(14, lowerAlnum, 36)
	pypi := "pypi-" + "AgEIcHlwaS5vcmc" + gen(15, b64url, 70)
	custos := "cst" + "_ag_" + gen(16, b64url, 43)
	jwt := "ey" + "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "ey" + "J" + gen(17, alnum, 40) + "." + gen(18, b64url, 43)
	pgPass := gen(19, alnum, 18)
	pw := gen(20, alnum+"!#%&", 16)
	generic := gen(21, alnum, 32)
	keyBody := gen(22, alnum+"+/", 64) + "\n" + gen(23, alnum+"+/", 64) + "\n" + gen(24, alnum+"+/", 30)
	pem := "-----BEGIN RSA " + "PRIVATE KEY-----\n" + keyBody + "\n-----END RSA " + "PRIVATE KEY-----"
	sha := gen(25, hexLower, 40)
	uuid := gen(26, hexLower, 8) + "-" + gen(27, hexLower, 4) + "-4" + gen(28, hexLower, 3) + "-a" + gen(29, hexLower, 3) + "-" + gen(30, hexLower, 12)
	integrity := "sha512-" + gen(31, alnum+"+/", 86) + "=="

	return []secretCase{
		{"AWS/AccessKeyID", "aws_access_key_id = " + awsID + "\n", awsID},
		{"AWS/SecretKey", "aws_secret_access_key = " + awsSecret + "\n", awsSecret},
		{"AWS/Example", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", ""},
		{"GitHub/PAT", "token: " + ghp + "\n", ghp},
		{"GitHub/FineGrained", "GH=" + ghFine + "\n", ghFine},
		{"AWS/InsideWord", "xx" + awsID + "\n", ""},
		{"GitLab/PAT", `"` + glpat + `"`, glpat},
		{"Slack/Bot", "SLACK=" + slackBot + "\n", slackBot},
		{"Stripe/Live", "stripe.Key = \"" + stripe + "\"\n", stripe},
		{"OpenAI/Key", "OPENAI_API_KEY=" + openai + "\n", openai},
		{"OpenAI/ProjectKey", "OPENAI_API_KEY=" + openaiNew + "\n", openaiNew},
		{"Anthropic/Key", "ANTHROPIC_API_KEY=" + anthropic + "\n", anthropic},
		{"Anthropic/Placeholder", "ANTHROPIC_API_KEY=YOUR_API_KEY\n", ""},
		{"npm/Token", "//registry.npmjs.org/:_authToken=" + npm + "\n", npm},
		{"PyPI/Token", "password = " + pypi + "\n", pypi},
		{"custos/Token", "Authorization: " + custos + "\n", custos},
		{"PrivateKey", "key := `" + pem + "`\n", pem},
		{"JWT", "Authorization: " + jwt + "\n", jwt},
		{"ConnString/Postgres", "DATABASE_URL=postgres://app:" + pgPass + "@db.internal:5432/app\n", pgPass},
		{"ConnString/Placeholder", "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\n", ""},
		{"ConnString/NoPassword", "DATABASE_URL=postgres://app@db:5432/app\n", ""},
		{"Password/Assignment", `db.password = "` + pw + `"` + "\n", pw},
		{"Password/LowEntropy", `password = "aaaaaaaaaa"` + "\n", ""},
		{"Password/Words", `password = "correct-horse"` + "\n", ""},
		{"Generic/APIKey", "api_key = \"" + generic + "\"\n", generic},
		{"Generic/YourAPIKey", "api_key = \"YOUR_API_KEY\"\n", ""},
		{"Generic/CommitSHA", "secret_ref: " + sha + "\n", ""},
		{"Generic/UUID", "api_key = \"" + uuid + "\"\n", ""},
		{"Lockfile/Integrity", `      "integrity": "` + integrity + `",` + "\n", ""},
		{"Lockfile/Yarn", "  integrity " + integrity + "\n", ""},
		{"Code/NoSecret", "func (s *Session) Key(token string) error { return s.auth.Check(token) }\n", ""},
	}
}

// Ensure each family of secrets is found, exactly its bytes, and that
// look-alikes are not.
func TestFind_Secrets(t *testing.T) {
	e := MustEngine(t, redact.DefaultConfig())
	for _, tc := range secretCases() {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte("prefix line\n" + tc.text + "suffix line\n")
			fs := e.Find(src)
			if tc.secret == "" {
				if len(fs) != 0 {
					t.Fatalf("false positive: %+v (%q)", fs, src[fs[0].Start:fs[0].End])
				}
				return
			}
			if got, want := len(fs), 1; got != want {
				t.Fatalf("findings = %+v, want 1", fs)
			}
			if got, want := string(src[fs[0].Start:fs[0].End]), tc.secret; got != want {
				t.Fatalf("secret = %q (rule %s), want %q", got, fs[0].RuleID, want)
			}
			if got, want := fs[0].Kind, redact.KindSecret; got != want {
				t.Fatalf("kind = %q, want %q", got, want)
			}
		})
	}
}

// Ensure the rule files load and only a few rules are skipped.
func TestRules(t *testing.T) {
	e := MustEngine(t, redact.DefaultConfig())
	if got := e.Rules(); got < 230 {
		t.Fatalf("Rules() = %d, want ≥ 230", got)
	}
	if got, max := len(e.Skipped()), 5; got > max {
		t.Fatalf("skipped %d rules, want ≤ %d: %v", got, max, e.Skipped())
	}
	t.Logf("rules loaded %d, skipped %v", e.Rules(), e.Skipped())
	if got := MustEngine(t, redact.Config{}).Rules(); got != 0 {
		t.Fatalf("Rules() without Secrets = %d, want 0", got)
	}
}

// Ensure Known values are found raw and in every encoding.
func TestFind_Known(t *testing.T) {
	value := "v@ult s3cret/" + gen(40, alnum, 12)
	e := MustEngine(t, redact.Config{Known: []string{value, "abc"}})
	b := []byte(value)
	forms := map[string]string{
		"raw":       value,
		"base64":    base64.StdEncoding.EncodeToString(b),
		"rawbase64": base64.RawStdEncoding.EncodeToString(b),
		"base64url": base64.URLEncoding.EncodeToString(b),
		"hex":       hex.EncodeToString(b),
		"HEX":       strings.ToUpper(hex.EncodeToString(b)),
		"query":     url.QueryEscape(value),
		"path":      url.PathEscape(value),
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			src := []byte("x=" + form + ";")
			fs := e.Find(src)
			if len(fs) != 1 {
				t.Fatalf("findings = %+v, want 1", fs)
			}
			if got, want := string(src[fs[0].Start:fs[0].End]), form; got != want {
				t.Fatalf("found %q, want %q", got, want)
			}
			if got, want := fs[0].Kind, redact.KindKnown; got != want {
				t.Fatalf("kind = %q, want %q", got, want)
			}
		})
	}
	// Ensure values shorter than 4 bytes are ignored.
	if fs := e.Find([]byte("abc abc")); len(fs) != 0 {
		t.Fatalf("short value found: %+v", fs)
	}
}

// Ensure user stopwords and regexes allow candidates.
func TestFind_Allow(t *testing.T) {
	ghp := "gh" + "p_" + gen(3, alnum, 36)
	src := []byte("token: " + ghp + "\n")
	if fs := MustEngine(t, redact.Config{Secrets: true, AllowWords: []string{ghp[10:16]}}).Find(src); len(fs) != 0 {
		t.Fatalf("AllowWords: %+v", fs)
	}
	if fs := MustEngine(t, redact.Config{Secrets: true, AllowRegexes: []string{"^ghp_"}}).Find(src); len(fs) != 0 {
		t.Fatalf("AllowRegexes: %+v", fs)
	}
	if _, err := redact.New(redact.Config{AllowRegexes: []string{"("}}); err == nil {
		t.Fatal("bad regex: want error")
	}
}

// detectorFunc adapts a function to redact.Detector.
type detectorFunc func(src []byte, emit func(redact.Finding))

func (f detectorFunc) Detect(src []byte, emit func(redact.Finding)) { f(src, emit) }

// Ensure detector findings join, sorted and without overlaps.
func TestFind_DetectorsOverlap(t *testing.T) {
	d := detectorFunc(func(src []byte, emit func(redact.Finding)) {
		if i := bytes.Index(src, []byte("bob@example.com")); i >= 0 {
			emit(redact.Finding{Kind: redact.KindEmail, RuleID: "email", Start: i, End: i + 15})
			emit(redact.Finding{Kind: redact.KindEmail, RuleID: "inner", Start: i + 4, End: i + 11})
		}
	})
	e := MustEngine(t, redact.Config{Known: []string{"zzzz"}, Detectors: []redact.Detector{d}})
	fs := e.Find([]byte("zzzz mail bob@example.com zzzz"))
	if got, want := len(fs), 3; got != want {
		t.Fatalf("findings = %+v, want %d", fs, want)
	}
	if fs[1].RuleID != "email" || fs[0].Start != 0 || fs[2].Start != 26 {
		t.Fatalf("findings = %+v", fs)
	}
}

// Ensure placeholders are typed, numbered per kind and stable per value.
func TestSession_Redact(t *testing.T) {
	a, b := "alpha-"+gen(50, alnum, 10), "bravo-"+gen(51, alnum, 10)
	d := detectorFunc(func(src []byte, emit func(redact.Finding)) {
		for i := 0; ; {
			j := bytes.Index(src[i:], []byte("me@x.io"))
			if j < 0 {
				return
			}
			emit(redact.Finding{Kind: redact.KindEmail, RuleID: "email", Start: i + j, End: i + j + 7})
			i += j + 7
		}
	})
	e := MustEngine(t, redact.Config{Known: []string{a, b}, Detectors: []redact.Detector{d}})
	s := e.NewSession()
	out, fs := s.Redact([]byte(a + " " + b + " " + a + " me@x.io"))
	if got, want := string(out), "[[KNOWN_1]] [[KNOWN_2]] [[KNOWN_1]] [[EMAIL_1]]"; got != want {
		t.Fatalf("out = %q, want %q", got, want)
	}
	if got, want := fs[3].Placeholder, "[[EMAIL_1]]"; got != want {
		t.Fatalf("placeholder = %q, want %q", got, want)
	}
	// Ensure a second call in the same session keeps the numbering.
	out, _ = s.Redact([]byte(b + " me@x.io"))
	if got, want := string(out), "[[KNOWN_2]] [[EMAIL_1]]"; got != want {
		t.Fatalf("out = %q, want %q", got, want)
	}
	// Ensure a new session starts again.
	out, _ = e.NewSession().Redact([]byte(b))
	if got, want := string(out), "[[KNOWN_1]]"; got != want {
		t.Fatalf("out = %q, want %q", got, want)
	}
	// Ensure a placeholder already in the input is not issued.
	s2 := e.NewSession()
	out, _ = s2.Redact([]byte("[[KNOWN_1]] " + a))
	if got, want := string(out), "[[KNOWN_1]] [[KNOWN_2]]"; got != want {
		t.Fatalf("out = %q, want %q", got, want)
	}
	if got, want := string(s2.Restore(out)), "[[KNOWN_1]] "+a; got != want {
		t.Fatalf("restore = %q, want %q", got, want)
	}
}

// redacted returns a session and the redaction of a text full of secrets.
func redacted(t *testing.T) (s *redact.Session, in, out []byte) {
	t.Helper()
	var sb strings.Builder
	for _, tc := range secretCases() {
		sb.WriteString(tc.text)
	}
	sb.WriteString("[[SECRET_9]] [ [[ [[X [[KNOWN_ ]] end [")
	e := MustEngine(t, redact.Config{Secrets: true, Known: []string{"hunter2-" + gen(60, alnum, 8)}})
	s = e.NewSession()
	in = []byte(sb.String() + "known hunter2-" + gen(60, alnum, 8) + "!")
	out, fs := s.Redact(in)
	if len(fs) < 15 {
		t.Fatalf("only %d findings", len(fs))
	}
	return s, in, out
}

// Ensure Restore(Redact(x)) == x and that bytes outside findings are kept.
func TestSession_RoundTrip(t *testing.T) {
	s, in, out := redacted(t)
	if got := s.Restore(out); !bytes.Equal(got, in) {
		t.Fatalf("round trip differs:\n%q\n%q", got, in)
	}
	// Bytes outside findings: out is in with each finding replaced.
	fs := MustEngine(t, redact.Config{Secrets: true, Known: []string{"hunter2-" + gen(60, alnum, 8)}}).Find(in)
	var want []byte
	last := 0
	for _, f := range fs {
		want = append(want, in[last:f.Start]...)
		want = append(want, "<>"...)
		last = f.End
	}
	want = append(want, in[last:]...)
	got := bytes.Clone(out)
	for i := 0; ; {
		j := bytes.Index(got[i:], []byte("[["))
		if j < 0 {
			break
		}
		i += j
		k := bytes.Index(got[i:], []byte("]]"))
		ph := got[i : i+k+2]
		if bytes.Equal(s.Restore(ph), ph) { // not issued: literal text
			i++
			continue
		}
		got = append(got[:i], append([]byte("<>"), got[i+k+2:]...)...)
		i += 2
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bytes outside findings changed:\n%q\n%q", got, want)
	}
}

// Ensure the Restorer gives the restored text for every 2-chunk split and
// for 1-byte chunks.
func TestRestorer_Chunks(t *testing.T) {
	s, in, out := redacted(t)
	for cut := 0; cut <= len(out); cut++ {
		var buf bytes.Buffer
		r := s.NewRestorer(&buf)
		if _, err := r.Write(out[:cut]); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write(out[cut:]); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), in) {
			t.Fatalf("split at %d: %q", cut, buf.Bytes())
		}
	}
	var buf bytes.Buffer
	r := s.NewRestorer(&buf)
	for i := range out {
		if _, err := r.Write(out[i : i+1]); err != nil {
			t.Fatal(err)
		}
		// Ensure at most MaxPlaceholderLen bytes are held back.
		restoredSoFar := len(s.Restore(out[:i+1]))
		if held := restoredSoFar - buf.Len(); held > redact.MaxPlaceholderLen {
			t.Fatalf("held back %d bytes at %d", held, i)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), in) {
		t.Fatalf("1-byte chunks: %q", buf.Bytes())
	}
}

// Ensure unknown placeholders are left as they are.
func TestSession_RestoreUnknown(t *testing.T) {
	s := MustEngine(t, redact.DefaultConfig()).NewSession()
	for _, in := range []string{"[[SECRET_1]]", "[[EMAIL_22]] and [[", "[[secret_1]]", "[[A_1]"} {
		if got := string(s.Restore([]byte(in))); got != in {
			t.Fatalf("Restore(%q) = %q", in, got)
		}
	}
}

func TestSession_NumberFrom(t *testing.T) {
	// Ensure NumberFrom moves the numbers of every kind above n, keeps what was issued, and a lower placeholder is not restored.
	s := MustEngine(t, redact.Config{Secrets: true, Known: []string{"first-known-value"}}).NewSession()
	out1, _ := s.Redact([]byte("a first-known-value"))
	s.NumberFrom(5000)
	tok := "gh" + "p_" + gen(5, alnum, 36)
	out2, _ := s.Redact([]byte("b first-known-value and token: " + tok))
	if string(out1) != "a [[KNOWN_1]]" || string(out2) != "b [[KNOWN_1]] and token: [[SECRET_5001]]" {
		t.Fatalf("got %q and %q", out1, out2)
	}
	if got := string(s.Restore([]byte("[[SECRET_1]] [[SECRET_5001]] [[SECRET_5002]]"))); got != "[[SECRET_1]] "+tok+" [[SECRET_5002]]" {
		t.Fatalf("restored %q", got)
	}
	s.NumberFrom(2e9) // bounded: the placeholder still fits MaxPlaceholderLen
	out3, _ := s.Redact([]byte("token: " + "gh" + "p_" + gen(6, alnum, 36)))
	if p := strings.TrimPrefix(string(out3), "token: "); p != "[[SECRET_100000001]]" || len(p) > redact.MaxPlaceholderLen {
		t.Fatalf("got %q", out3)
	}
}

// Ensure concurrent sessions on one engine are safe (run with -race).
func TestEngine_Concurrent(t *testing.T) {
	e := MustEngine(t, redact.Config{Secrets: true, Known: []string{"concurrent-value"}})
	s := e.NewSession()
	done := make(chan bool)
	for range 8 {
		go func() {
			for range 20 {
				in := []byte("x concurrent-value y token: gh" + "p_" + gen(3, alnum, 36) + "\n")
				out, _ := s.Redact(in)
				if !bytes.Equal(s.Restore(out), in) {
					t.Error("round trip")
				}
			}
			done <- true
		}()
	}
	for range 8 {
		<-done
	}
}

// FuzzRedact: no panic, no Known value left in the output, and Restore
// gives the input back.
func FuzzRedact(f *testing.F) {
	known := "k3y-" + gen(70, alnum, 8)
	e := MustEngine(f, redact.Config{Secrets: true, Known: []string{known}})
	for _, tc := range secretCases() {
		f.Add([]byte(tc.text))
	}
	f.Add([]byte("[[SECRET_1]] " + known + " [[KNOWN_1]]"))
	f.Add([]byte("[[[" + known + "]]]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := e.NewSession()
		out, fs := s.Redact(in)
		for _, f := range fs {
			if f.Kind == redact.KindKnown && bytes.Contains(out, in[f.Start:f.End]) {
				t.Fatalf("known value left in output %q", out)
			}
		}
		if got := s.Restore(out); !bytes.Equal(got, in) {
			t.Fatalf("Restore(Redact(x)) = %q, want %q", got, in)
		}
	})
}

// BenchmarkFind runs the default engine over 8 KB of Go source.
func BenchmarkFind(b *testing.B) {
	src, err := os.ReadFile("testdata/source.go.txt")
	if err != nil {
		b.Fatal(err)
	}
	e := MustEngine(b, redact.Config{Secrets: true, Known: []string{"a-vault-value-1", "another-secret-2"}})
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		e.Find(src)
	}
}

func TestCredentialBeatsPII(t *testing.T) {
	// Ensure a token in a URL's user info is a SECRET, not an email.
	pat := "ghp_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8"
	src := []byte("git clone https://" + pat + "@github.com/acme/app.git")
	cfg := redact.DefaultConfig()
	cfg.Detectors = []redact.Detector{emailLike{}}
	e, err := redact.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs := e.Find(src)
	if len(fs) != 1 || fs[0].Kind != redact.KindSecret || string(src[fs[0].Start:fs[0].End]) != pat {
		t.Fatalf("findings=%+v", fs)
	}
}

// emailLike reports every "x@y.z" run, as an email detector would.
type emailLike struct{}

func (emailLike) Detect(src []byte, emit func(redact.Finding)) {
	at := bytes.IndexByte(src, '@')
	if at < 0 {
		return
	}
	lo := bytes.LastIndexByte(src[:at], '/') + 1
	hi := at + bytes.IndexByte(src[at:], '/')
	emit(redact.Finding{Kind: redact.KindEmail, RuleID: "test.email", Start: lo, End: hi})
}

// TestFind_KnownLabels checks that a known value's finding names it, in
// every encoding, and that the name survives when a secret rule's finding
// covers the same span.
func TestFind_KnownLabels(t *testing.T) {
	tok := "ghp_" + strings.Repeat("aB3dE5", 6) // also a GitHub token rule hit
	pw := "correct-horse-battery"
	e, err := redact.New(redact.Config{Secrets: true, Known: []string{pw, tok}, KnownLabels: []string{"prod/DB_PASSWORD", "ci/GH_TOKEN"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"password is " + pw + " ok", "prod/DB_PASSWORD"},
		{"b64 " + base64.StdEncoding.EncodeToString([]byte(pw)), "prod/DB_PASSWORD"},
		{"hex " + hex.EncodeToString([]byte(pw)), "prod/DB_PASSWORD"},
		{"url " + url.QueryEscape(pw), "prod/DB_PASSWORD"},
		{"export GITHUB_TOKEN=" + tok, "ci/GH_TOKEN"},
	} {
		fs := e.Find([]byte(tc.in))
		if len(fs) != 1 {
			t.Fatalf("%q: %d findings, want 1: %+v", tc.in, len(fs), fs)
		}
		if fs[0].Label != tc.want {
			t.Errorf("%q: label %q, want %q", tc.in, fs[0].Label, tc.want)
		}
	}
	if fs := e.Find([]byte("ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW")); len(fs) != 1 || fs[0].Label != "" {
		t.Errorf("an unknown token carries a label: %+v", fs)
	}
}
