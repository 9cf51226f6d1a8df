package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/taskrow"
	"github.com/jackc/pgx/v5"
)

// The tasks capability's single-use steps (spending a request key,
// exchanging a launch code) are one conditional UPDATE … RETURNING each:
// of concurrent updaters of one row the first wins and the others, after
// waiting for its row lock, re-check the condition on the row it committed
// and change nothing. Writers that must not race a task's completion lock
// the task's row FOR SHARE (CreateLaunchCode, CreateRun, PutArtifact),
// which CompleteTask's UPDATE of it waits for (and vice versa); PutArtifact
// then locks its run's row FOR UPDATE, so the run's byte limit and the
// replacement of a name hold under concurrent puts. Locks are taken in the
// order task, run, audit head, so these transactions cannot deadlock.

var _ custos.TaskStore = (*Store)(nil)

// defaultPurgeLimit is how many artifacts PurgeableArtifacts returns when
// given no positive limit.
const defaultPurgeLimit = 1000

// CreateTrackerInstall inserts in with ev. Returns ECONFLICT if the org has
// a live (not revoked) install of that name, or its id or hash exists.
func (s *Store) CreateTrackerInstall(ctx context.Context, in *custos.TrackerInstall, ev *custos.AuditEvent) error {
	return s.tx(ctx, "create tracker install", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tracker_installs (`+taskrow.InstallCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			in.ID, in.OrgID, in.Name, in.Hash, micros(in.CreatedAt), nullMicros(in.RevokedAt)); err != nil {
			return conflictOr(err, "a tracker install named %q already exists", in.Name)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ListTrackerInstalls lists the org's installs, oldest first.
func (s *Store) ListTrackerInstalls(ctx context.Context, orgID string) ([]*custos.TrackerInstall, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+taskrow.InstallCols+` FROM tracker_installs WHERE org_id = $1 ORDER BY created_at, ord`, orgID)
	if err != nil {
		return nil, fail("list tracker installs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.TrackerInstall, error) { return taskrow.Install(r) })
	if err != nil {
		return nil, fail("list tracker installs", err)
	}
	if out == nil {
		out = []*custos.TrackerInstall{}
	}
	return out, nil
}

// FindTrackerInstallByHash returns the install whose token hashes to hash,
// revoked or not. Returns ENOTFOUND.
func (s *Store) FindTrackerInstallByHash(ctx context.Context, hash string) (*custos.TrackerInstall, error) {
	in, err := taskrow.Install(s.pool.QueryRow(ctx, `SELECT `+taskrow.InstallCols+` FROM tracker_installs WHERE hash = $1`, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "tracker install not found")
	case err != nil:
		return nil, fail("find tracker install by hash", err)
	}
	return in, nil
}

// RevokeTrackerInstall sets the install's RevokedAt to now if unset, with
// ev; revoking a revoked install changes nothing and appends no event.
// Returns ENOTFOUND.
func (s *Store) RevokeTrackerInstall(ctx context.Context, orgID, id string, now time.Time, ev *custos.AuditEvent) error {
	return s.tx(ctx, "revoke tracker install", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tracker_installs SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL`,
			micros(now), orgID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM tracker_installs WHERE org_id = $1 AND id = $2`, orgID, id).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return custos.Errorf(custos.ENOTFOUND, "tracker install %q not found", id)
			}
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// insertRequestKey inserts k. Returns ECONFLICT if its id or hash exists.
func insertRequestKey(ctx context.Context, tx pgx.Tx, k *custos.RequestKey) error {
	if _, err := tx.Exec(ctx, `INSERT INTO request_keys (`+taskrow.RequestKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.OrgID, k.InstallID, k.SessionID, k.Hash, micros(k.CreatedAt), micros(k.ExpiresAt), nullMicros(k.UsedAt)); err != nil {
		return conflictOr(err, "request key %q already exists", k.ID)
	}
	return nil
}

// CreateRequestKey inserts k, the first key of a new chain, with ev.
// Returns ECONFLICT if its id or hash exists.
func (s *Store) CreateRequestKey(ctx context.Context, k *custos.RequestKey, ev *custos.AuditEvent) error {
	return s.tx(ctx, "create request key", func(tx pgx.Tx) error {
		if err := insertRequestKey(ctx, tx, k); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// SpendRequestKey marks the key hashing to hash used at now in one
// statement — only if it belongs to installID, whose install is not
// revoked, is unused and expires after now — and inserts next (unless nil)
// with the spent key's OrgID, InstallID and SessionID, in one transaction.
// Of concurrent calls with one key, in any number of processes, exactly
// one succeeds. Returns the spent key, ENOTFOUND if there is no such live
// key, or ECONFLICT if next's id or hash exists (then nothing is spent).
func (s *Store) SpendRequestKey(ctx context.Context, installID, hash string, now time.Time, next *custos.RequestKey) (*custos.RequestKey, error) {
	var spent *custos.RequestKey
	err := s.tx(ctx, "spend request key", func(tx pgx.Tx) error {
		k, err := taskrow.RequestKey(tx.QueryRow(ctx, `UPDATE request_keys SET used_at = $1
			WHERE hash = $2 AND install_id = $3 AND used_at IS NULL AND expires_at > $1 AND `+taskrow.LiveInstall+`
			RETURNING `+taskrow.RequestKeyCols, micros(now), hash, installID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "no live request key: it is unknown, used, expired, or of another or a revoked install")
		case err != nil:
			return err
		}
		if next != nil {
			next.OrgID, next.InstallID, next.SessionID = k.OrgID, k.InstallID, k.SessionID
			if err := insertRequestKey(ctx, tx, next); err != nil {
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
	k, err := taskrow.RequestKey(s.pool.QueryRow(ctx, `SELECT `+taskrow.RequestKeyCols+` FROM request_keys WHERE hash = $1`, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "request key not found")
	case err != nil:
		return nil, fail("find request key by hash", err)
	}
	return k, nil
}

// lockTask reads whether the task exists and whether it is complete, and
// locks its row FOR SHARE until tx ends, so it cannot be completed
// meanwhile.
func lockTask(ctx context.Context, tx pgx.Tx, orgID, projectID, taskID string) (exists, complete bool, err error) {
	var completed *int64
	err = tx.QueryRow(ctx, `SELECT completed_at FROM tasks WHERE org_id = $1 AND project_id = $2 AND task_id = $3 FOR SHARE`,
		orgID, projectID, taskID).Scan(&completed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	return true, completed != nil, nil
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
	return s.tx(ctx, "create launch code", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tasks (org_id, project_id, task_id, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, c.OrgID, c.ProjectID, c.TaskID, micros(c.CreatedAt)); err != nil {
			return err
		}
		if _, complete, err := lockTask(ctx, tx, c.OrgID, c.ProjectID, c.TaskID); err != nil {
			return err
		} else if complete {
			return taskComplete(c.ProjectID, c.TaskID)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO launch_codes (`+taskrow.LaunchCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			c.ID, c.OrgID, c.InstallID, c.ProjectID, c.TaskID, c.Hash, micros(c.CreatedAt), micros(c.ExpiresAt),
			nullMicros(c.UsedAt)); err != nil {
			return conflictOr(err, "launch code %q already exists", c.ID)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ExchangeLaunchCode marks the code hashing to hash used at now in one
// statement — only if unused, expiring after now, bound to projectID and
// taskID, and its install is not revoked — and inserts p with the code's
// OrgID, ProjectID, TaskID and LaunchID, and appends ev with the code's
// OrgID, in one transaction. Of concurrent calls with one code, in any
// number of processes, exactly one succeeds. Returns the code, ENOTFOUND
// if there is no such code (then nothing changes), or ECONFLICT if p's id
// or hash exists.
func (s *Store) ExchangeLaunchCode(ctx context.Context, hash, projectID, taskID string, now time.Time, p *custos.Permit, ev *custos.AuditEvent) (*custos.LaunchCode, error) {
	var code *custos.LaunchCode
	err := s.tx(ctx, "exchange launch code", func(tx pgx.Tx) error {
		c, err := taskrow.LaunchCode(tx.QueryRow(ctx, `UPDATE launch_codes SET used_at = $1
			WHERE hash = $2 AND project_id = $3 AND task_id = $4 AND used_at IS NULL AND expires_at > $1 AND `+taskrow.LiveInstall+`
			RETURNING `+taskrow.LaunchCols, micros(now), hash, projectID, taskID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "no live launch code for task %q of project %q", taskID, projectID)
		case err != nil:
			return err
		}
		p.OrgID, p.ProjectID, p.TaskID, p.LaunchID = c.OrgID, c.ProjectID, c.TaskID, c.ID
		if _, err := tx.Exec(ctx, `INSERT INTO permits (`+taskrow.PermitCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			p.ID, p.OrgID, p.ProjectID, p.TaskID, p.LaunchID, p.Hash, micros(p.CreatedAt), micros(p.ExpiresAt)); err != nil {
			return conflictOr(err, "permit %q already exists", p.ID)
		}
		if ev != nil {
			ev.OrgID = c.OrgID
		}
		if err := appendEvents(ctx, tx, ev); err != nil {
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
	c, err := taskrow.LaunchCode(s.pool.QueryRow(ctx, `SELECT `+taskrow.LaunchCols+` FROM launch_codes WHERE hash = $1`, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "launch code not found")
	case err != nil:
		return nil, fail("find launch code by hash", err)
	}
	return c, nil
}

// FindPermitByHash returns the permit whose token hashes to hash. Returns
// ENOTFOUND.
func (s *Store) FindPermitByHash(ctx context.Context, hash string) (*custos.Permit, error) {
	p, err := taskrow.Permit(s.pool.QueryRow(ctx, `SELECT `+taskrow.PermitCols+` FROM permits WHERE hash = $1`, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "permit not found")
	case err != nil:
		return nil, fail("find permit by hash", err)
	}
	return p, nil
}

// FindTask returns a task. Returns ENOTFOUND.
func (s *Store) FindTask(ctx context.Context, orgID, projectID, taskID string) (*custos.Task, error) {
	t, err := taskrow.Task(s.pool.QueryRow(ctx, `SELECT `+taskrow.TaskCols+` FROM tasks WHERE org_id = $1 AND project_id = $2 AND task_id = $3`,
		orgID, projectID, taskID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, taskNotFound(projectID, taskID)
	case err != nil:
		return nil, fail("find task", err)
	}
	return t, nil
}

// CreateRun inserts r with ev if its task exists and is not complete.
// Returns ENOTFOUND (no task), or ECONFLICT (task complete, or r's id
// exists).
func (s *Store) CreateRun(ctx context.Context, r *custos.Run, ev *custos.AuditEvent) error {
	return s.tx(ctx, "create run", func(tx pgx.Tx) error {
		exists, complete, err := lockTask(ctx, tx, r.OrgID, r.ProjectID, r.TaskID)
		switch {
		case err != nil:
			return err
		case !exists:
			return taskNotFound(r.ProjectID, r.TaskID)
		case complete:
			return taskComplete(r.ProjectID, r.TaskID)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO runs (`+taskrow.RunCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.ID, r.OrgID, r.ProjectID, r.TaskID, micros(r.CreatedAt), nullMicros(r.CompletedAt)); err != nil {
			return conflictOr(err, "run %q already exists", r.ID)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// FindRun returns run id of the org. Returns ENOTFOUND.
func (s *Store) FindRun(ctx context.Context, orgID, id string) (*custos.Run, error) {
	r, err := taskrow.Run(s.pool.QueryRow(ctx, `SELECT `+taskrow.RunCols+` FROM runs WHERE org_id = $1 AND id = $2`, orgID, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "run %q not found", id)
	case err != nil:
		return nil, fail("find run", err)
	}
	return r, nil
}

// CompleteRun sets the run's CompletedAt to now if unset, with ev, and
// returns the run; completing a complete run changes nothing and appends
// no event. Returns ENOTFOUND.
func (s *Store) CompleteRun(ctx context.Context, orgID, id string, now time.Time, ev *custos.AuditEvent) (*custos.Run, error) {
	var run *custos.Run
	err := s.tx(ctx, "complete run", func(tx pgx.Tx) error {
		r, err := taskrow.Run(tx.QueryRow(ctx, `UPDATE runs SET completed_at = $1
			WHERE org_id = $2 AND id = $3 AND completed_at IS NULL RETURNING `+taskrow.RunCols, micros(now), orgID, id))
		switch {
		case err == nil:
			run = r
			return appendEvents(ctx, tx, ev)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		r, err = taskrow.Run(tx.QueryRow(ctx, `SELECT `+taskrow.RunCols+` FROM runs WHERE org_id = $1 AND id = $2`, orgID, id))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return custos.Errorf(custos.ENOTFOUND, "run %q not found", id)
		case err != nil:
			return err
		}
		run = r
		return nil
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
	err := s.tx(ctx, "complete task", func(tx pgx.Tx) error {
		t, err := taskrow.Task(tx.QueryRow(ctx, `UPDATE tasks SET completed_at = $1
			WHERE org_id = $2 AND project_id = $3 AND task_id = $4 AND completed_at IS NULL RETURNING `+taskrow.TaskCols,
			micros(now), orgID, projectID, taskID))
		if errors.Is(err, pgx.ErrNoRows) {
			t, err = taskrow.Task(tx.QueryRow(ctx, `SELECT `+taskrow.TaskCols+` FROM tasks WHERE org_id = $1 AND project_id = $2 AND task_id = $3`,
				orgID, projectID, taskID))
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				return taskNotFound(projectID, taskID)
			case err != nil:
				return err
			}
			task = t
			return nil
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE runs SET completed_at = $1
			WHERE org_id = $2 AND project_id = $3 AND task_id = $4 AND completed_at IS NULL`,
			micros(now), orgID, projectID, taskID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE artifacts SET expires_at = $1
			WHERE org_id = $2 AND project_id = $3 AND task_id = $4 AND (expires_at IS NULL OR expires_at > $1)`,
			micros(expires), orgID, projectID, taskID); err != nil {
			return err
		}
		task = t
		return appendEvents(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return task, nil
}

// PutArtifact inserts a with ev, in one transaction: only if its run exists
// in a's org, project and task (ENOTFOUND), and neither the run nor its
// task is complete (ECONFLICT); only if the run's live artifacts other than
// one named a.Name, plus a.Size, stay within maxRunBytes (ETOOLARGE; no
// limit if maxRunBytes is not positive); marking a live artifact of the
// same run and name replaced at a.CreatedAt. The task's row is locked FOR
// SHARE and the run's FOR UPDATE first, so concurrent puts to one run, in
// any number of processes, take turns.
func (s *Store) PutArtifact(ctx context.Context, a *custos.Artifact, maxRunBytes int64, ev *custos.AuditEvent) error {
	return s.tx(ctx, "put artifact", func(tx pgx.Tx) error {
		notFound := custos.Errorf(custos.ENOTFOUND, "run %q not found in task %q", a.RunID, a.TaskID)
		exists, taskDone, err := lockTask(ctx, tx, a.OrgID, a.ProjectID, a.TaskID)
		switch {
		case err != nil:
			return err
		case !exists:
			return notFound
		}
		var runDone *int64
		err = tx.QueryRow(ctx, `SELECT completed_at FROM runs
			WHERE org_id = $1 AND id = $2 AND project_id = $3 AND task_id = $4 FOR UPDATE`,
			a.OrgID, a.RunID, a.ProjectID, a.TaskID).Scan(&runDone)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return notFound
		case err != nil:
			return err
		case taskDone:
			return taskComplete(a.ProjectID, a.TaskID)
		case runDone != nil:
			return custos.Errorf(custos.ECONFLICT, "run %q is complete", a.RunID)
		}
		if maxRunBytes > 0 {
			var used int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(size), 0)::bigint FROM artifacts
				WHERE run_id = $1 AND replaced_at IS NULL AND name <> $2`, a.RunID, a.Name).Scan(&used); err != nil {
				return err
			}
			if used+a.Size > maxRunBytes {
				return custos.Errorf(custos.ETOOLARGE, "run %q would hold %d bytes of artifacts, over its limit of %d", a.RunID, used+a.Size, maxRunBytes)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE artifacts SET replaced_at = $1 WHERE run_id = $2 AND name = $3 AND replaced_at IS NULL`,
			micros(a.CreatedAt), a.RunID, a.Name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO artifacts (`+taskrow.ArtifactCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			a.ID, a.OrgID, a.ProjectID, a.TaskID, a.RunID, a.Name, a.Kind, a.Size, a.SHA256, a.BlobKey,
			blob(a.WrappedDEK), a.KeeperID, micros(a.CreatedAt), nullMicros(a.ExpiresAt), nullMicros(a.ReplacedAt)); err != nil {
			return conflictOr(err, "artifact %q already exists", a.ID)
		}
		return appendEvents(ctx, tx, ev)
	})
}

// FindArtifact returns the live (not replaced) artifact name of the run,
// expired or not. Returns ENOTFOUND.
func (s *Store) FindArtifact(ctx context.Context, orgID, runID, name string) (*custos.Artifact, error) {
	a, err := taskrow.Artifact(s.pool.QueryRow(ctx, `SELECT `+taskrow.ArtifactCols+` FROM artifacts
		WHERE org_id = $1 AND run_id = $2 AND name = $3 AND replaced_at IS NULL`, orgID, runID, name))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "artifact %q not found in run %q", name, runID)
	case err != nil:
		return nil, fail("find artifact", err)
	}
	return a, nil
}

// ListArtifacts returns the run's live artifacts, by name (byte order).
func (s *Store) ListArtifacts(ctx context.Context, orgID, runID string) ([]*custos.Artifact, error) {
	return s.listArtifacts(ctx, "list artifacts", `SELECT `+taskrow.ArtifactCols+` FROM artifacts
		WHERE org_id = $1 AND run_id = $2 AND replaced_at IS NULL ORDER BY name COLLATE "C"`, orgID, runID)
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
		WHERE replaced_at IS NOT NULL OR expires_at <= $1
		ORDER BY least(replaced_at, expires_at), id COLLATE "C" LIMIT $2`, micros(now), limit)
}

// listArtifacts runs query, which selects taskrow.ArtifactCols.
func (s *Store) listArtifacts(ctx context.Context, what, query string, args ...any) ([]*custos.Artifact, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fail(what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Artifact, error) { return taskrow.Artifact(r) })
	if err != nil {
		return nil, fail(what, err)
	}
	if out == nil {
		out = []*custos.Artifact{}
	}
	return out, nil
}

// DeleteArtifact deletes the artifact row id and appends ev, in one
// transaction. Deleting a missing row is not an error and appends no event
// (purges resume, and two purgers may race).
func (s *Store) DeleteArtifact(ctx context.Context, id string, ev *custos.AuditEvent) error {
	return s.tx(ctx, "delete artifact", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM artifacts WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		return appendEvents(ctx, tx, ev)
	})
}

// ArtifactBlobKeys returns the blob keys of every artifact row.
func (s *Store) ArtifactBlobKeys(ctx context.Context) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT blob_key FROM artifacts`)
	if err != nil {
		return nil, fail("list artifact blob keys", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fail("list artifact blob keys", err)
	}
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out, nil
}

// PutIndexFiles inserts or replaces files (UpdatedAt set to now) in the
// project's index, with ev, in one transaction. Of two entries of one path
// the last wins.
func (s *Store) PutIndexFiles(ctx context.Context, orgID, projectID, indexID string, files []custos.IndexFile, now time.Time, ev *custos.AuditEvent) error {
	return s.tx(ctx, "put index files", func(tx pgx.Tx) error {
		if len(files) > 0 {
			b := &pgx.Batch{}
			for _, f := range files {
				b.Queue(`INSERT INTO index_files (org_id, project_id, index_id, path, sha256, summary, updated_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7)
					ON CONFLICT (org_id, project_id, index_id, path) DO UPDATE SET sha256 = excluded.sha256,
						summary = excluded.summary, updated_at = excluded.updated_at`,
					orgID, projectID, indexID, f.Path, f.SHA256, f.Summary, micros(now))
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		return appendEvents(ctx, tx, ev)
	})
}

// IndexHashes returns path → SHA-256 for those of paths in the index.
func (s *Store) IndexHashes(ctx context.Context, orgID, projectID, indexID string, paths []string) (map[string]string, error) {
	out := map[string]string{}
	if len(paths) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT path, sha256 FROM index_files
		WHERE org_id = $1 AND project_id = $2 AND index_id = $3 AND path = ANY($4::text[])`,
		orgID, projectID, indexID, paths)
	if err != nil {
		return nil, fail("read index hashes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, h string
		if err := rows.Scan(&p, &h); err != nil {
			return nil, fail("read index hashes", err)
		}
		out[p] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fail("read index hashes", err)
	}
	return out, nil
}
