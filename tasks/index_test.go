package tasks_test

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/token"
)

// Ensure the project index takes paths, hashes and short summaries only,
// checked before anything is stored.
func TestIndex(t *testing.T) {
	te := mustTaskEnv(t)
	put := func(files []custos.IndexFile) error {
		_, err := te.Service.PutIndexFiles(FromIP(), te.Permit, Project, "main", files)
		return err
	}
	file := func(p string) custos.IndexFile { return custos.IndexFile{Path: p, SHA256: hashA, Summary: "s"} }
	t.Run("OK", func(t *testing.T) {
		// Ensure entries are stored and replaced; limits are inclusive.
		files := make([]custos.IndexFile, custos.MaxIndexFiles)
		for i := range files {
			files[i] = file(fmt.Sprintf("dir/f%04d.go", i))
		}
		files[0].Summary = strings.Repeat("é", custos.MaxIndexSummaryBytes/2)
		files[1].Path = strings.Repeat("p", custos.MaxIndexPathBytes)
		if err := put(files); err != nil {
			t.Fatal(err)
		}
		next := strings.Repeat("b", 64)
		if err := put([]custos.IndexFile{{Path: "dir/f0002.go", SHA256: next, Summary: "changed"}}); err != nil {
			t.Fatal(err)
		}
		stale, err := te.Service.StaleIndexFiles(FromIP(), te.Permit, Project, "main", []custos.IndexRef{
			{Path: "dir/f0002.go", SHA256: next}, {Path: "dir/f0003.go", SHA256: next}, {Path: "dir/f0004.go", SHA256: hashA},
		})
		if err != nil || len(stale) != 1 || stale[0] != "dir/f0003.go" {
			t.Fatalf("StaleIndexFiles = %v, %v", stale, err)
		}
		// Another index id of the same project is another index.
		stale, err = te.Service.StaleIndexFiles(FromIP(), te.Permit, Project, "other", []custos.IndexRef{{Path: "dir/f0004.go", SHA256: hashA}})
		if err != nil || len(stale) != 1 {
			t.Fatalf("StaleIndexFiles of another index = %v, %v", stale, err)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		// Ensure bad entries, content-sized summaries and bad index ids are
		// refused without a change.
		tooMany := make([]custos.IndexFile, custos.MaxIndexFiles+1)
		for i := range tooMany {
			tooMany[i] = file(fmt.Sprintf("f%d", i))
		}
		cases := map[string][]custos.IndexFile{
			"None":        {},
			"TooMany":     tooMany,
			"Dup":         {file("a.go"), file("a.go")},
			"Abs":         {file("/etc/passwd")},
			"DotDot":      {file("../x")},
			"Inner":       {file("a/../../x")},
			"NotClean":    {file("a//b")},
			"Dot":         {file("./a")},
			"Trailing":    {file("a/")},
			"Backslash":   {file(`a\b`)},
			"NUL":         {file("a\x00b")},
			"Newline":     {file("a\nb")},
			"Drive":       {file("C:/x")},
			"LongPath":    {file(strings.Repeat("p", custos.MaxIndexPathBytes+1))},
			"BadUTF8":     {file("\xff")},
			"UpperHash":   {{Path: "a", SHA256: strings.Repeat("A", 64)}},
			"ShortHash":   {{Path: "a", SHA256: strings.Repeat("a", 63)}},
			"NoHash":      {{Path: "a"}},
			"Content":     {{Path: "a", SHA256: hashA, Summary: strings.Repeat("x", custos.MaxIndexSummaryBytes+1)}},
			"NULSummary":  {{Path: "a", SHA256: hashA, Summary: "a\x00"}},
			"UTF8Summary": {{Path: "a", SHA256: hashA, Summary: "\xff"}},
		}
		for name, files := range cases {
			t.Run(name, func(t *testing.T) {
				before := te.Snapshot(t)
				Code(t, put(files), custos.EINVALID)
				if te.Snapshot(t) != before {
					t.Fatal("a refused index put changed the store")
				}
			})
		}
		before := te.Snapshot(t)
		_, err := te.Service.PutIndexFiles(FromIP(), te.Permit, Project, "../main", []custos.IndexFile{file("a")})
		Code(t, err, custos.EINVALID)
		_, err = te.Service.StaleIndexFiles(FromIP(), te.Permit, Project, "main", []custos.IndexRef{{Path: "/a", SHA256: hashA}})
		Code(t, err, custos.EINVALID)
		_, err = te.Service.StaleIndexFiles(FromIP(), te.Permit, Project, "main", nil)
		Code(t, err, custos.EINVALID)
		if te.Snapshot(t) != before {
			t.Fatal("a refused index call changed the store")
		}
	})
}

// FuzzArtifactName checks that every name custos.ValidateArtifactName
// accepts is a local, clean, slash-separated path within the limits.
func FuzzArtifactName(f *testing.F) {
	for _, s := range []string{"a", "a/b.txt", "../x", "/abs", `a\b`, "a\x00b", "a//b", "C:x", "é/ü", ".", "a/./b", "..a", "a..", "\u2028", "\xc2\x85"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := custos.ValidateArtifactName(s)
		if err != nil {
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("%q: code %s", s, custos.ErrorCode(err))
			}
			return
		}
		switch {
		case len(s) > custos.MaxArtifactNameBytes:
			t.Fatalf("%q: too long", s)
		case path.Clean(s) != s || strings.HasPrefix(s, "/") || s == "." || s == "..":
			t.Fatalf("%q: not clean", s)
		case !filepath.IsLocal(s):
			t.Fatalf("%q: not local", s)
		case strings.ContainsAny(s, "\\\x00\n\r"):
			t.Fatalf("%q: bad characters", s)
		case len(strings.Split(s, "/")) > custos.MaxArtifactNameSegments:
			t.Fatalf("%q: too many segments", s)
		}
		for _, seg := range strings.Split(s, "/") {
			if seg == ".." {
				t.Fatalf("%q: '..' segment", s)
			}
		}
	})
}

// FuzzIndexPayload checks that every index payload tasks.ValidateIndexFiles
// accepts has local clean paths, 64-hex hashes and bounded summaries, and
// that it never panics.
func FuzzIndexPayload(f *testing.F) {
	f.Add([]byte(`[{"path":"a.go","sha256":"` + strings.Repeat("a", 64) + `","summary":"x"}]`))
	f.Add([]byte(`[{"path":"../a","sha256":"` + strings.Repeat("a", 64) + `"}]`))
	f.Add([]byte(`[{"path":"a","sha256":"` + strings.Repeat("a", 64) + `"},{"path":"a","sha256":"` + strings.Repeat("b", 64) + `"}]`))
	f.Add([]byte(`[{"path":"a\u0000b","sha256":"x"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var files []custos.IndexFile
		if json.Unmarshal(data, &files) != nil {
			return
		}
		if err := tasks.ValidateIndexFiles(files); err != nil {
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("code %s", custos.ErrorCode(err))
			}
			return
		}
		seen := map[string]bool{}
		for _, fl := range files {
			switch {
			case !filepath.IsLocal(fl.Path) || path.Clean(fl.Path) != fl.Path || strings.ContainsAny(fl.Path, "\\\x00"):
				t.Fatalf("accepted path %q", fl.Path)
			case len(fl.Path) > custos.MaxIndexPathBytes || len(fl.Summary) > custos.MaxIndexSummaryBytes:
				t.Fatalf("accepted sizes %d, %d", len(fl.Path), len(fl.Summary))
			case len(fl.SHA256) != 64 || strings.Trim(fl.SHA256, "0123456789abcdef") != "":
				t.Fatalf("accepted hash %q", fl.SHA256)
			case seen[fl.Path]:
				t.Fatalf("accepted %q twice", fl.Path)
			}
			seen[fl.Path] = true
		}
	})
}

// FuzzLaunchLink checks that tasks.ParseLaunchQuery never panics, accepts
// only well-formed codes and refs, round-trips with tasks.LaunchQuery, and
// never repeats a code in its errors.
func FuzzLaunchLink(f *testing.F) {
	code := token.New(token.PrefixLaunchCode)
	f.Add(tasks.LaunchQuery(code, Project, Task))
	f.Add("code=" + code + "&project=a&task=b&x=1")
	f.Add("code=" + code + "&code=" + code + "&project=a&task=b")
	f.Add("code=cst_lc_short&project=a&task=b")
	f.Add("code=" + code + "&project=%zz&task=b")
	f.Add("project=a;task=b")
	f.Fuzz(func(t *testing.T, q string) {
		in, err := tasks.ParseLaunchQuery(q)
		if err != nil {
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("code %s", custos.ErrorCode(err))
			}
			if i := strings.Index(q, "cst_lc_"); i >= 0 && len(q) >= i+len(token.PrefixLaunchCode)+token.BodyLen {
				if c := q[i : i+len(token.PrefixLaunchCode)+token.BodyLen]; token.Check(c, token.PrefixLaunchCode) == nil && strings.Contains(err.Error(), c) {
					t.Fatalf("error repeats the code: %v", err)
				}
			}
			return
		}
		if token.Check(in.Code, token.PrefixLaunchCode) != nil || custos.ValidateRef("p", in.ProjectID) != nil || custos.ValidateRef("t", in.TaskID) != nil {
			t.Fatalf("accepted %+v", in)
		}
		again, err := tasks.ParseLaunchQuery(tasks.LaunchQuery(in.Code, in.ProjectID, in.TaskID))
		if err != nil || again != in {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
