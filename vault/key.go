package vault

import (
	"context"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// MaxKeyGrace is the longest grace period a rotation may give the old key.
const MaxKeyGrace = 30 * 24 * time.Hour

// newKey mints an API key and its token.
func newKey(orgID, name string, role custos.Role, now time.Time, expires *time.Time) (*custos.APIKey, string) {
	tok := token.New(token.PrefixAPIKey)
	return &custos.APIKey{ID: custos.NewID(custos.PrefixKey), OrgID: orgID, Name: name, Role: role,
		Hash: token.Hash(tok), CreatedAt: now, ExpiresAt: expires}, tok
}

// Authenticate implements custos.KeyService.
func (s *Service) Authenticate(ctx context.Context, tok string) (*custos.APIKey, error) {
	if err := token.Check(tok, token.PrefixAPIKey); err != nil {
		return nil, err
	}
	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	k, err := v.key(ctx, token.Hash(tok))
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid API key")
	} else if err != nil {
		return nil, err
	}
	switch st := k.Status(s.now()); st {
	case "active", "rotated":
		return k, nil
	case "retired":
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "API key %s was rotated and its grace period ended; use the key that replaced it (%s)", k.ID, k.ReplacedBy)
	default:
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "API key %s is %s", k.ID, st)
	}
}

// CreateKey implements custos.KeyService.
func (s *Service) CreateKey(ctx context.Context, in custos.CreateKeyInput) (*custos.APIKey, string, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, "", err
	} else if err := requireAdmin(c); err != nil {
		return nil, "", err
	}
	if in.Role == "" {
		in.Role = custos.RoleMember
	}
	if err := custos.ValidateLabel("key name", in.Name); err != nil {
		return nil, "", err
	} else if !in.Role.Valid() {
		return nil, "", custos.Errorf(custos.EINVALID, "invalid role %q: use owner, admin, member or agent", in.Role)
	} else if in.Role == custos.RoleOwner && c.Key.Role != custos.RoleOwner {
		return nil, "", custos.Errorf(custos.EFORBIDDEN, "only an owner key can create owner keys")
	} else if in.TTL < 0 {
		return nil, "", custos.Errorf(custos.EINVALID, "invalid ttl: must not be negative")
	}
	now := s.timeNow()
	var exp *time.Time
	if in.TTL > 0 {
		t := now.Add(time.Duration(in.TTL))
		exp = &t
	}
	k, tok := newKey(c.OrgID(), in.Name, in.Role, now, exp)
	ev := s.event(c, custos.ActionKeyCreate, custos.OutcomeOK)
	ev.Target, ev.Reason = k.ID, "role "+string(k.Role)
	if err := s.store.CreateKey(ctx, k, ev); err != nil {
		return nil, "", err
	}
	return k, tok, nil
}

// ListKeys implements custos.KeyService.
func (s *Service) ListKeys(ctx context.Context) ([]*custos.APIKey, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	return s.store.ListKeys(ctx, c.OrgID())
}

// managedKey loads key id for an admin operation, refusing admins who touch
// owner keys.
func (s *Service) managedKey(ctx context.Context, c *custos.Caller, id string) (*custos.APIKey, error) {
	if err := requireAdmin(c); err != nil {
		return nil, err
	} else if err := custos.ValidateID(custos.PrefixKey, id); err != nil {
		return nil, err
	}
	k, err := s.store.FindKey(ctx, c.OrgID(), id)
	if err != nil {
		return nil, err
	}
	if k.Role == custos.RoleOwner && c.Key.Role != custos.RoleOwner {
		return nil, custos.Errorf(custos.EFORBIDDEN, "only an owner key can rotate or revoke owner keys")
	}
	return k, nil
}

// RotateKey implements custos.KeyService.
func (s *Service) RotateKey(ctx context.Context, id string, grace time.Duration) (*custos.APIKey, string, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, "", err
	}
	old, err := s.managedKey(ctx, c, id)
	if err != nil {
		return nil, "", err
	}
	if grace == 0 {
		grace = custos.DefaultKeyGrace
	} else if grace < 0 || grace > MaxKeyGrace {
		return nil, "", custos.Errorf(custos.EINVALID, "invalid grace %s: between 0 and %s", grace, MaxKeyGrace)
	}
	now := s.timeNow()
	if !old.Usable(now) || old.RotatedAt != nil {
		return nil, "", custos.Errorf(custos.ECONFLICT, "API key %s is %s and cannot be rotated", old.ID, old.Status(now))
	}
	k, tok := newKey(c.OrgID(), old.Name, old.Role, now, old.ExpiresAt)
	ev := s.event(c, custos.ActionKeyRotate, custos.OutcomeOK)
	ev.Target, ev.Reason = old.ID, "replaced by "+k.ID+", grace "+grace.String()
	if err := s.store.RotateKey(ctx, c.OrgID(), old.ID, k, now, now.Add(grace), ev); err != nil {
		return nil, "", err
	}
	return k, tok, nil
}

// RevokeKey implements custos.KeyService. The last usable owner key cannot
// be revoked: that would lock the org out.
func (s *Service) RevokeKey(ctx context.Context, id string) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	k, err := s.managedKey(ctx, c, id)
	if err != nil {
		return err
	}
	now := s.timeNow()
	if k.Role == custos.RoleOwner && k.RevokedAt == nil {
		keys, err := s.store.ListKeys(ctx, c.OrgID())
		if err != nil {
			return err
		}
		owners := 0
		for _, o := range keys {
			if o.Role == custos.RoleOwner && o.Usable(now) && o.RotatedAt == nil {
				owners++
			}
		}
		if owners <= 1 && k.RotatedAt == nil {
			return custos.Errorf(custos.ECONFLICT, "API key %s is the last owner key; create another owner key before revoking it", k.ID)
		}
	}
	ev := s.event(c, custos.ActionKeyRevoke, custos.OutcomeOK)
	ev.Target = k.ID
	return s.store.RevokeKey(ctx, c.OrgID(), k.ID, now, ev)
}
