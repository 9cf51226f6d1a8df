package tasks_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/token"
)

// Clock is a settable test clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// LogBuffer collects log output; safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// Env is a tasks service on a real SQLite file, a real keeper and a real
// fileblob bucket in a temp dir.
type Env struct {
	Store   *sqlite.Store
	Service *tasks.Service
	Clock   *Clock
	Keeper  envelope.Keeper
	Logs    *LogBuffer
	BlobDir string
	OrgID   string
	Admin   *custos.APIKey

	mu     sync.Mutex
	tokens []string // every token the tests saw, for the leak check
}

const testKEK = "base64key://" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// start is the test clock's first reading.
var start = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// MustOpenEnv opens a store and blob dir in temp dirs and bootstraps an org.
// Options change the service's config.
func MustOpenEnv(tb testing.TB, opts ...func(*tasks.Config)) *Env {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "custos.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	k, err := envelope.OpenKeeper(ctx, testKEK, envelope.OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	blobDir := filepath.Join(dir, "blobs")
	bucket, err := tasks.OpenBucket(ctx, "file://"+blobDir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { bucket.Close() })
	e := &Env{Store: st, Clock: &Clock{now: start}, Keeper: k, Logs: &LogBuffer{}, BlobDir: blobDir}
	cfg := tasks.Config{Store: st, Keeper: k, Bucket: bucket, Now: e.Clock.Now,
		Logger:    slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PublicURL: "https://custos.example.com/"}
	for _, o := range opts {
		o(&cfg)
	}
	if e.Service, err = tasks.New(cfg); err != nil {
		tb.Fatal(err)
	}
	now := e.Clock.Now()
	org := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "test", CreatedAt: now}
	tok := token.New(token.PrefixAPIKey)
	e.Admin = &custos.APIKey{ID: custos.NewID(custos.PrefixKey), OrgID: org.ID, Name: "owner", Role: custos.RoleOwner, Hash: token.Hash(tok), CreatedAt: now}
	ev := &custos.AuditEvent{OrgID: org.ID, Time: now, Action: custos.ActionBootstrap, Outcome: custos.OutcomeOK, KeyID: e.Admin.ID, Source: "server"}
	if err := st.Bootstrap(ctx, org, e.Admin, ev); err != nil {
		tb.Fatal(err)
	}
	e.OrgID = org.ID
	e.saw(tok)
	return e
}

// As returns a context with an API key caller from a fixed address.
func As(k *custos.APIKey) context.Context {
	return custos.NewContextWithCaller(context.Background(), &custos.Caller{Key: k, Agent: "cli", IP: "192.0.2.7", Source: custos.SourceCLI})
}

// FromIP returns a context with a caller that only has an address, as the
// tracker and permit routes make it.
func FromIP() context.Context {
	return custos.NewContextWithCaller(context.Background(), &custos.Caller{IP: "192.0.2.9", Source: custos.SourceAPI})
}

// saw remembers tokens for the leak check.
func (e *Env) saw(toks ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens = append(e.tokens, toks...)
}

// Tokens returns every token seen.
func (e *Env) Tokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.tokens...)
}

// MustInstall creates a tracker install and returns it with its token.
func (e *Env) MustInstall(tb testing.TB, name string) (*custos.TrackerInstall, string) {
	tb.Helper()
	in, tok, err := e.Service.CreateTrackerInstall(As(e.Admin), name)
	if err != nil {
		tb.Fatal(err)
	}
	e.saw(tok)
	return in, tok
}

// MustSession starts a request key chain.
func (e *Env) MustSession(tb testing.TB, installTok string) string {
	tb.Helper()
	g, err := e.Service.StartTrackerSession(FromIP(), installTok)
	if err != nil {
		tb.Fatal(err)
	}
	e.saw(g.RequestKey)
	return g.RequestKey
}

// MustSpend spends rk and returns the call (whose Next is the next key).
func (e *Env) MustSpend(tb testing.TB, installTok, rk string) *custos.TrackerCall {
	tb.Helper()
	call, err := e.Service.SpendRequestKey(FromIP(), installTok, rk)
	if err != nil {
		tb.Fatal(err)
	}
	e.saw(call.Next.RequestKey)
	return call
}

// MustLaunch mints a launch code for the pair through a fresh install
// session.
func (e *Env) MustLaunch(tb testing.TB, installTok, projectID, taskID string, ttl time.Duration) *custos.LaunchLink {
	tb.Helper()
	call := e.MustSpend(tb, installTok, e.MustSession(tb, installTok))
	l, err := e.Service.CreateLaunchLink(FromIP(), call, custos.LaunchLinkInput{ProjectID: projectID, TaskID: taskID, TTL: custos.Duration(ttl)})
	if err != nil {
		tb.Fatal(err)
	}
	e.saw(l.Code)
	return l
}

// MustPermit returns a permit token for the pair.
func (e *Env) MustPermit(tb testing.TB, installTok, projectID, taskID string) (*custos.PermitGrant, string) {
	tb.Helper()
	l := e.MustLaunch(tb, installTok, projectID, taskID, 0)
	g, err := e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: l.Code, ProjectID: projectID, TaskID: taskID})
	if err != nil {
		tb.Fatal(err)
	}
	e.saw(g.Permit)
	return g, g.Permit
}

// MustRun starts a run.
func (e *Env) MustRun(tb testing.TB, permit, taskID string) *custos.Run {
	tb.Helper()
	r, err := e.Service.CreateRun(FromIP(), permit, taskID)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// MustPut uploads an artifact.
func (e *Env) MustPut(tb testing.TB, permit, taskID, runID, name, body string) *custos.Artifact {
	tb.Helper()
	a, err := e.Service.PutArtifact(FromIP(), permit, taskID, runID, name, "output", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// Audit returns the org's audit events.
func (e *Env) Audit(tb testing.TB, orgID string) []*custos.AuditEvent {
	tb.Helper()
	evs, err := e.Store.ListAudit(context.Background(), orgID, custos.AuditFilter{Limit: 10000})
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

// Last returns the org's last audit event.
func (e *Env) Last(tb testing.TB, orgID string) *custos.AuditEvent {
	tb.Helper()
	evs := e.Audit(tb, orgID)
	if len(evs) == 0 {
		tb.Fatal("no audit events")
	}
	return evs[len(evs)-1]
}

// Snapshot is the whole state outside the audit log: every row of every
// table but audit_events, and every file of the blob dir with its content.
func (e *Env) Snapshot(tb testing.TB) string {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+e.Store.Path()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'audit_events' ORDER BY name`)
	if err != nil {
		tb.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			tb.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, t := range tables {
		rs, err := db.Query(`SELECT * FROM "` + t + `"`)
		if err != nil {
			tb.Fatal(err)
		}
		cols, _ := rs.Columns()
		var lines []string
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				tb.Fatal(err)
			}
			lines = append(lines, fmt.Sprint(vals...))
		}
		rs.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "== %s\n%s\n", t, strings.Join(lines, "\n"))
	}
	b.WriteString("== blobs\n")
	for _, f := range e.BlobFiles(tb) {
		data, err := os.ReadFile(filepath.Join(e.BlobDir, f))
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %x\n", f, data)
	}
	return b.String()
}

// BlobFiles lists the files of the blob dir (slash paths, sorted).
func (e *Env) BlobFiles(tb testing.TB) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(e.BlobDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(e.BlobDir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// Code asserts err's code.
func Code(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := custos.ErrorCode(err); got != want {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

// Project and Task are the pair most tests work on.
const (
	Project = "PROJ-1"
	Task    = "PROJ-42"
)
