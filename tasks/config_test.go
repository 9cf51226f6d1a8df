package tasks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/tasks"
)

// Ensure artifacts never live longer than the retention cap allows, and
// the configured retention is what completion sets.
func TestRetention(t *testing.T) {
	t.Run("ErrAboveCap", func(t *testing.T) {
		// Ensure a retention above the cap is refused, naming both.
		te := mustTaskEnv(t)
		_, err := tasks.New(tasks.Config{Store: te.Store, Keeper: te.Keeper, Bucket: mustBucket(t), Retention: 72 * time.Hour})
		var ce *tasks.ConfigError
		if !errors.As(err, &ce) || ce.Field != "Retention" || !strings.Contains(err.Error(), "72h") || !strings.Contains(err.Error(), "48h") {
			t.Fatalf("New = %v", err)
		}
		_, err = tasks.New(tasks.Config{Store: te.Store, Keeper: te.Keeper, Bucket: mustBucket(t), Retention: 2 * time.Hour, RetentionCap: time.Hour})
		if err == nil || !strings.Contains(err.Error(), "2h0m0s") || !strings.Contains(err.Error(), "1h0m0s") {
			t.Fatalf("New = %v", err)
		}
	})
	t.Run("RaisedCap", func(t *testing.T) {
		// Ensure an operator who raises the cap may raise the retention.
		te := mustTaskEnv(t, func(c *tasks.Config) { c.Retention, c.RetentionCap = 72*time.Hour, 96*time.Hour })
		checkExpiry(t, te, 72*time.Hour)
	})
	t.Run("Default", func(t *testing.T) {
		// Ensure the default is 48 hours.
		te := mustTaskEnv(t)
		if got := te.Service.Retention(); got != custos.DefaultArtifactRetention {
			t.Fatalf("retention = %s", got)
		}
		checkExpiry(t, te, custos.DefaultArtifactRetention)
	})
	t.Run("Shorter", func(t *testing.T) {
		// Ensure a shorter retention is used as is.
		te := mustTaskEnv(t, func(c *tasks.Config) { c.Retention = 90 * time.Minute })
		checkExpiry(t, te, 90*time.Minute)
	})
}

// checkExpiry puts an artifact, completes the task and checks its expiry.
func checkExpiry(tb testing.TB, te *taskEnv, want time.Duration) {
	tb.Helper()
	te.MustPut(tb, te.Permit, Task, te.Run.ID, "a.txt", "x")
	task, err := te.Service.CompleteTask(FromIP(), te.Permit, Task)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := te.Store.FindArtifact(context.Background(), te.OrgID, te.Run.ID, "a.txt")
	if err != nil {
		tb.Fatal(err)
	}
	if a.ExpiresAt == nil || a.ExpiresAt.Sub(*task.CompletedAt) != want {
		tb.Fatalf("artifact expires %v after completion %v, want +%s", a.ExpiresAt, task.CompletedAt, want)
	}
}

// mustBucket opens a fileblob bucket in a temp dir.
func mustBucket(tb testing.TB) *blob.Bucket {
	tb.Helper()
	b, err := tasks.OpenBucket(context.Background(), "file://"+filepath.Join(tb.TempDir(), "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// Ensure New refuses incomplete or contradictory configs, naming the field.
func TestNew(t *testing.T) {
	te := mustTaskEnv(t)
	ok := tasks.Config{Store: te.Store, Keeper: te.Keeper, Bucket: mustBucket(t)}
	for _, c := range []struct {
		field string
		edit  func(*tasks.Config)
	}{
		{"Store", func(c *tasks.Config) { c.Store = nil }},
		{"Keeper", func(c *tasks.Config) { c.Keeper = nil }},
		{"Bucket", func(c *tasks.Config) { c.Bucket = nil }},
		{"Retention", func(c *tasks.Config) { c.Retention = -time.Hour }},
		{"MaxArtifactBytes", func(c *tasks.Config) { c.MaxArtifactBytes, c.MaxRunBytes = 10, 5 }},
		{"MaxRunBytes", func(c *tasks.Config) { c.MaxRunBytes = -1 }},
		{"PublicURL", func(c *tasks.Config) { c.PublicURL = "ftp://example.com" }},
		{"PublicURL", func(c *tasks.Config) { c.PublicURL = "https://user:pw@example.com" }},
		{"PublicURL", func(c *tasks.Config) { c.PublicURL = "https://example.com/?a=b" }},
	} {
		cfg := ok
		c.edit(&cfg)
		_, err := tasks.New(cfg)
		var ce *tasks.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Fatalf("%s: New = %v", c.field, err)
		}
	}
	if _, err := tasks.New(ok); err != nil {
		t.Fatal(err)
	}
}

// Ensure OpenBucket creates file:// stores 0700 and never puts a URL's
// credentials in its errors.
func TestOpenBucket(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure relative and absolute file:// URLs work and create 0700
		// directories.
		dir := t.TempDir()
		t.Chdir(dir)
		for _, u := range []string{"file://data/blobs", "file://" + filepath.Join(dir, "abs", "blobs")} {
			b, err := tasks.OpenBucket(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.WriteAll(context.Background(), "k", []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
			b.Close()
		}
		for _, d := range []string{filepath.Join(dir, "data"), filepath.Join(dir, "data", "blobs"), filepath.Join(dir, "abs", "blobs")} {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Fatalf("%s has mode %v", d, fi.Mode().Perm())
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "blobs", "k.attrs")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a metadata sidecar was written: %v", err)
		}
	})
	t.Run("ErrBadURL", func(t *testing.T) {
		// Ensure malformed URLs are refused.
		for _, u := range []string{"", "blobs", "file://", "file://x?create_dir=1"} {
			if _, err := tasks.OpenBucket(context.Background(), u); err == nil {
				t.Fatalf("%q: no error", u)
			}
		}
	})
	t.Run("ErrNoCredentialsInErrors", func(t *testing.T) {
		// Ensure credentials in a URL never reach the error.
		for _, u := range []string{
			"nosuch://admin:hunter2-pw@example.com/bucket?token=tok-s3cr3t",
			"s3://bucket?secret_access_key=AKIA-s3cr3t-value&region=us-east-1&bogus=1",
			"s3://admin:hunter2-pw@bucket?bogus=1",
		} {
			_, err := tasks.OpenBucket(context.Background(), u)
			if err == nil {
				t.Fatalf("%q: no error", u)
			}
			for _, s := range []string{"hunter2-pw", "tok-s3cr3t", "AKIA-s3cr3t-value"} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error leaks %q: %v", s, err)
				}
			}
		}
	})
}
