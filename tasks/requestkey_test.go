package tasks_test

import (
	"sync"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// refusedKey asserts that the last audit event of org refused a request
// key for reason, from the caller's address.
func refusedKey(tb testing.TB, e *Env, orgID, reason string) *custos.AuditEvent {
	tb.Helper()
	ev := e.Last(tb, orgID)
	if ev.Action != custos.ActionRequestKeyReplay || ev.Outcome != custos.OutcomeDenied || ev.Reason != reason || ev.IP != "192.0.2.9" {
		tb.Fatalf("last audit event = %+v, want a refused key (%s)", ev, reason)
	}
	return ev
}

// Ensure a request key is spent exactly once, within its life, by its own
// install; every refusal is audited and changes nothing.
func TestRequestKey(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure a chain goes on key after key in one session.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		rk := e.MustSession(t, itok)
		var session string
		for range 5 {
			call := e.MustSpend(t, itok, rk)
			if session == "" {
				session = call.Spent.SessionID
			} else if call.Spent.SessionID != session || call.Next.SessionID != session {
				t.Fatalf("session changed: %s → %s", session, call.Next.SessionID)
			}
			rk = call.Next.RequestKey
		}
	})
	t.Run("ErrReplayed", func(t *testing.T) {
		// Ensure a spent key is refused and audited as used.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		rk := e.MustSession(t, itok)
		e.MustSpend(t, itok, rk)
		before := e.Snapshot(t)
		_, err := e.Service.SpendRequestKey(FromIP(), itok, rk)
		Code(t, err, custos.EUNAUTHORIZED)
		refusedKey(t, e, e.OrgID, "used")
		if after := e.Snapshot(t); after != before {
			t.Fatalf("a replay changed the store:\n%s\n---\n%s", before, after)
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		// Ensure a key past its 10 minutes is refused and audited as expired.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		rk := e.MustSession(t, itok)
		e.Clock.Add(custos.RequestKeyTTL)
		before := e.Snapshot(t)
		_, err := e.Service.SpendRequestKey(FromIP(), itok, rk)
		Code(t, err, custos.EUNAUTHORIZED)
		refusedKey(t, e, e.OrgID, "expired")
		if after := e.Snapshot(t); after != before {
			t.Fatal("an expired key changed the store")
		}
	})
	t.Run("ErrForeignInstall", func(t *testing.T) {
		// Ensure another install's key is refused, audited, and still
		// works for its own install.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		_, otherTok := e.MustInstall(t, "linear")
		rk := e.MustSession(t, otherTok)
		before := e.Snapshot(t)
		_, err := e.Service.SpendRequestKey(FromIP(), itok, rk)
		Code(t, err, custos.EUNAUTHORIZED)
		refusedKey(t, e, e.OrgID, "another install")
		if after := e.Snapshot(t); after != before {
			t.Fatal("a foreign key changed the store")
		}
		e.MustSpend(t, otherTok, rk)
	})
	t.Run("ErrForeignOrg", func(t *testing.T) {
		// Ensure another org's key is refused and audited in both orgs.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		other := &custos.APIKey{ID: custos.NewID(custos.PrefixKey), OrgID: custos.NewID(custos.PrefixOrg), Name: "owner", Role: custos.RoleOwner}
		_, otherTok, err := e.Service.CreateTrackerInstall(As(other), "jira-prod")
		if err != nil {
			t.Fatal(err)
		}
		e.saw(otherTok)
		rk := e.MustSession(t, otherTok)
		_, err = e.Service.SpendRequestKey(FromIP(), itok, rk)
		Code(t, err, custos.EUNAUTHORIZED)
		refusedKey(t, e, e.OrgID, "another install")
		if ev := e.Last(t, other.OrgID); ev.Action != custos.ActionRequestKeyReplay || ev.Outcome != custos.OutcomeDenied {
			t.Fatalf("other org's last event = %+v", ev)
		}
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		// Ensure unknown and malformed keys are refused and audited.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		_, err := e.Service.SpendRequestKey(FromIP(), itok, token.New(token.PrefixRequestKey))
		Code(t, err, custos.EUNAUTHORIZED)
		refusedKey(t, e, e.OrgID, "unknown")
		_, err = e.Service.SpendRequestKey(FromIP(), itok, "cst_rk_x")
		Code(t, err, custos.EUNAUTHORIZED)
		refusedKey(t, e, e.OrgID, "malformed")
	})
	t.Run("ConcurrentSpend", func(t *testing.T) {
		// Ensure of many concurrent spends of one key exactly one wins.
		e := MustOpenEnv(t)
		_, itok := e.MustInstall(t, "jira-prod")
		rk := e.MustSession(t, itok)
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		calls := make([]*custos.TrackerCall, n)
		for i := range n {
			wg.Go(func() { calls[i], errs[i] = e.Service.SpendRequestKey(FromIP(), itok, rk) })
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				e.saw(calls[i].Next.RequestKey)
			} else if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
				t.Fatalf("spend %d: %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d spends won, want 1", wins)
		}
		refused := 0
		for _, ev := range e.Audit(t, e.OrgID) {
			if ev.Action == custos.ActionRequestKeyReplay {
				refused++
			}
		}
		if refused != n-1 {
			t.Fatalf("%d refusals audited, want %d", refused, n-1)
		}
	})
}
