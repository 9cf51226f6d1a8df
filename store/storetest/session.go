package storetest

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testSessionStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure PutSession replaces the device's session and FindSession returns
	// it only while live.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		s1 := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: org.ID, DeviceID: dev, CreatedAt: Now, ExpiresAt: Now.Add(time.Hour)}
		s2 := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: org.ID, DeviceID: dev,
			Tags: map[string]string{"env": "prod"}, CreatedAt: Now.Add(time.Minute), ExpiresAt: Now.Add(30 * time.Minute)}
		for _, sess := range []*custos.Session{s1, s2} {
			if err := s.PutSession(ctx, sess, NewEvent(org.ID, custos.ActionSessionWake)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.FindSession(ctx, org.ID, dev, Now.Add(29*time.Minute)); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, s2) {
			t.Fatalf("FindSession=%+v, want %+v", got, s2)
		}
		if _, err := s.FindSession(ctx, org.ID, dev, Now.Add(30*time.Minute)); code(err) != custos.ENOTFOUND {
			t.Fatalf("expired session err=%v", err)
		}
		if err := s.DeleteSessions(ctx, org.ID, dev, NewEvent(org.ID, custos.ActionSessionSleep)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSession(ctx, org.ID, dev, Now); code(err) != custos.ENOTFOUND {
			t.Fatalf("deleted session err=%v", err)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a device without a session is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := open(t).FindSession(context.Background(), "org_0000000000000000", "dev_0000000000000000", Now)
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func testConsumeConfirmation(t *testing.T, open func(t *testing.T) custos.Store) {
	newConfirmation := func(orgID, dev string, created time.Time) *custos.Confirmation {
		return &custos.Confirmation{ID: custos.NewID(custos.PrefixConfirmation), OrgID: orgID, DeviceID: dev,
			Project: "web", Name: "A", CreatedAt: created, ExpiresAt: created.Add(custos.ConfirmationTTL)}
	}

	// Ensure each confirmation is consumed once, oldest first.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		for _, c := range []*custos.Confirmation{newConfirmation(org.ID, dev, Now), newConfirmation(org.ID, dev, Now.Add(time.Minute))} {
			if err := s.CreateConfirmation(ctx, c, NewEvent(org.ID, custos.ActionConfirm)); err != nil {
				t.Fatal(err)
			}
		}
		at := Now.Add(2 * time.Minute)
		for range 2 {
			if err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", at); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", at); code(err) != custos.ENOTFOUND {
			t.Fatalf("third consume err=%v", err)
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure expired confirmations and other devices' or secrets' do not count.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		if err := s.CreateConfirmation(ctx, newConfirmation(org.ID, dev, Now), NewEvent(org.ID, custos.ActionConfirm)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			dev, project, name string
			at                 time.Time
		}{
			{dev, "web", "A", Now.Add(custos.ConfirmationTTL)},
			{"dev_0000000000000002", "web", "A", Now},
			{dev, "api", "A", Now},
			{dev, "web", "B", Now},
		} {
			err := s.ConsumeConfirmation(ctx, org.ID, c.dev, c.project, c.name, c.at)
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("%+v: code=%q, want %q", c, got, want)
			}
		}
		if err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", Now); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure exactly one of 50 concurrent callers consumes a confirmation.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		if err := s.CreateConfirmation(ctx, newConfirmation(org.ID, dev, Now), NewEvent(org.ID, custos.ActionConfirm)); err != nil {
			t.Fatal(err)
		}
		var wins, misses atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				switch err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", Now); code(err) {
				case "":
					wins.Add(1)
				case custos.ENOTFOUND:
					misses.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got, want := wins.Load(), int32(1); got != want {
			t.Fatalf("wins=%d, want %d", got, want)
		} else if got, want := misses.Load(), int32(49); got != want {
			t.Fatalf("misses=%d, want %d", got, want)
		}
	})
}
