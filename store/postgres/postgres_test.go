package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/postgres"
	"github.com/custos-dev/custos/store/storetest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if admin != nil {
		admin.Close()
	}
	os.Exit(code)
}

var (
	adminOnce sync.Once
	admin     *pgxpool.Pool // superuser pool on CUSTOS_TEST_POSTGRES_URL
	adminErr  error
)

// mustAdmin returns a pool on CUSTOS_TEST_POSTGRES_URL (skipping the test
// without it) and that URL.
func mustAdmin(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	u := storetest.PostgresURL(tb)
	adminOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			adminErr = err
			return
		}
		cfg.MaxConns = 4
		admin, adminErr = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	if adminErr != nil {
		tb.Fatalf("admin pool: %v", adminErr)
	}
	return admin, u
}

// mustExec runs sql as the superuser.
func mustExec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	pool, _ := mustAdmin(tb)
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// randomName returns prefix followed by 12 random hex digits.
func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// withURL returns the test server's URL changed by fn.
func withURL(tb testing.TB, fn func(u *url.URL)) string {
	tb.Helper()
	_, raw := mustAdmin(tb)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatal("CUSTOS_TEST_POSTGRES_URL must be a postgres:// URL")
	}
	fn(u)
	return u.String()
}

// MustNewSchema creates an empty schema, dropped when the test ends, and
// returns the URL of the test server with its search_path set to it: a
// fresh database as far as a store can tell, at a fraction of the cost.
func MustNewSchema(tb testing.TB) string {
	tb.Helper()
	name := randomName("custos_t_")
	mustExec(tb, `CREATE SCHEMA `+name)
	tb.Cleanup(func() { mustExec(tb, `DROP SCHEMA `+name+` CASCADE`) })
	return withURL(tb, func(u *url.URL) {
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
	})
}

// MustNewDatabase creates an empty database, dropped when the test ends,
// and returns its URL.
func MustNewDatabase(tb testing.TB) string {
	tb.Helper()
	name := randomName("custos_t_")
	mustExec(tb, `CREATE DATABASE `+name)
	tb.Cleanup(func() { mustExec(tb, `DROP DATABASE `+name+` WITH (FORCE)`) })
	return withURL(tb, func(u *url.URL) { u.Path = "/" + name })
}

// MustOpenStore opens a store on a fresh schema and closes it when the test
// ends.
func MustOpenStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	return MustOpenStoreAt(tb, MustNewSchema(tb), postgres.Options{})
}

// MustOpenStoreAt opens a store on url and closes it when the test ends.
func MustOpenStoreAt(tb testing.TB, url string, opts postgres.Options) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), url, opts)
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

// TestStore runs the conformance suite against PostgreSQL.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) custos.Store { return MustOpenStore(t) })
}

// TestStore_TwoProcesses runs the suite's shared-database part against two
// stores (two pools) on one database, as two replicas would open it.
func TestStore_TwoProcesses(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (custos.Store, custos.Store) {
		u := MustNewSchema(t)
		return MustOpenStoreAt(t, u, postgres.Options{}), MustOpenStoreAt(t, u, postgres.Options{})
	})
}

func TestOpen(t *testing.T) {
	// Ensure Open migrates a fresh database to the latest schema, and a
	// second Open applies nothing again and continues the data and chain.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		u := MustNewDatabase(t)
		s := MustOpenStoreAt(t, u, postgres.Options{MaxConns: 2})
		org, _ := storetest.MustBootstrap(t, s)
		ms, err := s.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(ms), postgres.SchemaVersion(); got != want || got < 2 {
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
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := MustOpenStoreAt(t, u, postgres.Options{})
		again, err := s2.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ms {
			if !again[i].AppliedAt.Equal(*ms[i].AppliedAt) {
				t.Fatalf("migration %d applied again", ms[i].Version)
			}
		}
		storetest.MustCreateKey(t, s2, org.ID, "k", custos.RoleMember)
		storetest.MustVerifyChain(t, s2, org.ID, 2)
	})

	// Ensure replicas opening one fresh database at once all succeed and
	// apply each migration exactly once.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		u := MustNewDatabase(t)
		const n = 8
		stores := make([]*postgres.Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				stores[i], errs[i] = postgres.Open(ctx, u, postgres.Options{MaxConns: 2})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			t.Cleanup(func() { stores[i].Close() })
		}
		db, err := pgxpool.New(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var applied, distinct int
		if err := db.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&applied, &distinct); err != nil {
			t.Fatal(err)
		} else if got, want := applied, postgres.SchemaVersion(); got != want || distinct != want {
			t.Fatalf("migrations recorded=%d (%d distinct), want %d", got, distinct, want)
		}
		for _, s := range stores {
			if n, err := s.CountOrgs(ctx); err != nil || n != 0 {
				t.Fatalf("CountOrgs=%d, %v", n, err)
			}
		}
	})

	// Ensure NoMigrate opens a fresh schema as it is, every migration
	// pending, and a later Open applies them.
	t.Run("NoMigrate", func(t *testing.T) {
		ctx := context.Background()
		u := MustNewSchema(t)
		s := MustOpenStoreAt(t, u, postgres.Options{NoMigrate: true})
		ms, err := s.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(ms), postgres.SchemaVersion(); got != want {
			t.Fatalf("migrations=%d, want %d", got, want)
		}
		for _, m := range ms {
			if m.AppliedAt != nil {
				t.Fatalf("migration %d applied by a NoMigrate open", m.Version)
			}
		}
		if _, err := s.CountOrgs(ctx); err == nil {
			t.Fatal("expected an error without the schema")
		}
		MustOpenStoreAt(t, u, postgres.Options{})
		if ms, err = s.Migrations(ctx); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.AppliedAt == nil {
				t.Fatalf("migration %d pending after Open", m.Version)
			}
		}
	})

	// Ensure a database whose schema is newer than the binary is refused
	// with a clear error, and NoMigrate still opens it to report.
	t.Run("ErrNewerSchema", func(t *testing.T) {
		ctx := context.Background()
		u := MustNewSchema(t)
		s := MustOpenStoreAt(t, u, postgres.Options{})
		schema := mustParse(t, u).Query().Get("search_path")
		mustExec(t, `INSERT INTO `+schema+`.schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`)
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err) // an open store keeps working; only new opens refuse
		}
		_, err := postgres.Open(ctx, u, postgres.Options{})
		if err == nil {
			t.Fatal("expected error")
		} else if !strings.Contains(err.Error(), "newer than this binary") {
			t.Fatalf("err=%v, want it to say the schema is newer", err)
		}
		ms, err := MustOpenStoreAt(t, u, postgres.Options{NoMigrate: true}).Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		} else if last := ms[len(ms)-1]; last.Version != 9999 || last.Name != "future" || last.AppliedAt == nil {
			t.Fatalf("unknown migration=%+v", last)
		}
	})

	// Ensure an unreachable database is EUNAVAILABLE, with a message that
	// holds neither the URL nor the password.
	t.Run("ErrUnavailable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		u := withURL(t, func(u *url.URL) {
			u.Host = addr
			u.User = url.UserPassword("custos", "s3cret-pw")
		})
		for _, opts := range []postgres.Options{{}, {NoMigrate: true}} {
			_, err := postgres.Open(context.Background(), u, opts)
			if got, want := code(err), custos.EUNAVAILABLE; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			} else if msg := custos.ErrorMessage(err); strings.Contains(msg, addr) || strings.Contains(msg, "s3cret") {
				t.Fatalf("message leaks the address or password: %q", msg)
			} else if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		}
	})

	// Ensure a malformed URL is refused without echoing it.
	t.Run("ErrURL", func(t *testing.T) {
		_, err := postgres.Open(context.Background(), "postgres://u:s3cret@127.0.0.1:notaport/db", postgres.Options{})
		if err == nil {
			t.Fatal("expected error")
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
}

func mustParse(tb testing.TB, raw string) *url.URL {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestStore_DatabaseDown(t *testing.T) {
	// Ensure that while the database cannot be reached every call fails with
	// EUNAVAILABLE and changes nothing, and that the store recovers when
	// the database is back.
	t.Run("ErrUnavailable", func(t *testing.T) {
		ctx := context.Background()
		schemaURL := MustNewSchema(t)
		target := mustParse(t, schemaURL).Host
		p := startProxy(t, target)
		u := withURL(t, func(u *url.URL) {
			*u = *mustParse(t, schemaURL)
			u.Host = p.addr
		})
		s := MustOpenStoreAt(t, u, postgres.Options{MaxConns: 4})
		org, _ := storetest.MustBootstrap(t, s)

		p.stop()
		check := func(what string, err error) {
			t.Helper()
			if got, want := code(err), custos.EUNAVAILABLE; got != want {
				t.Fatalf("%s: code=%q, want %q (%v)", what, got, want, err)
			} else if got, want := custos.ErrorMessage(err), "the database is unavailable; nothing was changed"; got != want {
				t.Fatalf("%s: message=%q, want %q", what, got, want)
			}
		}
		for range 2 { // first on the pool's broken connections, then on refused new ones
			check("CreateKey", s.CreateKey(ctx, storetest.NewKey(org.ID, "k", custos.RoleMember), storetest.NewEvent(org.ID, custos.ActionKeyCreate)))
			_, err := s.FindOrg(ctx, org.ID)
			check("FindOrg", err)
			check("AppendAudit", s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org.ID, custos.ActionSecretInject)}, nil))
			err = s.ConsumeConfirmation(ctx, org.ID, "dev_0000000000000001", "web", "A", storetest.Now)
			check("ConsumeConfirmation", err)
			_, err = s.CacheEpoch(ctx)
			check("CacheEpoch", err)
			_, err = s.ReserveBudget(ctx, org.ID, "", 10, storetest.Now)
			check("ReserveBudget", err)
			check("AppendUsage", s.AppendUsage(ctx, []*custos.UsageRecord{storetest.NewUsage(org.ID, "", "m", 1, 1, storetest.Now)}))
			check("Ping", s.Ping(ctx))
		}

		p.start(t)
		deadline := time.Now().Add(5 * time.Second)
		for err := s.Ping(ctx); err != nil; err = s.Ping(ctx) {
			if time.Now().After(deadline) {
				t.Fatalf("store did not recover: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		storetest.MustCreateKey(t, s, org.ID, "k", custos.RoleMember)
		storetest.MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure an expired context is a plain error (internal), not EUNAVAILABLE.
	t.Run("ErrDeadline", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := storetest.MustBootstrap(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		err := s.CreateKey(ctx, storetest.NewKey(org.ID, "k", custos.RoleMember), storetest.NewEvent(org.ID, custos.ActionKeyCreate))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err=%v, want context.DeadlineExceeded", err)
		} else if got, want := code(err), custos.EINTERNAL; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func TestStore_CacheEpochTriggers(t *testing.T) {
	// Ensure a change made outside custos, by plain SQL in another session,
	// advances the epoch too: the triggers, not the Go code, keep it.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		u := MustNewSchema(t)
		s := MustOpenStoreAt(t, u, postgres.Options{})
		org, owner := storetest.MustBootstrap(t, s)
		storetest.MustCreateDevice(t, s, owner, "h")
		storetest.MustCreateSecret(t, s, org.ID, "web", "A", nil, "ct")
		p := storetest.NewPolicy(org.ID)
		if err := s.CreatePolicy(ctx, p, storetest.NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		storetest.MustCreateProvider(t, s, storetest.NewProvider(org.ID, "openai", 0))
		if err := s.PutPrivacyRule(ctx, &custos.PrivacyRule{OrgID: org.ID, Scope: custos.ScopeOrg, Mode: custos.PrivacyNormal, UpdatedAt: storetest.Now},
			storetest.NewEvent(org.ID, custos.ActionPrivacySet)); err != nil {
			t.Fatal(err)
		}
		storetest.MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 100)
		if _, err := s.ReserveBudget(ctx, org.ID, owner.ID, 10, storetest.Now); err != nil {
			t.Fatal(err)
		}
		schema := mustParse(t, u).Query().Get("search_path")
		for _, sql := range []string{
			`UPDATE ` + schema + `.api_keys SET name = 'renamed' WHERE org_id = $1`,
			`UPDATE ` + schema + `.devices SET status = 'revoked' WHERE org_id = $1`,
			`UPDATE ` + schema + `.secret_versions SET keeper_id = 'x' WHERE secret_id IN (SELECT id FROM ` + schema + `.secrets WHERE org_id = $1)`,
			`UPDATE ` + schema + `.secrets SET description = 'x' WHERE org_id = $1`,
			`DELETE FROM ` + schema + `.policies WHERE org_id = $1`,
			`DELETE FROM ` + schema + `.secrets WHERE org_id = $1`,
			`UPDATE ` + schema + `.model_providers SET priority = 5 WHERE org_id = $1`,
			`UPDATE ` + schema + `.privacy_rules SET mode = 'offline' WHERE org_id = $1`,
			`UPDATE ` + schema + `.budgets SET token_limit = 50 WHERE org_id = $1`,
			`DELETE FROM ` + schema + `.model_providers WHERE org_id = $1`,
		} {
			e := storetest.MustCacheEpoch(t, s)
			mustExec(t, sql, org.ID)
			if got := storetest.MustCacheEpoch(t, s); got <= e {
				t.Fatalf("%s: epoch=%d, want more than %d", sql, got, e)
			}
		}
		// Budget counters and usage records have no trigger.
		for _, sql := range []string{
			`UPDATE ` + schema + `.budget_counters SET spent = spent + 1 WHERE org_id = $1`,
			`DELETE FROM ` + schema + `.usage_records WHERE org_id = $1`,
		} {
			e := storetest.MustCacheEpoch(t, s)
			mustExec(t, sql, org.ID)
			if got := storetest.MustCacheEpoch(t, s); got != e {
				t.Fatalf("%s: epoch=%d, want %d", sql, got, e)
			}
		}
		storetest.MustVerifyChain(t, s, org.ID, 7)
	})
}

// proxy forwards TCP connections to target until stopped, so a test can cut
// a store off from its database and let it back.
type proxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// startProxy starts a proxy to target on a free loopback port.
func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	p := &proxy{target: target, addr: "127.0.0.1:0"}
	p.start(tb)
	tb.Cleanup(p.stop)
	return p
}

// start listens on p.addr (on a free port the first time) and serves.
func (p *proxy) start(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		tb.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.conns = ln, ln.Addr().String(), make(map[net.Conn]bool)
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// stop closes the listener and every forwarded connection.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// BenchmarkAppendAudit measures durable single-event appends from many
// goroutines, to one org (serialized on its head row) and to one org per
// goroutine (no contention).
func BenchmarkAppendAudit(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name    string
		perGoro bool
	}{{"OneOrg", false}, {"OrgPerGoroutine", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s := MustOpenStoreAt(b, MustNewSchema(b), postgres.Options{MaxConns: 32})
			b.SetParallelism(8)
			var n sync.Mutex
			next := 0
			b.RunParallel(func(pb *testing.PB) {
				org := "org_0000000000000001"
				if bc.perGoro {
					n.Lock()
					next++
					org = fmt.Sprintf("org_%016x", next)
					n.Unlock()
				}
				for pb.Next() {
					if err := s.AppendAudit(ctx, []*custos.AuditEvent{storetest.NewEvent(org, custos.ActionSecretInject)}, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func TestStore_TaskRefusals(t *testing.T) {
	// Ensure every refused call of the tasks capability leaves the row
	// count of every tasks table (and the audit log) as it was.
	t.Run("OK", func(t *testing.T) {
		u := MustNewSchema(t)
		s := MustOpenStoreAt(t, u, postgres.Options{})
		schema := mustParse(t, u).Query().Get("search_path")
		pool, _ := mustAdmin(t)
		storetest.RunTaskRefusals(t, s, func(t *testing.T) map[string]int64 {
			t.Helper()
			counts := make(map[string]int64, len(storetest.TaskTables))
			for _, table := range storetest.TaskTables {
				var n int64
				if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+schema+`.`+table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				counts[table] = n
			}
			return counts
		})
	})
}
