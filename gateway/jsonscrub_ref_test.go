package gateway

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// scrubBodyRef is the first implementation of scrubBody, on jsontext's
// tokenizer: the differential tests hold the hand-written pass to it.
// It validates raw as exactly one JSON object (no duplicate names,
// valid UTF-8, nothing after it) and returns it re-encoded with every text
// string redacted by sc — the same strings redactValue redacts — in one
// streaming pass, without building a tree. With addStreamOptions, a
// streaming request without stream_options gets
// {"include_usage":true}, so the provider reports usage at the end.
func scrubBodyRef(raw []byte, sc *scrubber, addStreamOptions bool) ([]byte, top, error) {
	var t top
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	var out bytes.Buffer
	out.Grow(len(raw) + len(raw)/8)
	enc := jsontext.NewEncoder(&out)

	type frame struct {
		obj      bool   // an object (else an array)
		wantName bool   // in an object, the next token is a name
		key      string // in an object, the name of the current value
	}
	stack := make([]frame, 0, 16)
	skipDepth := -1 // inside a value under a skipped key, from this depth on
	if k := dec.PeekKind(); k != '{' {
		return nil, t, errNotObject
	}
	for {
		// A string value is read raw: most need no unquoting, and most come
		// back unchanged, so they are copied as they came.
		if n := len(stack); n > 0 && dec.PeekKind() == '"' && !(stack[n-1].obj && stack[n-1].wantName) {
			f := &stack[n-1]
			key := ""
			if f.obj {
				key, f.wantName = f.key, true
			}
			raw, err := dec.ReadValue()
			if err != nil {
				return nil, t, errNotObject
			}
			if err := scrubStringRef(enc, raw, key, n == 1, &t, sc, skipDepth >= 0 || (f.obj && skipKeys[key])); err != nil {
				return nil, t, err
			}
			continue
		}
		tok, err := dec.ReadToken()
		if err == io.EOF {
			break
		}
		if errors.Is(err, jsontext.ErrDuplicateName) {
			return nil, t, errDuplicateName
		}
		if err != nil {
			return nil, t, errNotObject
		}
		kind := tok.Kind()
		var f *frame
		if n := len(stack); n > 0 {
			f = &stack[n-1]
		}
		// A name of an object.
		if f != nil && f.obj && f.wantName && kind == '"' {
			f.key, f.wantName = tok.String(), false
			if err := enc.WriteToken(tok); err != nil {
				return nil, t, err
			}
			continue
		}
		// The end of the top-level object: add stream_options if asked.
		if kind == '}' && len(stack) == 1 && addStreamOptions && t.stream && !t.streamOptions {
			if err := enc.WriteToken(jsontext.String("stream_options")); err != nil {
				return nil, t, err
			}
			if err := enc.WriteValue(jsontext.Value(`{"include_usage":true}`)); err != nil {
				return nil, t, err
			}
		}
		switch kind {
		case '{', '[':
			if f != nil && skipDepth < 0 && f.obj && skipKeys[f.key] {
				skipDepth = len(stack) + 1
			}
			if len(stack) == 1 && f.key == "stream_options" {
				t.streamOptions = true
			}
			stack = append(stack, frame{obj: kind == '{', wantName: kind == '{'})
			if err := enc.WriteToken(tok); err != nil {
				return nil, t, err
			}
			continue
		case '}', ']':
			if skipDepth == len(stack) {
				skipDepth = -1
			}
			stack = stack[:len(stack)-1]
			if err := enc.WriteToken(tok); err != nil {
				return nil, t, err
			}
			if len(stack) == 0 { // the object is complete: nothing may follow
				if _, err := dec.ReadToken(); err != io.EOF {
					return nil, t, errNotObject
				}
				b := out.Bytes()
				// The encoder ends each top-level value with a newline.
				return bytes.TrimSuffix(b, []byte("\n")), t, nil
			}
			if n := len(stack); n > 0 && stack[n-1].obj {
				stack[n-1].wantName = true
			}
			continue
		}
		// A scalar value.
		key := ""
		if f.obj {
			key = f.key
			f.wantName = true
		}
		if len(stack) == 1 {
			switch key {
			case "model":
				if kind == '"' {
					t.model = tok.String()
				}
			case "stream":
				t.stream = kind == 't'
			case "stream_options":
				t.streamOptions = true
			case "max_completion_tokens", "max_tokens", "max_output_tokens":
				if kind == '0' && t.maxTokens == 0 {
					if n, err := strconv.ParseInt(tok.String(), 10, 64); err == nil && n > 0 {
						t.maxTokens = n
					}
				}
			}
		}
		if kind != '"' || sc == nil || skipDepth >= 0 || (f.obj && skipKeys[key]) || (len(stack) == 1 && key == "stream") {
			if err := enc.WriteToken(tok); err != nil {
				return nil, t, err
			}
			continue
		}
		s := tok.String()
		switch {
		case key == "url" && strings.HasPrefix(s, "data:"):
		case key == "arguments":
			s = sc.redactJSONString(s)
		default:
			s = sc.redactString(s)
		}
		if err := enc.WriteToken(jsontext.String(s)); err != nil {
			return nil, t, err
		}
	}
	return nil, t, errNotObject
}

// scrubString writes the raw JSON string value raw (under key; top: in the
// top-level object) to enc, redacted unless skip, and reads the routing
// fields from it.
func scrubStringRef(enc *jsontext.Encoder, raw jsontext.Value, key string, top bool, t *top, sc *scrubber, skip bool) error {
	content := []byte(raw[1 : len(raw)-1])
	escaped := bytes.IndexByte(content, '\\') >= 0
	if escaped {
		var err error
		if content, err = jsontext.AppendUnquote(nil, raw); err != nil {
			return errNotObject
		}
	}
	if top && key == "model" {
		t.model = string(content)
	}
	if sc == nil || skip || (top && key == "stream") || (key == "url" && bytes.HasPrefix(content, []byte("data:"))) {
		return enc.WriteValue(raw)
	}
	var out string
	var changed bool
	if key == "arguments" {
		in := string(content)
		out = sc.redactJSONString(in)
		changed = out != in
	} else {
		b := sc.redactBytes(content)
		out, changed = string(b), b != nil
	}
	if !changed {
		return enc.WriteValue(raw)
	}
	return enc.WriteToken(jsontext.String(out))
}
