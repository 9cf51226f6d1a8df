package vault

import (
	"context"
	"time"

	"github.com/custos-dev/custos"
)

// WakeSession implements custos.SessionService.
func (s *Service) WakeSession(ctx context.Context, in custos.WakeInput) (*custos.Session, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := custos.ValidateTags(in.Tags); err != nil {
		return nil, err
	}
	ttl := time.Duration(in.TTL)
	if ttl == 0 {
		ttl = custos.DefaultSessionTTL
	} else if ttl < 0 || ttl > custos.MaxSessionTTL {
		return nil, custos.Errorf(custos.EINVALID, "invalid ttl %s: between 1s and %s", ttl, custos.MaxSessionTTL)
	}
	dev, err := s.device(ctx, c, custos.LevelRead, custos.ActionSessionWake)
	if err != nil {
		return nil, err
	}
	now := s.timeNow()
	ses := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: c.OrgID(), DeviceID: dev.ID, Tags: in.Tags,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	ev := s.event(c, custos.ActionSessionWake, custos.OutcomeOK)
	ev.DeviceID, ev.Target, ev.Reason = dev.ID, ses.ID, "ttl "+ttl.String()
	if err := s.store.PutSession(ctx, ses, ev); err != nil {
		return nil, err
	}
	return ses, nil
}

// SleepSession implements custos.SessionService.
func (s *Service) SleepSession(ctx context.Context) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	dev, err := s.device(ctx, c, custos.LevelRead, custos.ActionSessionSleep)
	if err != nil {
		return err
	}
	ev := s.event(c, custos.ActionSessionSleep, custos.OutcomeOK)
	ev.DeviceID = dev.ID
	return s.store.DeleteSessions(ctx, c.OrgID(), dev.ID, ev)
}

// Confirm implements custos.SessionService.
func (s *Service) Confirm(ctx context.Context, in custos.ConfirmInput) (*custos.Confirmation, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in.Project = projectOrDefault(in.Project)
	if err := custos.ValidateProject(in.Project); err != nil {
		return nil, err
	} else if err := custos.ValidateName(in.Name); err != nil {
		return nil, err
	}
	dev, err := s.device(ctx, c, custos.LevelRead, custos.ActionConfirm)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.FindSecret(ctx, c.OrgID(), in.Project, in.Name); err != nil {
		return nil, err
	}
	now := s.timeNow()
	cf := &custos.Confirmation{ID: custos.NewID(custos.PrefixConfirmation), OrgID: c.OrgID(), DeviceID: dev.ID,
		Project: in.Project, Name: in.Name, CreatedAt: now, ExpiresAt: now.Add(custos.ConfirmationTTL)}
	ev := s.event(c, custos.ActionConfirm, custos.OutcomeOK)
	ev.DeviceID, ev.Project, ev.Secret, ev.Target = dev.ID, in.Project, in.Name, cf.ID
	if err := s.store.CreateConfirmation(ctx, cf, ev); err != nil {
		return nil, err
	}
	return cf, nil
}

// CurrentSession implements custos.SessionService.
func (s *Service) CurrentSession(ctx context.Context) (*custos.Session, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	dev, err := s.device(ctx, c, custos.LevelRead, custos.ActionSecretAccess)
	if err != nil {
		return nil, err
	}
	ses, err := s.store.FindSession(ctx, c.OrgID(), dev.ID, s.timeNow())
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "device %s has no live session; wake one with: custos session wake", dev.ID)
	}
	return ses, err
}
