package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/sqlite"
)

// now is the tests' clock: microsecond precision, as stored.
var now = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

// MustOpenStore opens a store on a fresh file in a temporary directory and
// closes it when the test ends.
func MustOpenStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	return MustOpenStoreAt(tb, filepath.Join(tb.TempDir(), "custos.db"), sqlite.Options{})
}

// MustOpenStoreAt opens a store on path and closes it when the test ends.
func MustOpenStoreAt(tb testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// MustBootstrap creates the org and its owner key.
func MustBootstrap(tb testing.TB, s *sqlite.Store) (*custos.Org, *custos.APIKey) {
	tb.Helper()
	org := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "acme", CreatedAt: now}
	owner := newKey(org.ID, "owner", custos.RoleOwner)
	if err := s.Bootstrap(context.Background(), org, owner, newEvent(org.ID, custos.ActionBootstrap)); err != nil {
		tb.Fatal(err)
	}
	return org, owner
}

// MustCreateKey creates a key of role in org.
func MustCreateKey(tb testing.TB, s *sqlite.Store, orgID, name string, role custos.Role) *custos.APIKey {
	tb.Helper()
	k := newKey(orgID, name, role)
	if err := s.CreateKey(context.Background(), k, newEvent(orgID, custos.ActionKeyCreate)); err != nil {
		tb.Fatal(err)
	}
	return k
}

// MustCreateDevice creates a pending device of key k used from hostname.
func MustCreateDevice(tb testing.TB, s *sqlite.Store, k *custos.APIKey, hostname string) *custos.Device {
	tb.Helper()
	d := newDevice(k, hostname)
	if err := s.CreateDevice(context.Background(), d, newEvent(k.OrgID, custos.ActionDeviceNew)); err != nil {
		tb.Fatal(err)
	}
	return d
}

// MustCreateSecret creates secret project/name with ciphertext ct.
func MustCreateSecret(tb testing.TB, s *sqlite.Store, orgID, project, name string, tags map[string]string, ct string) *custos.Secret {
	tb.Helper()
	sec, v := newSecret(orgID, project, name, tags, ct)
	if err := s.CreateSecret(context.Background(), sec, v, newEvent(orgID, custos.ActionSecretSet)); err != nil {
		tb.Fatal(err)
	}
	return sec
}

// MustListAudit returns every event of org.
func MustListAudit(tb testing.TB, s *sqlite.Store, orgID string) []*custos.AuditEvent {
	tb.Helper()
	var all []*custos.AuditEvent
	var after int64
	for {
		evs, err := s.ListAudit(context.Background(), orgID, custos.AuditFilter{AfterSeq: after, Limit: sqlite.MaxAuditLimit})
		if err != nil {
			tb.Fatal(err)
		}
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].Seq
	}
}

// MustVerifyChain checks org's chain and that it holds n events.
func MustVerifyChain(tb testing.TB, s *sqlite.Store, orgID string, n int64) {
	tb.Helper()
	v := custos.VerifyChain(nil, MustListAudit(tb, s, orgID))
	if !v.OK {
		tb.Fatalf("chain of %s broken at %d: %s", orgID, v.BrokenAt, v.Reason)
	} else if got, want := v.Events, n; got != want {
		tb.Fatalf("chain of %s has %d events, want %d", orgID, got, want)
	}
}

func newKey(orgID, name string, role custos.Role) *custos.APIKey {
	return &custos.APIKey{
		ID: custos.NewID(custos.PrefixKey), OrgID: orgID, Name: name, Role: role,
		Hash: custos.NewID("hash"), CreatedAt: now,
	}
}

func newDevice(k *custos.APIKey, hostname string) *custos.Device {
	return &custos.Device{
		ID: custos.NewID(custos.PrefixDevice), OrgID: k.OrgID, KeyID: k.ID,
		Fingerprint: custos.DeviceFingerprint("ana", hostname, "cli", k.ID, "10.0.0.1"),
		MachineUser: "ana", Hostname: hostname, Agent: "cli", IP: "10.0.0.1",
		Status: custos.DevicePending, CreatedAt: now,
	}
}

func newSecret(orgID, project, name string, tags map[string]string, ct string) (*custos.Secret, *custos.SecretVersion) {
	sec := &custos.Secret{
		ID: custos.NewID(custos.PrefixSecret), OrgID: orgID, Project: project, Name: name, Tags: tags,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	v := &custos.SecretVersion{
		SecretID: sec.ID, Version: 1, Ciphertext: []byte(ct), WrappedDEK: []byte("dek-" + ct),
		KeeperID: "local:1", CreatedBy: "key_0000000000000001", CreatedAt: now,
	}
	return sec, v
}

func newEvent(orgID, action string) *custos.AuditEvent {
	return &custos.AuditEvent{OrgID: orgID, Time: now, Action: action, Outcome: custos.OutcomeOK, Source: custos.SourceAPI}
}

func ptr[T any](v T) *T { return &v }

// code returns the custos error code of err.
func code(err error) string { return custos.ErrorCode(err) }

func TestOpen(t *testing.T) {
	// Ensure Open creates the file 0600, in WAL mode, at the latest schema.
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "custos.db")
		s := MustOpenStoreAt(t, path, sqlite.Options{})
		MustBootstrap(t, s)
		if got, want := s.Path(), path; got != want {
			t.Fatalf("Path()=%q, want %q", got, want)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			} else if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
				t.Fatalf("mode of %s=%v, want %v", filepath.Base(p), got, want)
			}
		}
		db := mustRawDB(t, path)
		var mode string
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		} else if got, want := mode, "wal"; got != want {
			t.Fatalf("journal_mode=%q, want %q", got, want)
		}
		var version int
		if err := db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
			t.Fatal(err)
		} else if got, want := version, sqlite.SchemaVersion(); got != want || got < 1 {
			t.Fatalf("schema version=%d, want %d", got, want)
		}
	})

	// Ensure reopening keeps the data and applies no migration twice.
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "FULL"})
		if err != nil {
			t.Fatal(err)
		}
		org, owner := MustBootstrap(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			s, err = sqlite.Open(ctx, path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if k, err := s.FindKeyByHash(ctx, owner.Hash); err != nil {
				t.Fatal(err)
			} else if got, want := k.ID, owner.ID; got != want {
				t.Fatalf("key=%q, want %q", got, want)
			}
			MustVerifyChain(t, s, org.ID, 1)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := mustRawDB(t, path).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		} else if got, want := n, sqlite.SchemaVersion(); got != want {
			t.Fatalf("migrations recorded=%d, want %d", got, want)
		}
	})

	// Ensure an unknown synchronous mode is rejected.
	t.Run("ErrSynchronous", func(t *testing.T) {
		if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), sqlite.Options{Synchronous: "OFF"}); err == nil {
			t.Fatal("expected error")
		}
	})

	// Ensure a database from a newer binary is refused.
	t.Run("ErrNewerSchema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "custos.db")
		s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db := mustRawDB(t, path)
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := sqlite.Open(context.Background(), path, sqlite.Options{}); err == nil {
			t.Fatal("expected error")
		}
	})

	// Ensure a missing parent directory is an error, not a panic.
	t.Run("ErrNoDir", func(t *testing.T) {
		if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nope", "x.db"), sqlite.Options{}); err == nil {
			t.Fatal("expected error")
		}
	})
}

// mustRawDB opens path with the driver directly, bypassing the store.
func mustRawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestStore_Close(t *testing.T) {
	// Ensure writes after Close fail with ErrClosed and Close is idempotent.
	t.Run("ErrClosed", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMeta(context.Background(), "k", []byte("v")); !errors.Is(err, sqlite.ErrClosed) {
			t.Fatalf("err=%v, want ErrClosed", err)
		}
		if err := s.Ping(context.Background()); err == nil {
			t.Fatal("expected ping error")
		}
	})

	// Ensure a cancelled context is honoured before a write is queued.
	t.Run("ErrCanceled", func(t *testing.T) {
		s := MustOpenStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.PutMeta(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
			t.Fatalf("err=%v, want context.Canceled", err)
		}
	})
}

func TestStore_Bootstrap(t *testing.T) {
	// Ensure Bootstrap creates the org, the owner key and the first event.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		if n, err := s.CountOrgs(ctx); err != nil {
			t.Fatal(err)
		} else if got, want := n, 0; got != want {
			t.Fatalf("CountOrgs=%d, want %d", got, want)
		}
		org, owner := MustBootstrap(t, s)
		if n, err := s.CountOrgs(ctx); err != nil {
			t.Fatal(err)
		} else if got, want := n, 1; got != want {
			t.Fatalf("CountOrgs=%d, want %d", got, want)
		}
		if got, err := s.FindOrg(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, org) {
			t.Fatalf("FindOrg=%+v, want %+v", got, org)
		}
		if got, err := s.FindKey(ctx, org.ID, owner.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, owner) {
			t.Fatalf("FindKey=%+v, want %+v", got, owner)
		}
		MustVerifyChain(t, s, org.ID, 1)
	})

	// Ensure a second Bootstrap is a conflict and changes nothing.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		org2 := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "other", CreatedAt: now}
		err := s.Bootstrap(ctx, org2, newKey(org2.ID, "owner", custos.RoleOwner), newEvent(org2.ID, custos.ActionBootstrap))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if n, _ := s.CountOrgs(ctx); n != 1 {
			t.Fatalf("CountOrgs=%d, want 1", n)
		}
		MustVerifyChain(t, s, org.ID, 1)
		MustVerifyChain(t, s, org2.ID, 0)
	})

	// Ensure FindOrg reports a missing org.
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := MustOpenStore(t).FindOrg(context.Background(), "org_0000000000000000")
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func TestStore_Meta(t *testing.T) {
	// Ensure PutMeta stores and overwrites a value.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		for _, v := range [][]byte{[]byte("one"), []byte("two"), {}} {
			if err := s.PutMeta(ctx, "kek.canary", v); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetMeta(ctx, "kek.canary"); err != nil {
				t.Fatal(err)
			} else if !bytes.Equal(got, v) || got == nil {
				t.Fatalf("GetMeta=%q, want %q", got, v)
			}
		}
	})

	// Ensure GetMeta reports a missing key.
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := MustOpenStore(t).GetMeta(context.Background(), "nope")
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func TestKeyStore(t *testing.T) {
	// Ensure keys round-trip with every time and list oldest first.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		k := newKey(org.ID, "ci", custos.RoleAgent)
		k.CreatedAt = now.Add(time.Second)
		k.ExpiresAt = ptr(now.Add(time.Hour))
		k.RevokedAt = ptr(now.Add(2 * time.Hour))
		k.RotatedAt = ptr(now.Add(3 * time.Hour))
		k.GraceUntil = ptr(now.Add(4 * time.Hour))
		k.ReplacedBy = "key_00000000000000ff"
		if err := s.CreateKey(ctx, k, newEvent(org.ID, custos.ActionKeyCreate)); err != nil {
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
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		dupID := newKey(org.ID, "x", custos.RoleMember)
		dupID.ID = owner.ID
		dupHash := newKey(org.ID, "y", custos.RoleMember)
		dupHash.Hash = owner.Hash
		for _, k := range []*custos.APIKey{dupID, dupHash} {
			err := s.CreateKey(ctx, k, newEvent(org.ID, custos.ActionKeyCreate))
			if got, want := code(err), custos.ECONFLICT; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 1)
	})

	// Ensure lookups of unknown keys, or of another org's key, are not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
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

func TestKeyStore_RotateKey(t *testing.T) {
	// Ensure rotation marks the old key, inserts the new one and copies its
	// devices with recomputed fingerprints.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		old := MustCreateKey(t, s, org.ID, "dev", custos.RoleMember)
		d1 := MustCreateDevice(t, s, old, "laptop")
		d2 := MustCreateDevice(t, s, old, "desktop")
		if _, err := s.UpdateDeviceStatus(ctx, org.ID, d1.ID, []custos.DeviceStatus{custos.DevicePending},
			custos.DeviceApproved, custos.LevelReadWrite, "key_admin", now, newEvent(org.ID, custos.ActionDeviceApprove)); err != nil {
			t.Fatal(err)
		}
		newK := newKey(org.ID, "dev", custos.RoleMember)
		grace := now.Add(custos.DefaultKeyGrace)
		if err := s.RotateKey(ctx, org.ID, old.ID, newK, now, grace, newEvent(org.ID, custos.ActionKeyRotate)); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindKey(ctx, org.ID, old.ID)
		if err != nil {
			t.Fatal(err)
		} else if got.RotatedAt == nil || !got.RotatedAt.Equal(now) || got.GraceUntil == nil || !got.GraceUntil.Equal(grace) {
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
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		k := MustCreateKey(t, s, org.ID, "a", custos.RoleMember)
		if err := s.RotateKey(ctx, org.ID, k.ID, newKey(org.ID, "a", custos.RoleMember), now, now, newEvent(org.ID, custos.ActionKeyRotate)); err != nil {
			t.Fatal(err)
		}
		r := MustCreateKey(t, s, org.ID, "b", custos.RoleMember)
		if err := s.RevokeKey(ctx, org.ID, r.ID, now, newEvent(org.ID, custos.ActionKeyRevoke)); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{k.ID, r.ID} {
			newK := newKey(org.ID, "c", custos.RoleMember)
			err := s.RotateKey(ctx, org.ID, id, newK, now, now, newEvent(org.ID, custos.ActionKeyRotate))
			if got, want := code(err), custos.ECONFLICT; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
			if _, err := s.FindKeyByHash(ctx, newK.Hash); code(err) != custos.ENOTFOUND {
				t.Fatalf("new key of failed rotation exists: %v", err)
			}
		}
		MustVerifyChain(t, s, org.ID, 5)
	})

	// Ensure rotating an unknown key, or another org's, is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		for _, c := range []struct{ org, id string }{{org.ID, "key_0000000000000000"}, {"org_0000000000000000", owner.ID}} {
			err := s.RotateKey(ctx, c.org, c.id, newKey(org.ID, "c", custos.RoleMember), now, now, newEvent(org.ID, custos.ActionKeyRotate))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 1)
	})
}

func TestKeyStore_RevokeKey(t *testing.T) {
	// Ensure RevokeKey sets RevokedAt once, and a rotated key can be revoked.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		k := MustCreateKey(t, s, org.ID, "a", custos.RoleMember)
		if err := s.RotateKey(ctx, org.ID, k.ID, newKey(org.ID, "a", custos.RoleMember), now, now.Add(time.Hour), newEvent(org.ID, custos.ActionKeyRotate)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, org.ID, k.ID, now.Add(time.Minute), newEvent(org.ID, custos.ActionKeyRevoke)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindKey(ctx, org.ID, k.ID); err != nil {
			t.Fatal(err)
		} else if got.RevokedAt == nil || !got.RevokedAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("RevokedAt=%v", got.RevokedAt)
		} else if got, want := got.Status(now.Add(2*time.Minute)), "revoked"; got != want {
			t.Fatalf("Status=%q, want %q", got, want)
		}
	})

	// Ensure revoking twice is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		if err := s.RevokeKey(ctx, org.ID, owner.ID, now, newEvent(org.ID, custos.ActionKeyRevoke)); err != nil {
			t.Fatal(err)
		}
		err := s.RevokeKey(ctx, org.ID, owner.ID, now, newEvent(org.ID, custos.ActionKeyRevoke))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure revoking an unknown key is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		err := s.RevokeKey(context.Background(), org.ID, "key_0000000000000000", now, newEvent(org.ID, custos.ActionKeyRevoke))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})
}

func TestDeviceStore(t *testing.T) {
	// Ensure devices round-trip and list oldest first, filtered by status.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		d1 := MustCreateDevice(t, s, owner, "a")
		d2 := newDevice(owner, "b")
		d2.CreatedAt = now.Add(time.Second)
		d2.Status, d2.Level, d2.DecidedAt, d2.DecidedBy = custos.DeviceApproved, custos.LevelFull, ptr(now), owner.ID
		if err := s.CreateDevice(ctx, d2, newEvent(org.ID, custos.ActionDeviceNew)); err != nil {
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

	// Ensure a second device with the same fingerprint is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		dup := newDevice(owner, "a")
		err := s.CreateDevice(context.Background(), dup, newEvent(org.ID, custos.ActionDeviceNew))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		_ = d
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure lookups of unknown devices are not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
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

func TestDeviceStore_UpdateDeviceStatus(t *testing.T) {
	// Ensure a device moves only from an allowed status, and is returned.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		got, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DevicePending, custos.DeviceDenied},
			custos.DeviceApproved, custos.LevelRead, owner.ID, now.Add(time.Minute), newEvent(org.ID, custos.ActionDeviceApprove))
		if err != nil {
			t.Fatal(err)
		}
		want := *d
		want.Status, want.Level, want.DecidedAt, want.DecidedBy = custos.DeviceApproved, custos.LevelRead, ptr(now.Add(time.Minute)), owner.ID
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
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		d := MustCreateDevice(t, s, owner, "a")
		_, err := s.UpdateDeviceStatus(ctx, org.ID, d.ID, []custos.DeviceStatus{custos.DeviceApproved},
			custos.DeviceRevoked, "", owner.ID, now, newEvent(org.ID, custos.ActionDeviceRevoke))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if got, _ := s.GetDevice(ctx, org.ID, d.ID); got.Status != custos.DevicePending {
			t.Fatalf("status=%q", got.Status)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure an unknown device is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		_, err := s.UpdateDeviceStatus(context.Background(), org.ID, "dev_0000000000000000", []custos.DeviceStatus{custos.DevicePending},
			custos.DeviceApproved, custos.LevelRead, owner.ID, now, newEvent(org.ID, custos.ActionDeviceApprove))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})
}

func TestSecretStore(t *testing.T) {
	// Ensure secrets round-trip, with nil tags read back as an empty map.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		sec, v := newSecret(org.ID, "web", "DB_URL", nil, "ct1")
		sec.Description = "the database"
		sec.ExpiresAt = ptr(now.Add(72 * time.Hour))
		if err := s.CreateSecret(ctx, sec, v, newEvent(org.ID, custos.ActionSecretSet)); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindSecret(ctx, org.ID, "web", "DB_URL")
		if err != nil {
			t.Fatal(err)
		}
		want := *sec
		want.Tags = map[string]string{}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("FindSecret=%+v, want %+v", got, &want)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure a second secret with the same project and name is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "x")
		sec, v := newSecret(org.ID, "web", "A", nil, "y")
		err := s.CreateSecret(context.Background(), sec, v, newEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure a version that does not belong to the secret is rejected.
	t.Run("ErrInvalid", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		sec, v := newSecret(org.ID, "web", "A", nil, "y")
		v.Version = 2
		err := s.CreateSecret(context.Background(), sec, v, newEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.EINVALID; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})

	// Ensure a missing secret is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "x")
		for _, c := range []struct{ org, project, name string }{{org.ID, "web", "B"}, {org.ID, "api", "A"}, {"org_0000000000000000", "web", "A"}} {
			if _, err := s.FindSecret(context.Background(), c.org, c.project, c.name); code(err) != custos.ENOTFOUND {
				t.Fatalf("FindSecret(%v) err=%v", c, err)
			}
		}
	})
}

func TestSecretStore_UpdateSecret(t *testing.T) {
	// Ensure an update stores the next version and the new metadata.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", map[string]string{"env": "dev"}, "v1")
		upd := *sec
		upd.Version, upd.Tags, upd.Description, upd.UpdatedAt = 2, map[string]string{"env": "prod"}, "now prod", now.Add(time.Hour)
		v := &custos.SecretVersion{Version: 2, Ciphertext: []byte("v2"), WrappedDEK: []byte("d2"), KeeperID: "local:1", CreatedBy: "k", CreatedAt: now.Add(time.Hour)}
		if err := s.UpdateSecret(ctx, &upd, v, newEvent(org.ID, custos.ActionSecretSet)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindSecret(ctx, org.ID, "web", "A"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, &upd) {
			t.Fatalf("FindSecret=%+v, want %+v", got, &upd)
		}
		loaded, err := s.LoadSecrets(ctx, org.ID, "web", nil)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(loaded), 1; got != want {
			t.Fatalf("len=%d, want %d", got, want)
		} else if got, want := string(loaded[0].Current.Ciphertext), "v2"; got != want {
			t.Fatalf("current ciphertext=%q, want %q", got, want)
		}
		vs, err := s.ListVersions(ctx, org.ID, sec.ID)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(vs), 2; got != want {
			t.Fatalf("versions=%d, want %d", got, want)
		} else if vs[0].Version != 2 || vs[1].Version != 1 {
			t.Fatalf("versions order=%d,%d", vs[0].Version, vs[1].Version)
		} else if vs[0].Ciphertext != nil || vs[0].WrappedDEK != nil || vs[0].KeeperID != "local:1" {
			t.Fatalf("ListVersions leaks ciphertext or misses keeper: %+v", vs[0])
		}
		if vs, err := s.ListVersions(ctx, "org_0000000000000000", sec.ID); err != nil {
			t.Fatal(err)
		} else if len(vs) != 0 {
			t.Fatalf("versions of other org=%d", len(vs))
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure a stale version is a conflict and stores nothing.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		stale := *sec
		stale.Version = 3
		err := s.UpdateSecret(ctx, &stale, &custos.SecretVersion{Version: 3, Ciphertext: []byte("v3")}, newEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if vs, _ := s.ListVersions(ctx, org.ID, sec.ID); len(vs) != 1 {
			t.Fatalf("versions=%d, want 1", len(vs))
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure updating a missing secret is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		sec, _ := newSecret(org.ID, "web", "A", nil, "v1")
		sec.Version = 2
		err := s.UpdateSecret(context.Background(), sec, &custos.SecretVersion{Version: 2}, newEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})

	// Ensure exactly one of many concurrent updates from the same version wins.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		const n = 50
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				upd := *sec
				upd.Version = 2
				v := &custos.SecretVersion{Version: 2, Ciphertext: fmt.Appendf(nil, "by-%d", i), WrappedDEK: []byte("d")}
				switch err := s.UpdateSecret(ctx, &upd, v, newEvent(org.ID, custos.ActionSecretSet)); code(err) {
				case "":
					wins.Add(1)
				case custos.ECONFLICT:
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got, want := wins.Load(), int32(1); got != want {
			t.Fatalf("wins=%d, want %d", got, want)
		} else if got, want := conflicts.Load(), int32(n-1); got != want {
			t.Fatalf("conflicts=%d, want %d", got, want)
		}
		if vs, _ := s.ListVersions(ctx, org.ID, sec.ID); len(vs) != 2 {
			t.Fatalf("versions=%d, want 2", len(vs))
		}
		MustVerifyChain(t, s, org.ID, 3)
	})
}

func TestSecretStore_ListLoad(t *testing.T) {
	// Ensure ListSecrets filters by project and tags, and LoadSecrets returns
	// the current version of the named secrets in one call.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "B", map[string]string{"env": "prod", "team": "x"}, "b")
		MustCreateSecret(t, s, org.ID, "web", "A", map[string]string{"env": "dev"}, "a")
		MustCreateSecret(t, s, org.ID, "api", "C", map[string]string{"env": "prod"}, "c")
		MustCreateSecret(t, s, "org_00000000000000ff", "web", "Z", nil, "z")

		names := func(secs []*custos.Secret) (out []string) {
			for _, sec := range secs {
				out = append(out, sec.Project+"/"+sec.Name)
			}
			return out
		}
		for _, c := range []struct {
			f    custos.SecretFilter
			want []string
		}{
			{custos.SecretFilter{}, []string{"api/C", "web/A", "web/B"}},
			{custos.SecretFilter{Project: "web"}, []string{"web/A", "web/B"}},
			{custos.SecretFilter{Tags: map[string]string{"env": "prod"}}, []string{"api/C", "web/B"}},
			{custos.SecretFilter{Project: "web", Tags: map[string]string{"env": "prod", "team": "x"}}, []string{"web/B"}},
			{custos.SecretFilter{Tags: map[string]string{"env": "qa"}}, nil},
		} {
			secs, err := s.ListSecrets(ctx, org.ID, c.f)
			if err != nil {
				t.Fatal(err)
			} else if got, want := names(secs), c.want; !reflect.DeepEqual(got, want) {
				t.Fatalf("ListSecrets(%+v)=%v, want %v", c.f, got, want)
			}
		}

		for _, c := range []struct {
			names []string
			want  []string
		}{
			{nil, []string{"web/A", "web/B"}},
			{[]string{"B"}, []string{"web/B"}},
			{[]string{"B", "A", "MISSING", "C"}, []string{"web/A", "web/B"}},
			{[]string{"MISSING"}, nil},
		} {
			secs, err := s.LoadSecrets(ctx, org.ID, "web", c.names)
			if err != nil {
				t.Fatal(err)
			} else if got, want := names(secs), c.want; !reflect.DeepEqual(got, want) {
				t.Fatalf("LoadSecrets(%v)=%v, want %v", c.names, got, want)
			}
			for _, sec := range secs {
				cur := sec.Current
				if cur == nil || cur.SecretID != sec.ID || cur.Version != sec.Version {
					t.Fatalf("Current=%+v", cur)
				} else if got, want := string(cur.Ciphertext), map[string]string{"A": "a", "B": "b"}[sec.Name]; got != want {
					t.Fatalf("ciphertext=%q, want %q", got, want)
				} else if got, want := string(cur.WrappedDEK), "dek-"+string(cur.Ciphertext); got != want {
					t.Fatalf("wrapped dek=%q, want %q", got, want)
				} else if got, want := cur.KeeperID, "local:1"; got != want {
					t.Fatalf("keeper=%q, want %q", got, want)
				}
			}
		}
	})
}

func TestSecretStore_DeleteSecret(t *testing.T) {
	// Ensure a deleted secret and its versions are gone and the event stays.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s := MustOpenStoreAt(t, path, sqlite.Options{})
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		ev := newEvent(org.ID, custos.ActionSecretDelete)
		ev.Project, ev.Secret = "web", "A"
		if err := s.DeleteSecret(ctx, org.ID, "web", "A", ev); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSecret(ctx, org.ID, "web", "A"); code(err) != custos.ENOTFOUND {
			t.Fatalf("FindSecret err=%v", err)
		}
		var n int
		if err := mustRawDB(t, path).QueryRow(`SELECT count(*) FROM secret_versions WHERE secret_id = ?`, sec.ID).Scan(&n); err != nil {
			t.Fatal(err)
		} else if n != 0 {
			t.Fatalf("versions left=%d", n)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[len(evs)-1].Action, custos.ActionSecretDelete; got != want {
			t.Fatalf("last action=%q, want %q", got, want)
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure deleting a missing secret is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		err := s.DeleteSecret(context.Background(), org.ID, "web", "A", newEvent(org.ID, custos.ActionSecretDelete))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 1)
	})
}

func TestSecretStore_RewrapDEKs(t *testing.T) {
	// Ensure every wrapped DEK is replaced, ciphertext untouched.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "a")
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		n, err := s.RewrapDEKs(ctx, func(wrapped []byte, keeperID string) ([]byte, string, error) {
			return append([]byte("new-"), wrapped...), "local:2", nil
		})
		if err != nil {
			t.Fatal(err)
		} else if got, want := n, 2; got != want {
			t.Fatalf("rewrapped=%d, want %d", got, want)
		}
		secs, err := s.LoadSecrets(ctx, org.ID, "web", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range secs {
			ct := string(sec.Current.Ciphertext)
			if got, want := string(sec.Current.WrappedDEK), "new-dek-"+ct; got != want {
				t.Fatalf("wrapped=%q, want %q", got, want)
			} else if got, want := sec.Current.KeeperID, "local:2"; got != want {
				t.Fatalf("keeper=%q, want %q", got, want)
			}
		}
	})

	// Ensure one failure rolls every rewrap back.
	t.Run("ErrRollback", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "a")
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		calls := 0
		_, err := s.RewrapDEKs(ctx, func(wrapped []byte, keeperID string) ([]byte, string, error) {
			if calls++; calls == 2 {
				return nil, "", custos.Errorf(custos.EUNAVAILABLE, "keeper down")
			}
			return []byte("new"), "local:2", nil
		})
		if got, want := code(err), custos.EUNAVAILABLE; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		secs, _ := s.LoadSecrets(ctx, org.ID, "web", nil)
		for _, sec := range secs {
			if got, want := sec.Current.KeeperID, "local:1"; got != want {
				t.Fatalf("keeper=%q, want %q", got, want)
			}
		}
	})

	// Ensure a panicking callback fails the call but not the writer.
	t.Run("ErrPanic", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "a")
		if _, err := s.RewrapDEKs(ctx, func([]byte, string) ([]byte, string, error) { panic("boom") }); err == nil {
			t.Fatal("expected error")
		}
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		MustVerifyChain(t, s, org.ID, 3)
	})
}

func TestPolicyStore(t *testing.T) {
	// Ensure policies round-trip, list oldest first and delete.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, owner := MustBootstrap(t, s)
		p1 := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "env", TagValue: "prod",
			Rule: custos.RuleBlockModels, Models: []string{"gpt-*", "claude-*"}, ExpiresAt: ptr(now.Add(time.Hour)), CreatedAt: now, CreatedBy: owner.ID}
		p2 := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "env", TagValue: "prod",
			Rule: custos.RuleNotify, NotifyURL: "https://hooks.example.com/x", CreatedAt: now.Add(time.Second), CreatedBy: owner.ID}
		for _, p := range []*custos.Policy{p1, p2} {
			if err := s.CreatePolicy(ctx, p, newEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.ListPolicies(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Policy{p1, p2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPolicies=%+v, want %+v", got, want)
		}
		if err := s.DeletePolicy(ctx, org.ID, p1.ID, newEvent(org.ID, custos.ActionPolicyRemove)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListPolicies(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Policy{p2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPolicies=%+v, want %+v", got, want)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a duplicate policy id is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "a", TagValue: "b", Rule: custos.RuleBlockAlways, CreatedAt: now}
		if err := s.CreatePolicy(ctx, p, newEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		err := s.CreatePolicy(ctx, p, newEvent(org.ID, custos.ActionPolicyAdd))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure deleting an unknown policy, or another org's, is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "a", TagValue: "b", Rule: custos.RuleBlockAlways, CreatedAt: now}
		if err := s.CreatePolicy(ctx, p, newEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ org, id string }{{org.ID, "pol_0000000000000000"}, {"org_0000000000000000", p.ID}} {
			err := s.DeletePolicy(ctx, c.org, c.id, newEvent(org.ID, custos.ActionPolicyRemove))
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("code=%q, want %q (%v)", got, want, err)
			}
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

func TestSessionStore(t *testing.T) {
	// Ensure PutSession replaces the device's session and FindSession returns
	// it only while live.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		s1 := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: org.ID, DeviceID: dev, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		s2 := &custos.Session{ID: custos.NewID(custos.PrefixSession), OrgID: org.ID, DeviceID: dev,
			Tags: map[string]string{"env": "prod"}, CreatedAt: now.Add(time.Minute), ExpiresAt: now.Add(30 * time.Minute)}
		for _, sess := range []*custos.Session{s1, s2} {
			if err := s.PutSession(ctx, sess, newEvent(org.ID, custos.ActionSessionWake)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.FindSession(ctx, org.ID, dev, now.Add(29*time.Minute)); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, s2) {
			t.Fatalf("FindSession=%+v, want %+v", got, s2)
		}
		if _, err := s.FindSession(ctx, org.ID, dev, now.Add(30*time.Minute)); code(err) != custos.ENOTFOUND {
			t.Fatalf("expired session err=%v", err)
		}
		if err := s.DeleteSessions(ctx, org.ID, dev, newEvent(org.ID, custos.ActionSessionSleep)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSession(ctx, org.ID, dev, now); code(err) != custos.ENOTFOUND {
			t.Fatalf("deleted session err=%v", err)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a device without a session is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := MustOpenStore(t).FindSession(context.Background(), "org_0000000000000000", "dev_0000000000000000", now)
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})
}

func TestSessionStore_ConsumeConfirmation(t *testing.T) {
	newConfirmation := func(orgID, dev string, created time.Time) *custos.Confirmation {
		return &custos.Confirmation{ID: custos.NewID(custos.PrefixConfirmation), OrgID: orgID, DeviceID: dev,
			Project: "web", Name: "A", CreatedAt: created, ExpiresAt: created.Add(custos.ConfirmationTTL)}
	}

	// Ensure each confirmation is consumed once, oldest first.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		for _, c := range []*custos.Confirmation{newConfirmation(org.ID, dev, now), newConfirmation(org.ID, dev, now.Add(time.Minute))} {
			if err := s.CreateConfirmation(ctx, c, newEvent(org.ID, custos.ActionConfirm)); err != nil {
				t.Fatal(err)
			}
		}
		at := now.Add(2 * time.Minute)
		for range 2 {
			if err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", at); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", at); code(err) != custos.ENOTFOUND {
			t.Fatalf("third consume err=%v", err)
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure expired confirmations and other devices' or secrets' do not count.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		if err := s.CreateConfirmation(ctx, newConfirmation(org.ID, dev, now), newEvent(org.ID, custos.ActionConfirm)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			dev, project, name string
			at                 time.Time
		}{
			{dev, "web", "A", now.Add(custos.ConfirmationTTL)},
			{"dev_0000000000000002", "web", "A", now},
			{dev, "api", "A", now},
			{dev, "web", "B", now},
		} {
			err := s.ConsumeConfirmation(ctx, org.ID, c.dev, c.project, c.name, c.at)
			if got, want := code(err), custos.ENOTFOUND; got != want {
				t.Fatalf("%+v: code=%q, want %q", c, got, want)
			}
		}
		if err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", now); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure exactly one of 50 concurrent callers consumes a confirmation.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		dev := "dev_0000000000000001"
		if err := s.CreateConfirmation(ctx, newConfirmation(org.ID, dev, now), newEvent(org.ID, custos.ActionConfirm)); err != nil {
			t.Fatal(err)
		}
		var wins, misses atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				switch err := s.ConsumeConfirmation(ctx, org.ID, dev, "web", "A", now); code(err) {
				case "":
					wins.Add(1)
				case custos.ENOTFOUND:
					misses.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got, want := wins.Load(), int32(1); got != want {
			t.Fatalf("wins=%d, want %d", got, want)
		} else if got, want := misses.Load(), int32(49); got != want {
			t.Fatalf("misses=%d, want %d", got, want)
		}
	})
}

func TestAuditStore(t *testing.T) {
	// Ensure every field of an event round-trips, so the chain verifies.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		ev := &custos.AuditEvent{OrgID: org.ID, Time: time.Date(2025, 1, 2, 3, 4, 5, 987654321, time.FixedZone("X", 3600)),
			Action: custos.ActionSecretReveal, Outcome: custos.OutcomeDenied, Reason: "policy \"x\" <denied> ü",
			KeyID: "key_1", User: "ana", DeviceID: "dev_1", Agent: "claude-code", Hostname: "h", MachineUser: "ana",
			IP: "::1", Source: custos.SourceMCP, Mode: custos.ModeReveal, Model: "claude-x", Project: "web",
			Secret: "DB_URL", Version: 7, Target: "sec_1"}
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := ev.Seq, int64(2); got != want {
			t.Fatalf("Seq=%d, want %d", got, want)
		} else if got, want := ev.Time, time.Date(2025, 1, 2, 2, 4, 5, 987654000, time.UTC); got != want {
			t.Fatalf("sealed Time=%v, want %v (UTC, microseconds)", got, want)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[1], ev; !reflect.DeepEqual(got, want) {
			t.Fatalf("event=%+v, want %+v", got, want)
		}
		MustVerifyChain(t, s, org.ID, 2)
		if err := s.AppendAudit(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure ListAudit honours AfterSeq, Since and Limit.
	t.Run("Filter", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org := "org_0000000000000001"
		var evs []*custos.AuditEvent
		for i := range 1500 {
			ev := newEvent(org, custos.ActionSecretInject)
			ev.Time = now.Add(time.Duration(i) * time.Second)
			evs = append(evs, ev)
		}
		if err := s.AppendAudit(ctx, evs, nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			f     custos.AuditFilter
			n     int
			first int64
		}{
			{custos.AuditFilter{}, sqlite.DefaultAuditLimit, 1},
			{custos.AuditFilter{Limit: 20000}, 1500, 1},
			{custos.AuditFilter{AfterSeq: 1490}, 10, 1491},
			{custos.AuditFilter{Since: now.Add(1400 * time.Second), Limit: 5}, 5, 1401},
			{custos.AuditFilter{Since: now.Add(1400 * time.Second), AfterSeq: 1450}, 50, 1451},
			{custos.AuditFilter{AfterSeq: 1500}, 0, 0},
		} {
			got, err := s.ListAudit(ctx, org, c.f)
			if err != nil {
				t.Fatal(err)
			} else if len(got) != c.n {
				t.Fatalf("%+v: len=%d, want %d", c.f, len(got), c.n)
			} else if c.n > 0 && got[0].Seq != c.first {
				t.Fatalf("%+v: first=%d, want %d", c.f, got[0].Seq, c.first)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq != got[i-1].Seq+1 {
					t.Fatalf("%+v: not in seq order at %d", c.f, i)
				}
			}
		}
		if got, err := s.ListAudit(ctx, "org_00000000000000ff", custos.AuditFilter{}); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("other org=%v, want empty", got)
		}
	})

	// Ensure concurrent appends for two orgs from many goroutines form two
	// valid chains.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		orgs := []string{"org_0000000000000001", "org_0000000000000002"}
		const goroutines, appends = 16, 40
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				org := orgs[g%2]
				for i := range appends {
					evs := []*custos.AuditEvent{newEvent(org, custos.ActionSecretInject)}
					if i%4 == 0 {
						evs = append(evs, newEvent(org, custos.ActionSecretReveal))
					}
					evs[0].Reason = fmt.Sprintf("g%d-%d", g, i)
					if err := s.AppendAudit(ctx, evs, nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		per := int64(goroutines / 2 * (appends + appends/4))
		for _, org := range orgs {
			MustVerifyChain(t, s, org, per)
		}
		if st := s.Stats(); st.Batches >= st.Writes {
			t.Logf("no grouping observed: %+v", st)
		}
	})

	// Ensure an append whose outbox insert fails stores none of its events
	// and does not advance the chain, even after its events were sealed.
	t.Run("ErrRollback", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		msg := &custos.OutboxMessage{ID: custos.NewID(custos.PrefixOutbox), OrgID: org.ID, URL: "https://x", CreatedAt: now, NextAttemptAt: now}
		if err := s.AppendAudit(ctx, nil, []*custos.OutboxMessage{msg}); err != nil {
			t.Fatal(err)
		}
		evs := []*custos.AuditEvent{newEvent(org.ID, custos.ActionSecretInject), newEvent(org.ID, custos.ActionSecretInject)}
		err := s.AppendAudit(ctx, evs, []*custos.OutboxMessage{msg})
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 1)
		ev := newEvent(org.ID, custos.ActionSecretInject)
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); err != nil {
			t.Fatal(err)
		} else if got, want := ev.Seq, int64(2); got != want {
			t.Fatalf("Seq=%d, want %d", got, want)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure events and their chain survive a reopen, and appending continues it.
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		org, _ := MustBootstrap(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = MustOpenStoreAt(t, path, sqlite.Options{})
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{newEvent(org.ID, custos.ActionAuthFailed)}, nil); err != nil {
			t.Fatal(err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

func TestOutboxStore(t *testing.T) {
	newMsg := func(created time.Time) *custos.OutboxMessage {
		return &custos.OutboxMessage{OrgID: "org_0000000000000001", URL: "https://hooks.example.com", Payload: []byte(`{"a":1}`),
			CreatedAt: created, NextAttemptAt: created}
	}

	// Ensure messages are claimed once per lease, retried, completed and given up.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		m1, m2, m3 := newMsg(now), newMsg(now.Add(time.Second)), newMsg(now.Add(time.Hour))
		ev := newEvent("org_0000000000000001", custos.ActionSecretInject)
		if err := s.AppendAudit(ctx, []*custos.AuditEvent{ev}, []*custos.OutboxMessage{m1, m2, m3}); err != nil {
			t.Fatal(err)
		}
		if m1.ID == "" {
			t.Fatal("no id assigned")
		}
		at := now.Add(time.Minute)
		got, err := s.ClaimOutbox(ctx, at, 30*time.Second, 10)
		if err != nil {
			t.Fatal(err)
		} else if len(got) != 2 || got[0].ID != m1.ID || got[1].ID != m2.ID {
			t.Fatalf("claimed=%d", len(got))
		} else if got[0].Attempts != 1 || !got[0].NextAttemptAt.Equal(at.Add(30*time.Second)) || string(got[0].Payload) != `{"a":1}` {
			t.Fatalf("claimed=%+v", got[0])
		}
		if got, err := s.ClaimOutbox(ctx, at, 30*time.Second, 10); err != nil {
			t.Fatal(err)
		} else if len(got) != 0 {
			t.Fatalf("claimed again within lease: %d", len(got))
		}
		if err := s.CompleteOutbox(ctx, m1.ID, at); err != nil {
			t.Fatal(err)
		} else if err := s.CompleteOutbox(ctx, m1.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := s.RetryOutbox(ctx, m2.ID, at, ptr(at.Add(10*time.Second)), "503"); err != nil {
			t.Fatal(err)
		}
		got, err = s.ClaimOutbox(ctx, at.Add(10*time.Second), time.Minute, 1)
		if err != nil {
			t.Fatal(err)
		} else if len(got) != 1 || got[0].ID != m2.ID || got[0].Attempts != 2 || got[0].LastError != "503" {
			t.Fatalf("retried claim=%+v", got)
		}
		if err := s.RetryOutbox(ctx, m2.ID, at, nil, "gone"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClaimOutbox(ctx, now.Add(24*time.Hour), time.Minute, 10); err != nil {
			t.Fatal(err)
		} else if len(got) != 1 || got[0].ID != m3.ID {
			t.Fatalf("final claim=%d", len(got))
		}
	})

	// Ensure unknown messages are not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		if err := s.CompleteOutbox(ctx, "obx_0000000000000000", now); code(err) != custos.ENOTFOUND {
			t.Fatalf("CompleteOutbox err=%v", err)
		}
		if err := s.RetryOutbox(ctx, "obx_0000000000000000", now, nil, "x"); code(err) != custos.ENOTFOUND {
			t.Fatalf("RetryOutbox err=%v", err)
		}
	})
}

func TestStore_Batch(t *testing.T) {
	// queue starts fn in a goroutine and waits until its op is queued.
	queue := func(t *testing.T, s *sqlite.Store, fn func() error) <-chan error {
		t.Helper()
		n := s.Queued()
		errc := make(chan error, 1)
		go func() { errc <- fn() }()
		for deadline := time.Now().Add(5 * time.Second); s.Queued() == n; {
			if time.Now().After(deadline) {
				t.Fatal("op was not queued")
			}
			time.Sleep(time.Millisecond)
		}
		return errc
	}
	policy := func(orgID, id string) *custos.Policy {
		return &custos.Policy{ID: id, OrgID: orgID, TagKey: "a", TagValue: "b", Rule: custos.RuleNotify, CreatedAt: now}
	}

	// Ensure a failing op in a batch is rolled back alone: the others commit
	// and its event does not advance the chain.
	t.Run("SavepointFailure", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		p1, p2 := custos.NewID(custos.PrefixPolicy), custos.NewID(custos.PrefixPolicy)
		ev1, evDup, ev2 := newEvent(org.ID, custos.ActionPolicyAdd), newEvent(org.ID, custos.ActionPolicyAdd), newEvent(org.ID, custos.ActionPolicyAdd)

		before := s.Stats()
		release := s.BlockWriter(ctx)
		e1 := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p1), ev1) })
		eDup := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p1), evDup) })
		e2 := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p2), ev2) })
		if err := release(); err != nil {
			t.Fatal(err)
		}
		if err := <-e1; err != nil {
			t.Fatal(err)
		} else if err := <-eDup; code(err) != custos.ECONFLICT {
			t.Fatalf("duplicate err=%v, want conflict", err)
		} else if err := <-e2; err != nil {
			t.Fatal(err)
		}
		if got, want := s.Stats().Batches-before.Batches, int64(2); got != want {
			t.Fatalf("batches=%d, want %d (blocker + one batch)", got, want)
		}
		if got, want := ev2.Seq, int64(3); got != want {
			t.Fatalf("seq after rolled-back op=%d, want %d", got, want)
		}
		if ps, _ := s.ListPolicies(ctx, org.ID); len(ps) != 2 {
			t.Fatalf("policies=%d, want 2", len(ps))
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure a failed COMMIT fails every op of its batch, keeps none of their
	// changes, and the writer recovers with a consistent chain.
	t.Run("CommitFailure", func(t *testing.T) {
		ctx := context.Background()
		s := MustOpenStore(t)
		org, _ := MustBootstrap(t, s)
		p1 := custos.NewID(custos.PrefixPolicy)

		release := s.BlockWriter(ctx)
		e1 := queue(t, s, func() error { return s.CreatePolicy(ctx, policy(org.ID, p1), newEvent(org.ID, custos.ActionPolicyAdd)) })
		// A deferred foreign key violation is only detected at COMMIT.
		eBad := queue(t, s, func() error {
			return s.ExecInWriter(ctx, `PRAGMA defer_foreign_keys = ON`,
				`INSERT INTO secret_versions (secret_id, version, ciphertext, wrapped_dek, keeper_id, created_by, created_at)
				 VALUES ('sec_missing', 1, x'00', x'00', 'k', 'k', 0)`)
		})
		e2 := queue(t, s, func() error {
			return s.AppendAudit(ctx, []*custos.AuditEvent{newEvent(org.ID, custos.ActionAuthFailed)}, nil)
		})
		if err := release(); err != nil {
			t.Fatal(err)
		}
		for i, errc := range []<-chan error{e1, eBad, e2} {
			if err := <-errc; err == nil {
				t.Fatalf("op %d: expected commit error", i)
			} else {
				t.Logf("op %d: %v", i, err)
			}
		}
		if ps, _ := s.ListPolicies(ctx, org.ID); len(ps) != 0 {
			t.Fatalf("policies=%d, want 0", len(ps))
		}
		MustVerifyChain(t, s, org.ID, 1)

		if err := s.CreatePolicy(ctx, policy(org.ID, p1), newEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			t.Fatal(err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure writes fail, and change nothing, while another process holds the
	// write lock, and succeed once it lets go.
	t.Run("Locked", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "custos.db")
		s := MustOpenStoreAt(t, path, sqlite.Options{BusyTimeout: 50 * time.Millisecond})
		org, _ := MustBootstrap(t, s)

		conn, err := mustRawDB(t, path).Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		ev := newEvent(org.ID, custos.ActionPolicyAdd)
		if err := s.CreatePolicy(ctx, policy(org.ID, custos.NewID(custos.PrefixPolicy)), ev); err == nil {
			t.Fatal("expected error while locked")
		} else if code(err) != custos.EINTERNAL {
			t.Fatalf("code=%q, want %q", code(err), custos.EINTERNAL)
		}
		if err := s.Ping(ctx); err == nil {
			t.Fatal("expected ping error while locked")
		}
		if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.ListPolicies(ctx, org.ID); len(ps) != 0 {
			t.Fatalf("policies=%d, want 0", len(ps))
		}
		if err := s.CreatePolicy(ctx, policy(org.ID, custos.NewID(custos.PrefixPolicy)), ev); err != nil {
			t.Fatal(err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

// BenchmarkAppendAudit measures durable single-event appends.
func BenchmarkAppendAudit(b *testing.B) {
	ctx := context.Background()
	org := "org_0000000000000001"

	b.Run("Sequential", func(b *testing.B) {
		s := MustOpenStore(b)
		for b.Loop() {
			if err := s.AppendAudit(ctx, []*custos.AuditEvent{newEvent(org, custos.ActionSecretInject)}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Parallel", func(b *testing.B) {
		s := MustOpenStore(b)
		b.SetParallelism(16)
		before := s.Stats()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.AppendAudit(ctx, []*custos.AuditEvent{newEvent(org, custos.ActionSecretInject)}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
		st := s.Stats()
		if n := st.Batches - before.Batches; n > 0 {
			b.ReportMetric(float64(st.Writes-before.Writes)/float64(n), "writes/batch")
		}
	})
}

// BenchmarkAuditedRead measures the store side of the vault's hot path: key
// by hash, device, policies, session, secrets, then a durable audit event.
func BenchmarkAuditedRead(b *testing.B) {
	ctx := context.Background()
	s := MustOpenStore(b)
	org, owner := MustBootstrap(b, s)
	d := MustCreateDevice(b, s, owner, "laptop")
	for i := range 20 {
		MustCreateSecret(b, s, org.ID, "web", fmt.Sprintf("S%d", i), map[string]string{"env": "prod"}, "ciphertext")
	}
	for range 3 {
		p := &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: org.ID, TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify, CreatedAt: now}
		if err := s.CreatePolicy(ctx, p, newEvent(org.ID, custos.ActionPolicyAdd)); err != nil {
			b.Fatal(err)
		}
	}
	names := []string{"S1", "S2", "S3"}
	read := func() error {
		if _, err := s.FindKeyByHash(ctx, owner.Hash); err != nil {
			return err
		} else if _, err := s.FindDevice(ctx, org.ID, d.Fingerprint); err != nil {
			return err
		} else if _, err := s.ListPolicies(ctx, org.ID); err != nil {
			return err
		} else if _, err := s.FindSession(ctx, org.ID, d.ID, now); code(err) != custos.ENOTFOUND {
			return err
		} else if _, err := s.LoadSecrets(ctx, org.ID, "web", names); err != nil {
			return err
		}
		return s.AppendAudit(ctx, []*custos.AuditEvent{newEvent(org.ID, custos.ActionSecretInject)}, nil)
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := read(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestAuditStore_TwoProcesses(t *testing.T) {
	// Ensure two stores on one file (two processes sharing a data dir) that
	// append concurrently still build one verifiable chain per org.
	path := filepath.Join(t.TempDir(), "custos.db")
	a := MustOpenStoreAt(t, path, sqlite.Options{})
	b := MustOpenStoreAt(t, path, sqlite.Options{})
	org, _ := MustBootstrap(t, a)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, s := range []*sqlite.Store{a, b, a, b} {
		wg.Add(1)
		go func(s *sqlite.Store) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := s.AppendAudit(ctx, []*custos.AuditEvent{newEvent(org.ID, custos.ActionSecretReveal)}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}(s)
	}
	wg.Wait()
	MustVerifyChain(t, a, org.ID, 201)
}
