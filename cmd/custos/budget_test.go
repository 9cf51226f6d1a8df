package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
)

func TestBudgetSet(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want custos.Budget
		out  string
	}{
		{"Org", []string{"--tokens", "5000000", "--per", "day"}, custos.Budget{Period: "day", Limit: 5000000}, "budget of org: 5000000 tokens per day\n"},
		{"Key", []string{"--per", "month", "--key", "key_0123456789abcdef", "--tokens", "42"},
			custos.Budget{KeyID: "key_0123456789abcdef", Period: "month", Limit: 42}, "budget of key_0123456789abcdef: 42 tokens per month\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure set sends the budget as given and prints it.
			tc, g := newGatewayCLI(t)
			var got custos.Budget
			g.setBudget = func(b custos.Budget) (*custos.Budget, error) {
				got = b
				b.OrgID = "org_1"
				return &b, nil
			}
			if out := tc.mustRun(t, append([]string{"budget", "set"}, tt.args...)...); out != tt.out {
				t.Fatalf("printed %q, want %q", out, tt.out)
			}
			if got != tt.want {
				t.Fatalf("sent %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("ErrUnknownKey", func(t *testing.T) {
		// Ensure the server's not found comes through, exit 1.
		tc, g := newGatewayCLI(t)
		g.setBudget = func(custos.Budget) (*custos.Budget, error) {
			return nil, custos.Errorf(custos.ENOTFOUND, "key not found")
		}
		if code := tc.run("budget", "set", "--tokens", "1", "--per", "day", "--key", "key_0123456789abcdef"); code != 1 || !strings.HasSuffix(tc.err.String(), "[not_found]\n") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
}

func TestBudgetList(t *testing.T) {
	// Ensure list shows limit, spent, reserved and the current window, and
	// --json the structs.
	tc, g := newGatewayCLI(t)
	g.listBudgets = func() ([]*custos.Budget, error) {
		return []*custos.Budget{
			{OrgID: "org_1", Period: "day", Limit: 1000, Spent: 250, Reserved: 100},
			{OrgID: "org_1", KeyID: "key_0123456789abcdef", Period: "month", Limit: 99},
		}, nil
	}
	out := tc.mustRun(t, "budget", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 ||
		!reflect.DeepEqual(strings.Fields(lines[0]), []string{"SCOPE", "PERIOD", "LIMIT", "SPENT", "RESERVED", "WINDOW", "RESETS"}) ||
		!reflect.DeepEqual(strings.Fields(lines[1]), []string{"org", "day", "1000", "250", "100", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"}) ||
		!reflect.DeepEqual(strings.Fields(lines[2]), []string{"key_0123456789abcdef", "month", "99", "0", "0", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"}) {
		t.Fatalf("table:\n%s", out)
	}
	var bs []custos.Budget
	if err := json.Unmarshal([]byte(tc.mustRun(t, "budget", "list", "--json")), &bs); err != nil || len(bs) != 2 || bs[0].Spent != 250 || bs[0].Reserved != 100 {
		t.Fatalf("%v %+v", err, bs)
	}
}

func TestBudgetRemove(t *testing.T) {
	// Ensure rm sends the period and key.
	tc, g := newGatewayCLI(t)
	var gotKey, gotPeriod string
	g.removeBudget = func(keyID, period string) error { gotKey, gotPeriod = keyID, period; return nil }
	if out := tc.mustRun(t, "budget", "rm", "--per", "day"); out != "removed the day budget of org\n" || gotKey != "" || gotPeriod != "day" {
		t.Fatalf("printed %q, sent %q %q", out, gotKey, gotPeriod)
	}
	if out := tc.mustRun(t, "budget", "rm", "--per", "month", "--key", "key_0123456789abcdef"); out != "removed the month budget of key_0123456789abcdef\n" || gotKey != "key_0123456789abcdef" || gotPeriod != "month" {
		t.Fatalf("printed %q, sent %q %q", out, gotKey, gotPeriod)
	}
}
