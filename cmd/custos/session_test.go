package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestSessionWake(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure wake sends the tags (--tags or --tag, repeatable) and the TTL,
		// and prints the session and its expiry.
		tc := newTestCLI(t)
		var got custos.WakeInput
		tc.spy.wakeSession = func(in custos.WakeInput) (*custos.Session, error) {
			got = in
			return &custos.Session{ID: "ses_0123456789abcdef", Tags: in.Tags, ExpiresAt: testNow.Add(time.Hour)}, nil
		}
		out := tc.mustRun(t, "session", "wake", "--tags", "env=prod", "--tag", "team=web", "--ttl", "1h")
		want := custos.WakeInput{Tags: map[string]string{"env": "prod", "team": "web"}, TTL: custos.Duration(time.Hour)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("sent %+v", got)
		}
		if out != "session ses_0123456789abcdef awake until 2026-03-01T13:00:00Z (in 1h), covering env=prod,team=web\n" {
			t.Fatalf("printed %q", out)
		}
	})
	t.Run("Defaults", func(t *testing.T) {
		// Ensure the default TTL is 30m and no tags cover every secret.
		tc := newTestCLI(t)
		tc.spy.wakeSession = func(in custos.WakeInput) (*custos.Session, error) {
			if time.Duration(in.TTL) != 30*time.Minute || len(in.Tags) != 0 {
				t.Errorf("sent %+v", in)
			}
			return &custos.Session{ID: "ses_0123456789abcdef", ExpiresAt: testNow.Add(30 * time.Minute)}, nil
		}
		if out := tc.mustRun(t, "session", "wake"); !strings.HasSuffix(out, "covering every secret\n") {
			t.Fatalf("printed %q", out)
		}
	})
}

func TestSessionSleep(t *testing.T) {
	// Ensure sleep ends the session.
	tc := newTestCLI(t)
	called := false
	tc.spy.sleepSession = func() error { called = true; return nil }
	if out := tc.mustRun(t, "session", "sleep"); out != "session ended\n" || !called {
		t.Fatalf("printed %q, called %v", out, called)
	}
}

func TestSessionClear(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure clear deletes the injected files (and their lock and temp
		// files), leaves anything else, counts, and calls no server.
		tc := newTestCLI(t)
		tc.services = nil // no server needed, nor a key
		dir := filepath.Join(tc.Home, ".custos", "session")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a.env", "b.env", ".a.env.lock", ".b.env.tmp-123", "notes.txt"} {
			writeFile(t, dir, n, "X=1\n", 0o600)
		}
		_ = os.Mkdir(filepath.Join(dir, "sub.env"), 0o700)
		if out := tc.mustRun(t, "session", "clear"); out != "removed 2 injected files from "+dir+"\n" {
			t.Fatalf("printed %q", out)
		}
		var left []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			left = append(left, e.Name())
		}
		if !reflect.DeepEqual(left, []string{"notes.txt", "sub.env"}) {
			t.Fatalf("left %v", left)
		}
	})
	t.Run("NoDir", func(t *testing.T) {
		// Ensure clear without a session dir removes nothing and succeeds.
		tc := newTestCLI(t)
		tc.env["CUSTOS_HOME"] = filepath.Join(t.TempDir(), "none")
		if out := tc.mustRun(t, "session", "clear"); !strings.HasPrefix(out, "removed 0 injected files") {
			t.Fatalf("printed %q", out)
		}
	})
	t.Run("AfterInject", func(t *testing.T) {
		// Ensure what inject wrote, clear removes.
		tc := newTestCLI(t)
		injectSpy(tc, nil)
		path := strings.TrimSpace(tc.mustRun(t, "secret", "inject", "A", "--project", "p1"))
		tc.mustRun(t, "secret", "inject", "A", "--project", "p2")
		if out := tc.mustRun(t, "session", "clear"); !strings.HasPrefix(out, "removed 2 injected files") {
			t.Fatalf("printed %q", out)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s left: %v", path, err)
		}
		if out := tc.mustRun(t, "session", "clear"); !strings.HasPrefix(out, "removed 0 injected files") {
			t.Fatalf("printed %q", out)
		}
	})
}
