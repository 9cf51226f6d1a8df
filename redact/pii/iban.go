package pii

import "github.com/custos-dev/custos/redact"

// ibanDetector finds IBANs: a country code, two check digits and the
// country's BBAN (letters A-Z and digits), written either as one block
// (DE89370400440532013000) or in groups of four separated by single spaces
// (DE89 3704 0044 0532 0130 00). The total length must match the country's
// entry in the SWIFT IBAN registry and the ISO 7064 mod-97 checksum must
// be 1. Candidates are found by a scan for two capitals followed by two
// digits at the start of a word. Lower-case IBANs are not reported.
type ibanDetector struct{}

const maxIBAN = 34

func (ibanDetector) Detect(src []byte, emit func(redact.Finding)) {
	dx := newDigitIndex(src)
	defer dx.free()
	ibanDetector{}.detect(src, dx, emit)
}

func (ibanDetector) detect(src []byte, dx *digitIndex, emit func(redact.Finding)) {
	n := len(src)
	for i := 0; i+15 <= n; i++ {
		if !isDigit(src[i+2]) {
			// No IBAN starts before the next digit's position minus two.
			i = dx.next(i+2) - 3 // the loop's i++ adds one
			continue
		}
		if !isUpper(src[i]) || !isUpper(src[i+1]) || !isDigit(src[i+3]) {
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

// readBBAN reads len(dst) BBAN characters starting at src[p], either
// unbroken or as space-separated groups of four that follow the first four
// characters of the IBAN. It returns the end offset.
func readBBAN(src []byte, p int, dst []byte) (int, bool) {
	spaced := p < len(src) && src[p] == ' '
	for k := range dst {
		if spaced && k%4 == 0 {
			if p >= len(src) || src[p] != ' ' {
				return 0, false
			}
			p++
		}
		if p >= len(src) || !(isUpper(src[p]) || isDigit(src[p])) {
			return 0, false
		}
		dst[k] = src[p]
		p++
	}
	return p, true
}

// ibanChecksum computes the ISO 7064 mod 97-10 check over s (country code
// and check digits moved to the end, letters as 10-35).
func ibanChecksum(s []byte) bool {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range s[4:] {
		add(c)
	}
	for _, c := range s[:4] {
		add(c)
	}
	return r == 1
}

// ibanLength returns the IBAN length for a country code, or 0.
func ibanLength(a, b byte) int {
	return int(ibanTable[int(a-'A')*26+int(b-'A')])
}

// ibanTable is ibanLengths indexed by the two letters, for the hot loop.
var ibanTable = func() (t [26 * 26]uint8) {
	for cc, n := range ibanLengths {
		t[int(cc[0]-'A')*26+int(cc[1]-'A')] = n
	}
	return t
}()

// ibanLengths is the IBAN length per country from the SWIFT IBAN registry.
var ibanLengths = map[string]uint8{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
	"BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22,
	"CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20,
	"EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22,
	"GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30,
	"KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
	"MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
	"PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
	"SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26,
	"UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
