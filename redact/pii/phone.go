package pii

import (
	"bytes"
	"hash/maphash"
	"sync"

	"github.com/custos-dev/custos/redact"
	"github.com/nyaruka/phonenumbers"
)

// phoneDetector finds phone numbers and validates them against the number
// plans of github.com/nyaruka/phonenumbers (a port of Google's
// libphonenumber).
//
// Candidates are runs of 7-15 digits, optionally led by '+' and split by
// spaces, dashes, dots or one pair of parentheses (at most two separator
// bytes in a row, at most six groups), that stand on their own (see
// leftOK). Before the library is asked, candidates with a shape that is
// almost never a phone number are dropped:
//   - bare digit runs without '+' or separators (IDs, timestamps, order
//     numbers), unless a word such as "phone", "tel", "call", "mobile" or
//     "fax" appears in the 32 bytes before them;
//   - dotted runs unless every group has 2-4 digits and the shape is not an
//     IPv4 address (so 1.2.3, 10.0.0.1 and 192.168.100.200 are skipped);
//   - one-digit groups other than the first (lists such as 1 2 3 4 5 6 7);
//   - dates (2024-01-15, 15.01.2024) and a date followed by a time
//     (2024-01-15 10:30 ends in ':' + digit and is not a standalone run).
//
// The rest is parsed with the configured default region and reported when
// phonenumbers.IsValidNumber holds. When a run fails, the detector retries
// without a space-separated number glued in front ("room 12 415 555 2671")
// or behind it.
//
// Parsing and validating with the library costs 15-40 µs per candidate,
// more than the whole budget for a prompt with a few numbers. Agents send
// the same conversation again on every turn, so results are cached, keyed
// by a seeded hash of the candidate bytes: the cache never holds the
// number itself.
type phoneDetector struct {
	region string
	cache  *validCache
}

func newPhoneDetector(region string) phoneDetector {
	return phoneDetector{region: region, cache: &validCache{seed: maphash.MakeSeed()}}
}

// maxCached bounds the cache; it is emptied when full.
const maxCached = 1 << 14

// validCache maps maphash(candidate) to its validation result.
type validCache struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64]bool
}

func (c *validCache) get(h uint64) (valid, ok bool) {
	c.mu.Lock()
	valid, ok = c.m[h]
	c.mu.Unlock()
	return valid, ok
}

func (c *validCache) put(h uint64, valid bool) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[uint64]bool)
	}
	c.m[h] = valid
	c.mu.Unlock()
}

const (
	minPhoneDigits = 7
	maxPhoneDigits = 15
	maxPhoneGroups = 6
	contextWindow  = 32
)

// phoneCand describes one candidate run src[s:e].
type phoneCand struct {
	s, e       int
	digits     int
	plus       bool
	groups     [maxPhoneGroups + 1]uint8
	ng         int
	seps       uint8 // sepSpace | sepDash | sepDot | sepParen | sepUnbalanced
	firstSpace int   // offset of the first space, or -1
	lastSpace  int   // offset of the last space, or -1
	tooLong    bool
}

const (
	sepSpace = 1 << iota
	sepDash
	sepDot
	sepParen
	sepUnbalanced
)

func (d phoneDetector) Detect(src []byte, emit func(redact.Finding)) {
	dx := newDigitIndex(src)
	defer dx.free()
	d.detect(src, dx, emit)
}

func (d phoneDetector) detect(src []byte, dx *digitIndex, emit func(redact.Finding)) {
	var num phonenumbers.PhoneNumber
	n := len(src)
	for i := 0; i < n; {
		if !isDigit(src[i]) && (i+1 >= n || !isDigit(src[i+1])) && (i+2 >= n || !isDigit(src[i+2])) {
			// A candidate has a digit within its first three bytes
			// (1, (1, +1, +(1); from i to two before the next digit,
			// every step is i++.
			i = max(i+1, dx.next(i)-2)
			continue
		}
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

// phoneStart marks the bytes a candidate can start with.
var phoneStart = [256]bool{'+': true, '(': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true}

// phoneStartOK reports whether a candidate may start at src[i].
func phoneStartOK(src []byte, i int) bool {
	c := src[i]
	if i > 0 && src[i-1] == '+' {
		return false // the '+' itself was the start
	}
	if c == '+' || c == '(' {
		if i+1 >= len(src) || !isDigit(src[i+1]) && !(c == '+' && src[i+1] == '(') {
			return false
		}
		return i == 0 || !isWord(src[i-1]) && !isDigit(src[i-1])
	}
	return leftOK(src, i)
}

// scanPhone reads the candidate run starting at src[s].
func scanPhone(src []byte, s int) phoneCand {
	return scanPhoneUntil(src, s, len(src))
}

// scanPhoneUntil is scanPhone stopping at limit. Separators count only once
// a digit follows them, so trailing punctuation is not part of the run.
func scanPhoneUntil(src []byte, s, limit int) phoneCand {
	c := phoneCand{s: s, e: s, firstSpace: -1, lastSpace: -1}
	p := s
	if src[p] == '+' {
		c.plus = true
		p++
	}
	var pend uint8  // separators seen since the last digit
	pendSpace := -1 // last space since the last digit
	opens, closes := 0, 0
	pendOpen, pendClose := false, false
	run := 0 // separator bytes in a row
	for ; p < limit; p++ {
		b := src[p]
		switch {
		case isDigit(b):
			if run > 0 || c.ng == 0 {
				if c.ng == maxPhoneGroups+1 {
					c.tooLong = true
					return c
				}
				c.ng++
			}
			c.groups[c.ng-1]++
			c.digits++
			if c.digits > maxPhoneDigits+2 {
				c.tooLong = true
				c.e = p
				return c
			}
			c.seps |= pend
			if pendSpace >= 0 {
				if c.firstSpace < 0 {
					c.firstSpace = pendSpace
				}
				c.lastSpace = pendSpace
			}
			if pendOpen {
				opens++
			}
			if pendClose {
				closes++
			}
			pend, pendSpace, pendOpen, pendClose, run = 0, -1, false, false, 0
			c.e = p + 1
			continue
		case b == '(' && opens+btoi(pendOpen) == 0 && run < 2:
			pendOpen = true
			pend |= sepParen
		case b == ')' && opens == 1 && closes == 0 && !pendClose && run < 2 && c.ng > 0:
			pendClose = true
			pend |= sepParen
		case b == ' ' && run < 2 && c.ng > 0:
			pend |= sepSpace
			pendSpace = p
		case b == '-' && run < 2 && c.ng > 0:
			pend |= sepDash
		case b == '.' && run == 0 && c.ng > 0:
			pend |= sepDot
		default:
			if opens != closes {
				c.seps |= sepUnbalanced
			}
			return c
		}
		run++
	}
	if opens != closes {
		c.seps |= sepUnbalanced
	}
	return c
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// try applies the shape rules and the library check to c.
func (d phoneDetector) try(src []byte, c phoneCand, num *phonenumbers.PhoneNumber) bool {
	if c.tooLong || c.digits < minPhoneDigits || c.digits > maxPhoneDigits || c.ng > maxPhoneGroups || c.seps&sepUnbalanced != 0 {
		return false
	}
	if !rightOK(src, c.e) {
		return false
	}
	g := c.groups[:c.ng]
	if c.seps == 0 && !c.plus {
		if !phoneContext(src, c.s) {
			return false
		}
	}
	if c.seps&sepDot != 0 {
		if c.seps != sepDot {
			return false
		}
		short := true
		for _, n := range g {
			if n < 2 || n > 4 {
				return false
			}
			if n > 3 {
				short = false
			}
		}
		if short && len(g) == 4 {
			return false // IPv4 shape
		}
	}
	first := 1 // one-digit groups: a trunk prefix, or +CC then an area code
	if c.plus {
		first = 2
	}
	for k := first; k < len(g); k++ {
		if g[k] == 1 {
			return false
		}
	}
	if isDateShape(src, c, g) {
		return false
	}
	cand := src[c.s:c.e]
	h := maphash.Bytes(d.cache.seed, cand)
	if valid, ok := d.cache.get(h); ok {
		return valid
	}
	valid := validPhone(string(cand), d.region, num)
	d.cache.put(h, valid)
	return valid
}

// validPhone parses s with the default region and validates it; numbers
// of the default region are checked against it first, which is cheaper
// than the library's search over all regions sharing a calling code.
func validPhone(s, region string, num *phonenumbers.PhoneNumber) bool {
	if err := phonenumbers.ParseToNumber(s, region, num); err != nil {
		return false
	}
	if int(num.GetCountryCode()) == phonenumbers.GetCountryCodeForRegion(region) &&
		phonenumbers.IsValidNumberForRegion(num, region) {
		return true
	}
	return phonenumbers.IsValidNumber(num)
}

// isDateShape reports year-first (2024-01-15) and year-last (15.01.2024)
// dates.
func isDateShape(src []byte, c phoneCand, g []uint8) bool {
	if c.plus || len(g) < 3 {
		return false
	}
	p := c.s
	if src[p] == '(' {
		return false
	}
	if g[0] == 4 && g[1] <= 2 && isYear(src[p:]) {
		return true
	}
	if g[len(g)-1] == 4 && g[0] <= 2 && g[1] <= 2 && isYear(src[c.e-4:]) {
		return true
	}
	return false
}

func isYear(b []byte) bool {
	return len(b) >= 4 && (b[0] == '1' && b[1] == '9' || b[0] == '2' && b[1] == '0')
}

// phoneKeywords mark a bare digit run as a phone number.
var phoneKeywords = [...]string{"phone", "tel", "call", "mobile", "cell", "fax", "sms", "whatsapp", "contact"}

// phoneContext reports whether one of phoneKeywords appears (in any case)
// in the contextWindow bytes before s.
func phoneContext(src []byte, s int) bool {
	lo := s - contextWindow
	if lo < 0 {
		lo = 0
	}
	var buf [contextWindow]byte
	w := buf[:copy(buf[:], src[lo:s])]
	for i, c := range w {
		if isUpper(c) {
			w[i] = c + 'a' - 'A'
		}
	}
	for _, kw := range phoneKeywords {
		if bytes.Contains(w, []byte(kw)) {
			return true
		}
	}
	return false
}
