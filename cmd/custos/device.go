package main

import (
	"context"
	"fmt"

	"github.com/custos-dev/custos"
)

const deviceUsage = `Usage: custos device COMMAND [ARGS] [FLAGS]

A device is one identity an API key is used from (user:hostname:agent:key:ip).
A new device is pending and gets no secret until an owner or admin approves
it at a level: read (list, read values), read-write (+ set) or full (+ delete).

Commands:
  list              list devices
  approve ID        approve a device at --level
  deny ID           deny a pending device
  revoke ID         revoke a device for good

Example:
  custos device list --pending
  custos device approve dev_0123456789abcdef --level read
`

func (c *CLI) runDevice(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "device", deviceUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"list":    (*CLI).deviceList,
		"ls":      (*CLI).deviceList,
		"approve": (*CLI).deviceApprove,
		"deny":    (*CLI).deviceDeny,
		"revoke":  (*CLI).deviceRevoke,
	})
}

const deviceListUsage = `Usage: custos device list [--pending] [--json]

Lists devices: ID STATUS LEVEL USER HOSTNAME AGENT IP KEY CREATED.

Example:
  custos device list --pending
`

func (c *CLI) deviceList(ctx context.Context, args []string) error {
	f := c.newFlags("device list", deviceListUsage)
	pending := f.Bool("pending", false, "only devices waiting for approval")
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	var status custos.DeviceStatus
	if *pending {
		status = custos.DevicePending
	}
	devices, err := svc.Devices.ListDevices(ctx, status)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, devices)
	}
	t := newTable(c.Stdout, "ID", "STATUS", "LEVEL", "USER", "HOSTNAME", "AGENT", "IP", "KEY", "CREATED")
	for _, d := range devices {
		t.row(d.ID, string(d.Status), string(d.Level), d.MachineUser, d.Hostname, d.Agent, d.IP, d.KeyID, fmtTime(d.CreatedAt))
	}
	return t.flush()
}

const deviceApproveUsage = `Usage: custos device approve ID --level read|read-write|full

Approves device ID at a level: read (list, read values), read-write
(+ create and update secrets) or full (+ delete).

Example:
  custos device approve dev_0123456789abcdef --level read-write
`

func (c *CLI) deviceApprove(ctx context.Context, args []string) error {
	f := c.newFlags("device approve", deviceApproveUsage)
	level := f.String("level", "", "`LEVEL`: read, read-write or full (required)")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateID(custos.PrefixDevice, pos[0]); err != nil {
		return err
	}
	if *level == "" {
		return f.usageErr("--level is required: read, read-write or full")
	}
	if !custos.Level(*level).Valid() {
		return f.usageErr("--level: invalid level %q: use read, read-write or full", clip(*level, 20))
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	d, err := svc.Devices.ApproveDevice(ctx, pos[0], custos.Level(*level))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "approved %s (%s@%s, agent %s) at level %s\n", d.ID, cell(d.MachineUser), cell(d.Hostname), cell(d.Agent), d.Level)
	return nil
}

const deviceDenyUsage = `Usage: custos device deny ID

Denies pending device ID: it gets no secrets (it can be approved later).

Example:
  custos device deny dev_0123456789abcdef
`

func (c *CLI) deviceDeny(ctx context.Context, args []string) error {
	return c.deviceDecide(ctx, args, "deny", deviceDenyUsage, "denied", custos.DeviceService.DenyDevice)
}

const deviceRevokeUsage = `Usage: custos device revoke ID

Revokes device ID for good: it can never be approved again.

Example:
  custos device revoke dev_0123456789abcdef
`

func (c *CLI) deviceRevoke(ctx context.Context, args []string) error {
	return c.deviceDecide(ctx, args, "revoke", deviceRevokeUsage, "revoked", custos.DeviceService.RevokeDevice)
}

// deviceDecide runs deny or revoke.
func (c *CLI) deviceDecide(ctx context.Context, args []string, name, usage, done string,
	fn func(custos.DeviceService, context.Context, string) (*custos.Device, error)) error {
	f := c.newFlags("device "+name, usage)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateID(custos.PrefixDevice, pos[0]); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	d, err := fn(svc.Devices, ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "%s %s\n", done, d.ID)
	return nil
}
