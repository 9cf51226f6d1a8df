package ignore

// This file follows git's wildmatch.c (dowild with WM_PATHNAME), byte for
// byte, so that patterns behave exactly as in git: "*", "?" and "[…]" never
// match "/", and "**" matches across directories only when it forms a whole
// path element ("**/", "/**", "/**/", or the whole pattern).

type wmResult int

const (
	wmMatch wmResult = iota
	wmNoMatch
	wmAbortAll
	wmAbortToStarStar
)

// wildmatch reports whether text matches pattern with git's WM_PATHNAME
// semantics.
func wildmatch(pattern, text string) bool {
	return dowild(pattern, text) == wmMatch
}

func isGlobSpecial(c byte) bool {
	return c == '*' || c == '?' || c == '[' || c == '\\'
}

// at returns s[i], or 0 past the end (C string semantics).
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func dowild(pat, text string) wmResult {
	p, t := 0, 0
	for ; p < len(pat); p, t = p+1, t+1 {
		pc := pat[p]
		tc := at(text, t)
		if tc == 0 && t >= len(text) && pc != '*' {
			return wmAbortAll
		}
		switch pc {
		case '\\':
			// Literal match with the following character; a trailing
			// backslash matches nothing.
			p++
			if p >= len(pat) || tc != pat[p] {
				return wmNoMatch
			}
		case '?':
			if tc == '/' {
				return wmNoMatch
			}
		case '*':
			var matchSlash bool
			p++
			if at(pat, p) == '*' {
				prev := p - 2
				for p++; at(pat, p) == '*'; p++ {
				}
				if (prev < 0 || pat[prev] == '/') &&
					(p >= len(pat) || pat[p] == '/' || (pat[p] == '\\' && at(pat, p+1) == '/')) {
					if at(pat, p) == '/' && p < len(pat) && dowild(pat[p+1:], text[t:]) == wmMatch {
						return wmMatch
					}
					matchSlash = true
				}
			}
			if p >= len(pat) {
				// Trailing "**" matches everything; trailing "*" only
				// if no "/" is left.
				if !matchSlash && indexByte(text[t:], '/') >= 0 {
					return wmNoMatch
				}
				return wmMatch
			}
			if !matchSlash && pat[p] == '/' {
				// One "*" followed by "/" matches up to the next "/".
				i := indexByte(text[t:], '/')
				if i < 0 {
					return wmNoMatch
				}
				t += i
				// The "/" pair is consumed by the loop increment.
				continue
			}
			for {
				if t >= len(text) {
					break
				}
				if !isGlobSpecial(pat[p]) {
					// Skip ahead to the next occurrence of the literal.
					pch := pat[p]
					for t < len(text) && (matchSlash || text[t] != '/') {
						if text[t] == pch {
							break
						}
						t++
					}
					if t >= len(text) || text[t] != pch {
						return wmNoMatch
					}
				}
				m := dowild(pat[p:], text[t:])
				if m != wmNoMatch {
					if !matchSlash || m != wmAbortToStarStar {
						return m
					}
				} else if !matchSlash && text[t] == '/' {
					return wmAbortToStarStar
				}
				t++
			}
			return wmAbortAll
		case '[':
			p++
			pch := at(pat, p)
			if pch == '^' {
				pch = '!'
			}
			negated := pch == '!'
			if negated {
				p++
				pch = at(pat, p)
			}
			var prev byte
			matched := false
			for {
				if p >= len(pat) {
					return wmAbortAll
				}
				switch {
				case pch == '\\':
					p++
					if p >= len(pat) {
						return wmAbortAll
					}
					pch = pat[p]
					if tc == pch {
						matched = true
					}
				case pch == '-' && prev != 0 && p+1 < len(pat) && pat[p+1] != ']':
					p++
					pch = pat[p]
					if pch == '\\' {
						p++
						if p >= len(pat) {
							return wmAbortAll
						}
						pch = pat[p]
					}
					if tc <= pch && tc >= prev {
						matched = true
					}
					pch = 0 // prev becomes 0: no range right after a range
				case pch == '[' && at(pat, p+1) == ':':
					s := p + 2
					q := s
					for q < len(pat) && pat[q] != ']' {
						q++
					}
					if q >= len(pat) {
						return wmAbortAll
					}
					if q-s-1 < 0 || pat[q-1] != ':' {
						// Not "[:class:]": a literal "[".
						pch = '['
						if tc == pch {
							matched = true
						}
						break
					}
					p = q
					ok, known := inClass(pat[s:q-1], tc)
					if !known {
						return wmAbortAll
					}
					if ok {
						matched = true
					}
					pch = 0
				default:
					if tc == pch {
						matched = true
					}
				}
				prev = pch
				p++
				pch = at(pat, p)
				if p >= len(pat) {
					return wmAbortAll
				}
				if pch == ']' {
					break
				}
			}
			if matched == negated || tc == '/' {
				return wmNoMatch
			}
		default:
			if tc != pc {
				return wmNoMatch
			}
		}
	}
	if t < len(text) {
		return wmNoMatch
	}
	return wmMatch
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// inClass reports whether c is in the POSIX class name (C locale); known is
// false for an unknown class, which makes the pattern match nothing.
func inClass(name string, c byte) (ok, known bool) {
	isUpper := c >= 'A' && c <= 'Z'
	isLower := c >= 'a' && c <= 'z'
	isDigit := c >= '0' && c <= '9'
	isAlpha := isUpper || isLower
	isPunct := c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
	switch name {
	case "alnum":
		return isAlpha || isDigit, true
	case "alpha":
		return isAlpha, true
	case "blank":
		return c == ' ' || c == '\t', true
	case "cntrl":
		return c < 0x20 || c == 0x7f, true
	case "digit":
		return isDigit, true
	case "graph":
		return c > 0x20 && c < 0x7f, true
	case "lower":
		return isLower, true
	case "print":
		return c >= 0x20 && c < 0x7f, true
	case "punct":
		return isPunct, true
	case "space":
		return c == ' ' || c >= '\t' && c <= '\r', true
	case "upper":
		return isUpper, true
	case "xdigit":
		return isDigit || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F', true
	}
	return false, false
}
