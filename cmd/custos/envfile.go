package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits of an env file.
const (
	MaxEnvBytes = 1 << 20 // 1 MiB
	MaxEnvLines = 10000
)

// EnvLine is one KEY=value assignment of an env file.
type EnvLine struct {
	Line  int    // 1-based line number in the file
	Key   string // a variable name: letters, digits and _, not starting with a digit
	Value string // unquoted and unescaped
}

// EnvError is a syntax error in an env file, naming the line.
type EnvError struct {
	Line int
	Msg  string
}

// Error implements the error interface.
func (e *EnvError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ParseEnv parses a dotenv file: KEY=value lines, blank lines and # comment
// lines, an optional "export " prefix, and values that are unquoted (an
// inline comment starts at whitespace followed by #; surrounding whitespace
// is trimmed), 'single-quoted' (literal), or "double-quoted" (with the
// escapes \n \r \t \" \\ \$ and \`; any other backslash is kept). A quoted value
// may be followed only by whitespace and a comment. Lines may end in \r\n.
// Input over MaxEnvBytes or MaxEnvLines is an error; syntax errors are *EnvError
// naming the line.
func ParseEnv(r io.Reader) ([]EnvLine, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxEnvBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEnvBytes {
		return nil, errors.New("env file is larger than 1 MiB")
	}
	text := strings.TrimPrefix(string(b), "\ufeff")
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return []EnvLine{}, nil
	}
	if n := strings.Count(text, "\n") + 1; n > MaxEnvLines {
		return nil, fmt.Errorf("env file has more than %d lines", MaxEnvLines)
	}
	out := []EnvLine{}
	for i, line := range strings.Split(text, "\n") {
		l, ok, msg := parseEnvLine(strings.TrimSuffix(line, "\r"))
		if msg != "" {
			return nil, &EnvError{Line: i + 1, Msg: msg}
		}
		if ok {
			l.Line = i + 1
			out = append(out, l)
		}
	}
	return out, nil
}

// parseEnvLine parses one line: ok is false for blank and comment lines,
// msg is set on a syntax error.
func parseEnvLine(line string) (l EnvLine, ok bool, msg string) {
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return l, false, ""
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimLeft(rest, " \t")
	}
	key, value, found := strings.Cut(s, "=")
	if !found {
		return l, false, "expected KEY=value"
	}
	key = strings.TrimRight(key, " \t")
	if !validEnvKey(key) {
		return l, false, fmt.Sprintf("invalid variable name %q: use letters, digits and _, not starting with a digit", clip(key, 40))
	}
	v, msg := parseEnvValue(strings.TrimLeft(value, " \t"))
	if msg != "" {
		return l, false, msg
	}
	return EnvLine{Key: key, Value: v}, true, ""
}

// parseEnvValue parses what follows KEY= (leading whitespace trimmed).
func parseEnvValue(v string) (string, string) {
	switch {
	case v == "":
		return "", ""
	case v[0] == '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch ch := v[i]; ch {
			case '\\':
				if i+1 == len(v) {
					return "", "unterminated double-quoted value"
				}
				i++
				switch e := v[i]; e {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\', '$', '`':
					b.WriteByte(e)
				default:
					b.WriteByte('\\')
					b.WriteByte(e)
				}
			case '"':
				return b.String(), checkAfterQuote(v[i+1:])
			default:
				b.WriteByte(ch)
			}
		}
		return "", "unterminated double-quoted value"
	case v[0] == '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", "unterminated single-quoted value"
		}
		return v[1 : 1+end], checkAfterQuote(v[2+end:])
	}
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			v = v[:i]
			break
		}
	}
	return strings.TrimRight(v, " \t"), ""
}

// checkAfterQuote allows only whitespace and a comment after a closing quote.
func checkAfterQuote(rest string) string {
	rest = strings.TrimLeft(rest, " \t")
	if rest != "" && rest[0] != '#' {
		return "unexpected text after the closing quote"
	}
	return ""
}

// validEnvKey reports whether k is a variable name of at most 256 bytes.
func validEnvKey(k string) bool {
	if k == "" || len(k) > 256 || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// QuoteEnvValue returns v as it should follow KEY= so that ParseEnv reads
// back exactly v: unquoted when v is made of safe characters only, else
// 'single-quoted' when v has no ' and no newline, else double-quoted with
// \\, \", \$, \` and newlines escaped. The result also means v to a POSIX
// shell that sources the file (except a newline, which it reads as \n):
// nothing in it is expanded or run.
func QuoteEnvValue(v string) string {
	plain := v != ""
	for i := 0; i < len(v) && plain; i++ {
		ch := v[i]
		plain = ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			strings.IndexByte("_./:@+,=%-", ch) >= 0
	}
	switch {
	case plain:
		return v
	case v == "":
		return `""`
	}
	if !strings.ContainsAny(v, "'\n") {
		return "'" + v + "'"
	}
	var b strings.Builder
	b.Grow(len(v) + 8)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; ch {
		case '\\', '"', '$', '`':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// FormatEnv writes lines as KEY=value lines that ParseEnv reads back to the
// same keys and values. Keys must be valid variable names.
func FormatEnv(w io.Writer, lines []EnvLine) error {
	var b strings.Builder
	for _, l := range lines {
		if !validEnvKey(l.Key) {
			return fmt.Errorf("invalid variable name %q", clip(l.Key, 40))
		}
		b.WriteString(l.Key)
		b.WriteByte('=')
		b.WriteString(QuoteEnvValue(l.Value))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
