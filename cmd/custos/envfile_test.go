package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []EnvLine
	}{
		{"Empty", "", []EnvLine{}},
		{"BlankAndComments", "\n  \n# c\n\t# indented\n", []EnvLine{}},
		{"Unquoted", "A=b\nB = c d \nC=", []EnvLine{{1, "A", "b"}, {2, "B", "c d"}, {3, "C", ""}}},
		{"InlineComment", "A=b # note\nB=b#not-a-comment\nC=#hash", []EnvLine{{1, "A", "b"}, {2, "B", "b#not-a-comment"}, {3, "C", "#hash"}}},
		{"Export", "export A=1\nexport\tB=2\nexport=3\nexported=4", []EnvLine{{1, "A", "1"}, {2, "B", "2"}, {3, "export", "3"}, {4, "exported", "4"}}},
		{"DoubleQuoted", `A="a b"` + "\n" + `B="x\ny\"z\\w"` + "\n" + `C="\$HOME \` + "`" + `\q\t\r"`,
			[]EnvLine{{1, "A", "a b"}, {2, "B", "x\ny\"z\\w"}, {3, "C", "$HOME `\\q\t\r"}}},
		{"SingleQuoted", `A='a "b" \n $x'` + "\nB=''", []EnvLine{{1, "A", `a "b" \n $x`}, {2, "B", ""}}},
		{"QuotedThenComment", `A="v" # c` + "\n" + `B='v'   `, []EnvLine{{1, "A", "v"}, {2, "B", "v"}}},
		{"CRLF", "A=1\r\nB=\"2\"\r\n\r\n", []EnvLine{{1, "A", "1"}, {2, "B", "2"}}},
		{"BOM", "\ufeffA=1", []EnvLine{{1, "A", "1"}}},
		{"EqualsInValue", "URL=postgres://u:p@h/db?x=1", []EnvLine{{1, "URL", "postgres://u:p@h/db?x=1"}}},
		{"Duplicate", "A=1\nA=2", []EnvLine{{1, "A", "1"}, {2, "A", "2"}}},
		{"LineNumbers", "# 1\n\nA=3\n# 4\nB=5", []EnvLine{{3, "A", "3"}, {5, "B", "5"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure each syntax parses as documented.
			got, err := ParseEnv(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseEnvErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"NoEquals", "A=1\nJUSTNAME", 2, "expected KEY=value"},
		{"ExportOnly", "export A", 1, "expected KEY=value"},
		{"BadKey", "1A=x", 1, "invalid variable name"},
		{"KeyWithDash", "\n\nA-B=x", 3, "invalid variable name"},
		{"EmptyKey", "=x", 1, "invalid variable name"},
		{"UnterminatedDouble", `A="abc`, 1, "unterminated double-quoted"},
		{"UnterminatedEscape", `A="abc\`, 1, "unterminated double-quoted"},
		{"EscapedQuoteOnly", `A="abc\"`, 1, "unterminated double-quoted"},
		{"UnterminatedSingle", "A=1\nB='abc", 2, "unterminated single-quoted"},
		{"TrailingText", `A="a" b`, 1, "after the closing quote"},
		{"TrailingTextSingle", `A='a'b`, 1, "after the closing quote"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure syntax errors name the line.
			_, err := ParseEnv(strings.NewReader(tt.in))
			var ee *EnvError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v, want *EnvError", err)
			}
			if ee.Line != tt.line || !strings.Contains(ee.Msg, tt.msg) || !strings.HasPrefix(err.Error(), "line "+itoa(tt.line)+": ") {
				t.Fatalf("got %q, want line %d: %q", err, tt.line, tt.msg)
			}
		})
	}
	t.Run("Limits", func(t *testing.T) {
		// Ensure inputs over 1 MiB or 10,000 lines are refused.
		if _, err := ParseEnv(strings.NewReader(strings.Repeat("#", MaxEnvBytes+1))); err == nil || !strings.Contains(err.Error(), "1 MiB") {
			t.Fatalf("large: %v", err)
		}
		if _, err := ParseEnv(strings.NewReader(strings.Repeat("\n", MaxEnvLines+1))); err == nil || !strings.Contains(err.Error(), "lines") {
			t.Fatalf("many lines: %v", err)
		}
		if _, err := ParseEnv(strings.NewReader(strings.Repeat("A=1\n", MaxEnvLines))); err != nil {
			t.Fatalf("exactly %d lines: %v", MaxEnvLines, err)
		}
	})
}

func TestQuoteEnvValue(t *testing.T) {
	// Ensure values quote as documented and round-trip.
	for in, want := range map[string]string{
		"":                   `""`,
		"plain-Value_1.2":    "plain-Value_1.2",
		"postgres://u@h:5/d": "postgres://u@h:5/d",
		"a b":                "'a b'",
		"$(rm -rf ~)":        "'$(rm -rf ~)'",
		"it's":               `"it's"`,
		"it's $HOME `x`":     `"it's \$HOME \` + "`x\\`" + `"`,
		"two\nlines":         `"two\nlines"`,
		`back\slash'`:        `"back\\slash'"`,
		"#x":                 "'#x'",
		"~/x":                "'~/x'",
	} {
		if got := QuoteEnvValue(in); got != want {
			t.Errorf("QuoteEnvValue(%q) = %s, want %s", in, got, want)
		}
		roundTrip(t, in)
	}
}

// roundTrip checks that ParseEnv reads back v from FormatEnv's output.
func roundTrip(t testing.TB, v string) {
	t.Helper()
	var b strings.Builder
	if err := FormatEnv(&b, []EnvLine{{Key: "K", Value: v}}); err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnv(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("value %q encoded as %q: %v", v, b.String(), err)
	}
	if len(got) != 1 || got[0].Key != "K" || got[0].Value != v {
		t.Fatalf("value %q encoded as %q parsed as %+v", v, b.String(), got)
	}
}

func TestFormatEnvBadKey(t *testing.T) {
	// Ensure FormatEnv refuses a key ParseEnv could not read.
	if err := FormatEnv(&strings.Builder{}, []EnvLine{{Key: "A-B", Value: "x"}}); err == nil {
		t.Fatal("accepted")
	}
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{
		"", "A=1\n", "export A='x y' # c\n", `A="a\nb\"c\\"`, "A=\"\n", "# c\r\nB = v w #x\r\n",
		"\ufeffA=1", "A='", `A="\$\` + "`\\q\"", "1=2", "A=b=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		// Ensure ParseEnv never panics, and what it reads re-encodes to a file
		// that reads back the same.
		lines, err := ParseEnv(strings.NewReader(in))
		if err != nil {
			var ee *EnvError
			if errors.As(err, &ee) && (ee.Line < 1 || ee.Line > strings.Count(in, "\n")+1) {
				t.Fatalf("error on line %d of a %d-line input", ee.Line, strings.Count(in, "\n")+1)
			}
			return
		}
		var b strings.Builder
		if err := FormatEnv(&b, lines); err != nil {
			t.Fatalf("parsed key does not format: %v", err)
		}
		again, err := ParseEnv(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", b.String(), err)
		}
		if len(again) != len(lines) {
			t.Fatalf("%d lines, then %d", len(lines), len(again))
		}
		for i := range lines {
			if again[i].Key != lines[i].Key || again[i].Value != lines[i].Value {
				t.Fatalf("line %d: %q=%q, then %q=%q", i, lines[i].Key, lines[i].Value, again[i].Key, again[i].Value)
			}
		}
	})
}

func FuzzQuoteEnvValue(f *testing.F) {
	for _, s := range []string{"", "x", "a b", "it's", "\n", "\r", "\r\n", "\\", `"`, "$`", "\x00", "\xff\xfe", "\ufeff", " lead", "trail ", "#", "a # b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		// Ensure every value round-trips through FormatEnv and ParseEnv.
		roundTrip(t, v)
	})
}
