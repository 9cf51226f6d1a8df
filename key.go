package custos

import (
	"context"
	"time"
)

// Role is what an API key may do.
type Role string

// Roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"  // everything
	RoleAdmin  Role = "admin"  // everything but owner keys
	RoleMember Role = "member" // secrets (device-gated), sessions
	RoleAgent  Role = "agent"  // secrets (device-gated), sessions; meant for AI agents
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleMember, RoleAgent:
		return true
	}
	return false
}

// IsAdmin reports whether r is owner or admin: management calls by such keys
// are not device-gated.
func (r Role) IsAdmin() bool { return r == RoleOwner || r == RoleAdmin }

// DefaultKeyGrace is how long a rotated key keeps working.
const DefaultKeyGrace = 48 * time.Hour

// APIKey is a bearer credential (cst_ak_…). Only the SHA-256 of the token is
// stored (Hash); the token itself is shown once, at creation or rotation.
type APIKey struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	Hash       string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RotatedAt  *time.Time `json:"rotated_at,omitempty"`
	GraceUntil *time.Time `json:"grace_until,omitempty"` // set with RotatedAt
	ReplacedBy string     `json:"replaced_by,omitempty"` // id of the key that replaced this one
}

// Status returns "active", "revoked", "expired", "rotated" (still in grace) or
// "retired" (rotated, past grace) at time now.
func (k *APIKey) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.RotatedAt != nil && k.GraceUntil != nil && !now.Before(*k.GraceUntil):
		return "retired"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	case k.RotatedAt != nil:
		return "rotated"
	}
	return "active"
}

// Usable reports whether the key authenticates at time now.
func (k *APIKey) Usable(now time.Time) bool {
	s := k.Status(now)
	return s == "active" || s == "rotated"
}

// CreateKeyInput is what a caller gives to create a key.
type CreateKeyInput struct {
	Name string   `json:"name"`
	Role Role     `json:"role"`
	TTL  Duration `json:"ttl,omitempty"`
}

// KeyService manages API keys. Only owner and admin keys may call it, and
// only owners may create, rotate or revoke owner keys.
type KeyService interface {
	// Authenticate returns the key that token names. Returns EUNAUTHORIZED if
	// the token is malformed, unknown, revoked, expired or rotated past grace.
	Authenticate(ctx context.Context, token string) (*APIKey, error)
	// CreateKey mints a key and returns it with its token (shown once).
	CreateKey(ctx context.Context, in CreateKeyInput) (*APIKey, string, error)
	// ListKeys lists the org's keys, never their tokens.
	ListKeys(ctx context.Context) ([]*APIKey, error)
	// RotateKey replaces key id: the new key (returned with its token) takes
	// over its device approvals; the old one keeps working for grace (0 means
	// DefaultKeyGrace). Returns ECONFLICT if id was already rotated or revoked.
	RotateKey(ctx context.Context, id string, grace time.Duration) (*APIKey, string, error)
	// RevokeKey stops key id at once. Returns ENOTFOUND or ECONFLICT.
	RevokeKey(ctx context.Context, id string) error
}

// KeyStore persists API keys. Each mutation writes ev to the audit log in the
// same transaction.
type KeyStore interface {
	// CreateKey inserts k. Returns ECONFLICT if its id or hash exists.
	CreateKey(ctx context.Context, k *APIKey, ev *AuditEvent) error
	// FindKeyByHash returns the key whose token hashes to hash. Returns ENOTFOUND.
	FindKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	// FindKey returns key id of org. Returns ENOTFOUND.
	FindKey(ctx context.Context, orgID, id string) (*APIKey, error)
	// ListKeys returns the org's keys, oldest first.
	ListKeys(ctx context.Context, orgID string) ([]*APIKey, error)
	// RotateKey atomically marks key oldID rotated (RotatedAt=now,
	// GraceUntil=graceUntil, ReplacedBy=newKey.ID) if it is neither revoked nor
	// rotated, inserts newKey, and copies every device of oldID to newKey with
	// the fingerprint recomputed for the new key id (new device ids, same
	// status and level). Returns ENOTFOUND, or ECONFLICT if oldID is revoked or
	// already rotated.
	RotateKey(ctx context.Context, orgID, oldID string, newKey *APIKey, now, graceUntil time.Time, ev *AuditEvent) error
	// RevokeKey sets RevokedAt=now on key id if it is not revoked yet.
	// Returns ENOTFOUND, or ECONFLICT if already revoked.
	RevokeKey(ctx context.Context, orgID, id string, now time.Time, ev *AuditEvent) error
}
