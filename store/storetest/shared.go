package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// RunShared runs the part of the suite about two stores on one database, as
// two processes (two replicas, or a server and an admin command) see it.
// Each call of open2 must return two stores, opened separately, on the same
// fresh, empty, migrated database; both are closed when the test ends.
func RunShared(t *testing.T, open2 func(t *testing.T) (custos.Store, custos.Store)) {
	// Ensure concurrent appends through both stores still build one
	// verifiable chain per org, seen the same through either.
	t.Run("AuditStore", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		org, _ := MustBootstrap(t, a)
		other := "org_00000000000000ff"
		var wg sync.WaitGroup
		for g, s := range []custos.Store{a, b, a, b} {
			wg.Go(func() {
				for i := range 50 {
					evs := []*custos.AuditEvent{NewEvent(org.ID, custos.ActionSecretReveal)}
					evs[0].Reason = fmt.Sprintf("g%d-%d", g, i)
					if i%5 == 0 {
						evs = append(evs, NewEvent(other, custos.ActionSecretInject))
					}
					if err := s.AppendAudit(ctx, evs, nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, s := range []custos.Store{a, b} {
			MustVerifyChain(t, s, org.ID, 201)
			MustVerifyChain(t, s, other, 40)
		}
		// A mutation through one store continues the chain the other built.
		MustCreateKey(t, b, org.ID, "k", custos.RoleMember)
		MustCreateKey(t, a, org.ID, "l", custos.RoleMember)
		MustVerifyChain(t, b, org.ID, 203)
	})

	// Ensure a change made through one store advances the cache epoch the
	// other reads, and the other sees the change.
	t.Run("CacheEpoch", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		org, _ := MustBootstrap(t, a)
		for i, pair := range [][2]custos.Store{{a, b}, {b, a}, {a, b}} {
			writer, reader := pair[0], pair[1]
			e := MustCacheEpoch(t, reader)
			k := MustCreateKey(t, writer, org.ID, fmt.Sprintf("k%d", i), custos.RoleMember)
			if got := MustCacheEpoch(t, reader); got <= e {
				t.Fatalf("step %d: epoch seen by the other store=%d, want more than %d", i, got, e)
			}
			if _, err := reader.FindKeyByHash(ctx, k.Hash); err != nil {
				t.Fatalf("step %d: the other store does not see the new key: %v", i, err)
			}
		}
		e := MustCacheEpoch(t, b)
		if err := a.AppendAudit(ctx, []*custos.AuditEvent{NewEvent(org.ID, custos.ActionSecretInject)}, nil); err != nil {
			t.Fatal(err)
		} else if got := MustCacheEpoch(t, b); got != e {
			t.Fatalf("epoch after an audit append=%d, want %d", got, e)
		}
	})

	// Ensure a confirmation consumed concurrently through both stores is
	// won exactly once.
	t.Run("SessionStore_ConsumeConfirmation", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		org, _ := MustBootstrap(t, a)
		dev := "dev_0000000000000001"
		c := &custos.Confirmation{ID: custos.NewID(custos.PrefixConfirmation), OrgID: org.ID, DeviceID: dev,
			Project: "web", Name: "A", CreatedAt: Now, ExpiresAt: Now.Add(custos.ConfirmationTTL)}
		if err := b.CreateConfirmation(ctx, c, NewEvent(org.ID, custos.ActionConfirm)); err != nil {
			t.Fatal(err)
		}
		stores := []custos.Store{a, b}
		mustRace(t, 50, custos.ENOTFOUND, func(i int) error {
			return stores[i%2].ConsumeConfirmation(ctx, org.ID, dev, "web", "A", Now.Add(time.Second))
		})
	})

	// Ensure exactly one of many concurrent updates of a secret from the same
	// version, through both stores, wins.
	t.Run("SecretStore_UpdateSecret", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		org, _ := MustBootstrap(t, a)
		sec := MustCreateSecret(t, b, org.ID, "web", "A", nil, "v1")
		stores := []custos.Store{a, b}
		mustRace(t, 20, custos.ECONFLICT, func(i int) error {
			upd := *sec
			upd.Version = 2
			v := &custos.SecretVersion{Version: 2, Ciphertext: fmt.Appendf(nil, "by-%d", i), WrappedDEK: []byte("d")}
			return stores[i%2].UpdateSecret(ctx, &upd, v, NewEvent(org.ID, custos.ActionSecretSet))
		})
		if vs, err := a.ListVersions(ctx, org.ID, sec.ID); err != nil {
			t.Fatal(err)
		} else if got, want := len(vs), 2; got != want {
			t.Fatalf("versions=%d, want %d", got, want)
		}
		MustVerifyChain(t, b, org.ID, 3)
	})

	// Ensure exactly one of many concurrent Bootstraps through both stores
	// wins.
	t.Run("Store_Bootstrap", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		stores := []custos.Store{a, b}
		mustRace(t, 10, custos.ECONFLICT, func(i int) error {
			org := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "acme", CreatedAt: Now}
			return stores[i%2].Bootstrap(ctx, org, NewKey(org.ID, "owner", custos.RoleOwner), NewEvent(org.ID, custos.ActionBootstrap))
		})
		for _, s := range stores {
			if n, err := s.CountOrgs(ctx); err != nil {
				t.Fatal(err)
			} else if got, want := n, 1; got != want {
				t.Fatalf("CountOrgs=%d, want %d", got, want)
			}
		}
	})

	// Ensure concurrent reservations of one budget through both stores
	// never overshoot it.
	t.Run("BudgetStore_ReserveBudget", func(t *testing.T) {
		a, b := open2(t)
		testSharedReserve(t, a, b)
	})

	// Ensure a budget, provider or privacy rule changed through one store
	// advances the cache epoch the other reads.
	t.Run("CacheEpoch_Gateway", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		org, owner := MustBootstrap(t, a)
		for _, step := range []struct {
			what string
			fn   func() error
		}{
			{"PutBudget", func() error {
				return a.PutBudget(ctx, &custos.Budget{OrgID: org.ID, Period: custos.PeriodDay, Limit: 5, UpdatedAt: Now}, nil)
			}},
			{"CreateProvider", func() error { return a.CreateProvider(ctx, NewProvider(org.ID, "openai", 0), nil) }},
			{"PutPrivacyRule", func() error {
				return a.PutPrivacyRule(ctx, &custos.PrivacyRule{OrgID: org.ID, Scope: custos.ScopeOrg, Mode: custos.PrivacyOffline, UpdatedAt: Now}, nil)
			}},
		} {
			e := MustCacheEpoch(t, b)
			if err := step.fn(); err != nil {
				t.Fatalf("%s: %v", step.what, err)
			} else if got := MustCacheEpoch(t, b); got <= e {
				t.Fatalf("%s: epoch seen by the other store=%d, want more than %d", step.what, got, e)
			}
		}
		e := MustCacheEpoch(t, b)
		if _, err := a.ReserveBudget(ctx, org.ID, owner.ID, 5, Now); err != nil {
			t.Fatal(err)
		} else if got := MustCacheEpoch(t, b); got != e {
			t.Fatalf("epoch after a reservation=%d, want %d", got, e)
		}
	})

	// Ensure of 500 concurrent spends of one request key through both
	// stores exactly one wins, and the next key of the chain likewise.
	t.Run("TaskStore_SpendRequestKey", func(t *testing.T) {
		a, b := open2(t)
		org, _ := MustBootstrap(t, a)
		in := MustCreateTrackerInstall(t, b, org.ID, "jira")
		raceSpend(t, []custos.Store{a, b}, in, MustCreateRequestKey(t, a, in), 500)
	})

	// Ensure of 500 concurrent exchanges of one launch code through both
	// stores exactly one wins, with one permit and one event.
	t.Run("TaskStore_ExchangeLaunchCode", func(t *testing.T) {
		a, b := open2(t)
		org, _ := MustBootstrap(t, a)
		in := MustCreateTrackerInstall(t, b, org.ID, "jira")
		raceExchange(t, []custos.Store{a, b}, MustCreateLaunchCode(t, a, in, "web", "T-1"), 500)
	})

	// Ensure concurrent puts through both stores keep a run within its
	// limit, and concurrent puts of one name leave one live artifact.
	t.Run("TaskStore_PutArtifact", func(t *testing.T) {
		a, b := open2(t)
		_, _, r := mustTaskWorld(t, a)
		raceRunLimit(t, []custos.Store{a, b}, r)
		r2 := MustCreateRun(t, b, r.OrgID, r.ProjectID, r.TaskID)
		raceReplace(t, []custos.Store{b, a}, r2)
	})

	// Ensure concurrent claimers on both stores take each message once.
	t.Run("OutboxStore", func(t *testing.T) {
		ctx := context.Background()
		a, b := open2(t)
		const n = 40
		msgs := make([]*custos.OutboxMessage, n)
		for i := range msgs {
			msgs[i] = &custos.OutboxMessage{OrgID: "org_0000000000000001", URL: "https://x", CreatedAt: Now, NextAttemptAt: Now}
		}
		if err := a.AppendAudit(ctx, nil, msgs); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		claimed := make(map[string]int)
		var wg sync.WaitGroup
		for _, s := range []custos.Store{a, b, a, b} {
			wg.Go(func() {
				for {
					got, err := s.ClaimOutbox(ctx, Now, time.Hour, 3)
					if err != nil {
						t.Error(err)
						return
					} else if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, m := range got {
						claimed[m.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if got, want := len(claimed), n; got != want {
			t.Fatalf("claimed=%d, want %d", got, want)
		}
		for id, c := range claimed {
			if c != 1 {
				t.Fatalf("message %s claimed %d times", id, c)
			}
		}
	})
}
