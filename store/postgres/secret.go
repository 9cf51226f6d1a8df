package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

const secretCols = `s.id, s.org_id, s.project, s.name, s.tags, s.description, s.version, s.expires_at, s.created_at, s.updated_at` // #nosec G101 -- column names, not credentials

const versionCols = `v.secret_id, v.version, v.keeper_id, v.created_by, v.created_at, v.expires_at`

// scanSecret reads one secrets row selected with secretCols, plus extra
// destinations.
func scanSecret(sc scanner, extra ...any) (*custos.Secret, error) {
	var s custos.Secret
	dest := append([]any{&s.ID, &s.OrgID, &s.Project, &s.Name, column.JSON(&s.Tags), &s.Description, &s.Version,
		column.NullTime(&s.ExpiresAt), column.Time(&s.CreatedAt), column.Time(&s.UpdatedAt)}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	if s.Tags == nil {
		s.Tags = map[string]string{}
	}
	return &s, nil
}

// versionDest returns scan destinations for versionCols into v.
func versionDest(v *custos.SecretVersion) []any {
	return []any{&v.SecretID, &v.Version, &v.KeeperID, &v.CreatedBy, column.Time(&v.CreatedAt), column.NullTime(&v.ExpiresAt)}
}

// checkVersion fills v's zero SecretID and Version from s and rejects a
// version that does not belong to s.
func checkVersion(s *custos.Secret, v *custos.SecretVersion) error {
	if v.SecretID == "" {
		v.SecretID = s.ID
	}
	if v.Version == 0 {
		v.Version = s.Version
	}
	if v.SecretID != s.ID || v.Version != s.Version {
		return custos.Errorf(custos.EINVALID, "version %d of secret %q does not match the secret (version %d)", v.Version, s.Name, s.Version)
	}
	return nil
}

// insertVersion inserts v.
func insertVersion(ctx context.Context, tx pgx.Tx, v *custos.SecretVersion) error {
	if _, err := tx.Exec(ctx, `INSERT INTO secret_versions (secret_id, version, ciphertext, wrapped_dek, keeper_id,
		created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		v.SecretID, v.Version, blob(v.Ciphertext), blob(v.WrappedDEK), v.KeeperID, v.CreatedBy,
		micros(v.CreatedAt), nullMicros(v.ExpiresAt)); err != nil {
		return conflictOr(err, "version %d of secret %q already exists", v.Version, v.SecretID)
	}
	return nil
}

// CreateSecret inserts sec (Version 1; 0 is taken as 1) and v with ev. A
// zero v.SecretID or v.Version is filled from sec. Returns ECONFLICT if (org,
// project, name) exists, EINVALID if v does not match sec.
func (s *Store) CreateSecret(ctx context.Context, sec *custos.Secret, v *custos.SecretVersion, ev *custos.AuditEvent) error {
	if sec.Version == 0 {
		sec.Version = 1
	}
	if err := checkVersion(sec, v); err != nil {
		return err
	}
	tags, err := column.JSONText(nonNilTags(sec.Tags))
	if err != nil {
		return err
	}
	return s.tx(ctx, "create secret", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO secrets (id, org_id, project, name, tags, description, version,
			expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			sec.ID, sec.OrgID, sec.Project, sec.Name, tags, sec.Description, sec.Version,
			nullMicros(sec.ExpiresAt), micros(sec.CreatedAt), micros(sec.UpdatedAt)); err != nil {
			return conflictOr(err, "secret %q already exists in project %q", sec.Name, sec.Project)
		}
		if err := insertVersion(ctx, tx, v); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// UpdateSecret stores v as version sec.Version of sec, updating tags,
// description, expiry and UpdatedAt, only if the stored version is still
// sec.Version-1, with ev. The conditional update locks the row, so of
// concurrent writers from one version exactly one wins. Returns ENOTFOUND,
// ECONFLICT if another writer got there first, or EINVALID if v does not
// match sec.
func (s *Store) UpdateSecret(ctx context.Context, sec *custos.Secret, v *custos.SecretVersion, ev *custos.AuditEvent) error {
	if err := checkVersion(sec, v); err != nil {
		return err
	}
	tags, err := column.JSONText(nonNilTags(sec.Tags))
	if err != nil {
		return err
	}
	return s.tx(ctx, "update secret", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE secrets SET tags = $1, description = $2, version = $3, expires_at = $4, updated_at = $5
			WHERE org_id = $6 AND id = $7 AND version = $8`,
			tags, sec.Description, sec.Version, nullMicros(sec.ExpiresAt), micros(sec.UpdatedAt),
			sec.OrgID, sec.ID, sec.Version-1)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM secrets WHERE org_id = $1 AND id = $2)`, sec.OrgID, sec.ID).Scan(&exists); err != nil {
				return err
			} else if !exists {
				return custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", sec.Name, sec.Project)
			}
			return custos.Errorf(custos.ECONFLICT, "secret %q in project %q was changed by another writer; try again", sec.Name, sec.Project)
		}
		if err := insertVersion(ctx, tx, v); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// FindSecret returns the secret's metadata. Returns ENOTFOUND.
func (s *Store) FindSecret(ctx context.Context, orgID, project, name string) (*custos.Secret, error) {
	sec, err := scanSecret(s.pool.QueryRow(ctx, `SELECT `+secretCols+` FROM secrets s
		WHERE s.org_id = $1 AND s.project = $2 AND s.name = $3`, orgID, project, name))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", name, project)
	case err != nil:
		return nil, fail("find secret", err)
	}
	return sec, nil
}

// ListSecrets returns metadata of the org's secrets ordered by project,
// name, narrowed by f.
func (s *Store) ListSecrets(ctx context.Context, orgID string, f custos.SecretFilter) ([]*custos.Secret, error) {
	want, err := column.JSONText(nonNilTags(f.Tags))
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+secretCols+` FROM secrets s
		WHERE s.org_id = $1 AND ($2 = '' OR s.project = $2) AND s.tags @> $3::jsonb
		ORDER BY s.project, s.name`, orgID, f.Project, want)
	if err != nil {
		return nil, fail("list secrets", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Secret, error) { return scanSecret(r) })
	if err != nil {
		return nil, fail("list secrets", err)
	}
	if out == nil {
		out = []*custos.Secret{}
	}
	return out, nil
}

const loadSecretsQuery = `SELECT ` + secretCols + `, ` + versionCols + `, v.ciphertext, v.wrapped_dek
	FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.version
	WHERE s.org_id = $1 AND s.project = $2`

// LoadSecrets returns the named secrets of project with Current filled
// (ciphertext included), ordered by name; names empty means all of the
// project. Missing names are absent from the result.
func (s *Store) LoadSecrets(ctx context.Context, orgID, project string, names []string) ([]*custos.Secret, error) {
	var rows pgx.Rows
	var err error
	if len(names) == 0 {
		rows, err = s.pool.Query(ctx, loadSecretsQuery+` ORDER BY s.name`, orgID, project)
	} else {
		rows, err = s.pool.Query(ctx, loadSecretsQuery+` AND s.name = ANY($3::text[]) ORDER BY s.name`, orgID, project, names)
	}
	if err != nil {
		return nil, fail("load secrets", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Secret, error) {
		v := &custos.SecretVersion{}
		sec, err := scanSecret(r, append(versionDest(v), &v.Ciphertext, &v.WrappedDEK)...)
		if err != nil {
			return nil, err
		}
		sec.Current = v
		return sec, nil
	})
	if err != nil {
		return nil, fail("load secrets", err)
	}
	if out == nil {
		out = []*custos.Secret{}
	}
	return out, nil
}

// ListVersions returns a secret's versions, newest first, without
// ciphertext. A secret that does not exist has no versions.
func (s *Store) ListVersions(ctx context.Context, orgID, secretID string) ([]*custos.SecretVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+versionCols+` FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
		WHERE s.org_id = $1 AND v.secret_id = $2 ORDER BY v.version DESC`, orgID, secretID)
	if err != nil {
		return nil, fail("list versions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.SecretVersion, error) {
		v := &custos.SecretVersion{}
		return v, r.Scan(versionDest(v)...)
	})
	if err != nil {
		return nil, fail("list versions", err)
	}
	if out == nil {
		out = []*custos.SecretVersion{}
	}
	return out, nil
}

// DeleteSecret deletes the secret and, by cascade, all its versions, with
// ev. The audit event stays. Returns ENOTFOUND.
func (s *Store) DeleteSecret(ctx context.Context, orgID, project, name string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete secret", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM secrets WHERE org_id = $1 AND project = $2 AND name = $3`, orgID, project, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", name, project)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// RewrapDEKs calls fn for every stored version's wrapped DEK, then every
// model provider's, then every task artifact's, and stores what it returns,
// all in one transaction; any error (or panic) of fn rolls everything back.
// Returns how many were rewrapped.
func (s *Store) RewrapDEKs(ctx context.Context, fn func(wrapped []byte, keeperID string) ([]byte, string, error)) (int, error) {
	var count int
	err := s.tx(ctx, "rewrap keys", func(tx pgx.Tx) error {
		type row struct {
			id       string // secret, provider or artifact id
			version  int    // 0 for a provider
			wrapped  []byte
			keeperID string
		}
		// FOR UPDATE: a concurrent writer of a version or provider waits for
		// the rewrap instead of losing its update.
		rows, err := tx.Query(ctx, `SELECT secret_id, version, wrapped_dek, keeper_id FROM secret_versions
			ORDER BY secret_id, version FOR UPDATE`)
		if err != nil {
			return err
		}
		versions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.version, &x.wrapped, &x.keeperID)
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, wrapped_dek, keeper_id FROM model_providers
			WHERE wrapped_dek IS NOT NULL ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		providers, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.wrapped, &x.keeperID)
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, wrapped_dek, keeper_id FROM artifacts ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		artifacts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.wrapped, &x.keeperID)
		})
		if err != nil {
			return err
		}
		count = 0
		for _, r := range versions {
			wrapped, keeperID, err := callRewrap(fn, r.wrapped, r.keeperID)
			if err != nil {
				return fmt.Errorf("rewrap version %d of secret %s: %w", r.version, r.id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE secret_versions SET wrapped_dek = $1, keeper_id = $2 WHERE secret_id = $3 AND version = $4`,
				blob(wrapped), keeperID, r.id, r.version); err != nil {
				return err
			}
			count++
		}
		for _, r := range providers {
			wrapped, keeperID, err := callRewrap(fn, r.wrapped, r.keeperID)
			if err != nil {
				return fmt.Errorf("rewrap key of provider %s: %w", r.id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE model_providers SET wrapped_dek = $1, keeper_id = $2 WHERE id = $3`,
				blob(wrapped), keeperID, r.id); err != nil {
				return err
			}
			count++
		}
		for _, r := range artifacts {
			wrapped, keeperID, err := callRewrap(fn, r.wrapped, r.keeperID)
			if err != nil {
				return fmt.Errorf("rewrap key of artifact %s: %w", r.id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE artifacts SET wrapped_dek = $1, keeper_id = $2 WHERE id = $3`,
				blob(wrapped), keeperID, r.id); err != nil {
				return err
			}
			count++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return count, nil
}

// callRewrap calls fn, turning a panic into an error.
func callRewrap(fn func([]byte, string) ([]byte, string, error), wrapped []byte, keeperID string) (w []byte, k string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rewrap callback panicked: %v", r)
		}
	}()
	return fn(wrapped, keeperID)
}

// nonNilTags returns tags, or an empty map for nil.
func nonNilTags(tags map[string]string) map[string]string {
	if tags == nil {
		return map[string]string{}
	}
	return tags
}
