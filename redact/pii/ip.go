package pii

import (
	"bytes"
	"net/netip"

	"github.com/custos-dev/custos/redact"
)

// ipDetector finds IPv4 and IPv6 addresses.
//
// Candidates start at a '.' or ':' with a digit (IPv4) or hex digit or
// colon (IPv6) next to it; the maximal run of [0-9A-Fa-f.:] around it is
// then examined once:
//   - IPv4: exactly four dot-separated decimal octets (0-255, no leading
//     zeros). Longer dotted numbers (versions such as 1.2.3.4.5), runs glued
//     to a word (v1.2.3.4, abc.1.2.3.4) and product tokens such as
//     Chrome/120.0.0.0 are skipped. A trailing sentence dot or a :port is
//     not part of the address.
//   - IPv6: at least two colons and one hex digit, parsed by net/netip
//     (IPv4-embedded forms included). Runs glued to a word (std::vector,
//     Foo::bar), timestamps (12:34:56) and MAC addresses do not parse and
//     are skipped.
//
// Unless PrivateIPs is set, only publicly routable unicast addresses are
// reported; see isPublic.
type ipDetector struct{ private bool }

func isIPByte(c byte) bool { return isHex(c) || c == '.' || c == ':' }

func (d ipDetector) Detect(src []byte, emit func(redact.Finding)) {
	n := len(src)
	// Walk the '.' and ':' bytes with two IndexByte cursors.
	dot, colon := nextByte(src, 0, '.'), nextByte(src, 0, ':')
	for {
		i := min(dot, colon)
		if i >= n {
			return
		}
		next := i + 1
		c := src[i]
		// Cheap trigger test on the neighbours before expanding.
		var hit bool
		if c == '.' {
			hit = i > 0 && i+1 < n && isDigit(src[i-1]) && isDigit(src[i+1])
		} else {
			hit = (i > 0 && isHex(src[i-1])) || (i+1 < n && (isHex(src[i+1]) || src[i+1] == ':'))
		}
		if hit {
			s, e := i, i+1
			for s > 0 && isIPByte(src[s-1]) {
				s--
			}
			for e < n && isIPByte(src[e]) {
				e++
			}
			d.token(src, s, e, emit)
			next = e
		}
		if dot < next {
			dot = nextByte(src, next, '.')
		}
		if colon < next {
			colon = nextByte(src, next, ':')
		}
	}
}

// nextByte returns the offset of the first c in src[from:], or len(src).
func nextByte(src []byte, from int, c byte) int {
	if from >= len(src) {
		return len(src)
	}
	if j := bytes.IndexByte(src[from:], c); j >= 0 {
		return from + j
	}
	return len(src)
}

// token examines the maximal IP-byte run src[s:e].
func (d ipDetector) token(src []byte, s, e int, emit func(redact.Finding)) {
	// Glued to a word (std::vector, v1.2.3.4, 1.2.3.4a) unless a colon
	// separates them (ip:8.8.8.8, addr:2606:4700::1).
	if s > 0 && isWord(src[s-1]) && src[s] != ':' || e < len(src) && isWord(src[e]) && src[e-1] != ':' {
		return
	}
	colons := 0
	for _, c := range src[s:e] {
		if c == ':' {
			colons++
		}
	}
	if colons >= 2 {
		if d.v6(src, s, e, emit) {
			return
		}
	}
	// IPv4, possibly with a :port or a label before a colon: examine each
	// colon-separated part.
	for p := s; p < e; {
		q := p
		for q < e && src[q] != ':' {
			q++
		}
		d.v4(src, p, q, emit)
		p = q + 1
	}
}

// v6 reports src[s:e] (trimmed of a stray leading or trailing ':' or '.')
// if it is an IPv6 address, and whether it was one.
func (d ipDetector) v6(src []byte, s, e int, emit func(redact.Finding)) bool {
	if e > s && src[e-1] == '.' {
		e--
	}
	if e-s >= 2 && src[s] == ':' && src[s+1] != ':' {
		s++
	}
	if e-s >= 2 && src[e-1] == ':' && src[e-2] != ':' {
		e--
	}
	if e-s < 2 || e-s > 45 {
		return false
	}
	digit := false
	for _, c := range src[s:e] {
		if isDigit(c) {
			digit = true
			break
		}
	}
	if !digit {
		return false // ::, and words such as dead::beef
	}
	a, err := netip.ParseAddr(string(src[s:e]))
	if err != nil || !a.Is6() {
		return false
	}
	if d.private || isPublic(a) {
		emit(finding(redact.KindIP, RuleIP, s, e))
	}
	return true
}

// v4 reports src[s:e] if it is exactly a dotted quad (a single trailing
// '.' is allowed and left out).
func (d ipDetector) v4(src []byte, s, e int, emit func(redact.Finding)) {
	if e-s >= 8 && src[e-1] == '.' && src[e-2] != '.' {
		e--
	}
	if e-s < 7 || e-s > 15 {
		return
	}
	var oct [4]byte
	k, nd := 0, 0
	var v byte
	for p := s; p < e; p++ {
		c := src[p]
		switch {
		case isDigit(c):
			dg := c - '0'
			if nd > 0 && v == 0 { // leading zero
				return
			}
			if v > 25 || v == 25 && dg > 5 { // above 255
				return
			}
			v = v*10 + dg
			nd++
		case c == '.':
			if nd == 0 || k == 3 {
				return
			}
			oct[k] = v
			k, v, nd = k+1, 0, 0
		default: // a hex letter
			return
		}
	}
	if k != 3 || nd == 0 {
		return
	}
	oct[3] = v
	// Product/version tokens: Chrome/120.0.0.0, Version/17.1.2.3.
	if s >= 2 && src[s-1] == '/' && isAlnum(src[s-2]) {
		return
	}
	a := netip.AddrFrom4(oct)
	if d.private || isPublic(a) {
		emit(finding(redact.KindIP, RuleIP, s, e))
	}
}

// nonPublic are ranges that identify no host on the public internet,
// beyond what netip's predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// globalUnicast is the only IPv6 block with public unicast addresses.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// isPublic reports whether a is a publicly routable unicast address: not
// private (RFC 1918, fc00::/7), loopback, link-local, unspecified,
// multicast, or in one of the special ranges above (documentation
// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 among them).
// IPv4-mapped IPv6 addresses are judged as IPv4; other IPv6 addresses must
// be in 2000::/3, which also keeps words such as a::b out.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() && !globalUnicast.Contains(a) {
		return false
	}
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
