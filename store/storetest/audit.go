package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testAuditStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure every field of an event round-trips, so the chain verifies.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		ev := &custos.AuditEvent{OrgID: org.ID, Time: time.Date(2025, 1, 2, 3, 4, 5, 987654321, time.FixedZone("X", 3600)),
			Action: custos.ActionSecretReveal, Outcome: custos.OutcomeDenied, Reason: "policy \"x\" <denied> ü",
			KeyID: "key_1", User: "ana", DeviceID: "dev_1", Agent: "claude-code", Hostname: "h", MachineUser: "ana",
			IP: "::1", Source: custos.SourceMCP, Mode: custos.ModeReveal, Model: "claude-x", Project: "web",
			Secret: "DB_URL", Version: 7, Target: "sec_1"}
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := ev.Seq, int64(2); got != want {
			t.Fatalf("Seq=%d, want %d", got, want)
		} else if got, want := ev.Time, time.Date(2025, 1, 2, 2, 4, 5, 987654000, time.UTC); got != want {
			t.Fatalf("sealed Time=%v, want %v (UTC, microseconds)", got, want)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[1], ev; !reflect.DeepEqual(got, want) {
			t.Fatalf("event=%+v, want %+v", got, want)
		}
		MustVerifyChain(t, s, org.ID, 2)
		if err := s.AppendAudit(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure ListAudit honours AfterSeq, Since and Limit.
	t.Run("Filter", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org := "org_0000000000000001"
		var evs []*custos.AuditEvent
		for i := range 1500 {
			ev := NewEvent(org, custos.ActionSecretInject)
			ev.Time = Now.Add(time.Duration(i) * time.Second)
			evs = append(evs, ev)
		}
		if err := s.AppendAudit(ctx, evs, nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			f     custos.AuditFilter
			n     int
			first int64
		}{
			{custos.AuditFilter{}, 1000, 1}, // the default limit
			{custos.AuditFilter{Limit: 20000}, 1500, 1},
			{custos.AuditFilter{AfterSeq: 1490}, 10, 1491},
			{custos.AuditFilter{Since: Now.Add(1400 * time.Second), Limit: 5}, 5, 1401},
			{custos.AuditFilter{Since: Now.Add(1400 * time.Second), AfterSeq: 1450}, 50, 1451},
			{custos.AuditFilter{AfterSeq: 1500}, 0, 0},
		} {
			got, err := s.ListAudit(ctx, org, c.f)
			if err != nil {
				t.Fatal(err)
			} else if len(got) != c.n {
				t.Fatalf("%+v: len=%d, want %d", c.f, len(got), c.n)
			} else if c.n > 0 && got[0].Seq != c.first {
				t.Fatalf("%+v: first=%d, want %d", c.f, got[0].Seq, c.first)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq != got[i-1].Seq+1 {
					t.Fatalf("%+v: not in seq order at %d", c.f, i)
				}
			}
		}
		if got, err := s.ListAudit(ctx, "org_00000000000000ff", custos.AuditFilter{}); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("other org=%v, want empty", got)
		}
	})

	// Ensure concurrent appends for two orgs from many goroutines, some
	// appending to both orgs in one call (in either order), form two valid
	// chains.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		orgs := []string{"org_0000000000000001", "org_0000000000000002"}
		const goroutines, appends = 16, 40
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				org, other := orgs[g%2], orgs[(g+1)%2]
				for i := range appends {
					evs := []*custos.AuditEvent{NewEvent(org, custos.ActionSecretInject)}
					if i%4 == 0 {
						evs = append(evs, NewEvent(other, custos.ActionSecretReveal))
					}
					evs[0].Reason = fmt.Sprintf("g%d-%d", g, i)
					if err := s.AppendAudit(ctx, evs, nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		per := int64(goroutines / 2 * (appends + appends/4))
		for _, org := range orgs {
			MustVerifyChain(t, s, org, per)
		}
	})

	// Ensure an append whose outbox insert fails stores none of its events
	// and does not advance the chain, even after its events were sealed.
	t.Run("ErrRollback", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		msg := &custos.OutboxMessage{ID: custos.NewID(custos.PrefixOutbox), OrgID: org.ID, URL: "https://x", CreatedAt: Now, NextAttemptAt: Now}
		if err := s.AppendAudit(ctx, nil, []*custos.OutboxMessage{msg}); err != nil {
			t.Fatal(err)
		}
		evs := []*custos.AuditEvent{NewEvent(org.ID, custos.ActionSecretInject), NewEvent(org.ID, custos.ActionSecretInject)}
		err := s.AppendAudit(ctx, evs, []*custos.OutboxMessage{msg})
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 1)
		ev := NewEvent(org.ID, custos.ActionSecretInject)
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); err != nil {
			t.Fatal(err)
		} else if got, want := ev.Seq, int64(2); got != want {
			t.Fatalf("Seq=%d, want %d", got, want)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

func testOutboxStore(t *testing.T, open func(t *testing.T) custos.Store) {
	newMsg := func(created time.Time) *custos.OutboxMessage {
		return &custos.OutboxMessage{OrgID: "org_0000000000000001", URL: "https://hooks.example.com", Payload: []byte(`{"a":1}`),
			CreatedAt: created, NextAttemptAt: created}
	}

	// Ensure messages are claimed once per lease, retried, completed and given up.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		m1, m2, m3 := newMsg(Now), newMsg(Now.Add(time.Second)), newMsg(Now.Add(time.Hour))
		ev := NewEvent("org_0000000000000001", custos.ActionSecretInject)
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, []*custos.OutboxMessage{m1, m2, m3}); err != nil {
			t.Fatal(err)
		}
		if m1.ID == "" {
			t.Fatal("no id assigned")
		}
		at := Now.Add(time.Minute)
		got, err := s.ClaimOutbox(ctx, at, 30*time.Second, 10)
		if err != nil {
			t.Fatal(err)
		} else if len(got) != 2 || got[0].ID != m1.ID || got[1].ID != m2.ID {
			t.Fatalf("claimed=%d", len(got))
		} else if got[0].Attempts != 1 || !got[0].NextAttemptAt.Equal(at.Add(30*time.Second)) || string(got[0].Payload) != `{"a":1}` {
			t.Fatalf("claimed=%+v", got[0])
		}
		if got, err := s.ClaimOutbox(ctx, at, 30*time.Second, 10); err != nil {
			t.Fatal(err)
		} else if len(got) != 0 {
			t.Fatalf("claimed again within lease: %d", len(got))
		}
		if err := s.CompleteOutbox(ctx, m1.ID, at); err != nil {
			t.Fatal(err)
		} else if err := s.CompleteOutbox(ctx, m1.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := s.RetryOutbox(ctx, m2.ID, at, ptr(at.Add(10*time.Second)), "503"); err != nil {
			t.Fatal(err)
		}
		got, err = s.ClaimOutbox(ctx, at.Add(10*time.Second), time.Minute, 1)
		if err != nil {
			t.Fatal(err)
		} else if len(got) != 1 || got[0].ID != m2.ID || got[0].Attempts != 2 || got[0].LastError != "503" {
			t.Fatalf("retried claim=%+v", got)
		}
		if err := s.RetryOutbox(ctx, m2.ID, at, nil, "gone"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClaimOutbox(ctx, Now.Add(24*time.Hour), time.Minute, 10); err != nil {
			t.Fatal(err)
		} else if len(got) != 1 || got[0].ID != m3.ID {
			t.Fatalf("final claim=%d", len(got))
		}
	})

	// Ensure concurrent claimers take every due message exactly once within
	// its lease.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		const n = 60
		msgs := make([]*custos.OutboxMessage, n)
		for i := range msgs {
			msgs[i] = newMsg(Now.Add(time.Duration(i) * time.Microsecond))
		}
		if err := s.AppendAudit(ctx, nil, msgs); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		claimed := make(map[string]int)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					got, err := s.ClaimOutbox(ctx, Now.Add(time.Minute), time.Hour, 4)
					if err != nil {
						t.Error(err)
						return
					} else if len(got) == 0 {
						return // what is left is held by claimers that will take it
					}
					mu.Lock()
					for _, m := range got {
						claimed[m.ID]++
						if m.Attempts != 1 {
							t.Errorf("message %s attempts=%d, want 1", m.ID, m.Attempts)
						}
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
		if got, err := s.ClaimOutbox(ctx, Now.Add(time.Minute), time.Hour, 0); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("limit 0 claimed=%v, want empty", got)
		}
	})

	// Ensure unknown messages are not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		if err := s.CompleteOutbox(ctx, "obx_0000000000000000", Now); code(err) != custos.ENOTFOUND {
			t.Fatalf("CompleteOutbox err=%v", err)
		}
		if err := s.RetryOutbox(ctx, "obx_0000000000000000", Now, nil, "x"); code(err) != custos.ENOTFOUND {
			t.Fatalf("RetryOutbox err=%v", err)
		}
	})
}
