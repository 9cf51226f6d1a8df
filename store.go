package custos

import (
	"context"
	"time"
)

// MetaStore keeps small named values, such as the KEK canary.
type MetaStore interface {
	// GetMeta returns the value of key. Returns ENOTFOUND.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta sets key to value.
	PutMeta(ctx context.Context, key string, value []byte) error
	// CreateMeta sets key to value only if key is not set yet, atomically
	// (so of two replicas writing the first KEK canary, one wins). Returns
	// ECONFLICT if key exists.
	CreateMeta(ctx context.Context, key string, value []byte) error
}

// Store is everything a storage backend provides. Every backend passes the
// same conformance tests; business rules stay in the services above it.
type Store interface {
	OrgStore
	KeyStore
	DeviceStore
	SecretStore
	PolicyStore
	SessionStore
	AuditStore
	OutboxStore
	MetaStore
	GatewayStore
	TaskStore

	// Bootstrap creates the first org and its owner key in one transaction.
	// Returns ECONFLICT if any org exists already.
	Bootstrap(ctx context.Context, org *Org, owner *APIKey, ev *AuditEvent) error
	// CacheEpoch returns a counter that advances, in the same transaction,
	// with every change to keys, devices, policies, secrets, secret
	// versions, model providers, privacy rules or budgets (not budget
	// counters), whichever process makes it. Services compare it to keep
	// in-memory caches of those exact; audit appends do not advance it.
	CacheEpoch(ctx context.Context) (int64, error)
	// Ping checks that the store can serve reads and writes (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// MigrationState is one schema migration and whether it has been applied.
type MigrationState struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	AppliedAt *time.Time `json:"applied_at,omitempty"` // nil: pending
}

// HotStore keeps hot, ephemeral state that replicas must agree on (rate
// limit counters; later dashboard sessions): in memory for one server, in
// Redis for many. Losing it loses nothing durable.
type HotStore interface {
	// Hit adds one to counter key in the current fixed window of length
	// window (windows are aligned to the first hit) and returns the count
	// after the increment and the time until the window ends. The increment
	// and the expiry are one atomic step, so replicas count together.
	// Returns EINVALID for an empty key or a window under a millisecond.
	Hit(ctx context.Context, key string, window time.Duration) (count int64, reset time.Duration, err error)
	// Peek returns counter key's count and the time until its window ends
	// without counting (0, 0 when no window is open).
	Peek(ctx context.Context, key string) (count int64, reset time.Duration, err error)
	// Close releases the store.
	Close() error
}
