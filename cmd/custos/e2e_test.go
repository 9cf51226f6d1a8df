package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// e2eClock is a settable clock for the server.
type e2eClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *e2eClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }
func (c *e2eClock) Advance(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }

// E2E is a real custos server started through Main on port 0 with its data
// dir in a temp dir, and everything the test saw that must never leak.
type E2E struct {
	Main   *Main
	Data   string
	Clock  *e2eClock
	Logs   *syncBuffer // the server's JSON logs
	Stdout *syncBuffer // the server's startup messages
	Owner  string      // owner token
	Home   string

	mu      sync.Mutex
	secrets []string // tokens and values that must not appear in logs or errors
	cliErrs bytes.Buffer
}

var tokenRE = regexp.MustCompile(`cst_ak_[A-Za-z0-9_-]{43}`)
var deviceRE = regexp.MustCompile(`dev_[0-9a-f]{16}`)

// MustStartE2E starts a server on a fresh data dir.
func MustStartE2E(tb testing.TB, args ...string) *E2E {
	tb.Helper()
	e := &E2E{Data: filepath.Join(tb.TempDir(), "custos-data"), Clock: &e2eClock{}, Logs: &syncBuffer{}, Home: tb.TempDir()}
	e.MustStart(tb, args...)
	b, err := os.ReadFile(filepath.Join(e.Data, "owner.key"))
	if err != nil {
		tb.Fatalf("owner key file: %v", err)
	}
	e.Owner = strings.TrimSpace(string(b))
	e.Remember(e.Owner)
	tb.Cleanup(func() { e.Close(); e.AssertNoLeaks(tb) })
	return e
}

// MustStart (re)starts the server on e.Data.
func (e *E2E) MustStart(tb testing.TB, args ...string) {
	tb.Helper()
	if err := e.Start(args...); err != nil {
		tb.Fatalf("start: %v", err)
	}
}

// Start starts the server on e.Data and returns Run's error.
func (e *E2E) Start(args ...string) error {
	e.Stdout = &syncBuffer{}
	m := NewMain(e.Stdout, e.Logs)
	m.Now = e.Clock.Now
	getenv := func(string) string { return "" }
	if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0", "--data", e.Data}, args...), getenv); err != nil {
		return err
	}
	if err := m.Run(context.Background()); err != nil {
		return err
	}
	e.Main = m
	return nil
}

// Close stops the server.
func (e *E2E) Close() {
	if e.Main != nil {
		_ = e.Main.Close()
		e.Main = nil
	}
}

// Remember records a token or value that must never appear in logs or
// errors. Values must be distinctive (at least 8 bytes) for the check to mean
// anything.
func (e *E2E) Remember(s string) {
	if len(s) < 8 {
		panic("e2e: remembered value too short to search for: use a distinctive value")
	}
	e.mu.Lock()
	e.secrets = append(e.secrets, s)
	e.mu.Unlock()
}

// AssertNoLeaks checks the server logs, startup output, CLI errors and the
// audit log for every remembered token and value.
func (e *E2E) AssertNoLeaks(tb testing.TB) {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	places := map[string]string{"server logs": e.Logs.String(), "cli stderr": e.cliErrs.String()}
	if e.Stdout != nil {
		places["server stdout"] = e.Stdout.String()
	}
	files, _ := filepath.Glob(filepath.Join(e.Data, "custos.db*")) // the database, its WAL and shm
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil { // #nosec G304 -- test data dir
			places["database file "+filepath.Base(f)] = string(b)
		}
	}
	for where, text := range places {
		for _, s := range e.secrets {
			if s != "" && strings.Contains(text, s) {
				tb.Errorf("%s contains a secret value or token (%d bytes)", where, len(s))
			}
		}
		if !strings.HasPrefix(where, "database file") && tokenRE.MatchString(text) {
			tb.Errorf("%s contains something shaped like an API key", where)
		}
	}
}

// CLIResult is what one CLI run printed.
type CLIResult struct {
	Out, Err string
	Code     int
}

// CLI runs the custos CLI in-process with key, as agent, from a fixed
// machine (hostname laptop, user alice), feeding stdin.
func (e *E2E) CLI(tb testing.TB, key, agent, stdin string, args ...string) CLIResult {
	tb.Helper()
	env := map[string]string{"CUSTOS_URL": e.Main.URL(), "CUSTOS_API_KEY": key, "CUSTOS_AGENT": agent, "CUSTOS_HOME": filepath.Join(e.Home, ".custos")}
	var out, errb bytes.Buffer
	c := &CLI{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] },
		Dir:    e.Home, Home: e.Home, Hostname: "laptop", MachineUser: "alice",
		now: e.Clock.Now,
	}
	code := c.Run(context.Background(), args)
	e.mu.Lock()
	e.cliErrs.Write(errb.Bytes())
	e.mu.Unlock()
	return CLIResult{Out: out.String(), Err: errb.String(), Code: code}
}

// MustCLI runs the CLI and fails unless it exits 0.
func (e *E2E) MustCLI(tb testing.TB, key, agent, stdin string, args ...string) string {
	tb.Helper()
	r := e.CLI(tb, key, agent, stdin, args...)
	if r.Code != 0 {
		tb.Fatalf("custos %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Err)
	}
	return r.Out
}

// MustMemberKey creates a member key through the CLI and returns its token.
func (e *E2E) MustMemberKey(tb testing.TB, name string) string {
	tb.Helper()
	out := e.MustCLI(tb, e.Owner, "cli", "", "key", "create", "--name", name, "--role", "member")
	tok := tokenRE.FindString(out)
	if tok == "" {
		tb.Fatalf("key create printed no token: %s", out)
	}
	e.Remember(tok)
	return tok
}

// MustApprove makes key's device for agent known and approves it at level.
func (e *E2E) MustApprove(tb testing.TB, key, agent, level string) string {
	tb.Helper()
	r := e.CLI(tb, key, agent, "", "session", "sleep")
	id := deviceRE.FindString(r.Err)
	if r.Code == 0 || id == "" || !strings.Contains(r.Err, "device_pending") {
		tb.Fatalf("first call from a new device: exit %d, stderr %q", r.Code, r.Err)
	}
	e.MustCLI(tb, e.Owner, "cli", "", "device", "approve", id, "--level", level)
	return id
}

// OrgID returns the org of the owner key.
func (e *E2E) OrgID(tb testing.TB) string {
	tb.Helper()
	k, err := e.Main.Service.Authenticate(context.Background(), e.Owner)
	if err != nil {
		tb.Fatal(err)
	}
	return k.OrgID
}

// Audit returns the whole audit log of the owner's org.
func (e *E2E) Audit(tb testing.TB) []*custos.AuditEvent {
	tb.Helper()
	evs, err := e.Main.Store.ListAudit(context.Background(), e.OrgID(tb), custos.AuditFilter{Limit: 10000})
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

func TestE2E_VaultTour(t *testing.T) {
	// Ensure the README's tour works end to end: set → pending device → approve →
	// inject/reveal/run → audit shows each, chain verifies.
	e := MustStartE2E(t)
	const value = "e2e-db-password-7f3a9c"
	e.Remember(value)

	if !strings.Contains(e.Stdout.String(), "owner.key") {
		t.Fatalf("first start does not say where the owner key is: %s", e.Stdout.String())
	}
	if fi, err := os.Stat(filepath.Join(e.Data, "owner.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("owner.key mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(e.Data, "kek.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek.key mode: %v %v", fi.Mode(), err)
	}

	e.MustCLI(t, e.Owner, "cli", value+"\n", "secret", "set", "DB_PASSWORD", "--project", "web", "--tag", "env=prod", "--description", "primary db")
	list := e.MustCLI(t, e.Owner, "cli", "", "secret", "list", "--project", "web", "--json")
	var secrets []custos.Secret
	if err := json.Unmarshal([]byte(list), &secrets); err != nil || len(secrets) != 1 || secrets[0].Name != "DB_PASSWORD" || secrets[0].Tags["env"] != "prod" {
		t.Fatalf("secret list --json: %v %s", err, list)
	}
	if strings.Contains(list, value) {
		t.Fatal("secret list shows the value")
	}

	alice := e.MustMemberKey(t, "alice")
	r := e.CLI(t, alice, "cli", "", "secret", "reveal", "DB_PASSWORD", "--project", "web")
	if r.Code != 1 || !strings.Contains(r.Err, "device_pending") || strings.Contains(r.Out, value) {
		t.Fatalf("pending device got: exit %d out %q err %q", r.Code, r.Out, r.Err)
	}
	devID := deviceRE.FindString(r.Err)
	pending := e.MustCLI(t, e.Owner, "cli", "", "device", "list", "--pending", "--json")
	if !strings.Contains(pending, devID) || !strings.Contains(pending, "laptop") {
		t.Fatalf("device list --pending: %s", pending)
	}
	e.MustCLI(t, e.Owner, "cli", "", "device", "approve", devID, "--level", "read")

	if got := e.MustCLI(t, alice, "cli", "", "secret", "reveal", "DB_PASSWORD", "--project", "web"); got != value+"\n" {
		t.Fatalf("reveal printed %q", got)
	}

	path := strings.TrimSpace(e.MustCLI(t, alice, "cli", "", "secret", "inject", "DB_PASSWORD", "--project", "web"))
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("inject file %q: %v %v", path, fi, err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("session dir mode: %v %v", di, err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "DB_PASSWORD=") || !strings.Contains(string(b), value) {
		t.Fatalf("inject file lacks the variable")
	}
	e.MustCLI(t, alice, "cli", "", "session", "clear")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("session clear left %s", path)
	}

	if r := e.CLI(t, alice, "cli", "", "run", "--project", "web", "--", "sh", "-c", `test "$DB_PASSWORD" = "`+value+`" && exit 7`); r.Code != 7 {
		t.Fatalf("run: exit %d, want 7 (secret in env and exit code passed through): %s", r.Code, r.Err)
	}

	events := e.MustCLI(t, e.Owner, "cli", "", "audit", "list", "--json")
	var evs []custos.AuditEvent
	if err := json.Unmarshal([]byte(events), &evs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Action+"/"+ev.Outcome] = true
		if ev.Action == custos.ActionSecretReveal && (ev.DeviceID != devID || ev.MachineUser != "alice" || ev.Hostname != "laptop" || ev.Source != custos.SourceCLI || ev.IP != "127.0.0.1") {
			t.Fatalf("reveal event lacks who/where: %+v", ev)
		}
	}
	for _, want := range []string{"secret.set/ok", "key.create/ok", "device.new/ok", "secret.access/denied", "device.approve/ok", "secret.reveal/ok", "secret.inject/ok", "secret.run/ok"} {
		if !seen[want] {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if out := e.MustCLI(t, e.Owner, "cli", "", "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
	export := e.MustCLI(t, e.Owner, "cli", "", "audit", "export", "--format", "jsonl")
	if got, want := strings.Count(export, "\n"), len(e.Audit(t)); got != want {
		t.Fatalf("export lines=%d, want %d", got, want)
	}
	if strings.Contains(export, value) || strings.Contains(events, value) {
		t.Fatal("audit output contains the value")
	}
}

func TestE2E_SecondStartReuses(t *testing.T) {
	// Ensure a second start reuses the database, KEK and owner key and prints no new key.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "second-start-value\n", "secret", "set", "A")
	e.Remember("second-start-value")
	e.MustApprove(t, e.Owner, "cli", "full")
	before, _ := os.ReadFile(filepath.Join(e.Data, "owner.key"))
	e.Close()
	e.MustStart(t)
	if strings.Contains(e.Stdout.String(), "first start") {
		t.Fatalf("second start bootstrapped again: %s", e.Stdout.String())
	}
	after, _ := os.ReadFile(filepath.Join(e.Data, "owner.key"))
	if !bytes.Equal(before, after) {
		t.Fatal("owner.key changed")
	}
	if out := e.MustCLI(t, e.Owner, "cli", "", "secret", "reveal", "A"); out != "second-start-value\n" {
		t.Fatalf("reveal after restart: %q", out)
	}
}

func TestE2E_RunEnvFile(t *testing.T) {
	// Ensure custos run --env-file resolves custos:// references and passes literals through.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "tok-123-abcdef\n", "secret", "set", "API_TOKEN", "--project", "api")
	e.Remember("tok-123-abcdef")
	e.MustApprove(t, e.Owner, "cli", "read")
	tmpl := filepath.Join(e.Home, ".env.tmpl")
	if err := os.WriteFile(tmpl, []byte("# template\nTOKEN=custos://api/API_TOKEN\nMODE=dev\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.CLI(t, e.Owner, "cli", "", "run", "--env-file", tmpl, "--", "sh", "-c", `test "$TOKEN" = tok-123-abcdef && test "$MODE" = dev`)
	if r.Code != 0 {
		t.Fatalf("run --env-file: exit %d: %s", r.Code, r.Err)
	}
	// A reference to a missing secret fails and runs nothing.
	if err := os.WriteFile(tmpl, []byte("X=custos://api/NOPE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(e.Home, "ran")
	if r := e.CLI(t, e.Owner, "cli", "", "run", "--env-file", tmpl, "--", "touch", marker); r.Code == 0 {
		t.Fatal("run with a missing reference succeeded")
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the command ran although a reference failed")
	}
}

func TestE2E_KeyRotation(t *testing.T) {
	// Ensure a rotated key keeps working for its grace period with the device approval
	// moved to the new key, and is refused after it.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "rotation-value\n", "secret", "set", "A")
	e.Remember("rotation-value")
	alice := e.MustMemberKey(t, "alice")
	e.MustApprove(t, alice, "cli", "read")
	keys := e.MustCLI(t, e.Owner, "cli", "", "key", "list", "--json")
	var ks []custos.APIKey
	if err := json.Unmarshal([]byte(keys), &ks); err != nil {
		t.Fatal(err)
	}
	var id string
	for _, k := range ks {
		if k.Name == "alice" {
			id = k.ID
		}
	}
	out := e.MustCLI(t, e.Owner, "cli", "", "key", "rotate", id, "--grace", "1h")
	alice2 := tokenRE.FindString(out)
	e.Remember(alice2)
	if alice2 == "" || alice2 == alice {
		t.Fatalf("rotate printed no new token: %s", out)
	}
	if got := e.MustCLI(t, alice2, "cli", "", "secret", "reveal", "A"); got != "rotation-value\n" {
		t.Fatalf("new key: %q", got)
	}
	if got := e.MustCLI(t, alice, "cli", "", "secret", "reveal", "A"); got != "rotation-value\n" {
		t.Fatalf("old key in grace: %q", got)
	}
	e.Clock.Advance(time.Hour + time.Second)
	if r := e.CLI(t, alice, "cli", "", "secret", "reveal", "A"); r.Code == 0 || !strings.Contains(r.Err, "unauthorized") {
		t.Fatalf("old key past grace: exit %d %s", r.Code, r.Err)
	}
	if got := e.MustCLI(t, alice2, "cli", "", "secret", "reveal", "A"); got != "rotation-value\n" {
		t.Fatalf("new key after grace: %q", got)
	}
	e.MustCLI(t, e.Owner, "cli", "", "key", "revoke", id)
}
