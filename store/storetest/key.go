package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testKeyStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure keys round-trip with every time and list oldest first.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		k := NewKey(org.ID, "ci", custos.RoleAgent)
		k.CreatedAt = Now.Add(time.Second)
		k.ExpiresAt = ptr(Now.Add(time.Hour))
		k.RevokedAt = ptr(Now.Add(2 * time.Hour))
		k.RotatedAt = ptr(Now.Add(3 * time.Hour))
		k.GraceUntil = ptr(Now.Add(4 * time.Hour))
		k.ReplacedBy = "key_00000000000000ff"
		if err := s.CreateKey(ctx, k, NewEvent(org.ID, custos.ActionKeyCreate)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindKeyByHash(ctx, k.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, k) {
			t.Fatalf("FindKeyByHash=%+v, want %+v", got, k)
		}
		if keys, err := s.ListKeys(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if got, want := len(keys), 2; got != want {
			t.Fatalf("len=%d, want %d", got, want)
		} else if keys[0].ID != owner.ID || keys[1].ID != k.ID {
			t.Fatalf("order=%s,%s", keys[0].ID, keys[1].ID)
		}
		if keys, err := s.ListKeys(ctx, "org_0000000000000000"); err != nil {
			t.Fatal(err)
		} else if keys == nil || len(keys) != 0 {
			t.Fatalf("ListKeys of other org=%v, want empty", keys)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure a duplicate id or hash is a conflict that writes no event.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		dupID := NewKey(org.ID, "x", custos.RoleMember)
		dupID.ID = owner.ID
		dupHash := NewKey(org.ID, "y", custos.RoleMember)
		dupHash.Hash = owner.Hash
		for _, k := range []*custos.APIKey{dupID, dupHash} {
			err := s.CreateKey(ctx, k, NewEvent(org.ID, custos.ActionKeyCreate))
			if got, want := code(err), custos.ECONFLICT; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 1)
	})

	// Ensure lookups of unknown keys, or of another org's key, are not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		if _, err := s.FindKeyByHash(ctx, "nope"); code(err) != custos.ENOTFOUND {
			t.Fatalf("FindKeyByHash err=%v", err)
		}
		if _, err := s.FindKey(ctx, org.ID, "key_0000000000000000"); code(err) != custos.ENOTFOUND {
			t.Fatalf("FindKey err=%v", err)
		}
		if _, err := s.FindKey(ctx, "org_0000000000000000", owner.ID); code(err) != custos.ENOTFOUND {
			t.Fatalf("FindKey other org err=%v", err)
		}
	})
}

func testRotateKey(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure rotation marks the old key, inserts the new one and copies its
	// devices with recomputed fingerprints.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		old := MustCreateKey(t, s, org.ID, "dev", custos.RoleMember)
		d1 := MustCreateDevice(t, s, old, "laptop")
		d2 := MustCreateDevice(t, s, old, "desktop")
		if _, err := s.UpdateDeviceStatus(ctx, org.ID, d1.ID, []custos.DeviceStatus{custos.DevicePending},
			custos.DeviceApproved, custos.LevelReadWrite, "key_admin", Now, NewEvent(org.ID, custos.ActionDeviceApprove)); err != nil {
			t.Fatal(err)
		}
		newK := NewKey(org.ID, "dev", custos.RoleMember)
		grace := Now.Add(custos.DefaultKeyGrace)
		if err := s.RotateKey(ctx, org.ID, old.ID, newK, Now, grace, NewEvent(org.ID, custos.ActionKeyRotate)); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindKey(ctx, org.ID, old.ID)
		if err != nil {
			t.Fatal(err)
		} else if got.RotatedAt == nil || !got.RotatedAt.Equal(Now) || got.GraceUntil == nil || !got.GraceUntil.Equal(grace) {
			t.Fatalf("old key rotated_at=%v grace_until=%v", got.RotatedAt, got.GraceUntil)
		} else if got, want := got.ReplacedBy, newK.ID; got != want {
			t.Fatalf("ReplacedBy=%q, want %q", got, want)
		}
		if _, err := s.FindKeyByHash(ctx, newK.Hash); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*custos.Device{d1, d2} {
			fp := custos.DeviceFingerprint(d.MachineUser, d.Hostname, d.Agent, newK.ID, d.IP)
			copied, err := s.FindDevice(ctx, org.ID, fp)
			if err != nil {
				t.Fatal(err)
			}
			orig, err := s.GetDevice(ctx, org.ID, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if copied.ID == orig.ID || copied.KeyID != newK.ID {
				t.Fatalf("copy id=%q key=%q", copied.ID, copied.KeyID)
			} else if copied.Status != orig.Status || copied.Level != orig.Level {
				t.Fatalf("copy status=%q level=%q, want %q %q", copied.Status, copied.Level, orig.Status, orig.Level)
			}
		}
		if devs, err := s.ListDevices(ctx, org.ID, custos.DeviceApproved); err != nil {
			t.Fatal(err)
		} else if got, want := len(devs), 2; got != want {
			t.Fatalf("approved devices=%d, want %d", got, want)
		}
		MustVerifyChain(t, s, org.ID, 6)
	})

	// Ensure a rotated or revoked key cannot be rotated, and nothing changes.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		k := MustCreateKey(t, s, org.ID, "a", custos.RoleMember)
		if err := s.RotateKey(ctx, org.ID, k.ID, NewKey(org.ID, "a", custos.RoleMember), Now, Now, NewEvent(org.ID, custos.ActionKeyRotate)); err != nil {
			t.Fatal(err)
		}
		r := MustCreateKey(t, s, org.ID, "b", custos.RoleMember)
		if err := s.RevokeKey(ctx, org.ID, r.ID, Now, NewEvent(org.ID, custos.ActionKeyRevoke)); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{k.ID, r.ID} {
			newK := NewKey(org.ID, "c", custos.RoleMember)
			err := s.RotateKey(ctx, org.ID, id, newK, Now, Now, NewEvent(org.ID, custos.ActionKeyRotate))
			if got, want := code(err), custos.ECONFLICT; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
			if _, err := s.FindKeyByHash(ctx, newK.Hash); code(err) != custos.ENOTFOUND {
				t.Fatalf("new key of failed rotation exists: %v", err)
			}
		}
		MustVerifyChain(t, s, org.ID, 5)
	})

	// Ensure exactly one of many concurrent rotations of a key wins, and the
	// devices are copied once.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		old := MustCreateKey(t, s, org.ID, "dev", custos.RoleMember)
		MustCreateDevice(t, s, old, "laptop")
		mustRace(t, 20, custos.ECONFLICT, func(int) error {
			return s.RotateKey(ctx, org.ID, old.ID, NewKey(org.ID, "dev", custos.RoleMember), Now, Now.Add(time.Hour), NewEvent(org.ID, custos.ActionKeyRotate))
		})
		if keys, err := s.ListKeys(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if got, want := len(keys), 3; got != want {
			t.Fatalf("keys=%d, want %d", got, want)
		}
		if devs, err := s.ListDevices(ctx, org.ID, ""); err != nil {
			t.Fatal(err)
		} else if got, want := len(devs), 2; got != want {
			t.Fatalf("devices=%d, want %d", got, want)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure rotating an unknown key, or another org's, is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		for _, c := range []struct{ org, id string }{{org.ID, "key_0000000000000000"}, {"org_0000000000000000", owner.ID}} {
			err := s.RotateKey(ctx, c.org, c.id, NewKey(org.ID, "c", custos.RoleMember), Now, Now, NewEvent(org.ID, custos.ActionKeyRotate))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 1)
	})
}

func testRevokeKey(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure RevokeKey sets RevokedAt once, and a rotated key can be revoked.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		k := MustCreateKey(t, s, org.ID, "a", custos.RoleMember)
		if err := s.RotateKey(ctx, org.ID, k.ID, NewKey(org.ID, "a", custos.RoleMember), Now, Now.Add(time.Hour), NewEvent(org.ID, custos.ActionKeyRotate)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, org.ID, k.ID, Now.Add(time.Minute), NewEvent(org.ID, custos.ActionKeyRevoke)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindKey(ctx, org.ID, k.ID); err != nil {
			t.Fatal(err)
		} else if got.RevokedAt == nil || !got.RevokedAt.Equal(Now.Add(time.Minute)) {
			t.Fatalf("RevokedAt=%v", got.RevokedAt)
		} else if got, want := got.Status(Now.Add(2*time.Minute)), "revoked"; got != want {
			t.Fatalf("Status=%q, want %q", got, want)
		}
	})

	// Ensure revoking twice is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, owner := MustBootstrap(t, s)
		if err := s.RevokeKey(ctx, org.ID, owner.ID, Now, NewEvent(org.ID, custos.ActionKeyRevoke)); err != nil {
			t.Fatal(err)
		}
		err := s.RevokeKey(ctx, org.ID, owner.ID, Now, NewEvent(org.ID, custos.ActionKeyRevoke))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure exactly one of many concurrent revocations of a key wins.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		k := MustCreateKey(t, s, org.ID, "a", custos.RoleMember)
		mustRace(t, 20, custos.ECONFLICT, func(int) error {
			return s.RevokeKey(ctx, org.ID, k.ID, Now, NewEvent(org.ID, custos.ActionKeyRevoke))
		})
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure revoking an unknown key is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		err := s.RevokeKey(context.Background(), org.ID, "key_0000000000000000", Now, NewEvent(org.ID, custos.ActionKeyRevoke))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})
}
