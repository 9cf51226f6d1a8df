package gateway

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/custos-dev/custos/redact"
)

// scrubber redacts one request and restores its response. A nil scrubber
// (no engine) changes nothing.
type scrubber struct {
	eng   *redact.Engine
	cache *findCache // nil: no cache
	keyID string
	sess  *redact.Session
	raw   map[string]string // placeholder → value
	esc   map[string]string // placeholder → value escaped for a JSON string
	n     int               // findings
	// known are the labels (secret names) of the stored values found.
	known map[string]bool
}

func newScrubber(e *redact.Engine) *scrubber {
	if e == nil {
		return nil
	}
	return &scrubber{eng: e, sess: e.NewSession(), raw: map[string]string{}, esc: map[string]string{}}
}

// withCache makes s look up the findings of long strings in c, for API key
// keyID.
func (s *scrubber) withCache(c *findCache, keyID string) *scrubber {
	if s != nil {
		s.cache, s.keyID = c, keyID
	}
	return s
}

// skipKeys are structural fields never redacted: changing them would break
// the request (ids, names, enums, signatures, binary data).
var skipKeys = map[string]bool{
	"model": true, "role": true, "type": true, "id": true, "name": true,
	"tool_call_id": true, "tool_use_id": true, "signature": true, "data": true,
	"media_type": true, "encrypted_content": true, "file_id": true,
	"file_data": true, "stop_reason": true, "finish_reason": true,
	"object": true, "tool_choice": true, "format": true, "detail": true,
	"thinking": true, // a thinking block's text is signed by the provider
	// The Responses API's references to calls, items and responses.
	"call_id": true, "item_id": true, "previous_response_id": true,
}

// redactValue redacts every text string in v (a decoded JSON value) and
// returns the new value.
func (s *scrubber) redactValue(v any) any {
	if s == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		if t, _ := x["type"].(string); t == "thinking" || t == "redacted_thinking" {
			return x // signed by the provider: must come back unchanged
		}
		for k, e := range x {
			if skipKeys[k] {
				continue
			}
			if str, ok := e.(string); ok {
				switch {
				case k == "url" && strings.HasPrefix(str, "data:"):
					continue
				case k == "arguments":
					x[k] = s.redactJSONString(str)
					continue
				}
			}
			x[k] = s.redactValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = s.redactValue(e)
		}
		return x
	case string:
		return s.redactString(x)
	}
	return v
}

func (s *scrubber) redactString(str string) string {
	if out := s.redactBytes([]byte(str)); out != nil {
		return string(out)
	}
	return str
}

// redactBytes returns src redacted, or nil when nothing was found; it
// allocates nothing then. It keeps no reference to src.
func (s *scrubber) redactBytes(src []byte) []byte {
	if fs := s.findings(src); fs != nil {
		return redact.Apply(src, fs)
	}
	return nil
}

// findings returns the findings of src, in its offsets, with their
// placeholders assigned and recorded for the answer, or nil.
func (s *scrubber) findings(src []byte) []redact.Finding {
	fs := s.cache.find(s.eng, s.keyID, src)
	if len(fs) == 0 {
		if bytes.Contains(src, []byte("[[")) {
			s.sess.Assign(src, nil) // placeholders already in the text are never issued
		}
		return nil
	}
	fs = s.sess.Assign(src, fs)
	for _, f := range fs {
		if f.Label != "" {
			if s.known == nil {
				s.known = map[string]bool{}
			}
			s.known[f.Label] = true
		}
		v := string(src[f.Start:f.End])
		s.raw[f.Placeholder] = v
		s.esc[f.Placeholder] = jsonEscape(v)
	}
	s.n += len(fs)
	return fs
}

// redactJSONString redacts a string that holds JSON (tool call arguments),
// keeping it valid JSON.
func (s *scrubber) redactJSONString(str string) string {
	out := s.redactString(str)
	if out == str || json.Valid([]byte(out)) || !json.Valid([]byte(str)) {
		return out
	}
	var v any
	if decode([]byte(str), &v) != nil {
		return out
	}
	b, err := marshal(s.redactValue(v))
	if err != nil {
		return out
	}
	return string(b)
}

// jsonEscape returns v as encoding/json writes it inside a string's quotes
// (HTML characters as they are). Most values found — tokens, keys,
// addresses — need no escape and are returned as they are.
func jsonEscape(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := marshal(v)
			return string(b[1 : len(b)-1])
		}
	}
	return v
}

// decode decodes the JSON value b into v, keeping numbers as json.Number
// so they are re-encoded exactly.
func decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// marshal encodes v without HTML escaping and without a trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// restoreValue restores placeholders in every string of v except under the
// keys in skip (handled by a stream restorer).
func (s *scrubber) restoreValue(v any, skip map[string]bool) any {
	if s == nil || len(s.raw) == 0 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if skip[k] {
				continue
			}
			if str, ok := e.(string); ok && k == "arguments" {
				x[k] = s.restoreJSONText(str)
				continue
			}
			x[k] = s.restoreValue(e, skip)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = s.restoreValue(e, skip)
		}
		return x
	case string:
		return s.restoreString(x)
	}
	return v
}

func (s *scrubber) restoreString(str string) string {
	if s == nil || len(s.raw) == 0 || !strings.Contains(str, "[[") {
		return str
	}
	return string(s.sess.Restore([]byte(str)))
}

// restoreJSONText restores placeholders inside JSON text (inside its string
// literals), escaping the values.
func (s *scrubber) restoreJSONText(str string) string {
	if s == nil || len(s.raw) == 0 || !strings.Contains(str, "[[") {
		return str
	}
	r := s.newStream(true)
	out := r.write([]byte(str))
	return string(append(out, r.flush()...))
}

var (
	completeRE = regexp.MustCompile(`\[\[[A-Z][A-Z0-9_]*_[0-9]+\]\]`)
	partialRE  = regexp.MustCompile(`^\[(\[([A-Z][A-Z0-9_]*\]?)?)?$`)
)

// streamRestorer restores placeholders in one content stream (a choice's
// text, a tool call's arguments, a content block) delivered in arbitrary
// pieces. It holds back at most redact.MaxPlaceholderLen-1 bytes that could
// begin a placeholder until the next piece or flush.
type streamRestorer struct {
	vals    map[string]string
	json    bool // inside JSON text: values are escaped
	pending []byte
}

func (s *scrubber) newStream(jsonMode bool) *streamRestorer {
	if s == nil {
		return &streamRestorer{json: jsonMode}
	}
	if jsonMode {
		return &streamRestorer{vals: s.esc, json: true}
	}
	return &streamRestorer{vals: s.raw}
}

func (r *streamRestorer) write(p []byte) []byte {
	if len(r.vals) == 0 {
		return p
	}
	buf := append(r.pending, p...)
	r.pending = nil
	cut := len(buf)
	from := max(0, len(buf)-(redact.MaxPlaceholderLen-1))
	for i := from; i < len(buf); i++ {
		if buf[i] == '[' && partialRE.Match(buf[i:]) {
			cut = i
			break
		}
	}
	r.pending = append([]byte(nil), buf[cut:]...)
	return r.replace(buf[:cut])
}

func (r *streamRestorer) replace(b []byte) []byte {
	return completeRE.ReplaceAllFunc(b, func(m []byte) []byte {
		if v, ok := r.vals[string(m)]; ok {
			return []byte(v)
		}
		return m
	})
}

// flush returns what was held back.
func (r *streamRestorer) flush() []byte {
	out := r.replace(r.pending)
	r.pending = nil
	return out
}
