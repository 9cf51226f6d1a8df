package tasks_test

import (
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// permitEnv is an org with a permit on (Project, Task) and its run, and
// runs of two other tasks: PROJ-43 of the same project, and Task of
// another project.
type permitEnv struct {
	*Env
	Grant      *custos.PermitGrant
	Permit     string
	Run        *custos.Run
	OtherTask  *custos.Run // a run of PROJ-43 in Project
	OtherProj  *custos.Run // a run of Task in PROJ-2
	OtherGrant *custos.PermitGrant
}

func mustPermitEnv(tb testing.TB) *permitEnv {
	tb.Helper()
	e := MustOpenEnv(tb)
	_, itok := e.MustInstall(tb, "jira-prod")
	g, permit := e.MustPermit(tb, itok, Project, Task)
	pe := &permitEnv{Env: e, Grant: g, Permit: permit, Run: e.MustRun(tb, permit, Task)}
	e.MustPut(tb, permit, Task, pe.Run.ID, "a.txt", "alpha")
	og, op := e.MustPermit(tb, itok, Project, "PROJ-43")
	pe.OtherGrant, pe.OtherTask = og, e.MustRun(tb, op, "PROJ-43")
	e.MustPut(tb, op, "PROJ-43", pe.OtherTask.ID, "a.txt", "other task")
	_, pp := e.MustPermit(tb, itok, "PROJ-2", Task)
	pe.OtherProj = e.MustRun(tb, pp, Task)
	e.MustPut(tb, pp, Task, pe.OtherProj.ID, "a.txt", "other project")
	return pe
}

// permitOp is one permit route, called with a task, project and run.
type permitOp struct {
	name string
	call func(e *Env, permit, projectID, taskID, runID string) error
}

var hashA = strings.Repeat("a", 64)

// permitOps are every call of custos.TaskService that changes or reads
// task data.
var permitOps = []permitOp{
	{"CreateRun", func(e *Env, permit, _, taskID, _ string) error {
		_, err := e.Service.CreateRun(FromIP(), permit, taskID)
		return err
	}},
	{"PutArtifact", func(e *Env, permit, _, taskID, runID string) error {
		_, err := e.Service.PutArtifact(FromIP(), permit, taskID, runID, "a.txt", "", strings.NewReader("overwrite"))
		return err
	}},
	{"GetArtifact", func(e *Env, permit, _, taskID, runID string) error {
		_, _, err := e.Service.GetArtifact(FromIP(), permit, taskID, runID, "a.txt")
		return err
	}},
	{"ListArtifacts", func(e *Env, permit, _, taskID, runID string) error {
		_, err := e.Service.ListArtifacts(FromIP(), permit, taskID, runID)
		return err
	}},
	{"CompleteRun", func(e *Env, permit, _, taskID, runID string) error {
		_, err := e.Service.CompleteRun(FromIP(), permit, taskID, runID)
		return err
	}},
	{"CompleteTask", func(e *Env, permit, _, taskID, _ string) error {
		_, err := e.Service.CompleteTask(FromIP(), permit, taskID)
		return err
	}},
	{"PutIndexFiles", func(e *Env, permit, projectID, _, _ string) error {
		_, err := e.Service.PutIndexFiles(FromIP(), permit, projectID, "main", []custos.IndexFile{{Path: "a.go", SHA256: hashA, Summary: "x"}})
		return err
	}},
	{"StaleIndexFiles", func(e *Env, permit, projectID, _, _ string) error {
		_, err := e.Service.StaleIndexFiles(FromIP(), permit, projectID, "main", []custos.IndexRef{{Path: "a.go", SHA256: hashA}})
		return err
	}},
}

// usesRun reports whether op takes a run id.
func usesRun(op string) bool {
	return op == "PutArtifact" || op == "GetArtifact" || op == "ListArtifacts" || op == "CompleteRun"
}

// usesProject reports whether op takes a project id (the index routes).
func usesProject(op string) bool { return op == "PutIndexFiles" || op == "StaleIndexFiles" }

// denied asserts code, one new audit event denying permitID from the
// caller's address, and an unchanged store.
func denied(tb testing.TB, e *Env, before string, auditBefore int, err error, code, permitID, reason string) {
	tb.Helper()
	Code(tb, err, code)
	evs := e.Audit(tb, e.OrgID)
	if got, want := len(evs), auditBefore+1; got != want {
		tb.Fatalf("%d audit events, want %d", got, want)
	}
	ev := evs[len(evs)-1]
	if ev.Action != custos.ActionTaskDenied || ev.Outcome != custos.OutcomeDenied || ev.KeyID != permitID || ev.IP != "192.0.2.9" || !strings.Contains(ev.Reason, reason) {
		tb.Fatalf("audit event = %+v, want a denial of %s (%s)", ev, permitID, reason)
	}
	if after := e.Snapshot(tb); after != before {
		tb.Fatalf("a denied call changed the store:\n%s\n---\n%s", before, after)
	}
}

// Ensure every permit route refuses, audits and changes nothing when the
// permit is used outside its org/project/task, or is expired.
func TestPermitInvariants(t *testing.T) {
	pe := mustPermitEnv(t)
	e := pe.Env
	for _, op := range permitOps {
		t.Run(op.name, func(t *testing.T) {
			type violation struct {
				name, project, task, run, code, reason string
			}
			var vs []violation
			if usesProject(op.name) {
				vs = append(vs, violation{"ErrForeignProject", "PROJ-2", Task, "", custos.EFORBIDDEN, "another project"})
			} else {
				vs = append(vs, violation{"ErrForeignTask", Project, "PROJ-43", pe.Run.ID, custos.EFORBIDDEN, "another task"})
			}
			if usesRun(op.name) {
				vs = append(vs,
					violation{"ErrForeignRun", Project, Task, pe.OtherTask.ID, custos.EFORBIDDEN, "not a run of the permit's task"},
					violation{"ErrForeignProjectRun", Project, Task, pe.OtherProj.ID, custos.EFORBIDDEN, "not a run of the permit's task"},
					violation{"ErrUnknownRun", Project, Task, custos.NewID(custos.PrefixRun), custos.EFORBIDDEN, "not a run of the permit's task"},
				)
			}
			for _, v := range vs {
				t.Run(v.name, func(t *testing.T) {
					before, n := e.Snapshot(t), len(e.Audit(t, e.OrgID))
					err := op.call(e, pe.Permit, v.project, v.task, v.run)
					denied(t, e, before, n, err, v.code, pe.Grant.ID, v.reason)
				})
			}
			t.Run("ErrBadPermit", func(t *testing.T) {
				// Ensure unknown, malformed and wrong-type credentials are
				// refused without a change.
				for _, tok := range []string{token.New(token.PrefixPermit), "cst_pm_nope", token.New(token.PrefixLaunchCode), ""} {
					before := e.Snapshot(t)
					err := op.call(e, tok, Project, Task, pe.Run.ID)
					Code(t, err, custos.EUNAUTHORIZED)
					if e.Snapshot(t) != before {
						t.Fatal("a bad permit changed the store")
					}
				}
			})
		})
	}
	t.Run("ErrExpiredPermit", func(t *testing.T) {
		// Ensure an expired permit is refused and audited on every route,
		// even within its own scope.
		e.Clock.Add(custos.PermitTTL)
		for _, op := range permitOps {
			before, n := e.Snapshot(t), len(e.Audit(t, e.OrgID))
			err := op.call(e, pe.Permit, Project, Task, pe.Run.ID)
			denied(t, e, before, n, err, custos.EUNAUTHORIZED, pe.Grant.ID, "expired")
		}
	})
}

// Ensure a permit works within its scope: the run routes succeed with its
// own task and runs, and a completed run takes no more artifacts.
func TestPermitScope(t *testing.T) {
	pe := mustPermitEnv(t)
	e := pe.Env
	as, err := e.Service.ListArtifacts(FromIP(), pe.Permit, Task, pe.Run.ID)
	if err != nil || len(as) != 1 || as[0].Name != "a.txt" {
		t.Fatalf("ListArtifacts = %v, %v", as, err)
	}
	if _, err := e.Service.CompleteRun(FromIP(), pe.Permit, Task, pe.Run.ID); err != nil {
		t.Fatal(err)
	}
	before := e.Snapshot(t)
	_, err = e.Service.PutArtifact(FromIP(), pe.Permit, Task, pe.Run.ID, "b.txt", "", strings.NewReader("late"))
	Code(t, err, custos.ECONFLICT)
	if e.Snapshot(t) != before {
		t.Fatal("a put into a complete run changed the store")
	}
	_, err = e.Service.CompleteRun(FromIP(), pe.Permit, Task, "run_nothex")
	Code(t, err, custos.EINVALID)
}
