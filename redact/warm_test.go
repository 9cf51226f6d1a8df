package redact

import "testing"

// TestWarmCompilesWhatFirstRequestsReach proves Warm compiles the rules the
// common credential shapes reach (so a server's first request does not
// compile them), and no more than a handful of the rule files' 230 rules.
func TestWarmCompilesWhatFirstRequestsReach(t *testing.T) {
	e, err := New(Config{Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	// Rules compile once per process; give e a rule set of its own, so
	// what other tests compiled does not count.
	rs, err := loadRules()
	if err != nil {
		t.Fatal(err)
	}
	e.rules, e.global, e.kw, e.kwRules = rs.rules, rs.global, rs.kw, rs.kwRules
	compiled := func() map[string]bool {
		m := map[string]bool{}
		for _, r := range e.rules {
			if r.ok {
				m[r.id] = true
			}
		}
		return m
	}
	before := compiled()
	e.Warm()
	after := compiled()
	for _, id := range []string{"generic-api-key", "github-pat", "aws-access-token", "jwt",
		"curl-auth-user", "curl-auth-header", "custos-connection-string", "custos-password-assignment", "private-key"} {
		if !after[id] {
			t.Errorf("rule %s not compiled after Warm (compiled: %d rules)", id, len(after))
		}
	}
	if n := len(after); n > 40 {
		t.Errorf("Warm compiled %d rules; it should compile what its sample reaches, a handful", n)
	}
	if len(before) != 0 {
		t.Errorf("%d rules compiled before Warm", len(before))
	}
	found := e.Find(warmSample)
	if len(found) == 0 {
		t.Fatal("the warm sample holds no finding: it exercises nothing")
	}
	for _, f := range found {
		t.Logf("%s %q", f.RuleID, warmSample[f.Start:f.End])
	}
}
