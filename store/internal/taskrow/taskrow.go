// Package taskrow holds what both SQL backends share of the tasks
// capability's tables: the column lists and the functions that scan a row
// of each (times are microseconds since the epoch, UTC, in both).
package taskrow

import (
	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
)

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row or pgx.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Column lists, in the order the scan functions read them.
const (
	InstallCols    = `id, org_id, name, hash, created_at, revoked_at`
	RequestKeyCols = `id, org_id, install_id, session_id, hash, created_at, expires_at, used_at`
	LaunchCols     = `id, org_id, install_id, project_id, task_id, hash, created_at, expires_at, used_at`
	PermitCols     = `id, org_id, project_id, task_id, launch_id, hash, created_at, expires_at`
	TaskCols       = `org_id, project_id, task_id, created_at, completed_at`
	RunCols        = `id, org_id, project_id, task_id, created_at, completed_at`
	ArtifactCols   = `id, org_id, project_id, task_id, run_id, name, kind, size, sha256, blob_key, wrapped_dek,
	keeper_id, created_at, expires_at, replaced_at`
)

// LiveInstall is the condition that a row's install_id names an install
// that is not revoked.
const LiveInstall = `install_id IN (SELECT id FROM tracker_installs WHERE revoked_at IS NULL)`

// Install reads a tracker_installs row selected with InstallCols.
func Install(sc Scanner) (*custos.TrackerInstall, error) {
	var in custos.TrackerInstall
	if err := sc.Scan(&in.ID, &in.OrgID, &in.Name, &in.Hash, column.Time(&in.CreatedAt), column.NullTime(&in.RevokedAt)); err != nil {
		return nil, err
	}
	return &in, nil
}

// RequestKey reads a request_keys row selected with RequestKeyCols.
func RequestKey(sc Scanner) (*custos.RequestKey, error) {
	var k custos.RequestKey
	if err := sc.Scan(&k.ID, &k.OrgID, &k.InstallID, &k.SessionID, &k.Hash, column.Time(&k.CreatedAt),
		column.Time(&k.ExpiresAt), column.NullTime(&k.UsedAt)); err != nil {
		return nil, err
	}
	return &k, nil
}

// LaunchCode reads a launch_codes row selected with LaunchCols.
func LaunchCode(sc Scanner) (*custos.LaunchCode, error) {
	var c custos.LaunchCode
	if err := sc.Scan(&c.ID, &c.OrgID, &c.InstallID, &c.ProjectID, &c.TaskID, &c.Hash, column.Time(&c.CreatedAt),
		column.Time(&c.ExpiresAt), column.NullTime(&c.UsedAt)); err != nil {
		return nil, err
	}
	return &c, nil
}

// Permit reads a permits row selected with PermitCols.
func Permit(sc Scanner) (*custos.Permit, error) {
	var p custos.Permit
	if err := sc.Scan(&p.ID, &p.OrgID, &p.ProjectID, &p.TaskID, &p.LaunchID, &p.Hash, column.Time(&p.CreatedAt),
		column.Time(&p.ExpiresAt)); err != nil {
		return nil, err
	}
	return &p, nil
}

// Task reads a tasks row selected with TaskCols.
func Task(sc Scanner) (*custos.Task, error) {
	var t custos.Task
	if err := sc.Scan(&t.OrgID, &t.ProjectID, &t.ID, column.Time(&t.CreatedAt), column.NullTime(&t.CompletedAt)); err != nil {
		return nil, err
	}
	return &t, nil
}

// Run reads a runs row selected with RunCols.
func Run(sc Scanner) (*custos.Run, error) {
	var r custos.Run
	if err := sc.Scan(&r.ID, &r.OrgID, &r.ProjectID, &r.TaskID, column.Time(&r.CreatedAt), column.NullTime(&r.CompletedAt)); err != nil {
		return nil, err
	}
	return &r, nil
}

// Artifact reads an artifacts row selected with ArtifactCols.
func Artifact(sc Scanner) (*custos.Artifact, error) {
	var a custos.Artifact
	if err := sc.Scan(&a.ID, &a.OrgID, &a.ProjectID, &a.TaskID, &a.RunID, &a.Name, &a.Kind, &a.Size, &a.SHA256,
		&a.BlobKey, &a.WrappedDEK, &a.KeeperID, column.Time(&a.CreatedAt), column.NullTime(&a.ExpiresAt),
		column.NullTime(&a.ReplacedAt)); err != nil {
		return nil, err
	}
	return &a, nil
}
