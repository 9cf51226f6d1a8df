package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
)

func TestAdminMigrate(t *testing.T) {
	// Ensure admin migrate --status shows a fresh SQLite database as up to
	// date after a server ran, and refuses a data dir without a database.
	t.Run("SQLite", func(t *testing.T) {
		e := MustStartE2E(t)
		e.Close()
		r := cliOffline(t, "admin", "migrate", "--status", "--data", e.Data)
		if r.Code != 0 || !strings.Contains(r.Out, "schema up to date") || !strings.Contains(r.Out, "cache_epoch") {
			t.Fatalf("exit %d out %q err %q", r.Code, r.Out, r.Err)
		}
		if r := cliOffline(t, "admin", "migrate", "--status", "--data", filepath.Join(t.TempDir(), "none")); r.Code != 1 {
			t.Fatalf("empty data dir: exit %d %s", r.Code, r.Err)
		}
	})

	// Ensure on PostgreSQL --status lists pending migrations of an empty
	// database without applying them, and migrate applies them.
	t.Run("PostgreSQL", func(t *testing.T) {
		db := freshDatabase(t)
		r := cliOffline(t, "admin", "migrate", "--status", "--json", "--database", db)
		var ms []custos.MigrationState
		if err := json.Unmarshal([]byte(r.Out), &ms); r.Code != 0 || err != nil || len(ms) < 2 {
			t.Fatalf("status of an empty database: exit %d out %q err %q", r.Code, r.Out, r.Err)
		}
		for _, m := range ms {
			if m.AppliedAt != nil {
				t.Fatalf("--status applied migration %d", m.Version)
			}
		}
		if r := cliOffline(t, "admin", "migrate", "--database", db); r.Code != 0 || !strings.Contains(r.Out, "up to date") {
			t.Fatalf("migrate: exit %d out %q err %q", r.Code, r.Out, r.Err)
		}
		r = cliOffline(t, "admin", "migrate", "--status", "--json", "--database", db)
		ms = nil
		if err := json.Unmarshal([]byte(r.Out), &ms); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.AppliedAt == nil {
				t.Fatalf("migration %d still pending", m.Version)
			}
		}
		if strings.Contains(r.Out+r.Err, "postgres:") && strings.Contains(r.Out+r.Err, "@") {
			t.Fatal("output shows the database URL")
		}
	})

	// Ensure a bad database URL is a usage error naming the flag.
	t.Run("ErrBadURL", func(t *testing.T) {
		m := NewMain(nil, nil)
		err := m.ParseFlags([]string{"--database", "mysql://x"}, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "--database") {
			t.Fatalf("err=%v", err)
		}
	})
}

func TestE2E_KEKRotationPostgres(t *testing.T) {
	// Ensure rotate-kek works on a PostgreSQL database with the servers stopped.
	db := freshDatabase(t)
	data := filepath.Join(t.TempDir(), "custos-data")
	r := startReplica(t, "--data", data, "--database", db)
	// While a replica serves, the offline rotation refuses to run.
	busy := cliOffline(t, "admin", "rotate-kek", "--data", t.TempDir(), "--database", db, "--keeper", "file://"+filepath.Join(data, "kek.key"), "--to", "file://"+filepath.Join(t.TempDir(), "k.key"))
	if busy.Code == 0 || !strings.Contains(busy.Err, "stop every replica") {
		t.Fatalf("rotate-kek with a replica running: exit %d %s", busy.Code, busy.Err)
	}
	r.kill()
	out := cliOffline(t, "admin", "rotate-kek", "--data", data, "--database", db, "--to", "file://"+filepath.Join(data, "kek-2.key"))
	if out.Code != 0 || !strings.Contains(out.Out, "re-wrapped") {
		t.Fatalf("rotate-kek: exit %d out %q err %q", out.Code, out.Out, out.Err)
	}
	r.start(t) // uses keeper.url; the canary proves the new KEK
	r.kill()
}
