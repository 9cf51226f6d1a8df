package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestSecretSet(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure the value comes from stdin with one trailing newline removed,
		// flags after the name work, and the result line is printed.
		tc := newTestCLI(t)
		tc.Stdin = strings.NewReader("s3cret value\n")
		var got custos.SetSecretInput
		tc.spy.setSecret = func(in custos.SetSecretInput) (*custos.Secret, error) {
			got = in
			return &custos.Secret{Project: in.Project, Name: in.Name, Version: 3}, nil
		}
		out := tc.mustRun(t, "secret", "set", "API_TOKEN", "--project", "shop", "--tag", "env=prod", "--tag", "team=web", "--ttl", "7d", "--description", "the token")
		if out != "set shop/API_TOKEN version 3\n" {
			t.Fatalf("printed %q", out)
		}
		want := custos.SetSecretInput{Project: "shop", Name: "API_TOKEN", Value: "s3cret value",
			Tags: map[string]string{"env": "prod", "team": "web"}, TTL: custos.Duration(7 * 24 * time.Hour), Description: "the token"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
		if strings.Contains(tc.err.String()+out, "s3cret") {
			t.Fatal("value printed")
		}
	})
	t.Run("Newlines", func(t *testing.T) {
		// Ensure exactly one trailing "\n" or "\r\n" is stripped.
		for in, want := range map[string]string{"v": "v", "v\n": "v", "v\r\n": "v", "v\n\n": "v\n", "a\nb\n": "a\nb", "v\r": "v\r"} {
			tc := newTestCLI(t)
			tc.Stdin = strings.NewReader(in)
			var got string
			tc.spy.setSecret = func(in custos.SetSecretInput) (*custos.Secret, error) {
				got = in.Value
				return &custos.Secret{Project: in.Project, Name: in.Name, Version: 1}, nil
			}
			tc.mustRun(t, "secret", "set", "A")
			if got != want {
				t.Errorf("stdin %q: value %q, want %q", in, got, want)
			}
		}
	})
	t.Run("ShortValueNote", func(t *testing.T) {
		// Ensure a value too short for the gateway's known-value guard gets a note on stderr (without the value), and one long enough none.
		for in, note := range map[string]bool{"hunter2": true, "hunter22": false} {
			tc := newTestCLI(t)
			tc.Stdin = strings.NewReader(in + "\n")
			tc.spy.setSecret = func(in custos.SetSecretInput) (*custos.Secret, error) {
				return &custos.Secret{Project: in.Project, Name: in.Name, Version: 1}, nil
			}
			out := tc.mustRun(t, "secret", "set", "A")
			if got := strings.Contains(tc.err.String(), "known-value guard watches for stored values of 8 bytes or more"); got != note || out != "set default/A version 1\n" {
				t.Errorf("%d bytes: note %v, want %v; stdout %q stderr %q", len(in), got, note, out, tc.err.String())
			}
			if strings.Contains(tc.err.String()+out, "hunter") {
				t.Fatal("value printed")
			}
		}
	})
	t.Run("DefaultProject", func(t *testing.T) {
		// Ensure the project defaults to "default".
		tc := newTestCLI(t)
		tc.Stdin = strings.NewReader("v")
		tc.spy.setSecret = func(in custos.SetSecretInput) (*custos.Secret, error) {
			return &custos.Secret{Project: in.Project, Name: in.Name, Version: 1}, nil
		}
		if out := tc.mustRun(t, "secret", "set", "A"); out != "set default/A version 1\n" {
			t.Fatalf("printed %q", out)
		}
	})
	t.Run("ErrEmpty", func(t *testing.T) {
		// Ensure an empty value (or a lone newline) is an error and nothing is sent.
		for _, in := range []string{"", "\n", "\r\n"} {
			tc := newTestCLI(t)
			tc.Stdin = strings.NewReader(in)
			if code := tc.run("secret", "set", "A"); code != 1 || !strings.Contains(tc.err.String(), "empty value") {
				t.Fatalf("stdin %q: exit %d: %s", in, code, tc.err.String())
			}
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		// Ensure a value over 64 KiB is refused before any call, and exactly
		// 64 KiB (plus a newline) is accepted.
		tc := newTestCLI(t)
		tc.Stdin = strings.NewReader(strings.Repeat("x", custos.MaxValueBytes+1))
		if code := tc.run("secret", "set", "A"); code != 1 || !strings.Contains(tc.err.String(), "too_large") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
		tc.Stdin = strings.NewReader(strings.Repeat("x", custos.MaxValueBytes) + "\r\n")
		tc.spy.setSecret = func(in custos.SetSecretInput) (*custos.Secret, error) {
			if len(in.Value) != custos.MaxValueBytes {
				t.Errorf("value of %d bytes", len(in.Value))
			}
			return &custos.Secret{Project: in.Project, Name: in.Name, Version: 1}, nil
		}
		tc.mustRun(t, "secret", "set", "A")
	})
}

func TestSecretList(t *testing.T) {
	exp := testNow.Add(time.Hour)
	past := testNow.Add(-time.Hour)
	secrets := []*custos.Secret{
		{ID: "sec_1", Project: "shop", Name: "A", Version: 2, Tags: map[string]string{"team": "web", "env": "prod"}, ExpiresAt: &exp},
		{ID: "sec_2", Project: "shop", Name: "OLD", Version: 1, ExpiresAt: &past},
	}
	t.Run("Table", func(t *testing.T) {
		// Ensure the table has the documented columns, "expired" for past
		// expiry, and the filter is passed on.
		tc := newTestCLI(t)
		var got custos.SecretFilter
		tc.spy.listSecrets = func(f custos.SecretFilter) ([]*custos.Secret, error) { got = f; return secrets, nil }
		out := tc.mustRun(t, "secret", "list", "--project", "shop", "--tag", "env=prod")
		if got.Project != "shop" || got.Tags["env"] != "prod" {
			t.Fatalf("filter %+v", got)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME PROJECT VERSION TAGS EXPIRES" {
			t.Fatalf("table:\n%s", out)
		}
		if f := strings.Fields(lines[1]); !reflect.DeepEqual(f, []string{"A", "shop", "2", "env=prod,team=web", "2026-03-01T13:00:00Z"}) {
			t.Fatalf("row %q", f)
		}
		if f := strings.Fields(lines[2]); !reflect.DeepEqual(f, []string{"OLD", "shop", "1", "-", "expired"}) {
			t.Fatalf("row %q", f)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		// Ensure --json prints the structs, and [] when there are none.
		tc := newTestCLI(t)
		tc.spy.listSecrets = func(custos.SecretFilter) ([]*custos.Secret, error) { return secrets, nil }
		var got []custos.Secret
		if err := json.Unmarshal([]byte(tc.mustRun(t, "secret", "list", "--json")), &got); err != nil || len(got) != 2 || got[0].Name != "A" {
			t.Fatalf("%v %+v", err, got)
		}
		tc.spy.listSecrets = func(custos.SecretFilter) ([]*custos.Secret, error) { return nil, nil }
		if out := tc.mustRun(t, "secret", "list", "--json"); out != "[]\n" {
			t.Fatalf("empty: %q", out)
		}
	})
	t.Run("Sanitized", func(t *testing.T) {
		// Ensure control characters from the server do not reach the terminal.
		tc := newTestCLI(t)
		tc.spy.listSecrets = func(custos.SecretFilter) ([]*custos.Secret, error) {
			return []*custos.Secret{{Project: "p", Name: "A\x1b[2J\tB", Version: 1}}, nil
		}
		if out := tc.mustRun(t, "secret", "list"); strings.ContainsAny(out, "\x1b\t") {
			t.Fatalf("raw control characters: %q", out)
		}
	})
}

// injectSpy answers inject requests with value-of-NAME for every name.
func injectSpy(tc *testCLI, values map[string]string) *[]custos.AccessRequest {
	var mu sync.Mutex
	var reqs []custos.AccessRequest
	tc.spy.accessSecrets = func(req custos.AccessRequest) ([]*custos.SecretValue, error) {
		mu.Lock()
		reqs = append(reqs, req)
		mu.Unlock()
		var out []*custos.SecretValue
		for _, n := range req.Names {
			v, ok := values[n]
			if !ok {
				v = "value-of-" + n
			}
			out = append(out, &custos.SecretValue{Project: req.Project, Name: n, Version: 1, Value: v})
		}
		return out, nil
	}
	return &reqs
}

func TestSecretInject(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure inject asks in mode inject, writes a 0600 file in a 0700 dir
		// under Home, and prints only its path.
		tc := newTestCLI(t)
		reqs := injectSpy(tc, map[string]string{"B": "it's $(tricky)\nvalue"})
		out := tc.mustRun(t, "secret", "inject", "A", "B", "A", "--project", "web")
		path := filepath.Join(tc.Home, ".custos", "session", "web.env")
		if out != path+"\n" {
			t.Fatalf("printed %q, want the path %q", out, path)
		}
		if got := (*reqs)[0]; got.Mode != custos.ModeInject || got.Project != "web" || !reflect.DeepEqual(got.Names, []string{"A", "B"}) {
			t.Fatalf("request %+v", got)
		}
		assertMode(t, path, 0o600)
		assertMode(t, filepath.Dir(path), 0o700)
		assertEnvFile(t, path, map[string]string{"A": "value-of-A", "B": "it's $(tricky)\nvalue"})
	})
	t.Run("Merge", func(t *testing.T) {
		// Ensure a second inject keeps the names already there, updates values,
		// and keeps their order.
		tc := newTestCLI(t)
		values := map[string]string{}
		injectSpy(tc, values)
		tc.mustRun(t, "secret", "inject", "A", "B")
		values["A"] = "new-A"
		path := strings.TrimSpace(tc.mustRun(t, "secret", "inject", "C", "A"))
		lines := assertEnvFile(t, path, map[string]string{"A": "new-A", "B": "value-of-B", "C": "value-of-C"})
		if keys := []string{lines[0].Key, lines[1].Key, lines[2].Key}; !reflect.DeepEqual(keys, []string{"A", "B", "C"}) {
			t.Fatalf("order %v", keys)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 { // default.env and its lock
			t.Fatalf("stray files: %v", entries)
		}
	})
	t.Run("ConcurrentMerge", func(t *testing.T) {
		// Ensure concurrent injects into the same file lose no names.
		tc := newTestCLI(t)
		injectSpy(tc, map[string]string{})
		var wg sync.WaitGroup
		errs := make(chan string, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				c := *tc.CLI
				var out, errb strings.Builder
				c.Stdout, c.Stderr = &out, &errb
				if code := c.Run(t.Context(), []string{"secret", "inject", fmt.Sprintf("N%d", i)}); code != 0 {
					errs <- errb.String()
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
		want := map[string]string{}
		for i := 0; i < 20; i++ {
			want[fmt.Sprintf("N%d", i)] = fmt.Sprintf("value-of-N%d", i)
		}
		assertEnvFile(t, filepath.Join(tc.Home, ".custos", "session", "default.env"), want)
	})
	t.Run("CustosHomeAndLooseDir", func(t *testing.T) {
		// Ensure CUSTOS_HOME moves the session dir, and a looser existing dir
		// is tightened to 0700 and a looser file replaced by a 0600 one.
		tc := newTestCLI(t)
		injectSpy(tc, nil)
		home := filepath.Join(t.TempDir(), "ch")
		dir := filepath.Join(home, "session")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(dir, 0o755)
		writeFile(t, dir, "default.env", "OLD=1\n", 0o644)
		tc.env["CUSTOS_HOME"] = home
		if out := tc.mustRun(t, "secret", "inject", "A"); out != filepath.Join(dir, "default.env")+"\n" {
			t.Fatalf("printed %q", out)
		}
		assertMode(t, dir, 0o700)
		assertMode(t, filepath.Join(dir, "default.env"), 0o600)
		assertEnvFile(t, filepath.Join(dir, "default.env"), map[string]string{"OLD": "1", "A": "value-of-A"})
	})
	t.Run("ErrCorruptFile", func(t *testing.T) {
		// Ensure a file that does not parse is left alone, with advice.
		tc := newTestCLI(t)
		injectSpy(tc, nil)
		dir := filepath.Join(tc.Home, ".custos", "session")
		_ = os.MkdirAll(dir, 0o700)
		writeFile(t, dir, "default.env", "A=\"broken\n", 0o600)
		if code := tc.run("secret", "inject", "A"); code != 1 || !strings.Contains(tc.err.String(), "session clear") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "default.env")); string(b) != "A=\"broken\n" {
			t.Fatalf("file changed: %q", b)
		}
	})
	t.Run("ErrSymlinkDir", func(t *testing.T) {
		// Ensure a session dir that is a symlink is refused.
		tc := newTestCLI(t)
		injectSpy(tc, nil)
		_ = os.MkdirAll(filepath.Join(tc.Home, ".custos"), 0o700)
		if err := os.Symlink(t.TempDir(), filepath.Join(tc.Home, ".custos", "session")); err != nil {
			t.Fatal(err)
		}
		if code := tc.run("secret", "inject", "A"); code != 1 || !strings.Contains(tc.err.String(), "not a directory") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
	t.Run("ErrNotDelivered", func(t *testing.T) {
		// Ensure a name the server did not deliver is an error and writes nothing.
		tc := newTestCLI(t)
		tc.spy.accessSecrets = func(custos.AccessRequest) ([]*custos.SecretValue, error) { return nil, nil }
		if code := tc.run("secret", "inject", "A"); code != 1 || !strings.Contains(tc.err.String(), "default/A") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
		if _, err := os.Stat(filepath.Join(tc.Home, ".custos", "session", "default.env")); !os.IsNotExist(err) {
			t.Fatalf("file written: %v", err)
		}
	})
}

// assertMode fails unless path has permission bits perm.
func assertMode(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != perm {
		t.Fatalf("%s: mode %04o, want %04o", path, got, perm)
	}
}

// assertEnvFile fails unless path parses to exactly want, and returns its lines.
func assertEnvFile(t *testing.T, path string, want map[string]string) []EnvLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := ParseEnv(f)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range lines {
		got[l.Key] = l.Value
	}
	if !reflect.DeepEqual(got, want) || len(lines) != len(want) {
		t.Fatalf("%s holds %+v, want %q", path, lines, want)
	}
	return lines
}

func TestSecretReveal(t *testing.T) {
	// Ensure reveal asks in mode reveal and prints the value and a newline.
	tc := newTestCLI(t)
	reqs := injectSpy(tc, map[string]string{"A": "the value"})
	if out := tc.mustRun(t, "secret", "reveal", "--project", "p", "A"); out != "the value\n" {
		t.Fatalf("printed %q", out)
	}
	if got := (*reqs)[0]; got.Mode != custos.ModeReveal || got.Project != "p" || !reflect.DeepEqual(got.Names, []string{"A"}) {
		t.Fatalf("request %+v", got)
	}
}

func TestSecretRemove(t *testing.T) {
	// Ensure rm deletes project/name and says so.
	tc := newTestCLI(t)
	var got string
	tc.spy.deleteSecret = func(project, name string) error { got = project + "/" + name; return nil }
	if out := tc.mustRun(t, "secret", "rm", "A", "--project", "p"); out != "deleted p/A\n" || got != "p/A" {
		t.Fatalf("printed %q, deleted %q", out, got)
	}
	tc.spy.deleteSecret = func(string, string) error { return custos.Errorf(custos.ENOTFOUND, "secret p/B not found") }
	if code := tc.run("secret", "rm", "B", "--project", "p"); code != 1 || tc.err.String() != "custos: secret p/B not found [not_found]\n" {
		t.Fatalf("exit %d: %q", code, tc.err.String())
	}
}

func TestSecretHistory(t *testing.T) {
	// Ensure history lists versions, and --json prints them.
	tc := newTestCLI(t)
	tc.spy.secretHistory = func(project, name string) ([]*custos.SecretVersion, error) {
		if project != "default" || name != "A" {
			t.Errorf("asked for %s/%s", project, name)
		}
		return []*custos.SecretVersion{{Version: 2, CreatedBy: "key_0123456789abcdef", CreatedAt: testNow}, {Version: 1, CreatedBy: "key_0123456789abcdef", CreatedAt: testNow.Add(-time.Hour)}}, nil
	}
	out := tc.mustRun(t, "secret", "history", "A")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "VERSION") || !reflect.DeepEqual(strings.Fields(lines[1]), []string{"2", "2026-03-01T12:00:00Z", "key_0123456789abcdef", "-"}) {
		t.Fatalf("table:\n%s", out)
	}
	var vs []custos.SecretVersion
	if err := json.Unmarshal([]byte(tc.mustRun(t, "secret", "history", "A", "--json")), &vs); err != nil || len(vs) != 2 || vs[0].Version != 2 {
		t.Fatalf("%v %+v", err, vs)
	}
}
