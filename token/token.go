// Package token mints and checks the bearer tokens of custos.
//
// A token is a type prefix (cst_ak_ for an API key, cst_lc_ for a launch
// code, …) followed by 32 random bytes in unpadded base64url: 43 characters.
// Stores keep only Hash(token); a token is shown once, when minted, and never
// appears in logs, errors or audit records (Redact scrubs text for logs).
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/custos-dev/custos"
)

// Token type prefixes.
const (
	PrefixAPIKey         = "cst_ak_" // API key
	PrefixLaunchCode     = "cst_lc_" // one-time launch code
	PrefixPermit         = "cst_pm_" // task-scoped permit
	PrefixRequestKey     = "cst_rk_" // tracker request key
	PrefixWebhookSecret  = "cst_wh_" // inbound webhook signing secret
	PrefixTrackerInstall = "cst_ti_" // tracker app installation secret
)

// BodyLen is the length of a token after its prefix: 32 bytes in unpadded
// base64url.
const BodyLen = 43

// randomBytes is how many random bytes a token carries.
const randomBytes = 32

// kinds names each prefix for error messages.
var kinds = map[string]string{ // #nosec G101 -- usage text and column names, not credentials
	PrefixAPIKey:         "an API key",
	PrefixLaunchCode:     "a launch code",
	PrefixPermit:         "a permit",
	PrefixRequestKey:     "a request key",
	PrefixWebhookSecret:  "a webhook secret",
	PrefixTrackerInstall: "a tracker install secret",
}

// New returns a fresh token: prefix followed by 32 bytes from crypto/rand in
// unpadded base64url.
func New(prefix string) string {
	var b [randomBytes]byte
	rand.Read(b[:]) // never fails; crashes the program if the OS cannot provide randomness
	defer clear(b[:])
	buf := make([]byte, len(prefix)+BodyLen)
	copy(buf, prefix)
	base64.RawURLEncoding.Encode(buf[len(prefix):], b[:])
	return string(buf)
}

// Hash returns the lowercase hex SHA-256 of the whole token: the only form
// stores keep.
func Hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Check returns nil if tok is prefix followed by exactly 43 base64url
// characters, else an *custos.Error with code EUNAUTHORIZED whose message
// names the expected prefix and never repeats tok.
func Check(tok, prefix string) error {
	if len(tok) == len(prefix)+BodyLen && strings.HasPrefix(tok, prefix) && isBody(tok[len(prefix):]) {
		return nil
	}
	want := kind(prefix)
	for p, k := range kinds {
		if p != prefix && strings.HasPrefix(tok, p) {
			return custos.Errorf(custos.EUNAUTHORIZED, "wrong credential: got %s (%s…) where %s (%s…) is expected", k, p, want, prefix)
		}
	}
	return custos.Errorf(custos.EUNAUTHORIZED, "malformed credential: expected %s: %s followed by %d base64url characters", want, prefix, BodyLen)
}

// kind names the token type of prefix.
func kind(prefix string) string {
	if k, ok := kinds[prefix]; ok {
		return k
	}
	return "a token"
}

// isBody reports whether every byte of s is in the base64url alphabet.
func isBody(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return true
}

// isB64URL reports whether c is in the base64url alphabet.
func isB64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// redactedBody replaces the body of a token in Redact's output.
const redactedBody = "…REDACTED"

// Redact returns s with everything that looks like a token — "cst_", two
// lowercase letters or digits, "_", then one or more base64url characters —
// replaced by its prefix and "…REDACTED", for scrubbing logs. Truncated
// tokens are redacted too. Redact is idempotent.
func Redact(s string) string {
	i := strings.Index(s, "cst_")
	if i < 0 {
		return s
	}
	var b strings.Builder
	start := 0 // s[start:] is not yet written to b
	for i >= 0 {
		end := tokenEnd(s, i)
		if end < 0 {
			next := strings.Index(s[i+1:], "cst_")
			if next < 0 {
				break
			}
			i += 1 + next
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[start : i+len(PrefixAPIKey)])
		b.WriteString(redactedBody)
		start = end
		next := strings.Index(s[end:], "cst_")
		if next < 0 {
			break
		}
		i = end + next
	}
	if start == 0 {
		return s
	}
	b.WriteString(s[start:])
	return b.String()
}

// tokenEnd returns the end of the token starting at s[i:] ("cst_" known), or
// -1 if none starts there.
func tokenEnd(s string, i int) int {
	p := i + len(PrefixAPIKey) // "cst_xx_"
	if p >= len(s) || !isTypeChar(s[i+4]) || !isTypeChar(s[i+5]) || s[i+6] != '_' || !isB64URL(s[p]) {
		return -1
	}
	for p < len(s) && isB64URL(s[p]) {
		p++
	}
	return p
}

// isTypeChar reports whether c may appear in a token type.
func isTypeChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}
