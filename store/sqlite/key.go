package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
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
func insertKey(w *wtx, k *custos.APIKey) error {
	if _, err := w.exec(`INSERT INTO api_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.OrgID, k.Name, string(k.Role), k.Hash, micros(k.CreatedAt), nullMicros(k.ExpiresAt),
		nullMicros(k.RevokedAt), nullMicros(k.RotatedAt), nullMicros(k.GraceUntil), k.ReplacedBy); err != nil {
		return conflictOr(err, "insert key", "api key %q already exists", k.ID)
	}
	return nil
}

// CreateKey inserts k with ev. Returns ECONFLICT if its id or hash exists.
func (s *Store) CreateKey(ctx context.Context, k *custos.APIKey, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if err := insertKey(w, k); err != nil {
			return err
		}
		return w.appendEvent(ev)
	})
}

// FindKeyByHash returns the key whose token hashes to hash. Returns ENOTFOUND.
func (s *Store) FindKeyByHash(ctx context.Context, hash string) (*custos.APIKey, error) {
	k, err := scanKey(s.rqueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = ?`, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "api key not found")
	case err != nil:
		return nil, fmt.Errorf("find key by hash: %w", err)
	}
	return k, nil
}

// FindKey returns key id of org. Returns ENOTFOUND.
func (s *Store) FindKey(ctx context.Context, orgID, id string) (*custos.APIKey, error) {
	k, err := scanKey(s.rqueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE org_id = ? AND id = ?`, orgID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "api key %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find key: %w", err)
	}
	return k, nil
}

// ListKeys returns the org's keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, orgID string) ([]*custos.APIKey, error) {
	rows, err := s.rquery(ctx, `SELECT `+keyCols+` FROM api_keys WHERE org_id = ? ORDER BY created_at, rowid`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	keys := []*custos.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// RotateKey atomically marks key oldID rotated, inserts newKey and copies
// every device of oldID to newKey with a recomputed fingerprint, with ev.
// Returns ENOTFOUND, or ECONFLICT if oldID is revoked or already rotated.
func (s *Store) RotateKey(ctx context.Context, orgID, oldID string, newKey *custos.APIKey, now, graceUntil time.Time, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE api_keys SET rotated_at = ?, grace_until = ?, replaced_by = ?
			WHERE org_id = ? AND id = ? AND revoked_at IS NULL AND rotated_at IS NULL`,
			micros(now), micros(graceUntil), newKey.ID, orgID, oldID)
		if err != nil {
			return fmt.Errorf("mark key rotated: %w", err)
		}
		if n == 0 {
			return keyStateError(w, orgID, oldID, "rotated")
		}
		if err := insertKey(w, newKey); err != nil {
			return err
		}

		rows, err := w.query(`SELECT `+deviceCols+` FROM devices WHERE org_id = ? AND key_id = ? ORDER BY created_at, rowid`, orgID, oldID)
		if err != nil {
			return fmt.Errorf("list devices of key: %w", err)
		}
		var devs []*custos.Device
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				_ = rows.Close()
				return fmt.Errorf("list devices of key: %w", err)
			}
			devs = append(devs, d)
		}
		if err := rows.Err(); err != nil {
			_ = rows.Close()
			return fmt.Errorf("list devices of key: %w", err)
		}
		_ = rows.Close()
		for _, d := range devs {
			d.ID = custos.NewID(custos.PrefixDevice)
			d.KeyID = newKey.ID
			d.Fingerprint = custos.DeviceFingerprint(d.MachineUser, d.Hostname, d.Agent, newKey.ID, d.IP)
			if err := insertDevice(w, d); err != nil {
				return err
			}
		}
		return w.appendEvent(ev)
	})
}

// RevokeKey sets RevokedAt=now on key id if it is not revoked yet, with ev.
// Returns ENOTFOUND, or ECONFLICT if already revoked.
func (s *Store) RevokeKey(ctx context.Context, orgID, id string, now time.Time, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL`,
			micros(now), orgID, id)
		if err != nil {
			return fmt.Errorf("revoke key: %w", err)
		}
		if n == 0 {
			return keyStateError(w, orgID, id, "revoked")
		}
		return w.appendEvent(ev)
	})
}

// keyStateError explains why a conditional update of key id changed nothing:
// ENOTFOUND if it does not exist, ECONFLICT with its state otherwise.
func keyStateError(w *wtx, orgID, id, verb string) error {
	var revoked, rotated sql.NullInt64
	err := w.queryRow(`SELECT revoked_at, rotated_at FROM api_keys WHERE org_id = ? AND id = ?`, orgID, id).Scan(&revoked, &rotated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return custos.Errorf(custos.ENOTFOUND, "api key %q not found", id)
	case err != nil:
		return fmt.Errorf("read key state: %w", err)
	case revoked.Valid:
		return custos.Errorf(custos.ECONFLICT, "api key %q is already revoked", id)
	case rotated.Valid:
		return custos.Errorf(custos.ECONFLICT, "api key %q was already rotated and cannot be %s", id, verb)
	}
	return custos.Errorf(custos.ECONFLICT, "api key %q changed meanwhile; try again", id)
}
