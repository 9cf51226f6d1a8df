package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

var (
	installTokenRE = regexp.MustCompile(`cst_ti_[A-Za-z0-9_-]{43}`)
	launchCodeRE   = regexp.MustCompile(`cst_lc_[A-Za-z0-9_-]{43}`)
	runIDRE        = regexp.MustCompile(`run_[0-9a-f]{16}`)
)

// TaskCLI runs the CLI like e.CLI, without an API key unless env has one,
// with env on top (CUSTOS_TRACKER_TOKEN, XDG_CONFIG_HOME…).
func (e *E2E) TaskCLI(tb testing.TB, env map[string]string, args ...string) CLIResult {
	tb.Helper()
	full := map[string]string{"CUSTOS_URL": e.Main.URL(), "CUSTOS_HOME": filepath.Join(e.Home, ".custos")}
	for k, v := range env {
		full[k] = v
	}
	var out, errb bytes.Buffer
	c := &CLI{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return full[k] },
		Dir:    e.Home, Home: e.Home, Hostname: "laptop", MachineUser: "alice",
		now: e.Clock.Now,
	}
	code := c.Run(context.Background(), args)
	e.mu.Lock()
	e.cliErrs.Write(errb.Bytes())
	e.mu.Unlock()
	return CLIResult{Out: out.String(), Err: errb.String(), Code: code}
}

// MustTaskCLI runs TaskCLI and fails unless it exits 0.
func (e *E2E) MustTaskCLI(tb testing.TB, env map[string]string, args ...string) CLIResult {
	tb.Helper()
	r := e.TaskCLI(tb, env, args...)
	if r.Code != 0 {
		tb.Fatalf("custos %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Err)
	}
	return r
}

// blobFiles returns the regular files under dir.
func blobFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	return files
}

// runTaskFlow plays the whole tasks flow through the CLI against e:
// tracker install → launch → open → upload → download → complete →
// purge --dry-run → purge, with the blobs physically gone at the end.
// purgeArgs point custos task purge at e's database.
func runTaskFlow(t *testing.T, e *E2E, purgeArgs ...string) {
	out := e.MustCLI(t, e.Owner, "cli", "", "tracker", "install", "--name", "jira-prod")
	install := strings.TrimSpace(out)
	if !installTokenRE.MatchString(install) || install != installTokenRE.FindString(out) {
		t.Fatalf("tracker install stdout is not the token alone: %q", out)
	}
	e.Remember(install)
	list := e.MustCLI(t, e.Owner, "cli", "", "tracker", "list", "--json")
	var installs []custos.TrackerInstall
	if err := json.Unmarshal([]byte(list), &installs); err != nil || len(installs) != 1 || installs[0].Name != "jira-prod" || strings.Contains(list, install) {
		t.Fatalf("tracker list: %v %s", err, list)
	}

	tracker := map[string]string{"CUSTOS_TRACKER_TOKEN": install}
	r := e.MustTaskCLI(t, tracker, "task", "launch", "--project", "PROJ", "--task", "PROJ-42", "--ttl", "2d")
	code := launchCodeRE.FindString(r.Out)
	e.Remember(code)
	var link, https string
	for _, line := range strings.Split(r.Out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "link" {
			link = f[1]
		} else if len(f) == 2 && f[0] == "url" {
			https = f[1]
		}
	}
	if code == "" || !strings.HasPrefix(link, "custos://launch?") || !strings.HasPrefix(https, e.Main.URL()+"/launch#") {
		t.Fatalf("task launch printed: %s", r.Out)
	}
	// A link previewer fetching the https form spends nothing.
	resp, err := http.Get(https)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("launch page: %d", resp.StatusCode)
	}

	xdg := filepath.Join(e.Home, "xdg")
	dev := map[string]string{"XDG_CONFIG_HOME": xdg}
	r = e.MustTaskCLI(t, dev, "task", "open", https)
	permitPath := filepath.Join(xdg, "custos", "permits", strings.ReplaceAll(strings.TrimPrefix(e.Main.URL(), "http://"), ":", "_"), "PROJ", "PROJ-42.json")
	if !strings.Contains(r.Out, permitPath) {
		t.Fatalf("task open does not say where the permit is (%s): %s", permitPath, r.Out)
	}
	if fi, err := os.Stat(permitPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("permit file: %v %v", fi, err)
	}
	for _, d := range []string{filepath.Dir(permitPath), filepath.Join(xdg, "custos", "permits")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("permit dir %s: %v %v", d, fi, err)
		}
	}
	var pf permitFile
	b, _ := os.ReadFile(permitPath)
	if err := json.Unmarshal(b, &pf); err != nil || pf.TaskID != "PROJ-42" {
		t.Fatalf("permit file: %v %s", err, b)
	}
	e.Remember(pf.Permit)
	// The code is spent: a second open fails and leaves the permit alone.
	if r := e.TaskCLI(t, dev, "task", "open", link); r.Code != 1 || !strings.Contains(r.Err, "unauthorized") {
		t.Fatalf("second open: exit %d %s", r.Code, r.Err)
	}
	if b2, _ := os.ReadFile(permitPath); !bytes.Equal(b, b2) {
		t.Fatal("a refused open changed the permit file")
	}

	src := filepath.Join(e.Home, "main.go")
	const mainGo = "package main\n\n// e2e-task-source-7c1f\nfunc main() {}\n"
	if err := os.MkdirAll(filepath.Join(e.Home, "docs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(mainGo), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Home, "docs", "notes.md"), []byte("# notes e2e-task-notes-55aa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.MustTaskCLI(t, dev, "task", "upload", "--task", "PROJ-42", "--kind", "source", "main.go", "docs/notes.md")
	run := runIDRE.FindString(r.Err)
	if run == "" || strings.Count(r.Out, "uploaded ") != 2 || !strings.Contains(r.Out, "docs/notes.md") {
		t.Fatalf("upload: %s %s", r.Out, r.Err)
	}
	// A second upload goes to the remembered run.
	r = e.MustTaskCLI(t, dev, "task", "upload", "--task", "PROJ-42", "--project", "PROJ", "--name", "out/fix.patch", "--kind", "diff", "main.go")
	if !strings.Contains(r.Out, run) || strings.Contains(r.Err, "started run") {
		t.Fatalf("second upload did not reuse run %s: %s %s", run, r.Out, r.Err)
	}
	blobs := blobFiles(t, filepath.Join(e.Data, "artifacts"))
	if len(blobs) != 3 {
		t.Fatalf("%d blob files, want 3: %v", len(blobs), blobs)
	}
	for _, p := range blobs {
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("e2e-task-")) {
			t.Fatalf("blob %s holds plaintext", p)
		}
	}

	if r := e.MustTaskCLI(t, dev, "task", "list", "--task", "PROJ-42"); !strings.Contains(r.Out, "main.go") || !strings.Contains(r.Out, "docs/notes.md") {
		t.Fatalf("task list (current run): %q", r.Out)
	}
	if r := e.MustTaskCLI(t, dev, "task", "list", "--task", "PROJ-42", "--run", run, "--json"); !strings.Contains(r.Out, `"name": "main.go"`) && !strings.Contains(r.Out, `"name":"main.go"`) {
		t.Fatalf("task list --json: %q", r.Out)
	}
	if r := e.MustTaskCLI(t, dev, "task", "download", "--task", "PROJ-42", "--run", run, "main.go", "-o", "-"); r.Out != mainGo {
		t.Fatalf("download -o -: %q", r.Out)
	}
	dst := filepath.Join(e.Home, "got")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	e.MustTaskCLI(t, dev, "task", "download", "--task", "PROJ-42", "--run", run, "docs/notes.md", "-o", "got/notes.md")
	if b, _ := os.ReadFile(filepath.Join(dst, "notes.md")); string(b) != "# notes e2e-task-notes-55aa\n" {
		t.Fatalf("downloaded %q", b)
	}
	if r := e.TaskCLI(t, dev, "task", "download", "--task", "PROJ-42", "--run", run, "main.go", "-o", "got/notes.md"); r.Code != 1 || !strings.Contains(r.Err, "--force") {
		t.Fatalf("overwrite without --force: exit %d %s", r.Code, r.Err)
	}
	e.MustTaskCLI(t, dev, "task", "download", "--task", "PROJ-42", "--run", run, "main.go", "-o", "got/notes.md", "--force")
	if b, _ := os.ReadFile(filepath.Join(dst, "notes.md")); string(b) != mainGo {
		t.Fatalf("--force did not overwrite: %q", b)
	}

	r = e.MustTaskCLI(t, dev, "task", "complete", "--task", "PROJ-42")
	if !strings.Contains(r.Out, "complete") {
		t.Fatalf("complete: %s", r.Out)
	}
	if r := e.TaskCLI(t, dev, "task", "upload", "--task", "PROJ-42", "main.go"); r.Code != 1 || !strings.Contains(r.Err, "conflict") {
		t.Fatalf("upload after completion: exit %d %s", r.Code, r.Err)
	}

	// Past the retention (1h in these tests), reads are 410 before any purge.
	e.Clock.Advance(time.Hour + time.Minute)
	if r := e.TaskCLI(t, dev, "task", "download", "--task", "PROJ-42", "--run", run, "main.go", "-o", "-"); r.Code != 1 || !strings.Contains(r.Err, "expired") {
		t.Fatalf("download past retention: exit %d %s", r.Code, r.Err)
	}

	purge := append([]string{"task", "purge", "--data", e.Data}, purgeArgs...)
	r = e.MustTaskCLI(t, nil, append(purge, "--dry-run")...)
	if !strings.Contains(r.Out, "would remove 3 artifact(s)") || !strings.Contains(r.Out, "out/fix.patch") {
		t.Fatalf("purge --dry-run: %s", r.Out)
	}
	if got := len(blobFiles(t, filepath.Join(e.Data, "artifacts"))); got != 3 {
		t.Fatalf("--dry-run removed blobs: %d left", got)
	}
	r = e.MustTaskCLI(t, nil, purge...)
	if !strings.Contains(r.Out, "removed 3 artifact(s)") || !strings.Contains(r.Out, "expired") {
		t.Fatalf("purge: %s", r.Out)
	}
	if left := blobFiles(t, filepath.Join(e.Data, "artifacts")); len(left) != 0 {
		t.Fatalf("blob files left after the purge: %v", left)
	}
	r = e.MustTaskCLI(t, nil, append(purge, "--json")...)
	var rep custos.PurgeReport
	if err := json.Unmarshal([]byte(r.Out), &rep); err != nil || len(rep.Removed) != 0 {
		t.Fatalf("a second purge: %v %s", err, r.Out)
	}
	n := 0
	for _, ev := range e.Audit(t) {
		if ev.Action == custos.ActionArtifactPurge {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d artifact.purge audit records, want 3", n)
	}
	if v := e.MustCLI(t, e.Owner, "cli", "", "audit", "verify"); !strings.Contains(v, "OK") {
		t.Fatalf("audit verify: %s", v)
	}
}

func TestE2E_TaskFlow(t *testing.T) {
	// Ensure the whole tasks flow works through the CLI on SQLite, and the
	// purge physically removes the blobs.
	e := MustStartE2E(t, "--artifact-retention", "1h")
	runTaskFlow(t, e)
}

func TestE2E_TaskFlowPostgres(t *testing.T) {
	// Ensure the whole tasks flow works through the CLI on PostgreSQL.
	db := freshDatabase(t)
	e := MustStartE2E(t, "--artifact-retention", "1h", "--database", db)
	runTaskFlow(t, e, "--database", db)
}

func TestE2E_TaskHostile(t *testing.T) {
	// Ensure hostile and replayed input over HTTP is refused and changes
	// nothing: a link for another server, another pair, a permit for
	// another task, oversized artifacts, file content on the index.
	e := MustStartE2E(t, "--artifact-max-bytes", "4KiB", "--run-max-bytes", "8KiB")
	install := strings.TrimSpace(e.MustCLI(t, e.Owner, "cli", "", "tracker", "install", "--name", "jira"))
	e.Remember(install)
	tracker := map[string]string{"CUSTOS_TRACKER_TOKEN": install}
	launch := func(task string) string {
		r := e.MustTaskCLI(t, tracker, "task", "launch", "--project", "PROJ", "--task", task)
		code := launchCodeRE.FindString(r.Out)
		e.Remember(code)
		return code
	}
	xdg := filepath.Join(e.Home, "xdg")
	dev := map[string]string{"XDG_CONFIG_HOME": xdg}

	// An https link naming another server is refused before anything is sent.
	code := launch("PROJ-1")
	r := e.TaskCLI(t, dev, "task", "open", "https://evil.example.com/launch#code="+code+"&project=PROJ&task=PROJ-1")
	if r.Code != 1 || !strings.Contains(r.Err, "evil.example.com") || strings.Contains(r.Err, code) {
		t.Fatalf("foreign link: exit %d %s", r.Code, r.Err)
	}
	if _, err := os.Stat(filepath.Join(xdg, "custos")); !os.IsNotExist(err) {
		t.Fatal("a refused link created the permit directory")
	}
	// The code for another pair is 403 and stays unused.
	if r := e.TaskCLI(t, dev, "task", "open", code, "--project", "PROJ", "--task", "PROJ-2"); r.Code != 1 || !strings.Contains(r.Err, "forbidden") {
		t.Fatalf("other pair: exit %d %s", r.Code, r.Err)
	}
	e.MustTaskCLI(t, dev, "task", "open", code, "--project", "PROJ", "--task", "PROJ-1")

	// A permit file replaced by a symlink is refused.
	code2 := launch("PROJ-2")
	p2 := filepath.Join(xdg, "custos", "permits", strings.ReplaceAll(strings.TrimPrefix(e.Main.URL(), "http://"), ":", "_"), "PROJ", "PROJ-2.json")
	if err := os.Symlink(filepath.Join(e.Home, "elsewhere"), p2); err != nil {
		t.Fatal(err)
	}
	if r := e.TaskCLI(t, dev, "task", "open", code2, "--project", "PROJ", "--task", "PROJ-2"); r.Code != 1 || !strings.Contains(r.Err, "symlink") {
		t.Fatalf("symlink: exit %d %s", r.Code, r.Err)
	}
	if _, err := os.Lstat(filepath.Join(e.Home, "elsewhere")); !os.IsNotExist(err) {
		t.Fatal("the permit was written through a symlink")
	}
	_ = os.Remove(p2)
	e.MustTaskCLI(t, dev, "task", "open", code2, "--project", "PROJ", "--task", "PROJ-2") // the code was not spent

	// Oversized artifacts: 413, nothing stored.
	big := filepath.Join(e.Home, "big.bin")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 5<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.TaskCLI(t, dev, "task", "upload", "--task", "PROJ-1", "big.bin"); r.Code != 1 || !strings.Contains(r.Err, "too_large") {
		t.Fatalf("oversized: exit %d %s", r.Code, r.Err)
	}
	mid := filepath.Join(e.Home, "mid.bin")
	if err := os.WriteFile(mid, bytes.Repeat([]byte("y"), 3<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	e.MustTaskCLI(t, dev, "task", "upload", "--task", "PROJ-1", "--name", "a", "mid.bin")
	e.MustTaskCLI(t, dev, "task", "upload", "--task", "PROJ-1", "--name", "b", "mid.bin")
	if r := e.TaskCLI(t, dev, "task", "upload", "--task", "PROJ-1", "--name", "c", "mid.bin"); r.Code != 1 || !strings.Contains(r.Err, "too_large") {
		t.Fatalf("over the run limit: exit %d %s", r.Code, r.Err)
	}

	// A permit for PROJ-1 on PROJ-2's routes: 403, audited.
	var pf permitFile
	b, _ := os.ReadFile(strings.Replace(p2, "PROJ-2.json", "PROJ-1.json", 1))
	if err := json.Unmarshal(b, &pf); err != nil {
		t.Fatal(err)
	}
	e.Remember(pf.Permit)
	cl, err := custoshttp.NewClient(e.Main.URL(), custoshttp.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateRun(context.Background(), pf.Permit, "PROJ-2"); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("permit on another task: %v", err)
	}
	denied := 0
	for _, ev := range e.Audit(t) {
		if ev.Action == custos.ActionTaskDenied {
			denied++
		}
	}
	if denied != 1 {
		t.Fatalf("%d task.denied records, want 1", denied)
	}
	// File content on the index is refused.
	req, _ := http.NewRequest("PUT", e.Main.URL()+"/v1/projects/PROJ/indexes/main/files", strings.NewReader(`{"files":[{"path":"a.go","sha256":"`+strings.Repeat("a", 64)+`","summary":"s","content":"package main"}]}`))
	req.Header.Set("Authorization", "Bearer "+pf.Permit)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("index with content: %d", resp.StatusCode)
	}
	// A replayed request key is refused and audited.
	g, err := cl.StartTrackerSession(context.Background(), install)
	if err != nil {
		t.Fatal(err)
	}
	e.Remember(g.RequestKey)
	in := custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: "PROJ-3"}
	l, next, err := cl.CreateLaunchLink(context.Background(), install, g.RequestKey, in)
	if err != nil || next == "" {
		t.Fatal(err)
	}
	e.Remember(l.Code)
	e.Remember(next)
	if _, nk, err := cl.CreateLaunchLink(context.Background(), install, g.RequestKey, in); custos.ErrorCode(err) != custos.EUNAUTHORIZED || nk != "" {
		t.Fatalf("replayed key: %q %v", nk, err)
	}
	refused := 0
	for _, ev := range e.Audit(t) {
		if ev.Action == custos.ActionRequestKeyReplay {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d tracker.key_refused records, want 1", refused)
	}
}

func TestTaskCLI_BadInput(t *testing.T) {
	// Ensure bad input to every tracker and task command is a usage error
	// (exit 2) with a clear message, sends nothing (the server address is
	// closed) and creates no permit directory.
	home := t.TempDir()
	goodCode := "cst_lc_" + strings.Repeat("A", 43)
	ti := "cst_ti_" + strings.Repeat("B", 43)
	if err := os.WriteFile(filepath.Join(home, "f.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(home, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"tracker"}, nil, "missing command"},
		{[]string{"tracker", "bogus"}, nil, "unknown command"},
		{[]string{"tracker", "install"}, nil, "--name is required"},
		{[]string{"tracker", "install", "--name", "-bad"}, nil, "--name"},
		{[]string{"tracker", "install", "--name", "x", "extra"}, nil, "unexpected argument"},
		{[]string{"tracker", "rm"}, nil, "missing argument"},
		{[]string{"tracker", "rm", "key_0123456789abcdef"}, nil, "trk_"},
		{[]string{"tracker", "rm", "trk_x"}, nil, "trk_"},
		{[]string{"task"}, nil, "missing command"},
		{[]string{"task", "bogus"}, nil, "unknown command"},
		{[]string{"task", "launch", "--task", "T"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "--project is required"},
		{[]string{"task", "launch", "--project", "P"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "--task is required"},
		{[]string{"task", "launch", "--project", "a b", "--task", "T"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "--project"},
		{[]string{"task", "launch", "--project", "P", "--task", "../x"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "--task"},
		{[]string{"task", "launch", "--project", "P", "--task", "T", "--ttl", "1h"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "1d to 14d"},
		{[]string{"task", "launch", "--project", "P", "--task", "T", "--ttl", "15d"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "1d to 14d"},
		{[]string{"task", "launch", "--project", "P", "--task", "T", "--ttl", "soon"}, map[string]string{"CUSTOS_TRACKER_TOKEN": ti}, "invalid duration"},
		{[]string{"task", "launch", "--project", "P", "--task", "T"}, nil, "CUSTOS_TRACKER_TOKEN"},
		{[]string{"task", "launch", "--project", "P", "--task", "T"}, map[string]string{"CUSTOS_TRACKER_TOKEN": "cst_ak_" + strings.Repeat("C", 43)}, "wrong credential"},
		{[]string{"task", "launch", "--project", "P", "--task", "T", "--install-token-file", "nope"}, nil, "--install-token-file"},
		{[]string{"task", "launch", "--project", "P", "--task", "T", "--install-token", ti}, nil, "flag provided but not defined"},
		{[]string{"task", "open"}, nil, "missing argument"},
		{[]string{"task", "open", "a", "b"}, nil, "unexpected argument"},
		{[]string{"task", "open", "hello"}, nil, "not a launch link or code"},
		{[]string{"task", "open", goodCode}, nil, "needs --project and --task"},
		{[]string{"task", "open", goodCode, "--project", "P", "--task", "a/b"}, nil, "--task"},
		{[]string{"task", "open", "custos://launch?code=bad&project=P&task=T"}, nil, "invalid launch link"},
		{[]string{"task", "open", "custos://evil?code=" + goodCode + "&project=P&task=T"}, nil, "invalid launch link"},
		{[]string{"task", "open", "custos://launch?code=" + goodCode + "&project=P&task=T&x=1"}, nil, "only code, project and task"},
		{[]string{"task", "open", "custos://launch?code=" + goodCode + "&code=" + goodCode + "&project=P&task=T"}, nil, "exactly one code"},
		{[]string{"task", "open", "custos://launch?code=" + goodCode + "&project=P&task=T", "--task", "U"}, nil, "do not match"},
		{[]string{"task", "open", "http://127.0.0.1:1/other#code=" + goodCode + "&project=P&task=T"}, nil, "invalid launch link"},
		{[]string{"task", "open", "http://127.0.0.1:1/launch?code=" + goodCode + "&project=P&task=T"}, nil, "invalid launch link"},
		{[]string{"task", "upload", "f.txt"}, nil, "--task is required"},
		{[]string{"task", "upload", "--task", "T"}, nil, "missing argument"},
		{[]string{"task", "upload", "--task", "T", "missing.txt"}, nil, "missing.txt"},
		{[]string{"task", "upload", "--task", "T", "dir"}, nil, "not a regular file"},
		{[]string{"task", "upload", "--task", "T", "--kind", "binary", "f.txt"}, nil, "--kind"},
		{[]string{"task", "upload", "--task", "T", "--name", "n", "f.txt", "f.txt"}, nil, "single FILE"},
		{[]string{"task", "upload", "--task", "T", "--name", "../n", "f.txt"}, nil, "invalid artifact name"},
		{[]string{"task", "upload", "--task", "T", "--run", "run_x", "f.txt"}, nil, "--run"},
		{[]string{"task", "upload", "--task", "T", "f.txt", "./f.txt"}, nil, "two files would be artifact"},
		{[]string{"task", "upload", "--task", "T", "--project", "-P", "f.txt"}, nil, "--project"},
		{[]string{"task", "download", "--task", "T", "x"}, nil, "--run is required"},
		{[]string{"task", "list"}, nil, "--task is required"},
		{[]string{"task", "list", "--task", "T", "extra"}, nil, "unexpected argument"},
		{[]string{"task", "list", "--task", "T", "--run", "run_x"}, nil, "run_"},
		{[]string{"task", "download", "--task", "T", "--run", "run_0123456789abcdef"}, nil, "missing argument"},
		{[]string{"task", "download", "--task", "T", "--run", "run_0123456789abcdef", "../x"}, nil, "invalid artifact name"},
		{[]string{"task", "download", "--task", "T", "--run", "key_0123456789abcdef", "x"}, nil, "--run"},
		{[]string{"task", "complete"}, nil, "--task is required"},
		{[]string{"task", "complete", "--task", "T", "extra"}, nil, "unexpected argument"},
		{[]string{"task", "complete", "--task", "T", "--run", "bad"}, nil, "--run"},
		{[]string{"task", "purge", "extra"}, nil, "unexpected argument"},
		{[]string{"task", "purge", "--database", "mysql://x"}, nil, "postgres://"},
		{[]string{"task", "purge", "--data", ""}, nil, "--data"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			env := map[string]string{"CUSTOS_URL": "http://127.0.0.1:1", "XDG_CONFIG_HOME": filepath.Join(home, "xdg"), "CUSTOS_API_KEY": "cst_ak_" + strings.Repeat("D", 43)}
			for k, v := range tt.env {
				env[k] = v
			}
			var out, errb bytes.Buffer
			c := &CLI{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }, Dir: home, Home: home}
			if got, want := c.Run(context.Background(), tt.args), 2; got != want {
				t.Fatalf("exit %d, want %d: %s", got, want, errb.String())
			}
			if msg := strings.SplitN(errb.String(), "\n", 2)[0]; !strings.Contains(msg, tt.want) {
				t.Fatalf("stderr %q, want %q", msg, tt.want)
			}
			if strings.Contains(errb.String(), goodCode) || strings.Contains(errb.String(), ti) {
				t.Fatal("the error repeats a credential")
			}
			if _, err := os.Stat(filepath.Join(home, "xdg")); !os.IsNotExist(err) {
				t.Fatal("bad input created the permit directory")
			}
		})
	}
}

func TestTaskCLI_NoPermit(t *testing.T) {
	// Ensure the permit commands explain what to do without a permit, and
	// refuse a permit file that is too open, a symlink or expired.
	home := t.TempDir()
	xdg := filepath.Join(home, "xdg")
	env := map[string]string{"CUSTOS_URL": "http://127.0.0.1:1", "XDG_CONFIG_HOME": xdg}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		c := &CLI{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }, Dir: home, Home: home,
			now: func() time.Time { return time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC) }}
		return c.Run(context.Background(), args), errb.String()
	}
	if code, msg := run("task", "complete", "--task", "T"); code != 1 || !strings.Contains(msg, "custos task open") {
		t.Fatalf("no permit: exit %d %s", code, msg)
	}
	dir := filepath.Join(xdg, "custos", "permits", "127.0.0.1_1", "P")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pf := permitFile{Server: "http://127.0.0.1:1", PermitGrant: custos.PermitGrant{Permit: "cst_pm_" + strings.Repeat("E", 43), ProjectID: "P", TaskID: "T", ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	b, _ := json.Marshal(pf)
	p := filepath.Join(dir, "T.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, msg := run("task", "complete", "--task", "T"); code != 1 || !strings.Contains(msg, "chmod 600") {
		t.Fatalf("open permit file: exit %d %s", code, msg)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, msg := run("task", "complete", "--task", "T"); code != 1 || !strings.Contains(msg, "expired") {
		t.Fatalf("expired permit: exit %d %s", code, msg)
	}
	if err := os.Rename(p, p+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p+".real", p); err != nil {
		t.Fatal(err)
	}
	if code, msg := run("task", "complete", "--task", "T", "--project", "P"); code != 1 || !strings.Contains(msg, "symlink") {
		t.Fatalf("symlinked permit: exit %d %s", code, msg)
	}
	if err := os.MkdirAll(filepath.Join(xdg, "custos", "permits", "127.0.0.1_1", "Q"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(xdg, "custos", "permits", "127.0.0.1_1", "Q", "T.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, msg := run("task", "complete", "--task", "T"); code != 2 || !strings.Contains(msg, "give --project") {
		t.Fatalf("two projects: exit %d %s", code, msg)
	}
}

func TestConfig_TaskFlags(t *testing.T) {
	// Ensure the tasks flags are validated with an error naming the flag,
	// and the defaults hold the documented values.
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags(nil, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	tl, err := m.Config.taskConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tl.retention != 48*time.Hour || tl.retentionCap != 48*time.Hour || tl.purgeInterval != 10*time.Minute ||
		tl.maxArtifact != custos.DefaultMaxArtifactBytes || tl.maxRun != custos.DefaultMaxRunBytes {
		t.Fatalf("defaults: %+v", tl)
	}
	if got, want := m.Config.blobURL(), "file://custos-data/artifacts"; got != want {
		t.Fatalf("blob URL %q, want %q", got, want)
	}
	for _, tt := range []struct {
		args  []string
		field string
	}{
		{[]string{"--artifact-retention", "72h"}, "--artifact-retention"},
		{[]string{"--artifact-retention", "forever"}, "--artifact-retention"},
		{[]string{"--artifact-retention-cap", "0"}, "--artifact-retention-cap"},
		{[]string{"--purge-interval", "0s"}, "--purge-interval"},
		{[]string{"--purge-interval", "2d"}, "--purge-interval"},
		{[]string{"--artifact-max-bytes", "16XB"}, "--artifact-max-bytes"},
		{[]string{"--artifact-max-bytes", "1"}, "--artifact-max-bytes"},
		{[]string{"--artifact-max-bytes", "1GiB"}, "--artifact-max-bytes"},
		{[]string{"--run-max-bytes", "-5"}, "--run-max-bytes"},
		{[]string{"--public-url", "ftp://x"}, "--public-url"},
		{[]string{"--public-url", "https://u:p@x"}, "--public-url"},
		{[]string{"--blob-url", "/var/lib/custos"}, "--blob-url"},
	} {
		m := NewMain(io.Discard, io.Discard)
		err := m.ParseFlags(tt.args, func(string) string { return "" })
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%v: %v, want a ConfigError for %s", tt.args, err, tt.field)
		}
	}
	m = NewMain(io.Discard, io.Discard)
	env := map[string]string{"CUSTOS_ARTIFACT_RETENTION": "7d", "CUSTOS_ARTIFACT_RETENTION_CAP": "14d", "CUSTOS_RUN_MAX_BYTES": "1GiB", "CUSTOS_BLOB_URL": "s3://b?region=eu-west-1"}
	if err := m.ParseFlags([]string{"--artifact-max-bytes", "512KiB"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if tl, _ := m.Config.taskConfig(); tl.retention != 7*24*time.Hour || tl.maxRun != 1<<30 || tl.maxArtifact != 512<<10 || m.Config.blobURL() != env["CUSTOS_BLOB_URL"] {
		t.Fatalf("from the environment: %+v %s", tl, m.Config.blobURL())
	}
}
