package tasks_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/token"
)

// Ensure launch links live 1 to 14 days, carry their pair, and take a
// spent request key.
func TestCreateLaunchLink(t *testing.T) {
	e := MustOpenEnv(t)
	_, itok := e.MustInstall(t, "jira-prod")
	t.Run("OK", func(t *testing.T) {
		// Ensure the ttl bounds are inclusive and 0 means 7 days.
		for _, ttl := range []time.Duration{0, custos.MinLaunchTTL, custos.MaxLaunchTTL} {
			l := e.MustLaunch(t, itok, Project, Task, ttl)
			want := ttl
			if want == 0 {
				want = custos.DefaultLaunchTTL
			}
			if got := l.ExpiresAt.Sub(e.Clock.Now()); got != want {
				t.Fatalf("ttl %s: code lives %s", ttl, got)
			}
		}
	})
	t.Run("ErrTTL", func(t *testing.T) {
		// Ensure a ttl outside 1–14 days is refused and mints nothing.
		for _, ttl := range []time.Duration{time.Hour, custos.MinLaunchTTL - time.Second, custos.MaxLaunchTTL + time.Second, -time.Hour} {
			call := e.MustSpend(t, itok, e.MustSession(t, itok))
			before := e.Snapshot(t)
			_, err := e.Service.CreateLaunchLink(FromIP(), call, custos.LaunchLinkInput{ProjectID: Project, TaskID: Task, TTL: custos.Duration(ttl)})
			Code(t, err, custos.EINVALID)
			if e.Snapshot(t) != before {
				t.Fatalf("ttl %s changed the store", ttl)
			}
		}
	})
	t.Run("ErrRefs", func(t *testing.T) {
		// Ensure bad project and task ids are refused.
		call := e.MustSpend(t, itok, e.MustSession(t, itok))
		for _, in := range []custos.LaunchLinkInput{{ProjectID: "", TaskID: Task}, {ProjectID: Project, TaskID: "a/b"},
			{ProjectID: "-x", TaskID: Task}, {ProjectID: Project, TaskID: strings.Repeat("a", 129)}} {
			_, err := e.Service.CreateLaunchLink(FromIP(), call, in)
			Code(t, err, custos.EINVALID)
		}
	})
	t.Run("ErrNoCall", func(t *testing.T) {
		// Ensure a link needs an authenticated tracker call.
		_, err := e.Service.CreateLaunchLink(FromIP(), nil, custos.LaunchLinkInput{ProjectID: Project, TaskID: Task})
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.CreateLaunchLink(FromIP(), &custos.TrackerCall{}, custos.LaunchLinkInput{ProjectID: Project, TaskID: Task})
		Code(t, err, custos.EUNAUTHORIZED)
	})
	t.Run("NoPublicURL", func(t *testing.T) {
		// Ensure a server without a public URL gives the custos:// form only.
		e := MustOpenEnv(t, func(c *tasks.Config) { c.PublicURL = "" })
		_, itok := e.MustInstall(t, "jira-prod")
		l := e.MustLaunch(t, itok, "a:b", "c.d", 0)
		if l.URL != "" || !strings.HasPrefix(l.Link, "custos://launch?code=cst_lc_") || !strings.HasSuffix(l.Link, "&project=a%3Ab&task=c.d") {
			t.Fatalf("link = %q, url = %q", l.Link, l.URL)
		}
	})
}

// exchangeRefused asserts err's code, the denial in the audit log, and that
// nothing changed.
func exchangeRefused(tb testing.TB, e *Env, before string, err error, code, reason string) {
	tb.Helper()
	Code(tb, err, code)
	ev := e.Last(tb, e.OrgID)
	if ev.Action != custos.ActionLaunchExchange || ev.Outcome != custos.OutcomeDenied || !strings.Contains(ev.Reason, reason) || ev.IP != "192.0.2.9" {
		tb.Fatalf("last audit event = %+v, want a denied exchange (%s)", ev, reason)
	}
	if after := e.Snapshot(tb); after != before {
		tb.Fatalf("a refused exchange changed the store:\n%s\n---\n%s", before, after)
	}
}

// Ensure a launch code is exchanged once, in time, for its own pair only;
// refusals are audited and consume nothing.
func TestExchangeLaunchCode(t *testing.T) {
	t.Run("ErrUsed", func(t *testing.T) {
		// Ensure a used code is refused.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		l := e.MustLaunch(t, itok, Project, Task, 0)
		in := custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: Task}
		g, err := e.Service.ExchangeLaunchCode(FromIP(), in)
		if err != nil {
			t.Fatal(err)
		}
		e.saw(g.Permit)
		before := e.Snapshot(t)
		_, err = e.Service.ExchangeLaunchCode(FromIP(), in)
		exchangeRefused(t, e, before, err, custos.EUNAUTHORIZED, "already used")
	})
	t.Run("ErrExpired", func(t *testing.T) {
		// Ensure an expired code is refused.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		l := e.MustLaunch(t, itok, Project, Task, custos.MinLaunchTTL)
		e.Clock.Add(custos.MinLaunchTTL)
		before := e.Snapshot(t)
		_, err := e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: Task})
		exchangeRefused(t, e, before, err, custos.EUNAUTHORIZED, "expired")
	})
	t.Run("ErrOtherPair", func(t *testing.T) {
		// Ensure a code for another pair is forbidden and stays usable for
		// its own.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		l := e.MustLaunch(t, itok, Project, Task, 0)
		for _, in := range []custos.LaunchExchangeInput{
			{Code: l.Code, ProjectID: Project, TaskID: "PROJ-43"},
			{Code: l.Code, ProjectID: "PROJ-2", TaskID: Task},
		} {
			before := e.Snapshot(t)
			_, err := e.Service.ExchangeLaunchCode(FromIP(), in)
			exchangeRefused(t, e, before, err, custos.EFORBIDDEN, "another project and task")
		}
		g, err := e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: Task})
		if err != nil {
			t.Fatal(err)
		}
		e.saw(g.Permit)
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		// Ensure unknown and malformed codes are refused.
		e := MustOpenEnv(t)
		_, err := e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: token.New(token.PrefixLaunchCode), ProjectID: Project, TaskID: Task})
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: "cst_lc_", ProjectID: Project, TaskID: Task})
		Code(t, err, custos.EUNAUTHORIZED)
		_, err = e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: token.New(token.PrefixLaunchCode), ProjectID: "", TaskID: Task})
		Code(t, err, custos.EINVALID)
	})
	t.Run("ConcurrentExchange", func(t *testing.T) {
		// Ensure of many concurrent exchanges of one code exactly one wins.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		l := e.MustLaunch(t, itok, Project, Task, 0)
		const n = 16
		var wg sync.WaitGroup
		grants := make([]*custos.PermitGrant, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				grants[i], errs[i] = e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: Task})
			})
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				e.saw(grants[i].Permit)
			} else if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
				t.Fatalf("exchange %d: %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d exchanges won, want 1", wins)
		}
	})
	t.Run("ErrTaskComplete", func(t *testing.T) {
		// Ensure no launch code is minted for a complete task.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		_, permit := e.MustPermit(t, itok, Project, Task)
		if _, err := e.Service.CompleteTask(FromIP(), permit, Task); err != nil {
			t.Fatal(err)
		}
		call := e.MustSpend(t, itok, e.MustSession(t, itok))
		_, err := e.Service.CreateLaunchLink(FromIP(), call, custos.LaunchLinkInput{ProjectID: Project, TaskID: Task})
		Code(t, err, custos.ECONFLICT)
	})
}
