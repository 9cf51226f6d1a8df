package sqlite

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
)

// Audit listing limits.
const (
	DefaultAuditLimit = 1000  // events per listing when AuditFilter.Limit is 0
	MaxAuditLimit     = 10000 // larger limits are capped to this
)

const auditCols = `org_id, seq, time, action, outcome, reason, key_id, user, device_id, agent, hostname,
	machine_user, ip, source, mode, model, project, secret, version, target, prev_hash, hash`

// AppendAudit appends evs (sealing each after the last event of its org) and
// inserts msgs, in one transaction. It returns once they are durable.
func (s *Store) AppendAudit(ctx context.Context, evs []*custos.AuditEvent, msgs []*custos.OutboxMessage) error {
	if len(evs) == 0 && len(msgs) == 0 {
		return nil
	}
	return s.write(ctx, func(w *wtx) error {
		for _, ev := range evs {
			if err := w.appendEvent(ev); err != nil {
				return err
			}
		}
		for _, m := range msgs {
			if m.ID == "" {
				m.ID = custos.NewID(custos.PrefixOutbox)
			}
			if _, err := w.exec(`INSERT INTO outbox (id, org_id, url, payload, attempts, created_at, next_attempt_at,
				delivered_at, failed_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				m.ID, m.OrgID, m.URL, blob(m.Payload), m.Attempts, micros(m.CreatedAt), micros(m.NextAttemptAt),
				nullMicros(m.DeliveredAt), nullMicros(m.FailedAt), m.LastError); err != nil {
				return conflictOr(err, "insert outbox message", "outbox message %q already exists", m.ID)
			}
		}
		return nil
	})
}

// ListAudit returns the org's events in seq order, narrowed by f: at or
// after f.Since, with a seq greater than f.AfterSeq, at most f.Limit
// (default DefaultAuditLimit, at most MaxAuditLimit).
func (s *Store) ListAudit(ctx context.Context, orgID string, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultAuditLimit
	case limit > MaxAuditLimit:
		limit = MaxAuditLimit
	}
	query := `SELECT ` + auditCols + ` FROM audit_events WHERE org_id = ? AND seq > ? ORDER BY seq LIMIT ?`
	args := []any{orgID, f.AfterSeq, limit}
	if !f.Since.IsZero() {
		query = `SELECT ` + auditCols + ` FROM audit_events WHERE org_id = ? AND seq > ? AND time >= ? ORDER BY seq LIMIT ?`
		args = []any{orgID, f.AfterSeq, micros(f.Since), limit}
	}
	rows, err := s.rquery(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := make([]*custos.AuditEvent, 0, min(limit, 64))
	for rows.Next() {
		var e custos.AuditEvent
		if err := rows.Scan(&e.OrgID, &e.Seq, column.Time(&e.Time), &e.Action, &e.Outcome, &e.Reason, &e.KeyID,
			&e.User, &e.DeviceID, &e.Agent, &e.Hostname, &e.MachineUser, &e.IP, &e.Source, &e.Mode, &e.Model,
			&e.Project, &e.Secret, &e.Version, &e.Target, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

const outboxCols = `id, org_id, url, payload, attempts, created_at, next_attempt_at, delivered_at, failed_at, last_error`

// ClaimOutbox returns up to limit undelivered, not given-up messages due at
// now, oldest first, after pushing their NextAttemptAt to now+lease and
// incrementing Attempts in the same statement.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*custos.OutboxMessage, error) {
	out := []*custos.OutboxMessage{}
	if limit <= 0 {
		return out, nil
	}
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.query(`UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1
			WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?
				ORDER BY next_attempt_at, created_at, id LIMIT ?)
			RETURNING `+outboxCols, micros(now.Add(lease)), micros(now), limit)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		defer rows.Close()
		out = out[:0]
		for rows.Next() {
			var m custos.OutboxMessage
			if err := rows.Scan(&m.ID, &m.OrgID, &m.URL, &m.Payload, &m.Attempts, column.Time(&m.CreatedAt),
				column.Time(&m.NextAttemptAt), column.NullTime(&m.DeliveredAt), column.NullTime(&m.FailedAt), &m.LastError); err != nil {
				return fmt.Errorf("claim outbox: %w", err)
			}
			out = append(out, &m)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// CompleteOutbox marks message id delivered at now. Completing a delivered
// message changes nothing. Returns ENOTFOUND.
func (s *Store) CompleteOutbox(ctx context.Context, id string, now time.Time) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL`, micros(now), id)
		if err != nil {
			return fmt.Errorf("complete outbox message: %w", err)
		}
		return outboxExists(w, n, id)
	})
}

// RetryOutbox records lastErr and schedules message id at next; a nil next
// gives up on it (FailedAt=now). A delivered message is left alone.
// Returns ENOTFOUND.
func (s *Store) RetryOutbox(ctx context.Context, id string, now time.Time, next *time.Time, lastErr string) error {
	return s.write(ctx, func(w *wtx) error {
		var n int64
		var err error
		if next == nil {
			n, err = w.execN(`UPDATE outbox SET failed_at = ?, last_error = ? WHERE id = ? AND delivered_at IS NULL`,
				micros(now), lastErr, id)
		} else {
			n, err = w.execN(`UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ? AND delivered_at IS NULL`,
				micros(*next), lastErr, id)
		}
		if err != nil {
			return fmt.Errorf("retry outbox message: %w", err)
		}
		return outboxExists(w, n, id)
	})
}

// outboxExists returns ENOTFOUND if an update of message id changed no row
// because the message does not exist.
func outboxExists(w *wtx, changed int64, id string) error {
	if changed > 0 {
		return nil
	}
	ok, err := w.exists(`SELECT 1 FROM outbox WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("check outbox message: %w", err)
	} else if !ok {
		return custos.Errorf(custos.ENOTFOUND, "outbox message %q not found", id)
	}
	return nil
}
