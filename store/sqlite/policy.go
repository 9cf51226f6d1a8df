package sqlite

import (
	"context"
	"fmt"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
)

const policyCols = `id, org_id, tag_key, tag_value, rule, models, notify_url, expires_at, created_at, created_by`

// CreatePolicy inserts p with ev. Returns ECONFLICT if its id exists.
func (s *Store) CreatePolicy(ctx context.Context, p *custos.Policy, ev *custos.AuditEvent) error {
	models, err := column.JSONText(p.Models)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO policies (`+policyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.OrgID, p.TagKey, p.TagValue, string(p.Rule), models, p.NotifyURL,
			nullMicros(p.ExpiresAt), micros(p.CreatedAt), p.CreatedBy); err != nil {
			return conflictOr(err, "insert policy", "policy %q already exists", p.ID)
		}
		return w.appendEvent(ev)
	})
}

// ListPolicies returns the org's policies, oldest first.
func (s *Store) ListPolicies(ctx context.Context, orgID string) ([]*custos.Policy, error) {
	rows, err := s.rquery(ctx, `SELECT `+policyCols+` FROM policies WHERE org_id = ? ORDER BY created_at, rowid`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	out := []*custos.Policy{}
	for rows.Next() {
		var p custos.Policy
		if err := rows.Scan(&p.ID, &p.OrgID, &p.TagKey, &p.TagValue, &p.Rule, column.JSON(&p.Models), &p.NotifyURL,
			column.NullTime(&p.ExpiresAt), column.Time(&p.CreatedAt), &p.CreatedBy); err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		out = append(out, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

// DeletePolicy deletes policy id with ev. Returns ENOTFOUND.
func (s *Store) DeletePolicy(ctx context.Context, orgID, id string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`DELETE FROM policies WHERE org_id = ? AND id = ?`, orgID, id)
		if err != nil {
			return fmt.Errorf("delete policy: %w", err)
		}
		if n == 0 {
			return custos.Errorf(custos.ENOTFOUND, "policy %q not found", id)
		}
		return w.appendEvent(ev)
	})
}
