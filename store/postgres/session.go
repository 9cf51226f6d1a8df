package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

// PutSession replaces the device's sessions with sess, with ev. Returns
// ECONFLICT if its id exists.
func (s *Store) PutSession(ctx context.Context, sess *custos.Session, ev *custos.AuditEvent) error {
	tags, err := column.JSONText(sess.Tags)
	if err != nil {
		return err
	}
	return s.tx(ctx, "put session", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE org_id = $1 AND device_id = $2`, sess.OrgID, sess.DeviceID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, org_id, device_id, tags, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, sess.ID, sess.OrgID, sess.DeviceID, tags,
			micros(sess.CreatedAt), micros(sess.ExpiresAt)); err != nil {
			return conflictOr(err, "session %q already exists", sess.ID)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// FindSession returns the device's session live at now (the newest, should
// there be several). Returns ENOTFOUND.
func (s *Store) FindSession(ctx context.Context, orgID, deviceID string, now time.Time) (*custos.Session, error) {
	var sess custos.Session
	err := s.pool.QueryRow(ctx, `SELECT id, org_id, device_id, tags, created_at, expires_at FROM sessions
		WHERE org_id = $1 AND device_id = $2 AND expires_at > $3 ORDER BY created_at DESC, ord DESC LIMIT 1`,
		orgID, deviceID, micros(now)).
		Scan(&sess.ID, &sess.OrgID, &sess.DeviceID, column.JSON(&sess.Tags), column.Time(&sess.CreatedAt), column.Time(&sess.ExpiresAt))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "no live session for device %q", deviceID)
	case err != nil:
		return nil, fail("find session", err)
	}
	return &sess, nil
}

// DeleteSessions deletes the device's sessions, with ev.
func (s *Store) DeleteSessions(ctx context.Context, orgID, deviceID string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete sessions", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE org_id = $1 AND device_id = $2`, orgID, deviceID); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// CreateConfirmation inserts c with ev. Returns ECONFLICT if its id exists.
func (s *Store) CreateConfirmation(ctx context.Context, c *custos.Confirmation, ev *custos.AuditEvent) error {
	return s.tx(ctx, "create confirmation", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO confirmations (id, org_id, device_id, project, name, created_at, expires_at, used_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, c.ID, c.OrgID, c.DeviceID, c.Project, c.Name,
			micros(c.CreatedAt), micros(c.ExpiresAt), nullMicros(c.UsedAt)); err != nil {
			return conflictOr(err, "confirmation %q already exists", c.ID)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ConsumeConfirmation marks the oldest unused, unexpired confirmation of the
// device for project/name used at now, in one statement: the subquery locks
// the row it picks and skips rows other callers hold, and the update checks
// used_at again, so of many concurrent callers in any number of processes
// exactly one consumes each confirmation. Returns ENOTFOUND if there is none.
func (s *Store) ConsumeConfirmation(ctx context.Context, orgID, deviceID, project, name string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE confirmations SET used_at = $1
		WHERE id = (SELECT id FROM confirmations WHERE org_id = $2 AND device_id = $3 AND project = $4 AND name = $5
			AND used_at IS NULL AND expires_at > $1 ORDER BY created_at, ord LIMIT 1 FOR UPDATE SKIP LOCKED)
		AND used_at IS NULL`, micros(now), orgID, deviceID, project, name)
	if err != nil {
		return fail("consume confirmation", err)
	}
	if tag.RowsAffected() == 0 {
		return custos.Errorf(custos.ENOTFOUND, "no unused confirmation for secret %q in project %q", name, project)
	}
	return nil
}
