package http

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/custos-dev/custos"
)

// registerGatewayRoutes adds the management routes of the model gateway:
// /v1/providers, /v1/budgets, /v1/privacy and /v1/usage.
func (h *handler) registerGatewayRoutes() {
	p, b, pr, u := h.svc.Providers != nil, h.svc.Budgets != nil, h.svc.Privacy != nil, h.svc.Usage != nil
	h.handleV1("POST /v1/providers", p, "providers", h.handleAddProvider)
	h.handleV1("GET /v1/providers", p, "providers", h.handleListProviders)
	h.handleV1("DELETE /v1/providers/{name}", p, "providers", h.handleRemoveProvider)
	h.handleV1("PUT /v1/budgets", b, "budgets", h.handleSetBudget)
	h.handleV1("GET /v1/budgets", b, "budgets", h.handleListBudgets)
	h.handleV1("DELETE /v1/budgets", b, "budgets", h.handleRemoveBudget)
	h.handleV1("PUT /v1/privacy", pr, "privacy", h.handleSetPrivacy)
	h.handleV1("GET /v1/privacy", pr, "privacy", h.handleListPrivacy)
	h.handleV1("DELETE /v1/privacy", pr, "privacy", h.handleRemovePrivacy)
	h.handleV1("GET /v1/usage", u, "usage", h.handleListUsage)
	h.handleV1("GET /v1/usage/summary", u, "usage", h.handleSummarizeUsage)
}

type providerResponse struct {
	Provider *custos.ModelProvider `json:"provider"`
}

type providersResponse struct {
	Providers []*custos.ModelProvider `json:"providers"`
}

// handleAddProvider answers POST /v1/providers.
func (h *handler) handleAddProvider(w http.ResponseWriter, r *http.Request) error {
	var in custos.AddProviderInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	p, err := h.svc.Providers.AddProvider(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &providerResponse{Provider: p})
	return nil
}

// handleListProviders answers GET /v1/providers.
func (h *handler) handleListProviders(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	ps, err := h.svc.Providers.ListProviders(r.Context())
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []*custos.ModelProvider{}
	}
	writeJSON(w, r, http.StatusOK, &providersResponse{Providers: ps})
	return nil
}

// handleRemoveProvider answers DELETE /v1/providers/{name}.
func (h *handler) handleRemoveProvider(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if name == "" || len(name) > 64 {
		return invalidf("invalid provider name")
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := h.svc.Providers.RemoveProvider(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type budgetResponse struct {
	Budget *custos.Budget `json:"budget"`
}

type budgetsResponse struct {
	Budgets []*custos.Budget `json:"budgets"`
}

// budgetInput is the body of PUT /v1/budgets.
type budgetInput struct {
	KeyID  string `json:"key_id,omitempty"`
	Period string `json:"period"`
	Limit  int64  `json:"limit"`
}

// handleSetBudget answers PUT /v1/budgets.
func (h *handler) handleSetBudget(w http.ResponseWriter, r *http.Request) error {
	var in budgetInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if in.KeyID != "" {
		if err := custos.ValidateID(custos.PrefixKey, in.KeyID); err != nil {
			return err
		}
	}
	b, err := h.svc.Budgets.SetBudget(r.Context(), custos.Budget{KeyID: in.KeyID, Period: in.Period, Limit: in.Limit})
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &budgetResponse{Budget: b})
	return nil
}

// handleListBudgets answers GET /v1/budgets.
func (h *handler) handleListBudgets(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	bs, err := h.svc.Budgets.ListBudgets(r.Context())
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []*custos.Budget{}
	}
	writeJSON(w, r, http.StatusOK, &budgetsResponse{Budgets: bs})
	return nil
}

// handleRemoveBudget answers DELETE /v1/budgets?period=…[&key_id=…].
func (h *handler) handleRemoveBudget(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowQuery(q, []string{"period", "key_id"}); err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	keyID, period := q.Get("key_id"), q.Get("period")
	if keyID != "" {
		if err := custos.ValidateID(custos.PrefixKey, keyID); err != nil {
			return err
		}
	}
	if period != custos.PeriodDay && period != custos.PeriodMonth {
		return invalidf("period must be day or month")
	}
	if err := h.svc.Budgets.RemoveBudget(r.Context(), keyID, period); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type privacyResponse struct {
	Rule *custos.PrivacyRule `json:"rule"`
}

type privacyRulesResponse struct {
	Rules []*custos.PrivacyRule `json:"rules"`
}

// privacyInput is the body of PUT /v1/privacy.
type privacyInput struct {
	Scope  string `json:"scope"`
	Target string `json:"target,omitempty"`
	Mode   string `json:"mode"`
}

// handleSetPrivacy answers PUT /v1/privacy.
func (h *handler) handleSetPrivacy(w http.ResponseWriter, r *http.Request) error {
	var in privacyInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if in.Scope == custos.ScopeKey {
		if err := custos.ValidateID(custos.PrefixKey, in.Target); err != nil {
			return err
		}
	}
	p, err := h.svc.Privacy.SetPrivacy(r.Context(), custos.PrivacyRule{Scope: in.Scope, Target: in.Target, Mode: in.Mode})
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &privacyResponse{Rule: p})
	return nil
}

// handleListPrivacy answers GET /v1/privacy.
func (h *handler) handleListPrivacy(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	rs, err := h.svc.Privacy.ListPrivacy(r.Context())
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []*custos.PrivacyRule{}
	}
	writeJSON(w, r, http.StatusOK, &privacyRulesResponse{Rules: rs})
	return nil
}

// handleRemovePrivacy answers DELETE /v1/privacy?scope=…[&target=…].
func (h *handler) handleRemovePrivacy(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowQuery(q, []string{"scope", "target"}); err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	scope, target := q.Get("scope"), q.Get("target")
	switch scope {
	case custos.ScopeOrg, custos.ScopeProject, custos.ScopeKey:
	default:
		return invalidf("scope must be org, project or key")
	}
	if len(target) > 128 {
		return invalidf("target is longer than 128 bytes")
	}
	if err := h.svc.Privacy.RemovePrivacy(r.Context(), scope, target); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type usageResponse struct {
	Usage []*custos.UsageRecord `json:"usage"`
}

type usageSummaryResponse struct {
	By      string                 `json:"by"`
	Summary []*custos.UsageSummary `json:"summary"`
}

// parseUsageFilter reads since and until (RFC 3339), key_id and limit.
func parseUsageFilter(q url.Values, extra ...string) (custos.UsageFilter, error) {
	var f custos.UsageFilter
	if err := allowQuery(q, append([]string{"since", "until", "key_id", "limit"}, extra...)); err != nil {
		return f, err
	}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if err := queryTime(q, name, t); err != nil {
			return f, err
		}
		*t = t.UTC()
	}
	if f.KeyID = q.Get("key_id"); f.KeyID != "" {
		if err := custos.ValidateID(custos.PrefixKey, f.KeyID); err != nil {
			return f, err
		}
	}
	return f, queryLimit(q, MaxUsageLimit, &f.Limit)
}

// MaxUsageLimit is the most usage records one listing returns.
const MaxUsageLimit = 10000

// handleListUsage answers GET /v1/usage.
func (h *handler) handleListUsage(w http.ResponseWriter, r *http.Request) error {
	f, err := parseUsageFilter(r.URL.Query())
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	us, err := h.svc.Usage.ListUsage(r.Context(), f)
	if err != nil {
		return err
	}
	if us == nil {
		us = []*custos.UsageRecord{}
	}
	writeJSON(w, r, http.StatusOK, &usageResponse{Usage: us})
	return nil
}

// handleSummarizeUsage answers GET /v1/usage/summary?by=model|key|provider|day.
func (h *handler) handleSummarizeUsage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, err := parseUsageFilter(q, "by")
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	by := q.Get("by")
	if by == "" {
		by = custos.UsageByModel
	}
	sum, err := h.svc.Usage.SummarizeUsage(r.Context(), f, by)
	if err != nil {
		return err
	}
	if sum == nil {
		sum = []*custos.UsageSummary{}
	}
	writeJSON(w, r, http.StatusOK, &usageSummaryResponse{By: by, Summary: sum})
	return nil
}

// AddProvider stores a model provider through POST /v1/providers.
func (c *Client) AddProvider(ctx context.Context, in custos.AddProviderInput) (*custos.ModelProvider, error) {
	var resp providerResponse
	if err := c.do(ctx, http.MethodPost, "/v1/providers", &in, &resp); err != nil {
		return nil, err
	}
	return resp.Provider, nil
}

// ListProviders lists the org's providers through GET /v1/providers.
func (c *Client) ListProviders(ctx context.Context) ([]*custos.ModelProvider, error) {
	var resp providersResponse
	if err := c.do(ctx, http.MethodGet, "/v1/providers", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Providers, nil
}

// RemoveProvider deletes provider name through DELETE /v1/providers/{name}.
func (c *Client) RemoveProvider(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/providers/"+segment(name), nil, nil)
}

// SetBudget creates or replaces a budget through PUT /v1/budgets.
func (c *Client) SetBudget(ctx context.Context, b custos.Budget) (*custos.Budget, error) {
	var resp budgetResponse
	if err := c.do(ctx, http.MethodPut, "/v1/budgets", &budgetInput{KeyID: b.KeyID, Period: b.Period, Limit: b.Limit}, &resp); err != nil {
		return nil, err
	}
	return resp.Budget, nil
}

// ListBudgets lists the org's budgets through GET /v1/budgets.
func (c *Client) ListBudgets(ctx context.Context) ([]*custos.Budget, error) {
	var resp budgetsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/budgets", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Budgets, nil
}

// RemoveBudget deletes a budget through DELETE /v1/budgets.
func (c *Client) RemoveBudget(ctx context.Context, keyID, period string) error {
	q := url.Values{"period": {period}}
	if keyID != "" {
		q.Set("key_id", keyID)
	}
	return c.do(ctx, http.MethodDelete, "/v1/budgets?"+q.Encode(), nil, nil)
}

// SetPrivacy creates or replaces a privacy rule through PUT /v1/privacy.
func (c *Client) SetPrivacy(ctx context.Context, r custos.PrivacyRule) (*custos.PrivacyRule, error) {
	var resp privacyResponse
	if err := c.do(ctx, http.MethodPut, "/v1/privacy", &privacyInput{Scope: r.Scope, Target: r.Target, Mode: r.Mode}, &resp); err != nil {
		return nil, err
	}
	return resp.Rule, nil
}

// ListPrivacy lists the org's privacy rules through GET /v1/privacy.
func (c *Client) ListPrivacy(ctx context.Context) ([]*custos.PrivacyRule, error) {
	var resp privacyRulesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/privacy", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Rules, nil
}

// RemovePrivacy deletes a privacy rule through DELETE /v1/privacy.
func (c *Client) RemovePrivacy(ctx context.Context, scope, target string) error {
	q := url.Values{"scope": {scope}}
	if target != "" {
		q.Set("target", target)
	}
	return c.do(ctx, http.MethodDelete, "/v1/privacy?"+q.Encode(), nil, nil)
}

func usageQuery(f custos.UsageFilter) url.Values {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	if f.KeyID != "" {
		q.Set("key_id", f.KeyID)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ListUsage lists usage records through GET /v1/usage.
func (c *Client) ListUsage(ctx context.Context, f custos.UsageFilter) ([]*custos.UsageRecord, error) {
	var resp usageResponse
	if err := c.do(ctx, http.MethodGet, "/v1/usage"+fmtQuery(usageQuery(f)), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Usage, nil
}

// SummarizeUsage groups usage through GET /v1/usage/summary.
func (c *Client) SummarizeUsage(ctx context.Context, f custos.UsageFilter, by string) ([]*custos.UsageSummary, error) {
	q := usageQuery(f)
	q.Set("by", by)
	var resp usageSummaryResponse
	if err := c.do(ctx, http.MethodGet, "/v1/usage/summary"+fmtQuery(q), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Summary, nil
}
