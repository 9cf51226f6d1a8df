package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/custos-dev/custos/store/internal/taskrow"
)

var _ custos.TaskStore = (*Store)(nil)

// defaultPurgeLimit is how many artifacts PurgeableArtifacts returns when
// given no positive limit.
const defaultPurgeLimit = 1000

// CreateTrackerInstall inserts in with ev. Returns ECONFLICT if the org has
// a live (not revoked) install of that name, or its id or hash exists.
func (s *Store) CreateTrackerInstall(ctx context.Context, in *custos.TrackerInstall, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO tracker_installs (`+taskrow.InstallCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			in.ID, in.OrgID, in.Name, in.Hash, micros(in.CreatedAt), nullMicros(in.RevokedAt)); err != nil {
			return conflictOr(err, "insert tracker install", "a tracker install named %q already exists", in.Name)
		}
		return w.appendEvent(ev)
	})
}

// ListTrackerInstalls lists the org's installs, oldest first.
func (s *Store) ListTrackerInstalls(ctx context.Context, orgID string) ([]*custos.TrackerInstall, error) {
	rows, err := s.rquery(ctx, `SELECT `+taskrow.InstallCols+` FROM tracker_installs WHERE org_id = ? ORDER BY created_at, rowid`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list tracker installs: %w", err)
	}
	defer rows.Close()
	out := []*custos.TrackerInstall{}
	for rows.Next() {
		in, err := taskrow.Install(rows)
		if err != nil {
			return nil, fmt.Errorf("list tracker installs: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tracker installs: %w", err)
	}
	return out, nil
}

// FindTrackerInstallByHash returns the install whose token hashes to hash,
// revoked or not. Returns ENOTFOUND.
func (s *Store) FindTrackerInstallByHash(ctx context.Context, hash string) (*custos.TrackerInstall, error) {
	in, err := taskrow.Install(s.rqueryRow(ctx, `SELECT `+taskrow.InstallCols+` FROM tracker_installs WHERE hash = ?`, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "tracker install not found")
	case err != nil:
		return nil, fmt.Errorf("find tracker install by hash: %w", err)
	}
	return in, nil
}

// RevokeTrackerInstall sets the install's RevokedAt to now if unset, with
// ev; revoking a revoked install changes nothing and appends no event.
// Returns ENOTFOUND.
func (s *Store) RevokeTrackerInstall(ctx context.Context, orgID, id string, now time.Time, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE tracker_installs SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL`,
			micros(now), orgID, id)
		if err != nil {
			return fmt.Errorf("revoke tracker install: %w", err)
		}
		if n == 0 {
			if ok, err := w.exists(`SELECT 1 FROM tracker_installs WHERE org_id = ? AND id = ?`, orgID, id); err != nil {
				return fmt.Errorf("find tracker install: %w", err)
			} else if !ok {
				return custos.Errorf(custos.ENOTFOUND, "tracker install %q not found", id)
			}
			return nil
		}
		return w.appendEvent(ev)
	})
}

// insertRequestKey inserts k. Returns ECONFLICT if its id or hash exists.
func insertRequestKey(w *wtx, k *custos.RequestKey) error {
	if _, err := w.exec(`INSERT INTO request_keys (`+taskrow.RequestKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.OrgID, k.InstallID, k.SessionID, k.Hash, micros(k.CreatedAt), micros(k.ExpiresAt), nullMicros(k.UsedAt)); err != nil {
		return conflictOr(err, "insert request key", "request key %q already exists", k.ID)
	}
	return nil
}

// CreateRequestKey inserts k, the first key of a new chain, with ev.
// Returns ECONFLICT if its id or hash exists.
func (s *Store) CreateRequestKey(ctx context.Context, k *custos.RequestKey, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if err := insertRequestKey(w, k); err != nil {
			return err
		}
		return w.appendEvent(ev)
	})
}

// SpendRequestKey marks the key hashing to hash used at now in one
// statement — only if it belongs to installID, whose install is not
// revoked, is unused and expires after now — and inserts next (unless nil)
// with the spent key's OrgID, InstallID and SessionID, in one transaction.
// Returns the spent key, ENOTFOUND if there is no such live key, or
// ECONFLICT if next's id or hash exists (then nothing is spent).
func (s *Store) SpendRequestKey(ctx context.Context, installID, hash string, now time.Time, next *custos.RequestKey) (*custos.RequestKey, error) {
	var spent *custos.RequestKey
	err := s.write(ctx, func(w *wtx) error {
		k, err := taskrow.RequestKey(w.queryRow(`UPDATE request_keys SET used_at = ?
			WHERE hash = ? AND install_id = ? AND used_at IS NULL AND expires_at > ? AND `+taskrow.LiveInstall+`
			RETURNING `+taskrow.RequestKeyCols, micros(now), hash, installID, micros(now)))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "no live request key: it is unknown, used, expired, or of another or a revoked install")
		case err != nil:
			return fmt.Errorf("spend request key: %w", err)
		}
		if next != nil {
			next.OrgID, next.InstallID, next.SessionID = k.OrgID, k.InstallID, k.SessionID
			if err := insertRequestKey(w, next); err != nil {
				return err
			}
		}
		spent = k
		return nil
	})
	if err != nil {
		return nil, err
	}
	return spent, nil
}

// FindRequestKeyByHash returns the key hashing to hash. Returns ENOTFOUND.
func (s *Store) FindRequestKeyByHash(ctx context.Context, hash string) (*custos.RequestKey, error) {
	k, err := taskrow.RequestKey(s.rqueryRow(ctx, `SELECT `+taskrow.RequestKeyCols+` FROM request_keys WHERE hash = ?`, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "request key not found")
	case err != nil:
		return nil, fmt.Errorf("find request key by hash: %w", err)
	}
	return k, nil
}

// taskState reads whether the task exists and whether it is complete.
func taskState(w *wtx, orgID, projectID, taskID string) (exists, complete bool, err error) {
	var completed sql.NullInt64
	err = w.queryRow(`SELECT completed_at FROM tasks WHERE org_id = ? AND project_id = ? AND task_id = ?`,
		orgID, projectID, taskID).Scan(&completed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, false, nil
	case err != nil:
		return false, false, fmt.Errorf("read task: %w", err)
	}
	return true, completed.Valid, nil
}

// taskComplete is the error of a change to a complete task.
func taskComplete(projectID, taskID string) error {
	return custos.Errorf(custos.ECONFLICT, "task %q of project %q is complete", taskID, projectID)
}

// taskNotFound is the error of a task that does not exist.
func taskNotFound(projectID, taskID string) error {
	return custos.Errorf(custos.ENOTFOUND, "task %q not found in project %q", taskID, projectID)
}

// CreateLaunchCode inserts c and, if new, its task (c's org, project and
// task, created at c.CreatedAt), with ev. Returns ECONFLICT if the task
// exists and is complete, or c's id or hash exists.
func (s *Store) CreateLaunchCode(ctx context.Context, c *custos.LaunchCode, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO tasks (org_id, project_id, task_id, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, c.OrgID, c.ProjectID, c.TaskID, micros(c.CreatedAt)); err != nil {
			return fmt.Errorf("insert task: %w", err)
		}
		if _, complete, err := taskState(w, c.OrgID, c.ProjectID, c.TaskID); err != nil {
			return err
		} else if complete {
			return taskComplete(c.ProjectID, c.TaskID)
		}
		if _, err := w.exec(`INSERT INTO launch_codes (`+taskrow.LaunchCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.OrgID, c.InstallID, c.ProjectID, c.TaskID, c.Hash, micros(c.CreatedAt), micros(c.ExpiresAt),
			nullMicros(c.UsedAt)); err != nil {
			return conflictOr(err, "insert launch code", "launch code %q already exists", c.ID)
		}
		return w.appendEvent(ev)
	})
}

// ExchangeLaunchCode marks the code hashing to hash used at now in one
// statement — only if unused, expiring after now, bound to projectID and
// taskID, and its install is not revoked — and inserts p with the code's
// OrgID, ProjectID, TaskID and LaunchID, and appends ev with the code's
// OrgID, in one transaction. Returns the code, ENOTFOUND if there is no
// such code (then nothing changes), or ECONFLICT if p's id or hash exists.
func (s *Store) ExchangeLaunchCode(ctx context.Context, hash, projectID, taskID string, now time.Time, p *custos.Permit, ev *custos.AuditEvent) (*custos.LaunchCode, error) {
	var code *custos.LaunchCode
	err := s.write(ctx, func(w *wtx) error {
		c, err := taskrow.LaunchCode(w.queryRow(`UPDATE launch_codes SET used_at = ?
			WHERE hash = ? AND project_id = ? AND task_id = ? AND used_at IS NULL AND expires_at > ? AND `+taskrow.LiveInstall+`
			RETURNING `+taskrow.LaunchCols, micros(now), hash, projectID, taskID, micros(now)))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "no live launch code for task %q of project %q", taskID, projectID)
		case err != nil:
			return fmt.Errorf("exchange launch code: %w", err)
		}
		p.OrgID, p.ProjectID, p.TaskID, p.LaunchID = c.OrgID, c.ProjectID, c.TaskID, c.ID
		if _, err := w.exec(`INSERT INTO permits (`+taskrow.PermitCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.OrgID, p.ProjectID, p.TaskID, p.LaunchID, p.Hash, micros(p.CreatedAt), micros(p.ExpiresAt)); err != nil {
			return conflictOr(err, "insert permit", "permit %q already exists", p.ID)
		}
		if ev != nil {
			ev.OrgID = c.OrgID
		}
		if err := w.appendEvent(ev); err != nil {
			return err
		}
		code = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return code, nil
}

// FindLaunchCodeByHash returns the code hashing to hash. Returns ENOTFOUND.
func (s *Store) FindLaunchCodeByHash(ctx context.Context, hash string) (*custos.LaunchCode, error) {
	c, err := taskrow.LaunchCode(s.rqueryRow(ctx, `SELECT `+taskrow.LaunchCols+` FROM launch_codes WHERE hash = ?`, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "launch code not found")
	case err != nil:
		return nil, fmt.Errorf("find launch code by hash: %w", err)
	}
	return c, nil
}

// FindPermitByHash returns the permit whose token hashes to hash. Returns
// ENOTFOUND.
func (s *Store) FindPermitByHash(ctx context.Context, hash string) (*custos.Permit, error) {
	p, err := taskrow.Permit(s.rqueryRow(ctx, `SELECT `+taskrow.PermitCols+` FROM permits WHERE hash = ?`, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "permit not found")
	case err != nil:
		return nil, fmt.Errorf("find permit by hash: %w", err)
	}
	return p, nil
}

// FindTask returns a task. Returns ENOTFOUND.
func (s *Store) FindTask(ctx context.Context, orgID, projectID, taskID string) (*custos.Task, error) {
	t, err := taskrow.Task(s.rqueryRow(ctx, `SELECT `+taskrow.TaskCols+` FROM tasks WHERE org_id = ? AND project_id = ? AND task_id = ?`,
		orgID, projectID, taskID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, taskNotFound(projectID, taskID)
	case err != nil:
		return nil, fmt.Errorf("find task: %w", err)
	}
	return t, nil
}

// CreateRun inserts r with ev if its task exists and is not complete.
// Returns ENOTFOUND (no task), or ECONFLICT (task complete, or r's id
// exists).
func (s *Store) CreateRun(ctx context.Context, r *custos.Run, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		exists, complete, err := taskState(w, r.OrgID, r.ProjectID, r.TaskID)
		switch {
		case err != nil:
			return err
		case !exists:
			return taskNotFound(r.ProjectID, r.TaskID)
		case complete:
			return taskComplete(r.ProjectID, r.TaskID)
		}
		if _, err := w.exec(`INSERT INTO runs (`+taskrow.RunCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			r.ID, r.OrgID, r.ProjectID, r.TaskID, micros(r.CreatedAt), nullMicros(r.CompletedAt)); err != nil {
			return conflictOr(err, "insert run", "run %q already exists", r.ID)
		}
		return w.appendEvent(ev)
	})
}

// FindRun returns run id of the org. Returns ENOTFOUND.
func (s *Store) FindRun(ctx context.Context, orgID, id string) (*custos.Run, error) {
	r, err := taskrow.Run(s.rqueryRow(ctx, `SELECT `+taskrow.RunCols+` FROM runs WHERE org_id = ? AND id = ?`, orgID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "run %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("find run: %w", err)
	}
	return r, nil
}

// CompleteRun sets the run's CompletedAt to now if unset, with ev, and
// returns the run; completing a complete run changes nothing and appends
// no event. Returns ENOTFOUND.
func (s *Store) CompleteRun(ctx context.Context, orgID, id string, now time.Time, ev *custos.AuditEvent) (*custos.Run, error) {
	var run *custos.Run
	err := s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE runs SET completed_at = ? WHERE org_id = ? AND id = ? AND completed_at IS NULL`,
			micros(now), orgID, id)
		if err != nil {
			return fmt.Errorf("complete run: %w", err)
		}
		r, err := taskrow.Run(w.queryRow(`SELECT `+taskrow.RunCols+` FROM runs WHERE org_id = ? AND id = ?`, orgID, id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "run %q not found", id)
		case err != nil:
			return fmt.Errorf("read run: %w", err)
		}
		run = r
		if n == 0 {
			return nil
		}
		return w.appendEvent(ev)
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// CompleteTask, in one transaction and only if the task is not complete
// yet, sets its CompletedAt to now, completes its open runs, sets
// ExpiresAt = expires on each of its artifacts that has none or a later
// one, and appends ev. Returns the task (unchanged, with no event, if it
// was complete). Returns ENOTFOUND.
func (s *Store) CompleteTask(ctx context.Context, orgID, projectID, taskID string, now, expires time.Time, ev *custos.AuditEvent) (*custos.Task, error) {
	var task *custos.Task
	err := s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`UPDATE tasks SET completed_at = ?
			WHERE org_id = ? AND project_id = ? AND task_id = ? AND completed_at IS NULL`,
			micros(now), orgID, projectID, taskID)
		if err != nil {
			return fmt.Errorf("complete task: %w", err)
		}
		t, err := taskrow.Task(w.queryRow(`SELECT `+taskrow.TaskCols+` FROM tasks WHERE org_id = ? AND project_id = ? AND task_id = ?`,
			orgID, projectID, taskID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return taskNotFound(projectID, taskID)
		case err != nil:
			return fmt.Errorf("read task: %w", err)
		}
		task = t
		if n == 0 {
			return nil
		}
		if _, err := w.exec(`UPDATE runs SET completed_at = ?
			WHERE org_id = ? AND project_id = ? AND task_id = ? AND completed_at IS NULL`,
			micros(now), orgID, projectID, taskID); err != nil {
			return fmt.Errorf("complete runs: %w", err)
		}
		if _, err := w.exec(`UPDATE artifacts SET expires_at = ?
			WHERE org_id = ? AND project_id = ? AND task_id = ? AND (expires_at IS NULL OR expires_at > ?)`,
			micros(expires), orgID, projectID, taskID, micros(expires)); err != nil {
			return fmt.Errorf("set artifact expiry: %w", err)
		}
		return w.appendEvent(ev)
	})
	if err != nil {
		return nil, err
	}
	return task, nil
}

// PutArtifact inserts a with ev, in one transaction (the store's one writer
// makes concurrent puts take turns): only if its run exists in a's org,
// project and task (ENOTFOUND), and neither the run nor its task is
// complete (ECONFLICT); only if the run's live artifacts other than one
// named a.Name, plus a.Size, stay within maxRunBytes (ETOOLARGE; no limit
// if maxRunBytes is not positive); marking a live artifact of the same run
// and name replaced at a.CreatedAt.
func (s *Store) PutArtifact(ctx context.Context, a *custos.Artifact, maxRunBytes int64, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		var runDone, taskDone sql.NullInt64
		err := w.queryRow(`SELECT r.completed_at, t.completed_at FROM runs r
			JOIN tasks t ON t.org_id = r.org_id AND t.project_id = r.project_id AND t.task_id = r.task_id
			WHERE r.org_id = ? AND r.id = ? AND r.project_id = ? AND r.task_id = ?`,
			a.OrgID, a.RunID, a.ProjectID, a.TaskID).Scan(&runDone, &taskDone)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "run %q not found in task %q", a.RunID, a.TaskID)
		case err != nil:
			return fmt.Errorf("read run: %w", err)
		case taskDone.Valid:
			return taskComplete(a.ProjectID, a.TaskID)
		case runDone.Valid:
			return custos.Errorf(custos.ECONFLICT, "run %q is complete", a.RunID)
		}
		if maxRunBytes > 0 {
			var used int64
			if err := w.queryRow(`SELECT coalesce(sum(size), 0) FROM artifacts
				WHERE run_id = ? AND replaced_at IS NULL AND name <> ?`, a.RunID, a.Name).Scan(&used); err != nil {
				return fmt.Errorf("read run size: %w", err)
			}
			if used+a.Size > maxRunBytes {
				return custos.Errorf(custos.ETOOLARGE, "run %q would hold %d bytes of artifacts, over its limit of %d", a.RunID, used+a.Size, maxRunBytes)
			}
		}
		if _, err := w.exec(`UPDATE artifacts SET replaced_at = ? WHERE run_id = ? AND name = ? AND replaced_at IS NULL`,
			micros(a.CreatedAt), a.RunID, a.Name); err != nil {
			return fmt.Errorf("replace artifact: %w", err)
		}
		if _, err := w.exec(`INSERT INTO artifacts (`+taskrow.ArtifactCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.OrgID, a.ProjectID, a.TaskID, a.RunID, a.Name, a.Kind, a.Size, a.SHA256, a.BlobKey,
			blob(a.WrappedDEK), a.KeeperID, micros(a.CreatedAt), nullMicros(a.ExpiresAt), nullMicros(a.ReplacedAt)); err != nil {
			return conflictOr(err, "insert artifact", "artifact %q already exists", a.ID)
		}
		return w.appendEvent(ev)
	})
}

// FindArtifact returns the live (not replaced) artifact name of the run,
// expired or not. Returns ENOTFOUND.
func (s *Store) FindArtifact(ctx context.Context, orgID, runID, name string) (*custos.Artifact, error) {
	a, err := taskrow.Artifact(s.rqueryRow(ctx, `SELECT `+taskrow.ArtifactCols+` FROM artifacts
		WHERE org_id = ? AND run_id = ? AND name = ? AND replaced_at IS NULL`, orgID, runID, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "artifact %q not found in run %q", name, runID)
	case err != nil:
		return nil, fmt.Errorf("find artifact: %w", err)
	}
	return a, nil
}

// ListArtifacts returns the run's live artifacts, by name.
func (s *Store) ListArtifacts(ctx context.Context, orgID, runID string) ([]*custos.Artifact, error) {
	return s.listArtifacts(ctx, "list artifacts", `SELECT `+taskrow.ArtifactCols+` FROM artifacts
		WHERE org_id = ? AND run_id = ? AND replaced_at IS NULL ORDER BY name`, orgID, runID)
}

// PurgeableArtifacts returns up to limit (defaultPurgeLimit if not
// positive) artifacts replaced, or expiring at or before now, the one whose
// purge is due first (its replacement or expiry, whichever is earlier)
// first.
func (s *Store) PurgeableArtifacts(ctx context.Context, now time.Time, limit int) ([]*custos.Artifact, error) {
	if limit <= 0 {
		limit = defaultPurgeLimit
	}
	return s.listArtifacts(ctx, "list purgeable artifacts", `SELECT `+taskrow.ArtifactCols+` FROM artifacts
		WHERE replaced_at IS NOT NULL OR expires_at <= ?
		ORDER BY min(coalesce(replaced_at, expires_at), coalesce(expires_at, replaced_at)), id LIMIT ?`, micros(now), limit)
}

// listArtifacts runs query, which selects taskrow.ArtifactCols.
func (s *Store) listArtifacts(ctx context.Context, what, query string, args ...any) ([]*custos.Artifact, error) {
	rows, err := s.rquery(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []*custos.Artifact{}
	for rows.Next() {
		a, err := taskrow.Artifact(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// DeleteArtifact deletes the artifact row id and appends ev, in one
// transaction. Deleting a missing row is not an error and appends no event
// (purges resume, and two purgers may race).
func (s *Store) DeleteArtifact(ctx context.Context, id string, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.execN(`DELETE FROM artifacts WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete artifact: %w", err)
		}
		if n == 0 {
			return nil
		}
		return w.appendEvent(ev)
	})
}

// ArtifactBlobKeys returns the blob keys of every artifact row.
func (s *Store) ArtifactBlobKeys(ctx context.Context) (map[string]bool, error) {
	rows, err := s.rquery(ctx, `SELECT blob_key FROM artifacts`)
	if err != nil {
		return nil, fmt.Errorf("list artifact blob keys: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("list artifact blob keys: %w", err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list artifact blob keys: %w", err)
	}
	return out, nil
}

// PutIndexFiles inserts or replaces files (UpdatedAt set to now) in the
// project's index, with ev, in one transaction.
func (s *Store) PutIndexFiles(ctx context.Context, orgID, projectID, indexID string, files []custos.IndexFile, now time.Time, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		for _, f := range files {
			if _, err := w.exec(`INSERT INTO index_files (org_id, project_id, index_id, path, sha256, summary, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (org_id, project_id, index_id, path) DO UPDATE SET sha256 = excluded.sha256,
					summary = excluded.summary, updated_at = excluded.updated_at`,
				orgID, projectID, indexID, f.Path, f.SHA256, f.Summary, micros(now)); err != nil {
				return fmt.Errorf("put index file: %w", err)
			}
		}
		return w.appendEvent(ev)
	})
}

// IndexHashes returns path → SHA-256 for those of paths in the index.
func (s *Store) IndexHashes(ctx context.Context, orgID, projectID, indexID string, paths []string) (map[string]string, error) {
	out := map[string]string{}
	if len(paths) == 0 {
		return out, nil
	}
	list, err := column.JSONText(paths)
	if err != nil {
		return nil, err
	}
	rows, err := s.rquery(ctx, `SELECT path, sha256 FROM index_files
		WHERE org_id = ? AND project_id = ? AND index_id = ? AND path IN (SELECT value FROM json_each(?))`,
		orgID, projectID, indexID, list)
	if err != nil {
		return nil, fmt.Errorf("read index hashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, h string
		if err := rows.Scan(&p, &h); err != nil {
			return nil, fmt.Errorf("read index hashes: %w", err)
		}
		out[p] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read index hashes: %w", err)
	}
	return out, nil
}
