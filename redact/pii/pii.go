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
	"strings"

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

// Detectors returns one detector per kind enabled in cfg, in the order
// email, phone, card, IBAN, SSN, IP. They are safe for concurrent use; the
// only state is the phone detector's cache of validation results (see
// phoneDetector), so build the detectors once and reuse them.
func Detectors(cfg Config) []redact.Detector {
	var ds []redact.Detector
	if cfg.Email {
		ds = append(ds, emailDetector{})
	}
	if cfg.Phone {
		region := strings.ToUpper(strings.TrimSpace(cfg.PhoneRegion))
		if region == "" {
			region = "US"
		}
		ds = append(ds, newPhoneDetector(region))
	}
	if cfg.Card {
		ds = append(ds, cardDetector{})
	}
	if cfg.IBAN {
		ds = append(ds, ibanDetector{})
	}
	if cfg.SSN {
		ds = append(ds, ssnDetector{})
	}
	if cfg.IP {
		ds = append(ds, ipDetector{private: cfg.PrivateIPs})
	}
	return ds
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Masks for nextDigit.
const (
	lows7  = 0x7f7f7f7f7f7f7f7f
	highs  = 0x8080808080808080
	from0  = 0x5050505050505050 // 0x80 - '0' in every byte
	past9  = 0x4646464646464646 // 0x80 - ('9'+1) in every byte
	bytes8 = 8
)

// digits8 returns x with the high bit of each byte that is an ASCII digit
// set, and no other bit. It works on all bytes at once, without carries
// between them: the high bit of y+from0 is set iff y ≥ '0', that of
// y+past9 iff y > '9', and x's own high bit marks non-ASCII bytes.
func digits8(x uint64) uint64 {
	y := x & lows7
	return (y + from0) &^ (y + past9) &^ x & highs
}

// nextDigit returns the index of the first ASCII digit in src[i:], or
// len(src). Every detector but email needs digits, and code has few, so
// they skip to the next one eight bytes at a time.
func nextDigit(src []byte, i int) int {
	for ; i+4*bytes8 <= len(src); i += 4 * bytes8 {
		w := src[i : i+4*bytes8]
		if digits8(binary.LittleEndian.Uint64(w))|digits8(binary.LittleEndian.Uint64(w[8:]))|
			digits8(binary.LittleEndian.Uint64(w[16:]))|digits8(binary.LittleEndian.Uint64(w[24:])) != 0 {
			break
		}
	}
	for ; i+bytes8 <= len(src); i += bytes8 {
		if digits8(binary.LittleEndian.Uint64(src[i:])) != 0 {
			break
		}
	}
	for ; i < len(src) && !isDigit(src[i]); i++ {
	}
	return i
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
