package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/policy"
)

// maxSetRetries bounds optimistic-concurrency retries of SetSecret.
const maxSetRetries = 8

func projectOrDefault(p string) string {
	if p == "" {
		return custos.DefaultProject
	}
	return p
}

func validateDescription(d string) error {
	if len(d) > custos.MaxDescriptionBytes || !utf8.ValidString(d) {
		return custos.Errorf(custos.EINVALID, "invalid description: at most %d bytes of UTF-8", custos.MaxDescriptionBytes)
	}
	for _, r := range d {
		if r < 0x20 || r == 0x7f {
			return custos.Errorf(custos.EINVALID, "invalid description: control characters are not allowed")
		}
	}
	return nil
}

// SetSecret implements custos.SecretService.
func (s *Service) SetSecret(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in.Project = projectOrDefault(in.Project)
	if err := custos.ValidateProject(in.Project); err != nil {
		return nil, err
	} else if err := custos.ValidateName(in.Name); err != nil {
		return nil, err
	} else if in.Value == "" {
		return nil, custos.Errorf(custos.EINVALID, "the secret value is empty")
	} else if len(in.Value) > custos.MaxValueBytes {
		return nil, custos.Errorf(custos.ETOOLARGE, "the secret value is %d bytes; at most %d are allowed", len(in.Value), custos.MaxValueBytes)
	} else if err := custos.ValidateTags(in.Tags); err != nil {
		return nil, err
	} else if err := validateDescription(in.Description); err != nil {
		return nil, err
	} else if in.TTL < 0 {
		return nil, custos.Errorf(custos.EINVALID, "invalid ttl: must not be negative")
	}
	if !c.Key.Role.IsAdmin() {
		if _, err := s.device(ctx, c, custos.LevelReadWrite, custos.ActionSecretSet); err != nil {
			return nil, err
		}
	}

	for i := 0; i < maxSetRetries; i++ {
		sec, err := s.putSecret(ctx, c, in)
		if custos.ErrorCode(err) == custos.ECONFLICT {
			continue // a concurrent set won; build on its version
		}
		return sec, err
	}
	return nil, custos.Errorf(custos.ECONFLICT, "secret %s/%s is being changed concurrently; try again", in.Project, in.Name)
}

func (s *Service) putSecret(ctx context.Context, c *custos.Caller, in custos.SetSecretInput) (*custos.Secret, error) {
	now := s.timeNow()
	cur, err := s.store.FindSecret(ctx, c.OrgID(), in.Project, in.Name)
	if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
		return nil, err
	}
	sec := &custos.Secret{OrgID: c.OrgID(), Project: in.Project, Name: in.Name, Tags: in.Tags,
		Description: in.Description, Version: 1, CreatedAt: now, UpdatedAt: now}
	if cur != nil {
		sec.ID, sec.Version, sec.CreatedAt = cur.ID, cur.Version+1, cur.CreatedAt
		if in.Tags == nil {
			sec.Tags = cur.Tags
		}
		if in.Description == "" {
			sec.Description = cur.Description
		}
	} else {
		sec.ID = custos.NewID(custos.PrefixSecret)
	}
	if sec.Tags == nil {
		sec.Tags = map[string]string{}
	}
	if in.TTL > 0 {
		exp := now.Add(time.Duration(in.TTL))
		sec.ExpiresAt = &exp
	}

	plain := []byte(in.Value)
	sealed, err := envelope.Seal(ctx, s.keeper, plain, envelope.SecretAAD(sec.OrgID, sec.ID, sec.Version))
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	v := &custos.SecretVersion{SecretID: sec.ID, Version: sec.Version, Ciphertext: sealed.Ciphertext,
		WrappedDEK: sealed.WrappedDEK, KeeperID: sealed.KeeperID, CreatedBy: c.Key.ID, CreatedAt: now, ExpiresAt: sec.ExpiresAt}

	ev := s.event(c, custos.ActionSecretSet, custos.OutcomeOK)
	ev.Project, ev.Secret, ev.Version, ev.Target = sec.Project, sec.Name, sec.Version, sec.ID
	if cur == nil {
		err = s.store.CreateSecret(ctx, sec, v, ev)
	} else {
		err = s.store.UpdateSecret(ctx, sec, v, ev)
	}
	if err != nil {
		return nil, err
	}
	return sec, nil
}

// ListSecrets implements custos.SecretService.
func (s *Service) ListSecrets(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if f.Project != "" {
		if err := custos.ValidateProject(f.Project); err != nil {
			return nil, err
		}
	}
	if err := custos.ValidateTags(f.Tags); err != nil {
		return nil, err
	}
	if !c.Key.Role.IsAdmin() {
		if _, err := s.device(ctx, c, custos.LevelRead, custos.ActionSecretAccess); err != nil {
			return nil, err
		}
	}
	return s.store.ListSecrets(ctx, c.OrgID(), f)
}

// SecretHistory implements custos.SecretService.
func (s *Service) SecretHistory(ctx context.Context, project, name string) ([]*custos.SecretVersion, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	project = projectOrDefault(project)
	if err := custos.ValidateProject(project); err != nil {
		return nil, err
	} else if err := custos.ValidateName(name); err != nil {
		return nil, err
	}
	if !c.Key.Role.IsAdmin() {
		if _, err := s.device(ctx, c, custos.LevelRead, custos.ActionSecretAccess); err != nil {
			return nil, err
		}
	}
	sec, err := s.store.FindSecret(ctx, c.OrgID(), project, name)
	if err != nil {
		return nil, err
	}
	return s.store.ListVersions(ctx, c.OrgID(), sec.ID)
}

// DeleteSecret implements custos.SecretService.
func (s *Service) DeleteSecret(ctx context.Context, project, name string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	project = projectOrDefault(project)
	if err := custos.ValidateProject(project); err != nil {
		return err
	} else if err := custos.ValidateName(name); err != nil {
		return err
	}
	if !c.Key.Role.IsAdmin() {
		if _, err := s.device(ctx, c, custos.LevelFull, custos.ActionSecretDelete); err != nil {
			return err
		}
	}
	ev := s.event(c, custos.ActionSecretDelete, custos.OutcomeOK)
	ev.Project, ev.Secret = project, name
	return s.store.DeleteSecret(ctx, c.OrgID(), project, name, ev)
}

// modeAction maps an access mode to its audit action.
var modeAction = map[string]string{
	custos.ModeInject: custos.ActionSecretInject,
	custos.ModeReveal: custos.ActionSecretReveal,
	custos.ModeRun:    custos.ActionSecretRun,
}

// AccessSecrets implements custos.SecretService: the hot path.
func (s *Service) AccessSecrets(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	req.Project = projectOrDefault(req.Project)
	action, ok := modeAction[req.Mode]
	if !ok {
		return nil, custos.Errorf(custos.EINVALID, "invalid mode %q: use inject, reveal or run", req.Mode)
	} else if err := custos.ValidateProject(req.Project); err != nil {
		return nil, err
	} else if len(req.Names) == 0 && req.Mode != custos.ModeRun {
		return nil, custos.Errorf(custos.EINVALID, "name at least one secret")
	} else if len(req.Names) > custos.MaxNamesPerRequest {
		return nil, custos.Errorf(custos.EINVALID, "too many names: %d (at most %d)", len(req.Names), custos.MaxNamesPerRequest)
	}
	seen := make(map[string]bool, len(req.Names))
	names := req.Names[:0:0]
	for _, n := range req.Names {
		if err := custos.ValidateName(n); err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}

	// denied records one refusal and returns it.
	denied := func(name string, dev *custos.Device, err error) error {
		ev := s.event(c, custos.ActionSecretAccess, custos.OutcomeDenied)
		ev.Mode, ev.Project, ev.Secret = req.Mode, req.Project, name
		if dev != nil {
			ev.DeviceID = dev.ID
		}
		return s.deny(ctx, ev, err)
	}

	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	// An agent over MCP sees a value only through a reveal the operator
	// enabled, from a device approved at full.
	want := custos.LevelRead
	if c.Source == custos.SourceMCP && req.Mode == custos.ModeReveal {
		want = custos.LevelFull
	}
	dev, err := s.deviceIn(ctx, v, c, want, custos.ActionSecretAccess)
	if err != nil {
		return nil, err
	}
	secrets, err := v.secrets(ctx, c.OrgID(), req.Project, names)
	if err != nil {
		return nil, err
	}
	if len(secrets) < len(names) {
		found := make(map[string]bool, len(secrets))
		for _, sec := range secrets {
			found[sec.Name] = true
		}
		for _, n := range names {
			if !found[n] {
				return nil, denied(n, dev, custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", n, req.Project))
			}
		}
	}
	if len(secrets) == 0 {
		return []*custos.SecretValue{}, nil
	}

	now := s.now()
	policies, err := v.policies(ctx, c.OrgID())
	if err != nil {
		return nil, err
	}
	var session *custos.Session
	if needsSession(policies) {
		session, err = s.store.FindSession(ctx, c.OrgID(), dev.ID, now)
		if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
			return nil, err
		}
	}

	var notify []notifyPair
	for _, sec := range secrets {
		if sec.Expired(now) {
			return nil, denied(sec.Name, dev, custos.Errorf(custos.EEXPIRED,
				"secret %s/%s expired at %s; set a new value to use it again", sec.Project, sec.Name, sec.ExpiresAt.Format(time.RFC3339)))
		}
		d := policy.Evaluate(policy.Input{Secret: sec, Policies: policies, Model: c.Model, Session: session, Now: now})
		if !d.Allow {
			return nil, denied(sec.Name, dev, custos.Errorf(custos.EPOLICY, "%s", d.Reason))
		}
		if d.Confirm != nil {
			if err := s.store.ConsumeConfirmation(ctx, c.OrgID(), dev.ID, sec.Project, sec.Name, now); custos.ErrorCode(err) == custos.ENOTFOUND {
				return nil, denied(sec.Name, dev, custos.Errorf(custos.EPOLICY,
					"policy %s (require_confirmation on %s=%s): confirm first with: custos confirm %s --project %s (valid 5 minutes, one read)",
					d.Confirm.ID, d.Confirm.TagKey, d.Confirm.TagValue, sec.Name, sec.Project))
			} else if err != nil {
				return nil, err
			}
		}
		for _, p := range d.Notify {
			notify = append(notify, notifyPair{p, sec.Name})
		}
	}

	values := make([]*custos.SecretValue, 0, len(secrets))
	events := make([]*custos.AuditEvent, 0, len(secrets))
	for _, sec := range secrets {
		v := sec.Current
		plain, err := envelope.Open(ctx, s.keeper, &envelope.Sealed{Ciphertext: v.Ciphertext, WrappedDEK: v.WrappedDEK, KeeperID: v.KeeperID},
			envelope.SecretAAD(sec.OrgID, sec.ID, v.Version))
		if err != nil {
			s.log.Error("secret does not decrypt", "org", sec.OrgID, "secret_id", sec.ID, "version", v.Version, "err", err)
			return nil, fmt.Errorf("open secret %s: %w", sec.ID, err)
		}
		values = append(values, &custos.SecretValue{Project: sec.Project, Name: sec.Name, Version: v.Version, Value: string(plain)})
		clear(plain)
		ev := s.event(c, action, custos.OutcomeOK)
		ev.DeviceID, ev.Mode, ev.Project, ev.Secret, ev.Version, ev.Target = dev.ID, req.Mode, sec.Project, sec.Name, v.Version, sec.ID
		events = append(events, ev)
	}

	msgs := s.outboxMessages(c, dev, events, notify)
	if err := s.store.AppendAudit(ctx, events, msgs); err != nil {
		for _, v := range values {
			v.Value = ""
		}
		return nil, s.auditFailed(action, err)
	}
	if len(msgs) > 0 {
		s.poke()
	}
	return values, nil
}

func needsSession(ps []*custos.Policy) bool {
	for _, p := range ps {
		if p.Rule == custos.RuleRequireSession {
			return true
		}
	}
	return false
}

// notification is the JSON body a notify webhook receives. It names the
// secret and who read it, never the value.
type notification struct {
	Type     string `json:"type"`
	PolicyID string `json:"policy_id"`
	OrgID    string `json:"org_id"`
	Project  string `json:"project"`
	Secret   string `json:"secret"`
	Version  int    `json:"version"`
	Action   string `json:"action"`
	KeyID    string `json:"key_id"`
	User     string `json:"user"`
	DeviceID string `json:"device_id"`
	Agent    string `json:"agent"`
	Hostname string `json:"hostname"`
	IP       string `json:"ip"`
	Model    string `json:"model,omitempty"`
	Time     string `json:"time"`
}

// notifyPair is a notify policy that matched one delivered secret.
type notifyPair struct {
	policy *custos.Policy
	secret string
}

// outboxMessages builds one message per notify policy and delivered secret
// it matched.
func (s *Service) outboxMessages(c *custos.Caller, dev *custos.Device, events []*custos.AuditEvent, notify []notifyPair) []*custos.OutboxMessage {
	if len(notify) == 0 {
		return nil
	}
	byName := make(map[string]*custos.AuditEvent, len(events))
	for _, ev := range events {
		byName[ev.Secret] = ev
	}
	msgs := make([]*custos.OutboxMessage, 0, len(notify))
	for _, n := range notify {
		ev, p := byName[n.secret], n.policy
		body, err := json.Marshal(notification{Type: "secret.accessed", PolicyID: p.ID, OrgID: ev.OrgID, Project: ev.Project, // #nosec G117 -- "secret" here is a secret's name; values never enter this struct
			Secret: ev.Secret, Version: ev.Version, Action: ev.Action, KeyID: ev.KeyID, User: ev.User, DeviceID: dev.ID,
			Agent: c.Agent, Hostname: c.Hostname, IP: c.IP, Model: c.Model, Time: ev.Time.Format(time.RFC3339Nano)})
		if err != nil {
			continue // plain struct of strings; cannot fail
		}
		msgs = append(msgs, &custos.OutboxMessage{ID: custos.NewID(custos.PrefixOutbox), OrgID: ev.OrgID, URL: p.NotifyURL,
			Payload: body, CreatedAt: ev.Time, NextAttemptAt: ev.Time})
	}
	return msgs
}
