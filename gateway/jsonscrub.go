package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/custos-dev/custos/redact"
)

// top holds the request's top-level fields the gateway routes and budgets by.
type top struct {
	model         string
	stream        bool
	maxTokens     int64
	streamOptions bool // the caller set stream_options
}

// errNotObject is a body that is not one JSON object.
var errNotObject = errors.New("the request body is not a JSON object")

// errDuplicateName is an object with a member name twice: which one counts
// differs between parsers, so custos refuses it.
var errDuplicateName = errors.New("the request body has an object with the same member name twice")

// maxDepth bounds the nesting of arrays and objects in a request body (as
// encoding/json/v2 does).
const maxDepth = 10000

// streamOptions is added to a streaming chat request without
// stream_options, so the provider reports usage at the end.
const streamOptions = `"stream_options":{"include_usage":true}`

// scrubBody validates raw as exactly one JSON object (RFC 8259: no
// duplicate names, valid UTF-8, nothing after it but white space) and
// returns it with every text string redacted by sc — the same strings
// redactValue redacts — in one pass, without building a tree. What is not
// redacted (names, numbers, literals, strings with nothing found) is copied
// as it came; a redacted string keeps the caller's escapes around its
// placeholders (splice), or is quoted anew when that cannot be. With
// addStreamOptions, a streaming request without stream_options gets
// {"include_usage":true}. The result never shares memory with raw (whose
// buffer is reused), even when nothing changed: it is written into dst's
// buffer (dst.b then holds it, error or not, and nothing was written past
// it), or into a new slice when dst is nil.
func scrubBody(dst *bodyBuf, raw []byte, sc *scrubber, addStreamOptions bool) ([]byte, top, error) {
	p := bodyParser{src: raw, sc: sc, addStreamOptions: addStreamOptions}
	if dst != nil {
		p.out = dst.b[:0]
		defer func() {
			if cap(p.out) != cap(dst.b) {
				// It grew: the pooled array is dropped, cleared like a
				// released one.
				clear(dst.b[:cap(dst.b)])
				dst.hi = 0
			}
			dst.b, dst.hi = p.out, max(dst.hi, len(p.out))
		}()
	}
	if s, _ := scratchPool.Get().(*bodyScratch); s != nil {
		p.names, p.buf = s.names, s.buf
		defer func() {
			clear(p.names[:cap(p.names)]) // they point into raw
			if cap(p.buf) <= maxPooled {
				s.names, s.buf = p.names[:0], p.buf[:0]
				scratchPool.Put(s)
			}
		}()
	}
	p.i = skipSpace(raw, 0)
	if p.i >= len(raw) || raw[p.i] != '{' {
		return nil, top{}, errNotObject
	}
	start := p.i
	p.copied = start
	if err := p.object(1, false, true); err != nil {
		return nil, top{}, err
	}
	end := p.i
	if skipSpace(raw, end) != len(raw) {
		return nil, top{}, errNotObject
	}
	p.flush(end)
	return p.out, p.t, nil
}

// bodyScratch is the working memory of a scrubBody pass, pooled.
type bodyScratch struct {
	names [][]byte
	buf   []byte
}

// scratchPool holds the bodyScratch of finished passes.
var scratchPool = sync.Pool{New: func() any { return new(bodyScratch) }}

// maxPooled is the largest unescape buffer kept for the next request.
const maxPooled = 1 << 20

// bodyParser is the state of one scrubBody pass.
type bodyParser struct {
	src              []byte
	i                int    // the next byte to read
	out              []byte // the result so far
	copied           int    // src[copied:i] is not yet in out
	sc               *scrubber
	addStreamOptions bool
	t                top
	names            [][]byte // the member names of the open objects
	buf              []byte   // an unescaped string
}

// flush copies src[copied:to] to out; the bytes from to on are replaced.
func (p *bodyParser) flush(to int) {
	if len(p.out) == 0 {
		// Room for the body and some placeholders longer than their values.
		p.out = slices.Grow(p.out, len(p.src)+len(p.src)/8+len(streamOptions)+1)
	}
	p.out = append(p.out, p.src[p.copied:to]...)
	p.copied = to
}

// smallObject is the member count up to which duplicate names are found by
// comparing with each earlier name; larger objects use a set.
const smallObject = 16

// object parses the object whose '{' is at p.i, at nesting depth; skip
// leaves its strings unredacted, isTop marks the body itself.
func (p *bodyParser) object(depth int, skip, isTop bool) error {
	if depth > maxDepth {
		return errNotObject
	}
	src := p.src
	p.i = skipSpace(src, p.i+1)
	if p.i < len(src) && src[p.i] == '}' {
		p.i++
		return nil
	}
	base := len(p.names)
	defer func() { p.names = p.names[:base] }()
	var set map[string]struct{}
	for {
		if p.i >= len(src) || src[p.i] != '"' {
			return errNotObject
		}
		start := p.i
		end, name, _, ok := scanUnescape(nil, src, start)
		if !ok {
			return errNotObject
		}
		// Duplicate names.
		switch {
		case set != nil:
			if _, dup := set[string(name)]; dup {
				return errDuplicateName
			}
			set[string(name)] = struct{}{}
		default:
			for _, n := range p.names[base:] {
				if bytes.Equal(n, name) {
					return errDuplicateName
				}
			}
			p.names = append(p.names, name)
			if len(p.names)-base > smallObject {
				set = make(map[string]struct{}, 2*smallObject)
				for _, n := range p.names[base:] {
					set[string(n)] = struct{}{}
				}
			}
		}
		p.i = skipSpace(src, end)
		if p.i >= len(src) || src[p.i] != ':' {
			return errNotObject
		}
		p.i = skipSpace(src, p.i+1)
		if err := p.value(depth, name, skip || skipKeys[string(name)], isTop); err != nil {
			return err
		}
		var more bool
		if p.i, more, ok = afterItem(src, p.i, '}'); !ok {
			return errNotObject
		} else if more {
			continue
		}
		if isTop && p.addStreamOptions && p.t.stream && !p.t.streamOptions {
			p.flush(p.i)
			p.out = append(p.out, ',')
			p.out = append(p.out, streamOptions...)
		}
		p.i++
		return nil
	}
}

// array parses the array whose '[' is at p.i.
func (p *bodyParser) array(depth int, skip bool) error {
	if depth > maxDepth {
		return errNotObject
	}
	src := p.src
	p.i = skipSpace(src, p.i+1)
	if p.i < len(src) && src[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := p.value(depth, nil, skip, false); err != nil {
			return err
		}
		var more, ok bool
		if p.i, more, ok = afterItem(src, p.i, ']'); !ok {
			return errNotObject
		} else if !more {
			p.i++
			return nil
		}
	}
}

// value parses the value at p.i, a member of an object under name key (nil
// in an array) at depth; inTop: a member of the body itself.
func (p *bodyParser) value(depth int, key []byte, skip, inTop bool) error {
	src := p.src
	if p.i >= len(src) {
		return errNotObject
	}
	if inTop && string(key) == "stream_options" {
		p.t.streamOptions = true
	}
	switch c := src[p.i]; c {
	case '{':
		return p.object(depth+1, skip, false)
	case '[':
		return p.array(depth+1, skip)
	case '"':
		return p.str(key, skip, inTop)
	case 't':
		if inTop && string(key) == "stream" {
			p.t.stream = true
		}
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	}
	start := p.i
	end, ok := scanNumber(src, start)
	if !ok {
		return errNotObject
	}
	p.i = end
	if inTop && p.t.maxTokens == 0 {
		switch string(key) {
		case "max_completion_tokens", "max_tokens", "max_output_tokens":
			if n, err := strconv.ParseInt(string(src[start:end]), 10, 64); err == nil && n > 0 {
				p.t.maxTokens = n
			}
		}
	}
	return nil
}

func (p *bodyParser) literal(lit string) error {
	if !bytes.HasPrefix(p.src[p.i:], []byte(lit)) {
		return errNotObject
	}
	p.i += len(lit)
	return nil
}

// str parses the string value at p.i and redacts it unless skip.
func (p *bodyParser) str(key []byte, skip, inTop bool) error {
	src := p.src
	start := p.i
	end, content, buf, ok := scanUnescape(p.buf, src, start)
	p.buf = buf
	if !ok {
		return errNotObject
	}
	p.i = end
	if inTop && string(key) == "model" {
		p.t.model = string(content)
	}
	if p.sc == nil || skip || (inTop && string(key) == "stream") {
		return nil
	}
	if string(key) == "url" && bytes.HasPrefix(content, []byte("data:")) {
		return nil
	}
	if string(key) == "arguments" {
		in := string(content)
		s := p.sc.redactJSONString(in)
		if s == in {
			return nil
		}
		p.flush(start)
		p.out = appendQuoted(p.out, []byte(s))
		p.copied = end
		return nil
	}
	fs := p.sc.findings(content)
	if fs == nil {
		return nil
	}
	p.flush(start)
	if !p.splice(src[start+1:end-1], fs) {
		p.out = appendQuoted(p.out, redact.Apply(content, fs))
	}
	p.copied = end
	return nil
}

// splice appends the JSON string raw (its contents as they came, between
// the quotes) to out with each finding's span replaced by its placeholder,
// keeping raw's escapes. The findings' offsets are in the unescaped text,
// in order. It appends nothing and returns false if a span does not begin
// and end on a character boundary of raw.
func (p *bodyParser) splice(raw []byte, fs []redact.Finding) bool {
	mark := len(p.out)
	p.out = append(p.out, '"')
	c, last := rawCursor{raw: raw}, 0
	for _, f := range fs {
		a, ok := c.at(f.Start)
		if !ok {
			p.truncate(mark)
			return false
		}
		b, ok := c.at(f.End)
		if !ok {
			p.truncate(mark)
			return false
		}
		p.out = append(p.out, raw[last:a]...)
		p.out = append(p.out, f.Placeholder...)
		last = b
	}
	p.out = append(p.out, raw[last:]...)
	p.out = append(p.out, '"')
	return true
}

// truncate cuts out back to n bytes, clearing what it cuts: out may be
// a pooled buffer, which release clears only up to what out holds.
func (p *bodyParser) truncate(n int) {
	clear(p.out[n:])
	p.out = p.out[:n]
}

// skipSpace returns the index of the first byte from i on that is not JSON
// white space.
func skipSpace(src []byte, i int) int {
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		break
	}
	return i
}

// plain marks the bytes a JSON string holds as they are: printable ASCII
// other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Eight bytes at a time: lo has 1 in each byte, hi 0x80.
const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

// skipPlain returns the index of the first byte from i on that is not
// plain, eight bytes at a time where it can.
func skipPlain(src []byte, i int) int {
	for ; i+8 <= len(src); i += 8 {
		x := binary.LittleEndian.Uint64(src[i:])
		// Any byte ≥ 0x80, < 0x20, '"' or '\\' (each test is exact for
		// "some byte of x", which is all this needs).
		if x&hi != 0 || (x-0x20*lo)&^x&hi != 0 || hasZero(x^('"'*lo)) || hasZero(x^('\\'*lo)) {
			break
		}
	}
	for i < len(src) && plain[src[i]] {
		i++
	}
	return i
}

// hasZero reports whether a byte of x is zero.
func hasZero(x uint64) bool { return (x-lo)&^x&hi != 0 }

// scanString validates the JSON string whose opening quote is at i and
// returns the index past its closing quote and whether it holds escapes.
// Like encoding/json/v2, it refuses invalid UTF-8 and escaped surrogates
// that do not form a pair.
func scanString(src []byte, i int) (end int, escaped, ok bool) {
	i++
	for {
		i = skipPlain(src, i)
		if i >= len(src) {
			return 0, false, false
		}
		switch c := src[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			n := escapeLen(src[i:])
			if n == 0 {
				return 0, false, false
			}
			escaped = true
			i += n
		case c < 0x20:
			return 0, false, false
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, false
			}
			i += size
		}
	}
}

// escapeLen returns the length of the valid escape sequence at the start of
// b (b[0] is a backslash), or 0.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0
		}
		if !utf16.IsSurrogate(r) {
			return 6
		}
		if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
			return 0
		}
		r2, ok := hex4(b[8:])
		if !ok || utf16.DecodeRune(r, r2) == utf8.RuneError {
			return 0
		}
		return 12
	}
	return 0
}

// hex4 parses four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendEscape appends the character of the valid escape sequence at the
// start of b (b[0] is a backslash) and returns the sequence's length.
func appendEscape(dst, b []byte) ([]byte, int) {
	if c := shortEscape[b[1]]; c != 0 {
		return append(dst, c), 2
	}
	r, _ := hex4(b[2:]) // \uXXXX
	if !utf16.IsSurrogate(r) {
		return utf8.AppendRune(dst, r), 6
	}
	r2, _ := hex4(b[8:])
	return utf8.AppendRune(dst, utf16.DecodeRune(r, r2)), 12
}

// shortEscape maps the byte after a backslash to what a two-byte escape
// stands for (0: not one).
var shortEscape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// scanUnescape is scanString and unescape in one pass: it validates the
// JSON string whose opening quote is at i and returns the index past its
// closing quote and its contents — a sub-slice of src if it holds no
// escape, else its unescaped form appended to dst[:0] (dst, grown, is
// returned for reuse).
func scanUnescape(dst, src []byte, i int) (end int, content, buf []byte, ok bool) {
	i++
	begin, copied := i, -1 // copied ≥ 0: dst holds src[begin:copied] unescaped
	for {
		i = skipPlain(src, i)
		if i >= len(src) {
			return 0, nil, dst, false
		}
		switch c := src[i]; {
		case c == '"':
			if copied < 0 {
				return i + 1, src[begin:i], dst, true
			}
			dst = append(dst, src[copied:i]...)
			return i + 1, dst, dst, true
		case c == '\\':
			if copied < 0 {
				dst = append(dst[:0], src[begin:i]...)
			} else {
				dst = append(dst, src[copied:i]...)
			}
			// Escapes come in runs (code: \n\t\t\t, \"\"): decode the
			// whole run here, the two-byte ones by table.
			for {
				if i+1 < len(src) && shortEscape[src[i+1]] != 0 {
					dst = append(dst, shortEscape[src[i+1]])
					i += 2
				} else {
					n := escapeLen(src[i:])
					if n == 0 {
						return 0, nil, dst, false
					}
					dst, _ = appendEscape(dst, src[i:i+n])
					i += n
				}
				if i >= len(src) || src[i] != '\\' {
					break
				}
			}
			copied = i
		case c < 0x20:
			return 0, nil, dst, false
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, nil, dst, false
			}
			i += size
		}
	}
}

// rawCursor maps offsets of a JSON string's unescaped text to offsets in
// raw, its contents as they came; the offsets asked for must not decrease.
type rawCursor struct {
	raw  []byte
	r, u int // raw[r:] unescapes to the text from offset u on
}

// at returns the offset in raw where the character at offset x of the
// unescaped text begins. It is false inside an escape's expansion, a
// UTF-8 sequence, or past the text's end.
func (c *rawCursor) at(x int) (int, bool) {
	raw := c.raw
	for c.u < x {
		// Plain bytes map one to one, up to the next escape.
		j := bytes.IndexByte(raw[c.r:], '\\')
		if j < 0 {
			j = len(raw) - c.r
		}
		if c.u+j >= x {
			c.r, c.u = c.r+(x-c.u), x
			break
		}
		c.r, c.u = c.r+j, c.u+j
		if c.r >= len(raw) {
			return 0, false // x is past the text's end
		}
		var one [utf8.UTFMax]byte
		b, n := appendEscape(one[:0], raw[c.r:])
		if c.u+len(b) > x {
			return 0, false // x is inside the expansion
		}
		c.r, c.u = c.r+n, c.u+len(b)
	}
	if c.r < len(raw) && raw[c.r]&0xc0 == 0x80 {
		return 0, false
	}
	return c.r, c.r <= len(raw)
}

// scanNumber validates the JSON number at i and returns the index past it.
func scanNumber(src []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		j := i
		for j < len(src) && '0' <= src[j] && src[j] <= '9' {
			j++
		}
		return j, j > i
	}
	if i < len(src) && src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && '1' <= src[i] && src[i] <= '9':
		i, _ = digits(i)
	default:
		return 0, false
	}
	ok := true
	if i < len(src) && src[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return 0, false
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return 0, false
		}
	}
	return i, true
}

// appendQuoted appends s as a JSON string. Invalid UTF-8 (a finding cut
// through a character) becomes U+FFFD.
func appendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	last := 0
	for i := 0; ; {
		if i = skipPlain(s, i); i >= len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size > 1 {
				i += size
				continue
			}
		}
		dst = append(dst, s[last:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			} else {
				dst = append(dst, `\ufffd`...)
			}
		}
		i++
		last = i
	}
	dst = append(dst, s[last:]...)
	return append(dst, '"')
}

// skipValue validates the JSON value at i (at nesting depth) and returns
// the index past it. Unlike scrubBody it allows duplicate names: it reads
// providers' answers, which encoding/json read before.
func skipValue(src []byte, i, depth int) (int, bool) {
	if i >= len(src) || depth > maxDepth {
		return 0, false
	}
	switch src[i] {
	case '{':
		ok := true
		i, ok = eachMemberAt(src, i, depth, nil)
		return i, ok
	case '[':
		i = skipSpace(src, i+1)
		if i < len(src) && src[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(src, i, depth+1); !ok {
				return 0, false
			}
			var more bool
			if i, more, ok = afterItem(src, i, ']'); !ok || !more {
				return i + 1, ok
			}
		}
	case '"':
		end, _, ok := scanString(src, i)
		return end, ok
	case 't':
		return i + 4, bytes.HasPrefix(src[i:], []byte("true"))
	case 'f':
		return i + 5, bytes.HasPrefix(src[i:], []byte("false"))
	case 'n':
		return i + 4, bytes.HasPrefix(src[i:], []byte("null"))
	}
	return scanNumber(src, i)
}

// eachMemberAt validates the object whose '{' is at i and calls fn (if not
// nil) with each member's unescaped name and raw value.
func eachMemberAt(src []byte, i, depth int, fn func(name, value []byte)) (int, bool) {
	i = skipSpace(src, i+1)
	if i < len(src) && src[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(src) || src[i] != '"' {
			return 0, false
		}
		end, name, _, ok := scanUnescape(nil, src, i)
		if !ok {
			return 0, false
		}
		i = skipSpace(src, end)
		if i >= len(src) || src[i] != ':' {
			return 0, false
		}
		start := skipSpace(src, i+1)
		if i, ok = skipValue(src, start, depth+1); !ok {
			return 0, false
		}
		if fn != nil {
			fn(name, src[start:i])
		}
		var more bool
		if i, more, ok = afterItem(src, i, '}'); !ok || !more {
			return i + 1, ok
		}
	}
}

// afterItem looks past the white space after an array element or object
// member that ends at i: at a ',' it returns the next item's start and
// more; at close, the index of close. ok is false at anything else.
func afterItem(src []byte, i int, close byte) (j int, more, ok bool) {
	i = skipSpace(src, i)
	switch {
	case i >= len(src):
		return 0, false, false
	case src[i] == ',':
		return skipSpace(src, i+1), true, true
	case src[i] == close:
		return i, false, true
	}
	return 0, false, false
}

// validJSON reports whether b is one JSON value, with white space around.
func validJSON(b []byte) bool {
	end, ok := skipValue(b, skipSpace(b, 0), 1)
	return ok && skipSpace(b, end) == len(b)
}

// eachMember calls fn with the name and raw value of each member of the
// JSON object b and reports whether b is one valid object (white space
// around allowed). A name given twice is reported twice.
func eachMember(b []byte, fn func(name, value []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end, ok := eachMemberAt(b, i, 1, fn)
	return ok && skipSpace(b, end) == len(b)
}
