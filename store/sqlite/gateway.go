package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/custos-dev/custos/store/internal/meter"
)

const providerCols = `id, org_id, name, kind, base_url, models, priority, ciphertext, wrapped_dek, keeper_id, created_at, created_by`

// CreateProvider inserts p with ev. Returns ECONFLICT if the org has a
// provider of that name (or its id exists), EINVALID if p.HasKey disagrees
// with its sealed key.
func (s *Store) CreateProvider(ctx context.Context, p *custos.ModelProvider, ev *custos.AuditEvent) error {
	ctb, dekb, keeper, err := column.SealedKey(p)
	if err != nil {
		return err
	}
	var ct, dek any // NULL without a key
	if ctb != nil {
		ct, dek = ctb, dekb
	}
	models, err := column.JSONText(p.Models)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO model_providers (`+providerCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.OrgID, p.Name, p.Kind, p.BaseURL, models, p.Priority, ct, dek, keeper,
			micros(p.CreatedAt), p.CreatedBy); err != nil {
			return conflictOr(err, "insert provider", "provider %q already exists", p.Name)
		}
		return w.appendEvent(ev)
	})
}

// ListProviders returns the org's providers with their sealed keys, ordered
// by priority, then creation time.
func (s *Store) ListProviders(ctx context.Context, orgID string) ([]*custos.ModelProvider, error) {
	rows, err := s.rquery(ctx, `SELECT `+providerCols+` FROM model_providers WHERE org_id = ?
		ORDER BY priority, created_at, rowid`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	defer rows.Close()
	out := []*custos.ModelProvider{}
	for rows.Next() {
		var p custos.ModelProvider
		if err := rows.Scan(&p.ID, &p.OrgID, &p.Name, &p.Kind, &p.BaseURL, column.JSON(&p.Models), &p.Priority,
			&p.Ciphertext, &p.WrappedDEK, &p.KeeperID, column.Time(&p.CreatedAt), &p.CreatedBy); err != nil {
			return nil, fmt.Errorf("list providers: %w", err)
		}
		p.HasKey = p.Ciphertext != nil
		out = append(out, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	return out, nil
}

// DeleteProvider deletes provider name of org, with ev. Returns ENOTFOUND.
func (s *Store) DeleteProvider(ctx context.Context, orgID, name string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`DELETE FROM model_providers WHERE org_id = ? AND name = ?`, orgID, name)
		if err != nil {
			return fmt.Errorf("delete provider: %w", err)
		}
		if n == 0 {
			return custos.Errorf(custos.ENOTFOUND, "provider %q not found", name)
		}
		return w.appendEvent(ev)
	})
}

// PutPrivacyRule creates or replaces the rule of (OrgID, Scope, Target),
// with ev.
func (s *Store) PutPrivacyRule(ctx context.Context, r *custos.PrivacyRule, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO privacy_rules (org_id, scope, target, mode, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, scope, target) DO UPDATE SET mode = excluded.mode,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			r.OrgID, r.Scope, r.Target, r.Mode, micros(r.UpdatedAt), r.UpdatedBy); err != nil {
			return fmt.Errorf("put privacy rule: %w", err)
		}
		return w.appendEvent(ev)
	})
}

// DeletePrivacyRule deletes the rule of (orgID, scope, target), with ev.
// Returns ENOTFOUND.
func (s *Store) DeletePrivacyRule(ctx context.Context, orgID, scope, target string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`DELETE FROM privacy_rules WHERE org_id = ? AND scope = ? AND target = ?`, orgID, scope, target)
		if err != nil {
			return fmt.Errorf("delete privacy rule: %w", err)
		}
		if n == 0 {
			return custos.Errorf(custos.ENOTFOUND, "no %s privacy rule for %q", scope, target)
		}
		return w.appendEvent(ev)
	})
}

// ListPrivacyRules returns the org's rules: the org's first, then the
// projects', then the keys', each ordered by target.
func (s *Store) ListPrivacyRules(ctx context.Context, orgID string) ([]*custos.PrivacyRule, error) {
	rows, err := s.rquery(ctx, `SELECT org_id, scope, target, mode, updated_at, updated_by FROM privacy_rules
		WHERE org_id = ? ORDER BY CASE scope WHEN 'org' THEN 0 WHEN 'project' THEN 1 WHEN 'key' THEN 2 ELSE 3 END, scope, target`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list privacy rules: %w", err)
	}
	defer rows.Close()
	out := []*custos.PrivacyRule{}
	for rows.Next() {
		var r custos.PrivacyRule
		if err := rows.Scan(&r.OrgID, &r.Scope, &r.Target, &r.Mode, column.Time(&r.UpdatedAt), &r.UpdatedBy); err != nil {
			return nil, fmt.Errorf("list privacy rules: %w", err)
		}
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list privacy rules: %w", err)
	}
	return out, nil
}

// PutBudget creates or replaces the budget of (b.OrgID, b.KeyID, b.Period),
// with ev. Its counters stay. Returns EINVALID for an unknown period or a
// negative limit.
func (s *Store) PutBudget(ctx context.Context, b *custos.Budget, ev *custos.AuditEvent) error {
	if err := meter.Check(b); err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO budgets (org_id, key_id, period, token_limit, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, key_id, period) DO UPDATE SET token_limit = excluded.token_limit,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			b.OrgID, b.KeyID, b.Period, b.Limit, micros(b.UpdatedAt), b.UpdatedBy); err != nil {
			return fmt.Errorf("put budget: %w", err)
		}
		return w.appendEvent(ev)
	})
}

// DeleteBudget deletes the budget of (orgID, keyID, period), with ev. Its
// counters stay, so a budget set again within the window counts what was
// spent. Returns ENOTFOUND.
func (s *Store) DeleteBudget(ctx context.Context, orgID, keyID, period string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`DELETE FROM budgets WHERE org_id = ? AND key_id = ? AND period = ?`, orgID, keyID, period)
		if err != nil {
			return fmt.Errorf("delete budget: %w", err)
		}
		if n == 0 {
			return meter.NotFound(keyID, period)
		}
		return w.appendEvent(ev)
	})
}

// ListBudgets returns the org's budgets, the org's first, with the counters
// of the windows containing now.
func (s *Store) ListBudgets(ctx context.Context, orgID string, now time.Time) ([]*custos.Budget, error) {
	rows, err := s.rquery(ctx, `SELECT b.org_id, b.key_id, b.period, b.token_limit, b.updated_at, b.updated_by,
			coalesce(c.spent, 0), coalesce(c.reserved, 0)
		FROM budgets b LEFT JOIN budget_counters c ON c.org_id = b.org_id AND c.key_id = b.key_id
			AND c.period = b.period AND c.window_start = CASE b.period WHEN 'month' THEN ? ELSE ? END
		WHERE b.org_id = ? ORDER BY b.key_id, b.period`,
		micros(custos.WindowStart(custos.PeriodMonth, now)), micros(custos.WindowStart(custos.PeriodDay, now)), orgID)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	defer rows.Close()
	out := []*custos.Budget{}
	for rows.Next() {
		var b custos.Budget
		if err := rows.Scan(&b.OrgID, &b.KeyID, &b.Period, &b.Limit, column.Time(&b.UpdatedAt), &b.UpdatedBy,
			&b.Spent, &b.Reserved); err != nil {
			return nil, fmt.Errorf("list budgets: %w", err)
		}
		out = append(out, &b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// applicableBudgets is the query of the budgets that apply to a key: the
// org's and the key's own, in the order their counters are locked.
const applicableBudgets = `SELECT key_id, period, token_limit FROM budgets
	WHERE org_id = ? AND (key_id = '' OR key_id = ?) ORDER BY key_id, period`

// ReserveBudget reserves tokens against every budget of the org that
// applies to keyID in the windows containing now, all or nothing: in one
// write it makes sure each window's counter exists, then adds tokens to
// its reserved count only if spent+reserved+tokens stays within the limit.
// The one writer of the database (across processes, its write lock) makes
// concurrent reservations take turns. Returns ERATELIMITED naming the first
// budget that cannot take tokens, EINVALID if tokens is not positive; with
// no budget, an empty Reservation and no write.
func (s *Store) ReserveBudget(ctx context.Context, orgID, keyID string, tokens int64, now time.Time) (*custos.Reservation, error) {
	if err := meter.CheckTokens(tokens); err != nil {
		return nil, err
	}
	// Most orgs have no budget: tell without waiting for the writer.
	if ok, err := s.rexists(ctx, applicableBudgets, orgID, keyID); err != nil {
		return nil, fmt.Errorf("reserve budget: %w", err)
	} else if !ok {
		return &custos.Reservation{OrgID: orgID}, nil
	}
	var r *custos.Reservation
	err := s.write(ctx, func(w *wtx) error {
		type budget struct {
			keyID, period string
			limit         int64
		}
		rows, err := w.query(applicableBudgets, orgID, keyID)
		if err != nil {
			return fmt.Errorf("read budgets: %w", err)
		}
		var bs []budget
		for rows.Next() {
			var b budget
			if err := rows.Scan(&b.keyID, &b.period, &b.limit); err != nil {
				_ = rows.Close()
				return fmt.Errorf("read budgets: %w", err)
			}
			bs = append(bs, b)
		}
		if err := rows.Err(); err != nil {
			_ = rows.Close()
			return fmt.Errorf("read budgets: %w", err)
		}
		_ = rows.Close()
		r = &custos.Reservation{OrgID: orgID}
		if len(bs) == 0 {
			return nil
		}
		r.Tokens = tokens
		for _, b := range bs {
			start := custos.WindowStart(b.period, now)
			if _, err := w.exec(`INSERT INTO budget_counters (org_id, key_id, period, window_start) VALUES (?, ?, ?, ?)
				ON CONFLICT DO NOTHING`, orgID, b.keyID, b.period, micros(start)); err != nil {
				return fmt.Errorf("create budget counter: %w", err)
			}
			n, err := w.execN(`UPDATE budget_counters SET reserved = reserved + ?
				WHERE org_id = ? AND key_id = ? AND period = ? AND window_start = ? AND spent + reserved + ? <= ?`,
				tokens, orgID, b.keyID, b.period, micros(start), tokens, b.limit)
			if err != nil {
				return fmt.Errorf("reserve budget: %w", err)
			}
			if n == 0 {
				var used int64
				if err := w.queryRow(`SELECT spent + reserved FROM budget_counters
					WHERE org_id = ? AND key_id = ? AND period = ? AND window_start = ?`,
					orgID, b.keyID, b.period, micros(start)).Scan(&used); err != nil {
					return fmt.Errorf("read budget counter: %w", err)
				}
				return meter.Exhausted(b.keyID, b.period, b.limit, used, tokens, start)
			}
			r.Windows = append(r.Windows, custos.BudgetWindow{KeyID: b.keyID, Period: b.period, Start: start})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// SettleBudget releases r's reserved tokens (never below zero) and adds
// used to the spent counter of each of r's windows, in one write. A nil or
// empty reservation settles nothing. Returns EINVALID if used is negative.
func (s *Store) SettleBudget(ctx context.Context, r *custos.Reservation, used int64) error {
	if r == nil || len(r.Windows) == 0 {
		return nil
	}
	if used < 0 {
		return custos.Errorf(custos.EINVALID, "invalid token count %d: used tokens cannot be negative", used)
	}
	return s.write(ctx, func(w *wtx) error {
		for _, win := range r.Windows {
			if _, err := w.exec(`INSERT INTO budget_counters (org_id, key_id, period, window_start, spent, reserved)
				VALUES (?, ?, ?, ?, ?, 0)
				ON CONFLICT (org_id, key_id, period, window_start) DO UPDATE
				SET reserved = max(reserved - ?, 0), spent = spent + excluded.spent`,
				r.OrgID, win.KeyID, win.Period, micros(win.Start), used, r.Tokens); err != nil {
				return fmt.Errorf("settle budget: %w", err)
			}
		}
		return nil
	})
}

const usageCols = `id, org_id, key_id, provider, model, route, tokens_in, tokens_out, latency_ms, overhead_ms,
	status, redactions, known_hits, stream, mode, time`

// usageChunk is the most records one INSERT statement writes: a statement
// per record spends most of its time binding and stepping a statement
// rather than in the B-trees (17 parameters a row, far under SQLite's
// 32,766).
const usageChunk = 16

// insertUsageSQL[n] inserts n records.
var insertUsageSQL = func() (q [usageChunk + 1]string) {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", 17), ", ") + ")"
	for n := 1; n <= usageChunk; n++ {
		q[n] = "INSERT INTO usage_records (" + usageCols + ", day) VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	return q
}()

// AppendUsage inserts recs in one transaction. A record without an ID gets
// one. Returns ECONFLICT if an id exists.
func (s *Store) AppendUsage(ctx context.Context, recs []*custos.UsageRecord) error {
	if len(recs) == 0 {
		return nil
	}
	for _, u := range recs {
		if u.ID == "" {
			u.ID = custos.NewTimeID(custos.PrefixUsage, u.Time)
		}
	}
	return s.write(ctx, func(w *wtx) error {
		args := make([]any, 0, 17*min(len(recs), usageChunk))
		for rest := recs; len(rest) > 0; {
			chunk := rest[:min(len(rest), usageChunk)]
			rest = rest[len(chunk):]
			args = args[:0]
			for _, u := range chunk {
				args = append(args, u.ID, u.OrgID, u.KeyID, u.Provider, u.Model, u.Route, u.TokensIn, u.TokensOut, u.LatencyMS,
					u.OverheadMS, u.Status, u.Redactions, u.KnownHits, u.Stream, u.Mode, micros(u.Time), meter.Day(u.Time))
			}
			if _, err := w.exec(insertUsageSQL[len(chunk)], args...); err != nil {
				return conflictOr(err, "insert usage records", "a usage record of %s…%s already exists", chunk[0].ID, chunk[len(chunk)-1].ID)
			}
		}
		return nil
	})
}

// ListUsage returns the org's records in f, newest first: at or after
// f.Since, before f.Until, of f.KeyID if set, at most f.Limit (default
// 1000, at most 10000).
func (s *Store) ListUsage(ctx context.Context, orgID string, f custos.UsageFilter) ([]*custos.UsageRecord, error) {
	since, until := meter.Bounds(f)
	limit := meter.Limit(f)
	rows, err := s.rquery(ctx, `SELECT `+usageCols+` FROM usage_records
		WHERE org_id = ? AND time >= ? AND time < ? AND (? = '' OR key_id = ?)
		ORDER BY time DESC, id DESC LIMIT ?`, orgID, since, until, f.KeyID, f.KeyID, limit)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	out := make([]*custos.UsageRecord, 0, min(limit, 64))
	for rows.Next() {
		var u custos.UsageRecord
		if err := rows.Scan(&u.ID, &u.OrgID, &u.KeyID, &u.Provider, &u.Model, &u.Route, &u.TokensIn, &u.TokensOut,
			&u.LatencyMS, &u.OverheadMS, &u.Status, &u.Redactions, &u.KnownHits, &u.Stream, &u.Mode,
			column.Time(&u.Time)); err != nil {
			return nil, fmt.Errorf("list usage: %w", err)
		}
		out = append(out, &u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	return out, nil
}

// SummarizeUsage groups the org's records in f (as ListUsage selects them,
// without a limit) by one of the custos.UsageBy groupings: the largest
// token total first, or for days the newest first. Returns EINVALID for
// another grouping.
func (s *Store) SummarizeUsage(ctx context.Context, orgID string, f custos.UsageFilter, by string) ([]*custos.UsageSummary, error) {
	col, err := meter.GroupColumn(by)
	if err != nil {
		return nil, err
	}
	order := `sum(tokens_in) + sum(tokens_out) DESC, ` + col
	if by == custos.UsageByDay {
		order = col + ` DESC`
	}
	since, until := meter.Bounds(f)
	rows, err := s.rquery(ctx, `SELECT `+col+`, count(*), sum(status >= 400), sum(tokens_in), sum(tokens_out),
			sum(redactions), sum(known_hits), avg(latency_ms)
		FROM usage_records WHERE org_id = ? AND time >= ? AND time < ? AND (? = '' OR key_id = ?)
		GROUP BY `+col+` ORDER BY `+order, orgID, since, until, f.KeyID, f.KeyID)
	if err != nil {
		return nil, fmt.Errorf("summarize usage: %w", err)
	}
	defer rows.Close()
	out := []*custos.UsageSummary{}
	for rows.Next() {
		var u custos.UsageSummary
		if err := rows.Scan(&u.Group, &u.Requests, &u.Errors, &u.TokensIn, &u.TokensOut, &u.Redactions, &u.KnownHits,
			&u.AvgLatencyMS); err != nil {
			return nil, fmt.Errorf("summarize usage: %w", err)
		}
		out = append(out, &u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summarize usage: %w", err)
	}
	return out, nil
}

// PurgeUsage deletes every record older than before and returns how many
// it deleted.
func (s *Store) PurgeUsage(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		var err error
		if n, err = w.execN(`DELETE FROM usage_records WHERE time < ?`, micros(before)); err != nil {
			return fmt.Errorf("purge usage: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// rexists reports whether query returns a row, on the reader pool.
func (s *Store) rexists(ctx context.Context, query string, args ...any) (bool, error) {
	rows, err := s.rquery(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	ok := rows.Next()
	return ok, rows.Err()
}
