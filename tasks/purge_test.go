package tasks_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/tasks"
)

// purgeEnv has a completed task with two live artifacts (one put twice, so
// one replaced), and the clock past their expiry.
type purgeEnv struct {
	*taskEnv
	Replaced, A, B *custos.Artifact
}

func mustPurgeEnv(tb testing.TB) *purgeEnv {
	tb.Helper()
	te := mustTaskEnv(tb)
	pe := &purgeEnv{taskEnv: te}
	pe.Replaced = te.MustPut(tb, te.Permit, Task, te.Run.ID, "a.txt", "first")
	pe.A = te.MustPut(tb, te.Permit, Task, te.Run.ID, "a.txt", "second")
	pe.B = te.MustPut(tb, te.Permit, Task, te.Run.ID, "b.txt", "bee")
	if _, err := te.Service.CompleteTask(FromIP(), te.Permit, Task); err != nil {
		tb.Fatal(err)
	}
	te.Clock.Add(custos.DefaultArtifactRetention)
	return pe
}

// ids returns the artifact ids of a report, sorted.
func ids(rep *custos.PurgeReport) []string {
	var out []string
	for _, it := range rep.Removed {
		out = append(out, it.ArtifactID)
	}
	slices.Sort(out)
	return out
}

// purgeEvents counts the org's artifact purge audit events.
func purgeEvents(tb testing.TB, e *Env) int {
	tb.Helper()
	n := 0
	for _, ev := range e.Audit(tb, e.OrgID) {
		if ev.Action == custos.ActionArtifactPurge {
			n++
		}
	}
	return n
}

// Ensure the purge deletes blob files and rows of replaced and expired
// artifacts, audits each, is idempotent, resumes after a crash, and that a
// dry run changes nothing.
func TestPurge(t *testing.T) {
	t.Run("DryRun", func(t *testing.T) {
		// Ensure a dry run reports everything and changes nothing.
		pe := mustPurgeEnv(t)
		before, n := pe.Snapshot(t), len(pe.Audit(t, pe.OrgID))
		rep, err := pe.Service.Purge(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{pe.Replaced.ID, pe.A.ID, pe.B.ID}
		slices.Sort(want)
		if got := ids(rep); !rep.DryRun || !slices.Equal(got, want) || rep.Bytes != 5+6+3 {
			t.Fatalf("dry run = %+v, want %v", rep, want)
		}
		if pe.Snapshot(t) != before || len(pe.Audit(t, pe.OrgID)) != n {
			t.Fatal("a dry run changed the store, the blobs or the audit log")
		}
	})
	t.Run("OK", func(t *testing.T) {
		// Ensure blobs are gone from disk, rows from the store, each purge
		// audited, and a second run finds nothing.
		pe := mustPurgeEnv(t)
		if got := len(pe.BlobFiles(t)); got != 3 {
			t.Fatalf("%d blob files before the purge", got)
		}
		rep, err := pe.Service.Purge(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(rep.Removed); got != 3 || rep.DryRun {
			t.Fatalf("purge = %+v", rep)
		}
		reasons := map[string]string{}
		for _, it := range rep.Removed {
			reasons[it.ArtifactID] = it.Reason
		}
		if reasons[pe.Replaced.ID] != tasks.ReasonReplaced || reasons[pe.A.ID] != tasks.ReasonExpired || reasons[pe.B.ID] != tasks.ReasonExpired {
			t.Fatalf("reasons = %v", reasons)
		}
		if files := pe.BlobFiles(t); len(files) != 0 {
			t.Fatalf("blob files left on disk: %v", files)
		}
		if keys, err := pe.Store.ArtifactBlobKeys(context.Background()); err != nil || len(keys) != 0 {
			t.Fatalf("artifact rows left: %v, %v", keys, err)
		}
		if got := purgeEvents(t, pe.Env); got != 3 {
			t.Fatalf("%d purge audit events, want 3", got)
		}
		// Idempotent.
		before := pe.Snapshot(t)
		rep, err = pe.Service.Purge(context.Background(), false)
		if err != nil || len(rep.Removed) != 0 {
			t.Fatalf("second purge = %+v, %v", rep, err)
		}
		if pe.Snapshot(t) != before || purgeEvents(t, pe.Env) != 3 {
			t.Fatal("a second purge changed something")
		}
	})
	t.Run("ResumeAfterCrash", func(t *testing.T) {
		// Ensure a purge cut short after a blob delete (row left) is
		// finished and audited by the next run.
		pe := mustPurgeEnv(t)
		if err := os.Remove(filepath.Join(pe.BlobDir, "artifacts", pe.OrgID, pe.A.ID)); err != nil {
			t.Fatal(err)
		}
		rep, err := pe.Service.Purge(context.Background(), false)
		if err != nil || len(rep.Removed) != 3 {
			t.Fatalf("purge = %+v, %v", rep, err)
		}
		if keys, err := pe.Store.ArtifactBlobKeys(context.Background()); err != nil || len(keys) != 0 {
			t.Fatalf("artifact rows left: %v, %v", keys, err)
		}
		if files := pe.BlobFiles(t); len(files) != 0 {
			t.Fatalf("blob files left: %v", files)
		}
		if got := purgeEvents(t, pe.Env); got != 3 {
			t.Fatalf("%d purge audit events, want 3", got)
		}
	})
	t.Run("NotYet", func(t *testing.T) {
		// Ensure live artifacts and artifacts of open tasks are kept.
		te := mustTaskEnv(t)
		te.MustPut(t, te.Permit, Task, te.Run.ID, "a.txt", "keep")
		te.Clock.Add(10 * custos.DefaultArtifactRetention)
		before := te.Snapshot(t)
		rep, err := te.Service.Purge(context.Background(), false)
		if err != nil || len(rep.Removed) != 0 || te.Snapshot(t) != before {
			t.Fatalf("purge of an open task = %+v, %v", rep, err)
		}
	})
	t.Run("Orphans", func(t *testing.T) {
		// Ensure blobs without a row (a crash between blob write and row
		// insert) are swept once older than OrphanAge; younger ones,
		// blobs with rows and unknown keys are kept.
		te := mustTaskEnv(t)
		live := te.MustPut(t, te.Permit, Task, te.Run.ID, "a.txt", "keep")
		dir := filepath.Join(te.BlobDir, "artifacts", te.OrgID)
		old := custos.NewID(custos.PrefixArtifact)
		young := custos.NewID(custos.PrefixArtifact)
		stranded := custos.NewID(custos.PrefixArtifact) + ".18a2b3c4d5e6f708.tmp"
		for _, f := range []string{old, young, stranded, "notes.txt"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("ciphertext"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		now := te.Clock.Now()
		for f, mod := range map[string]time.Time{
			old: now.Add(-tasks.OrphanAge - time.Second), young: now.Add(-tasks.OrphanAge + time.Minute),
			stranded: now.Add(-2 * tasks.OrphanAge), "notes.txt": now.Add(-100 * time.Hour), live.ID: now.Add(-100 * time.Hour),
		} {
			if err := os.Chtimes(filepath.Join(dir, f), mod, mod); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := te.Service.Purge(context.Background(), true)
		if err != nil || len(rep.Removed) != 2 {
			t.Fatalf("dry sweep = %+v, %v", rep, err)
		}
		rep, err = te.Service.Purge(context.Background(), false)
		if err != nil || len(rep.Removed) != 2 {
			t.Fatalf("sweep = %+v, %v", rep, err)
		}
		for _, it := range rep.Removed {
			if it.Reason != tasks.ReasonOrphan || it.OrgID != te.OrgID {
				t.Fatalf("sweep item = %+v", it)
			}
		}
		base := "artifacts/" + te.OrgID + "/"
		want := []string{base + live.ID, base + young, base + "notes.txt"}
		slices.Sort(want)
		if got := te.BlobFiles(t); !slices.Equal(got, want) {
			t.Fatalf("blob files = %v, want %v", got, want)
		}
		if _, body, err := te.Service.GetArtifact(FromIP(), te.Permit, Task, te.Run.ID, "a.txt"); err != nil || string(body) != "keep" {
			t.Fatalf("live artifact = %q, %v", body, err)
		}
	})
}

// signalHandler is a slog handler that reports each message on a channel.
type signalHandler struct {
	slog.Handler
	msgs chan string
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default:
	}
	return h.Handler.Handle(ctx, r)
}

// Ensure the purger runs at once when started, logs what it removed, and
// stops with its context.
func TestRunPurger(t *testing.T) {
	msgs := make(chan string, 16)
	var logs LogBuffer
	pe := func() *purgeEnv {
		te := mustTaskEnv(t, func(c *tasks.Config) {
			c.Logger = slog.New(signalHandler{slog.NewJSONHandler(&logs, nil), msgs})
		})
		pe := &purgeEnv{taskEnv: te}
		pe.A = te.MustPut(t, te.Permit, Task, te.Run.ID, "a.txt", "first")
		te.MustPut(t, te.Permit, Task, te.Run.ID, "a.txt", "second") // replaces the first
		return pe
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pe.Service.RunPurger(ctx, 24*time.Hour) }()
	if msg := <-msgs; msg != "artifact purge" {
		t.Fatalf("first log message = %q", msg)
	}
	cancel()
	<-done
	if got := len(pe.BlobFiles(t)); got != 1 {
		t.Fatalf("%d blob files after the first run, want 1", got)
	}
	if out := logs.String(); !strings.Contains(out, `"removed":1`) || !strings.Contains(out, `"replaced":1`) {
		t.Fatalf("log = %s", out)
	}
}
