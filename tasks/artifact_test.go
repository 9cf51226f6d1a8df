package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/tasks"
)

// taskEnv is an org with a permit on (Project, Task) and one run.
type taskEnv struct {
	*Env
	Install string
	Permit  string
	Run     *custos.Run
}

func mustTaskEnv(tb testing.TB, opts ...func(*tasks.Config)) *taskEnv {
	tb.Helper()
	e := MustOpenEnv(tb, opts...)
	_, itok := e.MustInstall(tb, "jira-prod")
	_, permit := e.MustPermit(tb, itok, Project, Task)
	return &taskEnv{Env: e, Install: itok, Permit: permit, Run: e.MustRun(tb, permit, Task)}
}

// Ensure an artifact's blob holds ciphertext only, owner-readable, and is
// bound to its row: moved under another artifact it does not open.
func TestArtifactEncryption(t *testing.T) {
	te := mustTaskEnv(t)
	secret := "PLAINTEXT-MARKER " + strings.Repeat("the quick brown fox ", 50)
	a := te.MustPut(t, te.Permit, Task, te.Run.ID, "src/a.go", secret)
	b := te.MustPut(t, te.Permit, Task, te.Run.ID, "src/b.go", secret)

	t.Run("OK", func(t *testing.T) {
		// Ensure the blob dir holds no plaintext, no sidecar files, and
		// only owner-accessible files and dirs.
		files := te.BlobFiles(t)
		want := []string{"artifacts/" + te.OrgID + "/" + a.ID, "artifacts/" + te.OrgID + "/" + b.ID}
		if len(files) != 2 || !(files[0] == want[0] && files[1] == want[1] || files[0] == want[1] && files[1] == want[0]) {
			t.Fatalf("blob files = %v, want %v", files, want)
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(te.BlobDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte("PLAINTEXT-MARKER")) || bytes.Contains(data, []byte("quick brown")) {
				t.Fatalf("blob %s contains plaintext", f)
			}
			fi, err := os.Stat(filepath.Join(te.BlobDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("blob %s has mode %v, want 0600", f, fi.Mode().Perm())
			}
		}
		for _, d := range []string{te.BlobDir, filepath.Join(te.BlobDir, "artifacts"), filepath.Join(te.BlobDir, "artifacts", te.OrgID)} {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Fatalf("dir %s has mode %v, want 0700", d, fi.Mode().Perm())
			}
		}
	})
	t.Run("ErrMovedCiphertext", func(t *testing.T) {
		// Ensure a's ciphertext copied over b's blob fails to open as b
		// (the AAD binds it to org, artifact id, run and name).
		data, err := os.ReadFile(filepath.Join(te.BlobDir, "artifacts", te.OrgID, a.ID))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(te.BlobDir, "artifacts", te.OrgID, b.ID), data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, body, err := te.Service.GetArtifact(FromIP(), te.Permit, Task, te.Run.ID, "src/b.go")
		if !errors.Is(err, envelope.ErrDecrypt) || body != nil {
			t.Fatalf("GetArtifact of a moved ciphertext = %q, %v; want ErrDecrypt", body, err)
		}
		Code(t, err, custos.EINTERNAL)
		// The other one still opens.
		if _, body, err := te.Service.GetArtifact(FromIP(), te.Permit, Task, te.Run.ID, "src/a.go"); err != nil || string(body) != secret {
			t.Fatalf("GetArtifact a = %v", err)
		}
	})
}

// Ensure artifact names, kinds and sizes are checked before anything is
// stored.
func TestArtifactLimits(t *testing.T) {
	te := mustTaskEnv(t, func(c *tasks.Config) { c.MaxArtifactBytes, c.MaxRunBytes = 100, 250 })
	put := func(name, kind string, size int) error {
		_, err := te.Service.PutArtifact(FromIP(), te.Permit, Task, te.Run.ID, name, kind, strings.NewReader(strings.Repeat("x", size)))
		return err
	}
	unchanged := func(t *testing.T, f func() error, code string) {
		t.Helper()
		before := te.Snapshot(t)
		Code(t, f(), code)
		if after := te.Snapshot(t); after != before {
			t.Fatalf("a refused put changed the store:\n%s\n---\n%s", before, after)
		}
	}
	t.Run("OK", func(t *testing.T) {
		// Ensure the limits are inclusive, and a replaced artifact does not
		// count against its run.
		for _, n := range []string{"a", "b"} {
			if err := put(n, "", 100); err != nil {
				t.Fatal(err)
			}
		}
		if err := put("a", "diff", 100); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrArtifactTooLarge", func(t *testing.T) {
		// Ensure one byte over the artifact limit is refused.
		unchanged(t, func() error { return put("big", "", 101) }, custos.ETOOLARGE)
	})
	t.Run("ErrRunTooLarge", func(t *testing.T) {
		// Ensure the run limit counts the run's live artifacts.
		unchanged(t, func() error { return put("c", "", 51) }, custos.ETOOLARGE)
		if err := put("c", "", 50); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrName", func(t *testing.T) {
		// Ensure unsafe names are refused.
		for _, name := range []string{"", "../x", "a/../../x", "/abs", `a\b`, "a\x00b", "a//b", "./a", "a/", "C:x", "a\nb",
			strings.Repeat("a", custos.MaxArtifactNameBytes+1), strings.Repeat("a/", custos.MaxArtifactNameSegments) + "a", "\xff"} {
			unchanged(t, func() error { return put(name, "", 1) }, custos.EINVALID)
		}
	})
	t.Run("ErrKind", func(t *testing.T) {
		// Ensure an unknown kind is refused.
		unchanged(t, func() error { return put("k", "exe", 1) }, custos.EINVALID)
	})
	t.Run("ErrNoBody", func(t *testing.T) {
		// Ensure a nil body is refused.
		unchanged(t, func() error {
			_, err := te.Service.PutArtifact(FromIP(), te.Permit, Task, te.Run.ID, "n", "", nil)
			return err
		}, custos.EINVALID)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		// Ensure a missing name is ENOTFOUND.
		_, _, err := te.Service.GetArtifact(FromIP(), te.Permit, Task, te.Run.ID, "missing")
		Code(t, err, custos.ENOTFOUND)
	})
}

// Ensure an artifact past its expiry cannot be read or listed even before
// the purge reaches it, and can be until then.
func TestArtifactExpiry(t *testing.T) {
	// A retention shorter than the permit's life, so the permit still works.
	te := mustTaskEnv(t, func(c *tasks.Config) { c.Retention = time.Hour })
	te.MustPut(t, te.Permit, Task, te.Run.ID, "out.txt", "result")
	task, err := te.Service.CompleteTask(FromIP(), te.Permit, Task)
	if err != nil {
		t.Fatal(err)
	}
	te.Clock.Set(task.CompletedAt.Add(time.Hour - time.Microsecond))
	if _, body, err := te.Service.GetArtifact(FromIP(), te.Permit, Task, te.Run.ID, "out.txt"); err != nil || string(body) != "result" {
		t.Fatalf("GetArtifact just before expiry = %q, %v", body, err)
	}
	te.Clock.Set(task.CompletedAt.Add(time.Hour))
	_, body, err := te.Service.GetArtifact(FromIP(), te.Permit, Task, te.Run.ID, "out.txt")
	Code(t, err, custos.EEXPIRED)
	if body != nil {
		t.Fatal("an expired artifact's body was returned")
	}
	if as, err := te.Service.ListArtifacts(FromIP(), te.Permit, Task, te.Run.ID); err != nil || len(as) != 0 {
		t.Fatalf("ListArtifacts = %v, %v; want none", as, err)
	}
	// Not purged yet: row and blob are still there.
	if _, err := te.Store.FindArtifact(context.Background(), te.OrgID, te.Run.ID, "out.txt"); err != nil {
		t.Fatalf("the row should still exist before the purge: %v", err)
	}
	if files := te.BlobFiles(t); len(files) != 1 {
		t.Fatalf("blob files = %v", files)
	}
}
