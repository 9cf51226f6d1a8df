package pii

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact"
	"github.com/nyaruka/phonenumbers"
)

// The detectors skip to the next digit (digitIndex.next) where they used
// to step byte by byte. These tests compare them with the plain loops they
// replace, kept here verbatim, so a skip that changes a finding fails.

// Ensure digitIndex.next finds the first digit at or after every offset,
// for one digit-like byte anywhere in texts across word boundaries, and
// for random texts dense and sparse in digits.
func TestDigitIndex(t *testing.T) {
	plain := func(src []byte, i int) int {
		for i < len(src) && !isDigit(src[i]) {
			i++
		}
		return i
	}
	check := func(src []byte) {
		t.Helper()
		dx := newDigitIndex(src)
		defer dx.free()
		for i := range len(src) + 2 {
			if got, want := dx.next(i), plain(src, min(i, len(src))); got != want {
				t.Fatalf("next(%d) over %q = %d, want %d", i, src, got, want)
			}
		}
	}
	for n := range 200 {
		for pos := range n + 1 {
			for _, c := range []byte{'0', '5', '9', '/', ':', '0' | 0x80, '9' | 0x80, 0xff, 'a', 0} {
				src := []byte(strings.Repeat("a\xff/:", n)[:n])
				if pos < n {
					src[pos] = c
				}
				check(src)
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 5))
	for range 3000 {
		src := make([]byte, r.IntN(600))
		density := 1 + r.IntN(64)
		for i := range src {
			src[i] = byte(r.IntN(256))
			if r.IntN(density) == 0 {
				src[i] = byte('0' + r.IntN(10))
			}
		}
		check(src)
	}
}

// detectorPair is a detector and the plain loop it replaced.
type detectorPair struct {
	name        string
	fast, plain func([]byte, func(redact.Finding))
}

func detectorPairs() []detectorPair {
	ph := newPhoneDetector("US")
	return []detectorPair{
		{"card", cardDetector{}.Detect, cardPlain},
		{"ssn", ssnDetector{}.Detect, ssnPlain},
		{"iban", ibanDetector{}.Detect, ibanPlain},
		{"phone", ph.Detect, ph.detectPlain},
	}
}

// collect returns the findings of detect on src.
func collect(detect func([]byte, func(redact.Finding)), src []byte) []redact.Finding {
	var out []redact.Finding
	detect(src, func(f redact.Finding) { out = append(out, f) })
	return out
}

// skipPieces build texts with numbers of every shape near each other.
var skipPieces = []string{
	"4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "078-05-1120", "078 05 1120", "DE89 3704 0044 0532 0130 00",
	"GB82WEST12345698765432", "+1 (415) 555-2671", "(415) 555-2671", "+44 20 7946 0958", "415.555.2671", "call 4155552671",
	"+(", "(", "+", "1", "12", "(1", "+1", " ", "-", ".", "\n", "a", "Z", "DE", "_", "é", "\xff", "2024-01-15", "1.2.3.4",
	"func (c *Client) Fetch(ctx context.Context) error {", "x := 5", "AB12", "+(1",
}

// skipText returns random text made of skipPieces and random bytes.
func skipText(r *rand.Rand) []byte {
	var b strings.Builder
	for range 1 + r.IntN(30) {
		if r.IntN(4) == 0 {
			for range 1 + r.IntN(40) {
				b.WriteByte("0123456789 +()-.aZ\n"[r.IntN(19)])
			}
			continue
		}
		b.WriteString(skipPieces[r.IntN(len(skipPieces))])
	}
	return []byte(b.String())
}

// Ensure every detector that skips finds what its plain loop finds.
func TestSkip_Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 4000 {
		src := skipText(r)
		for _, p := range detectorPairs() {
			if got, want := collect(p.fast, src), collect(p.plain, src); !slices.Equal(got, want) {
				t.Fatalf("%s on %q: %v, want %v", p.name, src, got, want)
			}
		}
	}
}

// FuzzSkip is TestSkip_Exact on arbitrary input.
func FuzzSkip(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 32 {
		f.Add(skipText(r))
	}
	ps := detectorPairs()
	together := Detectors(DefaultConfig())
	single := []redact.Detector{emailDetector{}, newPhoneDetector("US"), cardDetector{}, ibanDetector{}, ssnDetector{}, ipDetector{}}
	all := func(ds []redact.Detector, src []byte) []redact.Finding {
		var out []redact.Finding
		for _, d := range ds {
			d.Detect(src, func(f redact.Finding) { out = append(out, f) })
		}
		return out
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, p := range ps {
			if got, want := collect(p.fast, src), collect(p.plain, src); !slices.Equal(got, want) {
				t.Fatalf("%s on %q: %v, want %v", p.name, src, got, want)
			}
		}
		if got, want := all(together, src), all(single, src); !slices.Equal(got, want) {
			t.Fatalf("%q: together %v, one by one %v", src, got, want)
		}
	})
}

// The plain loops, as they were before skipping.

func cardPlain(src []byte, emit func(redact.Finding)) {
	var digits [maxCardDigits]byte
	for i := 0; i < len(src); {
		if !isDigit(src[i]) {
			i++
			continue
		}
		if !leftOK(src, i) {
			i = skipNumber(src, i)
			continue
		}
		var groups [8]uint8
		ng, nd := 0, 0
		var sep byte
		p := i
		second := -1 // start of the second group
		tooLong := false
		for p < len(src) {
			c := src[p]
			if isDigit(c) {
				if nd == maxCardDigits {
					tooLong = true
					break
				}
				digits[nd] = c
				nd++
				if ng == 0 || (p > i && !isDigit(src[p-1])) {
					if ng == len(groups) {
						tooLong = true
						break
					}
					ng++
					if ng == 2 {
						second = p
					}
				}
				groups[ng-1]++
				p++
				continue
			}
			if (c == ' ' || c == '-') && (sep == 0 || sep == c) && p+1 < len(src) && isDigit(src[p+1]) {
				sep = c
				p++
				continue
			}
			break
		}
		if !tooLong && nd >= 13 && rightOK(src, p) && cardGroupsOK(groups[:ng]) &&
			cardNetwork(digits[:nd]) && luhn(digits[:nd]) {
			emit(finding(redact.KindCard, RuleCard, i, p))
			i = p
			continue
		}
		// A number glued in front by a space ("qty 2 4111 1111 …") hides
		// the card: try again from the second group. Each start reads at
		// most maxCardDigits digits, so this stays linear.
		if sep == ' ' && second > 0 {
			i = second
			continue
		}
		if tooLong {
			p = skipNumber(src, p)
		}
		i = p
	}
}

func ssnPlain(src []byte, emit func(redact.Finding)) {
	n := len(src)
	for i := 0; i+11 <= n; i++ {
		if !isDigit(src[i]) {
			continue
		}
		// src[i] starts a digit run here only if the previous byte is not
		// a digit; otherwise skip to the end of the run.
		if i > 0 && isDigit(src[i-1]) {
			continue
		}
		sep := src[i+3]
		if (sep != '-' && sep != ' ') || src[i+6] != sep ||
			!digitsAt(src, i, 3) || !digitsAt(src, i+4, 2) || !digitsAt(src, i+7, 4) {
			continue
		}
		e := i + 11
		if !leftOK(src, i) || !rightOK(src, e) {
			continue
		}
		if sep == ' ' && (spacedDigitBefore(src, i) || (e+1 < n && src[e] == ' ' && isDigit(src[e+1]))) {
			continue
		}
		area := prefix(src[i:], 3)
		if area == 0 || area == 666 || area >= 900 || prefix(src[i+4:], 2) == 0 || prefix(src[i+7:], 4) == 0 {
			continue
		}
		emit(finding(redact.KindSSN, RuleSSN, i, e))
		i = e - 1
	}
}

func ibanPlain(src []byte, emit func(redact.Finding)) {
	n := len(src)
	for i := 0; i+15 <= n; i++ {
		if !isUpper(src[i]) || !isUpper(src[i+1]) || !isDigit(src[i+2]) || !isDigit(src[i+3]) {
			continue
		}
		if i > 0 && isWord(src[i-1]) {
			continue
		}
		want := ibanLength(src[i], src[i+1])
		if want == 0 {
			continue
		}
		var buf [maxIBAN]byte
		copy(buf[:4], src[i:i+4])
		e, ok := readBBAN(src, i+4, buf[4:want])
		if !ok || (e < n && isWord(src[e])) || !ibanChecksum(buf[:want]) {
			continue
		}
		emit(finding(redact.KindIBAN, RuleIBAN, i, e))
		i = e - 1
	}
}

func (d phoneDetector) detectPlain(src []byte, emit func(redact.Finding)) {
	var num phonenumbers.PhoneNumber
	n := len(src)
	for i := 0; i < n; {
		c := src[i]
		if !phoneStart[c] {
			i++
			continue
		}
		if !phoneStartOK(src, i) {
			i++
			if isDigit(c) {
				i = skipNumber(src, i)
			}
			continue
		}
		cand := scanPhone(src, i)
		if cand.tooLong && cand.lastSpace > 0 {
			// A long number follows after a space: end the run before it.
			cand = scanPhoneUntil(src, i, cand.lastSpace)
		}
		if cand.tooLong {
			i = skipNumber(src, cand.e)
			continue
		}
		if cand.digits < minPhoneDigits {
			// Too short, and so is every part of it.
			i = max(cand.e, i+1)
			continue
		}
		if d.try(src, cand, &num) {
			emit(finding(redact.KindPhone, RulePhone, cand.s, cand.e))
			i = cand.e
			continue
		}
		if cand.lastSpace > 0 {
			if c2 := scanPhoneUntil(src, i, cand.lastSpace); d.try(src, c2, &num) {
				emit(finding(redact.KindPhone, RulePhone, c2.s, c2.e))
				i = c2.e
				continue
			}
		}
		if c == '(' {
			i++ // (415-555-2671): retry from the digit
			continue
		}
		if cand.firstSpace > 0 {
			i = cand.firstSpace + 1
			continue
		}
		if cand.e > i {
			i = cand.e
		} else {
			i++
		}
	}
}

// Ensure the detectors of numbers together, over one digit index, report
// what each reports on its own, in the same order.
func TestNumberDetectorsSame(t *testing.T) {
	ds := Detectors(DefaultConfig())
	ph := newPhoneDetector("US")
	single := []redact.Detector{emailDetector{}, ph, cardDetector{}, ibanDetector{}, ssnDetector{}, ipDetector{}}
	if len(ds) != 3 {
		t.Fatalf("Detectors(DefaultConfig()) = %d detectors, want email, the numbers, IP", len(ds))
	}
	r := rand.New(rand.NewPCG(6, 6))
	for range 3000 {
		src := skipText(r)
		var got, want []redact.Finding
		for _, d := range ds {
			d.Detect(src, func(f redact.Finding) { got = append(got, f) })
		}
		for _, d := range single {
			d.Detect(src, func(f redact.Finding) { want = append(want, f) })
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: together %v, one by one %v", src, got, want)
		}
	}
}
