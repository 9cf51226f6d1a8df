package tasks_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/token"
)

// Ensure the whole path of the issue works: install → request key chain →
// launch link → exchange → permit → runs, artifacts, index → completion →
// expiry → purge, each step audited.
func TestFlow(t *testing.T) {
	e := MustOpenEnv(t)
	ctx := FromIP()

	// 1. An install token, shown once.
	in, itok := e.MustInstall(t, "jira-prod")
	if err := token.Check(itok, token.PrefixTrackerInstall); err != nil {
		t.Fatal(err)
	}
	if ins, err := e.Service.ListTrackerInstalls(As(e.Admin)); err != nil || len(ins) != 1 || ins[0].ID != in.ID {
		t.Fatalf("installs = %v, %v", ins, err)
	}

	// 2. A request key chain: every call spends one and gets the next.
	rk := e.MustSession(t, itok)
	if err := token.Check(rk, token.PrefixRequestKey); err != nil {
		t.Fatal(err)
	}
	call := e.MustSpend(t, itok, rk)
	if got, want := call.Next.SessionID, call.Spent.SessionID; got != want {
		t.Fatalf("next key's session = %s, want %s", got, want)
	}
	if got, want := call.Next.ExpiresAt, start.Add(custos.RequestKeyTTL); !got.Equal(want) {
		t.Fatalf("next key expires %s, want %s", got, want)
	}

	// 3. A launch link for the pair (step 3 spends a key too).
	l, err := e.Service.CreateLaunchLink(ctx, call, custos.LaunchLinkInput{ProjectID: Project, TaskID: Task})
	if err != nil {
		t.Fatal(err)
	}
	e.saw(l.Code)
	if err := token.Check(l.Code, token.PrefixLaunchCode); err != nil {
		t.Fatal(err)
	}
	if got, want := l.ExpiresAt, start.Add(custos.DefaultLaunchTTL); !got.Equal(want) {
		t.Fatalf("code expires %s, want %s", got, want)
	}
	q := url.Values{"code": {l.Code}, "project": {Project}, "task": {Task}}.Encode()
	if got, want := l.Link, "custos://launch?"+q; got != want {
		t.Fatalf("link = %s, want %s", got, want)
	}
	if got, want := l.URL, "https://custos.example.com/launch#"+q; got != want {
		t.Fatalf("url = %s, want %s", got, want)
	}
	parsed, err := tasks.ParseLaunchQuery(strings.TrimPrefix(l.Link, "custos://launch?"))
	if err != nil || parsed.Code != l.Code || parsed.ProjectID != Project || parsed.TaskID != Task {
		t.Fatalf("ParseLaunchQuery = %+v, %v", parsed, err)
	}

	// 4. The exchange: a permit bound to org, project and task.
	g, err := e.Service.ExchangeLaunchCode(ctx, parsed)
	if err != nil {
		t.Fatal(err)
	}
	e.saw(g.Permit)
	if g.OrgID != e.OrgID || g.ProjectID != Project || g.TaskID != Task || !g.ExpiresAt.Equal(start.Add(custos.PermitTTL)) {
		t.Fatalf("grant = %+v", g)
	}
	p, err := e.Service.CheckPermit(ctx, g.Permit)
	if err != nil || p.ID != g.ID {
		t.Fatalf("CheckPermit = %v, %v", p, err)
	}

	// 5. Runs, artifacts, index with the permit only.
	run := e.MustRun(t, g.Permit, Task)
	a := e.MustPut(t, g.Permit, Task, run.ID, "out/result.md", "# the answer\n")
	if a.Size != 13 || a.Kind != "output" || a.ExpiresAt != nil {
		t.Fatalf("artifact = %+v", a)
	}
	got, body, err := e.Service.GetArtifact(ctx, g.Permit, Task, run.ID, "out/result.md")
	if err != nil || string(body) != "# the answer\n" || got.ID != a.ID {
		t.Fatalf("GetArtifact = %v, %q, %v", got, body, err)
	}
	// Put again: the old one is replaced (purged later), the new one read.
	a2 := e.MustPut(t, g.Permit, Task, run.ID, "out/result.md", "# a better answer\n")
	if _, body, err := e.Service.GetArtifact(ctx, g.Permit, Task, run.ID, "out/result.md"); err != nil || string(body) != "# a better answer\n" {
		t.Fatalf("GetArtifact after replace = %q, %v", body, err)
	}
	list, err := e.Service.ListArtifacts(ctx, g.Permit, Task, run.ID)
	if err != nil || len(list) != 1 || list[0].ID != a2.ID {
		t.Fatalf("ListArtifacts = %v, %v", list, err)
	}

	h := strings.Repeat("ab", 32)
	n, err := e.Service.PutIndexFiles(ctx, g.Permit, Project, "main", []custos.IndexFile{
		{Path: "cmd/main.go", SHA256: h, Summary: "entry point"},
		{Path: "README.md", SHA256: strings.Repeat("01", 32), Summary: "read me"},
	})
	if err != nil || n != 2 {
		t.Fatalf("PutIndexFiles = %d, %v", n, err)
	}
	stale, err := e.Service.StaleIndexFiles(ctx, g.Permit, Project, "main", []custos.IndexRef{
		{Path: "cmd/main.go", SHA256: h}, {Path: "README.md", SHA256: h}, {Path: "new.go", SHA256: h},
	})
	if err != nil || !slices.Equal(stale, []string{"README.md", "new.go"}) {
		t.Fatalf("StaleIndexFiles = %v, %v", stale, err)
	}

	done, err := e.Service.CompleteRun(ctx, g.Permit, Task, run.ID)
	if err != nil || done.CompletedAt == nil {
		t.Fatalf("CompleteRun = %v, %v", done, err)
	}
	if again, err := e.Service.CompleteRun(ctx, g.Permit, Task, run.ID); err != nil || !again.CompletedAt.Equal(*done.CompletedAt) {
		t.Fatalf("CompleteRun again = %v, %v", again, err)
	}

	// Completion: every artifact expires 48h later.
	e.Clock.Add(time.Hour)
	task, err := e.Service.CompleteTask(ctx, g.Permit, Task)
	if err != nil || task.CompletedAt == nil {
		t.Fatalf("CompleteTask = %v, %v", task, err)
	}
	if _, err := e.Service.CompleteTask(ctx, g.Permit, Task); err != nil {
		t.Fatalf("CompleteTask is not idempotent: %v", err)
	}
	if _, err := e.Service.CreateRun(ctx, g.Permit, Task); custos.ErrorCode(err) != custos.ECONFLICT {
		t.Fatalf("CreateRun on a complete task: %v", err)
	}
	fa, err := e.Store.FindArtifact(context.Background(), e.OrgID, run.ID, "out/result.md")
	if err != nil || fa.ExpiresAt == nil || !fa.ExpiresAt.Equal(task.CompletedAt.Add(custos.DefaultArtifactRetention)) {
		t.Fatalf("artifact expiry = %v, %v", fa.ExpiresAt, err)
	}

	// The purge removes the replaced artifact now and the live one after
	// its expiry.
	rep, err := e.Service.Purge(context.Background(), false)
	if err != nil || len(rep.Removed) != 1 || rep.Removed[0].ArtifactID != a.ID || rep.Removed[0].Reason != tasks.ReasonReplaced {
		t.Fatalf("first purge = %+v, %v", rep, err)
	}
	e.Clock.Add(custos.DefaultArtifactRetention)
	rep, err = e.Service.Purge(context.Background(), false)
	if err != nil || len(rep.Removed) != 1 || rep.Removed[0].ArtifactID != a2.ID || rep.Removed[0].Reason != tasks.ReasonExpired {
		t.Fatalf("second purge = %+v, %v", rep, err)
	}
	if files := e.BlobFiles(t); len(files) != 0 {
		t.Fatalf("blob files left: %v", files)
	}

	// Every step is in the audit log, in order, and the chain holds.
	var actions []string
	for _, ev := range e.Audit(t, e.OrgID) {
		actions = append(actions, ev.Action)
	}
	want := []string{custos.ActionBootstrap, custos.ActionTrackerInstall, custos.ActionTrackerSession,
		custos.ActionLaunchCreate, custos.ActionLaunchExchange, custos.ActionRunCreate, custos.ActionArtifactPut,
		custos.ActionArtifactGet, custos.ActionArtifactPut, custos.ActionArtifactGet, custos.ActionIndexPut,
		custos.ActionRunComplete, custos.ActionTaskComplete, custos.ActionArtifactPurge, custos.ActionArtifactPurge}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit actions:\n got %v\nwant %v", actions, want)
	}
	if v := custos.VerifyChain(nil, e.Audit(t, e.OrgID)); !v.OK {
		t.Fatalf("audit chain broken: %+v", v)
	}
}

// Ensure tracker installs are managed by owner and admin keys only, named
// validly, unique while live, and stop working when revoked.
func TestTrackerInstall(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure a revoked install's token, keys and unused codes stop working.
		e := MustOpenEnv(t)
		in, itok := e.MustInstall(t, "jira-prod")
		rk := e.MustSession(t, itok)
		l := e.MustLaunch(t, itok, Project, Task, 0)
		if err := e.Service.RevokeTrackerInstall(As(e.Admin), in.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.Service.StartTrackerSession(FromIP(), itok)
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.SpendRequestKey(FromIP(), itok, rk)
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: Task})
		Code(t, err, custos.EUNAUTHORIZED)
		if last := e.Last(t, e.OrgID); last.Action != custos.ActionLaunchExchange || last.Outcome != custos.OutcomeDenied || !strings.Contains(last.Reason, "revoked") {
			t.Fatalf("last audit event = %+v", last)
		}
		// The name is free again.
		e.MustInstall(t, "jira-prod")
	})
	t.Run("ErrDuplicateName", func(t *testing.T) {
		// Ensure a live install's name cannot be taken twice.
		e := MustOpenEnv(t)
		e.MustInstall(t, "jira-prod")
		_, _, err := e.Service.CreateTrackerInstall(As(e.Admin), "jira-prod")
		Code(t, err, custos.ECONFLICT)
	})
	t.Run("ErrNotAdmin", func(t *testing.T) {
		// Ensure members and anonymous callers cannot manage installs.
		e := MustOpenEnv(t)
		member := *e.Admin
		member.Role = custos.RoleMember
		_, _, err := e.Service.CreateTrackerInstall(As(&member), "jira-prod")
		Code(t, err, custos.EFORBIDDEN)
		_, _, err = e.Service.CreateTrackerInstall(context.Background(), "jira-prod")
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.ListTrackerInstalls(As(&member))
		Code(t, err, custos.EFORBIDDEN)
		err = e.Service.RevokeTrackerInstall(As(&member), custos.NewID(custos.PrefixTrackerInstall))
		Code(t, err, custos.EFORBIDDEN)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		// Ensure bad names and ids are refused.
		e := MustOpenEnv(t)
		_, _, err := e.Service.CreateTrackerInstall(As(e.Admin), "")
		Code(t, err, custos.EINVALID)
		_, _, err = e.Service.CreateTrackerInstall(As(e.Admin), "jira\nprod")
		Code(t, err, custos.EINVALID)
		err = e.Service.RevokeTrackerInstall(As(e.Admin), "nope")
		Code(t, err, custos.EINVALID)
		err = e.Service.RevokeTrackerInstall(As(e.Admin), custos.NewID(custos.PrefixTrackerInstall))
		Code(t, err, custos.ENOTFOUND)
	})
	t.Run("ErrBadToken", func(t *testing.T) {
		// Ensure malformed and unknown install tokens are refused.
		e := MustOpenEnv(t)
		_, err := e.Service.StartTrackerSession(FromIP(), "cst_ti_short")
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.StartTrackerSession(FromIP(), token.New(token.PrefixTrackerInstall))
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.StartTrackerSession(FromIP(), token.New(token.PrefixPermit))
		Code(t, err, custos.EUNAUTHORIZED)
	})
}
