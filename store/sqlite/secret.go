package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
)

const secretCols = `s.id, s.org_id, s.project, s.name, s.tags, s.description, s.version, s.expires_at, s.created_at, s.updated_at` // #nosec G101 -- usage text and column names, not credentials

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
func insertVersion(w *wtx, v *custos.SecretVersion) error {
	if _, err := w.exec(`INSERT INTO secret_versions (secret_id, version, ciphertext, wrapped_dek, keeper_id,
		created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		v.SecretID, v.Version, blob(v.Ciphertext), blob(v.WrappedDEK), v.KeeperID, v.CreatedBy,
		micros(v.CreatedAt), nullMicros(v.ExpiresAt)); err != nil {
		return conflictOr(err, "insert secret version", "version %d of secret %q already exists", v.Version, v.SecretID)
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
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO secrets (id, org_id, project, name, tags, description, version,
			expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sec.ID, sec.OrgID, sec.Project, sec.Name, tags, sec.Description, sec.Version,
			nullMicros(sec.ExpiresAt), micros(sec.CreatedAt), micros(sec.UpdatedAt)); err != nil {
			return conflictOr(err, "insert secret", "secret %q already exists in project %q", sec.Name, sec.Project)
		}
		if err := insertVersion(w, v); err != nil {
			return err
		}
		return w.appendEvent(ev)
	})
}

// UpdateSecret stores v as version sec.Version of sec, updating tags,
// description, expiry and UpdatedAt, only if the stored version is still
// sec.Version-1, with ev. Returns ENOTFOUND, ECONFLICT if another writer got
// there first, or EINVALID if v does not match sec.
func (s *Store) UpdateSecret(ctx context.Context, sec *custos.Secret, v *custos.SecretVersion, ev *custos.AuditEvent) error {
	if err := checkVersion(sec, v); err != nil {
		return err
	}
	tags, err := column.JSONText(nonNilTags(sec.Tags))
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE secrets SET tags = ?, description = ?, version = ?, expires_at = ?, updated_at = ?
			WHERE org_id = ? AND id = ? AND version = ?`,
			tags, sec.Description, sec.Version, nullMicros(sec.ExpiresAt), micros(sec.UpdatedAt),
			sec.OrgID, sec.ID, sec.Version-1)
		if err != nil {
			return fmt.Errorf("update secret: %w", err)
		}
		if n == 0 {
			if ok, err := w.exists(`SELECT 1 FROM secrets WHERE org_id = ? AND id = ?`, sec.OrgID, sec.ID); err != nil {
				return fmt.Errorf("check secret: %w", err)
			} else if !ok {
				return custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", sec.Name, sec.Project)
			}
			return custos.Errorf(custos.ECONFLICT, "secret %q in project %q was changed by another writer; try again", sec.Name, sec.Project)
		}
		if err := insertVersion(w, v); err != nil {
			return err
		}
		return w.appendEvent(ev)
	})
}

// FindSecret returns the secret's metadata. Returns ENOTFOUND.
func (s *Store) FindSecret(ctx context.Context, orgID, project, name string) (*custos.Secret, error) {
	sec, err := scanSecret(s.rqueryRow(ctx, `SELECT `+secretCols+` FROM secrets s
		WHERE s.org_id = ? AND s.project = ? AND s.name = ?`, orgID, project, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", name, project)
	case err != nil:
		return nil, fmt.Errorf("find secret: %w", err)
	}
	return sec, nil
}

// ListSecrets returns metadata of the org's secrets ordered by project,
// name, narrowed by f.
func (s *Store) ListSecrets(ctx context.Context, orgID string, f custos.SecretFilter) ([]*custos.Secret, error) {
	rows, err := s.rquery(ctx, `SELECT `+secretCols+` FROM secrets s WHERE s.org_id = ? AND (? = '' OR s.project = ?)
		ORDER BY s.project, s.name`, orgID, f.Project, f.Project)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	out := []*custos.Secret{}
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		if hasTags(sec.Tags, f.Tags) {
			out = append(out, sec)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// hasTags reports whether tags holds every pair of want.
func hasTags(tags, want map[string]string) bool {
	for k, v := range want {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

const loadSecretsQuery = `SELECT ` + secretCols + `, ` + versionCols + `, v.ciphertext, v.wrapped_dek
	FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.version
	WHERE s.org_id = ? AND s.project = ?`

// LoadSecrets returns the named secrets of project with Current filled
// (ciphertext included), ordered by name; names empty means all of the
// project. Missing names are absent from the result.
func (s *Store) LoadSecrets(ctx context.Context, orgID, project string, names []string) ([]*custos.Secret, error) {
	var rows *sql.Rows
	var err error
	if len(names) == 0 {
		rows, err = s.rquery(ctx, loadSecretsQuery+` ORDER BY s.name`, orgID, project)
	} else {
		var list string
		if list, err = column.JSONText(names); err != nil {
			return nil, err
		}
		rows, err = s.rquery(ctx, loadSecretsQuery+` AND s.name IN (SELECT value FROM json_each(?)) ORDER BY s.name`,
			orgID, project, list)
	}
	if err != nil {
		return nil, fmt.Errorf("load secrets: %w", err)
	}
	defer rows.Close()
	out := []*custos.Secret{}
	for rows.Next() {
		v := &custos.SecretVersion{}
		sec, err := scanSecret(rows, append(versionDest(v), &v.Ciphertext, &v.WrappedDEK)...)
		if err != nil {
			return nil, fmt.Errorf("load secrets: %w", err)
		}
		sec.Current = v
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load secrets: %w", err)
	}
	return out, nil
}

// ListVersions returns a secret's versions, newest first, without
// ciphertext. A secret that does not exist has no versions.
func (s *Store) ListVersions(ctx context.Context, orgID, secretID string) ([]*custos.SecretVersion, error) {
	rows, err := s.rquery(ctx, `SELECT `+versionCols+` FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
		WHERE s.org_id = ? AND v.secret_id = ? ORDER BY v.version DESC`, orgID, secretID)
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	defer rows.Close()
	out := []*custos.SecretVersion{}
	for rows.Next() {
		v := &custos.SecretVersion{}
		if err := rows.Scan(versionDest(v)...); err != nil {
			return nil, fmt.Errorf("list versions: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	return out, nil
}

// DeleteSecret deletes the secret and all its versions, with ev. The audit
// event stays. Returns ENOTFOUND.
func (s *Store) DeleteSecret(ctx context.Context, orgID, project, name string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		var id string
		err := w.queryRow(`SELECT id FROM secrets WHERE org_id = ? AND project = ? AND name = ?`, orgID, project, name).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "secret %q not found in project %q", name, project)
		case err != nil:
			return fmt.Errorf("find secret: %w", err)
		}
		if _, err := w.exec(`DELETE FROM secret_versions WHERE secret_id = ?`, id); err != nil {
			return fmt.Errorf("delete secret versions: %w", err)
		}
		if _, err := w.exec(`DELETE FROM secrets WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete secret: %w", err)
		}
		return w.appendEvent(ev)
	})
}

// RewrapDEKs calls fn for every stored version's wrapped DEK, then every
// model provider's, then every task artifact's, and stores what it returns,
// all in one transaction; any error rolls everything back. Returns how many
// were rewrapped.
func (s *Store) RewrapDEKs(ctx context.Context, fn func(wrapped []byte, keeperID string) ([]byte, string, error)) (int, error) {
	var count int
	err := s.write(ctx, func(w *wtx) error {
		type row struct {
			id       string // secret, provider or artifact id
			version  int    // 0 for a provider
			wrapped  []byte
			keeperID string
		}
		// provider: the rows have no version column (providers, artifacts).
		read := func(query string, provider bool) ([]row, error) {
			rows, err := w.query(query)
			if err != nil {
				return nil, fmt.Errorf("list wrapped keys: %w", err)
			}
			defer rows.Close()
			var all []row
			for rows.Next() {
				var r row
				dest := []any{&r.id, &r.version, &r.wrapped, &r.keeperID}
				if provider {
					dest = []any{&r.id, &r.wrapped, &r.keeperID}
				}
				if err := rows.Scan(dest...); err != nil {
					return nil, fmt.Errorf("list wrapped keys: %w", err)
				}
				all = append(all, r)
			}
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("list wrapped keys: %w", err)
			}
			return all, nil
		}
		versions, err := read(`SELECT secret_id, version, wrapped_dek, keeper_id FROM secret_versions ORDER BY secret_id, version`, false)
		if err != nil {
			return err
		}
		providers, err := read(`SELECT id, wrapped_dek, keeper_id FROM model_providers WHERE wrapped_dek IS NOT NULL ORDER BY id`, true)
		if err != nil {
			return err
		}
		artifacts, err := read(`SELECT id, wrapped_dek, keeper_id FROM artifacts ORDER BY id`, true)
		if err != nil {
			return err
		}
		count = 0
		for _, r := range versions {
			wrapped, keeperID, err := fn(r.wrapped, r.keeperID)
			if err != nil {
				return fmt.Errorf("rewrap version %d of secret %s: %w", r.version, r.id, err)
			}
			if _, err := w.exec(`UPDATE secret_versions SET wrapped_dek = ?, keeper_id = ? WHERE secret_id = ? AND version = ?`,
				blob(wrapped), keeperID, r.id, r.version); err != nil {
				return fmt.Errorf("store rewrapped key: %w", err)
			}
			count++
		}
		for _, r := range providers {
			wrapped, keeperID, err := fn(r.wrapped, r.keeperID)
			if err != nil {
				return fmt.Errorf("rewrap key of provider %s: %w", r.id, err)
			}
			if _, err := w.exec(`UPDATE model_providers SET wrapped_dek = ?, keeper_id = ? WHERE id = ?`,
				blob(wrapped), keeperID, r.id); err != nil {
				return fmt.Errorf("store rewrapped key: %w", err)
			}
			count++
		}
		for _, r := range artifacts {
			wrapped, keeperID, err := fn(r.wrapped, r.keeperID)
			if err != nil {
				return fmt.Errorf("rewrap key of artifact %s: %w", r.id, err)
			}
			if _, err := w.exec(`UPDATE artifacts SET wrapped_dek = ?, keeper_id = ? WHERE id = ?`,
				blob(wrapped), keeperID, r.id); err != nil {
				return fmt.Errorf("store rewrapped key: %w", err)
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

// nonNilTags returns tags, or an empty map for nil.
func nonNilTags(tags map[string]string) map[string]string {
	if tags == nil {
		return map[string]string{}
	}
	return tags
}
