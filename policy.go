package custos

import (
	"context"
	"time"
)

// Rule is what a policy does to the secrets whose tags it matches.
type Rule string

// Rules, in evaluation order: the first that denies decides.
const (
	RuleBlockAlways         Rule = "block_always"         // no API/CLI/MCP access at all
	RuleRequireSession      Rule = "require_session"      // the device must have woken a session
	RuleBlockModels         Rule = "block_models"         // the requesting model must not match
	RuleRequireConfirmation Rule = "require_confirmation" // an ack from this device within 5 minutes
	RuleNotify              Rule = "notify"               // never blocks; a webhook is told
)

// Rank returns the evaluation rank of r (lower first), or 0 if r is unknown.
func (r Rule) Rank() int {
	switch r {
	case RuleBlockAlways:
		return 1
	case RuleRequireSession:
		return 2
	case RuleBlockModels:
		return 3
	case RuleRequireConfirmation:
		return 4
	case RuleNotify:
		return 5
	}
	return 0
}

// ConfirmationTTL is how long an acknowledgement for a require_confirmation
// rule stays valid.
const ConfirmationTTL = 5 * time.Minute

// Policy applies Rule to every secret tagged TagKey=TagValue.
type Policy struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	TagKey    string     `json:"tag_key"`
	TagValue  string     `json:"tag_value"`
	Rule      Rule       `json:"rule"`
	Models    []string   `json:"models,omitempty"`     // block_models: patterns (path.Match) of model names
	NotifyURL string     `json:"notify_url,omitempty"` // notify: webhook receiving the event
	ExpiresAt *time.Time `json:"expires_at,omitempty"` // a policy added with a TTL lapses then
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
}

// Active reports whether p applies at now.
func (p *Policy) Active(now time.Time) bool {
	return p.ExpiresAt == nil || now.Before(*p.ExpiresAt)
}

// Matches reports whether p applies to a secret with tags.
func (p *Policy) Matches(tags map[string]string) bool {
	v, ok := tags[p.TagKey]
	return ok && v == p.TagValue
}

// AddPolicyInput is what a caller gives to add a policy.
type AddPolicyInput struct {
	TagKey    string   `json:"tag_key"`
	TagValue  string   `json:"tag_value"`
	Rule      Rule     `json:"rule"`
	Models    []string `json:"models,omitempty"`
	TTL       Duration `json:"ttl,omitempty"`
	NotifyURL string   `json:"notify_url,omitempty"`
}

// PolicyService manages policies (owner and admin keys).
type PolicyService interface {
	// AddPolicy validates and stores a policy. Returns EINVALID.
	AddPolicy(ctx context.Context, in AddPolicyInput) (*Policy, error)
	// ListPolicies lists the org's policies in evaluation order.
	ListPolicies(ctx context.Context) ([]*Policy, error)
	// RemovePolicy deletes a policy. Returns ENOTFOUND.
	RemovePolicy(ctx context.Context, id string) error
}

// PolicyStore persists policies.
type PolicyStore interface {
	// CreatePolicy inserts p. Returns ECONFLICT if its id exists.
	CreatePolicy(ctx context.Context, p *Policy, ev *AuditEvent) error
	// ListPolicies returns the org's policies, oldest first.
	ListPolicies(ctx context.Context, orgID string) ([]*Policy, error)
	// DeletePolicy deletes policy id. Returns ENOTFOUND.
	DeletePolicy(ctx context.Context, orgID, id string, ev *AuditEvent) error
}
