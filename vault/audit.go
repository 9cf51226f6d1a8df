package vault

import (
	"context"

	"github.com/custos-dev/custos"
)

// verifyPage is how many events VerifyAudit reads at a time.
const verifyPage = 5000

// ListAudit implements custos.AuditService.
func (s *Service) ListAudit(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	} else if f.Limit < 0 || f.Limit > 10000 || f.AfterSeq < 0 {
		return nil, custos.Errorf(custos.EINVALID, "invalid audit filter: limit 1..10000, after ≥ 0")
	}
	return s.store.ListAudit(ctx, c.OrgID(), f)
}

// VerifyAudit implements custos.AuditService.
func (s *Service) VerifyAudit(ctx context.Context) (*custos.AuditVerification, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	return VerifyOrg(ctx, s.store, c.OrgID())
}

// VerifyOrg checks the whole audit chain of org in store.
func VerifyOrg(ctx context.Context, store custos.AuditStore, orgID string) (*custos.AuditVerification, error) {
	v := &custos.AuditVerification{OK: true}
	var after int64
	for {
		evs, err := store.ListAudit(ctx, orgID, custos.AuditFilter{AfterSeq: after, Limit: verifyPage})
		if err != nil {
			return nil, err
		}
		v = custos.VerifyChain(v, evs)
		if !v.OK || len(evs) < verifyPage {
			return v, nil
		}
		after = evs[len(evs)-1].Seq
	}
}
