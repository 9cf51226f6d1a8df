package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runOffline runs the CLI with stdin and no server configuration.
func runOffline(tb testing.TB, stdin string, args ...string) CLIResult {
	tb.Helper()
	var out, errb bytes.Buffer
	c := &CLI{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
		Dir: tb.TempDir(), Home: tb.TempDir(), Hostname: "laptop", MachineUser: "alice"}
	code := c.Run(context.Background(), args)
	return CLIResult{Out: out.String(), Err: errb.String(), Code: code}
}

// fakeGitHubToken assembles a token-shaped test value at run time.
func fakeGitHubToken() string { return "ghp_" + strings.Repeat("aB3dE5gH7j", 3) + "K9mN8p" }

func TestRedactCommand(t *testing.T) {
	tok := fakeGitHubToken()
	input := "export GITHUB_TOKEN=" + tok + "\nmail ops@example.org if it breaks\nnothing else here\n"

	// Ensure the filter replaces secrets and emails and leaves every other byte.
	t.Run("Filter", func(t *testing.T) {
		r := runOffline(t, input, "redact")
		if r.Code != 0 {
			t.Fatalf("exit %d: %s", r.Code, r.Err)
		}
		if strings.Contains(r.Out, tok) || strings.Contains(r.Out, "ops@example.org") {
			t.Fatalf("value left in output: %q", r.Out)
		}
		if !strings.Contains(r.Out, "export GITHUB_TOKEN=[[SECRET_1]]\n") || !strings.Contains(r.Out, "mail [[EMAIL_1]] if it breaks\nnothing else here\n") {
			t.Fatalf("output=%q", r.Out)
		}
	})

	// Ensure --format json lists findings with offsets and never the value.
	t.Run("JSON", func(t *testing.T) {
		r := runOffline(t, input, "redact", "--format", "json")
		if r.Code != 0 || strings.Contains(r.Out, tok) || strings.Contains(r.Out, "ops@example.org") {
			t.Fatalf("exit %d out %q", r.Code, r.Out)
		}
		var rep []struct {
			File     string
			Findings []struct {
				Kind       string `json:"kind"`
				RuleID     string `json:"rule_id"`
				Start, End int
			}
		}
		if err := json.Unmarshal([]byte(r.Out), &rep); err != nil || len(rep) != 1 || len(rep[0].Findings) != 2 {
			t.Fatalf("report %q: %v", r.Out, err)
		}
		f := rep[0].Findings[0]
		if input[f.Start:f.End] != tok || f.Kind != "SECRET" || f.RuleID == "" {
			t.Fatalf("finding %+v does not cover the token", f)
		}
	})

	// Ensure --fail-on-find exits 1 on a finding and 0 on clean input.
	t.Run("FailOnFind", func(t *testing.T) {
		if r := runOffline(t, input, "redact", "--fail-on-find"); r.Code != 1 {
			t.Fatalf("exit %d, want 1", r.Code)
		}
		if r := runOffline(t, "just prose\n", "redact", "--fail-on-find"); r.Code != 0 || r.Out != "just prose\n" {
			t.Fatalf("clean input: exit %d out %q", r.Code, r.Out)
		}
	})

	// Ensure files are read, and bad arguments are usage errors.
	t.Run("Files", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.log")
		if err := os.WriteFile(p, []byte(input), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := runOffline(t, "", "redact", p); r.Code != 0 || strings.Contains(r.Out, tok) {
			t.Fatalf("file: exit %d out %q", r.Code, r.Out)
		}
		if r := runOffline(t, "", "redact", filepath.Join(t.TempDir(), "missing")); r.Code != 1 {
			t.Fatalf("missing file: exit %d", r.Code)
		}
		if r := runOffline(t, "", "redact", "--pii", "dna"); r.Code != 2 {
			t.Fatalf("bad --pii: exit %d", r.Code)
		}
		if r := runOffline(t, "", "redact", "--format", "xml"); r.Code != 2 {
			t.Fatalf("bad --format: exit %d", r.Code)
		}
		if r := runOffline(t, "a@b.example.com\n", "redact", "--pii", "none"); r.Out != "a@b.example.com\n" {
			t.Fatalf("--pii none still redacted: %q", r.Out)
		}
	})
}

func TestContextCommand(t *testing.T) {
	// Ensure context packs files, honours .gitignore and .custosignore, redacts,
	// and reports exclusions on stderr.
	dir := t.TempDir()
	tok := fakeGitHubToken()
	files := map[string]string{
		".gitignore":      "build/\n",
		".custosignore":   "*.secret\n!keep.secret\n",
		"main.go":         "package main\n\nconst token = \"" + tok + "\"\n",
		"build/out.txt":   "built\n",
		"x.secret":        "hidden\n",
		"keep.secret":     "kept\n",
		"img.bin":         "\x00\x01\x02binary",
		"docs/readme.txt": "hello\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := runOffline(t, "", "context", dir, "--format", "json")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	if strings.Contains(r.Out, tok) || strings.Contains(r.Err, tok) {
		t.Fatal("the token reached the packed context or the report")
	}
	var res struct {
		Files []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"files"`
		Excluded []struct {
			Path   string `json:"path"`
			Reason string `json:"reason"`
		} `json:"excluded"`
	}
	if err := json.Unmarshal([]byte(r.Out), &res); err != nil {
		t.Fatalf("json: %v: %s", err, r.Out)
	}
	got := map[string]bool{}
	for _, f := range res.Files {
		got[filepath.ToSlash(f.Path)] = true
	}
	for _, want := range []string{"main.go", "keep.secret", "docs/readme.txt"} {
		found := false
		for p := range got {
			if strings.HasSuffix(p, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not packed (files %v)", want, got)
		}
	}
	for p := range got {
		for _, no := range []string{"x.secret", "out.txt", "img.bin"} {
			if strings.HasSuffix(p, no) {
				t.Errorf("%s packed although excluded", p)
			}
		}
	}
	if !strings.Contains(r.Err, "binary") || !strings.Contains(r.Err, "ignored") {
		t.Fatalf("report lacks reasons: %s", r.Err)
	}
	// A tiny budget leaves files out as over budget.
	if r := runOffline(t, "", "context", dir, "--budget", "5"); r.Code != 0 || !strings.Contains(r.Err, "over budget") {
		t.Fatalf("budget: exit %d err %q", r.Code, r.Err)
	}
	if r := runOffline(t, "", "context", dir, "--budget", "-1"); r.Code != 2 {
		t.Fatalf("negative budget: exit %d", r.Code)
	}
}
