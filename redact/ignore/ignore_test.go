package ignore_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact/ignore"
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

type query struct {
	path   string
	isDir  bool
	want   bool
	source string
}

func check(t *testing.T, m *ignore.Matcher, qs []query) {
	t.Helper()
	for _, q := range qs {
		got, src := m.Ignored(q.path, q.isDir)
		if got != q.want || src != q.source {
			t.Errorf("Ignored(%q, %v) = %v, %q; want %v, %q", q.path, q.isDir, got, src, q.want, q.source)
		}
	}
}

// Ensure the examples of gitignore(5) behave as documented.
func TestIgnored_GitDocs(t *testing.T) {
	t.Run("DirOnly", func(t *testing.T) {
		// "frotz/" matches frotz and a/frotz that is a directory.
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "frotz/\n"})
		check(t, ignore.New(root), []query{
			{"frotz", true, true, ".gitignore:1"},
			{"a/frotz", true, true, ".gitignore:1"},
			{"frotz", false, false, ""},
			{"a/frotz/x", false, true, ".gitignore:1"},
		})
	})
	t.Run("Anchored", func(t *testing.T) {
		// "doc/frotz/" matches doc/frotz but not a/doc/frotz.
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "doc/frotz/\n/top\n"})
		check(t, ignore.New(root), []query{
			{"doc/frotz", true, true, ".gitignore:1"},
			{"a/doc/frotz", true, false, ""},
			{"top", false, true, ".gitignore:2"},
			{"a/top", false, false, ""},
		})
	})
	t.Run("Stars", func(t *testing.T) {
		// "foo/*" matches foo/test.json and foo/bar but not foo/bar/hello.c
		// by itself (it does through the excluded directory foo/bar).
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "foo/*\n*.[oa]\nx?z\n"})
		check(t, ignore.New(root), []query{
			{"foo/test.json", false, true, ".gitignore:1"},
			{"foo/bar", true, true, ".gitignore:1"},
			{"foo/bar/hello.c", false, true, ".gitignore:1"},
			{"foo", true, false, ""},
			{"src/a.o", false, true, ".gitignore:2"},
			{"lib.a", false, true, ".gitignore:2"},
			{"a.c", false, false, ""},
			{"xyz", false, true, ".gitignore:3"},
			{"xyyz", false, false, ""},
		})
	})
	t.Run("DoubleStar", func(t *testing.T) {
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "**/foo\n**/foo2/bar\nabc/**\na/**/b\n"})
		check(t, ignore.New(root), []query{
			{"foo", false, true, ".gitignore:1"},
			{"x/y/foo", false, true, ".gitignore:1"},
			{"foo2/bar", false, true, ".gitignore:2"},
			{"x/foo2/bar", false, true, ".gitignore:2"},
			{"abc/x/y", false, true, ".gitignore:3"},
			{"abc", true, false, ""},
			{"a/b", false, true, ".gitignore:4"},
			{"a/x/b", false, true, ".gitignore:4"},
			{"a/x/y/b", false, true, ".gitignore:4"},
			{"a/x/y/c", false, false, ""},
		})
	})
	t.Run("Negation", func(t *testing.T) {
		// Exclude everything except directory foo/bar: "/*", "!/foo",
		// "/foo/*", "!/foo/bar".
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "/*\n!/foo\n/foo/*\n!/foo/bar\n"})
		check(t, ignore.New(root), []query{
			{"a", false, true, ".gitignore:1"},
			{"foo", true, false, ".gitignore:2"},
			{"foo/x", false, true, ".gitignore:3"},
			{"foo/bar", true, false, ".gitignore:4"},
			{"foo/bar/deep/file", false, false, ""},
		})
	})
	t.Run("NoReincludeUnderExcludedDir", func(t *testing.T) {
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "build/\n!build/keep.txt\n"})
		check(t, ignore.New(root), []query{
			{"build/keep.txt", false, true, ".gitignore:1"},
		})
	})
	t.Run("StarStarAfterLiteralPrefix", func(t *testing.T) {
		// git compares the literal prefix first, so "a**/c" acts as "a" +
		// "**/c" (checked against git 2.39).
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "a**/c\n"})
		check(t, ignore.New(root), []query{
			{"a/x/c", false, true, ".gitignore:1"},
			{"ab/c", false, true, ".gitignore:1"},
			{"a/c", false, true, ".gitignore:1"},
			{"ab/y/c", false, true, ".gitignore:1"},
			{"b/c", false, false, ""},
		})
	})
	t.Run("Escapes", func(t *testing.T) {
		root := t.TempDir()
		MustWriteTree(t, root, map[string]string{".gitignore": "\\#hash\n\\!bang\nsp\\ \ntrail   \n"})
		check(t, ignore.New(root), []query{
			{"#hash", false, true, ".gitignore:1"},
			{"!bang", false, true, ".gitignore:2"},
			{"sp ", false, true, ".gitignore:3"},
			{"sp", false, false, ""},
			{"trail", false, true, ".gitignore:4"},
		})
	})
}

// Ensure nested ignore files apply to their own subtree, deeper rules win,
// .custosignore wins over .gitignore in the same directory, and .git is
// always ignored.
func TestIgnored_Nested(t *testing.T) {
	root := t.TempDir()
	MustWriteTree(t, root, map[string]string{
		".gitignore":        "*.log\nsecret*\n",
		".custosignore":     ".env\n!important.log\n",
		"sub/.gitignore":    "!debug.log\n/local\n",
		"sub/.custosignore": "debug.log\n",
		"other/.gitignore":  "!*.log\n",
	})
	m := ignore.New(root)
	check(t, m, []query{
		{"a.log", false, true, ".gitignore:1"},
		{"important.log", false, false, ".custosignore:2"},
		{".env", false, true, ".custosignore:1"},
		{"x/.env", false, true, ".custosignore:1"},
		{"sub/debug.log", false, true, "sub/.custosignore:1"},
		{"sub/local", false, true, "sub/.gitignore:2"},
		{"local", false, false, ""},
		{"other/x.log", false, false, "other/.gitignore:1"},
		{"other/deep/x.log", false, false, "other/.gitignore:1"},
		{"sub/x.log", false, true, ".gitignore:1"},
		{"secrets/a.txt", false, true, ".gitignore:2"},
		{".git", true, true, ignore.GitDirSource},
		{".git/config", false, true, ignore.GitDirSource},
		{"vendor/x/.git/HEAD", false, true, ignore.GitDirSource},
		{"", true, false, ""},
		{"../outside", false, false, ""},
		{"/abs", false, false, ""},
		{"sub/./../a.log", false, true, ".gitignore:1"},
	})
}

// Ensure a symlinked ignore file is not followed, as in git.
func TestIgnored_SymlinkedIgnoreFile(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	MustWriteTree(t, outside, map[string]string{"rules": "*\n"})
	if err := os.Symlink(filepath.Join(outside, "rules"), filepath.Join(root, ".gitignore")); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	check(t, ignore.New(root), []query{{"a.txt", false, false, ""}})
}

// gitPatternPool and gitNamePool drive the comparison with git.
var gitPatternPool = []string{
	"a", "b", "c", "ab", "x.txt", "*.txt", "*.log", "a*", "*b", "?", "??",
	"[ab]", "[!a]", "[a-c]*", "**/b", "**/x.txt", "a/**", "a/**/c", "**/a/**",
	"/a", "/b/", "b/", "a/", "a/b", "/a/b", "*/b", "a/*", "*", "**", "a**",
	"a**/c", "**a", "x.*", "\\!n", "!n", "\\#h", "sp\\ ", "sp", "c/",
	"!a", "!b", "!*.txt", "!x.txt", "!a/", "!/b", "!**/c", "!c/*", "# comment",
	"", "a/b/", "b/c", "**/b/c", "[[:alpha:]]", "a.*",
}

var gitNamePool = []string{"a", "b", "c", "ab", "x.txt", "a.log", "!n", "#h", "sp "}

// Ensure the matcher agrees with `git check-ignore --no-index` on random
// trees of nested .gitignore files, both on the decision and on the
// deciding file:line; the same files renamed to .custosignore must give the
// same answers.
func TestIgnored_CompareGit(t *testing.T) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	for i := range iterations {
		seed := uint64(i + 1)
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			compareGit(t, gitPath, seed)
		})
	}
}

func compareGit(t *testing.T, gitPath string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xC057))
	root := t.TempDir()
	type entry struct {
		path  string
		isDir bool
	}
	var entries []entry
	ignoreFiles := map[string]string{}
	var build func(dir string, depth int)
	build = func(dir string, depth int) {
		if rng.IntN(3) > 0 {
			var lines []string
			for range 1 + rng.IntN(5) {
				lines = append(lines, gitPatternPool[rng.IntN(len(gitPatternPool))])
			}
			ignoreFiles[path.Join(dir, ".gitignore")] = strings.Join(lines, "\n") + "\n"
		}
		for _, name := range gitNamePool {
			p := path.Join(dir, name)
			switch r := rng.IntN(4); {
			case r == 0 && depth < 3:
				entries = append(entries, entry{p, true})
				build(p, depth+1)
			case r == 1:
				entries = append(entries, entry{p, false})
			}
		}
	}
	build("", 0)
	files := map[string]string{}
	for _, e := range entries {
		if e.isDir {
			files[e.path+"/"] = ""
		} else {
			files[e.path] = "x"
		}
	}
	for p, c := range ignoreFiles {
		files[p] = c
	}
	MustWriteTree(t, root, files)
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })

	cmd := exec.Command(gitPath, "init", "-q", root)
	cmd.Env = gitEnv(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	var in bytes.Buffer
	for _, e := range entries {
		in.WriteString(e.path)
		in.WriteByte(0)
	}
	cmd = exec.Command(gitPath, "check-ignore", "--no-index", "-v", "-n", "-z", "--stdin")
	cmd.Dir = root
	cmd.Env = gitEnv(t)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("git check-ignore: %v", err)
	}
	fields := strings.Split(string(out), "\x00")
	if len(fields) < 4*len(entries) {
		t.Fatalf("git check-ignore: %d fields for %d paths", len(fields), len(entries))
	}
	type answer struct {
		ignored bool
		source  string
	}
	want := map[string]answer{}
	for i := 0; i+3 < len(fields); i += 4 {
		src, line, pattern, p := fields[i], fields[i+1], fields[i+2], fields[i+3]
		a := answer{}
		if pattern != "" {
			a.ignored = !strings.HasPrefix(pattern, "!")
			a.source = src + ":" + line
		}
		want[p] = a
	}
	nIgnored, nNegated := 0, 0
	for _, a := range want {
		if a.ignored {
			nIgnored++
		} else if a.source != "" {
			nNegated++
		}
	}
	t.Logf("%d paths: %d ignored, %d re-included by a negation", len(entries), nIgnored, nNegated)

	for _, name := range []string{".gitignore", ".custosignore"} {
		if name == ".custosignore" {
			for p := range ignoreFiles {
				to := strings.TrimSuffix(p, ".gitignore") + ".custosignore"
				if err := os.Rename(filepath.Join(root, p), filepath.Join(root, to)); err != nil {
					t.Fatal(err)
				}
			}
		}
		m := ignore.New(root)
		for _, e := range entries {
			w, ok := want[e.path]
			if !ok {
				t.Fatalf("git gave no answer for %q", e.path)
			}
			if name == ".custosignore" {
				w.source = strings.Replace(w.source, ".gitignore:", ".custosignore:", 1)
			}
			got, src := m.Ignored(e.path, e.isDir)
			if got != w.ignored || src != w.source {
				t.Errorf("%s: Ignored(%q, dir=%v) = %v, %q; git says %v, %q\n%s",
					name, e.path, e.isDir, got, src, w.ignored, w.source, dumpIgnoreFiles(ignoreFiles))
			}
		}
	}
}

func gitEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"HOME="+home,
		"XDG_CONFIG_HOME="+home,
	)
}

func dumpIgnoreFiles(files map[string]string) string {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "--- %s\n%s", n, files[n])
	}
	return b.String()
}
