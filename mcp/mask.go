package mcp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/custos-dev/custos"
)

// Masker replaces secret values, and their encoded forms, in command output.
type Masker struct {
	forms []maskForm // longest first
	r     *strings.Replacer
}

type maskForm struct{ text, repl string }

// minShiftedForm is the shortest base64 fragment of a value embedded at an
// unaligned offset that is still masked: shorter ones match too much.
const minShiftedForm = 8

// NewMasker returns a Masker for values: each value (even one shorter than 4
// bytes), its standard and URL base64 (padded and raw, and the part of it
// that shows when the value is encoded inside a longer string, at any
// alignment), its lower- and upper-case hex, and its URL query and path
// escapes become "[masked:NAME]".
func NewMasker(values []*custos.SecretValue) *Masker {
	seen := map[string]bool{}
	m := &Masker{}
	addForm := func(text, repl string) {
		if text != "" && !seen[text] {
			seen[text] = true
			m.forms = append(m.forms, maskForm{text, repl})
		}
	}
	for _, v := range values {
		if v == nil || v.Value == "" {
			continue
		}
		repl := "[masked:" + v.Name + "]"
		for _, f := range valueForms(v.Value) {
			addForm(f, repl)
		}
	}
	sort.SliceStable(m.forms, func(i, j int) bool { return len(m.forms[i].text) > len(m.forms[j].text) })
	pairs := make([]string, 0, 2*len(m.forms))
	for _, f := range m.forms {
		pairs = append(pairs, f.text, f.repl)
	}
	m.r = strings.NewReplacer(pairs...)
	return m
}

// valueForms lists the forms of v that are masked.
func valueForms(v string) []string {
	b := []byte(v)
	forms := []string{
		v,
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
	}
	forms = append(forms, escapeForms(v)...)
	// v inside a longer encoded string: at each of the three alignments,
	// the characters made only of v's bits.
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for shift := 0; shift < 3; shift++ {
			s := enc.EncodeToString(append(make([]byte, shift), b...))
			start := (shift*8 + 5) / 6 // first character without pad bits
			end := (shift + len(b)) * 8 / 6
			if end-start >= minShiftedForm {
				forms = append(forms, s[start:end])
			}
		}
	}
	return forms
}

// Mask returns s with every form replaced, and how many were.
func (m *Masker) Mask(s string) (string, int) {
	if len(m.forms) == 0 {
		return s, 0
	}
	out := m.r.Replace(s)
	if out == s {
		return s, 0
	}
	n := 0
	counted := map[string]bool{}
	for _, f := range m.forms {
		if !counted[f.repl] {
			counted[f.repl] = true
			n += strings.Count(out, f.repl) - strings.Count(s, f.repl)
		}
	}
	return out, n
}

// MaskOutput masks raw command output for a tool result: at most
// CaptureLimit bytes of it are considered (a value cut at that limit is
// dropped, not shown in part), every form is masked, and the result is cut
// to MaxOutputBytes on a UTF-8 boundary. It returns the text, whether
// anything was cut, and how many values were masked.
func (m *Masker) MaskOutput(raw []byte) (string, bool, int) {
	truncated := false
	if len(raw) > CaptureLimit {
		raw = raw[:CaptureLimit]
		truncated = true
		raw = m.dropPartialSuffix(raw)
	}
	out, n := m.Mask(string(raw))
	if len(out) > MaxOutputBytes {
		cut := MaxOutputBytes
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
		truncated = true
	}
	if truncated {
		out += "\n[custos: output truncated]"
	}
	return out, truncated, n
}

// dropPartialSuffix removes a trailing beginning of any form from raw, so a
// value cut by the capture limit does not show in part.
func (m *Masker) dropPartialSuffix(raw []byte) []byte {
	cut := len(raw)
	for _, f := range m.forms {
		for k := min(len(f.text)-1, len(raw)); k > 0; k-- {
			if bytes.HasSuffix(raw, []byte(f.text[:k])) {
				cut = min(cut, len(raw)-k)
				break
			}
		}
	}
	return raw[:cut]
}
