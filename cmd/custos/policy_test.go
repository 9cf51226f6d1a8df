package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestPolicyAdd(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want custos.AddPolicyInput
	}{
		{"BlockAlways", []string{"--tag", "env=prod", "--rule", "block_always", "--ttl", "2h"},
			custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways, TTL: custos.Duration(2 * time.Hour)}},
		{"BlockModels", []string{"--rule", "block_models", "--models", "gpt-*, gemini-*", "--tag", "env=prod"},
			custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockModels, Models: []string{"gpt-*", "gemini-*"}}},
		{"Notify", []string{"--tag", "team=pay", "--rule", "notify", "--notify-url", "https://hooks.example.com/x"},
			custos.AddPolicyInput{TagKey: "team", TagValue: "pay", Rule: custos.RuleNotify, NotifyURL: "https://hooks.example.com/x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure add sends the policy as given and prints its id.
			tc := newTestCLI(t)
			var got custos.AddPolicyInput
			tc.spy.addPolicy = func(in custos.AddPolicyInput) (*custos.Policy, error) {
				got = in
				return &custos.Policy{ID: "pol_0123456789abcdef", TagKey: in.TagKey, TagValue: in.TagValue, Rule: in.Rule}, nil
			}
			out := tc.mustRun(t, append([]string{"policy", "add"}, tt.args...)...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("sent %+v, want %+v", got, tt.want)
			}
			if !strings.HasPrefix(out, "added policy pol_0123456789abcdef: "+string(tt.want.Rule)+" on "+tt.want.TagKey+"=") {
				t.Fatalf("printed %q", out)
			}
		})
	}
}

func TestPolicyList(t *testing.T) {
	// Ensure list shows the policies (expired ones marked) and --json the structs.
	tc := newTestCLI(t)
	past := testNow.Add(-time.Minute)
	tc.spy.listPolicies = func() ([]*custos.Policy, error) {
		return []*custos.Policy{
			{ID: "pol_0000000000000001", TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockModels, Models: []string{"gpt-*", "o1*"}},
			{ID: "pol_0000000000000002", TagKey: "env", TagValue: "dev", Rule: custos.RuleBlockAlways, ExpiresAt: &past},
		}, nil
	}
	out := tc.mustRun(t, "policy", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !reflect.DeepEqual(strings.Fields(lines[1]), []string{"pol_0000000000000001", "env=prod", "block_models", "gpt-*,o1*", "-", "-"}) ||
		!strings.HasSuffix(lines[2], "expired") {
		t.Fatalf("table:\n%s", out)
	}
	var ps []custos.Policy
	if err := json.Unmarshal([]byte(tc.mustRun(t, "policy", "list", "--json")), &ps); err != nil || len(ps) != 2 {
		t.Fatalf("%v %+v", err, ps)
	}
}

func TestPolicyRemove(t *testing.T) {
	// Ensure rm removes the policy by id.
	tc := newTestCLI(t)
	var got string
	tc.spy.removePolicy = func(id string) error { got = id; return nil }
	if out := tc.mustRun(t, "policy", "rm", "pol_0123456789abcdef"); out != "removed policy pol_0123456789abcdef\n" || got != "pol_0123456789abcdef" {
		t.Fatalf("printed %q, removed %q", out, got)
	}
}
