package http

import (
	"context"
	"net/http"

	"github.com/custos-dev/custos"
)

// registerPolicyRoutes adds the /v1/policies routes.
func (h *handler) registerPolicyRoutes() {
	ok := h.svc.Policies != nil
	h.handleV1("POST /v1/policies", ok, "policies", h.handleAddPolicy)
	h.handleV1("GET /v1/policies", ok, "policies", h.handleListPolicies)
	h.handleV1("DELETE /v1/policies/{id}", ok, "policies", h.handleRemovePolicy)
}

type policyResponse struct {
	Policy *custos.Policy `json:"policy"`
}

type policiesResponse struct {
	Policies []*custos.Policy `json:"policies"`
}

// handleAddPolicy answers POST /v1/policies.
func (h *handler) handleAddPolicy(w http.ResponseWriter, r *http.Request) error {
	var in custos.AddPolicyInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if err := custos.ValidateTag(in.TagKey, in.TagValue); err != nil {
		return err
	}
	if in.Rule.Rank() == 0 {
		return invalidf("invalid rule %q: want block_always, require_session, block_models, require_confirmation or notify", clip(string(in.Rule), 24))
	}
	p, err := h.svc.Policies.AddPolicy(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &policyResponse{Policy: p})
	return nil
}

// handleListPolicies answers GET /v1/policies.
func (h *handler) handleListPolicies(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	policies, err := h.svc.Policies.ListPolicies(r.Context())
	if err != nil {
		return err
	}
	if policies == nil {
		policies = []*custos.Policy{}
	}
	writeJSON(w, r, http.StatusOK, &policiesResponse{Policies: policies})
	return nil
}

// handleRemovePolicy answers DELETE /v1/policies/{id}.
func (h *handler) handleRemovePolicy(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := custos.ValidateID(custos.PrefixPolicy, id); err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := h.svc.Policies.RemovePolicy(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AddPolicy stores a policy through POST /v1/policies.
func (c *Client) AddPolicy(ctx context.Context, in custos.AddPolicyInput) (*custos.Policy, error) {
	var resp policyResponse
	if err := c.do(ctx, http.MethodPost, "/v1/policies", &in, &resp); err != nil {
		return nil, err
	}
	return resp.Policy, nil
}

// ListPolicies lists the org's policies through GET /v1/policies.
func (c *Client) ListPolicies(ctx context.Context) ([]*custos.Policy, error) {
	var resp policiesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/policies", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Policies, nil
}

// RemovePolicy deletes policy id through DELETE /v1/policies/{id}.
func (c *Client) RemovePolicy(ctx context.Context, id string) error {
	if err := custos.ValidateID(custos.PrefixPolicy, id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, "/v1/policies/"+segment(id), nil, nil)
}
