package custos

import (
	"context"
	"time"
)

// DefaultSessionTTL is how long a woken session lasts when no TTL is given.
const DefaultSessionTTL = 30 * time.Minute

// MaxSessionTTL is the longest session a device may wake.
const MaxSessionTTL = 24 * time.Hour

// Session is a device's declaration "a human is here", which
// require_session rules ask for. Empty Tags cover every secret; otherwise
// only secrets carrying one of the tags.
type Session struct {
	ID        string            `json:"id"`
	OrgID     string            `json:"org_id"`
	DeviceID  string            `json:"device_id"`
	Tags      map[string]string `json:"tags,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// Covers reports whether s is live at now and covers a secret with tags.
func (s *Session) Covers(tags map[string]string, now time.Time) bool {
	if s == nil || !now.Before(s.ExpiresAt) {
		return false
	}
	if len(s.Tags) == 0 {
		return true
	}
	for k, v := range s.Tags {
		if tags[k] == v {
			return true
		}
	}
	return false
}

// Confirmation is a device's single-use acknowledgement that it is about to
// read one secret, asked for by require_confirmation rules.
type Confirmation struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	DeviceID  string     `json:"device_id"`
	Project   string     `json:"project"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// WakeInput is what a device gives to wake a session.
type WakeInput struct {
	Tags map[string]string `json:"tags,omitempty"`
	TTL  Duration          `json:"ttl,omitempty"`
}

// ConfirmInput names the secret a device acknowledges.
type ConfirmInput struct {
	Project string `json:"project"`
	Name    string `json:"name"`
}

// SessionService lets a device wake and end sessions and confirm reads. Every
// call is device-gated: the device must be approved.
type SessionService interface {
	// WakeSession starts (or replaces) the calling device's session.
	WakeSession(ctx context.Context, in WakeInput) (*Session, error)
	// SleepSession ends the calling device's sessions.
	SleepSession(ctx context.Context) error
	// CurrentSession returns the calling device's live session. Returns
	// ENOTFOUND if it has none.
	CurrentSession(ctx context.Context) (*Session, error)
	// Confirm records a single-use acknowledgement valid ConfirmationTTL.
	// Returns ENOTFOUND if the secret does not exist.
	Confirm(ctx context.Context, in ConfirmInput) (*Confirmation, error)
}

// SessionStore persists sessions and confirmations.
type SessionStore interface {
	// PutSession replaces the device's session with s.
	PutSession(ctx context.Context, s *Session, ev *AuditEvent) error
	// FindSession returns the device's session live at now. Returns ENOTFOUND.
	FindSession(ctx context.Context, orgID, deviceID string, now time.Time) (*Session, error)
	// DeleteSessions deletes the device's sessions.
	DeleteSessions(ctx context.Context, orgID, deviceID string, ev *AuditEvent) error
	// CreateConfirmation inserts c.
	CreateConfirmation(ctx context.Context, c *Confirmation, ev *AuditEvent) error
	// ConsumeConfirmation atomically marks one unused, unexpired confirmation
	// of the device for project/name used at now (one statement, so exactly
	// one of many concurrent callers wins). Returns ENOTFOUND if none.
	ConsumeConfirmation(ctx context.Context, orgID, deviceID, project, name string, now time.Time) error
}
