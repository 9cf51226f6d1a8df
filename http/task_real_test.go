package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/vault"
)

// RealEnv is the API over the real vault and tasks services on a real
// SQLite store, a real keeper and a fileblob bucket, on a settable clock.
type RealEnv struct {
	Store  *sqlite.Store
	Tasks  *tasks.Service
	Clock  *Clock
	Logs   *syncBuffer
	Server *httptest.Server
	Admin  *custoshttp.Client // with the owner key
	Anon   *custoshttp.Client // no API key: tracker, exchange and permit calls
	OrgID  string
}

// MustServeReal starts the API over real services; opts change the tasks
// service's config.
func MustServeReal(tb testing.TB, opts ...func(*tasks.Config)) *RealEnv {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "custos.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	keeper, err := envelope.OpenKeeper(ctx, "base64key://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", envelope.OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	bucket, err := tasks.OpenBucket(ctx, "file://"+filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { bucket.Close() })
	e := &RealEnv{Store: st, Clock: &Clock{now: time.Now().UTC().Truncate(time.Second)}, Logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v := vault.New(vault.Config{Store: st, Keeper: keeper, Now: e.Clock.Now, Logger: logger})
	owner, _, err := v.Bootstrap(ctx, "default")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := tasks.Config{Store: st, Keeper: keeper, Bucket: bucket, Now: e.Clock.Now, Logger: logger}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewUnstartedServer(nil)
	cfg.PublicURL = "http://" + srv.Listener.Addr().String()
	if e.Tasks, err = tasks.New(cfg); err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = custoshttp.NewHandler(custoshttp.Config{
		Services: custoshttp.Services{Keys: v, Audit: v, Trackers: e.Tasks, Launch: e.Tasks, Tasks: e.Tasks},
		Logger:   logger,
	})
	srv.Start()
	tb.Cleanup(srv.Close)
	e.Server = srv
	e.Admin = MustClient(tb, srv.URL, custoshttp.ClientOptions{Token: owner})
	e.Anon = MustClient(tb, srv.URL, custoshttp.ClientOptions{Agent: "ide", Hostname: "laptop", MachineUser: "ana"})
	k, err := v.Authenticate(ctx, owner)
	if err != nil {
		tb.Fatal(err)
	}
	e.OrgID = k.OrgID
	return e
}

// MustLaunch creates an install and mints a launch code for project/task,
// returning the install token, the link and the next request key.
func (e *RealEnv) MustLaunch(tb testing.TB, project, task string) (string, *custos.LaunchLink, string) {
	tb.Helper()
	c := tb.Context()
	_, install, err := e.Admin.CreateTrackerInstall(c, "jira-"+strings.ToLower(task))
	if err != nil {
		tb.Fatal(err)
	}
	g, err := e.Anon.StartTrackerSession(c, install)
	if err != nil {
		tb.Fatal(err)
	}
	link, next, err := e.Anon.CreateLaunchLink(c, install, g.RequestKey, custos.LaunchLinkInput{ProjectID: project, TaskID: task})
	if err != nil {
		tb.Fatal(err)
	}
	return install, link, next
}

// Audit returns the org's audit events with action.
func (e *RealEnv) Audit(tb testing.TB, action string) []*custos.AuditEvent {
	tb.Helper()
	evs, err := e.Store.ListAudit(context.Background(), e.OrgID, custos.AuditFilter{Limit: 10000})
	if err != nil {
		tb.Fatal(err)
	}
	var out []*custos.AuditEvent
	for _, ev := range evs {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// Ensure the whole flow works over HTTP against the real service: launch,
// exchange, run, artifacts, completion, expiry; the https link points at
// the launch page, and the audit records carry the client's address.
func TestTaskReal_Flow(t *testing.T) {
	e := MustServeReal(t, func(c *tasks.Config) { c.Retention = time.Hour })
	c := t.Context()
	_, link, _ := e.MustLaunch(t, "PROJ", "PROJ-42")
	if !strings.HasPrefix(link.URL, e.Server.URL+custos.LaunchPath+"#") || !strings.HasPrefix(link.Link, "custos://launch?") {
		t.Fatalf("links: %q %q", link.Link, link.URL)
	}
	// Ensure fetching the https link (as a previewer does) spends nothing.
	resp, err := http.Get(link.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	g, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: link.Code, ProjectID: "PROJ", TaskID: "PROJ-42"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: link.Code, ProjectID: "PROJ", TaskID: "PROJ-42"}); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
		t.Fatalf("second exchange: %v", err)
	}
	run, err := e.Anon.CreateRun(c, g.Permit, "PROJ-42")
	if err != nil {
		t.Fatal(err)
	}
	body := "package main\n\nfunc main() {}\n"
	a, err := e.Anon.PutArtifact(c, g.Permit, "PROJ-42", run.ID, "cmd/main.go", "source", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(body)) || a.Kind != "source" {
		t.Fatalf("artifact %+v", a)
	}
	list, err := e.Anon.ListArtifacts(c, g.Permit, "PROJ-42", run.ID)
	if err != nil || len(list) != 1 || list[0].Name != "cmd/main.go" {
		t.Fatalf("list %v %v", list, err)
	}
	got, b, err := e.Anon.GetArtifact(c, g.Permit, "PROJ-42", run.ID, "cmd/main.go")
	if err != nil || string(b) != body || got.SHA256 != a.SHA256 {
		t.Fatalf("get %+v %q %v", got, b, err)
	}
	if n, err := e.Anon.PutIndexFiles(c, g.Permit, "PROJ", "main", []custos.IndexFile{{Path: "cmd/main.go", SHA256: a.SHA256, Summary: "entry point"}}); err != nil || n != 1 {
		t.Fatalf("index put: %d %v", n, err)
	}
	stale, err := e.Anon.StaleIndexFiles(c, g.Permit, "PROJ", "main", []custos.IndexRef{{Path: "cmd/main.go", SHA256: a.SHA256}, {Path: "new.go", SHA256: a.SHA256}})
	if err != nil || len(stale) != 1 || stale[0] != "new.go" {
		t.Fatalf("stale %v %v", stale, err)
	}
	if _, err := e.Anon.CompleteRun(c, g.Permit, "PROJ-42", run.ID); err != nil {
		t.Fatal(err)
	}
	task, err := e.Anon.CompleteTask(c, g.Permit, "PROJ-42")
	if err != nil || task.CompletedAt == nil {
		t.Fatalf("complete %+v %v", task, err)
	}
	e.Clock.Advance(time.Hour + time.Second)
	if _, _, err := e.Anon.GetArtifact(c, g.Permit, "PROJ-42", run.ID, "cmd/main.go"); custos.ErrorCode(err) != custos.EEXPIRED {
		t.Fatalf("expired artifact: %v", err)
	}
	for _, ev := range e.Audit(t, custos.ActionArtifactPut) {
		if ev.IP != "127.0.0.1" || ev.Agent != "ide" || ev.Hostname != "laptop" {
			t.Fatalf("artifact.put lacks the client: %+v", ev)
		}
	}
	if got := len(e.Audit(t, custos.ActionLaunchExchange)); got != 2 {
		t.Fatalf("%d launch.exchange events, want 2 (ok and denied)", got)
	}
}

// Ensure a permit used outside its scope is 403, audited, and changes
// nothing: another task, another project (path or query), a run of another
// task.
func TestTaskReal_ScopeViolations(t *testing.T) {
	e := MustServeReal(t)
	c := t.Context()
	_, l1, _ := e.MustLaunch(t, "PROJ", "PROJ-1")
	_, l2, _ := e.MustLaunch(t, "PROJ", "PROJ-2")
	p1, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: l1.Code, ProjectID: "PROJ", TaskID: "PROJ-1"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: l2.Code, ProjectID: "PROJ", TaskID: "PROJ-2"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.Anon.CreateRun(c, p2.Permit, "PROJ-2")
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.Audit(t, custos.ActionTaskDenied))
	for name, call := range map[string]func() error{
		"OtherTask": func() error { _, err := e.Anon.CreateRun(c, p1.Permit, "PROJ-2"); return err },
		"OtherRun": func() error {
			_, err := e.Anon.PutArtifact(c, p1.Permit, "PROJ-1", r2.ID, "x", "", strings.NewReader("x"))
			return err
		},
		"OtherTaskComplete": func() error { _, err := e.Anon.CompleteTask(c, p1.Permit, "PROJ-2"); return err },
		"OtherProject": func() error {
			_, err := e.Anon.PutIndexFiles(c, p1.Permit, "OTHER", "main", []custos.IndexFile{{Path: "a", SHA256: testSHA}})
			return err
		},
	} {
		if err := call(); custos.ErrorCode(err) != custos.EFORBIDDEN {
			t.Errorf("%s: %v, want forbidden", name, err)
		}
	}
	if got := len(e.Audit(t, custos.ActionTaskDenied)); got != before+4 {
		t.Errorf("%d task.denied events, want %d", got-before, 4)
	}
	// Nothing changed: task 2 is open, its run empty.
	if list, err := e.Anon.ListArtifacts(c, p2.Permit, "PROJ-2", r2.ID); err != nil || len(list) != 0 {
		t.Fatalf("run 2: %v %v", list, err)
	}
	if _, err := e.Anon.CreateRun(c, p2.Permit, "PROJ-2"); err != nil {
		t.Fatalf("task 2 changed: %v", err)
	}
	// A projectId in the query must be the permit's.
	req, _ := http.NewRequest("POST", e.Server.URL+"/v1/tasks/PROJ-1/runs?projectId=OTHER", nil)
	req.Header.Set("Authorization", "Bearer "+p1.Permit)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, resp); res.Status != http.StatusForbidden {
		t.Fatalf("?projectId=OTHER: %d %s", res.Status, res.Body)
	}
	if got := len(e.Audit(t, custos.ActionTaskDenied)); got != before+5 {
		t.Errorf("?projectId=OTHER left %d task.denied events in all, want %d", got-before, 5)
	}
}

// Ensure of many concurrent uses of one request key exactly one wins and
// its next key works, the losers get 401 with no next key and are
// audited; and of many concurrent exchanges of one code exactly one gets a
// permit.
func TestTaskReal_SingleUse(t *testing.T) {
	e := MustServeReal(t)
	c := t.Context()
	install, _, next := e.MustLaunch(t, "PROJ", "PROJ-9")
	const n = 40
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Go(func() {
			_, nk, err := e.Anon.CreateLaunchLink(c, install, next, custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: "PROJ-10"})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(nk)
			case custos.ErrorCode(err) != custos.EUNAUTHORIZED || nk != "":
				t.Errorf("loser: next=%q err=%v", nk, err)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d winners, want 1", got)
	}
	link, _, err := e.Anon.CreateLaunchLink(c, install, winner.Load().(string), custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: "PROJ-11"})
	if err != nil {
		t.Fatalf("the winner's next key: %v", err)
	}
	if got := len(e.Audit(t, custos.ActionRequestKeyReplay)); got != n-1 {
		t.Fatalf("%d refused keys audited, want %d", got, n-1)
	}

	wins.Store(0)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			_, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: link.Code, ProjectID: "PROJ", TaskID: "PROJ-11"})
			if err == nil {
				wins.Add(1)
			} else if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
				t.Errorf("loser: %v", err)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d permits, want 1", got)
	}
}

// Ensure the artifact limit is the service's (413), a code for another
// pair is 403 and stays usable, and file content is refused on the index.
func TestTaskReal_BadInput(t *testing.T) {
	e := MustServeReal(t, func(c *tasks.Config) { c.MaxArtifactBytes, c.MaxRunBytes = 1024, 2048 })
	c := t.Context()
	_, link, _ := e.MustLaunch(t, "PROJ", "PROJ-5")
	if _, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: link.Code, ProjectID: "PROJ", TaskID: "PROJ-6"}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("other pair: %v", err)
	}
	g, err := e.Anon.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: link.Code, ProjectID: "PROJ", TaskID: "PROJ-5"})
	if err != nil {
		t.Fatalf("the code after a refused pair: %v", err)
	}
	run, err := e.Anon.CreateRun(c, g.Permit, "PROJ-5")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Anon.PutArtifact(c, g.Permit, "PROJ-5", run.ID, "big", "", strings.NewReader(strings.Repeat("x", 1025))); custos.ErrorCode(err) != custos.ETOOLARGE {
		t.Fatalf("oversized artifact: %v", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.Anon.PutArtifact(c, g.Permit, "PROJ-5", run.ID, "f"+string(rune('a'+i)), "", strings.NewReader(strings.Repeat("x", 1000))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Anon.PutArtifact(c, g.Permit, "PROJ-5", run.ID, "fc", "", strings.NewReader(strings.Repeat("x", 100))); custos.ErrorCode(err) != custos.ETOOLARGE {
		t.Fatalf("over the run limit: %v", err)
	}
	if list, _ := e.Anon.ListArtifacts(c, g.Permit, "PROJ-5", run.ID); len(list) != 2 {
		t.Fatalf("refused uploads left %d artifacts, want 2", len(list))
	}
	req, _ := http.NewRequest("PUT", e.Server.URL+"/v1/projects/PROJ/indexes/main/files",
		strings.NewReader(`{"files":[{"path":"a.go","sha256":"`+testSHA+`","summary":"s","content":"package main"}]}`))
	req.Header.Set("Authorization", "Bearer "+g.Permit)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res := readResponse(t, resp)
	if _, msg := res.Err(t); res.Status != 400 || !strings.Contains(msg, "file content is refused") {
		t.Fatalf("content: %d %s", res.Status, res.Body)
	}
	if stale, err := e.Anon.StaleIndexFiles(c, g.Permit, "PROJ", "main", []custos.IndexRef{{Path: "a.go", SHA256: testSHA}}); err != nil || len(stale) != 1 {
		t.Fatalf("the refused index entry was stored: %v %v", stale, err)
	}
	if strings.Contains(e.Logs.String(), g.Permit[7:]) || strings.Contains(e.Logs.String(), link.Code[7:]) {
		t.Fatal("logs contain a token")
	}
}
