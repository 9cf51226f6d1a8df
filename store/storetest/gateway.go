package storetest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// NewProvider returns an OpenAI provider of org created at Now with a
// sealed key whose ciphertext is "ct-"+name and whose wrapped DEK is
// "dek-"+name under keeper "local:1".
func NewProvider(orgID, name string, priority int) *custos.ModelProvider {
	return &custos.ModelProvider{
		ID: custos.NewID("prv"), OrgID: orgID, Name: name, Kind: custos.ProviderOpenAI,
		BaseURL: "https://api.openai.com/v1", Models: []string{"gpt-4o", "o3*"}, Priority: priority,
		HasKey: true, CreatedAt: Now, CreatedBy: "key_0000000000000001",
		Ciphertext: []byte("ct-" + name), WrappedDEK: []byte("dek-" + name), KeeperID: "local:1",
	}
}

// NewUsage returns a successful chat record of key keyID in org at t.
func NewUsage(orgID, keyID, model string, in, out int64, t time.Time) *custos.UsageRecord {
	return &custos.UsageRecord{
		ID: custos.NewID("use"), OrgID: orgID, KeyID: keyID, Provider: "openai", Model: model, Route: "chat",
		TokensIn: in, TokensOut: out, LatencyMS: 100, OverheadMS: 1.5, Status: 200, Mode: custos.PrivacyNormal, Time: t,
	}
}

// MustCreateProvider creates p.
func MustCreateProvider(tb testing.TB, s custos.Store, p *custos.ModelProvider) {
	tb.Helper()
	if err := s.CreateProvider(context.Background(), p, NewEvent(p.OrgID, custos.ActionProviderAdd)); err != nil {
		tb.Fatal(err)
	}
}

// MustPutBudget sets the budget of (keyID, period) of org to limit tokens.
func MustPutBudget(tb testing.TB, s custos.Store, orgID, keyID, period string, limit int64) *custos.Budget {
	tb.Helper()
	b := &custos.Budget{OrgID: orgID, KeyID: keyID, Period: period, Limit: limit, UpdatedAt: Now, UpdatedBy: "key_0000000000000001"}
	if err := s.PutBudget(context.Background(), b, NewEvent(orgID, custos.ActionBudgetSet)); err != nil {
		tb.Fatal(err)
	}
	return b
}

// MustBudgets returns org's budgets at Now, keyed "keyID/period".
func MustBudgets(tb testing.TB, s custos.Store, orgID string) map[string]*custos.Budget {
	tb.Helper()
	bs, err := s.ListBudgets(context.Background(), orgID, Now)
	if err != nil {
		tb.Fatal(err)
	}
	m := make(map[string]*custos.Budget, len(bs))
	for _, b := range bs {
		m[b.KeyID+"/"+b.Period] = b
	}
	return m
}

// mustCounters fails the test unless the budget of key (keyID/period) has
// spent and reserved tokens in its window at Now.
func mustCounters(tb testing.TB, s custos.Store, orgID, key string, spent, reserved int64) {
	tb.Helper()
	b, ok := MustBudgets(tb, s, orgID)[key]
	if !ok {
		tb.Fatalf("budget %s not listed", key)
	}
	if b.Spent != spent || b.Reserved != reserved {
		tb.Fatalf("budget %s: spent=%d reserved=%d, want %d and %d", key, b.Spent, b.Reserved, spent, reserved)
	}
}

func testProviderStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure providers round-trip with their sealed keys (or none), list by
	// priority then creation time, per org, and delete.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		p1 := NewProvider(org.ID, "openai", 10)
		p2 := NewProvider(org.ID, "anthropic", 10)
		p2.Kind, p2.Models, p2.CreatedAt = custos.ProviderAnthropic, []string{"claude-*"}, Now.Add(time.Second)
		p3 := &custos.ModelProvider{ID: custos.NewID("prv"), OrgID: org.ID, Name: "ollama", Kind: custos.ProviderLocal,
			BaseURL: "http://127.0.0.1:11434/v1", Models: []string{"llama3*"}, Priority: -1, CreatedAt: Now.Add(2 * time.Second), CreatedBy: "key_0000000000000001"}
		for _, p := range []*custos.ModelProvider{p2, p1, p3} {
			if err := s.CreateProvider(ctx, p, NewEvent(org.ID, custos.ActionProviderAdd)); err != nil {
				t.Fatal(err)
			}
		}
		other := NewProvider("org_0000000000000000", "openai", 0)
		if err := s.CreateProvider(ctx, other, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListProviders(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.ModelProvider{p3, p1, p2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListProviders=%+v, want %+v", got, want)
		}
		if err := s.DeleteProvider(ctx, org.ID, "openai", NewEvent(org.ID, custos.ActionProviderRemove)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListProviders(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.ModelProvider{p3, p2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListProviders=%+v, want %+v", got, want)
		}
		if got, err := s.ListProviders(ctx, other.OrgID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.ModelProvider{other}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListProviders of the other org=%+v, want %+v", got, want)
		}
		if got, err := s.ListProviders(ctx, "org_00000000000000ff"); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ListProviders of an org without providers=%v, want empty", got)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[len(evs)-1].Action, custos.ActionProviderRemove; got != want {
			t.Fatalf("last action=%q, want %q", got, want)
		}
		MustVerifyChain(t, s, org.ID, 5)
	})

	// Ensure a name taken in the org is a conflict that writes no event,
	// while another org may use it.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		if err := s.CreateProvider(ctx, NewProvider(org.ID, "openai", 0), NewEvent(org.ID, custos.ActionProviderAdd)); err != nil {
			t.Fatal(err)
		}
		err := s.CreateProvider(ctx, NewProvider(org.ID, "openai", 5), NewEvent(org.ID, custos.ActionProviderAdd))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if err := s.CreateProvider(ctx, NewProvider("org_0000000000000000", "openai", 0), nil); err != nil {
			t.Fatalf("same name in another org: %v", err)
		}
		if ps, err := s.ListProviders(ctx, org.ID); err != nil || len(ps) != 1 || ps[0].Priority != 0 {
			t.Fatalf("ListProviders=%+v, %v", ps, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure HasKey must agree with the sealed key.
	t.Run("ErrInvalid", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		noKey := NewProvider(org.ID, "a", 0)
		noKey.HasKey = false
		missing := NewProvider(org.ID, "b", 0)
		missing.Ciphertext, missing.WrappedDEK = nil, nil
		for _, p := range []*custos.ModelProvider{noKey, missing} {
			err := s.CreateProvider(ctx, p, NewEvent(org.ID, custos.ActionProviderAdd))
			if got, want := code(err), custos.EINVALID; got != want {
				t.Fatalf("%s: code=%q, want %q (%v)", p.Name, got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 1)
	})

	// Ensure deleting an unknown provider, or another org's, is not found
	// and writes no event.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		if err := s.CreateProvider(ctx, NewProvider(org.ID, "openai", 0), NewEvent(org.ID, custos.ActionProviderAdd)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ org, name string }{{org.ID, "nope"}, {"org_0000000000000000", "openai"}} {
			err := s.DeleteProvider(ctx, c.org, c.name, NewEvent(org.ID, custos.ActionProviderRemove))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

func testPrivacyStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure rules are created, replaced in place, listed org first, then
	// projects, then keys, and deleted.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		rule := func(scope, target, mode string, d time.Duration) *custos.PrivacyRule {
			return &custos.PrivacyRule{OrgID: org.ID, Scope: scope, Target: target, Mode: mode, UpdatedAt: Now.Add(d), UpdatedBy: owner.ID}
		}
		key := rule(custos.ScopeKey, owner.ID, custos.PrivacyOffline, 0)
		web := rule(custos.ScopeProject, "web", custos.PrivacySensitive, time.Second)
		api := rule(custos.ScopeProject, "api", custos.PrivacyNormal, 2*time.Second)
		whole := rule(custos.ScopeOrg, "", custos.PrivacyNormal, 3*time.Second)
		for _, r := range []*custos.PrivacyRule{key, web, api, whole} {
			if err := s.PutPrivacyRule(ctx, r, NewEvent(org.ID, custos.ActionPrivacySet)); err != nil {
				t.Fatal(err)
			}
		}
		whole2 := rule(custos.ScopeOrg, "", custos.PrivacySensitive, time.Hour)
		if err := s.PutPrivacyRule(ctx, whole2, NewEvent(org.ID, custos.ActionPrivacySet)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListPrivacyRules(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.PrivacyRule{whole2, api, web, key}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPrivacyRules=%+v, want %+v", got, want)
		}
		if err := s.DeletePrivacyRule(ctx, org.ID, custos.ScopeProject, "web", NewEvent(org.ID, custos.ActionPrivacyRemove)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListPrivacyRules(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.PrivacyRule{whole2, api, key}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPrivacyRules=%+v, want %+v", got, want)
		}
		if got, err := s.ListPrivacyRules(ctx, "org_0000000000000000"); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ListPrivacyRules of another org=%v, want empty", got)
		}
		MustVerifyChain(t, s, org.ID, 7)
	})

	// Ensure deleting a missing rule, or another org's, is not found and
	// writes no event.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		r := &custos.PrivacyRule{OrgID: org.ID, Scope: custos.ScopeProject, Target: "web", Mode: custos.PrivacyOffline, UpdatedAt: Now, UpdatedBy: owner.ID}
		if err := s.PutPrivacyRule(ctx, r, NewEvent(org.ID, custos.ActionPrivacySet)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ org, scope, target string }{
			{org.ID, custos.ScopeProject, "api"}, {org.ID, custos.ScopeKey, "web"}, {"org_0000000000000000", custos.ScopeProject, "web"},
		} {
			err := s.DeletePrivacyRule(ctx, c.org, c.scope, c.target, NewEvent(org.ID, custos.ActionPrivacyRemove))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("%+v: code=%q, want %q (%v)", c, got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

func testBudgetStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure budgets are created, replaced in place (keeping their
	// counters), listed org first with the current window's counters, and
	// deleted.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		month := MustPutBudget(t, s, org.ID, "", custos.PeriodMonth, 50000)
		day := MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 1000)
		key := MustPutBudget(t, s, org.ID, owner.ID, custos.PeriodDay, 100)
		if got, err := s.ListBudgets(ctx, org.ID, Now); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Budget{day, month, key}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListBudgets=%+v, want %+v", got, want)
		}

		r, err := s.ReserveBudget(ctx, org.ID, owner.ID, 60, Now)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SettleBudget(ctx, r, 40); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReserveBudget(ctx, org.ID, owner.ID, 30, Now); err != nil {
			t.Fatal(err)
		}
		day2 := &custos.Budget{OrgID: org.ID, Period: custos.PeriodDay, Limit: 2000, UpdatedAt: Now.Add(time.Minute), UpdatedBy: owner.ID}
		if err := s.PutBudget(ctx, day2, NewEvent(org.ID, custos.ActionBudgetSet)); err != nil {
			t.Fatal(err)
		}
		day2.Spent, day2.Reserved = 40, 30
		month.Spent, month.Reserved = 40, 30
		key.Spent, key.Reserved = 40, 30
		if got, err := s.ListBudgets(ctx, org.ID, Now); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Budget{day2, month, key}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListBudgets=%+v, want %+v", got, want)
		}

		// The next day's window is empty; the month's is not.
		next, err := s.ListBudgets(ctx, org.ID, Now.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range next {
			want := int64(0)
			if b.Period == custos.PeriodMonth {
				want = 40
			}
			if b.Spent != want {
				t.Fatalf("next day, budget %s/%s: spent=%d, want %d", b.KeyID, b.Period, b.Spent, want)
			}
		}

		if err := s.DeleteBudget(ctx, org.ID, owner.ID, custos.PeriodDay, NewEvent(org.ID, custos.ActionBudgetRemove)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListBudgets(ctx, org.ID, Now); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Budget{day2, month}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListBudgets=%+v, want %+v", got, want)
		}
		if got, err := s.ListBudgets(ctx, "org_0000000000000000", Now); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ListBudgets of another org=%v, want empty", got)
		}
		MustVerifyChain(t, s, org.ID, 6)
	})

	// Ensure a budget with an unknown period or a negative limit is
	// refused without an event.
	t.Run("ErrInvalid", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		for _, b := range []*custos.Budget{
			{OrgID: org.ID, Period: "week", Limit: 10, UpdatedAt: Now},
			{OrgID: org.ID, Period: custos.PeriodDay, Limit: -1, UpdatedAt: Now},
		} {
			err := s.PutBudget(ctx, b, NewEvent(org.ID, custos.ActionBudgetSet))
			if got, want := code(err), custos.EINVALID; got != want {
				t.Fatalf("%+v: code=%q, want %q (%v)", b, got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 1)
	})

	// Ensure deleting a missing budget, or another org's, is not found and
	// writes no event.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 10)
		for _, c := range []struct{ org, key, period string }{
			{org.ID, "", custos.PeriodMonth}, {org.ID, owner.ID, custos.PeriodDay}, {"org_0000000000000000", "", custos.PeriodDay},
		} {
			err := s.DeleteBudget(ctx, c.org, c.key, c.period, NewEvent(org.ID, custos.ActionBudgetRemove))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("%+v: code=%q, want %q (%v)", c, got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure that without a budget a reservation is empty, and settling it
	// does nothing.
	t.Run("ReserveBudget_NoBudget", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		// Another key's budget does not apply.
		MustPutBudget(t, s, org.ID, "key_00000000000000ff", custos.PeriodDay, 1)
		r, err := s.ReserveBudget(ctx, org.ID, owner.ID, 1000, Now)
		if err != nil {
			t.Fatal(err)
		} else if want := (&custos.Reservation{OrgID: org.ID}); !reflect.DeepEqual(r, want) {
			t.Fatalf("Reservation=%+v, want %+v", r, want)
		}
		if err := s.SettleBudget(ctx, r, 500); err != nil {
			t.Fatal(err)
		} else if err := s.SettleBudget(ctx, nil, 500); err != nil {
			t.Fatal(err)
		}
		mustCounters(t, s, org.ID, "key_00000000000000ff/day", 0, 0)
	})

	// Ensure a reservation holds tokens in every applicable window, and
	// settling releases them and counts what was used.
	t.Run("ReserveBudget_OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 1000)
		MustPutBudget(t, s, org.ID, owner.ID, custos.PeriodMonth, 5000)
		at := Now.In(time.FixedZone("X", 20*3600)) // March 5th there, March 4th in UTC
		r, err := s.ReserveBudget(ctx, org.ID, owner.ID, 300, at)
		if err != nil {
			t.Fatal(err)
		}
		want := &custos.Reservation{OrgID: org.ID, Tokens: 300, Windows: []custos.BudgetWindow{
			{KeyID: "", Period: custos.PeriodDay, Start: time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)},
			{KeyID: owner.ID, Period: custos.PeriodMonth, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)},
		}}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("Reservation=%+v, want %+v", r, want)
		}
		mustCounters(t, s, org.ID, "/day", 0, 300)
		mustCounters(t, s, org.ID, owner.ID+"/month", 0, 300)

		// Settling with more than was reserved counts it all and never
		// leaves a negative reservation.
		if err := s.SettleBudget(ctx, r, 450); err != nil {
			t.Fatal(err)
		}
		mustCounters(t, s, org.ID, "/day", 450, 0)
		mustCounters(t, s, org.ID, owner.ID+"/month", 450, 0)
		if err := s.SettleBudget(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		mustCounters(t, s, org.ID, "/day", 450, 0)

		// Up to the limit exactly, then nothing more.
		if _, err := s.ReserveBudget(ctx, org.ID, owner.ID, 550, Now); err != nil {
			t.Fatal(err)
		}
		_, err = s.ReserveBudget(ctx, org.ID, owner.ID, 1, Now)
		if got, want := code(err), custos.ERATELIMITED; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		msg := custos.ErrorMessage(err)
		for _, want := range []string{"the org's daily token budget (1000 tokens)", "spent", "2025-03-05T00:00:00Z"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("message %q does not say %q", msg, want)
			}
		}
		// The next day is a new window.
		if _, err := s.ReserveBudget(ctx, org.ID, owner.ID, 1000, Now.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure that with the org's and the key's budgets both applying, the
	// smaller one binds, and a refused reservation changes no counter.
	t.Run("ReserveBudget_ErrRateLimited", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		k := MustCreateKey(t, s, org.ID, "ci", custos.RoleAgent)
		MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 1000)
		MustPutBudget(t, s, org.ID, k.ID, custos.PeriodMonth, 100)
		e := MustCacheEpoch(t, s)
		if _, err := s.ReserveBudget(ctx, org.ID, k.ID, 80, Now); err != nil {
			t.Fatal(err)
		}
		_, err := s.ReserveBudget(ctx, org.ID, k.ID, 30, Now)
		if got, want := code(err), custos.ERATELIMITED; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		msg := custos.ErrorMessage(err)
		for _, want := range []string{"key " + k.ID + "'s monthly token budget (100 tokens)", "20 tokens left", "2025-04-01T00:00:00Z"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("message %q does not say %q", msg, want)
			}
		}
		mustCounters(t, s, org.ID, "/day", 0, 80)
		mustCounters(t, s, org.ID, k.ID+"/month", 0, 80)

		// Another key only meets the org's budget.
		if _, err := s.ReserveBudget(ctx, org.ID, owner.ID, 920, Now); err != nil {
			t.Fatal(err)
		}
		_, err = s.ReserveBudget(ctx, org.ID, k.ID, 1, Now)
		if got, want := code(err), custos.ERATELIMITED; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		} else if msg := custos.ErrorMessage(err); !strings.Contains(msg, "the org's daily token budget") {
			t.Fatalf("message %q does not name the org's budget", msg)
		}
		mustCounters(t, s, org.ID, "/day", 0, 1000)
		mustCounters(t, s, org.ID, k.ID+"/month", 0, 80)
		if got := MustCacheEpoch(t, s); got != e {
			t.Fatalf("epoch=%d, want %d: reservations must not advance it", got, e)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a reservation of no tokens, or a negative use, is invalid.
	t.Run("ErrInvalidTokens", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 1000)
		for _, n := range []int64{0, -5} {
			if _, err := s.ReserveBudget(ctx, org.ID, owner.ID, n, Now); code(err) != custos.EINVALID {
				t.Fatalf("ReserveBudget(%d) err=%v, want invalid", n, err)
			}
		}
		r, err := s.ReserveBudget(ctx, org.ID, owner.ID, 10, Now)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SettleBudget(ctx, r, -1); code(err) != custos.EINVALID {
			t.Fatalf("SettleBudget(-1) err=%v, want invalid", err)
		}
		mustCounters(t, s, org.ID, "/day", 0, 10)
	})
}

func testReserveConcurrent(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure concurrent reservations never overshoot a budget: exactly as
	// many succeed as fit, the others are rate limited, and settling them
	// all leaves exactly what was used.
	t.Run("OK", func(t *testing.T) {
		s := open(t)
		org, owner := MustBootstrap(t, s)
		MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 1000)
		mustReserveConcurrently(t, []custos.Store{s}, org.ID, owner.ID, 200, 100)
		mustCounters(t, s, org.ID, "/day", 700, 0)
	})

	// Ensure that with the org's and a key's budgets both applying, the
	// smaller one binds under concurrency too, and refused reservations
	// leave neither counter changed.
	t.Run("KeyAndOrg", func(t *testing.T) {
		s := open(t)
		org, owner := MustBootstrap(t, s)
		MustPutBudget(t, s, org.ID, "", custos.PeriodDay, 1000)
		MustPutBudget(t, s, org.ID, owner.ID, custos.PeriodMonth, 500)
		mustReserveConcurrently(t, []custos.Store{s}, org.ID, owner.ID, 100, 50)
		mustCounters(t, s, org.ID, "/day", 350, 0)
		mustCounters(t, s, org.ID, owner.ID+"/month", 350, 0)
	})
}

// mustReserveConcurrently reserves 10 tokens n times at once for keyID,
// spread over stores, and fails the test unless exactly wins succeed, the
// others are rate limited, and the day's reservations of the org are
// 10*wins. Then it settles each winner with 7 tokens used.
func mustReserveConcurrently(t *testing.T, stores []custos.Store, orgID, keyID string, n, wins int) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var won []*custos.Reservation
	limited := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := stores[i%len(stores)].ReserveBudget(ctx, orgID, keyID, 10, Now)
			mu.Lock()
			defer mu.Unlock()
			switch code(err) {
			case "":
				won = append(won, r)
			case custos.ERATELIMITED:
				limited++
			default:
				t.Errorf("reservation %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got, want := len(won), wins; got != want {
		t.Fatalf("reservations=%d, want %d", got, want)
	} else if got, want := limited, n-wins; got != want {
		t.Fatalf("rate limited=%d, want %d", got, want)
	}
	mustCounters(t, stores[0], orgID, "/day", 0, int64(10*wins))
	for i, r := range won {
		wg.Go(func() {
			if err := stores[i%len(stores)].SettleBudget(ctx, r, 7); err != nil {
				t.Errorf("settle %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func testUsageStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure records round-trip with every field, list newest first, and
	// are filtered by time, key and limit.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		zone := time.FixedZone("X", -5*3600)
		full := &custos.UsageRecord{ID: custos.NewID("use"), OrgID: org.ID, KeyID: owner.ID, Provider: "anthropic",
			Model: "claude-sonnet-4", Route: "messages", TokensIn: 1234, TokensOut: 567, LatencyMS: 812.25, OverheadMS: 0.75,
			Status: 529, Redactions: 3, KnownHits: 1, Stream: true, Mode: custos.PrivacySensitive, Time: Now.Add(time.Microsecond).In(zone)}
		a := NewUsage(org.ID, owner.ID, "gpt-4o", 10, 20, Now.Add(-time.Hour))
		b := NewUsage(org.ID, "key_00000000000000ff", "gpt-4o", 1, 2, Now.Add(-2*time.Hour))
		other := NewUsage("org_0000000000000000", owner.ID, "gpt-4o", 1, 1, Now)
		noID := NewUsage(org.ID, owner.ID, "gpt-4o", 5, 5, Now.Add(-3*time.Hour))
		noID.ID = ""
		if err := s.AppendUsage(ctx, []*custos.UsageRecord{a, full, b, other}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendUsage(ctx, []*custos.UsageRecord{noID}); err != nil {
			t.Fatal(err)
		} else if noID.ID == "" {
			t.Fatal("AppendUsage left the record without an id")
		}
		if err := s.AppendUsage(ctx, nil); err != nil {
			t.Fatal(err)
		}
		full.Time = full.Time.UTC()
		list := func(f custos.UsageFilter) []*custos.UsageRecord {
			t.Helper()
			got, err := s.ListUsage(ctx, org.ID, f)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		for _, c := range []struct {
			name string
			f    custos.UsageFilter
			want []*custos.UsageRecord
		}{
			{"all", custos.UsageFilter{}, []*custos.UsageRecord{full, a, b, noID}},
			{"since", custos.UsageFilter{Since: Now.Add(-time.Hour)}, []*custos.UsageRecord{full, a}},
			{"until", custos.UsageFilter{Until: Now.Add(-time.Hour)}, []*custos.UsageRecord{b, noID}},
			{"range", custos.UsageFilter{Since: Now.Add(-2 * time.Hour), Until: Now}, []*custos.UsageRecord{a, b}},
			{"key", custos.UsageFilter{KeyID: owner.ID}, []*custos.UsageRecord{full, a, noID}},
			{"limit", custos.UsageFilter{Limit: 2}, []*custos.UsageRecord{full, a}},
		} {
			if got := list(c.f); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("%s: ListUsage=%+v, want %+v", c.name, got, c.want)
			}
		}
		if got, err := s.ListUsage(ctx, "org_00000000000000ff", custos.UsageFilter{}); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ListUsage of an org without usage=%v, want empty", got)
		}
	})

	// Ensure a listing returns 1000 records unless told otherwise.
	t.Run("DefaultLimit", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		recs := make([]*custos.UsageRecord, 1001)
		for i := range recs {
			recs[i] = NewUsage(org.ID, owner.ID, "m", 1, 1, Now.Add(time.Duration(i)*time.Millisecond))
		}
		if err := s.AppendUsage(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListUsage(ctx, org.ID, custos.UsageFilter{}); err != nil {
			t.Fatal(err)
		} else if len(got) != 1000 || got[0].ID != recs[1000].ID {
			t.Fatalf("ListUsage=%d records, first %s; want 1000, first %s", len(got), got[0].ID, recs[1000].ID)
		}
	})

	// Ensure a batch with a duplicate id is refused whole.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		a := NewUsage(org.ID, owner.ID, "m", 1, 1, Now)
		if err := s.AppendUsage(ctx, []*custos.UsageRecord{a}); err != nil {
			t.Fatal(err)
		}
		// The duplicate first in a short batch, and last in a long one (a
		// backend may write a batch in several statements).
		long := make([]*custos.UsageRecord, 0, 41)
		for i := range 40 {
			long = append(long, NewUsage(org.ID, owner.ID, "m", 1, 1, Now.Add(time.Duration(i+1)*time.Millisecond)))
		}
		for _, batch := range [][]*custos.UsageRecord{{a, NewUsage(org.ID, owner.ID, "m", 1, 1, Now)}, append(long, a)} {
			err := s.AppendUsage(ctx, batch)
			if got, want := code(err), custos.ECONFLICT; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
			if got, err := s.ListUsage(ctx, org.ID, custos.UsageFilter{}); err != nil {
				t.Fatal(err)
			} else if len(got) != 1 {
				t.Fatalf("records=%d, want 1", len(got))
			}
		}
	})

	// Ensure summaries group by model, key, provider and UTC day, largest
	// token total first (days newest first), within the filter.
	t.Run("SummarizeUsage", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		k2 := "key_00000000000000ff"
		day1 := time.Date(2025, 3, 3, 23, 59, 59, 999999000, time.UTC)
		day2 := time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
		recs := []*custos.UsageRecord{
			NewUsage(org.ID, owner.ID, "gpt-4o", 100, 50, day1),
			NewUsage(org.ID, owner.ID, "gpt-4o", 10, 5, day2),
			NewUsage(org.ID, k2, "claude-sonnet-4", 1000, 1000, day2),
			NewUsage(org.ID, k2, "llama3", 1, 1, Now),
			NewUsage("org_0000000000000000", owner.ID, "gpt-4o", 99999, 0, Now),
		}
		recs[1].Status, recs[1].Redactions, recs[1].KnownHits, recs[1].LatencyMS = 502, 2, 1, 300
		recs[2].Provider = "anthropic"
		recs[3].Provider, recs[3].Redactions = "local", 4
		recs[3].Time = day2.In(time.FixedZone("X", -8*3600)).Add(time.Hour) // 17:00 on March 3rd there, March 4th in UTC
		if err := s.AppendUsage(ctx, recs); err != nil {
			t.Fatal(err)
		}
		sum := func(f custos.UsageFilter, by string) []custos.UsageSummary {
			t.Helper()
			got, err := s.SummarizeUsage(ctx, org.ID, f, by)
			if err != nil {
				t.Fatalf("by %s: %v", by, err)
			}
			out := make([]custos.UsageSummary, len(got))
			for i, g := range got {
				out[i] = *g
			}
			return out
		}
		gpt := custos.UsageSummary{Group: "gpt-4o", Requests: 2, Errors: 1, TokensIn: 110, TokensOut: 55, Redactions: 2, KnownHits: 1, AvgLatencyMS: 200}
		claude := custos.UsageSummary{Group: "claude-sonnet-4", Requests: 1, TokensIn: 1000, TokensOut: 1000, AvgLatencyMS: 100}
		llama := custos.UsageSummary{Group: "llama3", Requests: 1, TokensIn: 1, TokensOut: 1, Redactions: 4, AvgLatencyMS: 100}
		for _, c := range []struct {
			by   string
			f    custos.UsageFilter
			want []custos.UsageSummary
		}{
			{custos.UsageByModel, custos.UsageFilter{}, []custos.UsageSummary{claude, gpt, llama}},
			{custos.UsageByKey, custos.UsageFilter{}, []custos.UsageSummary{
				{Group: k2, Requests: 2, TokensIn: 1001, TokensOut: 1001, Redactions: 4, AvgLatencyMS: 100},
				{Group: owner.ID, Requests: 2, Errors: 1, TokensIn: 110, TokensOut: 55, Redactions: 2, KnownHits: 1, AvgLatencyMS: 200},
			}},
			{custos.UsageByProvider, custos.UsageFilter{}, []custos.UsageSummary{
				{Group: "anthropic", Requests: 1, TokensIn: 1000, TokensOut: 1000, AvgLatencyMS: 100},
				{Group: "openai", Requests: 2, Errors: 1, TokensIn: 110, TokensOut: 55, Redactions: 2, KnownHits: 1, AvgLatencyMS: 200},
				{Group: "local", Requests: 1, TokensIn: 1, TokensOut: 1, Redactions: 4, AvgLatencyMS: 100},
			}},
			{custos.UsageByDay, custos.UsageFilter{}, []custos.UsageSummary{
				{Group: "2025-03-04", Requests: 3, Errors: 1, TokensIn: 1011, TokensOut: 1006, Redactions: 6, KnownHits: 1, AvgLatencyMS: 500.0 / 3},
				{Group: "2025-03-03", Requests: 1, TokensIn: 100, TokensOut: 50, AvgLatencyMS: 100},
			}},
			{custos.UsageByModel, custos.UsageFilter{Since: day2, KeyID: owner.ID}, []custos.UsageSummary{
				{Group: "gpt-4o", Requests: 1, Errors: 1, TokensIn: 10, TokensOut: 5, Redactions: 2, KnownHits: 1, AvgLatencyMS: 300},
			}},
			{custos.UsageByDay, custos.UsageFilter{Until: day2}, []custos.UsageSummary{
				{Group: "2025-03-03", Requests: 1, TokensIn: 100, TokensOut: 50, AvgLatencyMS: 100},
			}},
			{custos.UsageByModel, custos.UsageFilter{Since: Now.Add(time.Hour)}, []custos.UsageSummary{}},
		} {
			got := sum(c.f, c.by)
			if len(got) != len(c.want) {
				t.Fatalf("by %s %+v: %+v, want %+v", c.by, c.f, got, c.want)
			}
			for i := range got {
				g, w := got[i], c.want[i]
				if d := g.AvgLatencyMS - w.AvgLatencyMS; d > 1e-9 || d < -1e-9 {
					t.Fatalf("by %s %+v: group %d: avg latency %v, want %v", c.by, c.f, i, g.AvgLatencyMS, w.AvgLatencyMS)
				}
				g.AvgLatencyMS = w.AvgLatencyMS
				if g != w {
					t.Fatalf("by %s %+v: group %d=%+v, want %+v", c.by, c.f, i, g, w)
				}
			}
		}
		if got, err := s.SummarizeUsage(ctx, org.ID, custos.UsageFilter{}, custos.UsageByModel); err != nil || got == nil {
			t.Fatalf("SummarizeUsage=%v, %v", got, err)
		}
	})

	// Ensure an unknown grouping is invalid.
	t.Run("SummarizeUsage_ErrInvalid", func(t *testing.T) {
		_, err := open(t).SummarizeUsage(context.Background(), "org_0000000000000000", custos.UsageFilter{}, "route; DROP TABLE usage_records")
		if got, want := code(err), custos.EINVALID; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})

	// Ensure PurgeUsage deletes exactly the records older than its time,
	// of every org, and says how many.
	t.Run("PurgeUsage", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		cut := Now.Add(-custos.DefaultUsageRetention)
		keep := NewUsage(org.ID, owner.ID, "m", 1, 1, cut)
		recs := []*custos.UsageRecord{
			NewUsage(org.ID, owner.ID, "m", 1, 1, cut.Add(-time.Microsecond)),
			NewUsage("org_0000000000000000", owner.ID, "m", 1, 1, cut.Add(-time.Hour)),
			keep,
		}
		if err := s.AppendUsage(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PurgeUsage(ctx, cut); err != nil {
			t.Fatal(err)
		} else if got, want := n, int64(2); got != want {
			t.Fatalf("purged=%d, want %d", got, want)
		}
		if got, err := s.ListUsage(ctx, org.ID, custos.UsageFilter{}); err != nil {
			t.Fatal(err)
		} else if len(got) != 1 || got[0].ID != keep.ID {
			t.Fatalf("ListUsage=%+v, want only %s", got, keep.ID)
		}
		if n, err := s.PurgeUsage(ctx, cut); err != nil || n != 0 {
			t.Fatalf("second purge=%d, %v; want 0", n, err)
		}
	})
}

// testSharedReserve is RunShared's part about budgets: concurrent
// reservations through both stores never overshoot.
func testSharedReserve(t *testing.T, a, b custos.Store) {
	org, owner := MustBootstrap(t, a)
	MustPutBudget(t, b, org.ID, "", custos.PeriodDay, 1000)
	mustReserveConcurrently(t, []custos.Store{a, b}, org.ID, owner.ID, 150, 100)
	for _, s := range []custos.Store{a, b} {
		mustCounters(t, s, org.ID, "/day", 700, 0)
	}
	if _, err := b.ReserveBudget(context.Background(), org.ID, owner.ID, 301, Now); code(err) != custos.ERATELIMITED {
		t.Fatalf("reservation past the budget: %v, want rate limited", err)
	} else if _, err := a.ReserveBudget(context.Background(), org.ID, owner.ID, 300, Now); err != nil {
		t.Fatal(fmt.Errorf("reservation up to the budget: %w", err))
	}
}
