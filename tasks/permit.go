package tasks

import (
	"context"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// CheckPermit implements custos.TaskService. An expired permit's use is
// audited in its org.
func (s *Service) CheckPermit(ctx context.Context, permit string) (*custos.Permit, error) {
	if err := token.Check(permit, token.PrefixPermit); err != nil {
		return nil, err
	}
	p, err := s.store.FindPermitByHash(ctx, token.Hash(permit))
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid permit")
	} else if err != nil {
		return nil, err
	}
	if !s.timeNow().Before(p.ExpiresAt) {
		ev := s.denial(ctx, p)
		return nil, s.deny(ctx, custos.Errorf(custos.EUNAUTHORIZED, "permit %s expired; open the task's launch link again", p.ID), ev)
	}
	return p, nil
}

// denial starts the audit event of a permit used outside its scope.
func (s *Service) denial(ctx context.Context, p *custos.Permit) *custos.AuditEvent {
	ev := s.event(ctx, p.OrgID, p.ID, custos.ActionTaskDenied, custos.OutcomeDenied)
	ev.Project = p.ProjectID
	return ev
}

// scope is a permit checked against a request's path.
type scope struct {
	permit *custos.Permit
	run    *custos.Run // when the request names one
}

// event starts an audit event of the permit's holder.
func (sc *scope) event(ctx context.Context, s *Service, action string) *custos.AuditEvent {
	ev := s.event(ctx, sc.permit.OrgID, sc.permit.ID, action, custos.OutcomeOK)
	ev.Project = sc.permit.ProjectID
	return ev
}

// scope checks, before anything changes, that permit is live, taskID is its
// task and runID (if not empty) a run of that task. A violation is audited
// and returns EFORBIDDEN.
func (s *Service) scope(ctx context.Context, permit, taskID, runID string) (*scope, error) {
	p, err := s.CheckPermit(ctx, permit)
	if err != nil {
		return nil, err
	}
	if taskID != p.TaskID {
		ev := s.denial(ctx, p)
		ev.Reason = "the permit is for another task (asked for task " + quote(taskID) + ")"
		return nil, s.deny(ctx, custos.Errorf(custos.EFORBIDDEN, "the permit is for another task"), ev)
	}
	sc := &scope{permit: p}
	if runID == "" {
		return sc, nil
	}
	if err := custos.ValidateID(custos.PrefixRun, runID); err != nil {
		return nil, err
	}
	r, err := s.store.FindRun(ctx, p.OrgID, runID)
	if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
		return nil, err
	}
	if err != nil || r.ProjectID != p.ProjectID || r.TaskID != p.TaskID {
		ev := s.denial(ctx, p)
		ev.Target, ev.Reason = runID, "run "+runID+" is not a run of the permit's task"
		return nil, s.deny(ctx, custos.Errorf(custos.EFORBIDDEN, "run %s is not a run of the permit's task", runID), ev)
	}
	sc.run = r
	return sc, nil
}

// projectScope checks that permit is live and projectID is its project. A
// violation is audited and returns EFORBIDDEN.
func (s *Service) projectScope(ctx context.Context, permit, projectID string) (*scope, error) {
	p, err := s.CheckPermit(ctx, permit)
	if err != nil {
		return nil, err
	}
	if projectID != p.ProjectID {
		ev := s.denial(ctx, p)
		ev.Reason = "the permit is for another project (asked for project " + quote(projectID) + ")"
		return nil, s.deny(ctx, custos.Errorf(custos.EFORBIDDEN, "the permit is for another project"), ev)
	}
	return &scope{permit: p}, nil
}

// CheckScope implements custos.TaskService.
func (s *Service) CheckScope(ctx context.Context, permit, projectID, taskID string) (*custos.Permit, error) {
	if projectID != "" {
		sc, err := s.projectScope(ctx, permit, projectID)
		if err != nil {
			return nil, err
		}
		if taskID == "" {
			return sc.permit, nil
		}
	}
	if taskID == "" {
		return s.CheckPermit(ctx, permit)
	}
	sc, err := s.scope(ctx, permit, taskID, "")
	if err != nil {
		return nil, err
	}
	return sc.permit, nil
}

// CreateRun implements custos.TaskService.
func (s *Service) CreateRun(ctx context.Context, permit, taskID string) (*custos.Run, error) {
	sc, err := s.scope(ctx, permit, taskID, "")
	if err != nil {
		return nil, err
	}
	p := sc.permit
	r := &custos.Run{ID: custos.NewID(custos.PrefixRun), OrgID: p.OrgID, ProjectID: p.ProjectID, TaskID: p.TaskID, CreatedAt: s.timeNow()}
	ev := sc.event(ctx, s, custos.ActionRunCreate)
	ev.Target, ev.Reason = r.ID, "task "+quote(p.TaskID)
	if err := s.store.CreateRun(ctx, r, ev); err != nil {
		if custos.ErrorCode(err) == custos.ECONFLICT {
			return nil, custos.Errorf(custos.ECONFLICT, "task %s is complete; no new runs", quote(p.TaskID))
		}
		return nil, err
	}
	return r, nil
}

// CompleteRun implements custos.TaskService.
func (s *Service) CompleteRun(ctx context.Context, permit, taskID, runID string) (*custos.Run, error) {
	if runID == "" {
		return nil, custos.Errorf(custos.EINVALID, "no run id")
	}
	sc, err := s.scope(ctx, permit, taskID, runID)
	if err != nil {
		return nil, err
	} else if sc.run.CompletedAt != nil {
		return sc.run, nil
	}
	ev := sc.event(ctx, s, custos.ActionRunComplete)
	ev.Target, ev.Reason = runID, "task "+quote(taskID)
	return s.store.CompleteRun(ctx, sc.permit.OrgID, runID, s.timeNow(), ev)
}

// CompleteTask implements custos.TaskService. Every artifact of the task
// expires Retention after completion.
func (s *Service) CompleteTask(ctx context.Context, permit, taskID string) (*custos.Task, error) {
	sc, err := s.scope(ctx, permit, taskID, "")
	if err != nil {
		return nil, err
	}
	p := sc.permit
	t, err := s.store.FindTask(ctx, p.OrgID, p.ProjectID, p.TaskID)
	if err != nil {
		return nil, err
	} else if t.CompletedAt != nil {
		return t, nil
	}
	now := s.timeNow()
	ev := sc.event(ctx, s, custos.ActionTaskComplete)
	ev.Target, ev.Reason = p.TaskID, "artifacts expire in "+s.retention.String()
	return s.store.CompleteTask(ctx, p.OrgID, p.ProjectID, p.TaskID, now, now.Add(s.retention), ev)
}
