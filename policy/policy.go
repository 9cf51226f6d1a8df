// Package policy evaluates the policies on a secret's tags. It is pure: no
// I/O, no clock of its own, no state, so every rule is table-tested.
//
// Only policies active at Input.Now whose tag the secret carries apply. They
// are evaluated in rule order block_always > require_session > block_models
// > require_confirmation > notify (then oldest first); the first that denies
// decides. A policy with a rule this build does not know denies, so a policy
// written by a newer custos never fails open.
package policy

import (
	"cmp"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/custos-dev/custos"
)

// Limits of a block_models policy and of a notify URL.
const (
	MaxModels          = 32
	MaxModelPatternLen = 128
	MaxNotifyURLLen    = 2048
)

// Input is what a decision is made on.
type Input struct {
	Secret   *custos.Secret
	Policies []*custos.Policy // all of the org's policies, any order
	Model    string           // X-AI-Model, may be ""
	Session  *custos.Session  // the device's live session, may be nil
	Now      time.Time
}

// Decision is the outcome of Evaluate.
type Decision struct {
	// Allow reports whether access may proceed (subject to Confirm).
	Allow bool
	// Denied is the policy that denied, if !Allow (nil if Input was unusable).
	Denied *custos.Policy
	// Reason tells the user why access was denied and what to do about it.
	Reason string
	// Confirm, when set and Allow, is the require_confirmation policy that
	// applies: the caller must consume a confirmation ack for this secret,
	// or deny.
	Confirm *custos.Policy
	// Notify lists every notify policy that applies, in evaluation order,
	// whether or not access is allowed: the caller decides what to report.
	Notify []*custos.Policy
}

// Evaluate decides whether in.Secret may be read. It does not modify
// in.Policies.
func Evaluate(in Input) Decision {
	if in.Secret == nil {
		return Decision{Reason: "no secret to evaluate policies on"}
	}
	var ps []*custos.Policy
	for _, p := range in.Policies {
		if p != nil && p.Active(in.Now) && p.Matches(in.Secret.Tags) {
			ps = append(ps, p)
		}
	}
	Sort(ps)

	var d Decision
	for _, p := range ps {
		if p.Rule == custos.RuleNotify {
			d.Notify = append(d.Notify, p)
		}
	}
	for _, p := range ps {
		switch p.Rule {
		case custos.RuleBlockAlways:
			return deny(d, p, "this secret is dashboard-only: it cannot be read through the API, CLI or MCP")
		case custos.RuleRequireSession:
			if !in.Session.Covers(in.Secret.Tags, in.Now) {
				return deny(d, p, fmt.Sprintf("wake a session first: custos session wake --tags %s=%s", p.TagKey, p.TagValue))
			}
		case custos.RuleBlockModels:
			if pattern, ok := blocked(p.Models, in.Model); ok {
				return deny(d, p, fmt.Sprintf("model %q is blocked (pattern %q)", short(in.Model), pattern))
			}
		case custos.RuleRequireConfirmation:
			if d.Confirm == nil {
				d.Confirm = p
			}
		case custos.RuleNotify:
		default:
			return deny(d, p, fmt.Sprintf("unknown rule %q: upgrade custos or remove the policy", short(string(p.Rule))))
		}
	}
	d.Allow = true
	return d
}

// deny returns d denied by p for reason.
func deny(d Decision, p *custos.Policy, reason string) Decision {
	d.Allow, d.Denied, d.Confirm = false, p, nil
	d.Reason = fmt.Sprintf("policy %s (%s on %s=%s): %s", p.ID, p.Rule, p.TagKey, p.TagValue, reason)
	return d
}

// blocked returns the first of patterns that model matches, ignoring case.
// A malformed pattern (never accepted by ValidateInput) matches, so a bad
// policy fails closed. An empty model matches nothing.
func blocked(patterns []string, model string) (string, bool) {
	if model == "" {
		return "", false
	}
	m := strings.ToLower(model)
	for _, pat := range patterns {
		if ok, err := path.Match(strings.ToLower(pat), m); ok || err != nil {
			return pat, true
		}
	}
	return "", false
}

// Sort orders ps for evaluation: by Rule.Rank() (unknown rules first, so
// they deny), then CreatedAt, then ID. ps must not hold nil.
func Sort(ps []*custos.Policy) {
	slices.SortStableFunc(ps, func(a, b *custos.Policy) int {
		if c := cmp.Compare(a.Rule.Rank(), b.Rule.Rank()); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// rules lists the known rules, for messages.
const rules = "block_always, require_session, block_models, require_confirmation, notify"

// ValidateInput checks a policy before it is added. Returns EINVALID with a
// message naming the field.
func ValidateInput(in custos.AddPolicyInput) error {
	if err := custos.ValidateTag(in.TagKey, in.TagValue); err != nil {
		return err
	}
	if in.Rule.Rank() == 0 {
		return custos.Errorf(custos.EINVALID, "invalid rule %q: use one of %s", short(string(in.Rule)), rules)
	}
	if in.Rule == custos.RuleBlockModels {
		if err := validateModels(in.Models); err != nil {
			return err
		}
	} else if len(in.Models) > 0 {
		return custos.Errorf(custos.EINVALID, "models is only for block_models policies, not %s", in.Rule)
	}
	if in.Rule == custos.RuleNotify {
		if err := validateNotifyURL(in.NotifyURL); err != nil {
			return err
		}
	} else if in.NotifyURL != "" {
		return custos.Errorf(custos.EINVALID, "notify_url is only for notify policies, not %s", in.Rule)
	}
	if in.TTL < 0 {
		return custos.Errorf(custos.EINVALID, "invalid ttl: it must not be negative")
	}
	return nil
}

// validateModels checks the patterns of a block_models policy.
func validateModels(models []string) error {
	if len(models) == 0 {
		return custos.Errorf(custos.EINVALID, "models is required for block_models: give at least one model name pattern, such as gpt-4* or *")
	}
	if len(models) > MaxModels {
		return custos.Errorf(custos.EINVALID, "too many models: %d (at most %d)", len(models), MaxModels)
	}
	for i, m := range models {
		if m == "" {
			return custos.Errorf(custos.EINVALID, "models[%d] is empty", i)
		}
		if len(m) > MaxModelPatternLen {
			return custos.Errorf(custos.EINVALID, "models[%d] is too long: %d characters (at most %d)", i, len(m), MaxModelPatternLen)
		}
		if strings.IndexFunc(m, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
			return custos.Errorf(custos.EINVALID, "models[%d] %q: spaces and control characters are not allowed", i, short(m))
		}
		if _, err := path.Match(m, ""); err != nil {
			return custos.Errorf(custos.EINVALID, "models[%d] %q is not a valid pattern: use * and ? wildcards and [a-z] classes", i, short(m))
		}
	}
	return nil
}

// validateNotifyURL checks the webhook URL of a notify policy.
func validateNotifyURL(s string) error {
	if s == "" {
		return custos.Errorf(custos.EINVALID, "notify_url is required for notify policies")
	}
	if len(s) > MaxNotifyURLLen {
		return custos.Errorf(custos.EINVALID, "notify_url is too long: %d characters (at most %d)", len(s), MaxNotifyURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return custos.Errorf(custos.EINVALID, "notify_url must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return custos.Errorf(custos.EINVALID, "notify_url must not contain a user name or password")
	}
	if u.Hostname() == "" {
		return custos.Errorf(custos.EINVALID, "notify_url must name a host")
	}
	return nil
}

// short truncates s for a message so hostile input cannot make it large.
func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
