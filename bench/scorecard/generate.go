package main

// The corpus generator: `go run ./bench/scorecard -generate` rewrites
// redact/testdata/corpus from a fixed seed. Every planted value is made up
// here (right prefix, length, alphabet and checksum, random body), recorded
// in labels.json, and checked to occur exactly once in its file. Everything
// else in the files is a benign look-alike on purpose.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"image"
	"image/color"
	"image/png"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/custos-dev/custos/bench/scorecard/corpus"
)

// seed fixes the corpus; change it only together with the committed files.
const seed = 0x637573746f73 // "custos"

type gen struct {
	r      *rand.Rand
	file   string
	labels []corpus.Label
	files  map[string]string
}

const (
	alphaUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	alphaLower = "abcdefghijklmnopqrstuvwxyz"
	digitsSet  = "0123456789"
	alnumSet   = alphaUpper + alphaLower + digitsSet
	b32Set     = alphaUpper + "234567"
	b64urlSet  = alnumSet + "-_"
	hexSet     = "0123456789abcdef"
	lowerAlnum = alphaLower + digitsSet
)

func (g *gen) pick(set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[g.r.IntN(len(set))]
	}
	return string(b)
}

func (g *gen) raw(n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.r.Uint64())
	}
	return b[:n]
}

func (g *gen) label(kind, v string) string {
	g.labels = append(g.labels, corpus.Label{File: g.file, Kind: kind, Value: v})
	return v
}

// Planting helpers: each records a label for the current file and returns
// the value.
func (g *gen) S(v string) string { return g.label(corpus.Secret, v) }
func (g *gen) E(v string) string { return g.label(corpus.Email, v) }
func (g *gen) P(v string) string { return g.label(corpus.Phone, v) }
func (g *gen) C(v string) string { return g.label(corpus.Card, v) }
func (g *gen) I(v string) string { return g.label(corpus.IBAN, v) }
func (g *gen) N(v string) string { return g.label(corpus.SSN, v) }
func (g *gen) A(v string) string { return g.label(corpus.IP, v) }

// ---- secret shapes ----

func (g *gen) awsKeyID(prefix string) string { return prefix + g.pick(b32Set, 16) }
func (g *gen) awsSecret() string             { return g.pick(alnumSet+"+/", 40) }
func (g *gen) ghp() string                   { return "ghp_" + g.pick(alnumSet, 36) }
func (g *gen) githubPAT() string {
	return "github_pat_11" + g.pick(alphaUpper+digitsSet, 20) + "_" + g.pick(alnumSet, 59)
}
func (g *gen) glpat() string { return "glpat-" + g.pick(alnumSet+"-_", 20) }
func (g *gen) xoxb() string {
	return "xoxb-" + g.pick(digitsSet, 12) + "-" + g.pick(digitsSet, 13) + "-" + g.pick(alnumSet, 24)
}
func (g *gen) slackHook() string {
	return "https://hooks.slack.com/services/T" + g.pick(alphaUpper+digitsSet, 8) + "/B" + g.pick(alphaUpper+digitsSet, 10) + "/" + g.pick(alnumSet, 24)
}
func (g *gen) stripe(kind string) string { return kind + "_live_" + g.pick(alnumSet, 24+g.r.IntN(60)) }
func (g *gen) openai() string {
	return "sk-proj-" + g.pick(b64urlSet, 74) + "T3BlbkFJ" + g.pick(b64urlSet, 74)
}
func (g *gen) anthropic() string { return "sk-ant-api03-" + g.pick(b64urlSet, 93) + "AA" }
func (g *gen) npm() string       { return "npm_" + g.pick(alnumSet, 36) }
func (g *gen) pypi() string      { return "pypi-AgEIcHlwaS5vcmc" + g.pick(b64urlSet, 60+g.r.IntN(100)) }
func (g *gen) custos() string    { return "cst_ak_" + base64.RawURLEncoding.EncodeToString(g.raw(32)) }
func (g *gen) password(n int) string {
	// Starts with a letter or digit so that it stays a value in YAML and
	// shell (no comment, tag or option).
	return g.pick(alnumSet, 1) + g.pick(alnumSet+"!#%^*-_", n-1)
}

func (g *gen) pem(typ string, n int) string {
	body := base64.StdEncoding.EncodeToString(g.raw(n))
	var b strings.Builder
	fmt.Fprintf(&b, "-----BEGIN %s PRIVATE KEY-----\n", typ)
	for len(body) > 64 {
		b.WriteString(body[:64] + "\n")
		body = body[64:]
	}
	b.WriteString(body + "\n")
	fmt.Fprintf(&b, "-----END %s PRIVATE KEY-----", typ)
	return b.String()
}

func (g *gen) jwt(claims string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(claims))
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(g.raw(32))
}

// ---- PII shapes ----

func luhnDigit(payload string) byte {
	sum := 0
	for i := len(payload) - 1; i >= 0; i-- {
		d := int(payload[i] - '0')
		if (len(payload)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// card returns a Luhn-valid number with the prefix and length, grouped with
// sep in groups (nil: no grouping).
func (g *gen) card(prefix string, n int, sep string, groups []int) string {
	p := prefix + g.pick(digitsSet, n-1-len(prefix))
	num := p + string(luhnDigit(p))
	return group(num, sep, groups)
}

// badCard returns a card-shaped number that fails Luhn.
func (g *gen) badCard(prefix string, sep string) string {
	p := prefix + g.pick(digitsSet, 15-len(prefix))
	d := luhnDigit(p)
	return group(p+string('0'+(d-'0'+1)%10), sep, []int{4, 4, 4, 4})
}

func group(num, sep string, groups []int) string {
	if groups == nil {
		return num
	}
	var parts []string
	i := 0
	for _, n := range groups {
		parts = append(parts, num[i:i+n])
		i += n
	}
	return strings.Join(parts, sep)
}

// iban builds a valid IBAN for country cc with the given BBAN, spaced in
// groups of four when spaced.
func iban(cc, bban string, spaced bool) string {
	rearranged := bban + cc + "00"
	var digits strings.Builder
	for _, c := range rearranged {
		if c >= 'A' && c <= 'Z' {
			fmt.Fprintf(&digits, "%d", c-'A'+10)
		} else {
			digits.WriteRune(c)
		}
	}
	n, _ := new(big.Int).SetString(digits.String(), 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	s := fmt.Sprintf("%s%02d%s", cc, check, bban)
	if !spaced {
		return s
	}
	var parts []string
	for len(s) > 4 {
		parts = append(parts, s[:4])
		s = s[4:]
	}
	return strings.Join(append(parts, s), " ")
}

func (g *gen) ssn(sep string) string {
	var area int
	for area == 0 || area == 666 || area >= 900 {
		area = 1 + g.r.IntN(899)
	}
	return fmt.Sprintf("%03d%s%02d%s%04d", area, sep, 1+g.r.IntN(99), sep, 1+g.r.IntN(9999))
}

// publicIPv4 returns an address outside private, loopback, link-local,
// CGNAT, documentation, multicast and reserved ranges.
func (g *gen) publicIPv4() string {
	for {
		a := 1 + g.r.IntN(222)
		b, c, d := g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254)
		switch {
		case a == 10, a == 127, a == 0, a == 100 && b >= 64 && b < 128,
			a == 169 && b == 254, a == 172 && b >= 16 && b < 32,
			a == 192 && b == 168, a == 192 && b == 0, a == 198 && (b == 18 || b == 19 || b == 51),
			a == 203 && b == 0:
			continue
		}
		return fmt.Sprintf("%d.%d.%d.%d", a, b, c, d)
	}
}

func (g *gen) publicIPv6() string {
	prefixes := []string{"2a00", "2001:67c", "2600", "2606", "2a02", "2c0f", "2400"}
	p := prefixes[g.r.IntN(len(prefixes))]
	parts := strings.Count(p, ":") + 1
	var b strings.Builder
	b.WriteString(p)
	for i := parts; i < 4; i++ {
		fmt.Fprintf(&b, ":%x", g.r.IntN(0x10000))
	}
	fmt.Fprintf(&b, "::%x:%x", 1+g.r.IntN(0xffff), 1+g.r.IntN(0xffff))
	return b.String()
}

// ---- benign look-alikes ----

func (g *gen) sha1() string   { return g.pick(hexSet, 40) }
func (g *gen) sha256() string { return g.pick(hexSet, 64) }
func (g *gen) uuid() string {
	h := g.pick(hexSet, 32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}
func (g *gen) integrity() string { return "sha512-" + base64.StdEncoding.EncodeToString(g.raw(64)) }
func (g *gen) h1() string        { return "h1:" + base64.StdEncoding.EncodeToString(g.raw(32)) }

func (g *gen) pngBase64() string {
	img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
	for y := 0; y < 12; y++ {
		for x := 0; x < 12; x++ {
			img.Set(x, y, color.NRGBA{uint8(20 * x), uint8(20 * y), g.raw(1)[0], 255}) // #nosec G115 -- x and y are below 12
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// generate writes the corpus and labels.json into dir.
func generate(dir string) error {
	if filepath.Base(dir) != "corpus" || filepath.Base(filepath.Dir(dir)) != "testdata" {
		return fmt.Errorf("refusing to regenerate %s: not a testdata/corpus directory", dir)
	}
	// #nosec G404 -- the corpus must be reproducible from a fixed seed; its values are fake on purpose
	g := &gen{r: rand.New(rand.NewPCG(seed, seed>>1)), files: map[string]string{}}
	for _, f := range corpusFiles {
		g.file = f.name
		text := f.build(g)
		if strings.HasSuffix(f.name, ".go") {
			src, err := format.Source([]byte(text))
			if err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			text = string(src)
		}
		g.files[f.name] = text
	}
	var errs []error
	for _, l := range g.labels {
		if n := strings.Count(g.files[l.File], l.Value); n != 1 {
			errs = append(errs, fmt.Errorf("%s: %s value %.20q… occurs %d times", l.File, l.Kind, l.Value, n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	names := make([]string, 0, len(g.files))
	for name := range g.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(g.files[name]), 0o600); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(g.labels, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, corpus.LabelsFile), append(js, '\n'), 0o600); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, l := range g.labels {
		counts[l.Kind]++
	}
	fmt.Printf("wrote %d files and %d labels to %s: %v\n", len(names), len(g.labels), dir, counts)
	return nil
}
