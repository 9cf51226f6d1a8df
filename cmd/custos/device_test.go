package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
)

func testDevice(id string, status custos.DeviceStatus, level custos.Level) *custos.Device {
	return &custos.Device{ID: id, KeyID: "key_0123456789abcdef", MachineUser: "alice", Hostname: "laptop", Agent: "claude-code",
		IP: "127.0.0.1", Status: status, Level: level, CreatedAt: testNow}
}

func TestDeviceList(t *testing.T) {
	// Ensure --pending asks for pending devices only, and the table and JSON
	// show them.
	tc := newTestCLI(t)
	var status custos.DeviceStatus = "unset"
	tc.spy.listDevices = func(s custos.DeviceStatus) ([]*custos.Device, error) {
		status = s
		return []*custos.Device{testDevice("dev_0123456789abcdef", custos.DevicePending, "")}, nil
	}
	out := tc.mustRun(t, "device", "list", "--pending")
	if status != custos.DevicePending {
		t.Fatalf("status %q", status)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !reflect.DeepEqual(strings.Fields(lines[1]),
		[]string{"dev_0123456789abcdef", "pending", "-", "alice", "laptop", "claude-code", "127.0.0.1", "key_0123456789abcdef", "2026-03-01T12:00:00Z"}) {
		t.Fatalf("table:\n%s", out)
	}
	var ds []custos.Device
	if err := json.Unmarshal([]byte(tc.mustRun(t, "device", "list", "--json")), &ds); err != nil || len(ds) != 1 || status != "" {
		t.Fatalf("%v %+v status %q", err, ds, status)
	}
}

func TestDeviceApprove(t *testing.T) {
	// Ensure approve sends the level and says what it approved.
	tc := newTestCLI(t)
	tc.spy.approveDevice = func(id string, level custos.Level) (*custos.Device, error) {
		return testDevice(id, custos.DeviceApproved, level), nil
	}
	out := tc.mustRun(t, "device", "approve", "dev_0123456789abcdef", "--level", "read-write")
	if out != "approved dev_0123456789abcdef (alice@laptop, agent claude-code) at level read-write\n" {
		t.Fatalf("printed %q", out)
	}
}

func TestDeviceDenyRevoke(t *testing.T) {
	// Ensure deny and revoke call their service method.
	tc := newTestCLI(t)
	tc.spy.denyDevice = func(id string) (*custos.Device, error) { return testDevice(id, custos.DeviceDenied, ""), nil }
	tc.spy.revokeDevice = func(id string) (*custos.Device, error) { return testDevice(id, custos.DeviceRevoked, ""), nil }
	if out := tc.mustRun(t, "device", "deny", "dev_0123456789abcdef"); out != "denied dev_0123456789abcdef\n" {
		t.Fatalf("printed %q", out)
	}
	if out := tc.mustRun(t, "device", "revoke", "dev_0123456789abcdef"); out != "revoked dev_0123456789abcdef\n" {
		t.Fatalf("printed %q", out)
	}
	if got := tc.spy.Calls(); !reflect.DeepEqual(got, []string{"DenyDevice", "RevokeDevice"}) {
		t.Fatalf("calls %v", got)
	}
}
