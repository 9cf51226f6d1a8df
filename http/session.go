package http

import (
	"context"
	"net/http"

	"github.com/custos-dev/custos"
)

// registerSessionRoutes adds the /v1/session and /v1/confirmations routes.
func (h *handler) registerSessionRoutes() {
	ok := h.svc.Sessions != nil
	h.handleV1("POST /v1/session/wake", ok, "sessions", h.handleWakeSession)
	h.handleV1("POST /v1/session/sleep", ok, "sessions", h.handleSleepSession)
	h.handleV1("GET /v1/session", ok, "sessions", h.handleCurrentSession)
	h.handleV1("POST /v1/confirmations", ok, "sessions", h.handleConfirm)
}

type sessionResponse struct {
	Session *custos.Session `json:"session"`
}

type confirmationResponse struct {
	Confirmation *custos.Confirmation `json:"confirmation"`
}

// handleWakeSession answers POST /v1/session/wake. The body may be left out:
// a session over every secret with the default TTL.
func (h *handler) handleWakeSession(w http.ResponseWriter, r *http.Request) error {
	var in custos.WakeInput
	if err := decodeOptionalBody(w, r, &in); err != nil {
		return err
	}
	if err := custos.ValidateTags(in.Tags); err != nil {
		return err
	}
	s, err := h.svc.Sessions.WakeSession(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &sessionResponse{Session: s})
	return nil
}

// handleSleepSession answers POST /v1/session/sleep.
func (h *handler) handleSleepSession(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := h.svc.Sessions.SleepSession(r.Context()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleCurrentSession answers GET /v1/session.
func (h *handler) handleCurrentSession(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	s, err := h.svc.Sessions.CurrentSession(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &sessionResponse{Session: s})
	return nil
}

// handleConfirm answers POST /v1/confirmations. An empty project means
// custos.DefaultProject.
func (h *handler) handleConfirm(w http.ResponseWriter, r *http.Request) error {
	var in custos.ConfirmInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if in.Project == "" {
		in.Project = custos.DefaultProject
	}
	if err := validateProjectName(in.Project, in.Name); err != nil {
		return err
	}
	c, err := h.svc.Sessions.Confirm(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &confirmationResponse{Confirmation: c})
	return nil
}

// WakeSession starts the device's session through POST /v1/session/wake.
func (c *Client) WakeSession(ctx context.Context, in custos.WakeInput) (*custos.Session, error) {
	var resp sessionResponse
	if err := c.do(ctx, http.MethodPost, "/v1/session/wake", &in, &resp); err != nil {
		return nil, err
	}
	return resp.Session, nil
}

// CurrentSession returns the device's live session through GET /v1/session.
func (c *Client) CurrentSession(ctx context.Context) (*custos.Session, error) {
	var resp sessionResponse
	if err := c.do(ctx, http.MethodGet, "/v1/session", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Session, nil
}

// SleepSession ends the device's sessions through POST /v1/session/sleep.
func (c *Client) SleepSession(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/session/sleep", nil, nil)
}

// Confirm acknowledges a read through POST /v1/confirmations.
func (c *Client) Confirm(ctx context.Context, in custos.ConfirmInput) (*custos.Confirmation, error) {
	var resp confirmationResponse
	if err := c.do(ctx, http.MethodPost, "/v1/confirmations", &in, &resp); err != nil {
		return nil, err
	}
	return resp.Confirmation, nil
}
