package pii

import (
	"bytes"

	"github.com/custos-dev/custos/redact"
)

// emailDetector finds local@domain.tld addresses.
//
// Candidates are the '@' bytes (found with bytes.IndexByte); around each the
// local part ([A-Za-z0-9._%+-], at most 64 bytes, no leading, trailing or
// doubled dot) and the domain (at least two labels, each 1-63 letters,
// digits or inner hyphens, ending in an alphabetic TLD of two or more
// letters or an xn-- label) are matched. Not reported:
//   - user@localhost and other hosts without a TLD, and npm/Go style
//     versions such as lodash@4.17.21 (numeric TLD);
//   - asset names such as icon@2x.png (the TLD is an image extension);
//   - addresses glued to a longer word (a non-ASCII letter or '_' next to
//     them, or a local part longer than 64 bytes);
//   - the local part "git" (git@github.com:org/repo.git and friends): it is
//     the shared service account of every Git host, not a person, and
//     redacting it would break the SSH remotes agents work with. Any other
//     user@host, SSH form or not, is reported.
type emailDetector struct{}

// maxLocal is the longest local part RFC 5321 allows.
const maxLocal = 64

func (emailDetector) Detect(src []byte, emit func(redact.Finding)) {
	for i := 0; i < len(src); {
		j := bytes.IndexByte(src[i:], '@')
		if j < 0 {
			return
		}
		at := i + j
		if s, e, ok := matchEmail(src, at); ok {
			emit(finding(redact.KindEmail, RuleEmail, s, e))
			i = e
			continue
		}
		i = at + 1
	}
}

func isLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomainByte(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// matchEmail matches an address around the '@' at src[at].
func matchEmail(src []byte, at int) (start, end int, ok bool) {
	s := at
	for s > 0 && isLocalByte(src[s-1]) {
		s--
		if at-s > maxLocal {
			return 0, 0, false
		}
	}
	for s < at && src[s] == '.' {
		s++
	}
	if s == at || src[at-1] == '.' || bytes.Contains(src[s:at], []byte("..")) {
		return 0, 0, false
	}
	if s > 0 && src[s-1] >= 0x80 {
		return 0, 0, false
	}
	if at-s == 3 && bytes.EqualFold(src[s:at], []byte("git")) {
		return 0, 0, false
	}
	e := at + 1
	for e < len(src) && isDomainByte(src[e]) {
		e++
	}
	for e > at+1 && src[e-1] == '.' {
		e--
	}
	if e < len(src) && (src[e] == '_' || src[e] >= 0x80 || src[e] == '@') {
		return 0, 0, false
	}
	if !validDomain(src[at+1 : e]) {
		return 0, 0, false
	}
	return s, e, true
}

// validDomain checks label shapes and the TLD.
func validDomain(d []byte) bool {
	if len(d) < 4 || len(d) > 253 {
		return false
	}
	labels := 0
	last := 0
	for start := 0; start <= len(d); {
		end := bytes.IndexByte(d[start:], '.')
		if end < 0 {
			end = len(d)
		} else {
			end += start
		}
		l := d[start:end]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		last = start
		start = end + 1
	}
	return labels >= 2 && validTLD(d[last:])
}

func validTLD(t []byte) bool {
	if len(t) > 4 && (t[0] == 'x' || t[0] == 'X') && bytes.EqualFold(t[:4], []byte("xn--")) {
		return true
	}
	if len(t) < 2 {
		return false
	}
	for _, c := range t {
		if !isAlpha(c) {
			return false
		}
	}
	for _, ext := range assetTLDs {
		if bytes.EqualFold(t, []byte(ext)) {
			return false
		}
	}
	return true
}

// assetTLDs are image extensions used in name@2x.png asset names; none is a
// real TLD.
var assetTLDs = [...]string{"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "avif", "heic", "tif", "tiff"}
