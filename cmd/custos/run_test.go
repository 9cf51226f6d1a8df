package main

import (
	"bufio"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// childArgs runs the test binary as the child in mode (see testChild).
func childArgs(t *testing.T, mode string, args ...string) []string {
	t.Setenv("CUSTOS_TEST_CHILD", mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{exe}, args...)
}

// runSpy answers access requests from values (project/name → value).
func runSpy(tc *testCLI, values map[string]string) *[]custos.AccessRequest {
	var reqs []custos.AccessRequest
	tc.spy.accessSecrets = func(req custos.AccessRequest) ([]*custos.SecretValue, error) {
		reqs = append(reqs, req)
		var out []*custos.SecretValue
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, n, _ := strings.Cut(k, "/")
			if p != req.Project || (len(req.Names) > 0 && !contains(req.Names, n)) {
				continue
			}
			out = append(out, &custos.SecretValue{Project: p, Name: n, Version: 1, Value: values[k]})
		}
		return out, nil
	}
	return &reqs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// childEnv parses the child's "K=V" output lines.
func childEnv(out string) map[string]string {
	env := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestRun(t *testing.T) {
	t.Run("AllSecrets", func(t *testing.T) {
		// Ensure run without --only fetches every secret of the project in mode
		// run, and they override the environment.
		tc := newTestCLI(t)
		t.Setenv("SHADOWED", "from-env")
		t.Setenv("KEPT", "kept")
		reqs := runSpy(tc, map[string]string{"web/A": "a-val", "web/SHADOWED": "from-custos", "other/X": "x"})
		argv := childArgs(t, "env", "A", "SHADOWED", "KEPT", "X")
		tc.mustRun(t, append([]string{"run", "--project", "web", "--"}, argv...)...)
		want := map[string]string{"A": "a-val", "SHADOWED": "from-custos", "KEPT": "kept", "X": ""}
		if got := childEnv(tc.out.String()); !reflect.DeepEqual(got, want) {
			t.Fatalf("child saw %v, want %v", got, want)
		}
		if len(*reqs) != 1 || (*reqs)[0].Mode != custos.ModeRun || (*reqs)[0].Project != "web" || len((*reqs)[0].Names) != 0 {
			t.Fatalf("requests %+v", *reqs)
		}
	})
	t.Run("Only", func(t *testing.T) {
		// Ensure --only restricts the names asked for, and a missing one fails.
		tc := newTestCLI(t)
		reqs := runSpy(tc, map[string]string{"default/A": "1", "default/B": "2"})
		argv := childArgs(t, "env", "A", "B")
		tc.mustRun(t, append([]string{"run", "--only", "A", "--"}, argv...)...)
		if got := childEnv(tc.out.String()); got["A"] != "1" || got["B"] != "" {
			t.Fatalf("child saw %v", got)
		}
		if !reflect.DeepEqual((*reqs)[0].Names, []string{"A"}) {
			t.Fatalf("names %v", (*reqs)[0].Names)
		}
		if code := tc.run(append([]string{"run", "--only", "NOPE", "--"}, argv...)...); code != 1 || !strings.Contains(tc.err.String(), "default/NOPE") {
			t.Fatalf("missing name: exit %d: %s", code, tc.err.String())
		}
	})
	t.Run("NoDashDash", func(t *testing.T) {
		// Ensure flags end at CMD, so CMD's own flags are left alone.
		tc := newTestCLI(t)
		runSpy(tc, nil)
		if code := tc.run("run", "sh", "-c", "exit 4"); code != 4 {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
	t.Run("ExitCode", func(t *testing.T) {
		// Ensure the child's exit code is custos's.
		tc := newTestCLI(t)
		runSpy(tc, nil)
		for _, code := range []int{0, 1, 3, 42, 255} {
			if got := tc.run("run", "--", "sh", "-c", "exit "+itoa(code)); got != code {
				t.Fatalf("exit %d, want %d", got, code)
			}
		}
	})
	t.Run("KilledBySignal", func(t *testing.T) {
		// Ensure a child killed by signal N makes custos exit 128+N.
		tc := newTestCLI(t)
		runSpy(tc, nil)
		if got := tc.run("run", "--", "sh", "-c", "kill -TERM $$"); got != 128+int(syscall.SIGTERM) {
			t.Fatalf("exit %d, want %d", got, 128+int(syscall.SIGTERM))
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		// Ensure a command that does not exist exits 127 with a message.
		tc := newTestCLI(t)
		runSpy(tc, nil)
		if got := tc.run("run", "--", "custos-no-such-command-x"); got != 127 || !strings.Contains(tc.err.String(), "custos-no-such-command-x") {
			t.Fatalf("exit %d: %s", got, tc.err.String())
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		// Ensure stdin reaches the child.
		tc := newTestCLI(t)
		runSpy(tc, nil)
		tc.Stdin = strings.NewReader("hello\n")
		if out := tc.mustRun(t, "run", "--", "cat"); out != "hello\n" {
			t.Fatalf("child printed %q", out)
		}
	})
	t.Run("ErrAccess", func(t *testing.T) {
		// Ensure a denied fetch runs nothing.
		tc := newTestCLI(t)
		tc.spy.accessSecrets = func(custos.AccessRequest) ([]*custos.SecretValue, error) {
			return nil, custos.Errorf(custos.EPOLICY, "blocked by policy")
		}
		marker := filepath.Join(t.TempDir(), "ran")
		if code := tc.run("run", "--", "touch", marker); code != 1 || !strings.Contains(tc.err.String(), "[policy_denied]") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatal("the command ran")
		}
	})
}

func TestRunSignalForwarding(t *testing.T) {
	// Ensure SIGUSR1 and SIGTERM sent to custos reach the child, which then
	// decides how to exit, rather than killing custos.
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			// Keep the signal from killing the test binary whatever happens.
			guard := make(chan os.Signal, 4)
			signal.Notify(guard, sig)
			defer signal.Stop(guard)

			tc := newTestCLI(t)
			runSpy(tc, nil)
			pr, pw := io.Pipe()
			tc.Stdout = pw
			argv := childArgs(t, "signal")
			done := make(chan int, 1)
			go func() {
				done <- tc.Run(t.Context(), append([]string{"run", "--"}, argv...))
				pw.Close()
			}()
			lines := bufio.NewScanner(pr)
			if !lines.Scan() || lines.Text() != "ready" {
				t.Fatalf("child did not start: %q", lines.Text())
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			if !lines.Scan() || lines.Text() != "got "+sig.String() {
				t.Fatalf("child printed %q", lines.Text())
			}
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			select {
			case code := <-done:
				if code != 100+int(sig) {
					t.Fatalf("exit %d, want %d (the child's)", code, 100+int(sig))
				}
			case <-time.After(20 * time.Second):
				t.Fatal("custos run did not return")
			}
		})
	}
}

func TestRunEnvFile(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure custos:// references are resolved with one call per project,
		// literals pass through, and without --project/--only nothing else is fetched.
		tc := newTestCLI(t)
		reqs := runSpy(tc, map[string]string{"api/TOKEN": "tok", "api/URL": "postgres://x", "web/KEY": "k", "default/UNWANTED": "u"})
		writeFile(t, tc.Dir, ".env.tmpl", "# tmpl\nAPI_TOKEN=custos://api/TOKEN\nexport DB=custos://api/URL\nWEB=custos://web/KEY\nMODE='dev mode'\nAGAIN=custos://api/TOKEN\n", 0o600)
		argv := childArgs(t, "env", "API_TOKEN", "DB", "WEB", "MODE", "AGAIN", "UNWANTED")
		tc.mustRun(t, append([]string{"run", "--env-file", ".env.tmpl", "--"}, argv...)...)
		want := map[string]string{"API_TOKEN": "tok", "DB": "postgres://x", "WEB": "k", "MODE": "dev mode", "AGAIN": "tok", "UNWANTED": ""}
		if got := childEnv(tc.out.String()); !reflect.DeepEqual(got, want) {
			t.Fatalf("child saw %v, want %v", got, want)
		}
		if len(*reqs) != 2 || (*reqs)[0].Project != "api" || !reflect.DeepEqual((*reqs)[0].Names, []string{"TOKEN", "URL"}) ||
			(*reqs)[1].Project != "web" || (*reqs)[0].Mode != custos.ModeRun || (*reqs)[1].Mode != custos.ModeRun {
			t.Fatalf("requests %+v", *reqs)
		}
	})
	t.Run("WithProject", func(t *testing.T) {
		// Ensure --project with --env-file adds the project's secrets, and the
		// template wins over them.
		tc := newTestCLI(t)
		runSpy(tc, map[string]string{"p/A": "from-project", "p/B": "b", "q/Z": "z"})
		writeFile(t, tc.Dir, "t.env", "A=custos://q/Z\n", 0o600)
		argv := childArgs(t, "env", "A", "B")
		tc.mustRun(t, append([]string{"run", "--project", "p", "--env-file", "t.env", "--"}, argv...)...)
		if got := childEnv(tc.out.String()); got["A"] != "z" || got["B"] != "b" {
			t.Fatalf("child saw %v", got)
		}
	})
	t.Run("ErrBadReference", func(t *testing.T) {
		// Ensure a malformed custos:// reference is an error naming the line,
		// before any call.
		for _, ref := range []string{"custos://", "custos://api", "custos://API/TOKEN", "custos://api/bad-name", "custos://api/A/B"} {
			tc := newTestCLI(t)
			writeFile(t, tc.Dir, "t.env", "OK=1\nX="+ref+"\n", 0o600)
			code := tc.run("run", "--env-file", "t.env", "--", "true")
			if code != 1 || !strings.Contains(tc.err.String(), "t.env: line 2: invalid reference") {
				t.Fatalf("%s: exit %d: %s", ref, code, tc.err.String())
			}
			if len(tc.spy.Calls()) != 0 {
				t.Fatalf("%s: called %v", ref, tc.spy.Calls())
			}
		}
	})
	t.Run("ErrSyntax", func(t *testing.T) {
		// Ensure a template that does not parse names the file and line.
		tc := newTestCLI(t)
		writeFile(t, tc.Dir, "t.env", "A=1\nB='x\n", 0o600)
		if code := tc.run("run", "--env-file", "t.env", "--", "true"); code != 1 || !strings.Contains(tc.err.String(), "t.env: line 2: unterminated") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
		if code := tc.run("run", "--env-file", "missing.env", "--", "true"); code != 1 || !strings.Contains(tc.err.String(), "--env-file") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
}

func TestMergeEnv(t *testing.T) {
	// Ensure overrides replace variables of the same name and keep the rest.
	got := mergeEnv([]string{"A=1", "B=2", "B=3", "C=x=y"}, map[string]string{"B": "new", "D": "d"})
	if want := []string{"A=1", "C=x=y", "B=new", "D=d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
