// Package vault is the secrets service: every business rule of the vault
// lives here, above the stores, so all backends behave the same. A value
// read runs auth → device → permission level → policies → decrypt → audit
// record durable → respond; if the audit record cannot be written the value
// is not delivered.
package vault

import (
	"context"
	"log/slog"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
)

// Config holds what a Service needs.
type Config struct {
	Store  custos.Store
	Keeper envelope.Keeper
	Now    custos.Clock // nil means time.Now
	Logger *slog.Logger // nil means slog.Default()
	// CheckNotifyURL, when set, vets a notify webhook URL when the policy is
	// added (the egress allowlist and SSRF rules); nil accepts any http(s) URL.
	CheckNotifyURL func(string) error
}

// Service implements custos.KeyService, SecretService, DeviceService,
// PolicyService, SessionService and AuditService.
type Service struct {
	store    custos.Store
	keeper   envelope.Keeper
	now      custos.Clock
	log      *slog.Logger
	notify   chan struct{} // pokes the notifier after an outbox write
	cache    *cache
	checkURL func(string) error
}

var (
	_ custos.KeyService     = (*Service)(nil)
	_ custos.SecretService  = (*Service)(nil)
	_ custos.DeviceService  = (*Service)(nil)
	_ custos.PolicyService  = (*Service)(nil)
	_ custos.SessionService = (*Service)(nil)
	_ custos.AuditService   = (*Service)(nil)
)

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, keeper: cfg.Keeper, now: cfg.Now, log: cfg.Logger, notify: make(chan struct{}, 1), cache: newCache(), checkURL: cfg.CheckNotifyURL}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Meta keys in the store.
const (
	metaCanary = "kek_canary"
)

// CheckKeeper makes sure the configured KEK is the one the database was
// written with, by opening the canary; on an empty database it writes one.
// Call it before serving: a replica with the wrong KEK must not write data
// nobody can read.
func (s *Service) CheckKeeper(ctx context.Context) error {
	blob, err := s.store.GetMeta(ctx, metaCanary)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		// A fresh database: the first replica to write its canary decides
		// the KEK; any other re-reads it and is checked against it.
		if blob, err = envelope.NewCanary(ctx, s.keeper); err != nil {
			return err
		}
		err = s.store.CreateMeta(ctx, metaCanary, blob)
		if custos.ErrorCode(err) != custos.ECONFLICT {
			return err
		}
		blob, err = s.store.GetMeta(ctx, metaCanary)
	}
	if err != nil {
		return err
	}
	return envelope.CheckCanary(ctx, s.keeper, blob)
}

// Bootstrap creates the first org and its owner key if the database has no
// org yet. It returns the owner token only when it created one.
func (s *Service) Bootstrap(ctx context.Context, orgName string) (token string, created bool, err error) {
	n, err := s.store.CountOrgs(ctx)
	if err != nil {
		return "", false, err
	} else if n > 0 {
		return "", false, nil
	}
	now := s.timeNow()
	org := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: orgName, CreatedAt: now}
	key, token := newKey(org.ID, "owner", custos.RoleOwner, now, nil)
	ev := &custos.AuditEvent{OrgID: org.ID, Time: now, Action: custos.ActionBootstrap, Outcome: custos.OutcomeOK,
		KeyID: key.ID, User: key.Name, Source: "server", Target: org.ID}
	if err := s.store.Bootstrap(ctx, org, key, ev); err != nil {
		if custos.ErrorCode(err) == custos.ECONFLICT { // another replica won
			return "", false, nil
		}
		return "", false, err
	}
	return token, true, nil
}

// timeNow returns the current time as stored: UTC, microsecond precision.
func (s *Service) timeNow() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// caller returns the authenticated caller or EUNAUTHORIZED.
func caller(ctx context.Context) (*custos.Caller, error) {
	c := custos.CallerFromContext(ctx)
	if c == nil || c.Key == nil {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "authentication required")
	}
	return c, nil
}

// requireAdmin returns EFORBIDDEN unless c holds an owner or admin key.
func requireAdmin(c *custos.Caller) error {
	if !c.Key.Role.IsAdmin() {
		return custos.Errorf(custos.EFORBIDDEN, "this needs an owner or admin key (key %s has role %s)", c.Key.ID, c.Key.Role)
	}
	return nil
}

// event starts an audit event for c.
func (s *Service) event(c *custos.Caller, action, outcome string) *custos.AuditEvent {
	return &custos.AuditEvent{
		OrgID:       c.OrgID(),
		Time:        s.timeNow(),
		Action:      action,
		Outcome:     outcome,
		KeyID:       c.Key.ID,
		User:        c.Key.Name,
		Agent:       c.Agent,
		Hostname:    c.Hostname,
		MachineUser: c.MachineUser,
		IP:          c.IP,
		Source:      c.Source,
		Model:       c.Model,
	}
}

// deny records a denied request in the audit log and returns err. A denial
// that cannot be recorded is still a denial; the failure is logged.
func (s *Service) deny(ctx context.Context, ev *custos.AuditEvent, err error) error {
	ev.Outcome = custos.OutcomeDenied
	ev.Reason = custos.ErrorMessage(err)
	if aerr := s.store.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); aerr != nil {
		s.log.Error("audit write failed for a denial", "action", ev.Action, "org", ev.OrgID, "err", aerr)
	}
	return err
}

// auditFailed is what a caller gets when its audit record could not be made
// durable: the request did not happen.
func (s *Service) auditFailed(action string, err error) error {
	s.log.Error("audit write failed; request refused", "action", action, "err", err)
	return custos.Errorf(custos.EUNAVAILABLE, "the audit log could not be written, so nothing was done or delivered; try again later")
}
