package tasks

import (
	"context"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// CreateTrackerInstall implements custos.TrackerService.
func (s *Service) CreateTrackerInstall(ctx context.Context, name string) (*custos.TrackerInstall, string, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, "", err
	} else if err := requireAdmin(c); err != nil {
		return nil, "", err
	} else if err := custos.ValidateLabel("install name", name); err != nil {
		return nil, "", err
	}
	tok := token.New(token.PrefixTrackerInstall)
	in := &custos.TrackerInstall{ID: custos.NewID(custos.PrefixTrackerInstall), OrgID: c.OrgID(), Name: name,
		Hash: token.Hash(tok), CreatedAt: s.timeNow()}
	ev := s.adminEvent(ctx, c, custos.ActionTrackerInstall)
	ev.Target, ev.Reason = in.ID, "install "+quote(name)
	if err := s.store.CreateTrackerInstall(ctx, in, ev); err != nil {
		return nil, "", err
	}
	return in, tok, nil
}

// ListTrackerInstalls implements custos.TrackerService.
func (s *Service) ListTrackerInstalls(ctx context.Context) ([]*custos.TrackerInstall, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	return s.store.ListTrackerInstalls(ctx, c.OrgID())
}

// RevokeTrackerInstall implements custos.TrackerService.
func (s *Service) RevokeTrackerInstall(ctx context.Context, id string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	} else if err := requireAdmin(c); err != nil {
		return err
	} else if err := custos.ValidateID(custos.PrefixTrackerInstall, id); err != nil {
		return err
	}
	ev := s.adminEvent(ctx, c, custos.ActionTrackerRevoke)
	ev.Target = id
	return s.store.RevokeTrackerInstall(ctx, c.OrgID(), id, s.timeNow(), ev)
}

// install authenticates an install token. A revoked install's use is
// audited in its org.
func (s *Service) install(ctx context.Context, tok string) (*custos.TrackerInstall, error) {
	if err := token.Check(tok, token.PrefixTrackerInstall); err != nil {
		return nil, err
	}
	in, err := s.store.FindTrackerInstallByHash(ctx, token.Hash(tok))
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid tracker install token")
	} else if err != nil {
		return nil, err
	}
	if in.RevokedAt != nil {
		ev := s.event(ctx, in.OrgID, in.ID, custos.ActionAuthFailed, custos.OutcomeDenied)
		ev.Target = in.ID
		return nil, s.deny(ctx, custos.Errorf(custos.EUNAUTHORIZED, "tracker install %s was revoked", in.ID), ev)
	}
	return in, nil
}

// newRequestKey mints a request key of install in, living from now.
func (s *Service) newRequestKey(in *custos.TrackerInstall, sessionID string) (*custos.RequestKey, string) {
	tok := token.New(token.PrefixRequestKey)
	now := s.timeNow()
	return &custos.RequestKey{ID: custos.NewID(custos.PrefixRequestKey), OrgID: in.OrgID, InstallID: in.ID,
		SessionID: sessionID, Hash: token.Hash(tok), CreatedAt: now, ExpiresAt: now.Add(custos.RequestKeyTTL)}, tok
}

// StartTrackerSession implements custos.LaunchService.
func (s *Service) StartTrackerSession(ctx context.Context, installToken string) (*custos.RequestKeyGrant, error) {
	in, err := s.install(ctx, installToken)
	if err != nil {
		return nil, err
	}
	k, tok := s.newRequestKey(in, custos.NewID(custos.PrefixTrackerSession))
	ev := s.event(ctx, in.OrgID, in.ID, custos.ActionTrackerSession, custos.OutcomeOK)
	ev.Target = k.SessionID
	if err := s.store.CreateRequestKey(ctx, k, ev); err != nil {
		return nil, err
	}
	return &custos.RequestKeyGrant{RequestKey: tok, SessionID: k.SessionID, ExpiresAt: k.ExpiresAt}, nil
}

// errRequestKey is the one answer to every refused request key, so a caller
// learns nothing about keys that are not its own.
func errRequestKey() error {
	return custos.Errorf(custos.EUNAUTHORIZED, "request key already used, expired or not this install's; start a new session with POST /v1/tracker/request-key")
}

// SpendRequestKey implements custos.LaunchService.
func (s *Service) SpendRequestKey(ctx context.Context, installToken, requestKey string) (*custos.TrackerCall, error) {
	in, err := s.install(ctx, installToken)
	if err != nil {
		return nil, err
	}
	ev := s.event(ctx, in.OrgID, in.ID, custos.ActionRequestKeyReplay, custos.OutcomeDenied)
	if err := token.Check(requestKey, token.PrefixRequestKey); err != nil {
		ev.Reason = "malformed"
		return nil, s.deny(ctx, err, ev)
	}
	hash := token.Hash(requestKey)
	next, tok := s.newRequestKey(in, "")
	spent, err := s.store.SpendRequestKey(ctx, in.ID, hash, s.timeNow(), next)
	if err == nil {
		next.OrgID, next.SessionID = spent.OrgID, spent.SessionID
		return &custos.TrackerCall{Install: in, Spent: spent,
			Next: &custos.RequestKeyGrant{RequestKey: tok, SessionID: spent.SessionID, ExpiresAt: next.ExpiresAt}}, nil
	} else if custos.ErrorCode(err) != custos.ENOTFOUND {
		return nil, err
	}
	return nil, s.refuseRequestKey(ctx, in, hash, ev)
}

// refuseRequestKey audits a request key that could not be spent, in the
// caller's org and, for another org's key, in that org too.
func (s *Service) refuseRequestKey(ctx context.Context, in *custos.TrackerInstall, hash string, ev *custos.AuditEvent) error {
	k, err := s.store.FindRequestKeyByHash(ctx, hash)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		ev.Reason = "unknown"
		return s.deny(ctx, errRequestKey(), ev)
	} else if err != nil {
		return err
	}
	ev.Target = k.ID
	evs := []*custos.AuditEvent{ev}
	switch {
	case k.InstallID != in.ID:
		ev.Reason = "another install"
		if k.OrgID != in.OrgID {
			o := s.event(ctx, k.OrgID, k.InstallID, custos.ActionRequestKeyReplay, custos.OutcomeDenied)
			o.Target, o.Reason = k.ID, "another install ("+in.ID+") presented this key"
			evs = append(evs, o)
		}
	case k.UsedAt != nil:
		ev.Reason = "used"
	case !s.timeNow().Before(k.ExpiresAt):
		ev.Reason = "expired"
	default:
		ev.Reason = "refused"
	}
	return s.deny(ctx, errRequestKey(), evs...)
}
