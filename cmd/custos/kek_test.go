package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// execDB runs SQL directly on a stopped server's database, as an attacker
// with access to the file would.
func execDB(tb testing.TB, data, query string, args ...any) {
	tb.Helper()
	db, err := sql.Open("sqlite", filepath.Join(data, "custos.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

func TestE2E_KEKRotation(t *testing.T) {
	// Ensure rotate-kek re-wraps every DEK, the server then starts on the new
	// KEK by itself, values still open, and the old KEK is refused.
	e := MustStartE2E(t)
	for _, n := range []string{"A", "B", "C"} {
		e.MustCLI(t, e.Owner, "cli", "kek-value-"+n+"\n", "secret", "set", n)
		e.Remember("kek-value-" + n)
	}
	e.MustCLI(t, e.Owner, "cli", "kek-value-A2\n", "secret", "set", "A") // two versions
	e.Remember("kek-value-A2")
	e.MustApprove(t, e.Owner, "cli", "read")
	e.Close()

	// While a server holds the data dir, the offline command refuses to run.
	e.MustStart(t)
	busy := e.CLI(t, "", "cli", "", "admin", "rotate-kek", "--data", e.Data, "--to", "file://"+filepath.Join(e.Data, "kek-2.key"))
	if busy.Code == 0 || !strings.Contains(busy.Err, "stop it first") {
		t.Fatalf("rotate-kek with a running server: exit %d %s", busy.Code, busy.Err)
	}
	e.Close()

	oldKEK, _ := os.ReadFile(filepath.Join(e.Data, "kek.key"))
	r := cliOffline(t, "admin", "rotate-kek", "--data", e.Data, "--to", "file://"+filepath.Join(e.Data, "kek-2.key"))
	if r.Code != 0 || !strings.Contains(r.Out, "re-wrapped 4 data keys") {
		t.Fatalf("rotate-kek: exit %d out %q err %q", r.Code, r.Out, r.Err)
	}
	if fi, err := os.Stat(filepath.Join(e.Data, "kek-2.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key file: %v %v", fi, err)
	}

	e.MustStart(t) // picks up keeper.url
	if got := e.MustCLI(t, e.Owner, "cli", "", "secret", "reveal", "A"); got != "kek-value-A2\n" {
		t.Fatalf("after rotation: %q", got)
	}
	if got := e.MustCLI(t, e.Owner, "cli", "", "secret", "reveal", "C"); got != "kek-value-C\n" {
		t.Fatalf("after rotation: %q", got)
	}
	e.Close()

	// The old KEK cannot open the database any more: refused before serving.
	err := e.Start("--keeper", "file://"+filepath.Join(e.Data, "kek.key"))
	if err == nil || !strings.Contains(err.Error(), "canary") {
		t.Fatalf("start with the old KEK: %v", err)
	}
	if strings.Contains(err.Error(), strings.TrimSpace(string(oldKEK))) {
		t.Fatal("error shows key material")
	}
	e.MustStart(t)
}

// cliOffline runs an offline CLI command (no server).
func cliOffline(tb testing.TB, args ...string) CLIResult {
	tb.Helper()
	var out, errb strings.Builder
	c := &CLI{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
		Dir: tb.TempDir(), Home: tb.TempDir(), Hostname: "laptop", MachineUser: "alice"}
	code := c.Run(context.Background(), args)
	return CLIResult{Out: out.String(), Err: errb.String(), Code: code}
}

func TestE2E_WrongKEK(t *testing.T) {
	// Ensure a server given another KEK refuses to start and writes nothing.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "wrong-kek-value\n", "secret", "set", "A")
	e.Remember("wrong-kek-value")
	e.Close()
	before, _ := os.ReadFile(filepath.Join(e.Data, "custos.db"))
	other := "base64key://" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	err := e.Start("--keeper", other)
	if err == nil || !strings.Contains(err.Error(), "canary") {
		t.Fatalf("start with another KEK: %v", err)
	}
	if strings.Contains(err.Error(), other[len("base64key://"):]) {
		t.Fatal("error shows the key")
	}
	after, _ := os.ReadFile(filepath.Join(e.Data, "custos.db"))
	if string(before) != string(after) {
		t.Fatal("the database changed")
	}
	e.MustStart(t)
}

func TestE2E_TamperedRows(t *testing.T) {
	// Ensure a ciphertext moved to another row, or modified, does not open:
	// the read fails with an internal error and delivers nothing.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "tamper-value-a\n", "secret", "set", "A")
	e.MustCLI(t, e.Owner, "cli", "tamper-value-b\n", "secret", "set", "B")
	e.MustCLI(t, e.Owner, "cli", "tamper-value-c\n", "secret", "set", "C")
	e.Remember("tamper-value-a")
	e.Remember("tamper-value-b")
	e.Remember("tamper-value-c")
	e.MustApprove(t, e.Owner, "cli", "read")
	e.Close()
	// Copy B's ciphertext and wrapped DEK into A's row.
	execDB(t, e.Data, `UPDATE secret_versions SET ciphertext = (SELECT v.ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'B'),
		wrapped_dek = (SELECT v.wrapped_dek FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'B')
		WHERE secret_id = (SELECT id FROM secrets WHERE name = 'A')`)
	// Flip the last byte of C's ciphertext.
	execDB(t, e.Data, `UPDATE secret_versions SET ciphertext = CAST(substr(ciphertext, 1, length(ciphertext)-1) || CASE WHEN substr(ciphertext, -1) = x'00' THEN x'01' ELSE x'00' END AS BLOB)
		WHERE secret_id = (SELECT id FROM secrets WHERE name = 'C')`)
	e.MustStart(t)
	for _, n := range []string{"A", "C"} {
		r := e.CLI(t, e.Owner, "cli", "", "secret", "reveal", n)
		if r.Code == 0 || strings.Contains(r.Out, "value-") || !strings.Contains(r.Err, "internal") {
			t.Fatalf("tampered %s: exit %d out %q err %q", n, r.Code, r.Out, r.Err)
		}
	}
	if got := e.MustCLI(t, e.Owner, "cli", "", "secret", "reveal", "B"); got != "tamper-value-b\n" {
		t.Fatalf("untouched B: %q", got)
	}
}

func TestE2E_AuditTamper(t *testing.T) {
	// Ensure audit verify finds an edited event and says where the chain breaks.
	e := MustStartE2E(t)
	for i := 0; i < 5; i++ {
		e.MustCLI(t, e.Owner, "cli", "audit-tamper-value\n", "secret", "set", "A")
	}
	e.Remember("audit-tamper-value")
	e.Close()
	execDB(t, e.Data, `UPDATE audit_events SET ip = '10.6.6.6' WHERE seq = 3`)
	e.MustStart(t)
	r := e.CLI(t, e.Owner, "cli", "", "audit", "verify")
	if r.Code != 1 || !strings.Contains(r.Out+r.Err, "BROKEN at event 3") {
		t.Fatalf("verify after tamper: exit %d out %q err %q", r.Code, r.Out, r.Err)
	}
	e.Close()
	execDB(t, e.Data, `DELETE FROM audit_events WHERE seq = 2`)
	e.MustStart(t)
	r = e.CLI(t, e.Owner, "cli", "", "audit", "verify")
	if r.Code != 1 || !strings.Contains(r.Out+r.Err, "BROKEN at event") {
		t.Fatalf("verify after delete: exit %d out %q err %q", r.Code, r.Out, r.Err)
	}
}
