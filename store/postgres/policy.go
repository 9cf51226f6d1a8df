package postgres

import (
	"context"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

const policyCols = `id, org_id, tag_key, tag_value, rule, models, notify_url, expires_at, created_at, created_by`

// CreatePolicy inserts p with ev. Returns ECONFLICT if its id exists.
func (s *Store) CreatePolicy(ctx context.Context, p *custos.Policy, ev *custos.AuditEvent) error {
	models, err := column.JSONText(p.Models)
	if err != nil {
		return err
	}
	return s.tx(ctx, "create policy", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO policies (`+policyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			p.ID, p.OrgID, p.TagKey, p.TagValue, string(p.Rule), models, p.NotifyURL,
			nullMicros(p.ExpiresAt), micros(p.CreatedAt), p.CreatedBy); err != nil {
			return conflictOr(err, "policy %q already exists", p.ID)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ListPolicies returns the org's policies, oldest first.
func (s *Store) ListPolicies(ctx context.Context, orgID string) ([]*custos.Policy, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+policyCols+` FROM policies WHERE org_id = $1 ORDER BY created_at, ord`, orgID)
	if err != nil {
		return nil, fail("list policies", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Policy, error) {
		var p custos.Policy
		return &p, r.Scan(&p.ID, &p.OrgID, &p.TagKey, &p.TagValue, &p.Rule, column.JSON(&p.Models), &p.NotifyURL,
			column.NullTime(&p.ExpiresAt), column.Time(&p.CreatedAt), &p.CreatedBy)
	})
	if err != nil {
		return nil, fail("list policies", err)
	}
	if out == nil {
		out = []*custos.Policy{}
	}
	return out, nil
}

// DeletePolicy deletes policy id with ev. Returns ENOTFOUND.
func (s *Store) DeletePolicy(ctx context.Context, orgID, id string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete policy", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM policies WHERE org_id = $1 AND id = $2`, orgID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return custos.Errorf(custos.ENOTFOUND, "policy %q not found", id)
		}
		return appendEvents(ctx, tx, ev)
	})
}
