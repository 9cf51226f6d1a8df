package http

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/custos-dev/custos"
)

// registerSecretRoutes adds the /v1/secrets routes.
func (h *handler) registerSecretRoutes() {
	ok := h.svc.Secrets != nil
	h.handleV1("GET /v1/secrets", ok, "secrets", h.handleListSecrets)
	h.handleV1("PUT /v1/secrets/{project}/{name}", ok, "secrets", h.handleSetSecret)
	h.handleV1("DELETE /v1/secrets/{project}/{name}", ok, "secrets", h.handleDeleteSecret)
	h.handleV1("GET /v1/secrets/{project}/{name}/versions", ok, "secrets", h.handleSecretHistory)
	h.handleV1("POST /v1/secrets/access", ok, "secrets", h.handleAccessSecrets)
}

// setSecretRequest is the body of PUT /v1/secrets/{project}/{name}.
type setSecretRequest struct {
	Value       *string           `json:"value"`
	Tags        map[string]string `json:"tags,omitempty"`
	TTL         custos.Duration   `json:"ttl,omitempty"`
	Description string            `json:"description,omitempty"`
}

type secretResponse struct {
	Secret *custos.Secret `json:"secret"`
}

type secretsResponse struct {
	Secrets []*custos.Secret `json:"secrets"`
}

type versionsResponse struct {
	Versions []*custos.SecretVersion `json:"versions"`
}

type valuesResponse struct {
	Secrets []*custos.SecretValue `json:"secrets"`
}

// projectAndName reads and validates the {project} and {name} path values.
func projectAndName(r *http.Request) (string, string, error) {
	project, name := r.PathValue("project"), r.PathValue("name")
	if err := custos.ValidateProject(project); err != nil {
		return "", "", err
	}
	if err := custos.ValidateName(name); err != nil {
		return "", "", err
	}
	return project, name, nil
}

// parseTags parses repeated tag=k=v query values.
func parseTags(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > custos.MaxTags {
		return nil, invalidf("too many tags: %d (at most %d)", len(vals), custos.MaxTags)
	}
	tags := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, invalidf("invalid tag %q: want key=value", clip(kv, 40))
		}
		if err := custos.ValidateTag(k, v); err != nil {
			return nil, err
		}
		if _, dup := tags[k]; dup {
			return nil, invalidf("tag %q given more than once", k)
		}
		tags[k] = v
	}
	return tags, nil
}

// handleListSecrets answers GET /v1/secrets?project=P&tag=k=v…
func (h *handler) handleListSecrets(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowQuery(q, []string{"project"}, "tag"); err != nil {
		return err
	}
	var f custos.SecretFilter
	if f.Project = q.Get("project"); f.Project != "" {
		if err := custos.ValidateProject(f.Project); err != nil {
			return err
		}
	}
	tags, err := parseTags(q["tag"])
	if err != nil {
		return err
	}
	f.Tags = tags
	if err := noBody(w, r); err != nil {
		return err
	}

	secrets, err := h.svc.Secrets.ListSecrets(r.Context(), f)
	if err != nil {
		return err
	}
	if secrets == nil {
		secrets = []*custos.Secret{}
	}
	writeJSON(w, r, http.StatusOK, &secretsResponse{Secrets: secrets})
	return nil
}

// handleSetSecret answers PUT /v1/secrets/{project}/{name}.
func (h *handler) handleSetSecret(w http.ResponseWriter, r *http.Request) error {
	project, name, err := projectAndName(r)
	if err != nil {
		return err
	}
	var req setSecretRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Value == nil:
		return invalidf("value is required")
	case len(*req.Value) > custos.MaxValueBytes:
		return custos.Errorf(custos.ETOOLARGE, "value too large: at most %d bytes", custos.MaxValueBytes)
	case len(req.Description) > custos.MaxDescriptionBytes:
		return invalidf("description too long: at most %d bytes", custos.MaxDescriptionBytes)
	}
	if err := custos.ValidateTags(req.Tags); err != nil {
		return err
	}

	s, err := h.svc.Secrets.SetSecret(r.Context(), custos.SetSecretInput{
		Project:     project,
		Name:        name,
		Value:       *req.Value,
		Tags:        req.Tags,
		TTL:         req.TTL,
		Description: req.Description,
	})
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &secretResponse{Secret: s})
	return nil
}

// handleDeleteSecret answers DELETE /v1/secrets/{project}/{name}.
func (h *handler) handleDeleteSecret(w http.ResponseWriter, r *http.Request) error {
	project, name, err := projectAndName(r)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := h.svc.Secrets.DeleteSecret(r.Context(), project, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleSecretHistory answers GET /v1/secrets/{project}/{name}/versions.
func (h *handler) handleSecretHistory(w http.ResponseWriter, r *http.Request) error {
	project, name, err := projectAndName(r)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	versions, err := h.svc.Secrets.SecretHistory(r.Context(), project, name)
	if err != nil {
		return err
	}
	if versions == nil {
		versions = []*custos.SecretVersion{}
	}
	writeJSON(w, r, http.StatusOK, &versionsResponse{Versions: versions})
	return nil
}

// validateAccess checks an access request; an empty project means
// custos.DefaultProject.
func validateAccess(req *custos.AccessRequest) error {
	if req.Project == "" {
		req.Project = custos.DefaultProject
	}
	if err := custos.ValidateProject(req.Project); err != nil {
		return err
	}
	switch req.Mode {
	case custos.ModeInject, custos.ModeReveal, custos.ModeRun:
	default:
		return invalidf("invalid mode %q: want inject, reveal or run", clip(req.Mode, 16))
	}
	if len(req.Names) == 0 && req.Mode != custos.ModeRun {
		return invalidf("names are required with mode %s", req.Mode)
	}
	if len(req.Names) > custos.MaxNamesPerRequest {
		return invalidf("too many names: %d (at most %d)", len(req.Names), custos.MaxNamesPerRequest)
	}
	for _, n := range req.Names {
		if err := custos.ValidateName(n); err != nil {
			return err
		}
	}
	return nil
}

// handleAccessSecrets answers POST /v1/secrets/access with secret values.
func (h *handler) handleAccessSecrets(w http.ResponseWriter, r *http.Request) error {
	var req custos.AccessRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := validateAccess(&req); err != nil {
		return err
	}
	values, err := h.svc.Secrets.AccessSecrets(r.Context(), req)
	if err != nil {
		return err
	}
	if values == nil {
		values = []*custos.SecretValue{}
	}
	writeJSON(w, r, http.StatusOK, &valuesResponse{Secrets: values})
	return nil
}

// SetSecret stores a new version of a secret through PUT /v1/secrets/{project}/{name}.
func (c *Client) SetSecret(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
	if in.Project == "" {
		in.Project = custos.DefaultProject
	}
	if err := validateProjectName(in.Project, in.Name); err != nil {
		return nil, err
	}
	var resp secretResponse
	err := c.do(ctx, http.MethodPut, secretPath(in.Project, in.Name), &setSecretRequest{
		Value:       &in.Value,
		Tags:        in.Tags,
		TTL:         in.TTL,
		Description: in.Description,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return resp.Secret, nil
}

// ListSecrets lists secret metadata through GET /v1/secrets.
func (c *Client) ListSecrets(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error) {
	q := url.Values{}
	if f.Project != "" {
		q.Set("project", f.Project)
	}
	keys := make([]string, 0, len(f.Tags))
	for k := range f.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Add("tag", k+"="+f.Tags[k])
	}
	var resp secretsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/secrets"+fmtQuery(q), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Secrets, nil
}

// SecretHistory lists a secret's versions through
// GET /v1/secrets/{project}/{name}/versions.
func (c *Client) SecretHistory(ctx context.Context, project, name string) ([]*custos.SecretVersion, error) {
	if err := validateProjectName(project, name); err != nil {
		return nil, err
	}
	var resp versionsResponse
	if err := c.do(ctx, http.MethodGet, secretPath(project, name)+"/versions", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Versions, nil
}

// DeleteSecret deletes a secret through DELETE /v1/secrets/{project}/{name}.
func (c *Client) DeleteSecret(ctx context.Context, project, name string) error {
	if err := validateProjectName(project, name); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, secretPath(project, name), nil, nil)
}

// AccessSecrets fetches secret values through POST /v1/secrets/access.
func (c *Client) AccessSecrets(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
	var resp valuesResponse
	if err := c.do(ctx, http.MethodPost, "/v1/secrets/access", &req, &resp); err != nil {
		return nil, err
	}
	return resp.Secrets, nil
}

// validateProjectName checks a project and name before they go in a URL.
func validateProjectName(project, name string) error {
	if err := custos.ValidateProject(project); err != nil {
		return err
	}
	return custos.ValidateName(name)
}

func secretPath(project, name string) string {
	return "/v1/secrets/" + segment(project) + "/" + segment(name)
}
