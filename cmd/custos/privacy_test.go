package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
)

func TestPrivacySet(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want custos.PrivacyRule
		out  string
	}{
		{"Org", []string{"sensitive"}, custos.PrivacyRule{Scope: "org", Mode: "sensitive"}, "privacy of the org: sensitive\n"},
		{"Project", []string{"offline", "--project", "Payroll/v2"}, custos.PrivacyRule{Scope: "project", Target: "Payroll/v2", Mode: "offline"}, "privacy of project Payroll/v2: offline\n"},
		{"Key", []string{"--key", "key_0123456789abcdef", "normal"}, custos.PrivacyRule{Scope: "key", Target: "key_0123456789abcdef", Mode: "normal"}, "privacy of key key_0123456789abcdef: normal\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure set sends the scope, target and mode, and prints them.
			tc, g := newGatewayCLI(t)
			var got custos.PrivacyRule
			g.setPrivacy = func(r custos.PrivacyRule) (*custos.PrivacyRule, error) {
				got = r
				return &r, nil
			}
			if out := tc.mustRun(t, append([]string{"privacy", "set"}, tt.args...)...); out != tt.out {
				t.Fatalf("printed %q, want %q", out, tt.out)
			}
			if got != tt.want {
				t.Fatalf("sent %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPrivacyList(t *testing.T) {
	// Ensure list shows each rule, and --json the structs.
	tc, g := newGatewayCLI(t)
	g.listPrivacy = func() ([]*custos.PrivacyRule, error) {
		return []*custos.PrivacyRule{
			{Scope: "org", Mode: "sensitive", UpdatedAt: testNow, UpdatedBy: "key_0000000000000001"},
			{Scope: "project", Target: "payroll", Mode: "offline", UpdatedAt: testNow, UpdatedBy: "key_0000000000000001"},
		}, nil
	}
	out := tc.mustRun(t, "privacy", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 ||
		!reflect.DeepEqual(strings.Fields(lines[0]), []string{"SCOPE", "TARGET", "MODE", "UPDATED", "BY"}) ||
		!reflect.DeepEqual(strings.Fields(lines[1]), []string{"org", "-", "sensitive", "2026-03-01T12:00:00Z", "key_0000000000000001"}) ||
		!reflect.DeepEqual(strings.Fields(lines[2])[:3], []string{"project", "payroll", "offline"}) {
		t.Fatalf("table:\n%s", out)
	}
	var rs []custos.PrivacyRule
	if err := json.Unmarshal([]byte(tc.mustRun(t, "privacy", "list", "--json")), &rs); err != nil || len(rs) != 2 || rs[1].Target != "payroll" {
		t.Fatalf("%v %+v", err, rs)
	}
}

func TestPrivacyRemove(t *testing.T) {
	// Ensure rm removes the org's rule by default, or the project's or key's.
	for _, tt := range []struct {
		args                []string
		scope, target, want string
	}{
		{nil, "org", "", "removed the privacy rule of the org\n"},
		{[]string{"--project", "payroll"}, "project", "payroll", "removed the privacy rule of project payroll\n"},
		{[]string{"--key", "key_0123456789abcdef"}, "key", "key_0123456789abcdef", "removed the privacy rule of key key_0123456789abcdef\n"},
	} {
		tc, g := newGatewayCLI(t)
		var scope, target string
		g.removePrivacy = func(s, tg string) error { scope, target = s, tg; return nil }
		if out := tc.mustRun(t, append([]string{"privacy", "rm"}, tt.args...)...); out != tt.want || scope != tt.scope || target != tt.target {
			t.Errorf("%q: printed %q, sent %q %q", tt.args, out, scope, target)
		}
	}
}
