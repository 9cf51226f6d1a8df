package http

import (
	"context"
	"net/http"
	"time"

	"github.com/custos-dev/custos"
)

// registerKeyRoutes adds the /v1/keys routes.
func (h *handler) registerKeyRoutes() {
	ok := h.svc.Keys != nil
	h.handleV1("POST /v1/keys", ok, "keys", h.handleCreateKey)
	h.handleV1("GET /v1/keys", ok, "keys", h.handleListKeys)
	h.handleV1("POST /v1/keys/{id}/rotate", ok, "keys", h.handleRotateKey)
	h.handleV1("POST /v1/keys/{id}/revoke", ok, "keys", h.handleRevokeKey)
}

// keyTokenResponse is the answer of key creation and rotation: the key and
// its token, shown once.
type keyTokenResponse struct {
	Key   *custos.APIKey `json:"key"`
	Token string         `json:"token"`
}

type keysResponse struct {
	Keys []*custos.APIKey `json:"keys"`
}

// rotateKeyRequest is the optional body of POST /v1/keys/{id}/rotate.
type rotateKeyRequest struct {
	Grace custos.Duration `json:"grace,omitempty"`
}

// keyID reads and validates the {id} path value of a key route.
func keyID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := custos.ValidateID(custos.PrefixKey, id); err != nil {
		return "", err
	}
	return id, nil
}

// handleCreateKey answers POST /v1/keys.
func (h *handler) handleCreateKey(w http.ResponseWriter, r *http.Request) error {
	var in custos.CreateKeyInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if err := custos.ValidateLabel("key name", in.Name); err != nil {
		return err
	}
	if !in.Role.Valid() {
		return invalidf("invalid role %q: want owner, admin, member or agent", clip(string(in.Role), 16))
	}
	key, token, err := h.svc.Keys.CreateKey(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &keyTokenResponse{Key: key, Token: token})
	return nil
}

// handleListKeys answers GET /v1/keys.
func (h *handler) handleListKeys(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	keys, err := h.svc.Keys.ListKeys(r.Context())
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []*custos.APIKey{}
	}
	writeJSON(w, r, http.StatusOK, &keysResponse{Keys: keys})
	return nil
}

// handleRotateKey answers POST /v1/keys/{id}/rotate.
func (h *handler) handleRotateKey(w http.ResponseWriter, r *http.Request) error {
	id, err := keyID(r)
	if err != nil {
		return err
	}
	var req rotateKeyRequest
	if err := decodeOptionalBody(w, r, &req); err != nil {
		return err
	}
	key, token, err := h.svc.Keys.RotateKey(r.Context(), id, time.Duration(req.Grace))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &keyTokenResponse{Key: key, Token: token})
	return nil
}

// handleRevokeKey answers POST /v1/keys/{id}/revoke.
func (h *handler) handleRevokeKey(w http.ResponseWriter, r *http.Request) error {
	id, err := keyID(r)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := h.svc.Keys.RevokeKey(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CreateKey mints a key through POST /v1/keys and returns it with its token.
func (c *Client) CreateKey(ctx context.Context, in custos.CreateKeyInput) (*custos.APIKey, string, error) {
	var resp keyTokenResponse
	if err := c.do(ctx, http.MethodPost, "/v1/keys", &in, &resp); err != nil {
		return nil, "", err
	}
	return resp.Key, resp.Token, nil
}

// ListKeys lists the org's keys through GET /v1/keys.
func (c *Client) ListKeys(ctx context.Context) ([]*custos.APIKey, error) {
	var resp keysResponse
	if err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Keys, nil
}

// RotateKey replaces key id through POST /v1/keys/{id}/rotate and returns
// the new key with its token. A zero grace leaves the server's default.
func (c *Client) RotateKey(ctx context.Context, id string, grace time.Duration) (*custos.APIKey, string, error) {
	if err := custos.ValidateID(custos.PrefixKey, id); err != nil {
		return nil, "", err
	}
	if grace < 0 {
		return nil, "", custos.Errorf(custos.EINVALID, "invalid grace: must not be negative")
	}
	var in any
	if grace > 0 {
		in = &rotateKeyRequest{Grace: custos.Duration(grace)}
	}
	var resp keyTokenResponse
	if err := c.do(ctx, http.MethodPost, "/v1/keys/"+segment(id)+"/rotate", in, &resp); err != nil {
		return nil, "", err
	}
	return resp.Key, resp.Token, nil
}

// RevokeKey stops key id through POST /v1/keys/{id}/revoke.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	if err := custos.ValidateID(custos.PrefixKey, id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/v1/keys/"+segment(id)+"/revoke", nil, nil)
}
