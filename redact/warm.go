package redact

import "strings"

// warmSample is text of the kind agents send: code with an assignment of
// a credential, an Authorization header, a provider token, a cloud key id,
// a curl command with a user and a header, a connection string, a private
// key block, and personal data. The rules such text reaches include the
// costliest to compile (curl-auth-user alone takes ≈ 27 ms). Its values
// are generated at run time (warmChars), so no credential-shaped literal
// sits in the source.
var warmSample = []byte(strings.Join([]string{
	`const client = new Client({ apiKey: process.env.API_KEY, timeout: 30 })`,
	`password = "` + warmChars(1, 18, alnum) + `"`,
	`api_token: "` + warmChars(2, 32, alnum) + `"`,
	`Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.` + warmChars(3, 40, alnum) + `.` + warmChars(4, 43, alnum),
	`git clone https://ghp_` + warmChars(5, 36, alnum) + `@github.com/acme/app.git`,
	`aws_access_key_id = AKIA` + warmChars(6, 16, base32),
	`secret := "` + warmChars(7, 24, alnum) + `"`,
	`curl -sS -u deploy:` + warmChars(8, 20, alnum) + ` -H "Authorization: Bearer ` + warmChars(9, 32, alnum) + `" https://api.example.com/v1/items`,
	`DATABASE_URL=postgres://app:` + warmChars(10, 20, alnum) + `@db.internal:5432/app`,
	`-----BEGIN PRIVATE KEY-----`, warmChars(11, 64, alnum), `-----END PRIVATE KEY-----`,
	`Contact dana.smith@example.com or +1 415 555 0100; card 4111 1111 1111 1111; IBAN DE89 3704 0044 0532 0130 00; host 10.20.30.40`,
}, "\n"))

// Alphabets of warmChars.
const (
	alnum  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

// warmChars returns n bytes of abc, the same for the same seed.
func warmChars(seed uint32, n int, abc string) string {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = abc[x%uint32(len(abc))] // #nosec G115 -- a short constant alphabet
	}
	return string(b)
}

// Warm runs e once over a sample of the text agents send, so that what an
// Engine compiles on first use — the rule files, the regexes of the rules
// such text reaches, the stop-word sets of their allowlists — is compiled
// now rather than on a caller's first request. It compiles only what the
// sample reaches (a handful of rules), not every rule, so a server does
// not hold regexes its traffic never needs. Safe for concurrent use.
func (e *Engine) Warm() {
	e.Find(warmSample)
}
