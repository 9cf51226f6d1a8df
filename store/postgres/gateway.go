package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/custos-dev/custos/store/internal/meter"
	"github.com/jackc/pgx/v5"
)

const providerCols = `id, org_id, name, kind, base_url, models, priority, ciphertext, wrapped_dek, keeper_id, created_at, created_by`

// CreateProvider inserts p with ev. Returns ECONFLICT if the org has a
// provider of that name (or its id exists), EINVALID if p.HasKey disagrees
// with its sealed key.
func (s *Store) CreateProvider(ctx context.Context, p *custos.ModelProvider, ev *custos.AuditEvent) error {
	ct, dek, keeper, err := column.SealedKey(p)
	if err != nil {
		return err
	}
	models, err := column.JSONText(p.Models)
	if err != nil {
		return err
	}
	return s.tx(ctx, "create provider", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO model_providers (`+providerCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			p.ID, p.OrgID, p.Name, p.Kind, p.BaseURL, models, p.Priority, ct, dek, keeper,
			micros(p.CreatedAt), p.CreatedBy); err != nil {
			return conflictOr(err, "provider %q already exists", p.Name)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ListProviders returns the org's providers with their sealed keys, ordered
// by priority, then creation time.
func (s *Store) ListProviders(ctx context.Context, orgID string) ([]*custos.ModelProvider, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+providerCols+` FROM model_providers WHERE org_id = $1
		ORDER BY priority, created_at, ord`, orgID)
	if err != nil {
		return nil, fail("list providers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.ModelProvider, error) {
		var p custos.ModelProvider
		if err := r.Scan(&p.ID, &p.OrgID, &p.Name, &p.Kind, &p.BaseURL, column.JSON(&p.Models), &p.Priority,
			&p.Ciphertext, &p.WrappedDEK, &p.KeeperID, column.Time(&p.CreatedAt), &p.CreatedBy); err != nil {
			return nil, err
		}
		p.HasKey = p.Ciphertext != nil
		return &p, nil
	})
	if err != nil {
		return nil, fail("list providers", err)
	}
	if out == nil {
		out = []*custos.ModelProvider{}
	}
	return out, nil
}

// DeleteProvider deletes provider name of org, with ev. Returns ENOTFOUND.
func (s *Store) DeleteProvider(ctx context.Context, orgID, name string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete provider", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM model_providers WHERE org_id = $1 AND name = $2`, orgID, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return custos.Errorf(custos.ENOTFOUND, "provider %q not found", name)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// PutPrivacyRule creates or replaces the rule of (OrgID, Scope, Target),
// with ev.
func (s *Store) PutPrivacyRule(ctx context.Context, r *custos.PrivacyRule, ev *custos.AuditEvent) error {
	return s.tx(ctx, "put privacy rule", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO privacy_rules (org_id, scope, target, mode, updated_at, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (org_id, scope, target) DO UPDATE SET mode = excluded.mode,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			r.OrgID, r.Scope, r.Target, r.Mode, micros(r.UpdatedAt), r.UpdatedBy); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// DeletePrivacyRule deletes the rule of (orgID, scope, target), with ev.
// Returns ENOTFOUND.
func (s *Store) DeletePrivacyRule(ctx context.Context, orgID, scope, target string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete privacy rule", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM privacy_rules WHERE org_id = $1 AND scope = $2 AND target = $3`, orgID, scope, target)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return custos.Errorf(custos.ENOTFOUND, "no %s privacy rule for %q", scope, target)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ListPrivacyRules returns the org's rules: the org's first, then the
// projects', then the keys', each ordered by target.
func (s *Store) ListPrivacyRules(ctx context.Context, orgID string) ([]*custos.PrivacyRule, error) {
	rows, err := s.pool.Query(ctx, `SELECT org_id, scope, target, mode, updated_at, updated_by FROM privacy_rules
		WHERE org_id = $1 ORDER BY CASE scope WHEN 'org' THEN 0 WHEN 'project' THEN 1 WHEN 'key' THEN 2 ELSE 3 END,
			scope COLLATE "C", target COLLATE "C"`, orgID)
	if err != nil {
		return nil, fail("list privacy rules", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.PrivacyRule, error) {
		var p custos.PrivacyRule
		return &p, r.Scan(&p.OrgID, &p.Scope, &p.Target, &p.Mode, column.Time(&p.UpdatedAt), &p.UpdatedBy)
	})
	if err != nil {
		return nil, fail("list privacy rules", err)
	}
	if out == nil {
		out = []*custos.PrivacyRule{}
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
	return s.tx(ctx, "put budget", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO budgets (org_id, key_id, period, token_limit, updated_at, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (org_id, key_id, period) DO UPDATE SET token_limit = excluded.token_limit,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			b.OrgID, b.KeyID, b.Period, b.Limit, micros(b.UpdatedAt), b.UpdatedBy); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// DeleteBudget deletes the budget of (orgID, keyID, period), with ev. Its
// counters stay, so a budget set again within the window counts what was
// spent. Returns ENOTFOUND.
func (s *Store) DeleteBudget(ctx context.Context, orgID, keyID, period string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete budget", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM budgets WHERE org_id = $1 AND key_id = $2 AND period = $3`, orgID, keyID, period)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return meter.NotFound(keyID, period)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ListBudgets returns the org's budgets, the org's first, with the counters
// of the windows containing now.
func (s *Store) ListBudgets(ctx context.Context, orgID string, now time.Time) ([]*custos.Budget, error) {
	rows, err := s.pool.Query(ctx, `SELECT b.org_id, b.key_id, b.period, b.token_limit, b.updated_at, b.updated_by,
			coalesce(c.spent, 0), coalesce(c.reserved, 0)
		FROM budgets b LEFT JOIN budget_counters c ON c.org_id = b.org_id AND c.key_id = b.key_id
			AND c.period = b.period AND c.window_start = CASE b.period WHEN 'month' THEN $2::bigint ELSE $3::bigint END
		WHERE b.org_id = $1 ORDER BY b.key_id COLLATE "C", b.period COLLATE "C"`,
		orgID, micros(custos.WindowStart(custos.PeriodMonth, now)), micros(custos.WindowStart(custos.PeriodDay, now)))
	if err != nil {
		return nil, fail("list budgets", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Budget, error) {
		var b custos.Budget
		return &b, r.Scan(&b.OrgID, &b.KeyID, &b.Period, &b.Limit, column.Time(&b.UpdatedAt), &b.UpdatedBy,
			&b.Spent, &b.Reserved)
	})
	if err != nil {
		return nil, fail("list budgets", err)
	}
	if out == nil {
		out = []*custos.Budget{}
	}
	return out, nil
}

// ReserveBudget reserves tokens against every budget of the org that
// applies to keyID in the windows containing now, all or nothing, in one
// transaction: for each budget, in (key, period) order, it makes sure the
// window's counter exists (INSERT … ON CONFLICT DO NOTHING), then adds
// tokens to its reserved count with an UPDATE conditional on
// spent+reserved+tokens staying within the limit. The UPDATE's row lock
// makes concurrent reservations of any replica take turns on a counter, and
// a waiting one re-checks the condition against the committed row (READ
// COMMITTED), so no limit is ever overshot; the fixed lock order rules out
// deadlocks. Returns ERATELIMITED naming the first budget that cannot take
// tokens, EINVALID if tokens is not positive; with no budget, an empty
// Reservation and no write.
func (s *Store) ReserveBudget(ctx context.Context, orgID, keyID string, tokens int64, now time.Time) (*custos.Reservation, error) {
	if err := meter.CheckTokens(tokens); err != nil {
		return nil, err
	}
	// Most orgs have no budget: tell without a transaction.
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM budgets WHERE org_id = $1 AND (key_id = '' OR key_id = $2))`,
		orgID, keyID).Scan(&exists); err != nil {
		return nil, fail("reserve budget", err)
	} else if !exists {
		return &custos.Reservation{OrgID: orgID}, nil
	}
	var res *custos.Reservation
	err := s.tx(ctx, "reserve budget", func(tx pgx.Tx) error {
		type budget struct {
			keyID, period string
			limit         int64
		}
		rows, err := tx.Query(ctx, `SELECT key_id, period, token_limit FROM budgets
			WHERE org_id = $1 AND (key_id = '' OR key_id = $2) ORDER BY key_id COLLATE "C", period COLLATE "C"`, orgID, keyID)
		if err != nil {
			return err
		}
		bs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (budget, error) {
			var b budget
			return b, r.Scan(&b.keyID, &b.period, &b.limit)
		})
		if err != nil {
			return err
		}
		res = &custos.Reservation{OrgID: orgID}
		if len(bs) == 0 {
			return nil
		}
		res.Tokens = tokens
		for _, b := range bs {
			start := custos.WindowStart(b.period, now)
			if _, err := tx.Exec(ctx, `INSERT INTO budget_counters (org_id, key_id, period, window_start) VALUES ($1, $2, $3, $4)
				ON CONFLICT DO NOTHING`, orgID, b.keyID, b.period, micros(start)); err != nil {
				return err
			}
			var used int64
			err := tx.QueryRow(ctx, `UPDATE budget_counters SET reserved = reserved + $5
				WHERE org_id = $1 AND key_id = $2 AND period = $3 AND window_start = $4 AND spent + reserved + $5 <= $6
				RETURNING spent + reserved`, orgID, b.keyID, b.period, micros(start), tokens, b.limit).Scan(&used)
			if errors.Is(err, pgx.ErrNoRows) {
				if err := tx.QueryRow(ctx, `SELECT spent + reserved FROM budget_counters
					WHERE org_id = $1 AND key_id = $2 AND period = $3 AND window_start = $4`,
					orgID, b.keyID, b.period, micros(start)).Scan(&used); err != nil {
					return err
				}
				return meter.Exhausted(b.keyID, b.period, b.limit, used, tokens, start)
			} else if err != nil {
				return err
			}
			res.Windows = append(res.Windows, custos.BudgetWindow{KeyID: b.keyID, Period: b.period, Start: start})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// SettleBudget releases r's reserved tokens (never below zero) and adds
// used to the spent counter of each of r's windows, in one transaction that
// locks the counters in the order ReserveBudget does. A nil or empty
// reservation settles nothing. Returns EINVALID if used is negative.
func (s *Store) SettleBudget(ctx context.Context, r *custos.Reservation, used int64) error {
	if r == nil || len(r.Windows) == 0 {
		return nil
	}
	if used < 0 {
		return custos.Errorf(custos.EINVALID, "invalid token count %d: used tokens cannot be negative", used)
	}
	wins := sortedWindows(r.Windows)
	return s.tx(ctx, "settle budget", func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, w := range wins {
			b.Queue(`INSERT INTO budget_counters (org_id, key_id, period, window_start, spent, reserved)
				VALUES ($1, $2, $3, $4, $5, 0)
				ON CONFLICT (org_id, key_id, period, window_start) DO UPDATE
				SET reserved = GREATEST(budget_counters.reserved - $6, 0), spent = budget_counters.spent + excluded.spent`,
				r.OrgID, w.KeyID, w.Period, micros(w.Start), used, r.Tokens)
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

// sortedWindows returns a copy of wins in (key, period, start) order, the
// order in which ReserveBudget locks counters.
func sortedWindows(wins []custos.BudgetWindow) []custos.BudgetWindow {
	out := slices.Clone(wins)
	slices.SortFunc(out, func(a, b custos.BudgetWindow) int {
		return cmp.Or(cmp.Compare(a.KeyID, b.KeyID), cmp.Compare(a.Period, b.Period), a.Start.Compare(b.Start))
	})
	return out
}

const usageCols = `id, org_id, key_id, provider, model, route, tokens_in, tokens_out, latency_ms, overhead_ms,
	status, redactions, known_hits, stream, mode, time`

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
	return s.tx(ctx, "append usage", func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, u := range recs {
			b.Queue(`INSERT INTO usage_records (`+usageCols+`, day)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
				u.ID, u.OrgID, u.KeyID, u.Provider, u.Model, u.Route, u.TokensIn, u.TokensOut, u.LatencyMS, u.OverheadMS,
				u.Status, u.Redactions, u.KnownHits, u.Stream, u.Mode, micros(u.Time), meter.Day(u.Time))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return conflictOr(err, "a usage record already exists")
		}
		return nil
	})
}

// ListUsage returns the org's records in f, newest first: at or after
// f.Since, before f.Until, of f.KeyID if set, at most f.Limit (default
// 1000, at most 10000).
func (s *Store) ListUsage(ctx context.Context, orgID string, f custos.UsageFilter) ([]*custos.UsageRecord, error) {
	since, until := meter.Bounds(f)
	rows, err := s.pool.Query(ctx, `SELECT `+usageCols+` FROM usage_records
		WHERE org_id = $1 AND time >= $2 AND time < $3 AND ($4 = '' OR key_id = $4)
		ORDER BY time DESC, id COLLATE "C" DESC LIMIT $5`, orgID, since, until, f.KeyID, meter.Limit(f))
	if err != nil {
		return nil, fail("list usage", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.UsageRecord, error) {
		var u custos.UsageRecord
		return &u, r.Scan(&u.ID, &u.OrgID, &u.KeyID, &u.Provider, &u.Model, &u.Route, &u.TokensIn, &u.TokensOut,
			&u.LatencyMS, &u.OverheadMS, &u.Status, &u.Redactions, &u.KnownHits, &u.Stream, &u.Mode,
			column.Time(&u.Time))
	})
	if err != nil {
		return nil, fail("list usage", err)
	}
	if out == nil {
		out = []*custos.UsageRecord{}
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
	// Ties, and days, in byte order, as SQLite orders text.
	order := `sum(tokens_in) + sum(tokens_out) DESC, ` + col + ` COLLATE "C"`
	if by == custos.UsageByDay {
		order = col + ` COLLATE "C" DESC`
	}
	since, until := meter.Bounds(f)
	rows, err := s.pool.Query(ctx, `SELECT `+col+`, count(*), count(*) FILTER (WHERE status >= 400),
			sum(tokens_in)::bigint, sum(tokens_out)::bigint, sum(redactions)::bigint, sum(known_hits)::bigint, avg(latency_ms)
		FROM usage_records WHERE org_id = $1 AND time >= $2 AND time < $3 AND ($4 = '' OR key_id = $4)
		GROUP BY `+col+` ORDER BY `+order, orgID, since, until, f.KeyID)
	if err != nil {
		return nil, fail("summarize usage", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.UsageSummary, error) {
		var u custos.UsageSummary
		return &u, r.Scan(&u.Group, &u.Requests, &u.Errors, &u.TokensIn, &u.TokensOut, &u.Redactions, &u.KnownHits,
			&u.AvgLatencyMS)
	})
	if err != nil {
		return nil, fail("summarize usage", err)
	}
	if out == nil {
		out = []*custos.UsageSummary{}
	}
	return out, nil
}

// PurgeUsage deletes every record older than before and returns how many
// it deleted.
func (s *Store) PurgeUsage(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM usage_records WHERE time < $1`, micros(before))
	if err != nil {
		return 0, fail("purge usage", err)
	}
	return tag.RowsAffected(), nil
}
