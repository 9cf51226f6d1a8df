package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testDeviceStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure devices round-trip and list oldest first, filtered by status.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d1 := MustCreateDevice(t, s, owner, "a")
		d2 := NewDevice(owner, "b")
		d2.CreatedAt = Now.Add(time.Second)
		d2.Status, d2.Level, d2.DecidedAt, d2.DecidedBy = custos.DeviceApproved, custos.LevelFull, ptr(Now), owner.ID
		if err := s.CreateDevice(ctx, d2, NewEvent(org.ID, custos.ActionDeviceNew)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindDevice(ctx, org.ID, d1.Fingerprint); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, d1) {
			t.Fatalf("FindDevice=%+v, want %+v", got, d1)
		}
		if got, err := s.GetDevice(ctx, org.ID, d2.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, d2) {
			t.Fatalf("GetDevice=%+v, want %+v", got, d2)
		}
		for _, c := range []struct {
			status custos.DeviceStatus
			want   []string
		}{{"", []string{d1.ID, d2.ID}}, {custos.DevicePending, []string{d1.ID}}, {custos.DeviceRevoked, nil}} {
			devs, err := s.ListDevices(ctx, org.ID, c.status)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range devs {
				ids = append(ids, d.ID)
			}
			if got, want := ids, c.want; !reflect.DeepEqual(got, want) {
				t.Fatalf("ListDevices(%q)=%v, want %v", c.status, got, want)
			}
		}
	})

	// Ensure a second device with the same fingerprint, or the same id, is a
	// conflict that writes no event.
	t.Run("ErrConflict", func(t *testing.T) {
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		dupFP := NewDevice(owner, "a")
		dupID := NewDevice(owner, "b")
		dupID.ID = d.ID
		for _, dup := range []*custos.Device{dupFP, dupID} {
			err := s.CreateDevice(context.Background(), dup, NewEvent(org.ID, custos.ActionDeviceNew))
			if got, want := code(err), custos.ECONFLICT; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure lookups of unknown devices are not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		if _, err := s.FindDevice(ctx, org.ID, "x:y"); code(err) != custos.ENOTFOUND {
			t.Fatalf("FindDevice err=%v", err)
		}
		if _, err := s.GetDevice(ctx, "org_0000000000000000", d.ID); code(err) != custos.ENOTFOUND {
			t.Fatalf("GetDevice err=%v", err)
		}
	})
}

func testUpdateDeviceStatus(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure a device moves only from an allowed status, and is returned.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		got, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DevicePending, custos.DeviceDenied},
			custos.DeviceApproved, custos.LevelRead, owner.ID, Now.Add(time.Minute), NewEvent(org.ID, custos.ActionDeviceApprove))
		if err != nil {
			t.Fatal(err)
		}
		want := *d
		want.Status, want.Level, want.DecidedAt, want.DecidedBy = custos.DeviceApproved, custos.LevelRead, ptr(Now.Add(time.Minute)), owner.ID
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("UpdateDeviceStatus=%+v, want %+v", got, &want)
		}
		if got, err := s.GetDevice(ctx, org.ID, d.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, &want) {
			t.Fatalf("GetDevice=%+v, want %+v", got, &want)
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure a device whose status is not in from is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		_, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DeviceApproved},
			custos.DeviceRevoked, "", owner.ID, Now, NewEvent(org.ID, custos.ActionDeviceRevoke))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if got, _ := s.GetDevice(ctx, org.ID, d.ID); got.Status != custos.DevicePending {
			t.Fatalf("status=%q", got.Status)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure exactly one of many concurrent decisions on a pending device
	// wins.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		mustRace(t, 20, custos.ECONFLICT, func(i int) error {
			to, action := custos.DeviceApproved, custos.ActionDeviceApprove
			if i%2 == 1 {
				to, action = custos.DeviceDenied, custos.ActionDeviceDeny
			}
			_, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DevicePending}, to, custos.LevelRead,
				owner.ID, Now, NewEvent(org.ID, action))
			return err
		})
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure an unknown device is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t)
		org, owner := MustBootstrap(t, s)
		_, err := s.UpdateDeviceStatus(context.Background(), org.ID, "dev_0000000000000000", []custos.DeviceStatus{custos.DevicePending},
			custos.DeviceApproved, custos.LevelRead, owner.ID, Now, NewEvent(org.ID, custos.ActionDeviceApprove))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})
}
