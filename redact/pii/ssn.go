package pii

import "github.com/custos-dev/custos/redact"

// ssnDetector finds US social security numbers written AAA-GG-SSSS, with
// dashes or (both) single spaces. Numbers the SSA never issues are skipped:
// area 000, 666 or 900-999, group 00, serial 0000. The number must stand on
// its own: not inside a word or a longer dashed/dotted number (a UUID, a
// part number), and for the spaced form not inside a longer list of
// numbers. A bare run of nine digits is not reported: it is far more often
// an ID, a count or a timestamp fragment than an SSN.
type ssnDetector struct{}

func (ssnDetector) Detect(src []byte, emit func(redact.Finding)) {
	dx := newDigitIndex(src)
	defer dx.free()
	ssnDetector{}.detect(src, dx, emit)
}

func (ssnDetector) detect(src []byte, dx *digitIndex, emit func(redact.Finding)) {
	n := len(src)
	for i := 0; i+11 <= n; i++ {
		if !isDigit(src[i]) {
			i = dx.next(i) - 1 // the loop's i++ lands on the digit
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

// digitsAt reports whether src[i:i+n] are all digits (and n of them
// exist).
func digitsAt(src []byte, i, n int) bool {
	if i+n > len(src) {
		return false
	}
	for _, c := range src[i : i+n] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// spacedDigitBefore reports whether src[i] follows "<digit> ".
func spacedDigitBefore(src []byte, i int) bool {
	return i >= 2 && src[i-1] == ' ' && isDigit(src[i-2])
}
