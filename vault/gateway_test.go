package vault_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/gateway"
	"github.com/custos-dev/custos/redact"
)

// TestAddProviderValidation proves a provider cannot be pointed where the
// gateway must not go: a cloud kind only at public HTTPS, a local kind never
// at a public or link-local (metadata) address, and keys that would break a
// header are refused.
func TestAddProviderValidation(t *testing.T) {
	e := MustOpenEnv(t)
	ctx := As(e.Owner, "cli")
	for _, tc := range []struct {
		name string
		in   custos.AddProviderInput
	}{
		{"cloud at loopback", custos.AddProviderInput{Name: "a", Kind: "openai", BaseURL: "http://127.0.0.1:8000/v1", Models: []string{"gpt-*"}, APIKey: "sk-1"}},
		{"cloud https loopback", custos.AddProviderInput{Name: "a", Kind: "openai", BaseURL: "https://127.0.0.1/v1", Models: []string{"gpt-*"}, APIKey: "sk-1"}},
		{"cloud metadata", custos.AddProviderInput{Name: "a", Kind: "anthropic", BaseURL: "https://169.254.169.254", Models: []string{"c*"}, APIKey: "sk-1"}},
		{"cloud mapped v6", custos.AddProviderInput{Name: "a", Kind: "openai", BaseURL: "https://[::ffff:127.0.0.1]/v1", Models: []string{"g"}, APIKey: "sk-1"}},
		{"cloud plain http", custos.AddProviderInput{Name: "a", Kind: "openai", BaseURL: "http://api.openai.com/v1", Models: []string{"g"}, APIKey: "sk-1"}},
		{"cloud without key", custos.AddProviderInput{Name: "a", Kind: "openai", Models: []string{"g"}}},
		{"local public", custos.AddProviderInput{Name: "a", Kind: "local", BaseURL: "http://8.8.8.8/v1", Models: []string{"g"}}},
		{"local metadata", custos.AddProviderInput{Name: "a", Kind: "local", BaseURL: "http://169.254.169.254/v1", Models: []string{"g"}}},
		{"local no url", custos.AddProviderInput{Name: "a", Kind: "local", Models: []string{"g"}}},
		{"userinfo", custos.AddProviderInput{Name: "a", Kind: "local", BaseURL: "http://u:p@127.0.0.1/v1", Models: []string{"g"}}},
		{"key newline", custos.AddProviderInput{Name: "a", Kind: "openai", Models: []string{"g"}, APIKey: "sk-1\r\nX-Evil: 1"}},
		{"bad kind", custos.AddProviderInput{Name: "a", Kind: "azure", Models: []string{"g"}, APIKey: "k"}},
		{"bad name", custos.AddProviderInput{Name: "../x", Kind: "local", BaseURL: "http://127.0.0.1/v1", Models: []string{"g"}}},
		{"no models", custos.AddProviderInput{Name: "a", Kind: "local", BaseURL: "http://127.0.0.1/v1"}},
		{"bad model", custos.AddProviderInput{Name: "a", Kind: "local", BaseURL: "http://127.0.0.1/v1", Models: []string{"gpt 4"}}},
	} {
		if _, err := e.Service.AddProvider(ctx, tc.in); custos.ErrorCode(err) != custos.EINVALID {
			t.Errorf("%s: err %v, want invalid", tc.name, err)
		}
	}
	if ps, err := e.Service.ListProviders(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("refused providers were stored: %v %v", ps, err)
	}
	member, _ := e.MustKey(t, "m", custos.RoleMember)
	if _, err := e.Service.AddProvider(As(member, "cli"), custos.AddProviderInput{Name: "a", Kind: "local", BaseURL: "http://127.0.0.1/v1", Models: []string{"g"}}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Errorf("member add: %v", err)
	}
}

// TestProviderKeySealed proves a provider key is stored sealed, never
// returned, opened only into the gateway's setup, and that a change is seen
// by the next request's setup.
func TestProviderKeySealed(t *testing.T) {
	e := MustOpenEnv(t)
	ctx := As(e.Owner, "cli")
	key := "sk-proj-" + strings.Repeat("Zq8", 12)
	p, err := e.Service.AddProvider(ctx, custos.AddProviderInput{Name: "openai", Kind: "openai", Models: []string{"gpt-*"}, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if p.BaseURL != "https://api.openai.com/v1" || !p.HasKey {
		t.Errorf("provider %+v", p)
	}
	ps, err := e.Service.ListProviders(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatal(ps, err)
	}
	b, _ := json.Marshal(ps)
	stored, _ := e.Store.ListProviders(context.Background(), e.Owner.OrgID)
	if strings.Contains(string(b), key) || strings.Contains(string(stored[0].Ciphertext), key) || len(stored[0].Ciphertext) == 0 {
		t.Fatalf("key in the clear: %s", b)
	}
	for _, ev := range e.mustAudit(t) {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), key) {
			t.Fatalf("audit event holds the key: %s", b)
		}
	}
	gw := e.Service.NewGateway(redact.Config{Secrets: true})
	s, err := gw.Setup(context.Background(), e.Owner)
	if err != nil || len(s.Providers) != 1 || s.Providers[0].APIKey != key || s.Providers[0].Kind != gateway.KindOpenAI {
		t.Fatalf("setup %+v %v", s, err)
	}
	if err := e.Service.RemoveProvider(ctx, "openai"); err != nil {
		t.Fatal(err)
	}
	if s, err = gw.Setup(context.Background(), e.Owner); err != nil || len(s.Providers) != 0 {
		t.Fatalf("removed provider still served: %+v %v", s, err)
	}
	if err := e.Service.RemoveProvider(ctx, "openai"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("second remove: %v", err)
	}
}

// TestKnownValueGuard proves the gateway's engine knows the org's stored
// values (labelled project/name) and that a hit is audited by name, never
// by value, and notifies matching notify policies.
func TestKnownValueGuard(t *testing.T) {
	e := MustOpenEnv(t)
	ctx := As(e.Owner, "cli")
	value := "hunter2-but-longer-" + strings.Repeat("x", 6)
	e.MustSet(t, "prod", "DB_PASSWORD", value, map[string]string{"env": "prod"})
	e.MustSet(t, "prod", "SHORT", "abc1234", nil) // under MinKnownValue: not guarded
	if _, err := e.Service.AddPolicy(ctx, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify, NotifyURL: "https://hooks.example.com/x"}); err != nil {
		t.Fatal(err)
	}
	gw := e.Service.NewGateway(redact.Config{})
	s, err := gw.Setup(context.Background(), e.Owner)
	if err != nil {
		t.Fatal(err)
	}
	in := "connect with " + value + " or " + base64.StdEncoding.EncodeToString([]byte(value)) + " abc1234"
	fs := s.Engine.Find([]byte(in))
	if len(fs) != 2 || fs[0].Label != "prod/DB_PASSWORD" || fs[1].Label != "prod/DB_PASSWORD" {
		t.Fatalf("findings %+v", fs)
	}
	before := len(e.mustAudit(t))
	gw.KnownFound(context.Background(), gateway.KnownHit{Key: e.Owner, Names: []string{"prod/DB_PASSWORD"}, Model: "gpt-4o", Provider: "openai", IP: "127.0.0.1"})
	evs := e.mustAudit(t)
	if len(evs) != before+1 {
		t.Fatalf("%d events, want %d", len(evs), before+1)
	}
	ev := evs[len(evs)-1]
	if ev.Action != custos.ActionGatewaySecret || ev.Secret != "DB_PASSWORD" || ev.Project != "prod" || ev.Outcome != "redacted" {
		t.Errorf("event %+v", ev)
	}
	if b, _ := json.Marshal(evs); strings.Contains(string(b), value) {
		t.Fatal("the audit log holds the value")
	}
	msgs, err := e.Store.ClaimOutbox(context.Background(), e.Clock.Now().Add(1e9), 1e9, 10)
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Payload), "secret.leak_detected") || strings.Contains(string(msgs[0].Payload), value) {
		t.Fatalf("outbox %v %v", msgs, err)
	}
	// A new value is guarded from the next request on.
	e.MustSet(t, "prod", "DB_PASSWORD", "rotated-"+value, nil)
	if s, err = gw.Setup(context.Background(), e.Owner); err != nil {
		t.Fatal(err)
	}
	if fs := s.Engine.Find([]byte("rotated-" + value)); len(fs) != 1 || fs[0].Label != "prod/DB_PASSWORD" {
		t.Errorf("rotated value not guarded: %+v", fs)
	}
}

// TestBudgetAndPrivacyAdmin covers the budget and privacy services' rules.
func TestBudgetAndPrivacyAdmin(t *testing.T) {
	e := MustOpenEnv(t)
	ctx := As(e.Owner, "cli")
	agent, _ := e.MustKey(t, "bot", custos.RoleAgent)
	if _, err := e.Service.SetBudget(ctx, custos.Budget{Period: "week", Limit: 10}); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("bad period: %v", err)
	}
	if _, err := e.Service.SetBudget(ctx, custos.Budget{Period: "day", Limit: 0}); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("zero limit: %v", err)
	}
	if _, err := e.Service.SetBudget(ctx, custos.Budget{Period: "day", Limit: 10, KeyID: "key_nope"}); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := e.Service.SetBudget(As(agent, "cli"), custos.Budget{Period: "day", Limit: 10}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Errorf("agent sets budget: %v", err)
	}
	if _, err := e.Service.SetBudget(ctx, custos.Budget{Period: "day", Limit: 1000, KeyID: agent.ID}); err != nil {
		t.Fatal(err)
	}
	gw := e.Service.NewGateway(redact.Config{})
	if _, err := gw.ReserveBudget(context.Background(), agent.OrgID, agent.ID, 1001, e.Clock.Now()); custos.ErrorCode(err) != custos.ERATELIMITED {
		t.Errorf("over budget: %v", err)
	}
	for _, r := range []custos.PrivacyRule{{Scope: "org", Mode: "paranoid"}, {Scope: "org", Target: "x", Mode: "offline"}, {Scope: "project", Target: "../x y", Mode: "offline"}, {Scope: "key", Target: "key_nope", Mode: "offline"}, {Scope: "team", Mode: "offline"}} {
		if _, err := e.Service.SetPrivacy(ctx, r); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	if _, err := e.Service.SetPrivacy(ctx, custos.PrivacyRule{Scope: "project", Target: "payments", Mode: "offline"}); err != nil {
		t.Fatal(err)
	}
	s, err := gw.Setup(context.Background(), e.Owner)
	if err != nil || len(s.Privacy) != 1 || s.Privacy[0].Target != "payments" {
		t.Fatalf("setup privacy %+v %v", s, err)
	}
	// Usage: an agent reads only its own.
	if _, err := e.Service.ListUsage(As(agent, "cli"), custos.UsageFilter{KeyID: e.Owner.ID}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Errorf("agent reads another key's usage: %v", err)
	}
	if _, err := e.Service.SummarizeUsage(ctx, custos.UsageFilter{}, "color"); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("bad grouping: %v", err)
	}
}

func (e *Env) mustAudit(tb testing.TB) []*custos.AuditEvent {
	tb.Helper()
	evs, err := e.Store.ListAudit(context.Background(), e.Owner.OrgID, custos.AuditFilter{Limit: 10000})
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

// TestUsageRecorderDrains proves the recorder writes every record it was
// given when more than a batch is queued, while running and at stop.
func TestUsageRecorderDrains(t *testing.T) {
	e := MustOpenEnv(t)
	now := e.Clock.Now()
	rec := e.Service.NewUsageRecorder()
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rec.Run(runCtx); close(done) }()
	const n = 3*64 + 7 // more than three batches
	for i := range n {
		rec.Record(&custos.UsageRecord{ID: custos.NewID("use"), OrgID: e.Owner.OrgID, KeyID: e.Owner.ID, Provider: "p",
			Model: fmt.Sprint("m", i), Route: "chat", Status: 200, TokensIn: 1, Time: now.Add(-time.Duration(i) * time.Second)})
	}
	stop()
	<-done
	all, err := e.Service.ListUsage(As(e.Owner, "cli"), custos.UsageFilter{Since: now.Add(-time.Hour), Limit: 10000})
	if err != nil || len(all) != n {
		t.Fatalf("recorded %d records, want %d: %v", len(all), n, err)
	}
}

// TestUsagePurge proves usage records older than the retention are
// deleted and newer ones kept, and that the recorder writes what it was
// given, batched, including what is queued when it stops.
func TestUsagePurge(t *testing.T) {
	e := MustOpenEnv(t)
	ctx := context.Background()
	now := e.Clock.Now()
	rec := e.Service.NewUsageRecorder()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { rec.Run(runCtx); close(done) }()
	for i, age := range []time.Duration{0, time.Hour, 89 * 24 * time.Hour, 91 * 24 * time.Hour, 400 * 24 * time.Hour} {
		rec.Record(&custos.UsageRecord{ID: custos.NewID("use"), OrgID: e.Owner.OrgID, KeyID: e.Owner.ID, Provider: "p", Model: fmt.Sprint("m", i),
			Route: "chat", Status: 200, TokensIn: 1, Time: now.Add(-age)})
	}
	stop()
	<-done
	all, err := e.Service.ListUsage(As(e.Owner, "cli"), custos.UsageFilter{Since: now.Add(-500 * 24 * time.Hour)})
	if err != nil || len(all) != 5 {
		t.Fatalf("recorded %d records, want 5: %v", len(all), err)
	}
	n, err := e.Service.PurgeUsage(ctx, custos.DefaultUsageRetention)
	if err != nil || n != 2 {
		t.Fatalf("purged %d, want 2: %v", n, err)
	}
	left, _ := e.Service.ListUsage(As(e.Owner, "cli"), custos.UsageFilter{Since: now.Add(-500 * 24 * time.Hour)})
	if len(left) != 3 {
		t.Fatalf("%d records left, want 3", len(left))
	}
	for _, u := range left {
		if now.Sub(u.Time) > custos.DefaultUsageRetention {
			t.Errorf("record of %v kept", u.Time)
		}
	}
	if n, err := e.Service.PurgeUsage(ctx, custos.DefaultUsageRetention); err != nil || n != 0 {
		t.Errorf("second purge: %d %v", n, err)
	}
}
