package http

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/custos-dev/custos"
)

// MaxAuditLimit is the largest page of audit events one request may ask for.
const MaxAuditLimit = 10000

// registerAuditRoutes adds the /v1/audit routes.
func (h *handler) registerAuditRoutes() {
	ok := h.svc.Audit != nil
	h.handleV1("GET /v1/audit", ok, "audit", h.handleListAudit)
	h.handleV1("GET /v1/audit/verify", ok, "audit", h.handleVerifyAudit)
}

type eventsResponse struct {
	Events []*custos.AuditEvent `json:"events"`
}

// parseAuditFilter reads since (RFC 3339), after (≥ 0) and limit
// (1..MaxAuditLimit) from q.
func parseAuditFilter(q url.Values) (custos.AuditFilter, error) {
	var f custos.AuditFilter
	if err := allowQuery(q, []string{"since", "after", "limit"}); err != nil {
		return f, err
	}
	if err := queryTime(q, "since", &f.Since); err != nil {
		return f, err
	}
	if _, ok := q["after"]; ok {
		n, err := strconv.ParseInt(q.Get("after"), 10, 64)
		if err != nil || n < 0 {
			return f, invalidf("invalid after %q: want a sequence number ≥ 0", clip(q.Get("after"), 24))
		}
		f.AfterSeq = n
	}
	return f, queryLimit(q, MaxAuditLimit, &f.Limit)
}

// handleListAudit answers GET /v1/audit?since=…&after=…&limit=….
func (h *handler) handleListAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := parseAuditFilter(r.URL.Query())
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	events, err := h.svc.Audit.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	if events == nil {
		events = []*custos.AuditEvent{}
	}
	writeJSON(w, r, http.StatusOK, &eventsResponse{Events: events})
	return nil
}

// handleVerifyAudit answers GET /v1/audit/verify.
func (h *handler) handleVerifyAudit(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	v, err := h.svc.Audit.VerifyAudit(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

// ListAudit lists the org's audit events through GET /v1/audit.
func (c *Client) ListAudit(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	if f.AfterSeq < 0 {
		return nil, custos.Errorf(custos.EINVALID, "invalid after: must not be negative")
	}
	if f.Limit < 0 || f.Limit > MaxAuditLimit {
		return nil, custos.Errorf(custos.EINVALID, "invalid limit %d: want 1 to %d", f.Limit, MaxAuditLimit)
	}
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.AfterSeq > 0 {
		q.Set("after", strconv.FormatInt(f.AfterSeq, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var resp eventsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/audit"+fmtQuery(q), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Events, nil
}

// VerifyAudit checks the org's audit chain through GET /v1/audit/verify.
func (c *Client) VerifyAudit(ctx context.Context) (*custos.AuditVerification, error) {
	var v custos.AuditVerification
	if err := c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
