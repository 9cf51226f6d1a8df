package custos

import (
	"context"
)

// MetaStore keeps small named values, such as the KEK canary.
type MetaStore interface {
	// GetMeta returns the value of key. Returns ENOTFOUND.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta sets key to value.
	PutMeta(ctx context.Context, key string, value []byte) error
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

	// Bootstrap creates the first org and its owner key in one transaction.
	// Returns ECONFLICT if any org exists already.
	Bootstrap(ctx context.Context, org *Org, owner *APIKey, ev *AuditEvent) error
	// CacheEpoch returns a counter that advances, in the same transaction,
	// with every change to keys, devices, policies, secrets or secret
	// versions, whichever process makes it. Services compare it to keep
	// in-memory caches of those exact; audit appends do not advance it.
	CacheEpoch(ctx context.Context) (int64, error)
	// Close releases the store.
	Close() error
}
