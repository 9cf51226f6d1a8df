package tasks

import (
	"context"
	"net/url"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// LaunchQuery returns the query (custos://launch?…) or fragment (https
// form) of a launch link: code, project and task, URL-escaped.
func LaunchQuery(code, projectID, taskID string) string {
	return url.Values{"code": {code}, "project": {projectID}, "task": {taskID}}.Encode()
}

// ParseLaunchQuery reads the code, project and task of a launch link's
// query or fragment (what LaunchQuery makes). Returns EINVALID if one is
// missing, given twice or malformed; the message never repeats the code.
func ParseLaunchQuery(q string) (custos.LaunchExchangeInput, error) {
	var in custos.LaunchExchangeInput
	if len(q) > 1024 {
		return in, custos.Errorf(custos.EINVALID, "invalid launch link: too long")
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return in, custos.Errorf(custos.EINVALID, "invalid launch link: not a query string")
	}
	for _, k := range []string{"code", "project", "task"} {
		if len(v[k]) != 1 {
			return in, custos.Errorf(custos.EINVALID, "invalid launch link: want exactly one %s", k)
		}
	}
	for k := range v {
		if k != "code" && k != "project" && k != "task" {
			return in, custos.Errorf(custos.EINVALID, "invalid launch link: only code, project and task are allowed")
		}
	}
	in = custos.LaunchExchangeInput{Code: v.Get("code"), ProjectID: v.Get("project"), TaskID: v.Get("task")}
	if err := token.Check(in.Code, token.PrefixLaunchCode); err != nil {
		return custos.LaunchExchangeInput{}, custos.Errorf(custos.EINVALID, "invalid launch link: %s", custos.ErrorMessage(err))
	} else if err := validatePair(in.ProjectID, in.TaskID); err != nil {
		return custos.LaunchExchangeInput{}, err
	}
	return in, nil
}

// validatePair checks a projectId and taskId.
func validatePair(projectID, taskID string) error {
	if err := custos.ValidateRef("projectId", projectID); err != nil {
		return err
	}
	return custos.ValidateRef("taskId", taskID)
}

// CreateLaunchLink implements custos.LaunchService.
func (s *Service) CreateLaunchLink(ctx context.Context, call *custos.TrackerCall, in custos.LaunchLinkInput) (*custos.LaunchLink, error) {
	if call == nil || call.Install == nil || call.Spent == nil || call.Spent.InstallID != call.Install.ID {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "a tracker call with a spent request key is required")
	}
	if err := validatePair(in.ProjectID, in.TaskID); err != nil {
		return nil, err
	}
	ttl := time.Duration(in.TTL)
	if ttl == 0 {
		ttl = custos.DefaultLaunchTTL
	} else if ttl < custos.MinLaunchTTL || ttl > custos.MaxLaunchTTL {
		return nil, custos.Errorf(custos.EINVALID, "invalid ttl %s: a launch code lives 1 to 14 days (24h to 336h)", ttl)
	}
	inst := call.Install
	now := s.timeNow()
	tok := token.New(token.PrefixLaunchCode)
	c := &custos.LaunchCode{ID: custos.NewID(custos.PrefixLaunchCode), OrgID: inst.OrgID, InstallID: inst.ID,
		ProjectID: in.ProjectID, TaskID: in.TaskID, Hash: token.Hash(tok), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	ev := s.event(ctx, inst.OrgID, inst.ID, custos.ActionLaunchCreate, custos.OutcomeOK)
	ev.Target, ev.Project, ev.Reason = c.ID, c.ProjectID, "task "+quote(c.TaskID)+", ttl "+ttl.String()
	if err := s.store.CreateLaunchCode(ctx, c, ev); err != nil {
		return nil, err
	}
	l := &custos.LaunchLink{Code: tok, ID: c.ID, ProjectID: c.ProjectID, TaskID: c.TaskID, ExpiresAt: c.ExpiresAt}
	q := LaunchQuery(tok, c.ProjectID, c.TaskID)
	l.Link = custos.LaunchScheme + "://launch?" + q
	if s.publicURL != "" {
		// A fragment, so the code never reaches a server's access log.
		l.URL = s.publicURL + custos.LaunchPath + "#" + q
	}
	return l, nil
}

// ExchangeLaunchCode implements custos.LaunchService.
func (s *Service) ExchangeLaunchCode(ctx context.Context, in custos.LaunchExchangeInput) (*custos.PermitGrant, error) {
	if err := token.Check(in.Code, token.PrefixLaunchCode); err != nil {
		return nil, err
	} else if err := validatePair(in.ProjectID, in.TaskID); err != nil {
		return nil, err
	}
	hash := token.Hash(in.Code)
	now := s.timeNow()
	tok := token.New(token.PrefixPermit)
	p := &custos.Permit{ID: custos.NewID(custos.PrefixPermit), ProjectID: in.ProjectID, TaskID: in.TaskID,
		Hash: token.Hash(tok), CreatedAt: now, ExpiresAt: now.Add(custos.PermitTTL)}
	ev := s.event(ctx, "", p.ID, custos.ActionLaunchExchange, custos.OutcomeOK)
	ev.Target, ev.Project, ev.Reason = p.ID, in.ProjectID, "permit for task "+quote(in.TaskID)
	c, err := s.store.ExchangeLaunchCode(ctx, hash, in.ProjectID, in.TaskID, now, p, ev)
	if err == nil {
		return &custos.PermitGrant{Permit: tok, ID: p.ID, OrgID: c.OrgID, ProjectID: p.ProjectID, TaskID: p.TaskID, ExpiresAt: p.ExpiresAt}, nil
	} else if custos.ErrorCode(err) != custos.ENOTFOUND {
		return nil, err
	}
	return nil, s.refuseLaunchCode(ctx, hash, in, now)
}

// refuseLaunchCode explains and audits a launch code that could not be
// exchanged.
func (s *Service) refuseLaunchCode(ctx context.Context, hash string, in custos.LaunchExchangeInput, now time.Time) error {
	c, err := s.store.FindLaunchCodeByHash(ctx, hash)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return custos.Errorf(custos.EUNAUTHORIZED, "invalid launch code")
	} else if err != nil {
		return err
	}
	var refusal error
	switch {
	case c.UsedAt != nil:
		refusal = custos.Errorf(custos.EUNAUTHORIZED, "launch code %s was already used; ask the tracker for a new link", c.ID)
	case !now.Before(c.ExpiresAt):
		refusal = custos.Errorf(custos.EUNAUTHORIZED, "launch code %s expired; ask the tracker for a new link", c.ID)
	case c.ProjectID != in.ProjectID || c.TaskID != in.TaskID:
		refusal = custos.Errorf(custos.EFORBIDDEN, "launch code %s is bound to another project and task", c.ID)
	default:
		revoked, err := s.installRevoked(ctx, c.OrgID, c.InstallID)
		if err != nil {
			return err
		}
		if revoked {
			refusal = custos.Errorf(custos.EUNAUTHORIZED, "launch code %s was made by a tracker install that has been revoked", c.ID)
		} else { // another exchange won meanwhile
			refusal = custos.Errorf(custos.EUNAUTHORIZED, "launch code %s was already used; ask the tracker for a new link", c.ID)
		}
	}
	ev := s.event(ctx, c.OrgID, "", custos.ActionLaunchExchange, custos.OutcomeDenied)
	ev.Target, ev.Project = c.ID, c.ProjectID
	ev.Reason = custos.ErrorMessage(refusal) + " (asked for project " + quote(in.ProjectID) + ", task " + quote(in.TaskID) + ")"
	return s.deny(ctx, refusal, ev)
}

// installRevoked reports whether install id of org is revoked (or gone).
func (s *Service) installRevoked(ctx context.Context, orgID, id string) (bool, error) {
	ins, err := s.store.ListTrackerInstalls(ctx, orgID)
	if err != nil {
		return false, err
	}
	for _, in := range ins {
		if in.ID == id {
			return in.RevokedAt != nil, nil
		}
	}
	return true, nil
}
