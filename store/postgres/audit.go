package postgres

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

const auditCols = `org_id, seq, time, action, outcome, reason, key_id, "user", device_id, agent, hostname,
	machine_user, ip, source, mode, model, project, secret, version, target, prev_hash, hash`

// AppendAudit appends evs (sealing each after the last event of its org) and
// inserts msgs, in one transaction. It returns once they are durable.
func (s *Store) AppendAudit(ctx context.Context, evs []*custos.AuditEvent, msgs []*custos.OutboxMessage) error {
	if len(evs) == 0 && len(msgs) == 0 {
		return nil
	}
	r := &appendReq{evs: evs, msgs: msgs, done: make(chan error, 1)}
	select {
	case s.appends <- r:
	case <-ctx.Done():
		return fail("append audit", ctx.Err())
	case <-s.quit:
		return errClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done(): // the batch decides the outcome; the caller stops waiting
		return fail("append audit", ctx.Err())
	}
}

// appendBatch is the most AppendAudit calls one transaction carries.
const appendBatch = 256

// errClosed is returned by calls on a closed store.
var errClosed = errors.New("postgres: store is closed")

// appendReq is one AppendAudit call waiting for the appender.
type appendReq struct {
	evs  []*custos.AuditEvent
	msgs []*custos.OutboxMessage
	done chan error
}

// appender is this process's group commit for audit appends, the hot write
// of every value read: it takes whatever calls are waiting (up to
// appendBatch) and appends them all in one transaction — one lock of each
// org's head row, one commit, one WAL flush — then answers each. Across
// replicas the head row lock still serializes the batches of one org, so
// the chain stays one.
func (s *Store) appender() {
	defer close(s.done)
	for {
		var first *appendReq
		select {
		case first = <-s.appends:
		case <-s.quit:
			for {
				select {
				case r := <-s.appends:
					r.done <- errClosed
				default:
					return
				}
			}
		}
		batch := []*appendReq{first}
	drain:
		for len(batch) < appendBatch {
			select {
			case r := <-s.appends:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commitAppends(batch)
	}
}

// commitAppends appends batch in one transaction. If that fails and the
// batch has several calls, each is tried alone, so one bad call fails only
// itself.
func (s *Store) commitAppends(batch []*appendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.tx(ctx, "append audit", func(tx pgx.Tx) error { return appendReqs(ctx, tx, batch) })
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch {
		r.done <- s.tx(ctx, "append audit", func(tx pgx.Tx) error { return appendReqs(ctx, tx, []*appendReq{r}) })
	}
}

// appendReqs writes the events and outbox messages of reqs inside tx.
func appendReqs(ctx context.Context, tx pgx.Tx, reqs []*appendReq) error {
	var evs []*custos.AuditEvent
	var msgs []*custos.OutboxMessage
	for _, r := range reqs {
		evs = append(evs, r.evs...)
		msgs = append(msgs, r.msgs...)
	}
	if err := appendEvents(ctx, tx, evs...); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, m := range msgs {
		if m.ID == "" {
			m.ID = custos.NewID(custos.PrefixOutbox)
		}
		b.Queue(`INSERT INTO outbox (id, org_id, url, payload, attempts, created_at, next_attempt_at,
			delivered_at, failed_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			m.ID, m.OrgID, m.URL, blob(m.Payload), m.Attempts, micros(m.CreatedAt), micros(m.NextAttemptAt),
			nullMicros(m.DeliveredAt), nullMicros(m.FailedAt), m.LastError)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return conflictOr(err, "an outbox message already exists")
	}
	return nil
}

// head is the last event of an org's chain.
type head struct {
	seq  int64
	hash string
}

// appendEvents seals each non-nil event of evs after the last event of its
// org and inserts it, inside tx. It locks the head row of every org
// involved, in org id order, and holds the locks until tx ends: that
// serializes appenders of one org across every process (see the package
// documentation). Each event's Time is first normalised to UTC with
// microsecond precision, what the database keeps.
func appendEvents(ctx context.Context, tx pgx.Tx, evs ...*custos.AuditEvent) error {
	var orgs []string
	for _, ev := range evs {
		if ev != nil && !slices.Contains(orgs, ev.OrgID) {
			orgs = append(orgs, ev.OrgID)
		}
	}
	if len(orgs) == 0 {
		return nil
	}
	slices.Sort(orgs)
	heads := make(map[string]head, len(orgs))
	for _, org := range orgs {
		h, err := lockHead(ctx, tx, org)
		if err != nil {
			return err
		}
		heads[org] = h
	}
	b := &pgx.Batch{}
	for _, ev := range evs {
		if ev == nil {
			continue
		}
		ev.Time = time.UnixMicro(ev.Time.UnixMicro()).UTC()
		h := heads[ev.OrgID]
		ev.Seal(h.seq+1, h.hash)
		heads[ev.OrgID] = head{ev.Seq, ev.Hash}
		b.Queue(`INSERT INTO audit_events (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
			$12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
			ev.OrgID, ev.Seq, ev.Time.UnixMicro(), ev.Action, ev.Outcome, ev.Reason, ev.KeyID, ev.User,
			ev.DeviceID, ev.Agent, ev.Hostname, ev.MachineUser, ev.IP, ev.Source, ev.Mode, ev.Model,
			ev.Project, ev.Secret, ev.Version, ev.Target, ev.PrevHash, ev.Hash)
	}
	for _, org := range orgs {
		h := heads[org]
		b.Queue(`UPDATE audit_heads SET seq = $2, hash = $3 WHERE org_id = $1`, org, h.seq, h.hash)
	}
	return tx.SendBatch(ctx, b).Close()
}

// lockHead returns the head of org's chain, creating the genesis head if
// the org has none, and locks its row until tx ends.
func lockHead(ctx context.Context, tx pgx.Tx, org string) (head, error) {
	const q = `SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE`
	var h head
	err := tx.QueryRow(ctx, q, org).Scan(&h.seq, &h.hash)
	if errors.Is(err, pgx.ErrNoRows) {
		// The org's first event. A concurrent first appender makes this
		// insert wait for its transaction; then the select finds its head.
		if _, err := tx.Exec(ctx, `INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (org_id) DO NOTHING`,
			org, custos.GenesisHash); err != nil {
			return head{}, err
		}
		err = tx.QueryRow(ctx, q, org).Scan(&h.seq, &h.hash)
	}
	return h, err
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
	query := `SELECT ` + auditCols + ` FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`
	args := []any{orgID, f.AfterSeq, limit}
	if !f.Since.IsZero() {
		query = `SELECT ` + auditCols + ` FROM audit_events WHERE org_id = $1 AND seq > $2 AND time >= $4 ORDER BY seq LIMIT $3`
		args = append(args, micros(f.Since))
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fail("list audit", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.AuditEvent, error) {
		var e custos.AuditEvent
		return &e, r.Scan(&e.OrgID, &e.Seq, column.Time(&e.Time), &e.Action, &e.Outcome, &e.Reason, &e.KeyID,
			&e.User, &e.DeviceID, &e.Agent, &e.Hostname, &e.MachineUser, &e.IP, &e.Source, &e.Mode, &e.Model,
			&e.Project, &e.Secret, &e.Version, &e.Target, &e.PrevHash, &e.Hash)
	})
	if err != nil {
		return nil, fail("list audit", err)
	}
	if out == nil {
		out = []*custos.AuditEvent{}
	}
	return out, nil
}

const outboxCols = `id, org_id, url, payload, attempts, created_at, next_attempt_at, delivered_at, failed_at, last_error`

// ClaimOutbox returns up to limit undelivered, not given-up messages due at
// now, oldest first, after pushing their NextAttemptAt to now+lease and
// incrementing Attempts in the same statement. The statement locks the rows
// it claims and skips rows other claimers hold, so concurrent workers in
// any number of processes never claim the same message within its lease.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*custos.OutboxMessage, error) {
	out := []*custos.OutboxMessage{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1
		WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2
			ORDER BY next_attempt_at, created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+outboxCols, micros(now.Add(lease)), micros(now), limit)
	if err != nil {
		return nil, fail("claim outbox", err)
	}
	out, err = pgx.AppendRows(out, rows, func(r pgx.CollectableRow) (*custos.OutboxMessage, error) {
		var m custos.OutboxMessage
		return &m, r.Scan(&m.ID, &m.OrgID, &m.URL, &m.Payload, &m.Attempts, column.Time(&m.CreatedAt),
			column.Time(&m.NextAttemptAt), column.NullTime(&m.DeliveredAt), column.NullTime(&m.FailedAt), &m.LastError)
	})
	if err != nil {
		return nil, fail("claim outbox", err)
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
	return s.updateOutbox(ctx, "complete outbox message", id,
		`UPDATE outbox SET delivered_at = $2 WHERE id = $1 AND delivered_at IS NULL RETURNING 1`, micros(now))
}

// RetryOutbox records lastErr and schedules message id at next; a nil next
// gives up on it (FailedAt=now). A delivered message is left alone.
// Returns ENOTFOUND.
func (s *Store) RetryOutbox(ctx context.Context, id string, now time.Time, next *time.Time, lastErr string) error {
	if next == nil {
		return s.updateOutbox(ctx, "retry outbox message", id,
			`UPDATE outbox SET failed_at = $2, last_error = $3 WHERE id = $1 AND delivered_at IS NULL RETURNING 1`, micros(now), lastErr)
	}
	return s.updateOutbox(ctx, "retry outbox message", id,
		`UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1 AND delivered_at IS NULL RETURNING 1`, micros(*next), lastErr)
}

// updateOutbox runs update (whose $1 is id, and which returns a row per
// changed message) and reports ENOTFOUND if message id does not exist, all
// in one statement.
func (s *Store) updateOutbox(ctx context.Context, what, id, update string, args ...any) error {
	var ok bool
	err := s.pool.QueryRow(ctx, `WITH u AS (`+update+`)
		SELECT EXISTS (SELECT 1 FROM u) OR EXISTS (SELECT 1 FROM outbox WHERE id = $1)`, append([]any{id}, args...)...).Scan(&ok)
	if err != nil {
		return fail(what, err)
	}
	if !ok {
		return custos.Errorf(custos.ENOTFOUND, "outbox message %q not found", id)
	}
	return nil
}
