package policy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/policy"
)

var (
	t0  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now = t0.Add(time.Hour)
)

// pol returns a policy on env=prod with rule r, created at t0 plus age
// seconds, and applies opts.
func pol(id string, r custos.Rule, age int, opts ...func(*custos.Policy)) *custos.Policy {
	p := &custos.Policy{ID: id, OrgID: "org_1", TagKey: "env", TagValue: "prod", Rule: r, CreatedAt: t0.Add(time.Duration(age) * time.Second)}
	for _, o := range opts {
		o(p)
	}
	return p
}

// on sets the policy's tag.
func on(k, v string) func(*custos.Policy) {
	return func(p *custos.Policy) { p.TagKey, p.TagValue = k, v }
}

// models sets the policy's model patterns.
func models(m ...string) func(*custos.Policy) {
	return func(p *custos.Policy) { p.Models = m }
}

// expires sets the policy's expiry.
func expires(t time.Time) func(*custos.Policy) {
	return func(p *custos.Policy) { p.ExpiresAt = &t }
}

// session returns a session live until now+d covering tags.
func session(d time.Duration, tags map[string]string) *custos.Session {
	return &custos.Session{ID: "ses_1", OrgID: "org_1", DeviceID: "dev_1", Tags: tags, CreatedAt: t0, ExpiresAt: now.Add(d)}
}

// ids returns the ids of ps.
func ids(ps []*custos.Policy) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.ID)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	prod := &custos.Secret{ID: "sec_1", OrgID: "org_1", Project: "default", Name: "DB_URL", Tags: map[string]string{"env": "prod", "team": "core"}}
	dev := &custos.Secret{ID: "sec_2", OrgID: "org_1", Project: "default", Name: "DB_URL", Tags: map[string]string{"env": "dev"}}
	untagged := &custos.Secret{ID: "sec_3", OrgID: "org_1", Project: "default", Name: "X"}

	for _, c := range []struct {
		name     string
		in       policy.Input
		allow    bool
		denied   string   // id of the denying policy
		reason   string   // substring of Reason
		confirm  string   // id of Confirm
		notified []string // ids of Notify
	}{
		{name: "OKNoPolicies", in: policy.Input{Secret: prod}, allow: true},
		{name: "OKUntagged", in: policy.Input{Secret: untagged, Policies: []*custos.Policy{pol("pol_a", custos.RuleBlockAlways, 0)}}, allow: true},

		// block_always
		{name: "BlockAlways", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_a", custos.RuleBlockAlways, 0)}, Session: session(time.Hour, nil)},
			denied: "pol_a", reason: "policy pol_a (block_always on env=prod): this secret is dashboard-only"},

		// require_session
		{name: "RequireSessionNone", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0)}},
			denied: "pol_s", reason: "policy pol_s (require_session on env=prod): wake a session first: custos session wake --tags env=prod"},
		{name: "RequireSessionOK", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0)}, Session: session(time.Minute, nil)},
			allow: true},
		{name: "RequireSessionExpired", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0)}, Session: session(0, nil)},
			denied: "pol_s", reason: "wake a session first"},
		{name: "RequireSessionTagScoped", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0)}, Session: session(time.Hour, map[string]string{"env": "prod"})},
			allow: true},
		{name: "RequireSessionOtherTag", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0)}, Session: session(time.Hour, map[string]string{"env": "dev"})},
			denied: "pol_s", reason: "wake a session first"},
		{name: "RequireSessionAnyTagOfSecret", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0)}, Session: session(time.Hour, map[string]string{"team": "core"})},
			allow: true},
		{name: "RequireSessionByTeam", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0, on("team", "core"))}},
			denied: "pol_s", reason: "(require_session on team=core): wake a session first: custos session wake --tags team=core"},

		// block_models
		{name: "BlockModelsMatch", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("gpt-4*", "claude-*"))}, Model: "gpt-4o-mini"},
			denied: "pol_m", reason: `policy pol_m (block_models on env=prod): model "gpt-4o-mini" is blocked (pattern "gpt-4*")`},
		{name: "BlockModelsCaseInsensitive", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("GPT-4*"))}, Model: "gpt-4O"},
			denied: "pol_m", reason: "is blocked"},
		{name: "BlockModelsNoMatch", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("gpt-4*"))}, Model: "claude-sonnet"},
			allow: true},
		{name: "BlockModelsExact", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("llama3"))}, Model: "llama3.1"},
			allow: true},
		{name: "BlockModelsQuestionMark", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("o?"))}, Model: "o1"},
			denied: "pol_m"},
		{name: "BlockModelsClass", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("gpt-[34]*"))}, Model: "gpt-5"},
			allow: true},
		{name: "BlockModelsStarAll", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("*"))}, Model: "anything"},
			denied: "pol_m"},
		{name: "BlockModelsStarNoSlash", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("*"))}, Model: "openai/gpt-4o"},
			allow: true},
		{name: "BlockModelsNoModel", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("*"))}},
			allow: true},
		{name: "BlockModelsBadPatternFailsClosed", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("gpt["))}, Model: "x"},
			denied: "pol_m"},

		// require_confirmation
		{name: "RequireConfirmation", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_c", custos.RuleRequireConfirmation, 0)}},
			allow: true, confirm: "pol_c"},
		{name: "RequireConfirmationOldestWins", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_c2", custos.RuleRequireConfirmation, 5, on("team", "core")), pol("pol_c1", custos.RuleRequireConfirmation, 1)}},
			allow: true, confirm: "pol_c1"},

		// notify
		{name: "Notify", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_n2", custos.RuleNotify, 2), pol("pol_n1", custos.RuleNotify, 1), pol("pol_nd", custos.RuleNotify, 0, on("env", "dev"))}},
			allow: true, notified: []string{"pol_n1", "pol_n2"}},
		{name: "NotifyOnDeny", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_n", custos.RuleNotify, 0), pol("pol_a", custos.RuleBlockAlways, 9)}},
			denied: "pol_a", notified: []string{"pol_n"}},

		// ordering
		{name: "OrderBlockAlwaysBeforeSession", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_s", custos.RuleRequireSession, 0), pol("pol_a", custos.RuleBlockAlways, 10)}},
			denied: "pol_a"},
		{name: "OrderSessionBeforeModels", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("*")), pol("pol_s", custos.RuleRequireSession, 10)}, Model: "gpt-4"},
			denied: "pol_s"},
		{name: "OrderModelsBeforeConfirmation", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_c", custos.RuleRequireConfirmation, 0), pol("pol_m", custos.RuleBlockModels, 10, models("*"))}, Model: "gpt-4"},
			denied: "pol_m"},
		{name: "OrderSessionOKThenModels", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_m", custos.RuleBlockModels, 0, models("gpt*")), pol("pol_s", custos.RuleRequireSession, 10)}, Model: "gpt-4", Session: session(time.Hour, nil)},
			denied: "pol_m"},
		{name: "OrderAllPassConfirm", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_n", custos.RuleNotify, 0), pol("pol_c", custos.RuleRequireConfirmation, 1), pol("pol_m", custos.RuleBlockModels, 2, models("gpt*")), pol("pol_s", custos.RuleRequireSession, 3)}, Model: "claude", Session: session(time.Hour, nil)},
			allow: true, confirm: "pol_c", notified: []string{"pol_n"}},
		{name: "OrderConfirmClearedOnDeny", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_c", custos.RuleRequireConfirmation, 0), pol("pol_s", custos.RuleRequireSession, 1)}},
			denied: "pol_s"},
		{name: "OrderSameRuleOldestFirst", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_b", custos.RuleBlockAlways, 2, on("team", "core")), pol("pol_a", custos.RuleBlockAlways, 1)}},
			denied: "pol_a"},
		{name: "OrderSameTimeByID", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_b", custos.RuleBlockAlways, 1), pol("pol_a", custos.RuleBlockAlways, 1)}},
			denied: "pol_a"},

		// expiry and tags
		{name: "ExpiredIgnored", in: policy.Input{Secret: prod, Now: now, Policies: []*custos.Policy{pol("pol_a", custos.RuleBlockAlways, 0, expires(now))}},
			allow: true},
		{name: "NotYetExpired", in: policy.Input{Secret: prod, Now: now, Policies: []*custos.Policy{pol("pol_a", custos.RuleBlockAlways, 0, expires(now.Add(time.Second)))}},
			denied: "pol_a"},
		{name: "TagMismatchIgnored", in: policy.Input{Secret: dev, Policies: []*custos.Policy{pol("pol_a", custos.RuleBlockAlways, 0), pol("pol_s", custos.RuleRequireSession, 0)}},
			allow: true},
		{name: "TagValueCaseSensitive", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_a", custos.RuleBlockAlways, 0, on("env", "Prod"))}},
			allow: true},
		{name: "NilPolicyIgnored", in: policy.Input{Secret: prod, Policies: []*custos.Policy{nil}},
			allow: true},

		// fail closed
		{name: "UnknownRuleDenies", in: policy.Input{Secret: prod, Policies: []*custos.Policy{pol("pol_n", custos.RuleNotify, 0), pol("pol_x", custos.Rule("block_weekends"), 5)}},
			denied: "pol_x", reason: `unknown rule "block_weekends"`, notified: []string{"pol_n"}},
		{name: "NoSecretDenies", in: policy.Input{Policies: []*custos.Policy{}}, reason: "no secret"},
	} {
		// Ensure each case gets its decision.
		t.Run(c.name, func(t *testing.T) {
			if c.in.Now.IsZero() {
				c.in.Now = now
			}
			orig := slices.Clone(c.in.Policies)
			d := policy.Evaluate(c.in)
			if got, want := d.Allow, c.allow; got != want {
				t.Fatalf("Allow=%v, want %v (reason %q)", got, want, d.Reason)
			}
			if got, want := idOf(d.Denied), c.denied; got != want {
				t.Fatalf("Denied=%q, want %q", got, want)
			}
			if !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("Reason=%q, want %q", d.Reason, c.reason)
			}
			if d.Allow && d.Reason != "" {
				t.Fatalf("Reason=%q on allow", d.Reason)
			}
			if !d.Allow && d.Reason == "" {
				t.Fatal("no reason on deny")
			}
			if got, want := idOf(d.Confirm), c.confirm; got != want {
				t.Fatalf("Confirm=%q, want %q", got, want)
			}
			if got, want := ids(d.Notify), c.notified; !slices.Equal(got, want) {
				t.Fatalf("Notify=%v, want %v", got, want)
			}
			if !slices.Equal(orig, c.in.Policies) {
				t.Fatal("Evaluate reordered its input")
			}
		})
	}
}

// idOf returns p's id, or "" for nil.
func idOf(p *custos.Policy) string {
	if p == nil {
		return ""
	}
	return p.ID
}

func TestSort(t *testing.T) {
	// Ensure policies sort by rank, then creation time, then id.
	t.Run("OK", func(t *testing.T) {
		ps := []*custos.Policy{
			pol("pol_n", custos.RuleNotify, 0),
			pol("pol_c", custos.RuleRequireConfirmation, 0),
			pol("pol_m", custos.RuleBlockModels, 0),
			pol("pol_s2", custos.RuleRequireSession, 2),
			pol("pol_s1b", custos.RuleRequireSession, 1),
			pol("pol_s1a", custos.RuleRequireSession, 1),
			pol("pol_a", custos.RuleBlockAlways, 9),
			pol("pol_x", custos.Rule("mystery"), 9),
		}
		policy.Sort(ps)
		want := []string{"pol_x", "pol_a", "pol_s1a", "pol_s1b", "pol_s2", "pol_m", "pol_c", "pol_n"}
		if got := ids(ps); !slices.Equal(got, want) {
			t.Fatalf("order=%v, want %v", got, want)
		}
	})
}

func TestValidateInput(t *testing.T) {
	in := func(r custos.Rule, opts ...func(*custos.AddPolicyInput)) custos.AddPolicyInput {
		v := custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: r}
		switch r {
		case custos.RuleBlockModels:
			v.Models = []string{"gpt-4*"}
		case custos.RuleNotify:
			v.NotifyURL = "https://hooks.example.com/custos"
		}
		for _, o := range opts {
			o(&v)
		}
		return v
	}
	withModels := func(m ...string) func(*custos.AddPolicyInput) {
		return func(v *custos.AddPolicyInput) { v.Models = m }
	}
	withURL := func(u string) func(*custos.AddPolicyInput) {
		return func(v *custos.AddPolicyInput) { v.NotifyURL = u }
	}
	many := make([]string, 33)
	for i := range many {
		many[i] = "m"
	}

	for _, c := range []struct {
		name string
		in   custos.AddPolicyInput
		want string // "" for ok, else a substring of the message
	}{
		{"OKBlockAlways", in(custos.RuleBlockAlways), ""},
		{"OKRequireSession", in(custos.RuleRequireSession), ""},
		{"OKBlockModels", in(custos.RuleBlockModels, withModels("gpt-4*", "claude-?", "o[1-3]", "*", strings.Repeat("x", 128))), ""},
		{"OKBlockModels32", in(custos.RuleBlockModels, withModels(many[:32]...)), ""},
		{"OKRequireConfirmation", in(custos.RuleRequireConfirmation), ""},
		{"OKNotify", in(custos.RuleNotify), ""},
		{"OKNotifyHTTPPort", in(custos.RuleNotify, withURL("http://10.0.0.1:8080/hook?x=1")), ""},
		{"OKTTL", in(custos.RuleBlockAlways, func(v *custos.AddPolicyInput) { v.TTL = custos.Duration(time.Hour) }), ""},
		{"OKEmptyTagValue", in(custos.RuleBlockAlways, func(v *custos.AddPolicyInput) { v.TagValue = "" }), ""},

		{"ErrTagKey", in(custos.RuleBlockAlways, func(v *custos.AddPolicyInput) { v.TagKey = "Env" }), "invalid tag key"},
		{"ErrTagKeyEmpty", in(custos.RuleBlockAlways, func(v *custos.AddPolicyInput) { v.TagKey = "" }), "invalid tag key"},
		{"ErrTagValue", in(custos.RuleBlockAlways, func(v *custos.AddPolicyInput) { v.TagValue = "a b" }), "invalid tag value"},
		{"ErrRuleEmpty", in(""), "invalid rule"},
		{"ErrRuleUnknown", in("block_weekends"), `invalid rule "block_weekends": use one of block_always, require_session`},
		{"ErrRuleLong", in(custos.Rule(strings.Repeat("r", 500))), "…"},

		{"ErrModelsRequired", in(custos.RuleBlockModels, withModels()), "models is required"},
		{"ErrModelsTooMany", in(custos.RuleBlockModels, withModels(many...)), "too many models: 33"},
		{"ErrModelEmpty", in(custos.RuleBlockModels, withModels("gpt", "")), "models[1] is empty"},
		{"ErrModelTooLong", in(custos.RuleBlockModels, withModels(strings.Repeat("x", 129))), "too long: 129"},
		{"ErrModelBadPattern", in(custos.RuleBlockModels, withModels("gpt-[4")), "not a valid pattern"},
		{"ErrModelSpace", in(custos.RuleBlockModels, withModels("gpt 4")), "spaces and control characters"},
		{"ErrModelControl", in(custos.RuleBlockModels, withModels("gpt\n4")), "spaces and control characters"},
		{"ErrModelsOnOtherRule", in(custos.RuleRequireSession, withModels("gpt")), "models is only for block_models policies, not require_session"},

		{"ErrNotifyURLRequired", in(custos.RuleNotify, withURL("")), "notify_url is required"},
		{"ErrNotifyURLScheme", in(custos.RuleNotify, withURL("ftp://example.com/x")), "absolute http:// or https://"},
		{"ErrNotifyURLJS", in(custos.RuleNotify, withURL("javascript:alert(1)")), "absolute http:// or https://"},
		{"ErrNotifyURLRelative", in(custos.RuleNotify, withURL("/hook")), "absolute http:// or https://"},
		{"ErrNotifyURLNoHost", in(custos.RuleNotify, withURL("https:///hook")), "absolute http:// or https://"},
		{"ErrNotifyURLPortOnly", in(custos.RuleNotify, withURL("https://:443/hook")), "must name a host"},
		{"ErrNotifyURLOpaque", in(custos.RuleNotify, withURL("https:example.com")), "absolute http:// or https://"},
		{"ErrNotifyURLUserinfo", in(custos.RuleNotify, withURL("https://user:pw@example.com/")), "must not contain a user name or password"},
		{"ErrNotifyURLTooLong", in(custos.RuleNotify, withURL("https://example.com/"+strings.Repeat("a", 2048))), "too long"},
		{"ErrNotifyURLMalformed", in(custos.RuleNotify, withURL("https://exa mple.com/%zz")), "absolute http:// or https://"},
		{"ErrNotifyURLOnOtherRule", in(custos.RuleBlockAlways, withURL("https://example.com/")), "notify_url is only for notify policies"},

		{"ErrTTLNegative", in(custos.RuleBlockAlways, func(v *custos.AddPolicyInput) { v.TTL = -1 }), "invalid ttl"},
	} {
		// Ensure valid input passes and invalid input gets EINVALID with a clear message.
		t.Run(c.name, func(t *testing.T) {
			err := policy.ValidateInput(c.in)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if got, want := custos.ErrorCode(err), custos.EINVALID; got != want {
				t.Fatalf("code=%q, want %q (err=%v)", got, want, err)
			}
			if msg := custos.ErrorMessage(err); !strings.Contains(msg, c.want) {
				t.Fatalf("message %q, want %q", msg, c.want)
			} else if len(msg) > 300 {
				t.Fatalf("message too long: %d", len(msg))
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	s := &custos.Secret{ID: "sec_1", Tags: map[string]string{"env": "prod", "team": "core"}}
	var ps []*custos.Policy
	for i, r := range []custos.Rule{custos.RuleNotify, custos.RuleRequireConfirmation, custos.RuleBlockModels, custos.RuleRequireSession} {
		ps = append(ps, pol("pol_"+string(rune('a'+i)), r, i, models("gpt-4*")), pol("pol_o"+string(rune('a'+i)), r, i, on("env", "dev")))
	}
	in := policy.Input{Secret: s, Policies: ps, Model: "claude", Session: session(time.Hour, nil), Now: now}
	b.ReportAllocs()
	for b.Loop() {
		if d := policy.Evaluate(in); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}
