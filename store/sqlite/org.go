package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
)

// CountOrgs returns how many orgs exist.
func (s *Store) CountOrgs(ctx context.Context) (int, error) {
	var n int
	if err := s.rqueryRow(ctx, `SELECT count(*) FROM orgs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count orgs: %w", err)
	}
	return n, nil
}

// FindOrg returns org id. Returns ENOTFOUND.
func (s *Store) FindOrg(ctx context.Context, id string) (*custos.Org, error) {
	var o custos.Org
	err := s.rqueryRow(ctx, `SELECT id, name, created_at FROM orgs WHERE id = ?`, id).
		Scan(&o.ID, &o.Name, column.Time(&o.CreatedAt))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "org %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find org: %w", err)
	}
	return &o, nil
}

// Bootstrap creates the first org and its owner key, with ev, in one
// transaction. Returns ECONFLICT if any org exists already.
func (s *Store) Bootstrap(ctx context.Context, org *custos.Org, owner *custos.APIKey, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if ok, err := w.exists(`SELECT 1 FROM orgs LIMIT 1`); err != nil {
			return fmt.Errorf("check orgs: %w", err)
		} else if ok {
			return custos.Errorf(custos.ECONFLICT, "custos is already set up: an org exists")
		}
		if _, err := w.exec(`INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`,
			org.ID, org.Name, micros(org.CreatedAt)); err != nil {
			return conflictOr(err, "insert org", "org %q already exists", org.ID)
		}
		if err := insertKey(w, owner); err != nil {
			return err
		}
		return w.appendEvent(ev)
	})
}

// GetMeta returns the value of key. Returns ENOTFOUND.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.rqueryRow(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "meta value %q not found", key)
	case err != nil:
		return nil, fmt.Errorf("get meta: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutMeta sets key to value.
func (s *Store) PutMeta(ctx context.Context, key string, value []byte) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, blob(value)); err != nil {
			return fmt.Errorf("put meta: %w", err)
		}
		return nil
	})
}

// CreateMeta sets key to value if key is not set yet. Returns ECONFLICT
// if it is.
func (s *Store) CreateMeta(ctx context.Context, key string, value []byte) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO meta (key, value) VALUES (?, ?)`, key, blob(value)); err != nil {
			return conflictOr(err, "create meta", "meta value %q exists already", key)
		}
		return nil
	})
}

// CacheEpoch returns the counter that triggers advance on every change to
// keys, devices, policies, secrets, secret versions, model providers,
// privacy rules and budgets (not budget counters).
//
// In WAL mode it reads the WAL-index header first (walWatch): while no
// connection of any process has committed since its last query, it
// answers with that query's result, so the answer is as exact as a query
// and costs a few loads instead.
func (s *Store) CacheEpoch(ctx context.Context) (int64, error) {
	var (
		hdr    walHeader
		stable bool
	)
	if s.wal != nil {
		if hdr, stable = s.wal.header(); stable {
			if e, ok := s.wal.cached(hdr); ok {
				return e, nil
			}
		}
	}
	s.epochQueries.Add(1)
	var n int64
	if err := s.rqueryRow(ctx, `SELECT epoch FROM cache_epoch WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("cache epoch: %w", err)
	}
	if stable {
		s.wal.remember(hdr, n)
	}
	return n, nil
}
