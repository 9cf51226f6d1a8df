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

// PutSession replaces the device's sessions with sess, with ev. Returns
// ECONFLICT if its id exists.
func (s *Store) PutSession(ctx context.Context, sess *custos.Session, ev *custos.AuditEvent) error {
	tags, err := column.JSONText(sess.Tags)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`DELETE FROM sessions WHERE org_id = ? AND device_id = ?`, sess.OrgID, sess.DeviceID); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		if _, err := w.exec(`INSERT INTO sessions (id, org_id, device_id, tags, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, sess.ID, sess.OrgID, sess.DeviceID, tags,
			micros(sess.CreatedAt), micros(sess.ExpiresAt)); err != nil {
			return conflictOr(err, "insert session", "session %q already exists", sess.ID)
		}
		return w.appendEvent(ev)
	})
}

// FindSession returns the device's session live at now (the newest, should
// there be several). Returns ENOTFOUND.
func (s *Store) FindSession(ctx context.Context, orgID, deviceID string, now time.Time) (*custos.Session, error) {
	var sess custos.Session
	err := s.rqueryRow(ctx, `SELECT id, org_id, device_id, tags, created_at, expires_at FROM sessions
		WHERE org_id = ? AND device_id = ? AND expires_at > ? ORDER BY created_at DESC, rowid DESC LIMIT 1`,
		orgID, deviceID, micros(now)).
		Scan(&sess.ID, &sess.OrgID, &sess.DeviceID, column.JSON(&sess.Tags), column.Time(&sess.CreatedAt), column.Time(&sess.ExpiresAt))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "no live session for device %q", deviceID)
	case err != nil:
		return nil, fmt.Errorf("find session: %w", err)
	}
	return &sess, nil
}

// DeleteSessions deletes the device's sessions, with ev.
func (s *Store) DeleteSessions(ctx context.Context, orgID, deviceID string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`DELETE FROM sessions WHERE org_id = ? AND device_id = ?`, orgID, deviceID); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		return w.appendEvent(ev)
	})
}

// CreateConfirmation inserts c with ev. Returns ECONFLICT if its id exists.
func (s *Store) CreateConfirmation(ctx context.Context, c *custos.Confirmation, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO confirmations (id, org_id, device_id, project, name, created_at, expires_at, used_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.OrgID, c.DeviceID, c.Project, c.Name,
			micros(c.CreatedAt), micros(c.ExpiresAt), nullMicros(c.UsedAt)); err != nil {
			return conflictOr(err, "insert confirmation", "confirmation %q already exists", c.ID)
		}
		return w.appendEvent(ev)
	})
}

// ConsumeConfirmation atomically marks the oldest unused, unexpired
// confirmation of the device for project/name used at now, in one
// statement. Returns ENOTFOUND if there is none.
func (s *Store) ConsumeConfirmation(ctx context.Context, orgID, deviceID, project, name string, now time.Time) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE confirmations SET used_at = ?
			WHERE id = (SELECT id FROM confirmations WHERE org_id = ? AND device_id = ? AND project = ? AND name = ?
				AND used_at IS NULL AND expires_at > ? ORDER BY created_at, rowid LIMIT 1)
			AND used_at IS NULL`, micros(now), orgID, deviceID, project, name, micros(now))
		if err != nil {
			return fmt.Errorf("consume confirmation: %w", err)
		}
		if n == 0 {
			return custos.Errorf(custos.ENOTFOUND, "no unused confirmation for secret %q in project %q", name, project)
		}
		return nil
	})
}
