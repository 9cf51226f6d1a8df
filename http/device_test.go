package http_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/custos-dev/custos"
)

func TestDevices(t *testing.T) {
	// Ensure devices are listed by status.
	t.Run("ListDevices", func(t *testing.T) {
		env := MustServe(t)
		var got []custos.DeviceStatus
		env.Spy.ListDevicesFn = func(ctx context.Context, status custos.DeviceStatus) ([]*custos.Device, error) {
			got = append(got, status)
			return []*custos.Device{{ID: testDevID, Status: custos.DevicePending}}, nil
		}
		ds, err := env.Client.ListDevices(ctx(t), custos.DevicePending)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Client.ListDevices(ctx(t), ""); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != custos.DevicePending || got[1] != "" {
			t.Fatalf("statuses=%q", got)
		}
		if got, want := ds[0].ID, testDevID; got != want {
			t.Fatalf("id=%q, want %q", got, want)
		}
	})

	// Ensure a bad status is rejected before the service runs.
	t.Run("ListDevicesBadStatus", func(t *testing.T) {
		for _, q := range []string{"?status=weird", "?status=", "?status=pending&status=denied", "?state=pending"} {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "GET", Path: "/v1/devices" + q})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("%s: status=%d, want %d", q, got, want)
			}
			env.AssertNoCalls(t)
		}
	})

	// Ensure approve passes the level; deny and revoke the id.
	t.Run("Decide", func(t *testing.T) {
		env := MustServe(t)
		var gotLevel custos.Level
		env.Spy.ApproveDeviceFn = func(ctx context.Context, id string, level custos.Level) (*custos.Device, error) {
			gotLevel = level
			return &custos.Device{ID: id, Status: custos.DeviceApproved, Level: level}, nil
		}
		env.Spy.DenyDeviceFn = func(ctx context.Context, id string) (*custos.Device, error) {
			return &custos.Device{ID: id, Status: custos.DeviceDenied}, nil
		}
		env.Spy.RevokeDeviceFn = func(ctx context.Context, id string) (*custos.Device, error) {
			return &custos.Device{ID: id, Status: custos.DeviceRevoked}, nil
		}
		d, err := env.Client.ApproveDevice(ctx(t), testDevID, custos.LevelReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		if gotLevel != custos.LevelReadWrite || d.Status != custos.DeviceApproved {
			t.Fatalf("level=%q status=%q", gotLevel, d.Status)
		}
		if d, err = env.Client.DenyDevice(ctx(t), testDevID); err != nil || d.Status != custos.DeviceDenied {
			t.Fatalf("deny: %v %v", d, err)
		}
		if d, err = env.Client.RevokeDevice(ctx(t), testDevID); err != nil || d.Status != custos.DeviceRevoked {
			t.Fatalf("revoke: %v %v", d, err)
		}
		if got, want := len(env.Spy.Calls()), 3; got != want {
			t.Fatalf("calls=%d, want %d", got, want)
		}
	})

	// Ensure a bad level is rejected before the service runs.
	t.Run("ApproveBadLevel", func(t *testing.T) {
		for _, body := range []string{`{"level":"admin"}`, `{}`, `{"level":""}`} {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/devices/" + testDevID + "/approve", Body: body})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("%s: status=%d, want %d", body, got, want)
			}
			env.AssertNoCalls(t)
		}
	})
}
