package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/store/storetest"
)

// MustOpenStore opens a store on a fresh file in a temporary directory and
// closes it when the test ends.
func MustOpenStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	return MustOpenStoreAt(tb, filepath.Join(tb.TempDir(), "custos.db"), sqlite.Options{})
}

// MustOpenStoreAt opens a store on path and closes it when the test ends.
func MustOpenStoreAt(tb testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// code returns the custos error code of err.
func code(err error) string { return custos.ErrorCode(err) }

// TestStore runs the conformance suite against SQLite.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) custos.Store { return MustOpenStore(t) })
}

// TestStore_TwoProcesses runs the suite's shared-database part against two
// stores on one file, as two processes sharing a data dir would open it.
func TestStore_TwoProcesses(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (custos.Store, custos.Store) {
		path := filepath.Join(t.TempDir(), "custos.db")
		return MustOpenStoreAt(t, path, sqlite.Options{}), MustOpenStoreAt(t, path, sqlite.Options{})
	})
}

func TestOpen(t *testing.T) {
	// Ensure Open creates the file 0600, in WAL mode, at the latest schema.
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "custos.db")
		s := MustOpenStoreAt(t, path, sqlite.Options{})
		storetest.MustBootstrap(t, s)
		if got, want := s.Path(), path; got != want {
			t.Fatalf("Path()=%q, want %q", got, want)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			} else if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
				t.Fatalf("mode of %s=%v, want %v", filepath.Base(p), got, want)
			}
		}
		db := mustRawDB(t, path)
		var mode string
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		} else if got, want := mode, "wal"; got != want {
			t.Fatalf("journal_mode=%q, want %q", got, want)
		}
		var version int
		if err := db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
			t.Fatal(err)
		} else if got, want := version, sqlite.SchemaVersion(); got != want || got < 1 {
			t.Fatalf("schema version=%d, want %d", got, want)
		}
	})

	// Ensure reopening keeps the data and applies no migration twice.
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "FULL"})
		if err != nil {
			t.Fatal(err)
		}
		org, owner := storetest.MustBootstrap(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			s, err = sqlite.Open(ctx, path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if k, err := s.FindKeyByHash(ctx, owner.Hash); err != nil {
				t.Fatal(err)
			} else if got, want := k.ID, owner.ID; got != want {
				t.Fatalf("key=%q, want %q", got, want)
			}
			storetest.MustVerifyChain(t, s, org.ID, 1)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := mustRawDB(t, path).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		} else if got, want := n, sqlite.SchemaVersion(); got != want {
			t.Fatalf("migrations recorded=%d, want %d", got, want)
		}
	})

	// Ensure Migrations lists every embedded migration, in order, applied.
	t.Run("Migrations", func(t *testing.T) {
		ms, err := MustOpenStore(t).Migrations(context.Background())
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(ms), sqlite.SchemaVersion(); got != want {
			t.Fatalf("migrations=%d, want %d", got, want)
		}
		for i, m := range ms {
			if m.Version != i+1 || m.Name == "" || m.AppliedAt == nil {
				t.Fatalf("migration %d=%+v", i, m)
			}
		}
		if got, want := ms[0].Name, "init"; got != want {
			t.Fatalf("first name=%q, want %q", got, want)
		}
	})

	// Ensure NoMigrate opens a database as it is: a fresh file stays empty
	// with every migration pending, a newer one is opened and its unknown
	// version listed.
	t.Run("NoMigrate", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s := MustOpenStoreAt(t, path, sqlite.Options{NoMigrate: true})
		ms, err := s.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(ms), sqlite.SchemaVersion(); got != want {
			t.Fatalf("migrations=%d, want %d", got, want)
		}
		for _, m := range ms {
			if m.AppliedAt != nil {
				t.Fatalf("migration %d applied on a fresh file opened with NoMigrate", m.Version)
			}
		}
		if _, err := s.CountOrgs(ctx); err == nil {
			t.Fatal("expected an error without the schema")
		}

		MustOpenStoreAt(t, path, sqlite.Options{})
		if _, err := mustRawDB(t, path).Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
			t.Fatal(err)
		}
		ms, err = MustOpenStoreAt(t, path, sqlite.Options{NoMigrate: true}).Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(ms), sqlite.SchemaVersion()+1; got != want {
			t.Fatalf("migrations=%d, want %d", got, want)
		} else if last := ms[len(ms)-1]; last.Version != 9999 || last.Name != "" || last.AppliedAt == nil {
			t.Fatalf("unknown migration=%+v", last)
		}
		for _, m := range ms {
			if m.AppliedAt == nil {
				t.Fatalf("migration %d pending after Open", m.Version)
			}
		}
	})

	// Ensure an unknown synchronous mode is rejected.
	t.Run("ErrSynchronous", func(t *testing.T) {
		if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), sqlite.Options{Synchronous: "OFF"}); err == nil {
			t.Fatal("expected error")
		}
	})

	// Ensure a database from a newer binary is refused.
	t.Run("ErrNewerSchema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "custos.db")
		s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db := mustRawDB(t, path)
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := sqlite.Open(context.Background(), path, sqlite.Options{}); err == nil {
			t.Fatal("expected error")
		}
	})

	// Ensure a missing parent directory is an error, not a panic.
	t.Run("ErrNoDir", func(t *testing.T) {
		if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nope", "x.db"), sqlite.Options{}); err == nil {
			t.Fatal("expected error")
		}
	})
}

// mustRawDB opens path with the driver directly, bypassing the store.
func mustRawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestStore_Close(t *testing.T) {
	// Ensure writes after Close fail with ErrClosed and Close is idempotent.
	t.Run("ErrClosed", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMeta(context.Background(), "k", []byte("v")); !errors.Is(err, sqlite.ErrClosed) {
			t.Fatalf("err=%v, want ErrClosed", err)
		}
		if err := s.Ping(context.Background()); err == nil {
			t.Fatal("expected ping error")
		}
	})

	// Ensure a cancelled context is honoured before a write is queued.
	t.Run("ErrCanceled", func(t *testing.T) {
		s := MustOpenStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.PutMeta(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
			t.Fatalf("err=%v, want context.Canceled", err)
		}
	})
}

func TestAuditStore_Reopen(t *testing.T) {
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		org, _ := storetest.MustBootstrap(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = MustOpenStoreAt(t, path, sqlite.Options{})
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org.ID, custos.ActionAuthFailed)}, nil); err != nil {
			t.Fatal(err)
		}
		storetest.MustVerifyChain(t, s, org.ID, 2)
	})
}

func TestStore_Batch(t *testing.T) {
	// queue starts fn in a goroutine and waits until its op is queued.
	queue := func(t *testing.T, s *sqlite.Store, fn func() error) <-chan error {
		t.Helper()
		n := s.Queued()
		errc := make(chan error, 1)
		go func() { errc <- fn() }()
		for deadline := time.Now().Add(5 * time.Second); s.Queued() == n; {
			if time.Now().After(deadline) {
				t.Fatal("op was not queued")
			}
			time.Sleep(time.Millisecond)
		}
		return errc
	}
	policy := func(orgID, id string) *custos.Policy {
		return &custos.Policy{ID: id, OrgID: orgID, TagKey: "a", TagValue: "b", Rule: custos.RuleNotify, CreatedAt: storetest.Now}
	}

	// Ensure a failing op in a batch is rolled back alone: the others commit
	// and its event does not advance the chain.
	t.Run("SavepointFailure", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := storetest.MustBootstrap(t, s)
		p1, p2 := custos.NewID(custos.PrefixPolicy), custos.NewID(custos.PrefixPolicy)
		ev1, evDup, ev2 := storetest.NewEvent(org.ID, custos.ActionPolicyAdd), storetest.NewEvent(org.ID, custos.ActionPolicyAdd), storetest.NewEvent(org.ID, custos.ActionPolicyAdd)

		before := s.Stats()
		release := s.BlockWriter(ctx)
		e1 := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p1), ev1) })
		eDup := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p1), evDup) })
		e2 := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p2), ev2) })
		if err := release(); err != nil {
			t.Fatal(err)
		}
		if err := <-e1; err != nil {
			t.Fatal(err)
		} else if err := <-eDup; code(err) != custos.ECONFLICT {
			t.Fatalf("duplicate err=%v, want conflict", err)
		} else if err := <-e2; err != nil {
			t.Fatal(err)
		}
		if got, want := s.Stats().Batches-before.Batches, int64(2); got != want {
			t.Fatalf("batches=%d, want %d (blocker + one batch)", got, want)
		}
		if got, want := ev2.Seq, int64(3); got != want {
			t.Fatalf("seq after rolled-back op=%d, want %d", got, want)
		}
		if ps, _ := s.ListPolicies(ctx, org.ID); len(ps) != 2 {
			t.Fatalf("policies=%d, want 2", len(ps))
		}
		storetest.MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure a failed COMMIT fails every op of its batch, keeps none of their
	// changes, and the writer recovers with a consistent chain.
	t.Run("CommitFailure", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := storetest.MustBootstrap(t, s)
		p1 := custos.NewID(custos.PrefixPolicy)

		release := s.BlockWriter(ctx)
		e1 := queue(t, s, func() error {
			return s.CreatePolicy(ctx, policy(org.ID, p1), storetest.NewEvent(org.ID, custos.ActionPolicyAdd))
		})
		// A deferred foreign key violation is only detected at COMMIT.
		eBad := queue(t, s, func() error {
			return s.ExecInWriter(ctx, `PRAGMA defer_foreign_keys = ON`,
				`INSERT INTO secret_versions (secret_id, version, ciphertext, wrapped_dek, keeper_id, created_by, created_at)
				 VALUES ('sec_missing', 1, x'00', x'00', 'k', 'k', 0)`)
		})
		e2 := queue(t, s, func() error {
			return s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org.ID, custos.ActionAuthFailed)}, nil)
		})
		if err := release(); err != nil {
			t.Fatal(err)
		}
		for i, errc := range []<-chan error{e1, eBad, e2} {
			if err := <-errc; err == nil {
				t.Fatalf("op %d: expected commit error", i)
			} else {
				t.Logf("op %d: %v", i, err)
			}
		}
		if ps, _ := s.ListPolicies(ctx, org.ID); len(ps) != 0 {
			t.Fatalf("policies=%d, want 0", len(ps))
		}
		storetest.MustVerifyChain(t, s, org.ID, 1)

		if err := s.CreatePolicy(ctx, policy(org.ID, p1), storetest.NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		storetest.MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure writes fail, and change nothing, while another process holds the
	// write lock, and succeed once it lets go.
	t.Run("Locked", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s := MustOpenStoreAt(t, path, sqlite.Options{BusyTimeout: 50 * time.Millisecond})
		org, _ := storetest.MustBootstrap(t, s)

		conn, err := mustRawDB(t, path).Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		ev := storetest.NewEvent(org.ID, custos.ActionPolicyAdd)
		if err := s.CreatePolicy(ctx, policy(org.ID, custos.NewID(custos.PrefixPolicy)), ev); err == nil {
			t.Fatal("expected error while locked")
		} else if code(err) != custos.EINTERNAL {
			t.Fatalf("code=%q, want %q", code(err), custos.EINTERNAL)
		}
		if err := s.Ping(ctx); err == nil {
			t.Fatal("expected ping error while locked")
		}
		if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.ListPolicies(ctx, org.ID); len(ps) != 0 {
			t.Fatalf("policies=%d, want 0", len(ps))
		}
		if err := s.CreatePolicy(ctx, policy(org.ID, custos.NewID(custos.PrefixPolicy)), ev); err != nil {
			t.Fatal(err)
		}
		storetest.MustVerifyChain(t, s, org.ID, 2)
	})
}

// BenchmarkAppendAudit measures durable single-event appends.
func BenchmarkAppendAudit(b *testing.B) {
	ctx := context.Background()
	org := "org_0000000000000001"

	b.Run("Sequential", func(b *testing.B) {
		s := MustOpenStore(b)
		for b.Loop() {
			if err := s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org, custos.ActionSecretInject)}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Parallel", func(b *testing.B) {
		s := MustOpenStore(b)
		b.SetParallelism(16)
		before := s.Stats()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org, custos.ActionSecretInject)}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
		st := s.Stats()
		if n := st.Batches - before.Batches; n > 0 {
			b.ReportMetric(float64(st.Writes-before.Writes)/float64(n), "writes/batch")
		}
	})
}

// BenchmarkAuditedRead measures the store side of the vault's hot path: key
// by hash, device, policies, session, secrets, then a durable audit event.
func BenchmarkAuditedRead(b *testing.B) {
	ctx := context.Background()
	s := MustOpenStore(b)
	org, owner := storetest.MustBootstrap(b, s)
	d := storetest.MustCreateDevice(b, s, owner, "laptop")
	for i := range 20 {
		storetest.MustCreateSecret(b, s, org.ID, "web", fmt.Sprintf("S%d", i), map[string]string{"env": "prod"}, "ciphertext")
	}
	for range 3 {
		p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify, CreatedAt: storetest.Now}
		if err := s.CreatePolicy(ctx, p, storetest.NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			b.Fatal(err)
		}
	}
	names := []string{"S1", "S2", "S3"}
	read := func() error {
		if _, err := s.FindKeyByHash(ctx, owner.Hash); err != nil {
			return err
		} else if _, err := s.FindDevice(ctx, org.ID, d.Fingerprint); err != nil {
			return err
		} else if _, err := s.ListPolicies(ctx, org.ID); err != nil {
			return err
		} else if _, err := s.FindSession(ctx, org.ID, d.ID, storetest.Now); code(err) != custos.ENOTFOUND {
			return err
		} else if _, err := s.LoadSecrets(ctx, org.ID, "web", names); err != nil {
			return err
		}
		return s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org.ID, custos.ActionSecretInject)}, nil)
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := read(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestStore_TaskRefusals(t *testing.T) {
	// Ensure every refused call of the tasks capability leaves the row
	// count of every tasks table (and the audit log) as it was.
	t.Run("OK", func(t *testing.T) {
		s := MustOpenStore(t)
		db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(s.Path())+"?_query_only=1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		storetest.RunTaskRefusals(t, s, func(t *testing.T) map[string]int64 {
			t.Helper()
			counts := make(map[string]int64, len(storetest.TaskTables))
			for _, table := range storetest.TaskTables {
				var n int64
				if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				counts[table] = n
			}
			return counts
		})
	})
}

// BenchmarkAppendUsage writes batches of usage records (64: the recorder's
// most; 200) into a table that grows with b.N, and reports the cost per
// row: with -benchtime 3000x the table ends at 0.2–0.6 million rows.
func BenchmarkAppendUsage(b *testing.B) {
	for _, n := range []int{64, 200} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			s := MustOpenStore(b)
			org, key := storetest.MustBootstrap(b, s)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				recs := make([]*custos.UsageRecord, n)
				for i := range recs {
					recs[i] = &custos.UsageRecord{OrgID: org.ID, KeyID: key.ID, Provider: "mock", Model: "gpt-4o", Route: "chat",
						TokensIn: 2048, TokensOut: 64, LatencyMS: 0.9, OverheadMS: 0.1, Status: 200, Redactions: 3, Mode: "normal", Time: time.Now()}
				}
				if err := s.AppendUsage(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
