package http

import (
	"context"
	"net/http"
	"net/url"

	"github.com/custos-dev/custos"
)

// registerDeviceRoutes adds the /v1/devices routes.
func (h *handler) registerDeviceRoutes() {
	ok := h.svc.Devices != nil
	h.handleV1("GET /v1/devices", ok, "devices", h.handleListDevices)
	h.handleV1("POST /v1/devices/{id}/approve", ok, "devices", h.handleApproveDevice)
	h.handleV1("POST /v1/devices/{id}/deny", ok, "devices", h.handleDenyDevice)
	h.handleV1("POST /v1/devices/{id}/revoke", ok, "devices", h.handleRevokeDevice)
}

type deviceResponse struct {
	Device *custos.Device `json:"device"`
}

type devicesResponse struct {
	Devices []*custos.Device `json:"devices"`
}

// approveDeviceRequest is the body of POST /v1/devices/{id}/approve.
type approveDeviceRequest struct {
	Level custos.Level `json:"level"`
}

// deviceID reads and validates the {id} path value of a device route.
func deviceID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := custos.ValidateID(custos.PrefixDevice, id); err != nil {
		return "", err
	}
	return id, nil
}

// validateDeviceStatus accepts "" (all) or a known device status.
func validateDeviceStatus(s custos.DeviceStatus) error {
	switch s {
	case "", custos.DevicePending, custos.DeviceApproved, custos.DeviceDenied, custos.DeviceRevoked:
		return nil
	}
	return invalidf("invalid status %q: want pending, approved, denied or revoked", clip(string(s), 16))
}

// handleListDevices answers GET /v1/devices?status=S.
func (h *handler) handleListDevices(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowQuery(q, []string{"status"}); err != nil {
		return err
	}
	status := custos.DeviceStatus(q.Get("status"))
	if _, given := q["status"]; given && status == "" {
		return invalidf("invalid status \"\": want pending, approved, denied or revoked")
	}
	if err := validateDeviceStatus(status); err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	devices, err := h.svc.Devices.ListDevices(r.Context(), status)
	if err != nil {
		return err
	}
	if devices == nil {
		devices = []*custos.Device{}
	}
	writeJSON(w, r, http.StatusOK, &devicesResponse{Devices: devices})
	return nil
}

// handleApproveDevice answers POST /v1/devices/{id}/approve.
func (h *handler) handleApproveDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req approveDeviceRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if !req.Level.Valid() {
		return invalidf("invalid level %q: want read, read-write or full", clip(string(req.Level), 16))
	}
	d, err := h.svc.Devices.ApproveDevice(r.Context(), id, req.Level)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &deviceResponse{Device: d})
	return nil
}

// handleDenyDevice answers POST /v1/devices/{id}/deny.
func (h *handler) handleDenyDevice(w http.ResponseWriter, r *http.Request) error {
	return h.decideDevice(w, r, h.svc.Devices.DenyDevice)
}

// handleRevokeDevice answers POST /v1/devices/{id}/revoke.
func (h *handler) handleRevokeDevice(w http.ResponseWriter, r *http.Request) error {
	return h.decideDevice(w, r, h.svc.Devices.RevokeDevice)
}

// decideDevice runs a bodyless decision on the device in the path.
func (h *handler) decideDevice(w http.ResponseWriter, r *http.Request, decide func(context.Context, string) (*custos.Device, error)) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	d, err := decide(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &deviceResponse{Device: d})
	return nil
}

// ListDevices lists the org's devices through GET /v1/devices; status ""
// means all.
func (c *Client) ListDevices(ctx context.Context, status custos.DeviceStatus) ([]*custos.Device, error) {
	if err := validateDeviceStatus(status); err != nil {
		return nil, err
	}
	q := url.Values{}
	if status != "" {
		q.Set("status", string(status))
	}
	var resp devicesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/devices"+fmtQuery(q), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Devices, nil
}

// ApproveDevice approves device id at level through
// POST /v1/devices/{id}/approve.
func (c *Client) ApproveDevice(ctx context.Context, id string, level custos.Level) (*custos.Device, error) {
	return c.deviceAction(ctx, id, "approve", &approveDeviceRequest{Level: level})
}

// DenyDevice denies device id through POST /v1/devices/{id}/deny.
func (c *Client) DenyDevice(ctx context.Context, id string) (*custos.Device, error) {
	return c.deviceAction(ctx, id, "deny", nil)
}

// RevokeDevice revokes device id through POST /v1/devices/{id}/revoke.
func (c *Client) RevokeDevice(ctx context.Context, id string) (*custos.Device, error) {
	return c.deviceAction(ctx, id, "revoke", nil)
}

func (c *Client) deviceAction(ctx context.Context, id, action string, in *approveDeviceRequest) (*custos.Device, error) {
	if err := custos.ValidateID(custos.PrefixDevice, id); err != nil {
		return nil, err
	}
	var body any
	if in != nil {
		body = in
	}
	var resp deviceResponse
	if err := c.do(ctx, http.MethodPost, "/v1/devices/"+segment(id)+"/"+action, body, &resp); err != nil {
		return nil, err
	}
	return resp.Device, nil
}
