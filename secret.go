package custos

import (
	"context"
	"time"
)

// Secret is a named value in a project. Name, project, tags and description
// are plaintext (for search and policies); values exist only as ciphertext
// in SecretVersion.
type Secret struct {
	ID          string            `json:"id"`
	OrgID       string            `json:"org_id"`
	Project     string            `json:"project"`
	Name        string            `json:"name"`
	Tags        map[string]string `json:"tags"`
	Description string            `json:"description,omitempty"`
	Version     int               `json:"version"` // current version, from 1
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`

	// Current is the current version with its ciphertext. Only stores fill it,
	// for LoadSecrets; it never leaves the server.
	Current *SecretVersion `json:"-"`
}

// Expired reports whether s has a TTL that has passed at now.
func (s *Secret) Expired(now time.Time) bool {
	return s.ExpiresAt != nil && !now.Before(*s.ExpiresAt)
}

// SecretVersion is one value of a secret: AES-256-GCM ciphertext under a
// fresh DEK, the DEK wrapped by the KEK of keeper KeeperID.
type SecretVersion struct {
	SecretID   string     `json:"secret_id"`
	Version    int        `json:"version"`
	Ciphertext []byte     `json:"-"`
	WrappedDEK []byte     `json:"-"`
	KeeperID   string     `json:"-"`
	CreatedBy  string     `json:"created_by"` // key id
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// SecretFilter narrows a secret listing.
type SecretFilter struct {
	Project string            // "" means every project
	Tags    map[string]string // every tag must match
}

// SetSecretInput is what a caller gives to set a secret. Value never travels
// in a URL or argv.
type SetSecretInput struct {
	Project     string            `json:"project"`
	Name        string            `json:"name"`
	Value       string            `json:"value"`
	Tags        map[string]string `json:"tags,omitempty"`
	TTL         Duration          `json:"ttl,omitempty"`
	Description string            `json:"description,omitempty"`
}

// Access modes: how a value is delivered, recorded in audit events.
const (
	ModeInject = "inject"
	ModeReveal = "reveal"
	ModeRun    = "run"
)

// AccessRequest asks for secret values.
type AccessRequest struct {
	Project string   `json:"project"`
	Names   []string `json:"names,omitempty"` // empty with ModeRun: every secret of the project
	Mode    string   `json:"mode"`
}

// SecretValue is a delivered value.
type SecretValue struct {
	Project string `json:"project"`
	Name    string `json:"name"`
	Version int    `json:"version"`
	Value   string `json:"value"`
}

// SecretService is the vault's API for secrets.
type SecretService interface {
	// SetSecret stores a new version of a secret, creating it if needed.
	// Returns EINVALID, ETOOLARGE or EFORBIDDEN.
	SetSecret(ctx context.Context, in SetSecretInput) (*Secret, error)
	// ListSecrets lists metadata, never values.
	ListSecrets(ctx context.Context, f SecretFilter) ([]*Secret, error)
	// SecretHistory lists the versions of a secret, never values. Returns ENOTFOUND.
	SecretHistory(ctx context.Context, project, name string) ([]*SecretVersion, error)
	// DeleteSecret deletes a secret and every version. Returns ENOTFOUND.
	DeleteSecret(ctx context.Context, project, name string) error
	// AccessSecrets delivers values through the full check: device approved,
	// level, policies, TTL; the audit event is durable before it returns.
	// Returns EDEVICEPENDING, EFORBIDDEN, EPOLICY, EEXPIRED, ENOTFOUND, or
	// EUNAVAILABLE if the audit event could not be written.
	AccessSecrets(ctx context.Context, req AccessRequest) ([]*SecretValue, error)
}

// SecretStore persists secrets. Stores see ciphertext only.
type SecretStore interface {
	// CreateSecret inserts s (Version 1) and v. Returns ECONFLICT if
	// (org, project, name) exists.
	CreateSecret(ctx context.Context, s *Secret, v *SecretVersion, ev *AuditEvent) error
	// UpdateSecret stores v as the next version of s, updating tags,
	// description and expiry, only if the stored version is still
	// s.Version-1 (v.Version == s.Version). Returns ENOTFOUND, or ECONFLICT if
	// another writer got there first.
	UpdateSecret(ctx context.Context, s *Secret, v *SecretVersion, ev *AuditEvent) error
	// FindSecret returns the secret's metadata. Returns ENOTFOUND.
	FindSecret(ctx context.Context, orgID, project, name string) (*Secret, error)
	// ListSecrets returns metadata of the org's secrets ordered by project, name.
	ListSecrets(ctx context.Context, orgID string, f SecretFilter) ([]*Secret, error)
	// LoadSecrets returns the named secrets of project with Current filled
	// (ciphertext included); names empty means all of the project. Missing
	// names are simply absent from the result.
	LoadSecrets(ctx context.Context, orgID, project string, names []string) ([]*Secret, error)
	// ListVersions returns a secret's versions, newest first, without ciphertext.
	ListVersions(ctx context.Context, orgID, secretID string) ([]*SecretVersion, error)
	// DeleteSecret deletes the secret and all its versions. Returns ENOTFOUND.
	DeleteSecret(ctx context.Context, orgID, project, name string, ev *AuditEvent) error
	// RewrapDEKs calls fn for every stored version's wrapped DEK, every
	// model provider's key's and every task artifact's, and stores what it
	// returns, all in one transaction; any error rolls everything back.
	// Returns how many were rewrapped.
	RewrapDEKs(ctx context.Context, fn func(wrapped []byte, keeperID string) ([]byte, string, error)) (int, error)
}
