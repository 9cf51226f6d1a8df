package storetest

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testBootstrap(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure Bootstrap creates the org, the owner key and the first event.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		if n, err := s.CountOrgs(ctx); err != nil {
			t.Fatal(err)
		} else if got, want := n, 0; got != want {
			t.Fatalf("CountOrgs=%d, want %d", got, want)
		}
		org, owner := MustBootstrap(t, s)
		if n, err := s.CountOrgs(ctx); err != nil {
			t.Fatal(err)
		} else if got, want := n, 1; got != want {
			t.Fatalf("CountOrgs=%d, want %d", got, want)
		}
		if got, err := s.FindOrg(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, org) {
			t.Fatalf("FindOrg=%+v, want %+v", got, org)
		}
		if got, err := s.FindKey(ctx, org.ID, owner.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, owner) {
			t.Fatalf("FindKey=%+v, want %+v", got, owner)
		}
		MustVerifyChain(t, s, org.ID, 1)
	})

	// Ensure a second Bootstrap is a conflict and changes nothing.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		org2 := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "other", CreatedAt: Now}
		owner2 := NewKey(org2.ID, "owner", custos.RoleOwner)
		err := s.Bootstrap(ctx, org2, owner2, NewEvent(org2.ID, custos.ActionBootstrap))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if n, _ := s.CountOrgs(ctx); n != 1 {
			t.Fatalf("CountOrgs=%d, want 1", n)
		}
		if _, err := s.FindKeyByHash(ctx, owner2.Hash); code(err) != custos.ENOTFOUND {
			t.Fatalf("owner key of the failed bootstrap: err=%v, want not found", err)
		}
		MustVerifyChain(t, s, org.ID, 1)
		MustVerifyChain(t, s, org2.ID, 0)
	})

	// Ensure exactly one of many concurrent Bootstraps wins.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		mustRace(t, 10, custos.ECONFLICT, func(int) error {
			org := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "acme", CreatedAt: Now}
			return s.Bootstrap(ctx, org, NewKey(org.ID, "owner", custos.RoleOwner), NewEvent(org.ID, custos.ActionBootstrap))
		})
		if n, _ := s.CountOrgs(ctx); n != 1 {
			t.Fatalf("CountOrgs=%d, want 1", n)
		}
	})

	// Ensure FindOrg reports a missing org.
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := open(t).FindOrg(context.Background(), "org_0000000000000000")
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func testMeta(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure PutMeta stores and overwrites a value, an empty one included.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		for _, v := range [][]byte{[]byte("one"), []byte("two"), {}, {0, 1, 2, 255}} {
			if err := s.PutMeta(ctx, "kek.canary", v); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetMeta(ctx, "kek.canary"); err != nil {
				t.Fatal(err)
			} else if !bytes.Equal(got, v) || got == nil {
				t.Fatalf("GetMeta=%q, want %q", got, v)
			}
		}
	})

	// Ensure CreateMeta sets a missing key once and refuses to overwrite it.
	t.Run("CreateMeta", func(t *testing.T) {
		s, ctx := open(t), context.Background()
		if err := s.CreateMeta(ctx, "kek_canary", []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateMeta(ctx, "kek_canary", []byte("second")); code(err) != custos.ECONFLICT {
			t.Fatalf("second CreateMeta: %v, want conflict", err)
		}
		if got, err := s.GetMeta(ctx, "kek_canary"); err != nil || string(got) != "first" {
			t.Fatalf("GetMeta=%q %v, want first", got, err)
		}
	})

	// Ensure GetMeta reports a missing key.
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := open(t).GetMeta(context.Background(), "nope")
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func testPing(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure a healthy store answers Ping, and Ping changes nothing.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		e := MustCacheEpoch(t, s)
		for range 3 {
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := MustCacheEpoch(t, s), e; got != want {
			t.Fatalf("epoch=%d, want %d", got, want)
		}
		MustVerifyChain(t, s, org.ID, 1)
	})
}

func testCanceled(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure a cancelled context fails reads and writes with an error that
	// is context.Canceled (not a custos code), and the write changes nothing.
	t.Run("ErrCanceled", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.PutMeta(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
			t.Fatalf("PutMeta err=%v, want context.Canceled", err)
		} else if got, want := code(err), custos.EINTERNAL; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
		if err := s.CreateKey(ctx, NewKey(org.ID, "x", custos.RoleMember), NewEvent(org.ID, custos.ActionKeyCreate)); !errors.Is(err, context.Canceled) {
			t.Fatalf("CreateKey err=%v, want context.Canceled", err)
		}
		if _, err := s.FindOrg(ctx, org.ID); !errors.Is(err, context.Canceled) {
			t.Fatalf("FindOrg err=%v, want context.Canceled", err)
		}
		if _, err := s.GetMeta(context.Background(), "k"); code(err) != custos.ENOTFOUND {
			t.Fatalf("GetMeta err=%v, want not found", err)
		}
		MustVerifyChain(t, s, org.ID, 1)
	})
}

func testTimes(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure every stored time comes back equal at microsecond precision, in
	// UTC, whatever zone it was given in.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		zone := time.FixedZone("X", -7*3600-30*60)
		at := func(d time.Duration) time.Time { return Now.Add(d).In(zone) }
		check := func(what string, got, want time.Time) {
			t.Helper()
			if !got.Equal(want) {
				t.Fatalf("%s=%v, want %v", what, got, want)
			} else if got.Location() != time.UTC {
				t.Fatalf("%s is in %v, want UTC", what, got.Location())
			}
		}
		checkPtr := func(what string, got *time.Time, want time.Time) {
			t.Helper()
			if got == nil {
				t.Fatalf("%s=nil, want %v", what, want)
			}
			check(what, *got, want)
		}

		k := NewKey(org.ID, "k", custos.RoleMember)
		k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.RotatedAt, k.GraceUntil = at(1*time.Second), ptr(at(2*time.Second)), ptr(at(3*time.Second)), ptr(at(4*time.Second)), ptr(at(5*time.Second))
		if err := s.CreateKey(ctx, k, NewEvent(org.ID, custos.ActionKeyCreate)); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindKey(ctx, org.ID, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("key CreatedAt", got.CreatedAt, at(1*time.Second))
		checkPtr("key ExpiresAt", got.ExpiresAt, at(2*time.Second))
		checkPtr("key RevokedAt", got.RevokedAt, at(3*time.Second))
		checkPtr("key RotatedAt", got.RotatedAt, at(4*time.Second))
		checkPtr("key GraceUntil", got.GraceUntil, at(5*time.Second))

		d := NewDevice(owner, "h")
		d.CreatedAt, d.DecidedAt = at(-time.Microsecond), ptr(at(time.Microsecond))
		if err := s.CreateDevice(ctx, d, NewEvent(org.ID, custos.ActionDeviceNew)); err != nil {
			t.Fatal(err)
		}
		gotD, err := s.GetDevice(ctx, org.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("device CreatedAt", gotD.CreatedAt, at(-time.Microsecond))
		checkPtr("device DecidedAt", gotD.DecidedAt, at(time.Microsecond))

		sec, v := NewSecret(org.ID, "web", "A", nil, "ct")
		sec.CreatedAt, sec.UpdatedAt, sec.ExpiresAt = at(7*time.Second), at(8*time.Second), ptr(at(9*time.Second))
		v.CreatedAt, v.ExpiresAt = at(10*time.Second), ptr(at(11*time.Second))
		if err := s.CreateSecret(ctx, sec, v, NewEvent(org.ID, custos.ActionSecretSet)); err != nil {
			t.Fatal(err)
		}
		secs, err := s.LoadSecrets(ctx, org.ID, "web", nil)
		if err != nil {
			t.Fatal(err)
		} else if len(secs) != 1 {
			t.Fatalf("secrets=%d, want 1", len(secs))
		}
		check("secret CreatedAt", secs[0].CreatedAt, at(7*time.Second))
		check("secret UpdatedAt", secs[0].UpdatedAt, at(8*time.Second))
		checkPtr("secret ExpiresAt", secs[0].ExpiresAt, at(9*time.Second))
		check("version CreatedAt", secs[0].Current.CreatedAt, at(10*time.Second))
		checkPtr("version ExpiresAt", secs[0].Current.ExpiresAt, at(11*time.Second))

		p := NewPolicy(org.ID)
		p.CreatedAt, p.ExpiresAt = at(12*time.Second), ptr(at(13*time.Second))
		if err := s.CreatePolicy(ctx, p, NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		ps, err := s.ListPolicies(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("policy CreatedAt", ps[0].CreatedAt, at(12*time.Second))
		checkPtr("policy ExpiresAt", ps[0].ExpiresAt, at(13*time.Second))

		sess := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: org.ID, DeviceID: d.ID, CreatedAt: at(14 * time.Second), ExpiresAt: at(time.Hour)}
		if err := s.PutSession(ctx, sess, NewEvent(org.ID, custos.ActionSessionWake)); err != nil {
			t.Fatal(err)
		}
		gotS, err := s.FindSession(ctx, org.ID, d.ID, at(15*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		check("session CreatedAt", gotS.CreatedAt, at(14*time.Second))
		check("session ExpiresAt", gotS.ExpiresAt, at(time.Hour))

		m := &custos.OutboxMessage{OrgID: org.ID, URL: "https://x", CreatedAt: at(16 * time.Second), NextAttemptAt: at(17 * time.Second)}
		if err := s.AppendAudit(ctx, nil, []*custos.OutboxMessage{m}); err != nil {
			t.Fatal(err)
		}
		ms, err := s.ClaimOutbox(ctx, at(18*time.Second), time.Microsecond, 1)
		if err != nil {
			t.Fatal(err)
		} else if len(ms) != 1 {
			t.Fatalf("claimed=%d, want 1", len(ms))
		}
		check("outbox CreatedAt", ms[0].CreatedAt, at(16*time.Second))
		check("outbox NextAttemptAt", ms[0].NextAttemptAt, at(18*time.Second).Add(time.Microsecond))

		ev := NewEvent(org.ID, custos.ActionSecretReveal)
		ev.Time = Now.Add(999).In(zone) // 999ns: dropped, as the chain seals it
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); err != nil {
			t.Fatal(err)
		}
		check("sealed event Time", ev.Time, Now)
		evs := MustListAudit(t, s, org.ID)
		check("event Time", evs[len(evs)-1].Time, Now)
		MustVerifyChain(t, s, org.ID, int64(len(evs)))
	})
}

func testCacheEpoch(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure every change to keys, devices, policies, secrets, secret
	// versions, model providers, privacy rules and budgets advances the
	// epoch.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		last := MustCacheEpoch(t, s)
		step := func(what string, fn func() error) {
			t.Helper()
			if err := fn(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if e := MustCacheEpoch(t, s); e <= last {
				t.Fatalf("%s: epoch=%d, want more than %d", what, e, last)
			} else {
				last = e
			}
		}
		var org *custos.Org
		var owner *custos.APIKey
		step("Bootstrap", func() error { org, owner = MustBootstrap(t, s); return nil })
		k := NewKey(org.ID, "k", custos.RoleMember)
		step("CreateKey", func() error { return s.CreateKey(ctx, k, NewEvent(org.ID, custos.ActionKeyCreate)) })
		d := NewDevice(k, "h")
		step("CreateDevice", func() error { return s.CreateDevice(ctx, d, NewEvent(org.ID, custos.ActionDeviceNew)) })
		step("UpdateDeviceStatus", func() error {
			_, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DevicePending}, custos.DeviceApproved,
				custos.LevelRead, owner.ID, Now, NewEvent(org.ID, custos.ActionDeviceApprove))
			return err
		})
		k2 := NewKey(org.ID, "k", custos.RoleMember)
		step("RotateKey", func() error {
			return s.RotateKey(ctx, org.ID, k.ID, k2, Now, Now.Add(time.Hour), NewEvent(org.ID, custos.ActionKeyRotate))
		})
		step("RevokeKey", func() error { return s.RevokeKey(ctx, org.ID, k.ID, Now, NewEvent(org.ID, custos.ActionKeyRevoke)) })
		p := NewPolicy(org.ID)
		step("CreatePolicy", func() error { return s.CreatePolicy(ctx, p, NewEvent(org.ID, custos.ActionPolicyAdd)) })
		step("DeletePolicy", func() error { return s.DeletePolicy(ctx, org.ID, p.ID, NewEvent(org.ID, custos.ActionPolicyRemove)) })
		sec, v := NewSecret(org.ID, "web", "A", nil, "v1")
		step("CreateSecret", func() error { return s.CreateSecret(ctx, sec, v, NewEvent(org.ID, custos.ActionSecretSet)) })
		step("UpdateSecret", func() error {
			upd := *sec
			upd.Version = 2
			return s.UpdateSecret(ctx, &upd, &custos.SecretVersion{Version: 2, Ciphertext: []byte("v2"), WrappedDEK: []byte("d")},
				NewEvent(org.ID, custos.ActionSecretSet))
		})
		step("RewrapDEKs", func() error {
			_, err := s.RewrapDEKs(ctx, func(w []byte, _ string) ([]byte, string, error) { return w, "local:2", nil })
			return err
		})
		step("DeleteSecret", func() error {
			return s.DeleteSecret(ctx, org.ID, "web", "A", NewEvent(org.ID, custos.ActionSecretDelete))
		})
		step("CreateProvider", func() error {
			return s.CreateProvider(ctx, NewProvider(org.ID, "openai", 0), NewEvent(org.ID, custos.ActionProviderAdd))
		})
		step("RewrapDEKs of a provider", func() error {
			_, err := s.RewrapDEKs(ctx, func(w []byte, _ string) ([]byte, string, error) { return w, "local:3", nil })
			return err
		})
		step("DeleteProvider", func() error {
			return s.DeleteProvider(ctx, org.ID, "openai", NewEvent(org.ID, custos.ActionProviderRemove))
		})
		rule := &custos.PrivacyRule{OrgID: org.ID, Scope: custos.ScopeProject, Target: "web", Mode: custos.PrivacySensitive, UpdatedAt: Now}
		step("PutPrivacyRule", func() error { return s.PutPrivacyRule(ctx, rule, NewEvent(org.ID, custos.ActionPrivacySet)) })
		step("PutPrivacyRule again", func() error {
			rule.Mode = custos.PrivacyOffline
			return s.PutPrivacyRule(ctx, rule, NewEvent(org.ID, custos.ActionPrivacySet))
		})
		step("DeletePrivacyRule", func() error {
			return s.DeletePrivacyRule(ctx, org.ID, custos.ScopeProject, "web", NewEvent(org.ID, custos.ActionPrivacyRemove))
		})
		b := &custos.Budget{OrgID: org.ID, Period: custos.PeriodDay, Limit: 100, UpdatedAt: Now}
		step("PutBudget", func() error { return s.PutBudget(ctx, b, NewEvent(org.ID, custos.ActionBudgetSet)) })
		step("PutBudget again", func() error {
			b.Limit = 200
			return s.PutBudget(ctx, b, NewEvent(org.ID, custos.ActionBudgetSet))
		})
		step("DeleteBudget", func() error {
			return s.DeleteBudget(ctx, org.ID, "", custos.PeriodDay, NewEvent(org.ID, custos.ActionBudgetRemove))
		})
	})

	// Ensure audit appends, sessions, confirmations, the outbox, meta
	// values, budget reservations and settlements, usage records and reads
	// leave the epoch alone.
	t.Run("Unchanged", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "h")
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		e := MustCacheEpoch(t, s)
		step := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			} else if got := MustCacheEpoch(t, s); got != e {
				t.Fatalf("%s: epoch=%d, want %d", what, got, e)
			}
		}
		m := &custos.OutboxMessage{OrgID: org.ID, URL: "https://x", CreatedAt: Now, NextAttemptAt: Now}
		step("AppendAudit", s.AppendAudit(ctx, []*custos.AuditEvent{NewEvent(org.ID, custos.ActionSecretInject)}, []*custos.OutboxMessage{m}))
		_, err := s.ClaimOutbox(ctx, Now, time.Minute, 10)
		step("ClaimOutbox", err)
		step("RetryOutbox", s.RetryOutbox(ctx, m.ID, Now, ptr(Now), "x"))
		step("CompleteOutbox", s.CompleteOutbox(ctx, m.ID, Now))
		sess := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: org.ID, DeviceID: d.ID, CreatedAt: Now, ExpiresAt: Now.Add(time.Hour)}
		step("PutSession", s.PutSession(ctx, sess, NewEvent(org.ID, custos.ActionSessionWake)))
		step("DeleteSessions", s.DeleteSessions(ctx, org.ID, d.ID, NewEvent(org.ID, custos.ActionSessionSleep)))
		c := &custos.Confirmation{ID: custos.NewID(custos.PrefixConfirmation), OrgID: org.ID, DeviceID: d.ID, Project: "web", Name: "A",
			CreatedAt: Now, ExpiresAt: Now.Add(custos.ConfirmationTTL)}
		step("CreateConfirmation", s.CreateConfirmation(ctx, c, NewEvent(org.ID, custos.ActionConfirm)))
		step("ConsumeConfirmation", s.ConsumeConfirmation(ctx, org.ID, d.ID, "web", "A", Now))
		step("PutMeta", s.PutMeta(ctx, "k", []byte("v")))
		_, err = s.LoadSecrets(ctx, org.ID, "web", nil)
		step("LoadSecrets", err)
		_, err = s.FindKeyByHash(ctx, owner.Hash)
		step("FindKeyByHash", err)
		step("Ping", s.Ping(ctx))

		// Budget counters and usage records change on every gateway request.
		if err := s.PutBudget(ctx, &custos.Budget{OrgID: org.ID, Period: custos.PeriodDay, Limit: 100, UpdatedAt: Now}, nil); err != nil {
			t.Fatal(err)
		}
		e = MustCacheEpoch(t, s)
		r, err := s.ReserveBudget(ctx, org.ID, owner.ID, 10, Now)
		step("ReserveBudget", err)
		_, err = s.ReserveBudget(ctx, org.ID, owner.ID, 1000, Now)
		if code(err) != custos.ERATELIMITED {
			t.Fatalf("ReserveBudget over the limit: %v, want rate limited", err)
		}
		step("ReserveBudget refused", nil)
		step("SettleBudget", s.SettleBudget(ctx, r, 5))
		_, err = s.ListBudgets(ctx, org.ID, Now)
		step("ListBudgets", err)
		step("AppendUsage", s.AppendUsage(ctx, []*custos.UsageRecord{NewUsage(org.ID, owner.ID, "m", 1, 1, Now)}))
		_, err = s.PurgeUsage(ctx, Now.Add(time.Hour))
		step("PurgeUsage", err)
	})

	// Ensure a rejected change does not advance the epoch.
	t.Run("ErrUnchanged", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "h")
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		e := MustCacheEpoch(t, s)
		step := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Fatalf("%s: expected error", what)
			} else if got := MustCacheEpoch(t, s); got != e {
				t.Fatalf("%s: epoch=%d, want %d", what, got, e)
			}
		}
		dup := NewKey(org.ID, "dup", custos.RoleMember)
		dup.Hash = owner.Hash
		step("CreateKey duplicate", s.CreateKey(ctx, dup, NewEvent(org.ID, custos.ActionKeyCreate)))
		step("RevokeKey unknown", s.RevokeKey(ctx, org.ID, "key_0000000000000000", Now, NewEvent(org.ID, custos.ActionKeyRevoke)))
		_, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DeviceApproved}, custos.DeviceRevoked, "",
			owner.ID, Now, NewEvent(org.ID, custos.ActionDeviceRevoke))
		step("UpdateDeviceStatus from wrong status", err)
		stale := *sec
		stale.Version = 3
		step("UpdateSecret stale", s.UpdateSecret(ctx, &stale, &custos.SecretVersion{Version: 3}, NewEvent(org.ID, custos.ActionSecretSet)))
		step("DeletePolicy unknown", s.DeletePolicy(ctx, org.ID, "pol_0000000000000000", NewEvent(org.ID, custos.ActionPolicyRemove)))
		_, err = s.RewrapDEKs(ctx, func([]byte, string) ([]byte, string, error) { return nil, "", errors.New("keeper down") })
		step("RewrapDEKs failing", err)
		step("DeleteProvider unknown", s.DeleteProvider(ctx, org.ID, "nope", NewEvent(org.ID, custos.ActionProviderRemove)))
		step("DeletePrivacyRule unknown", s.DeletePrivacyRule(ctx, org.ID, custos.ScopeOrg, "", NewEvent(org.ID, custos.ActionPrivacyRemove)))
		step("DeleteBudget unknown", s.DeleteBudget(ctx, org.ID, "", custos.PeriodDay, NewEvent(org.ID, custos.ActionBudgetRemove)))
		MustVerifyChain(t, s, org.ID, 3)
	})
}
