package custos

import (
	"context"
	"time"
)

// This file holds the domain of the model gateway (package gateway): the
// org's model providers with their BYOK keys, privacy rules, token budgets
// and usage records.

// Provider kinds: the API a model provider speaks and where it lives.
const (
	ProviderOpenAI    = "openai"    // api.openai.com, or any OpenAI-compatible cloud API given --base-url
	ProviderAnthropic = "anthropic" // api.anthropic.com
	ProviderGoogle    = "google"    // Gemini's OpenAI-compatible endpoint
	ProviderLocal     = "local"     // an OpenAI-compatible server on this machine or network (Ollama, vLLM, llama.cpp)
	// ProviderLocalAnthropic is an Anthropic-compatible server on this
	// machine or network (a LiteLLM proxy, Ollama's Anthropic API).
	ProviderLocalAnthropic = "local-anthropic"
)

// ModelProvider is a model provider the org's gateway forwards to, with the
// team's own key (BYOK). The key exists only as ciphertext, sealed like a
// secret value; it is never returned after it is saved.
type ModelProvider struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	BaseURL   string    `json:"base_url"`
	Models    []string  `json:"models"`   // exact names or prefixes ending in "*"
	Priority  int       `json:"priority"` // lower first; ties by creation time
	HasKey    bool      `json:"has_key"`  // a local provider may have none
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"` // key id

	// The sealed provider key. Only stores fill these; they never leave the
	// server.
	Ciphertext []byte `json:"-"`
	WrappedDEK []byte `json:"-"`
	KeeperID   string `json:"-"`
}

// Local reports whether p is a provider on the local machine or network.
func (p *ModelProvider) Local() bool {
	return p.Kind == ProviderLocal || p.Kind == ProviderLocalAnthropic
}

// AddProviderInput is what a caller gives to add a provider. APIKey travels
// only in a request body, never in a URL or argv.
type AddProviderInput struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	BaseURL  string   `json:"base_url,omitempty"` // "" means the kind's default
	Models   []string `json:"models"`
	Priority int      `json:"priority,omitempty"`
	APIKey   string   `json:"api_key,omitempty"`
}

// ProviderService manages the org's model providers (owner and admin keys).
type ProviderService interface {
	// AddProvider validates in, seals its key and stores the provider.
	// Returns EINVALID or ECONFLICT (name taken).
	AddProvider(ctx context.Context, in AddProviderInput) (*ModelProvider, error)
	// ListProviders lists the org's providers in routing order, never keys.
	ListProviders(ctx context.Context) ([]*ModelProvider, error)
	// RemoveProvider deletes provider name. Returns ENOTFOUND.
	RemoveProvider(ctx context.Context, name string) error
}

// ProviderStore persists model providers. Each mutation writes ev to the
// audit log in the same transaction, and advances the cache epoch.
type ProviderStore interface {
	// CreateProvider inserts p. Returns ECONFLICT if the org has a
	// provider of that name.
	CreateProvider(ctx context.Context, p *ModelProvider, ev *AuditEvent) error
	// ListProviders returns the org's providers with their sealed keys,
	// ordered by priority, then creation time.
	ListProviders(ctx context.Context, orgID string) ([]*ModelProvider, error)
	// DeleteProvider deletes provider name of org. Returns ENOTFOUND.
	DeleteProvider(ctx context.Context, orgID, name string, ev *AuditEvent) error
}

// Privacy modes of the model gateway, from the loosest.
const (
	PrivacyNormal    = "normal"    // cloud and local providers
	PrivacySensitive = "sensitive" // cloud only after redaction; completions to local providers only
	PrivacyOffline   = "offline"   // local providers only, enforced at connect time
)

// PrivacyRank orders privacy modes: the larger is stricter. Unknown modes
// rank 0.
func PrivacyRank(mode string) int {
	switch mode {
	case PrivacyNormal:
		return 1
	case PrivacySensitive:
		return 2
	case PrivacyOffline:
		return 3
	}
	return 0
}

// Privacy rule scopes.
const (
	ScopeOrg     = "org"
	ScopeProject = "project"
	ScopeKey     = "key"
)

// PrivacyRule sets the privacy mode of the org, of a project (named by the
// caller's X-Custos-Project header) or of an API key. A request runs in the
// strictest mode of every rule that applies to it.
type PrivacyRule struct {
	OrgID     string    `json:"org_id"`
	Scope     string    `json:"scope"`            // ScopeOrg, ScopeProject or ScopeKey
	Target    string    `json:"target,omitempty"` // project name or key id; "" for the org
	Mode      string    `json:"mode"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// Budget periods.
const (
	PeriodDay   = "day"   // UTC calendar day
	PeriodMonth = "month" // UTC calendar month
)

// Budget caps the tokens (in + out) the org, or one key of it, may spend
// through the gateway per UTC day or month.
type Budget struct {
	OrgID     string    `json:"org_id"`
	KeyID     string    `json:"key_id,omitempty"` // "" means the whole org
	Period    string    `json:"period"`
	Limit     int64     `json:"limit"` // tokens
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`

	// Spent and Reserved are the current window's counters; filled in
	// listings only.
	Spent    int64 `json:"spent"`
	Reserved int64 `json:"reserved"`
}

// WindowStart returns the start of the budget window of period containing t.
func WindowStart(period string, t time.Time) time.Time {
	t = t.UTC()
	if period == PeriodMonth {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// BudgetWindow names one budget counter: a budget's window.
type BudgetWindow struct {
	KeyID  string    `json:"key_id,omitempty"`
	Period string    `json:"period"`
	Start  time.Time `json:"start"`
}

// Reservation is tokens held against every budget that applied to a
// request, until the request settles.
type Reservation struct {
	OrgID   string         `json:"org_id"`
	Tokens  int64          `json:"tokens"`
	Windows []BudgetWindow `json:"windows"`
}

// BudgetService manages the org's budgets (owner and admin keys).
type BudgetService interface {
	// SetBudget creates or replaces the budget of (KeyID, Period).
	SetBudget(ctx context.Context, b Budget) (*Budget, error)
	// ListBudgets lists the org's budgets with their current counters.
	ListBudgets(ctx context.Context) ([]*Budget, error)
	// RemoveBudget deletes the budget of (keyID, period). Returns ENOTFOUND.
	RemoveBudget(ctx context.Context, keyID, period string) error
}

// BudgetStore persists budgets and their counters. Budget mutations write
// ev in the same transaction and advance the cache epoch; reservations do
// not.
type BudgetStore interface {
	// PutBudget creates or replaces the budget of (b.OrgID, b.KeyID, b.Period).
	PutBudget(ctx context.Context, b *Budget, ev *AuditEvent) error
	// DeleteBudget deletes a budget. Returns ENOTFOUND.
	DeleteBudget(ctx context.Context, orgID, keyID, period string, ev *AuditEvent) error
	// ListBudgets returns the org's budgets with the counters of the
	// windows containing now.
	ListBudgets(ctx context.Context, orgID string, now time.Time) ([]*Budget, error)
	// ReserveBudget atomically reserves tokens against every budget of the
	// org that applies to keyID (the org-wide ones and keyID's own) in the
	// windows containing now: all or nothing, and only if for each
	// spent+reserved+tokens stays within its limit. Concurrent calls, from
	// any replica, never overshoot a limit. Returns ERATELIMITED naming
	// the exhausted budget; with no budget, an empty Reservation.
	ReserveBudget(ctx context.Context, orgID, keyID string, tokens int64, now time.Time) (*Reservation, error)
	// SettleBudget releases r's reserved tokens and adds used to the spent
	// counters of the same windows.
	SettleBudget(ctx context.Context, r *Reservation, used int64) error
}

// UsageRecord is the metadata of one request through the gateway. It never
// holds prompt or completion content.
type UsageRecord struct {
	ID         string    `json:"id"`
	OrgID      string    `json:"org_id"`
	KeyID      string    `json:"key_id"`
	Provider   string    `json:"provider"`
	Model      string    `json:"model"`
	Route      string    `json:"route"` // chat, responses, messages, embeddings, count_tokens
	TokensIn   int64     `json:"tokens_in"`
	TokensOut  int64     `json:"tokens_out"`
	LatencyMS  float64   `json:"latency_ms"`
	OverheadMS float64   `json:"overhead_ms"` // custos' own share of the latency
	Status     int       `json:"status"`
	Redactions int       `json:"redactions"`
	KnownHits  int       `json:"known_hits"` // stored secret values found in the request
	Stream     bool      `json:"stream"`
	Mode       string    `json:"mode"` // privacy mode applied
	Time       time.Time `json:"time"`
}

// Usage groupings.
const (
	UsageByModel    = "model"
	UsageByKey      = "key"
	UsageByDay      = "day"
	UsageByProvider = "provider"
)

// UsageFilter narrows a usage listing or summary.
type UsageFilter struct {
	Since time.Time `json:"since"` // zero means the retention start
	Until time.Time `json:"until"` // zero means now
	KeyID string    `json:"key_id,omitempty"`
	Limit int       `json:"limit,omitempty"` // listings: 0 means 1000
}

// UsageSummary is the usage of one group (a model, key, provider or UTC
// day "2006-01-02").
type UsageSummary struct {
	Group        string  `json:"group"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"` // status >= 400
	TokensIn     int64   `json:"tokens_in"`
	TokensOut    int64   `json:"tokens_out"`
	Redactions   int64   `json:"redactions"`
	KnownHits    int64   `json:"known_hits"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
}

// UsageService reads the org's gateway usage (owner and admin keys).
type UsageService interface {
	// ListUsage lists records, newest first.
	ListUsage(ctx context.Context, f UsageFilter) ([]*UsageRecord, error)
	// SummarizeUsage groups records by UsageByModel, UsageByKey,
	// UsageByProvider or UsageByDay, largest token total first (days: newest
	// first).
	SummarizeUsage(ctx context.Context, f UsageFilter, by string) ([]*UsageSummary, error)
}

// UsageStore persists usage records.
type UsageStore interface {
	// AppendUsage inserts recs in one transaction.
	AppendUsage(ctx context.Context, recs []*UsageRecord) error
	// ListUsage returns the org's records in f, newest first.
	ListUsage(ctx context.Context, orgID string, f UsageFilter) ([]*UsageRecord, error)
	// SummarizeUsage groups the org's records in f by one of the UsageBy
	// groupings. Returns EINVALID for another.
	SummarizeUsage(ctx context.Context, orgID string, f UsageFilter, by string) ([]*UsageSummary, error)
	// PurgeUsage deletes every record older than before and returns how
	// many it deleted.
	PurgeUsage(ctx context.Context, before time.Time) (int64, error)
}

// DefaultUsageRetention is how long usage records are kept by default.
const DefaultUsageRetention = 90 * 24 * time.Hour

// PrivacyStore persists privacy rules. Mutations write ev in the same
// transaction and advance the cache epoch.
type PrivacyStore interface {
	// PutPrivacyRule creates or replaces the rule of (OrgID, Scope, Target).
	PutPrivacyRule(ctx context.Context, r *PrivacyRule, ev *AuditEvent) error
	// DeletePrivacyRule deletes a rule. Returns ENOTFOUND.
	DeletePrivacyRule(ctx context.Context, orgID, scope, target string, ev *AuditEvent) error
	// ListPrivacyRules returns the org's rules.
	ListPrivacyRules(ctx context.Context, orgID string) ([]*PrivacyRule, error)
}

// PrivacyService manages the org's privacy rules (owner and admin keys).
type PrivacyService interface {
	// SetPrivacy creates or replaces a rule.
	SetPrivacy(ctx context.Context, r PrivacyRule) (*PrivacyRule, error)
	// ListPrivacy lists the org's rules.
	ListPrivacy(ctx context.Context) ([]*PrivacyRule, error)
	// RemovePrivacy deletes the rule of (scope, target). Returns ENOTFOUND.
	RemovePrivacy(ctx context.Context, scope, target string) error
}

// GatewayStore is what the model gateway keeps in a Store.
type GatewayStore interface {
	ProviderStore
	PrivacyStore
	BudgetStore
	UsageStore
}
