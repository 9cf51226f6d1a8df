package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

const keyCols = `id, org_id, name, role, hash, created_at, expires_at, revoked_at, rotated_at, grace_until, replaced_by`

// scanKey reads one api_keys row selected with keyCols.
func scanKey(sc scanner) (*custos.APIKey, error) {
	var k custos.APIKey
	if err := sc.Scan(&k.ID, &k.OrgID, &k.Name, &k.Role, &k.Hash, column.Time(&k.CreatedAt),
		column.NullTime(&k.ExpiresAt), column.NullTime(&k.RevokedAt), column.NullTime(&k.RotatedAt),
		column.NullTime(&k.GraceUntil), &k.ReplacedBy); err != nil {
		return nil, err
	}
	return &k, nil
}

// insertKey inserts k. Returns ECONFLICT if its id or hash exists.
func insertKey(ctx context.Context, tx pgx.Tx, k *custos.APIKey) error {
	if _, err := tx.Exec(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.OrgID, k.Name, string(k.Role), k.Hash, micros(k.CreatedAt), nullMicros(k.ExpiresAt),
		nullMicros(k.RevokedAt), nullMicros(k.RotatedAt), nullMicros(k.GraceUntil), k.ReplacedBy); err != nil {
		return conflictOr(err, "api key %q already exists", k.ID)
	}
	return nil
}

// CreateKey inserts k with ev. Returns ECONFLICT if its id or hash exists.
func (s *Store) CreateKey(ctx context.Context, k *custos.APIKey, ev *custos.AuditEvent) error {
	return s.tx(ctx, "create key", func(tx pgx.Tx) error {
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// FindKeyByHash returns the key whose token hashes to hash. Returns ENOTFOUND.
func (s *Store) FindKeyByHash(ctx context.Context, hash string) (*custos.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = $1`, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "api key not found")
	case err != nil:
		return nil, fail("find key by hash", err)
	}
	return k, nil
}

// FindKey returns key id of org. Returns ENOTFOUND.
func (s *Store) FindKey(ctx context.Context, orgID, id string) (*custos.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE org_id = $1 AND id = $2`, orgID, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "api key %q not found", id)
	case err != nil:
		return nil, fail("find key", err)
	}
	return k, nil
}

// ListKeys returns the org's keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, orgID string) ([]*custos.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE org_id = $1 ORDER BY created_at, ord`, orgID)
	if err != nil {
		return nil, fail("list keys", err)
	}
	defer rows.Close()
	keys := []*custos.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fail("list keys", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("list keys", err)
	}
	return keys, nil
}

// RotateKey atomically marks key oldID rotated, inserts newKey and copies
// every device of oldID to newKey with a recomputed fingerprint, with ev.
// The conditional update locks the old key's row, so of concurrent
// rotations exactly one wins. Returns ENOTFOUND, or ECONFLICT if oldID is
// revoked or already rotated.
func (s *Store) RotateKey(ctx context.Context, orgID, oldID string, newKey *custos.APIKey, now, graceUntil time.Time, ev *custos.AuditEvent) error {
	return s.tx(ctx, "rotate key", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET rotated_at = $1, grace_until = $2, replaced_by = $3
			WHERE org_id = $4 AND id = $5 AND revoked_at IS NULL AND rotated_at IS NULL`,
			micros(now), micros(graceUntil), newKey.ID, orgID, oldID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return keyStateError(ctx, tx, orgID, oldID, "rotated")
		}
		if err := insertKey(ctx, tx, newKey); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND key_id = $2 ORDER BY created_at, ord`, orgID, oldID)
		if err != nil {
			return err
		}
		devs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Device, error) { return scanDevice(r) })
		if err != nil {
			return err
		}
		for _, d := range devs {
			d.ID = custos.NewID(custos.PrefixDevice)
			d.KeyID = newKey.ID
			d.Fingerprint = custos.DeviceFingerprint(d.MachineUser, d.Hostname, d.Agent, newKey.ID, d.IP)
			if err := insertDevice(ctx, tx, d); err != nil {
				return err
			}
		}
		return appendEvents(ctx, tx, ev)
	})
}

// RevokeKey sets RevokedAt=now on key id if it is not revoked yet, with ev.
// Returns ENOTFOUND, or ECONFLICT if already revoked.
func (s *Store) RevokeKey(ctx context.Context, orgID, id string, now time.Time, ev *custos.AuditEvent) error {
	return s.tx(ctx, "revoke key", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL`,
			micros(now), orgID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return keyStateError(ctx, tx, orgID, id, "revoked")
		}
		return appendEvents(ctx, tx, ev)
	})
}

// keyStateError explains why a conditional update of key id changed nothing:
// ENOTFOUND if it does not exist, ECONFLICT with its state otherwise.
func keyStateError(ctx context.Context, tx pgx.Tx, orgID, id, verb string) error {
	var revoked, rotated *int64
	err := tx.QueryRow(ctx, `SELECT revoked_at, rotated_at FROM api_keys WHERE org_id = $1 AND id = $2`, orgID, id).Scan(&revoked, &rotated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return custos.Errorf(custos.ENOTFOUND, "api key %q not found", id)
	case err != nil:
		return err
	case revoked != nil:
		return custos.Errorf(custos.ECONFLICT, "api key %q is already revoked", id)
	case rotated != nil:
		return custos.Errorf(custos.ECONFLICT, "api key %q was already rotated and cannot be %s", id, verb)
	}
	return custos.Errorf(custos.ECONFLICT, "api key %q changed meanwhile; try again", id)
}
