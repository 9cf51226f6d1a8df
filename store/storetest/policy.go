package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testPolicyStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure policies round-trip, list oldest first and delete.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		p1 := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "env", TagValue: "prod",
			Rule: custos.RuleBlockModels, Models: []string{"gpt-*", "claude-*"}, ExpiresAt: ptr(Now.Add(time.Hour)), CreatedAt: Now, CreatedBy: owner.ID}
		p2 := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "env", TagValue: "prod",
			Rule: custos.RuleNotify, NotifyURL: "https://hooks.example.com/x", CreatedAt: Now.Add(time.Second), CreatedBy: owner.ID}
		for _, p := range []*custos.Policy{p1, p2} {
			if err := s.CreatePolicy(ctx, p, NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.ListPolicies(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Policy{p1, p2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPolicies=%+v, want %+v", got, want)
		}
		if err := s.DeletePolicy(ctx, org.ID, p1.ID, NewEvent(org.ID, custos.ActionPolicyRemove)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListPolicies(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Policy{p2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPolicies=%+v, want %+v", got, want)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a duplicate policy id is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "a", TagValue: "b", Rule: custos.RuleBlockAlways, CreatedAt: Now}
		if err := s.CreatePolicy(ctx, p, NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		err := s.CreatePolicy(ctx, p, NewEvent(org.ID, custos.ActionPolicyAdd))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure deleting an unknown policy, or another org's, is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "a", TagValue: "b", Rule: custos.RuleBlockAlways, CreatedAt: Now}
		if err := s.CreatePolicy(ctx, p, NewEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ org, id string }{{org.ID, "pol_0000000000000000"}, {"org_0000000000000000", p.ID}} {
			err := s.DeletePolicy(ctx, c.org, c.id, NewEvent(org.ID, custos.ActionPolicyRemove))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}
