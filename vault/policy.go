package vault

import (
	"context"
	"strings"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/policy"
)

// AddPolicy implements custos.PolicyService.
func (s *Service) AddPolicy(ctx context.Context, in custos.AddPolicyInput) (*custos.Policy, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	} else if err := policy.ValidateInput(in); err != nil {
		return nil, err
	}
	if in.Rule == custos.RuleNotify && s.checkURL != nil {
		if err := s.checkURL(in.NotifyURL); err != nil {
			return nil, custos.Errorf(custos.EINVALID, "notify_url is not allowed: %s", strings.TrimPrefix(err.Error(), "egress: "))
		}
	}
	now := s.timeNow()
	p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: c.OrgID(), TagKey: in.TagKey, TagValue: in.TagValue,
		Rule: in.Rule, NotifyURL: in.NotifyURL, CreatedAt: now, CreatedBy: c.Key.ID}
	for _, m := range in.Models {
		p.Models = append(p.Models, strings.ToLower(m))
	}
	if in.TTL > 0 {
		exp := now.Add(time.Duration(in.TTL))
		p.ExpiresAt = &exp
	}
	ev := s.event(c, custos.ActionPolicyAdd, custos.OutcomeOK)
	ev.Target, ev.Reason = p.ID, string(p.Rule)+" on "+p.TagKey+"="+p.TagValue
	if err := s.store.CreatePolicy(ctx, p, ev); err != nil {
		return nil, err
	}
	return p, nil
}

// ListPolicies implements custos.PolicyService. Policies are not secret:
// agents read them (MCP get_active_rules) from an approved device.
func (s *Service) ListPolicies(ctx context.Context) ([]*custos.Policy, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.Key.Role.IsAdmin() {
		if _, err := s.device(ctx, c, custos.LevelRead, custos.ActionSecretAccess); err != nil {
			return nil, err
		}
	}
	ps, err := s.store.ListPolicies(ctx, c.OrgID())
	if err != nil {
		return nil, err
	}
	policy.Sort(ps)
	if !c.Key.Role.IsAdmin() {
		// A webhook URL can carry a credential in its path (Slack, Teams):
		// only owners and admins see it.
		for i, p := range ps {
			if p.NotifyURL != "" {
				cp := *p
				cp.NotifyURL = ""
				ps[i] = &cp
			}
		}
	}
	return ps, nil
}

// RemovePolicy implements custos.PolicyService.
func (s *Service) RemovePolicy(ctx context.Context, id string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	} else if err := requireAdmin(c); err != nil {
		return err
	} else if err := custos.ValidateID(custos.PrefixPolicy, id); err != nil {
		return err
	}
	ev := s.event(c, custos.ActionPolicyRemove, custos.OutcomeOK)
	ev.Target = id
	return s.store.DeletePolicy(ctx, c.OrgID(), id, ev)
}
