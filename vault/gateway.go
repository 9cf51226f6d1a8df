package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/gateway"
	"github.com/custos-dev/custos/redact"
)

// This file is the vault's side of the model gateway: the org's providers
// (their keys sealed like secret values), privacy rules, budgets and usage,
// and the per-org gateway setup with the known-value guard.

var (
	_ custos.ProviderService = (*Service)(nil)
	_ custos.BudgetService   = (*Service)(nil)
	_ custos.PrivacyService  = (*Service)(nil)
	_ custos.UsageService    = (*Service)(nil)
)

// PrefixProvider is the id prefix of model providers.
const PrefixProvider = "prv"

// MinKnownValue is the shortest stored value the gateway's known-value
// guard looks for: shorter values ("true", "8080") are everywhere.
const MinKnownValue = 8

var (
	providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	modelRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}\*?$|^\*$`)
	projectRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$`)
)

// providerAAD binds a provider key's ciphertext to its org and provider.
func providerAAD(orgID, id string) []byte { return envelope.SecretAAD(orgID, id, 1) }

// validateProvider checks in and returns its base URL (the kind's default
// when empty).
func validateProvider(in *custos.AddProviderInput) error {
	if !providerNameRE.MatchString(in.Name) {
		return custos.Errorf(custos.EINVALID, "provider name must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	switch in.Kind {
	case custos.ProviderOpenAI, custos.ProviderAnthropic, custos.ProviderGoogle, custos.ProviderLocal, custos.ProviderLocalAnthropic:
	default:
		return custos.Errorf(custos.EINVALID, "provider kind must be openai, anthropic, google, local or local-anthropic, not %q", clipStr(in.Kind, 32))
	}
	if len(in.Models) == 0 || len(in.Models) > 100 {
		return custos.Errorf(custos.EINVALID, "give 1 to 100 models (exact names, or prefixes ending in '*')")
	}
	for _, m := range in.Models {
		if !modelRE.MatchString(m) {
			return custos.Errorf(custos.EINVALID, "model %q is not a model name or a prefix ending in '*'", clipStr(m, 64))
		}
	}
	if in.Priority < 0 || in.Priority > 1000 {
		return custos.Errorf(custos.EINVALID, "priority must be 0 to 1000")
	}
	if len(in.APIKey) > 4096 {
		return custos.Errorf(custos.EINVALID, "api_key is longer than 4096 bytes")
	}
	for _, r := range in.APIKey {
		if r < 0x21 || r == 0x7f {
			return custos.Errorf(custos.EINVALID, "api_key contains a space or control character")
		}
	}
	local := in.Kind == custos.ProviderLocal || in.Kind == custos.ProviderLocalAnthropic
	if in.APIKey == "" && !local {
		return custos.Errorf(custos.EINVALID, "a %s provider needs its API key", in.Kind)
	}
	if in.BaseURL == "" {
		if local {
			return custos.Errorf(custos.EINVALID, "a local provider needs its base_url (for Ollama: http://127.0.0.1:11434/v1)")
		}
		in.BaseURL = gateway.DefaultBaseURLs[in.Kind]
	}
	u, err := url.Parse(in.BaseURL)
	if err != nil || len(in.BaseURL) > 512 || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		return custos.Errorf(custos.EINVALID, "base_url must be an absolute http(s) URL without credentials, query or fragment")
	}
	in.BaseURL = strings.TrimSuffix(in.BaseURL, "/")
	if !local {
		// A cloud provider is reached over HTTPS at public addresses only.
		if err := egress.CheckURL(egress.Config{}, in.BaseURL); err != nil {
			return custos.Errorf(custos.EINVALID, "base_url is not allowed for a cloud provider (use kind local for a server on your network): %s", strings.TrimPrefix(err.Error(), "egress: "))
		}
		return nil
	}
	host := u.Hostname()
	if c, never := gateway.NeverProvider(host); never {
		return custos.Errorf(custos.EINVALID, "base_url address %s is %s and never a provider", host, c)
	} else if _, err := netip.ParseAddr(host); err == nil && c.IsPublic() {
		return custos.Errorf(custos.EINVALID, "a local provider must be on this machine or network, not at public address %s", host)
	}
	return nil
}

func clipStr(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AddProvider implements custos.ProviderService.
func (s *Service) AddProvider(ctx context.Context, in custos.AddProviderInput) (*custos.ModelProvider, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	} else if err := validateProvider(&in); err != nil {
		return nil, err
	}
	now := s.timeNow()
	p := &custos.ModelProvider{ID: custos.NewID(PrefixProvider), OrgID: c.OrgID(), Name: in.Name, Kind: in.Kind,
		BaseURL: in.BaseURL, Models: slices.Clone(in.Models), Priority: in.Priority, HasKey: in.APIKey != "",
		CreatedAt: now, CreatedBy: c.Key.ID}
	if p.HasKey {
		sealed, err := envelope.Seal(ctx, s.keeper, []byte(in.APIKey), providerAAD(p.OrgID, p.ID))
		if err != nil {
			return nil, fmt.Errorf("seal provider key: %w", err)
		}
		p.Ciphertext, p.WrappedDEK, p.KeeperID = sealed.Ciphertext, sealed.WrappedDEK, sealed.KeeperID
	}
	ev := s.event(c, custos.ActionProviderAdd, custos.OutcomeOK)
	ev.Target, ev.Reason = p.ID, p.Name+" ("+p.Kind+") "+p.BaseURL
	if err := s.store.CreateProvider(ctx, p, ev); err != nil {
		return nil, err
	}
	return stripProvider(p), nil
}

// stripProvider returns p without its sealed key.
func stripProvider(p *custos.ModelProvider) *custos.ModelProvider {
	cp := *p
	cp.Ciphertext, cp.WrappedDEK, cp.KeeperID = nil, nil, ""
	return &cp
}

// ListProviders implements custos.ProviderService.
func (s *Service) ListProviders(ctx context.Context) ([]*custos.ModelProvider, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	ps, err := s.store.ListProviders(ctx, c.OrgID())
	if err != nil {
		return nil, err
	}
	out := make([]*custos.ModelProvider, len(ps))
	for i, p := range ps {
		out[i] = stripProvider(p)
	}
	return out, nil
}

// RemoveProvider implements custos.ProviderService.
func (s *Service) RemoveProvider(ctx context.Context, name string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	} else if err := requireAdmin(c); err != nil {
		return err
	}
	ev := s.event(c, custos.ActionProviderRemove, custos.OutcomeOK)
	ev.Target = name
	return s.store.DeleteProvider(ctx, c.OrgID(), name, ev)
}

// SetBudget implements custos.BudgetService.
func (s *Service) SetBudget(ctx context.Context, b custos.Budget) (*custos.Budget, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	if b.Period != custos.PeriodDay && b.Period != custos.PeriodMonth {
		return nil, custos.Errorf(custos.EINVALID, "period must be day or month")
	}
	if b.Limit < 1 || b.Limit > 1e13 {
		return nil, custos.Errorf(custos.EINVALID, "limit must be 1 to 10^13 tokens")
	}
	if b.KeyID != "" {
		if _, err := s.store.FindKey(ctx, c.OrgID(), b.KeyID); err != nil {
			return nil, err
		}
	}
	out := &custos.Budget{OrgID: c.OrgID(), KeyID: b.KeyID, Period: b.Period, Limit: b.Limit, UpdatedAt: s.timeNow(), UpdatedBy: c.Key.ID}
	ev := s.event(c, custos.ActionBudgetSet, custos.OutcomeOK)
	ev.Target, ev.Reason = budgetTarget(out.KeyID), fmt.Sprintf("%d tokens per %s", out.Limit, out.Period)
	if err := s.store.PutBudget(ctx, out, ev); err != nil {
		return nil, err
	}
	return out, nil
}

func budgetTarget(keyID string) string {
	if keyID == "" {
		return "org"
	}
	return keyID
}

// ListBudgets implements custos.BudgetService.
func (s *Service) ListBudgets(ctx context.Context) ([]*custos.Budget, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	return s.store.ListBudgets(ctx, c.OrgID(), s.timeNow())
}

// RemoveBudget implements custos.BudgetService.
func (s *Service) RemoveBudget(ctx context.Context, keyID, period string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	} else if err := requireAdmin(c); err != nil {
		return err
	}
	ev := s.event(c, custos.ActionBudgetRemove, custos.OutcomeOK)
	ev.Target, ev.Reason = budgetTarget(keyID), period
	return s.store.DeleteBudget(ctx, c.OrgID(), keyID, period, ev)
}

// SetPrivacy implements custos.PrivacyService.
func (s *Service) SetPrivacy(ctx context.Context, r custos.PrivacyRule) (*custos.PrivacyRule, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	if custos.PrivacyRank(r.Mode) == 0 {
		return nil, custos.Errorf(custos.EINVALID, "mode must be normal, sensitive or offline")
	}
	switch r.Scope {
	case custos.ScopeOrg:
		if r.Target != "" {
			return nil, custos.Errorf(custos.EINVALID, "an org rule has no target")
		}
	case custos.ScopeProject:
		if !projectRE.MatchString(r.Target) {
			return nil, custos.Errorf(custos.EINVALID, "a project rule needs the project's name (1-128 of A-Z a-z 0-9 . _ / -)")
		}
	case custos.ScopeKey:
		if _, err := s.store.FindKey(ctx, c.OrgID(), r.Target); err != nil {
			return nil, err
		}
	default:
		return nil, custos.Errorf(custos.EINVALID, "scope must be org, project or key")
	}
	out := &custos.PrivacyRule{OrgID: c.OrgID(), Scope: r.Scope, Target: r.Target, Mode: r.Mode, UpdatedAt: s.timeNow(), UpdatedBy: c.Key.ID}
	ev := s.event(c, custos.ActionPrivacySet, custos.OutcomeOK)
	ev.Target, ev.Reason = out.Scope+":"+out.Target, out.Mode
	if err := s.store.PutPrivacyRule(ctx, out, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// ListPrivacy implements custos.PrivacyService.
func (s *Service) ListPrivacy(ctx context.Context) ([]*custos.PrivacyRule, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	return s.store.ListPrivacyRules(ctx, c.OrgID())
}

// RemovePrivacy implements custos.PrivacyService.
func (s *Service) RemovePrivacy(ctx context.Context, scope, target string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	} else if err := requireAdmin(c); err != nil {
		return err
	}
	ev := s.event(c, custos.ActionPrivacyRemove, custos.OutcomeOK)
	ev.Target = scope + ":" + target
	return s.store.DeletePrivacyRule(ctx, c.OrgID(), scope, target, ev)
}

// usageFilter scopes f to what c may read: owners and admins the org's,
// other keys their own.
func usageFilter(c *custos.Caller, f custos.UsageFilter) (custos.UsageFilter, error) {
	if !c.Key.Role.IsAdmin() {
		if f.KeyID != "" && f.KeyID != c.Key.ID {
			return f, custos.Errorf(custos.EFORBIDDEN, "a %s key reads its own usage only", c.Key.Role)
		}
		f.KeyID = c.Key.ID
	}
	if f.Limit < 0 || f.Limit > 10000 {
		return f, custos.Errorf(custos.EINVALID, "limit must be 0 to 10000")
	}
	return f, nil
}

// ListUsage implements custos.UsageService.
func (s *Service) ListUsage(ctx context.Context, f custos.UsageFilter) ([]*custos.UsageRecord, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if f, err = usageFilter(c, f); err != nil {
		return nil, err
	}
	return s.store.ListUsage(ctx, c.OrgID(), f)
}

// SummarizeUsage implements custos.UsageService.
func (s *Service) SummarizeUsage(ctx context.Context, f custos.UsageFilter, by string) ([]*custos.UsageSummary, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if f, err = usageFilter(c, f); err != nil {
		return nil, err
	}
	switch by {
	case custos.UsageByModel, custos.UsageByKey, custos.UsageByDay, custos.UsageByProvider:
	default:
		return nil, custos.Errorf(custos.EINVALID, "by must be model, key, provider or day")
	}
	return s.store.SummarizeUsage(ctx, c.OrgID(), f, by)
}

// Gateway is the vault's side of the model gateway: the per-org setup
// (providers with keys opened, privacy rules, a redaction engine knowing
// the org's stored values), the budget store, and the audit of stored
// values found in requests. Setups are cached and rebuilt when the store's
// cache epoch moves.
type Gateway struct {
	s      *Service
	engine redact.Config // the base engine; the org's values are added as Known

	mu    sync.Mutex
	setup map[string]*orgSetup // org id
}

type orgSetup struct {
	epoch    int64
	budgeted bool // the org has a budget: reservations go to the store
	setup    *gateway.Setup
	secrets  map[string]*custos.Secret // label → secret (for notify policies)
}

// NewGateway returns the vault's side of the gateway; base configures the
// redaction engine every org's is built from.
func (s *Service) NewGateway(base redact.Config) *Gateway {
	return &Gateway{s: s, engine: base, setup: map[string]*orgSetup{}}
}

// Setup returns the setup of key's org (gateway.Config.Resolve).
func (g *Gateway) Setup(ctx context.Context, key *custos.APIKey) (*gateway.Setup, error) {
	o, err := g.org(ctx, key.OrgID)
	if err != nil {
		return nil, err
	}
	return o.setup, nil
}

func (g *Gateway) org(ctx context.Context, orgID string) (*orgSetup, error) {
	v, err := g.s.view(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	o, ok := g.setup[orgID]
	g.mu.Unlock()
	if ok && o.epoch == v.epoch {
		return o, nil
	}
	o, err = g.build(ctx, orgID, v.epoch)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if len(g.setup) > maxCached {
		clear(g.setup)
	}
	g.setup[orgID] = o
	g.mu.Unlock()
	return o, nil
}

// build loads and opens everything the org's gateway needs.
func (g *Gateway) build(ctx context.Context, orgID string, epoch int64) (*orgSetup, error) {
	s := g.s
	ps, err := s.store.ListProviders(ctx, orgID)
	if err != nil {
		return nil, err
	}
	o := &orgSetup{epoch: epoch, setup: &gateway.Setup{}, secrets: map[string]*custos.Secret{}}
	for _, p := range ps {
		key := ""
		if len(p.Ciphertext) > 0 {
			plain, err := envelope.Open(ctx, s.keeper, &envelope.Sealed{Ciphertext: p.Ciphertext, WrappedDEK: p.WrappedDEK, KeeperID: p.KeeperID}, providerAAD(p.OrgID, p.ID))
			if err != nil {
				s.log.Error("provider key does not decrypt", "org", orgID, "provider", p.Name, "err", err)
				continue
			}
			key = string(plain)
			clear(plain)
		}
		o.setup.Providers = append(o.setup.Providers, gateway.FromModelProvider(p, key))
	}
	if o.setup.Privacy, err = s.store.ListPrivacyRules(ctx, orgID); err != nil {
		return nil, err
	}
	bs, err := s.store.ListBudgets(ctx, orgID, s.timeNow())
	if err != nil {
		return nil, err
	}
	o.budgeted = len(bs) > 0
	cfg := g.engine
	cfg.Known, cfg.KnownLabels = slices.Clone(cfg.Known), slices.Clone(cfg.KnownLabels)
	secs, err := s.store.ListSecrets(ctx, orgID, custos.SecretFilter{})
	if err != nil {
		return nil, err
	}
	byProject := map[string][]string{}
	for _, sec := range secs {
		byProject[sec.Project] = append(byProject[sec.Project], sec.Name)
	}
	now := s.timeNow()
	for project, names := range byProject {
		loaded, err := s.store.LoadSecrets(ctx, orgID, project, names)
		if err != nil {
			return nil, err
		}
		for _, sec := range loaded {
			if sec.Current == nil || sec.Expired(now) {
				continue
			}
			v := sec.Current
			plain, err := envelope.Open(ctx, s.keeper, &envelope.Sealed{Ciphertext: v.Ciphertext, WrappedDEK: v.WrappedDEK, KeeperID: v.KeeperID},
				envelope.SecretAAD(sec.OrgID, sec.ID, v.Version))
			if err != nil {
				s.log.Error("secret does not decrypt", "org", orgID, "secret_id", sec.ID, "err", err)
				continue
			}
			if len(plain) >= MinKnownValue {
				label := sec.Project + "/" + sec.Name
				cfg.Known = append(cfg.Known, string(plain))
				cfg.KnownLabels = append(cfg.KnownLabels, label)
				o.secrets[label] = sec
			}
			clear(plain)
		}
	}
	if o.setup.Engine, err = redact.New(cfg); err != nil {
		return nil, err
	}
	return o, nil
}

// Warm compiles what the orgs' redaction engines compile on first use (see
// redact.Engine.Warm), so the first model request after a start does not
// wait for it. custos serve runs it in the background as it starts. An
// engine that does not build is left to the first request to report.
func (g *Gateway) Warm() {
	if e, err := redact.New(g.engine); err == nil {
		e.Warm()
	}
}

// ReserveBudget implements gateway.Budgets. An org without budgets (known
// from the cached setup, which a budget change invalidates) costs no
// database round trip.
func (g *Gateway) ReserveBudget(ctx context.Context, orgID, keyID string, tokens int64, now time.Time) (*custos.Reservation, error) {
	o, err := g.org(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if !o.budgeted {
		return &custos.Reservation{OrgID: orgID}, nil
	}
	return g.s.store.ReserveBudget(ctx, orgID, keyID, tokens, now)
}

// SettleBudget implements gateway.Budgets.
func (g *Gateway) SettleBudget(ctx context.Context, r *custos.Reservation, used int64) error {
	return g.s.store.SettleBudget(ctx, r, used)
}

// leakNotification is the JSON body a notify webhook receives when a stored
// value was found in a model request. It names the secret, never the value.
type leakNotification struct {
	Type     string `json:"type"`
	PolicyID string `json:"policy_id"`
	OrgID    string `json:"org_id"`
	Project  string `json:"project"`
	Secret   string `json:"secret"`
	Action   string `json:"action"` // redacted or blocked
	KeyID    string `json:"key_id"`
	User     string `json:"user"`
	IP       string `json:"ip"`
	Model    string `json:"model,omitempty"`
	Provider string `json:"provider"`
	Time     string `json:"time"`
}

// KnownFound records stored values found in a model request
// (gateway.Config.OnKnown): one audit event per secret, and a message to
// every notify policy matching the secret's tags, so the team can rotate it.
func (g *Gateway) KnownFound(ctx context.Context, hit gateway.KnownHit) {
	s := g.s
	o, err := g.org(ctx, hit.Key.OrgID)
	if err != nil {
		s.log.Error("gateway: record a found secret", "org", hit.Key.OrgID, "err", err)
		return
	}
	ps, err := s.store.ListPolicies(ctx, hit.Key.OrgID)
	if err != nil {
		s.log.Error("gateway: record a found secret", "org", hit.Key.OrgID, "err", err)
	}
	outcome := "redacted"
	if hit.Blocked {
		outcome = "blocked"
	}
	now := s.timeNow()
	var evs []*custos.AuditEvent
	var msgs []*custos.OutboxMessage
	for _, label := range hit.Names {
		project, name, _ := strings.Cut(label, "/")
		ev := &custos.AuditEvent{OrgID: hit.Key.OrgID, Time: now, Action: custos.ActionGatewaySecret, Outcome: outcome,
			Reason: "the value of this secret was in a request to model " + hit.Model + " via provider " + hit.Provider,
			KeyID:  hit.Key.ID, User: hit.Key.Name, IP: hit.IP, Source: "gateway", Model: hit.Model, Project: project, Secret: name}
		evs = append(evs, ev)
		sec := o.secrets[label]
		for _, p := range ps {
			if p.Rule != custos.RuleNotify || sec == nil || !p.Active(now) || !p.Matches(sec.Tags) {
				continue
			}
			body, err := json.Marshal(leakNotification{Type: "secret.leak_detected", PolicyID: p.ID, OrgID: ev.OrgID, Project: project, // #nosec G117 -- "secret" is the secret's name; values never enter this struct
				Secret: name, Action: outcome, KeyID: ev.KeyID, User: ev.User, IP: ev.IP, Model: hit.Model, Provider: hit.Provider,
				Time: now.Format(time.RFC3339Nano)})
			if err != nil {
				continue
			}
			msgs = append(msgs, &custos.OutboxMessage{ID: custos.NewID(custos.PrefixOutbox), OrgID: ev.OrgID, URL: p.NotifyURL,
				Payload: body, CreatedAt: now, NextAttemptAt: now})
		}
	}
	if err := s.store.AppendAudit(context.WithoutCancel(ctx), evs, msgs); err != nil {
		s.log.Error("gateway: audit a found secret", "org", hit.Key.OrgID, "err", err)
		return
	}
	if len(msgs) > 0 {
		s.poke()
	}
}
