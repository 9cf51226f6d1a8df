package pack_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pack"
)

// MustWriteTree creates files under root; a name ending in "/" is a
// directory.
func MustWriteTree(tb testing.TB, root string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// MustSymlink creates a symlink or skips the test where that is impossible.
func MustSymlink(tb testing.TB, target, link string) {
	tb.Helper()
	if err := os.Symlink(target, link); err != nil {
		tb.Skip("symlinks unsupported:", err)
	}
}

// MustPack runs Pack and fails the test on error.
func MustPack(tb testing.TB, roots []string, opts pack.Options) *pack.Result {
	tb.Helper()
	r, err := pack.Pack(roots, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func paths(r *pack.Result) []string {
	out := []string{}
	for _, f := range r.Files {
		out = append(out, f.Path)
	}
	return out
}

func excluded(r *pack.Result) []string {
	out := []string{}
	for _, e := range r.Excluded {
		out = append(out, e.Path+": "+e.Reason)
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// fakeRedactor replaces each "sk-live-…" word with [[SECRET_n]] and each
// "…@example.com" word with [[EMAIL_n]], and records the paths it saw.
type fakeRedactor struct{ calls []string }

func (f *fakeRedactor) Redact(path string, src []byte) ([]byte, []redact.Finding) {
	f.calls = append(f.calls, path)
	var out []byte
	var findings []redact.Finding
	n := map[redact.Kind]int{}
	for i := 0; i < len(src); {
		j := i
		for j < len(src) && !isSpace(src[j]) {
			j++
		}
		word := string(src[i:j])
		kind := redact.Kind("")
		switch {
		case strings.HasPrefix(word, "sk-live-"):
			kind = redact.KindSecret
		case strings.HasSuffix(word, "@example.com"):
			kind = redact.KindEmail
		}
		if kind != "" {
			n[kind]++
			findings = append(findings, redact.Finding{Kind: kind, RuleID: "fake", Start: i, End: j})
			out = fmt.Appendf(out, "[[%s_%d]]", kind, n[kind])
		} else {
			out = append(out, word...)
		}
		for j < len(src) && isSpace(src[j]) {
			out = append(out, src[j])
			j++
		}
		i = j
	}
	return out, findings
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' }

// Ensure a tree with nested ignore files, negation, binaries, invalid
// UTF-8, symlinks and a .git directory is packed and reported as expected.
func TestPack_Tree(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	MustWriteTree(t, outside, map[string]string{"secret.txt": "outside\n", "dir/x": "x"})
	MustWriteTree(t, root, map[string]string{
		".git/config":         "[core]\n",
		".gitignore":          "*.log\nbuild/\n",
		".custosignore":       ".env\n!keep.log\n",
		".env":                "TOKEN=sk-live-abc\n",
		"a.log":               "log\n",
		"keep.log":            "kept\n",
		"build/out.txt":       "built\n",
		"main.go":             "package main\n",
		"img.png":             "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
		"latin1.txt":          "caf\xe9\n",
		"sub/.gitignore":      "!debug.log\ngen/\n",
		"sub/.custosignore":   "private.txt\n",
		"sub/debug.log":       "debug\n",
		"sub/private.txt":     "private\n",
		"sub/gen/x.go":        "package gen\n",
		"sub/z.go":            "package sub\n",
		"sub/deep/.gitignore": "*\n!*.md\n",
		"sub/deep/a.md":       "# a\n",
		"sub/deep/b.txt":      "b\n",
	})
	MustSymlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(root, "link-out"))
	MustSymlink(t, filepath.Join(outside, "dir"), filepath.Join(root, "link-outdir"))
	MustSymlink(t, "main.go", filepath.Join(root, "link-in"))
	MustSymlink(t, ".env", filepath.Join(root, "link-env"))
	MustSymlink(t, "sub", filepath.Join(root, "link-dir"))
	MustSymlink(t, "missing", filepath.Join(root, "link-broken"))

	t.Chdir(root)
	r := MustPack(t, nil, pack.Options{})
	equal(t, "files", paths(r), []string{
		".custosignore", ".gitignore", "keep.log", "main.go",
		"sub/.custosignore", "sub/.gitignore", "sub/debug.log", "sub/deep/a.md", "sub/z.go",
	})
	equal(t, "excluded", excluded(r), []string{
		".env: ignored (.custosignore:1)",
		"a.log: ignored (.gitignore:1)",
		"build/: ignored (.gitignore:2)",
		"img.png: binary",
		"latin1.txt: binary",
		"link-broken: unreadable",
		"link-dir: symlink to sub/",
		"link-env: ignored (.custosignore:1)",
		"link-in: symlink to main.go",
		"link-out: symlink outside root",
		"link-outdir: symlink outside root",
		"sub/deep/.gitignore: ignored (sub/deep/.gitignore:1)",
		"sub/deep/b.txt: ignored (sub/deep/.gitignore:1)",
		"sub/gen/: ignored (sub/.gitignore:2)",
		"sub/private.txt: ignored (sub/.custosignore:1)",
	})
}

// Ensure a relative root is shown as given, a subdirectory of a git work
// tree honours the ignore files above it, an explicitly named file is
// still subject to them, and overlapping roots pack a file once.
func TestPack_Roots(t *testing.T) {
	repo := t.TempDir()
	MustWriteTree(t, repo, map[string]string{
		".git/HEAD":      "ref: refs/heads/main\n",
		".gitignore":     "*.log\n",
		"src/a.go":       "package src\n",
		"src/debug.log":  "noise\n",
		"src/b/c.go":     "package b\n",
		"other/notes.md": "notes\n",
	})
	t.Chdir(repo)
	r := MustPack(t, []string{"src", "src/b/c.go", "./src/debug.log", "other/"}, pack.Options{})
	equal(t, "files", paths(r), []string{"src/a.go", "src/b/c.go", "other/notes.md"})
	equal(t, "excluded", excluded(r), []string{
		"src/debug.log: ignored (.gitignore:1)",
		"src/debug.log: ignored (.gitignore:1)",
	})

	// Ensure no root means ".", and a missing root is an error.
	t.Chdir(filepath.Join(repo, "other"))
	equal(t, "files", paths(MustPack(t, nil, pack.Options{})), []string{"notes.md"})
	if _, err := pack.Pack([]string{"nope"}, pack.Options{}); err == nil {
		t.Fatal("expected an error for a missing root")
	}
}

// Ensure the token budget admits files up to exactly Budget and stops at
// the first file that would exceed it, even if later ones would fit.
func TestPack_Budget(t *testing.T) {
	root := t.TempDir()
	MustWriteTree(t, root, map[string]string{
		"1.txt": "abcdef",       // 1 token
		"2.txt": "abcdef",       // 1 token
		"3.txt": "abcdef abcde", // 2 tokens
		"4.txt": "abc",          // 1 token
	})
	t.Chdir(root)
	for _, tt := range []struct {
		budget    int
		files     []string
		overLimit []string
	}{
		{1, []string{"1.txt"}, []string{"2.txt", "3.txt", "4.txt"}},
		{2, []string{"1.txt", "2.txt"}, []string{"3.txt", "4.txt"}},
		{3, []string{"1.txt", "2.txt"}, []string{"3.txt", "4.txt"}},
		{4, []string{"1.txt", "2.txt", "3.txt"}, []string{"4.txt"}},
		{5, []string{"1.txt", "2.txt", "3.txt", "4.txt"}, nil},
		{-1, []string{"1.txt", "2.txt", "3.txt", "4.txt"}, nil},
	} {
		r := MustPack(t, nil, pack.Options{Budget: tt.budget})
		equal(t, fmt.Sprintf("budget %d files", tt.budget), paths(r), tt.files)
		want := []string{}
		for _, p := range tt.overLimit {
			want = append(want, p+": "+pack.ReasonOverBudget)
		}
		equal(t, fmt.Sprintf("budget %d excluded", tt.budget), excluded(r), want)
		if tt.budget >= 0 && r.Tokens > tt.budget {
			t.Fatalf("budget %d: %d tokens", tt.budget, r.Tokens)
		}
	}
}

// Ensure MaxBytes admits a file of exactly MaxBytes, excludes a larger one
// as too large without stopping, and stops once the total would exceed it.
func TestPack_MaxBytes(t *testing.T) {
	root := t.TempDir()
	MustWriteTree(t, root, map[string]string{
		"a.txt": "0123456789a", // 11 bytes: too large
		"b.txt": "0123456",     // 7
		"c.txt": "012",         // 3: total exactly 10
		"d.txt": "0",           // total would be 11
		"e.txt": "",            // even an empty file comes after the stop
	})
	t.Chdir(root)
	r := MustPack(t, nil, pack.Options{MaxBytes: 10})
	equal(t, "files", paths(r), []string{"b.txt", "c.txt"})
	equal(t, "excluded", excluded(r), []string{
		"a.txt: too large", "d.txt: over budget", "e.txt: over budget",
	})
	if got, want := r.Bytes, 10; got != want {
		t.Fatalf("Bytes = %d, want %d", got, want)
	}

	// Ensure the default is 1 MB per file.
	MustWriteTree(t, root, map[string]string{"big/x": strings.Repeat("a\n", 1<<19) + "a"})
	r = MustPack(t, []string{"big"}, pack.Options{})
	equal(t, "excluded", excluded(r), []string{"big/x: too large"})
}

// Ensure the redactor sees every packed file, its counts are reported,
// and bytes outside findings are unchanged.
func TestPack_Redactor(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"a.env":       "KEY=x sk-live-123 and\tsk-live-456\nmail bob@example.com\n",
		"b.md":        "no secrets here\n\n  indented  \n",
		"c/d.txt":     "sk-live-9",
		"bin.dat":     "\x00sk-live-0",
		".gitignore":  "ignored.txt\n",
		"ignored.txt": "sk-live-ignored",
	}
	MustWriteTree(t, root, files)
	t.Chdir(root)
	fake := &fakeRedactor{}
	r := MustPack(t, nil, pack.Options{Redactor: fake.Redact})
	equal(t, "redactor calls", fake.calls, paths(r))
	equal(t, "files", paths(r), []string{".gitignore", "a.env", "b.md", "c/d.txt"})
	want := map[string]struct {
		content string
		counts  map[redact.Kind]int
	}{
		".gitignore": {files[".gitignore"], map[redact.Kind]int{}},
		"a.env":      {"KEY=x [[SECRET_1]] and\t[[SECRET_2]]\nmail [[EMAIL_1]]\n", map[redact.Kind]int{redact.KindSecret: 2, redact.KindEmail: 1}},
		"b.md":       {files["b.md"], map[redact.Kind]int{}},
		"c/d.txt":    {"[[SECRET_1]]", map[redact.Kind]int{redact.KindSecret: 1}},
	}
	for _, f := range r.Files {
		w := want[f.Path]
		if f.Content != w.content {
			t.Errorf("%s: content %q, want %q", f.Path, f.Content, w.content)
		}
		if !reflect.DeepEqual(f.Redactions, w.counts) {
			t.Errorf("%s: redactions %v, want %v", f.Path, f.Redactions, w.counts)
		}
		if f.Bytes != len(f.Content) || f.Tokens != pack.EstimateTokens([]byte(f.Content)) {
			t.Errorf("%s: bytes %d tokens %d do not describe the content", f.Path, f.Bytes, f.Tokens)
		}
	}
	var report bytes.Buffer
	if err := pack.WriteReport(&report, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"packed 4 files:",
		"  bin.dat: binary\n",
		"  ignored.txt: ignored (.gitignore:1)\n",
		"  a.env: EMAIL 1, SECRET 2\n",
		"  c/d.txt: SECRET 1\n",
		"redacted 4 values\n",
	} {
		if !strings.Contains(report.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, report.String())
		}
	}
	if strings.Contains(report.String(), "sk-live") {
		t.Errorf("report leaks a secret:\n%s", report.String())
	}
}

// Ensure output is deterministic and has the documented shapes, and that
// Progress counts every candidate.
func TestPack_Output(t *testing.T) {
	root := t.TempDir()
	MustWriteTree(t, root, map[string]string{
		"z.txt":      "last",
		"a/b.txt":    "<b> & \"quoted\"\n",
		"a.txt":      "",
		"m.bin":      "\x00",
		".gitignore": "*.tmp\n",
		"x.tmp":      "tmp\n",
	})
	t.Chdir(root)
	render := func() (string, string, []string) {
		var progress []string
		r := MustPack(t, nil, pack.Options{Progress: func(done, total int) {
			progress = append(progress, fmt.Sprintf("%d/%d", done, total))
		}})
		var text, js bytes.Buffer
		if err := pack.WriteText(&text, r); err != nil {
			t.Fatal(err)
		}
		if err := pack.WriteJSON(&js, r); err != nil {
			t.Fatal(err)
		}
		return text.String(), js.String(), progress
	}
	text, js, progress := render()
	for range 3 {
		if t2, j2, _ := render(); t2 != text || j2 != js {
			t.Fatal("output differs between runs")
		}
	}
	equal(t, "progress", progress, []string{"0/5", "1/5", "2/5", "3/5", "4/5", "5/5"})
	if got, want := text, "=== .gitignore ===\n*.tmp\n\n=== a/b.txt ===\n<b> & \"quoted\"\n\n=== a.txt ===\n\n=== z.txt ===\nlast\n"; got != want {
		t.Fatalf("text:\n%s\nwant:\n%s", got, want)
	}
	wantJSON := `{"files":[` +
		`{"path":".gitignore","bytes":6,"tokens":3,"redactions":{},"content":"*.tmp\n"},` +
		`{"path":"a/b.txt","bytes":15,"tokens":10,"redactions":{},"content":"<b> & \"quoted\"\n"},` +
		`{"path":"a.txt","bytes":0,"tokens":0,"redactions":{},"content":""},` +
		`{"path":"z.txt","bytes":4,"tokens":1,"redactions":{},"content":"last"}],` +
		`"excluded":[{"path":"m.bin","reason":"binary"},{"path":"x.tmp","reason":"ignored (.gitignore:1)"}],` +
		`"tokens":14,"bytes":25}` + "\n"
	if js != wantJSON {
		t.Fatalf("json:\n%s\nwant:\n%s", js, wantJSON)
	}
	var decoded map[string]any
	if err := json.Unmarshal([]byte(js), &decoded); err != nil {
		t.Fatal(err)
	}

	// Ensure an empty result still has lists, not null.
	var empty bytes.Buffer
	if err := pack.WriteJSON(&empty, &pack.Result{}); err != nil {
		t.Fatal(err)
	}
	if got, want := empty.String(), `{"files":[],"excluded":[],"tokens":0,"bytes":0}`+"\n"; got != want {
		t.Fatalf("empty json = %s, want %s", got, want)
	}
}

// Ensure the report names at most 20 over-budget paths and counts the rest.
func TestWriteReport_OverBudgetCap(t *testing.T) {
	r := &pack.Result{}
	for i := range 25 {
		r.Excluded = append(r.Excluded, pack.Excluded{Path: fmt.Sprintf("f%02d", i), Reason: pack.ReasonOverBudget})
	}
	var b bytes.Buffer
	if err := pack.WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "  f19: over budget\n  … and 5 more over budget\n") || strings.Contains(b.String(), "f20") {
		t.Fatalf("report:\n%s", b.String())
	}
}

// Ensure IsBinary follows git's NUL rule within 8000 bytes and rejects
// invalid UTF-8.
func TestIsBinary(t *testing.T) {
	for _, tt := range []struct {
		data string
		want bool
	}{
		{"", false},
		{"hello\n", false},
		{"héllo ✓ 日本", false},
		{"a\x00b", true},
		{strings.Repeat("a", 7999) + "\x00", true},
		{"caf\xe9", true},
		{"\xff\xfeh\x00i\x00", true},
	} {
		if got := pack.IsBinary([]byte(tt.data)); got != tt.want {
			t.Errorf("IsBinary(%.20q) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

// Ensure EstimateTokens gives sensible values for small inputs and stays
// near 4 bytes per token for prose.
func TestEstimateTokens(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abcdef", 1},
		{"abcdefg", 2},
		{"getUserName", 3},
		{"the quick brown fox", 4},
		{"1234567", 3},
		{"        ", 1},
		{"\n\n\n", 2},
		{"();", 2},
		{"日本", 3},
	} {
		if got := pack.EstimateTokens([]byte(tt.in)); got != tt.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	prose := strings.Repeat("The packer walks the tree in sorted order and redacts every file before it is sent to a model. ", 50)
	got := pack.EstimateTokens([]byte(prose))
	if perToken := float64(len(prose)) / float64(got); perToken < 3.5 || perToken > 6 {
		t.Fatalf("prose: %.2f bytes per token", perToken)
	}
}

// Ensure EstimateTokens never decreases as bytes are appended.
func TestEstimateTokens_Monotonic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aZb 9\n\t\r.{é日\x00_-")
	for range 500 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		checkMonotonic(t, b)
	}
}

func checkMonotonic(t *testing.T, b []byte) {
	t.Helper()
	prev := 0
	for i := 0; i <= len(b); i++ {
		n := pack.EstimateTokens(b[:i])
		if n < prev {
			t.Fatalf("EstimateTokens(%q) = %d < EstimateTokens(%q) = %d", b[:i], n, b[:i-1], prev)
		}
		if i > 0 && n == 0 {
			t.Fatalf("EstimateTokens(%q) = 0", b[:i])
		}
		prev = n
	}
}

// FuzzEstimateTokens checks monotonicity on arbitrary input.
func FuzzEstimateTokens(f *testing.F) {
	f.Add([]byte("func main() {\n\tfmt.Println(\"hello, 世界\")\n}\n"))
	f.Add([]byte("a b  c\xff\xfe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 256 {
			b = b[:256]
		}
		checkMonotonic(t, b)
	})
}
