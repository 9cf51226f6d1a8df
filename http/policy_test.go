package http_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestPolicies(t *testing.T) {
	// Ensure a policy is added with 201, listed and removed with 204.
	t.Run("OK", func(t *testing.T) {
		env := MustServe(t)
		var got custos.AddPolicyInput
		env.Spy.AddPolicyFn = func(ctx context.Context, in custos.AddPolicyInput) (*custos.Policy, error) {
			got = in
			return &custos.Policy{ID: testPolID, TagKey: in.TagKey, TagValue: in.TagValue, Rule: in.Rule, Models: in.Models}, nil
		}
		env.Spy.ListPoliciesFn = func(ctx context.Context) ([]*custos.Policy, error) {
			return []*custos.Policy{{ID: testPolID}}, nil
		}
		var removed string
		env.Spy.RemovePolicyFn = func(ctx context.Context, id string) error {
			removed = id
			return nil
		}

		in := custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockModels,
			Models: []string{"gpt-*"}, TTL: custos.Duration(time.Hour)}
		p, err := env.Client.AddPolicy(ctx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("service got %+v, want %+v", got, in)
		}
		if got, want := p.ID, testPolID; got != want {
			t.Fatalf("id=%q, want %q", got, want)
		}
		ps, err := env.Client.ListPolicies(ctx(t))
		if err != nil || len(ps) != 1 {
			t.Fatalf("list: %v %v", ps, err)
		}
		if err := env.Client.RemovePolicy(ctx(t), testPolID); err != nil {
			t.Fatal(err)
		}
		if removed != testPolID {
			t.Fatalf("removed %q", removed)
		}

		resp := env.Do(t, Request{Method: "POST", Path: "/v1/policies", Body: `{"tag_key":"env","tag_value":"prod","rule":"notify","notify_url":"https://hooks.example.com/x"}`})
		if got, want := resp.Status, http.StatusCreated; got != want {
			t.Fatalf("status=%d, want %d", got, want)
		}
	})

	// Ensure a bad tag or rule is rejected before the service runs.
	t.Run("Invalid", func(t *testing.T) {
		for _, body := range []string{
			`{"tag_key":"Env","tag_value":"prod","rule":"notify"}`,
			`{"tag_key":"env","tag_value":"p rod","rule":"notify"}`,
			`{"tag_key":"env","tag_value":"prod","rule":"explode"}`,
			`{"tag_key":"env","tag_value":"prod"}`,
			`{"tag_key":"env","tag_value":"prod","rule":"notify","models":"gpt"}`,
		} {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/policies", Body: body})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("%s: status=%d, want %d", body, got, want)
			}
			env.AssertNoCalls(t)
		}
	})
}
