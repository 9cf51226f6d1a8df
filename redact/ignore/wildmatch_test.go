package ignore

import (
	"strings"
	"testing"
)

// Ensure wildmatch agrees with cases from git's t/t3070-wildmatch.sh
// (the "pathmatch" column: WM_PATHNAME).
func TestWildmatch(t *testing.T) {
	tests := []struct {
		pattern, text string
		want          bool
	}{
		{"foo", "foo", true},
		{"bar", "foo", false},
		{"", "", true},
		{"???", "foo", true},
		{"??", "foo", false},
		{"*", "foo", true},
		{"f*", "foo", true},
		{"*f", "foo", false},
		{"*foo*", "foo", true},
		{"*ob*a*r*", "foobar", true},
		{"*ab", "aaaaaaabababab", true},
		{`foo\*`, "foo*", true},
		{`foo\*bar`, "foobar", false},
		{`f\\oo`, `f\oo`, true},
		{"*[al]?", "ball", true},
		{"[ten]", "ten", false},
		{"**[!te]", "ten", true},
		{"**[!ten]", "ten", false},
		{"t[a-g]n", "ten", true},
		{"t[!a-g]n", "ten", false},
		{"t[!a-g]n", "ton", true},
		{"t[^a-g]n", "ton", true},
		{"a[]]b", "a]b", true},
		{"a[]-]b", "a-b", true},
		{"a[]-]b", "a]b", true},
		{"a[]-]b", "aab", false},
		{"a[]a-]b", "aab", true},
		{"]", "]", true},
		{"foo*bar", "foo/baz/bar", false},
		{"foo**bar", "foo/baz/bar", false},
		{"foo**bar", "foobazbar", true},
		{"foo/**/bar", "foo/baz/bar", true},
		{"foo/**/**/bar", "foo/baz/bar", true},
		{"foo/**/bar", "foo/b/a/z/bar", true},
		{"foo/**/**/bar", "foo/b/a/z/bar", true},
		{"foo/**/bar", "foo/bar", true},
		{"foo/**/**/bar", "foo/bar", true},
		{"foo?bar", "foo/bar", false},
		{"foo[/]bar", "foo/bar", false},
		{"foo[^a-z]bar", "foo/bar", false},
		{"f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo/bar", false},
		{"f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo-bar", true},
		{"**/foo", "foo", true},
		{"**/foo", "XXX/foo", true},
		{"**/foo", "bar/baz/foo", true},
		{"*/foo", "bar/baz/foo", false},
		{"**/bar*", "foo/bar/baz", false},
		{"**/bar/*", "deep/foo/bar/baz", true},
		{"**/bar/*", "deep/foo/bar/baz/", false},
		{"**/bar/**", "deep/foo/bar/baz/", true},
		{"**/bar/*", "deep/foo/bar", false},
		{"**/bar/**", "deep/foo/bar/", true},
		{"**/bar**", "foo/bar/baz", false},
		{"*/bar/**", "foo/bar/baz/x", true},
		{"*/bar/**", "deep/foo/bar/baz/x", false},
		{"**/bar/*/*", "deep/foo/bar/baz/x", true},
		{"a[c-c]st", "acrt", false},
		{"a[c-c]rt", "acrt", true},
		{"[!]-]", "]", false},
		{"[!]-]", "a", true},
		{`\`, "", false},
		{`\`, `\`, false},
		{`*/\`, `XXX/\`, false},
		{`*/\\`, `XXX/\`, true},
		{"foo", "foo", true},
		{"@foo", "@foo", true},
		{"@foo", "foo", false},
		{`\[ab]`, "[ab]", true},
		{"[[]ab]", "[ab]", true},
		{"[[:]ab]", "[ab]", true},
		{"[[::]ab]", "[ab]", false},
		{"[[:digit]ab]", "[ab]", true},
		{`[\[:]ab]`, "[ab]", true},
		{`\??\?b`, "?a?b", true},
		{`\a\b\c`, "abc", true},
		{"", "foo", false},
		{"**/t[o]", "foo/bar/baz/to", true},
		{"[[:alpha:]][[:digit:]][[:upper:]]", "a1B", true},
		{"[[:digit:][:upper:][:space:]]", "a", false},
		{"[[:digit:][:upper:][:space:]]", "A", true},
		{"[[:digit:][:upper:][:space:]]", "1", true},
		{"[[:digit:][:upper:][:spaci:]]", "1", false},
		{"[[:digit:][:upper:][:space:]]", " ", true},
		{"[[:digit:][:upper:][:space:]]", ".", false},
		{"[[:digit:][:punct:][:space:]]", ".", true},
		{"[[:xdigit:]]", "5", true},
		{"[[:xdigit:]]", "f", true},
		{"[[:xdigit:]]", "D", true},
		{"[a-c[:digit:]x-z]", "5", true},
		{"[a-c[:digit:]x-z]", "b", true},
		{"[a-c[:digit:]x-z]", "y", true},
		{"[a-c[:digit:]x-z]", "q", false},
		{`[\\-^]`, "]", true},
		{`[\\-^]`, "[", false},
		{"[\\-_]", "-", true},
		{"[\\]]", "]", true},
		{"[\\]]", "\\]", false},
		{"[\\]]", "\\", false},
		{"a[]b", "ab", false},
		{"a[]b", "a[]b", false},
		{"ab[", "ab[", false},
		{"[!", "ab", false},
		{"[-", "ab", false},
		{"[-]", "-", true},
		{"[a-", "-", false},
		{"[!a-", "-", false},
		{"[--A]", "-", true},
		{"[--A]", "5", true},
		{"[ --]", " ", true},
		{"[ --]", "$", true},
		{"[ --]", "-", true},
		{"[ --]", "0", false},
		{"[---]", "-", true},
		{"[------]", "-", true},
		{"[a-e-n]", "j", false},
		{"[a-e-n]", "-", true},
		{"[!------]", "a", true},
		{"[]-a]", "[", false},
		{"[]-a]", "^", true},
		{"[!]-a]", "^", false},
		{"[!]-a]", "[", true},
		{"[a^bc]", "^", true},
		{"[a-]b]", "-b]", true},
		{`[\]`, `\`, false},
		{`[\\]`, `\`, true},
		{`[!\\]`, `\`, false},
		{"[A-\\\\]", "G", true},
		{"b*a", "aaabbb", false},
		{"*ba*", "aabcaa", false},
		{"[,]", ",", true},
		{"[\\\\,]", ",", true},
		{"[\\\\,]", "\\", true},
		{"[,-.]", "-", true},
		{"[,-.]", "+", false},
		{"[,-.]", "-.]", false},
		{"[\\1-\\3]", "2", true},
		{"[\\1-\\3]", "3", true},
		{"[\\1-\\3]", "4", false},
		{"[[-\\]]", "\\", true},
		{"[[-\\]]", "[", true},
		{"[[-\\]]", "]", true},
		{"[[-\\]]", "-", false},
		{"-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1", true},
		{"-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1", false},
		{"-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1", false},
		{"XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*", "XXX/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1", true},
		{"XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*", "XXX/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1", false},
		{"**/*a*b*g*n*t", "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt", true},
		{"**/*a*b*g*n*t", "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz", false},
		{"*/*/*", "foo", false},
		{"*/*/*", "foo/bar", false},
		{"*/*/*", "foo/bba/arr", true},
		{"*/*/*", "foo/bb/aa/rr", false},
		{"**/**/**", "foo/bb/aa/rr", true},
		{"*X*i", "abcXdefXghi", true},
		{"*X*i", "ab/cXd/efXg/hi", false},
		{"*/*X*/*/*i", "ab/cXd/efXg/hi", true},
		{"**/*X*/**/*i", "ab/cXd/efXg/hi", true},
	}
	for _, tt := range tests {
		if got := wildmatch(tt.pattern, tt.text); got != tt.want {
			t.Errorf("wildmatch(%q, %q) = %v, want %v", tt.pattern, tt.text, got, tt.want)
		}
	}
}

// Ensure parse handles comments, escapes, trailing spaces, CRLF and a BOM.
func TestParse(t *testing.T) {
	data := "\xef\xbb\xbf# comment\n\\#hash\n\n  \nfoo   \nbar\\ \r\n!keep\n\\!bang\n/anchored/\n!\n/\nlast"
	rules := parse([]byte(data), "sub", "sub/.gitignore")
	var got []string
	for _, r := range rules {
		s := r.source + " " + r.pattern
		if r.negate {
			s += " neg"
		}
		if r.dirOnly {
			s += " dir"
		}
		if r.basename {
			s += " base"
		}
		got = append(got, s)
	}
	want := []string{
		`sub/.gitignore:2 \#hash base`,
		`sub/.gitignore:5 foo base`,
		`sub/.gitignore:6 bar\  base`,
		`sub/.gitignore:7 keep neg base`,
		`sub/.gitignore:8 \!bang base`,
		`sub/.gitignore:9 anchored dir`,
		`sub/.gitignore:12 last base`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzIgnore ensures no pattern file and path make the matcher panic, and
// that a pattern always matches its own literal text when it has no
// special characters.
func FuzzIgnore(f *testing.F) {
	f.Add("*.log\n!keep.log\nbuild/\n/a/**/b", "a/x/b", true)
	f.Add("[", "[", false)
	f.Add("[[:", "a", false)
	f.Add("\\", "\\", false)
	f.Add("**/**/*[!a-", "x/y/z", false)
	f.Add("a/**", "a/b/c", false)
	f.Fuzz(func(t *testing.T, patterns, p string, isDir bool) {
		m := New(t.TempDir())
		m.lists[""] = parse([]byte(patterns), "", ".gitignore")
		m.lists["a"] = parse([]byte(patterns), "a", "a/.custosignore")
		m.Ignored(p, isDir)
		m.Ignored("a/"+p, isDir)
		_ = wildmatch(patterns, p)
		if !strings.ContainsAny(p, "*?[\\") && p != "" {
			if !wildmatch(p, p) {
				t.Fatalf("literal %q does not match itself", p)
			}
		}
	})
}
