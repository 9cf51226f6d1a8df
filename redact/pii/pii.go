// Package pii holds the detectors for personal data: email addresses, phone
// numbers, payment card numbers, IBANs, US social security numbers and IP
// addresses. Each is a redact.Detector that plugs into the redact engine.
//
// Every detector works in two steps so that it stays within the gateway's
// budget (about 0.1 ms per 8 KB prompt for all rules together): a cheap byte
// scan finds candidates ('@' for emails, digit runs for numbers, '.' and ':'
// for addresses, two capitals and two digits for IBANs), and only those are
// validated (checksums, number plans, net/netip). Detectors only report
// offsets; they never change or keep the input.
package pii

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"sync"

	"github.com/custos-dev/custos/redact"
)

// Rule IDs reported in redact.Finding.RuleID.
const (
	RuleEmail = "pii.email"
	RulePhone = "pii.phone"
	RuleCard  = "pii.card"
	RuleIBAN  = "pii.iban"
	RuleSSN   = "pii.ssn"
	RuleIP    = "pii.ip"
)

// Config selects the kinds of personal data to detect.
type Config struct {
	Email bool // email addresses
	Phone bool // phone numbers, validated with libphonenumber metadata
	Card  bool // payment card numbers: known issuer prefix, length and Luhn
	IBAN  bool // IBANs: country length and mod-97 checksum
	SSN   bool // US social security numbers written AAA-GG-SSSS
	IP    bool // IPv4 and IPv6 addresses

	// PrivateIPs also reports addresses that identify no one on the public
	// internet: private, loopback, link-local, unspecified, multicast,
	// shared (CGNAT), benchmarking, reserved and documentation ranges.
	PrivateIPs bool

	// PhoneRegion is the ISO 3166-1 region (for example "US", "GB") used
	// for numbers written without a +country prefix. Empty means "US". With
	// an unknown region only numbers in international form are found.
	PhoneRegion string
}

// DefaultConfig returns a Config with every kind enabled, private IP ranges
// not reported and "US" as the phone region.
func DefaultConfig() Config {
	return Config{
		Email: true, Phone: true, Card: true, IBAN: true, SSN: true, IP: true,
		PhoneRegion: "US",
	}
}

// Detectors returns the detectors of the kinds enabled in cfg, in the
// order email, phone, card, IBAN, SSN, IP. The detectors of numbers
// (phone, card, IBAN, SSN) come as one detector: it finds the text's
// digits once for all of them, and reports what they would, in the same
// order. They are safe for concurrent use;
// the only state is the phone detector's cache of validation results (see
// phoneDetector), so build the detectors once and reuse them.
func Detectors(cfg Config) []redact.Detector {
	var ds []redact.Detector
	if cfg.Email {
		ds = append(ds, emailDetector{})
	}
	var nums numberDetectors
	if cfg.Phone {
		region := strings.ToUpper(strings.TrimSpace(cfg.PhoneRegion))
		if region == "" {
			region = "US"
		}
		nums = append(nums, newPhoneDetector(region))
	}
	if cfg.Card {
		nums = append(nums, cardDetector{})
	}
	if cfg.IBAN {
		nums = append(nums, ibanDetector{})
	}
	if cfg.SSN {
		nums = append(nums, ssnDetector{})
	}
	if len(nums) > 0 {
		ds = append(ds, nums)
	}
	if cfg.IP {
		ds = append(ds, ipDetector{private: cfg.PrivateIPs})
	}
	return ds
}

// numberDetector is a detector that finds its candidates from the text's
// digits.
type numberDetector interface {
	redact.Detector
	detect(src []byte, dx *digitIndex, emit func(redact.Finding))
}

// numberDetectors runs several number detectors over one digitIndex.
type numberDetectors []numberDetector

func (ns numberDetectors) Detect(src []byte, emit func(redact.Finding)) {
	dx := newDigitIndex(src)
	defer dx.free()
	for _, d := range ns {
		d.detect(src, dx, emit)
	}
}

// digitIndex holds where the ASCII digits of a text are, a bit per byte:
// the detectors of numbers skip to the next digit with it instead of each
// reading the whole text again.
type digitIndex struct {
	n    int
	bits []uint64 // bit i%64 of bits[i/64]: src[i] is a digit
}

var digitIndexes = sync.Pool{New: func() any { return new(digitIndex) }}

// newDigitIndex indexes src's digits; free it when done.
func newDigitIndex(src []byte) *digitIndex {
	dx := digitIndexes.Get().(*digitIndex)
	dx.n = len(src)
	words := (len(src) + 63) / 64
	if cap(dx.bits) < words {
		dx.bits = make([]uint64, words)
	}
	dx.bits = dx.bits[:words]
	i := 0
	for w := 0; i+64 <= len(src); w++ {
		b := src[i : i+64 : i+64]
		le := binary.LittleEndian
		d0, d1, d2, d3 := digits8(le.Uint64(b[0:])), digits8(le.Uint64(b[8:])), digits8(le.Uint64(b[16:])), digits8(le.Uint64(b[24:]))
		d4, d5, d6, d7 := digits8(le.Uint64(b[32:])), digits8(le.Uint64(b[40:])), digits8(le.Uint64(b[48:])), digits8(le.Uint64(b[56:]))
		var m uint64
		if d0|d1|d2|d3|d4|d5|d6|d7 != 0 { // most blocks of text hold no digit
			// The high bit of each digit byte, gathered into 8 bits a word.
			m = gather(d0) | gather(d1)<<8 | gather(d2)<<16 | gather(d3)<<24 |
				gather(d4)<<32 | gather(d5)<<40 | gather(d6)<<48 | gather(d7)<<56
		}
		dx.bits[w] = m
		i += 64
	}
	if i < len(src) {
		var m uint64
		for k, c := range src[i:] {
			if isDigit(c) {
				m |= 1 << k
			}
		}
		dx.bits[i/64] = m
	}
	return dx
}

// gather returns the high bits of x's bytes (x has no other bits) as
// the bits 0-7 of a byte, byte k's as bit k: each moved to bit 0 of its
// byte, then multiplied into bits 56-63 by 0x0102040810204080, whose
// partial products do not overlap, so no carry mixes them.
func gather(x uint64) uint64 { return x >> 7 * 0x0102040810204080 >> 56 }

func (dx *digitIndex) free() { digitIndexes.Put(dx) }

// next returns the index of the first digit at or after i, or the text's
// length.
func (dx *digitIndex) next(i int) int {
	if i >= dx.n {
		return dx.n
	}
	w := i / 64
	m := dx.bits[w] >> (i % 64) << (i % 64)
	for m == 0 {
		w++
		if w == len(dx.bits) {
			return dx.n
		}
		m = dx.bits[w]
	}
	return w*64 + bits.TrailingZeros64(m)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Masks for digits8.
const (
	lows7 = 0x7f7f7f7f7f7f7f7f
	highs = 0x8080808080808080
	from0 = 0x5050505050505050 // 0x80 - '0' in every byte
	past9 = 0x4646464646464646 // 0x80 - ('9'+1) in every byte
)

// digits8 returns x with the high bit of each byte that is an ASCII digit
// set, and no other bit. It works on all bytes at once, without carries
// between them: the high bit of y+from0 is set iff y ≥ '0', that of
// y+past9 iff y > '9', and x's own high bit marks non-ASCII bytes.
func digits8(x uint64) uint64 {
	y := x & lows7
	return (y + from0) &^ (y + past9) &^ x & highs
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool { return isUpper(c) || isLower(c) }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// isWord reports whether c continues a word: ASCII letters and digits, '_'
// and any byte of a multi-byte UTF-8 sequence.
func isWord(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

// numJoiner reports whether c joins two digit runs into one token, as in
// 1.5, 10:30, 2024-01-15, 1/2 or 1,000.
func numJoiner(c byte) bool {
	return c == '.' || c == '-' || c == '/' || c == ':' || c == ','
}

// leftOK reports whether a number starting at s stands on its own: it is not
// the end of a word (a1234) and not the tail of a longer numeric token
// (1.1234, 12-1234).
func leftOK(src []byte, s int) bool {
	if s == 0 {
		return true
	}
	p := src[s-1]
	if isWord(p) {
		return false
	}
	if (p == '-' || p == '_') && s >= 2 && isAlpha(src[s-2]) {
		return false // the tail of an identifier: ORD-2024-837723, INV_4111…
	}
	if p == ',' {
		// A comma joins only a thousands group: 1,234 — not CSV fields.
		return !(runBefore(src, s-1) >= 1 && runBefore(src, s-1) <= 3 && runAfter(src, s) == 3)
	}
	if numJoiner(p) && s >= 2 && isDigit(src[s-2]) {
		return false
	}
	return true
}

// runBefore returns the length of the digit run ending at i (exclusive).
func runBefore(src []byte, i int) int {
	n := 0
	for i-n-1 >= 0 && isDigit(src[i-n-1]) {
		n++
	}
	return n
}

// runAfter returns the length of the digit run starting at i.
func runAfter(src []byte, i int) int {
	n := 0
	for i+n < len(src) && isDigit(src[i+n]) {
		n++
	}
	return n
}

// rightOK is leftOK for a number ending at e (exclusive).
func rightOK(src []byte, e int) bool {
	if e >= len(src) {
		return true
	}
	n := src[e]
	if isWord(n) {
		return false
	}
	if n == ',' {
		return !(runBefore(src, e) <= 3 && runAfter(src, e+1) == 3)
	}
	if numJoiner(n) && e+1 < len(src) && isDigit(src[e+1]) {
		return false
	}
	return true
}

func finding(kind redact.Kind, rule string, start, end int) redact.Finding {
	return redact.Finding{Kind: kind, RuleID: rule, Start: start, End: end}
}
