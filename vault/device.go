package vault

import (
	"context"
	"fmt"

	"github.com/custos-dev/custos"
)

// device returns the caller's device if it is approved at level want or
// above. A device seen for the first time is recorded as pending. Every
// refusal is audited under action.
func (s *Service) device(ctx context.Context, c *custos.Caller, want custos.Level, action string) (*custos.Device, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	return s.deviceIn(ctx, v, c, want, action)
}

// deviceIn is device, looking the device up through v.
func (s *Service) deviceIn(ctx context.Context, v *view, c *custos.Caller, want custos.Level, action string) (*custos.Device, error) {
	fp := c.Fingerprint()
	d, err := v.device(ctx, c.OrgID(), fp)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		d, err = s.registerDevice(ctx, c, fp)
	}
	if err != nil {
		return nil, err
	}
	switch d.Status {
	case custos.DeviceApproved:
		if !d.Level.Allows(want) {
			return nil, s.deny(ctx, s.deviceEvent(c, d, action), custos.Errorf(custos.EFORBIDDEN,
				"device %s is approved at level %s; this needs %s (an admin runs: custos device approve %s --level %s)", d.ID, d.Level, want, d.ID, want))
		}
		return d, nil
	case custos.DevicePending:
		return nil, s.deny(ctx, s.deviceEvent(c, d, action), pendingError(d))
	default:
		return nil, s.deny(ctx, s.deviceEvent(c, d, action), custos.Errorf(custos.EFORBIDDEN,
			"device %s is %s; no secret is delivered to it", d.ID, d.Status))
	}
}

func (s *Service) deviceEvent(c *custos.Caller, d *custos.Device, action string) *custos.AuditEvent {
	ev := s.event(c, action, custos.OutcomeDenied)
	ev.DeviceID = d.ID
	return ev
}

func pendingError(d *custos.Device) error {
	return custos.Errorf(custos.EDEVICEPENDING,
		"device %s (%s@%s, agent %s, ip %s) is pending approval; an owner or admin runs: custos device approve %s --level read",
		d.ID, d.MachineUser, d.Hostname, d.Agent, d.IP, d.ID)
}

// registerDevice records a new pending device for c.
func (s *Service) registerDevice(ctx context.Context, c *custos.Caller, fp string) (*custos.Device, error) {
	d := &custos.Device{
		ID:          custos.NewID(custos.PrefixDevice),
		OrgID:       c.OrgID(),
		KeyID:       c.Key.ID,
		Fingerprint: fp,
		MachineUser: c.MachineUser,
		Hostname:    c.Hostname,
		Agent:       c.Agent,
		IP:          c.IP,
		Status:      custos.DevicePending,
		CreatedAt:   s.timeNow(),
	}
	ev := s.event(c, custos.ActionDeviceNew, custos.OutcomeOK)
	ev.DeviceID, ev.Target = d.ID, d.ID
	err := s.store.CreateDevice(ctx, d, ev)
	if custos.ErrorCode(err) == custos.ECONFLICT { // a concurrent request registered it first
		return s.store.FindDevice(ctx, c.OrgID(), fp)
	} else if err != nil {
		return nil, err
	}
	return d, nil
}

// ListDevices implements custos.DeviceService.
func (s *Service) ListDevices(ctx context.Context, status custos.DeviceStatus) ([]*custos.Device, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	}
	switch status {
	case "", custos.DevicePending, custos.DeviceApproved, custos.DeviceDenied, custos.DeviceRevoked:
	default:
		return nil, custos.Errorf(custos.EINVALID, "invalid device status %q: use pending, approved, denied or revoked", status)
	}
	return s.store.ListDevices(ctx, c.OrgID(), status)
}

// ApproveDevice implements custos.DeviceService.
func (s *Service) ApproveDevice(ctx context.Context, id string, level custos.Level) (*custos.Device, error) {
	if !level.Valid() {
		return nil, custos.Errorf(custos.EINVALID, "invalid level %q: use read, read-write or full", level)
	}
	return s.decideDevice(ctx, id, custos.ActionDeviceApprove,
		[]custos.DeviceStatus{custos.DevicePending, custos.DeviceDenied, custos.DeviceApproved}, custos.DeviceApproved, level)
}

// DenyDevice implements custos.DeviceService.
func (s *Service) DenyDevice(ctx context.Context, id string) (*custos.Device, error) {
	return s.decideDevice(ctx, id, custos.ActionDeviceDeny,
		[]custos.DeviceStatus{custos.DevicePending}, custos.DeviceDenied, "")
}

// RevokeDevice implements custos.DeviceService.
func (s *Service) RevokeDevice(ctx context.Context, id string) (*custos.Device, error) {
	return s.decideDevice(ctx, id, custos.ActionDeviceRevoke,
		[]custos.DeviceStatus{custos.DevicePending, custos.DeviceApproved, custos.DeviceDenied}, custos.DeviceRevoked, "")
}

func (s *Service) decideDevice(ctx context.Context, id, action string, from []custos.DeviceStatus, to custos.DeviceStatus, level custos.Level) (*custos.Device, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	} else if err := requireAdmin(c); err != nil {
		return nil, err
	} else if err := custos.ValidateID(custos.PrefixDevice, id); err != nil {
		return nil, err
	}
	ev := s.event(c, action, custos.OutcomeOK)
	ev.DeviceID, ev.Target = id, id
	if level != "" {
		ev.Reason = fmt.Sprintf("level %s", level)
	}
	d, err := s.store.UpdateDeviceStatus(ctx, c.OrgID(), id, from, to, level, c.Key.ID, s.timeNow(), ev)
	if custos.ErrorCode(err) == custos.ECONFLICT {
		cur, ferr := s.store.GetDevice(ctx, c.OrgID(), id)
		if ferr == nil {
			return nil, custos.Errorf(custos.ECONFLICT, "device %s is %s and cannot become %s", id, cur.Status, to)
		}
	}
	return d, err
}
