package token_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// prefixes lists every token type.
var prefixes = []string{
	token.PrefixAPIKey, token.PrefixLaunchCode, token.PrefixPermit,
	token.PrefixRequestKey, token.PrefixWebhookSecret, token.PrefixTrackerInstall,
}

func TestNew(t *testing.T) {
	// Ensure new tokens carry their prefix, pass Check and never repeat.
	t.Run("OK", func(t *testing.T) {
		seen := map[string]bool{}
		for _, p := range prefixes {
			for range 100 {
				tok := token.New(p)
				if got, want := len(tok), len(p)+43; got != want {
					t.Fatalf("len=%d, want %d", got, want)
				}
				if !strings.HasPrefix(tok, p) {
					t.Fatalf("%q lacks prefix %q", tok, p)
				}
				if err := token.Check(tok, p); err != nil {
					t.Fatal(err)
				}
				if seen[tok] {
					t.Fatal("duplicate token")
				}
				seen[tok] = true
			}
		}
	})
}

func TestHash(t *testing.T) {
	// Ensure Hash is the lowercase hex SHA-256 of the whole token.
	t.Run("OK", func(t *testing.T) {
		tok := token.New(token.PrefixAPIKey)
		sum := sha256.Sum256([]byte(tok))
		if got, want := token.Hash(tok), hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("Hash=%s, want %s", got, want)
		}
		if got := token.Hash(tok); got != strings.ToLower(got) || len(got) != 64 {
			t.Fatalf("Hash=%s", got)
		}
		if token.Hash(tok) == token.Hash(tok[len(token.PrefixAPIKey):]) {
			t.Fatal("Hash must cover the prefix")
		}
	})
}

func TestCheck(t *testing.T) {
	body := strings.Repeat("A", 42) + "_"
	for _, c := range []struct {
		name, tok, prefix string
		ok                bool
		want              string // in the message
	}{
		{"OK", token.PrefixAPIKey + body, token.PrefixAPIKey, true, ""},
		{"OKDash", token.PrefixPermit + strings.Repeat("-", 43), token.PrefixPermit, true, ""},
		{"ErrEmpty", "", token.PrefixAPIKey, false, "expected an API key: cst_ak_ followed by 43 base64url characters"},
		{"ErrNoPrefix", body, token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrShort", token.PrefixAPIKey + body[1:], token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrLong", token.PrefixAPIKey + body + "A", token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrBadChar", token.PrefixAPIKey + body[1:] + "=", token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrPlus", token.PrefixAPIKey + body[1:] + "+", token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrSpace", token.PrefixAPIKey + body[1:] + " ", token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrNUL", token.PrefixAPIKey + body[1:] + "\x00", token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrUpperPrefix", "CST_AK_" + body, token.PrefixAPIKey, false, "cst_ak_"},
		{"ErrOtherType", token.PrefixLaunchCode + body, token.PrefixAPIKey, false, "got a launch code (cst_lc_…) where an API key (cst_ak_…) is expected"},
		{"ErrOtherTypeWebhook", token.PrefixAPIKey + body, token.PrefixWebhookSecret, false, "got an API key (cst_ak_…) where a webhook secret (cst_wh_…) is expected"},
	} {
		// Ensure Check accepts exactly prefix + 43 base64url characters and
		// names the expected prefix without echoing the token.
		t.Run(c.name, func(t *testing.T) {
			err := token.Check(c.tok, c.prefix)
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if got, want := custos.ErrorCode(err), custos.EUNAUTHORIZED; got != want {
				t.Fatalf("code=%q, want %q (err=%v)", got, want, err)
			}
			msg := custos.ErrorMessage(err)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("message %q, want %q", msg, c.want)
			}
			if strings.Contains(msg, body[:20]) {
				t.Fatalf("message echoes the token: %q", msg)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	// Ensure Equal compares whole strings.
	t.Run("OK", func(t *testing.T) {
		a := token.New(token.PrefixAPIKey)
		for _, c := range []struct {
			a, b string
			want bool
		}{
			{a, a, true}, {"", "", true}, {a, a[:len(a)-1], false}, {a, a + "x", false},
			{a, token.New(token.PrefixAPIKey), false}, {"", a, false},
		} {
			if got := token.Equal(c.a, c.b); got != c.want {
				t.Fatalf("Equal(%q, %q)=%v, want %v", c.a, c.b, got, c.want)
			}
		}
	})
}

func TestRedact(t *testing.T) {
	tok := token.New(token.PrefixAPIKey)
	lc := token.New(token.PrefixLaunchCode)
	for _, c := range []struct{ name, in, want string }{
		{"Empty", "", ""},
		{"NoToken", "GET /v1/secrets 200", "GET /v1/secrets 200"},
		{"Whole", tok, "cst_ak_…REDACTED"},
		{"Header", "Authorization: Bearer " + tok + "\n", "Authorization: Bearer cst_ak_…REDACTED\n"},
		{"Two", tok + "," + lc, "cst_ak_…REDACTED,cst_lc_…REDACTED"},
		{"Adjacent", "x" + tok + lc, "xcst_ak_…REDACTED"},
		{"InURL", "https://h/launch?code=" + lc + "&x=1", "https://h/launch?code=cst_lc_…REDACTED&x=1"},
		{"Truncated", "key cst_pm_abc", "key cst_pm_…REDACTED"},
		{"UnknownType", "cst_zz_Qm9vb", "cst_zz_…REDACTED"},
		{"PrefixOnly", "expected cst_ak_ followed by 43 characters", "expected cst_ak_ followed by 43 characters"},
		{"NotAToken", "cst_a_b cst_ak cst_", "cst_a_b cst_ak cst_"},
		{"Overlap", "cst_acst_ak_" + tok[7:], "cst_acst_ak_…REDACTED"},
		{"Idempotent", "cst_ak_…REDACTED", "cst_ak_…REDACTED"},
		{"JSON", `{"token":"` + tok + `"}`, `{"token":"cst_ak_…REDACTED"}`},
	} {
		// Ensure every token-like string is replaced by its prefix and …REDACTED.
		t.Run(c.name, func(t *testing.T) {
			if got := token.Redact(c.in); got != c.want {
				t.Fatalf("Redact(%q)=%q, want %q", c.in, got, c.want)
			}
		})
	}
}

// FuzzCheck ensures Check never panics, accepts only well-formed tokens, and
// never echoes its input.
func FuzzCheck(f *testing.F) {
	f.Add(token.New(token.PrefixAPIKey), token.PrefixAPIKey)
	f.Add(token.New(token.PrefixLaunchCode), token.PrefixAPIKey)
	f.Add("", "")
	f.Add("cst_ak_short", token.PrefixAPIKey)
	f.Fuzz(func(t *testing.T, tok, prefix string) {
		err := token.Check(tok, prefix)
		if err == nil {
			if !strings.HasPrefix(tok, prefix) || len(tok) != len(prefix)+43 {
				t.Fatalf("accepted %q for %q", tok, prefix)
			}
			return
		}
		if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
			t.Fatalf("err=%v", err)
		}
		// The message depends on the token's type prefix only, never on
		// the rest of it.
		known := ""
		for _, p := range prefixes {
			if strings.HasPrefix(tok, p) {
				known = p
			}
		}
		if got, want := custos.ErrorMessage(err), custos.ErrorMessage(token.Check(known, prefix)); got != want {
			t.Fatalf("message %q depends on the token (want %q)", got, want)
		}
	})
}

// FuzzRedact ensures no full token in the input survives Redact, and that
// Redact is idempotent.
func FuzzRedact(f *testing.F) {
	f.Add("before ", uint8(0), "after", []byte("0123456789abcdef0123456789abcdef"))
	f.Add("cst_a", uint8(1), "cst_", []byte{})
	f.Add("", uint8(2), "", []byte{0xff})
	f.Fuzz(func(t *testing.T, before string, kind uint8, after string, seed []byte) {
		tok := tokenFrom(prefixes[int(kind)%len(prefixes)], seed)
		in := before + tok + after
		out := token.Redact(in)
		if strings.Contains(out, tok) {
			t.Fatalf("Redact(%q)=%q still holds %q", in, out, tok)
		}
		if again := token.Redact(out); again != out {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
		// Text without "cst_" is untouched.
		if !strings.Contains(before+after, "cst_") && token.Redact(before+after) != before+after {
			t.Fatalf("Redact changed %q", before+after)
		}
	})
}

// tokenFrom builds a well-formed token of prefix whose body is derived from seed.
func tokenFrom(prefix string, seed []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := []byte(prefix)
	for i := range 43 {
		var c byte
		if len(seed) > 0 {
			c = seed[i%len(seed)] + byte(i)
		}
		b = append(b, alphabet[int(c)%64])
	}
	return string(b)
}

func BenchmarkRedact(b *testing.B) {
	line := `{"level":"INFO","msg":"request","path":"/v1/secrets/access","auth":"Bearer ` + token.New(token.PrefixAPIKey) + `","status":200}`
	clean := `{"level":"INFO","msg":"request","path":"/v1/secrets/access","status":200}`
	b.Run("Token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			token.Redact(line)
		}
	})
	b.Run("Clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			token.Redact(clean)
		}
	})
}
