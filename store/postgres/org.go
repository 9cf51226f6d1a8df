package postgres

import (
	"context"
	"errors"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

// CountOrgs returns how many orgs exist.
func (s *Store) CountOrgs(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM orgs`).Scan(&n); err != nil {
		return 0, fail("count orgs", err)
	}
	return n, nil
}

// FindOrg returns org id. Returns ENOTFOUND.
func (s *Store) FindOrg(ctx context.Context, id string) (*custos.Org, error) {
	var o custos.Org
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM orgs WHERE id = $1`, id).
		Scan(&o.ID, &o.Name, column.Time(&o.CreatedAt))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "org %q not found", id)
	case err != nil:
		return nil, fail("find org", err)
	}
	return &o, nil
}

// Bootstrap creates the first org and its owner key, with ev, in one
// transaction that holds an advisory lock, so of many concurrent callers in
// any number of processes exactly one succeeds. Returns ECONFLICT if any org
// exists already.
func (s *Store) Bootstrap(ctx context.Context, org *custos.Org, owner *custos.APIKey, ev *custos.AuditEvent) error {
	return s.tx(ctx, "bootstrap", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, bootstrapLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orgs)`).Scan(&exists); err != nil {
			return err
		} else if exists {
			return custos.Errorf(custos.ECONFLICT, "custos is already set up: an org exists")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`,
			org.ID, org.Name, micros(org.CreatedAt)); err != nil {
			return conflictOr(err, "org %q already exists", org.ID)
		}
		if err := insertKey(ctx, tx, owner); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// GetMeta returns the value of key. Returns ENOTFOUND.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "meta value %q not found", key)
	case err != nil:
		return nil, fail("get meta", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutMeta sets key to value.
func (s *Store) PutMeta(ctx context.Context, key string, value []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, blob(value))
	return fail("put meta", err)
}

// CreateMeta sets key to value if key is not set yet. Returns ECONFLICT
// if it is.
func (s *Store) CreateMeta(ctx context.Context, key string, value []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)`, key, blob(value))
	return fail("create meta", conflictOr(err, "meta value %q exists already", key))
}

// CacheEpoch returns the counter that triggers advance on every change to
// keys, devices, policies, secrets, secret versions, model providers,
// privacy rules and budgets (not budget counters).
func (s *Store) CacheEpoch(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT epoch FROM cache_epoch WHERE id = 1`).Scan(&n); err != nil {
		return 0, fail("cache epoch", err)
	}
	return n, nil
}
