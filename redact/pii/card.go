package pii

import "github.com/custos-dev/custos/redact"

// cardDetector finds payment card numbers.
//
// Candidates are runs of 13-19 digits that stand on their own (see leftOK),
// either bare or split by one kind of separator (single spaces or single
// dashes) into the groups printed on cards: 4-4-4-4(-3) or shorter last
// group, and 4-6-5 / 4-6-4 (Amex, Diners). A candidate is reported when its
// issuer prefix and length match a known network (Visa, Mastercard, Amex,
// Discover, Diners, JCB, UnionPay, Maestro) and the Luhn checksum holds.
// Longer digit runs (IDs, hashes) are skipped as a whole.
type cardDetector struct{}

const maxCardDigits = 19

func (cardDetector) Detect(src []byte, emit func(redact.Finding)) {
	dx := newDigitIndex(src)
	defer dx.free()
	cardDetector{}.detect(src, dx, emit)
}

func (cardDetector) detect(src []byte, dx *digitIndex, emit func(redact.Finding)) {
	var digits [maxCardDigits]byte
	for i := 0; i < len(src); {
		if !isDigit(src[i]) {
			i = dx.next(i)
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

// skipNumber returns the end of the digit run (with single separators)
// containing src[i], so no candidate starts inside it.
func skipNumber(src []byte, i int) int {
	for i < len(src) {
		if isDigit(src[i]) {
			i++
			continue
		}
		if (src[i] == ' ' || src[i] == '-' || src[i] == '.') && i+1 < len(src) && isDigit(src[i+1]) {
			i++
			continue
		}
		break
	}
	return i
}

func cardGroupsOK(g []uint8) bool {
	switch len(g) {
	case 1:
		return true
	case 3:
		if g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4) {
			return true
		}
	}
	if len(g) < 4 {
		return false
	}
	for _, n := range g[:len(g)-1] {
		if n != 4 {
			return false
		}
	}
	return g[len(g)-1] >= 1 && g[len(g)-1] <= 4
}

// prefix returns the number formed by the first n digits of d.
func prefix(d []byte, n int) int {
	v := 0
	for _, c := range d[:n] {
		v = v*10 + int(c-'0')
	}
	return v
}

// cardNetwork reports whether the issuer prefix (IIN) and length of the
// digits d belong to a known card network.
func cardNetwork(d []byte) bool {
	n := len(d)
	p1, p2, p3, p4 := prefix(d, 1), prefix(d, 2), prefix(d, 3), prefix(d, 4)
	switch {
	case p1 == 4: // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65: // Discover
		return n >= 16 && n <= 19
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return n >= 14 && n <= 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16 && n <= 19
	case p2 == 62: // UnionPay
		return n >= 16 && n <= 19
	case p4 == 5018, p4 == 5020, p4 == 5038, p4 == 5893, p4 == 6304,
		p4 == 6759, p4 == 6761, p4 == 6762, p4 == 6763: // Maestro
		return n >= 13 && n <= 19
	}
	return false
}

// luhn reports whether the ASCII digits d pass the Luhn checksum.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
