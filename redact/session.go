package redact

import (
	"bytes"
	"io"
	"strconv"
	"sync"
)

// MaxPlaceholderLen is the longest placeholder a Session issues or restores,
// and so the most a Restorer holds back.
const MaxPlaceholderLen = 32

// maxKindLen bounds the kind in a placeholder so it fits MaxPlaceholderLen
// with a number of up to 9 digits.
const maxKindLen = MaxPlaceholderLen - len("[[_]]") - 9

// Session is one request's placeholder mapping, held in memory only. The
// same value gets the same placeholder for the life of the session. It is
// safe for concurrent use.
type Session struct {
	e        *Engine
	mu       sync.Mutex
	byValue  map[string]string // value → placeholder
	values   map[string]string // placeholder → value
	next     map[string]int    // kind → last number issued
	reserved map[string]bool   // placeholders seen verbatim in an input: never issued
	base     int               // numbers start above it (NumberFrom)
}

// NewSession returns an empty session on e.
func (e *Engine) NewSession() *Session {
	return &Session{
		e:        e,
		byValue:  map[string]string{},
		values:   map[string]string{},
		next:     map[string]int{},
		reserved: map[string]bool{},
	}
}

// Redact replaces every finding in src with its placeholder ([[KIND_N]], N
// counted per kind from 1) and returns the new text and the findings, with
// Placeholder set and Start/End relative to src. Bytes outside findings
// are copied unchanged.
func (s *Session) Redact(src []byte) (out []byte, findings []Finding) {
	return s.RedactFound(src, s.e.Find(src))
}

// RedactFound is Redact with the findings of src already known (from an
// earlier Find of the same bytes on the same Engine): it assigns their
// placeholders and replaces them. findings is modified and returned.
func (s *Session) RedactFound(src []byte, findings []Finding) (out []byte, _ []Finding) {
	findings = s.Assign(src, findings)
	return Apply(src, findings), findings
}

// Assign is RedactFound without building the new text: it sets each
// finding's Placeholder (and never issues one that src already holds).
// findings is modified and returned.
func (s *Session) Assign(src []byte, findings []Finding) []Finding {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A placeholder already in the input must never be issued, or Restore
	// would turn that text into a value.
	for i := 0; ; {
		j := bytes.Index(src[i:], []byte("[["))
		if j < 0 {
			break
		}
		i += j
		if n, st := parsePlaceholder(src[i:]); st == phComplete {
			s.reserved[string(src[i:i+n])] = true
			i += n
		} else {
			i++
		}
	}
	for k := range findings {
		f := &findings[k]
		f.Placeholder = s.placeholder(f.Kind, string(src[f.Start:f.End]))
	}
	return findings
}

// Apply returns src with each finding's span (sorted, not overlapping)
// replaced by its Placeholder.
func Apply(src []byte, findings []Finding) []byte {
	n := len(src)
	for _, f := range findings {
		n += len(f.Placeholder) - (f.End - f.Start)
	}
	out := make([]byte, 0, max(n, 0))
	last := 0
	for _, f := range findings {
		out = append(out, src[last:f.Start]...)
		out = append(out, f.Placeholder...)
		last = f.End
	}
	return append(out, src[last:]...)
}

// NumberFrom makes the placeholders s issues from now on count from n+1
// for every kind (not below what it issued already). A request that
// continues a conversation held elsewhere (whose placeholders it cannot
// see) numbers from a random n, so that its placeholders do not repeat
// earlier ones. n is at most 10^8.
func (s *Session) NumberFrom(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = max(min(n, 1e8), 0)
}

// placeholder returns the placeholder of value, issuing one if needed.
// s.mu is held.
func (s *Session) placeholder(kind Kind, value string) string {
	if p, ok := s.byValue[value]; ok {
		return p
	}
	k := kindName(kind)
	s.next[k] = max(s.next[k], s.base)
	for {
		s.next[k]++
		p := "[[" + k + "_" + strconv.Itoa(s.next[k]) + "]]"
		if !s.reserved[p] {
			s.byValue[value] = p
			s.values[p] = value
			return p
		}
	}
}

// kindName makes kind fit the placeholder syntax: upper-case letters,
// digits and '_', starting with a letter, at most maxKindLen bytes.
func kindName(kind Kind) string {
	b := make([]byte, 0, len(kind))
	for i := 0; i < len(kind) && len(b) < maxKindLen; i++ {
		c := kind[i]
		switch {
		case 'a' <= c && c <= 'z':
			b = append(b, c-'a'+'A')
		case 'A' <= c && c <= 'Z', c == '_', '0' <= c && c <= '9':
			b = append(b, c)
		}
	}
	if len(b) == 0 || b[0] < 'A' || b[0] > 'Z' {
		b = append([]byte("R"), b...)
		if len(b) > maxKindLen {
			b = b[:maxKindLen]
		}
	}
	return string(b)
}

// Results of parsePlaceholder.
const (
	phNone     = iota // not a placeholder
	phPartial         // a prefix of one: more input needed
	phComplete        // a whole placeholder
)

// parsePlaceholder reports whether b begins with a placeholder
// ([[KIND_N]]: KIND upper-case letters, digits and '_' starting with a
// letter; N decimal digits), and its length when complete.
func parsePlaceholder(b []byte) (int, int) {
	const (
		open = iota
		kindFirst
		body
		close2
	)
	lastUnderscore, digitsAfter := false, false
	state := open
	for i := 0; i < len(b); i++ {
		if i >= MaxPlaceholderLen {
			return 0, phNone
		}
		c := b[i]
		switch {
		case i < 2:
			if c != '[' {
				return 0, phNone
			}
			if i == 1 {
				state = kindFirst
			}
		case state == kindFirst:
			if c < 'A' || c > 'Z' {
				return 0, phNone
			}
			state = body
		case state == body:
			switch {
			case c == '_':
				lastUnderscore, digitsAfter = true, false
			case '0' <= c && c <= '9':
				if lastUnderscore {
					digitsAfter = true
				}
			case 'A' <= c && c <= 'Z':
				lastUnderscore, digitsAfter = false, false
			case c == ']' && digitsAfter:
				state = close2
			default:
				return 0, phNone
			}
		case state == close2:
			if c != ']' {
				return 0, phNone
			}
			return i + 1, phComplete
		}
	}
	if len(b) >= MaxPlaceholderLen {
		return 0, phNone
	}
	return 0, phPartial
}

// Restore returns text with every placeholder the session issued replaced
// by its value. Other text, including placeholders the session does not
// know, is copied unchanged.
func (s *Session) Restore(text []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(text))
	r := s.NewRestorer(&buf)
	_, _ = r.Write(text)
	_ = r.Close()
	return buf.Bytes()
}

// NewRestorer returns a Restorer writing the restored form of what it is
// given to w.
func (s *Session) NewRestorer(w io.Writer) *Restorer {
	return &Restorer{s: s, w: w}
}

// Restorer restores placeholders in a stream written to it in arbitrary
// chunks (a streamed model response). It holds back at most
// MaxPlaceholderLen-1 bytes that could begin a placeholder until the next
// Write or Close. It is an io.WriteCloser and is not safe for concurrent
// use.
type Restorer struct {
	s       *Session
	w       io.Writer
	pending []byte
	out     []byte
	err     error
}

// Write restores what it can of p and writes it on. It returns len(p) and
// the error of the underlying writer, if any.
func (r *Restorer) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	buf := p
	if len(r.pending) > 0 {
		r.pending = append(r.pending, p...)
		buf = r.pending
	}
	r.out = r.out[:0]
	i := r.restore(buf)
	rest := buf[i:]
	r.pending = append(r.pending[:0], rest...)
	if len(r.out) > 0 {
		if _, err := r.w.Write(r.out); err != nil {
			r.err = err
			return 0, err
		}
	}
	return len(p), nil
}

// Close flushes the bytes held back. It does not close the underlying
// writer.
func (r *Restorer) Close() error {
	if r.err != nil {
		return r.err
	}
	r.out = append(r.out[:0], r.pending...)
	r.pending = r.pending[:0]
	if len(r.out) > 0 {
		if _, err := r.w.Write(r.out); err != nil {
			r.err = err
			return err
		}
	}
	return nil
}

// restore appends the restored form of buf to r.out and returns how much
// of buf it consumed; the rest could begin a placeholder.
func (r *Restorer) restore(buf []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(buf[i:], '[')
		if j < 0 {
			r.out = append(r.out, buf[i:]...)
			return len(buf)
		}
		r.out = append(r.out, buf[i:i+j]...)
		i += j
		n, st := parsePlaceholder(buf[i:])
		switch {
		case st == phComplete:
			r.s.mu.Lock()
			v, ok := r.s.values[string(buf[i:i+n])]
			r.s.mu.Unlock()
			if ok {
				r.out = append(r.out, v...)
			} else {
				r.out = append(r.out, buf[i:i+n]...)
			}
			i += n
		case st == phPartial:
			return i
		default:
			r.out = append(r.out, '[')
			i++
		}
	}
}
