package vault_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/vault"
)

// Clock is a settable test clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// Env is a vault on a real SQLite file with a real keeper.
type Env struct {
	Store   *sqlite.Store
	Service *vault.Service
	Clock   *Clock
	Owner   *custos.APIKey
	Keeper  envelope.Keeper
}

const testKEK = "base64key://" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// MustOpenEnv opens a store in a temp dir and bootstraps the first org.
func MustOpenEnv(tb testing.TB) *Env {
	tb.Helper()
	return mustOpenEnvWith(tb, nil)
}

func mustOpenEnvWith(tb testing.TB, wrap func(custos.Store) custos.Store) *Env {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "custos.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	k, err := envelope.OpenKeeper(ctx, testKEK, envelope.OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	clock := &Clock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	var store custos.Store = st
	if wrap != nil {
		store = wrap(st)
	}
	svc := vault.New(vault.Config{Store: store, Keeper: k, Now: clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := svc.CheckKeeper(ctx); err != nil {
		tb.Fatal(err)
	}
	tok, created, err := svc.Bootstrap(ctx, "test")
	if err != nil || !created {
		tb.Fatalf("bootstrap: %v %v", created, err)
	}
	owner, err := svc.Authenticate(ctx, tok)
	if err != nil {
		tb.Fatal(err)
	}
	return &Env{Store: st, Service: svc, Clock: clock, Owner: owner, Keeper: k}
}

// As returns a context for key from a fixed device.
func As(k *custos.APIKey, agent string) context.Context {
	return custos.NewContextWithCaller(context.Background(), &custos.Caller{
		Key: k, Agent: agent, Hostname: "laptop", MachineUser: "alice", IP: "127.0.0.1", Source: custos.SourceCLI,
	})
}

// MustKey creates a key with role and returns it authenticated.
func (e *Env) MustKey(tb testing.TB, name string, role custos.Role) (*custos.APIKey, string) {
	tb.Helper()
	_, tok, err := e.Service.CreateKey(As(e.Owner, "cli"), custos.CreateKeyInput{Name: name, Role: role})
	if err != nil {
		tb.Fatal(err)
	}
	k, err := e.Service.Authenticate(context.Background(), tok)
	if err != nil {
		tb.Fatal(err)
	}
	return k, tok
}

// MustSet sets a secret as the owner.
func (e *Env) MustSet(tb testing.TB, project, name, value string, tags map[string]string) *custos.Secret {
	tb.Helper()
	s, err := e.Service.SetSecret(As(e.Owner, "cli"), custos.SetSecretInput{Project: project, Name: name, Value: value, Tags: tags})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// MustApprovedMember returns a member key whose "cli" device is approved at level.
func (e *Env) MustApprovedMember(tb testing.TB, level custos.Level) *custos.APIKey {
	tb.Helper()
	k, _ := e.mustApprovedMember(tb, level)
	return k
}

func (e *Env) mustApprovedMember(tb testing.TB, level custos.Level) (*custos.APIKey, string) {
	tb.Helper()
	k, tok := e.MustKey(tb, "alice", custos.RoleMember)
	_, err := e.Service.AccessSecrets(As(k, "cli"), custos.AccessRequest{Mode: custos.ModeRun})
	if got, want := custos.ErrorCode(err), custos.EDEVICEPENDING; got != want {
		tb.Fatalf("first access: code=%q, want %q (%v)", got, want, err)
	}
	devs, err := e.Service.ListDevices(As(e.Owner, "cli"), custos.DevicePending)
	if err != nil || len(devs) != 1 {
		tb.Fatalf("pending devices: %v %v", devs, err)
	}
	if _, err := e.Service.ApproveDevice(As(e.Owner, "cli"), devs[0].ID, level); err != nil {
		tb.Fatal(err)
	}
	return k, tok
}

func (e *Env) auditCount(tb testing.TB) int {
	tb.Helper()
	evs, err := e.Store.ListAudit(context.Background(), e.Owner.OrgID, custos.AuditFilter{Limit: 10000})
	if err != nil {
		tb.Fatal(err)
	}
	return len(evs)
}

func TestAccess(t *testing.T) {
	// Ensure a value reaches an approved device, and the audit chain records it.
	t.Run("OK", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "DB_PASSWORD", "hunter2", nil)
		k := e.MustApprovedMember(t, custos.LevelRead)
		vals, err := e.Service.AccessSecrets(As(k, "cli"), custos.AccessRequest{Project: "web", Names: []string{"DB_PASSWORD"}, Mode: custos.ModeReveal})
		if err != nil {
			t.Fatal(err)
		} else if got, want := vals[0].Value, "hunter2"; got != want {
			t.Fatalf("value=%q, want %q", got, want)
		}
		evs, _ := e.Store.ListAudit(context.Background(), e.Owner.OrgID, custos.AuditFilter{})
		last := evs[len(evs)-1]
		if got, want := last.Action, custos.ActionSecretReveal; got != want {
			t.Fatalf("action=%q, want %q", got, want)
		}
		if last.DeviceID == "" || last.KeyID != k.ID || last.Secret != "DB_PASSWORD" || last.Mode != custos.ModeReveal || last.IP != "127.0.0.1" || last.MachineUser != "alice" {
			t.Fatalf("incomplete audit event: %+v", last)
		}
		if v := custos.VerifyChain(nil, evs); !v.OK {
			t.Fatalf("chain: %+v", v)
		}
	})

	// Ensure a new device is pending, gets nothing, and is recorded.
	t.Run("ErrDevicePending", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "DB_PASSWORD", "hunter2", nil)
		k, _ := e.MustKey(t, "bob", custos.RoleAgent)
		vals, err := e.Service.AccessSecrets(As(k, "claude"), custos.AccessRequest{Project: "web", Names: []string{"DB_PASSWORD"}, Mode: custos.ModeInject})
		if got, want := custos.ErrorCode(err), custos.EDEVICEPENDING; got != want || vals != nil {
			t.Fatalf("code=%q vals=%v, want %q", got, vals, want)
		}
		if !strings.Contains(custos.ErrorMessage(err), "custos device approve dev_") {
			t.Fatalf("message does not say how to approve: %s", custos.ErrorMessage(err))
		}
		// A second try from the same device does not create a second device.
		_, _ = e.Service.AccessSecrets(As(k, "claude"), custos.AccessRequest{Project: "web", Names: []string{"DB_PASSWORD"}, Mode: custos.ModeInject})
		devs, _ := e.Service.ListDevices(As(e.Owner, "cli"), "")
		if got, want := len(devs), 1; got != want {
			t.Fatalf("devices=%d, want %d", got, want)
		}
	})

	// Ensure denied and revoked devices get nothing.
	t.Run("ErrDeviceDeniedRevoked", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", nil)
		k := e.MustApprovedMember(t, custos.LevelRead)
		devs, _ := e.Service.ListDevices(As(e.Owner, "cli"), custos.DeviceApproved)
		if _, err := e.Service.RevokeDevice(As(e.Owner, "cli"), devs[0].ID); err != nil {
			t.Fatal(err)
		}
		_, err := reveal2(e, k, "web", "A")
		if got, want := custos.ErrorCode(err), custos.EFORBIDDEN; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
		// A revoked device cannot be approved again.
		_, err = e.Service.ApproveDevice(As(e.Owner, "cli"), devs[0].ID, custos.LevelRead)
		if got, want := custos.ErrorCode(err), custos.ECONFLICT; got != want {
			t.Fatalf("re-approve code=%q, want %q", got, want)
		}
	})

	// Ensure the same key from another agent is another device.
	t.Run("OtherAgentIsOtherDevice", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", nil)
		k := e.MustApprovedMember(t, custos.LevelRead)
		_, err := e.Service.AccessSecrets(As(k, "cursor"), custos.AccessRequest{Project: "web", Names: []string{"A"}, Mode: custos.ModeReveal})
		if got, want := custos.ErrorCode(err), custos.EDEVICEPENDING; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
	})

	// Ensure an expired TTL secret is refused with a clear error and listed as expired.
	t.Run("ErrExpired", func(t *testing.T) {
		e := MustOpenEnv(t)
		if _, err := e.Service.SetSecret(As(e.Owner, "cli"), custos.SetSecretInput{Project: "web", Name: "TMP", Value: "x", TTL: custos.Duration(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		k := e.MustApprovedMember(t, custos.LevelRead)
		if _, err := reveal2(e, k, "web", "TMP"); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		e.Clock.Add(time.Hour)
		_, err := reveal2(e, k, "web", "TMP")
		if got, want := custos.ErrorCode(err), custos.EEXPIRED; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
		list, _ := e.Service.ListSecrets(As(e.Owner, "cli"), custos.SecretFilter{Project: "web"})
		if len(list) != 1 || !list[0].Expired(e.Clock.Now()) {
			t.Fatalf("list does not show the secret as expired: %+v", list)
		}
	})

	// Ensure an unknown secret is not found and nothing partial is delivered.
	t.Run("ErrNotFoundAllOrNothing", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", nil)
		k := e.MustApprovedMember(t, custos.LevelRead)
		vals, err := e.Service.AccessSecrets(As(k, "cli"), custos.AccessRequest{Project: "web", Names: []string{"A", "NOPE"}, Mode: custos.ModeInject})
		if got, want := custos.ErrorCode(err), custos.ENOTFOUND; got != want || vals != nil {
			t.Fatalf("code=%q vals=%v, want %q", got, vals, want)
		}
	})
}

func reveal2(e *Env, k *custos.APIKey, project string, names ...string) ([]*custos.SecretValue, error) {
	return e.Service.AccessSecrets(As(k, "cli"), custos.AccessRequest{Project: project, Names: names, Mode: custos.ModeReveal})
}

func TestLevels(t *testing.T) {
	// Ensure read devices cannot write, read-write cannot delete, full can.
	e := MustOpenEnv(t)
	e.MustSet(t, "web", "A", "1", nil)
	k := e.MustApprovedMember(t, custos.LevelRead)
	ctx := As(k, "cli")
	_, err := e.Service.SetSecret(ctx, custos.SetSecretInput{Project: "web", Name: "A", Value: "2"})
	if got, want := custos.ErrorCode(err), custos.EFORBIDDEN; got != want {
		t.Fatalf("set at read: code=%q, want %q", got, want)
	}
	devs, _ := e.Service.ListDevices(As(e.Owner, "cli"), custos.DeviceApproved)
	if _, err := e.Service.ApproveDevice(As(e.Owner, "cli"), devs[0].ID, custos.LevelReadWrite); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Service.SetSecret(ctx, custos.SetSecretInput{Project: "web", Name: "A", Value: "2"}); err != nil {
		t.Fatalf("set at read-write: %v", err)
	}
	if err := e.Service.DeleteSecret(ctx, "web", "A"); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("delete at read-write: %v", err)
	}
	if _, err := e.Service.ApproveDevice(As(e.Owner, "cli"), devs[0].ID, custos.LevelFull); err != nil {
		t.Fatal(err)
	}
	if err := e.Service.DeleteSecret(ctx, "web", "A"); err != nil {
		t.Fatalf("delete at full: %v", err)
	}
	// Members cannot manage devices, keys, policies or read the audit log.
	if _, err := e.Service.ListDevices(ctx, ""); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("member lists devices: %v", err)
	}
	if _, _, err := e.Service.CreateKey(ctx, custos.CreateKeyInput{Name: "x"}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("member creates key: %v", err)
	}
	if _, err := e.Service.AddPolicy(ctx, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("member adds policy: %v", err)
	}
	if _, err := e.Service.ListAudit(ctx, custos.AuditFilter{}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("member reads audit: %v", err)
	}
}

func TestSetSecret(t *testing.T) {
	// Ensure each set makes a new version and history lists them without values.
	t.Run("Versions", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "one", map[string]string{"env": "prod"})
		s := e.MustSet(t, "web", "A", "two", nil)
		if got, want := s.Version, 2; got != want {
			t.Fatalf("version=%d, want %d", got, want)
		}
		if got, want := s.Tags["env"], "prod"; got != want {
			t.Fatalf("tags not kept on a set without tags: %v", s.Tags)
		}
		vs, err := e.Service.SecretHistory(As(e.Owner, "cli"), "web", "A")
		if err != nil || len(vs) != 2 || vs[0].Version != 2 {
			t.Fatalf("history=%+v err=%v", vs, err)
		}
		for _, v := range vs {
			if v.Ciphertext != nil || v.WrappedDEK != nil {
				t.Fatal("history carries ciphertext")
			}
		}
		k := e.MustApprovedMember(t, custos.LevelRead)
		vals, err := reveal2(e, k, "web", "A")
		if err != nil || vals[0].Value != "two" || vals[0].Version != 2 {
			t.Fatalf("reveal=%+v err=%v", vals, err)
		}
	})

	// Ensure invalid input is rejected and changes nothing.
	t.Run("ErrInvalid", func(t *testing.T) {
		e := MustOpenEnv(t)
		before := e.auditCount(t)
		for _, in := range []custos.SetSecretInput{
			{Name: "", Value: "x"},
			{Name: "1BAD", Value: "x"},
			{Name: "A-B", Value: "x"},
			{Name: strings.Repeat("A", 129), Value: "x"},
			{Name: "A", Value: ""},
			{Name: "A", Value: strings.Repeat("x", custos.MaxValueBytes+1)},
			{Name: "A", Value: "x", Project: "Bad Project"},
			{Name: "A", Value: "x", Tags: map[string]string{"Bad Key": "v"}},
			{Name: "A", Value: "x", Description: "line\nbreak"},
			{Name: "A", Value: "x", TTL: -1},
		} {
			if _, err := e.Service.SetSecret(As(e.Owner, "cli"), in); err == nil {
				t.Fatalf("accepted %+v", in.Name)
			} else if c := custos.ErrorCode(err); c != custos.EINVALID && c != custos.ETOOLARGE {
				t.Fatalf("code=%q for %q", c, in.Name)
			}
		}
		if got, want := e.auditCount(t), before; got != want {
			t.Fatalf("audit events=%d, want %d: a rejected request changed state", got, want)
		}
		list, _ := e.Service.ListSecrets(As(e.Owner, "cli"), custos.SecretFilter{})
		if len(list) != 0 {
			t.Fatalf("secrets stored: %d", len(list))
		}
	})

	// Ensure concurrent sets of one secret all land as distinct versions.
	t.Run("Concurrent", func(t *testing.T) {
		e := MustOpenEnv(t)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Service.SetSecret(As(e.Owner, "cli"), custos.SetSecretInput{Project: "web", Name: "A", Value: "v"}); err != nil {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		vs, _ := e.Service.SecretHistory(As(e.Owner, "cli"), "web", "A")
		if got, want := len(vs)+int(failed.Load()), 8; got != want {
			t.Fatalf("versions+failures=%d, want %d", got, want)
		}
	})
}

func TestPolicies(t *testing.T) {
	prod := map[string]string{"env": "prod"}
	add := func(t *testing.T, e *Env, in custos.AddPolicyInput) *custos.Policy {
		t.Helper()
		p, err := e.Service.AddPolicy(As(e.Owner, "cli"), in)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Ensure block_always denies every API access, even to an approved device.
	t.Run("BlockAlways", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		e.MustSet(t, "web", "B", "2", nil)
		k := e.MustApprovedMember(t, custos.LevelRead)
		p := add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways})
		_, err := reveal2(e, k, "web", "A")
		if got, want := custos.ErrorCode(err), custos.EPOLICY; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
		if !strings.Contains(custos.ErrorMessage(err), p.ID) {
			t.Fatalf("message does not name the policy: %s", custos.ErrorMessage(err))
		}
		if _, err := reveal2(e, k, "web", "B"); err != nil {
			t.Fatalf("untagged secret: %v", err)
		}
		// custos run of the whole project is denied as a whole: no partial delivery.
		vals, err := e.Service.AccessSecrets(As(k, "cli"), custos.AccessRequest{Project: "web", Mode: custos.ModeRun})
		if custos.ErrorCode(err) != custos.EPOLICY || vals != nil {
			t.Fatalf("run: vals=%v err=%v", vals, err)
		}
		if err := e.Service.RemovePolicy(As(e.Owner, "cli"), p.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := reveal2(e, k, "web", "A"); err != nil {
			t.Fatalf("after removal: %v", err)
		}
	})

	// Ensure require_session needs a live session covering the tag.
	t.Run("RequireSession", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleRequireSession})
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("without session: %v", err)
		}
		if _, err := e.Service.WakeSession(As(k, "cli"), custos.WakeInput{Tags: map[string]string{"env": "dev"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("session for another tag: %v", err)
		}
		if _, err := e.Service.WakeSession(As(k, "cli"), custos.WakeInput{Tags: prod, TTL: custos.Duration(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := reveal2(e, k, "web", "A"); err != nil {
			t.Fatalf("with session: %v", err)
		}
		e.Clock.Add(11 * time.Minute)
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("after session expiry: %v", err)
		}
		if _, err := e.Service.WakeSession(As(k, "cli"), custos.WakeInput{}); err != nil {
			t.Fatal(err)
		}
		if err := e.Service.SleepSession(As(k, "cli")); err != nil {
			t.Fatal(err)
		}
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("after sleep: %v", err)
		}
	})

	// Ensure block_models denies a matching X-AI-Model and allows others.
	t.Run("BlockModels", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockModels, Models: []string{"gpt-*", "claude-3-opus"}})
		withModel := func(m string) error {
			ctx := custos.NewContextWithCaller(context.Background(), &custos.Caller{Key: k, Agent: "cli", Hostname: "laptop", MachineUser: "alice", IP: "127.0.0.1", Source: custos.SourceCLI, Model: m})
			_, err := e.Service.AccessSecrets(ctx, custos.AccessRequest{Project: "web", Names: []string{"A"}, Mode: custos.ModeReveal})
			return err
		}
		if err := withModel("GPT-4o"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("gpt-4o: %v", err)
		}
		if err := withModel("claude-sonnet-4"); err != nil {
			t.Fatalf("claude-sonnet-4: %v", err)
		}
		if err := withModel(""); err != nil {
			t.Fatalf("no model: %v", err)
		}
	})

	// Ensure require_confirmation needs a fresh ack, which is spent by one read (no replay).
	t.Run("RequireConfirmation", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleRequireConfirmation})
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("without ack: %v", err)
		}
		if _, err := e.Service.Confirm(As(k, "cli"), custos.ConfirmInput{Project: "web", Name: "A"}); err != nil {
			t.Fatal(err)
		}
		if _, err := reveal2(e, k, "web", "A"); err != nil {
			t.Fatalf("with ack: %v", err)
		}
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("replayed ack: %v", err)
		}
		// An ack lapses after five minutes.
		if _, err := e.Service.Confirm(As(k, "cli"), custos.ConfirmInput{Project: "web", Name: "A"}); err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(custos.ConfirmationTTL)
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("expired ack: %v", err)
		}
		// Confirming a secret that does not exist is not found.
		if _, err := e.Service.Confirm(As(k, "cli"), custos.ConfirmInput{Project: "web", Name: "NOPE"}); custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Fatalf("confirm unknown: %v", err)
		}
	})

	// Ensure N concurrent reads with one ack deliver exactly once.
	t.Run("ConfirmationSingleUseConcurrent", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleRequireConfirmation})
		if _, err := e.Service.Confirm(As(k, "cli"), custos.ConfirmInput{Project: "web", Name: "A"}); err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := reveal2(e, k, "web", "A"); err == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if got, want := ok.Load(), int32(1); got != want {
			t.Fatalf("deliveries=%d, want %d", got, want)
		}
	})

	// Ensure the evaluation order: block_always decides over a satisfied require_session.
	t.Run("Order", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleRequireSession})
		bl := add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways})
		_, err := reveal2(e, k, "web", "A")
		if !strings.Contains(custos.ErrorMessage(err), bl.ID) {
			t.Fatalf("not denied by block_always first: %v", err)
		}
	})

	// Ensure a policy with a TTL lapses.
	t.Run("PolicyTTL", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways, TTL: custos.Duration(30 * time.Minute)})
		if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("during ttl: %v", err)
		}
		e.Clock.Add(30 * time.Minute)
		if _, err := reveal2(e, k, "web", "A"); err != nil {
			t.Fatalf("after ttl: %v", err)
		}
	})

	// Ensure notify never blocks and its webhook receives metadata, never the value, with retries.
	t.Run("Notify", func(t *testing.T) {
		var calls atomic.Int32
		got := make(chan string, 4)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
			b, _ := io.ReadAll(r.Body)
			got <- string(b)
		}))
		defer hook.Close()
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "s3cr3t-value", prod)
		k := e.MustApprovedMember(t, custos.LevelRead)
		add(t, e, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify, NotifyURL: hook.URL + "/hook"})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go e.Service.RunNotifier(ctx, hook.Client())
		if _, err := reveal2(e, k, "web", "A"); err != nil {
			t.Fatalf("notify blocked: %v", err)
		}
		// The first delivery fails; move the clock past the backoff so the retry is due.
		deadline := time.After(30 * time.Second)
		for {
			select {
			case body := <-got:
				if strings.Contains(body, "s3cr3t-value") {
					t.Fatalf("webhook got the value: %s", body)
				}
				if !strings.Contains(body, `"secret":"A"`) || !strings.Contains(body, k.ID) {
					t.Fatalf("webhook body lacks metadata: %s", body)
				}
				return
			case <-deadline:
				t.Fatalf("webhook not delivered after retry (calls=%d)", calls.Load())
			case <-time.After(50 * time.Millisecond):
				e.Clock.Add(5 * time.Second)
			}
		}
	})

	// Ensure invalid policies are rejected.
	t.Run("ErrInvalid", func(t *testing.T) {
		e := MustOpenEnv(t)
		for _, in := range []custos.AddPolicyInput{
			{TagKey: "env", TagValue: "prod", Rule: "nope"},
			{TagKey: "Env Key", TagValue: "prod", Rule: custos.RuleBlockAlways},
			{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockModels},
			{TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify},
			{TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify, NotifyURL: "ftp://x"},
			{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways, Models: []string{"x"}},
		} {
			if _, err := e.Service.AddPolicy(As(e.Owner, "cli"), in); custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("%+v: %v", in, err)
			}
		}
	})
}

func TestKeys(t *testing.T) {
	// Ensure a rotated key works during grace, moves device approvals, and stops after grace.
	t.Run("RotateGrace", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "1", nil)
		old, oldTok := e.mustApprovedMember(t, custos.LevelRead)
		_, newTok, err := e.Service.RotateKey(As(e.Owner, "cli"), old.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		nk, err := e.Service.Authenticate(context.Background(), newTok)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reveal2(e, nk, "web", "A"); err != nil {
			t.Fatalf("new key lost the device approval: %v", err)
		}
		if _, err := reveal2(e, old, "web", "A"); err != nil {
			t.Fatalf("old key in grace: %v", err)
		}
		e.Clock.Add(custos.DefaultKeyGrace)
		if _, err := e.Service.Authenticate(context.Background(), oldTok); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
			t.Fatalf("old key after grace: %v", err)
		}
		if _, _, err := e.Service.RotateKey(As(e.Owner, "cli"), old.ID, 0); custos.ErrorCode(err) != custos.ECONFLICT {
			t.Fatalf("second rotation: %v", err)
		}
	})

	// Ensure revoked keys and malformed tokens do not authenticate.
	t.Run("Revoke", func(t *testing.T) {
		e := MustOpenEnv(t)
		k, tok := e.MustKey(t, "bob", custos.RoleMember)
		if err := e.Service.RevokeKey(As(e.Owner, "cli"), k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Service.Authenticate(context.Background(), tok); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
			t.Fatalf("revoked: %v", err)
		}
		for _, bad := range []string{"", "cst_ak_", "cst_pm_" + strings.Repeat("A", 43), tok + "x", strings.Repeat("A", 50)} {
			if _, err := e.Service.Authenticate(context.Background(), bad); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
				t.Fatalf("%q: %v", bad, err)
			} else if strings.Contains(err.Error(), tok) {
				t.Fatal("error echoes the token")
			}
		}
		if err := e.Service.RevokeKey(As(e.Owner, "cli"), k.ID); custos.ErrorCode(err) != custos.ECONFLICT {
			t.Fatalf("second revoke: %v", err)
		}
	})

	// Ensure the last owner key cannot be revoked and admins cannot mint owners.
	t.Run("OwnerSafety", func(t *testing.T) {
		e := MustOpenEnv(t)
		if err := e.Service.RevokeKey(As(e.Owner, "cli"), e.Owner.ID); custos.ErrorCode(err) != custos.ECONFLICT {
			t.Fatalf("revoke last owner: %v", err)
		}
		admin, _ := e.MustKey(t, "ops", custos.RoleAdmin)
		if _, _, err := e.Service.CreateKey(As(admin, "cli"), custos.CreateKeyInput{Name: "x", Role: custos.RoleOwner}); custos.ErrorCode(err) != custos.EFORBIDDEN {
			t.Fatalf("admin mints owner: %v", err)
		}
		if err := e.Service.RevokeKey(As(admin, "cli"), e.Owner.ID); custos.ErrorCode(err) != custos.EFORBIDDEN {
			t.Fatalf("admin revokes owner: %v", err)
		}
	})

	// Ensure an expired key does not authenticate.
	t.Run("TTL", func(t *testing.T) {
		e := MustOpenEnv(t)
		_, tok, err := e.Service.CreateKey(As(e.Owner, "cli"), custos.CreateKeyInput{Name: "ci", Role: custos.RoleAgent, TTL: custos.Duration(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(time.Hour)
		if _, err := e.Service.Authenticate(context.Background(), tok); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
			t.Fatalf("expired key: %v", err)
		}
	})
}

// failingAudit is a store whose audit appends fail.
type failingAudit struct {
	custos.Store
	fail atomic.Bool
}

func (s *failingAudit) AppendAudit(ctx context.Context, evs []*custos.AuditEvent, msgs []*custos.OutboxMessage) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.Store.AppendAudit(ctx, evs, msgs)
}

func TestAuditFailClosed(t *testing.T) {
	// Ensure no value is delivered when its audit event cannot be written.
	var fa *failingAudit
	e := mustOpenEnvWith(t, func(s custos.Store) custos.Store { fa = &failingAudit{Store: s}; return fa })
	e.MustSet(t, "web", "A", "hunter2", nil)
	k := e.MustApprovedMember(t, custos.LevelRead)
	fa.fail.Store(true)
	vals, err := reveal2(e, k, "web", "A")
	if got, want := custos.ErrorCode(err), custos.EUNAVAILABLE; got != want || vals != nil {
		t.Fatalf("code=%q vals=%v, want %q and nothing", got, vals, want)
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(custos.ErrorMessage(err), "audit") {
		t.Fatalf("message: %v", err)
	}
	fa.fail.Store(false)
	if _, err := reveal2(e, k, "web", "A"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestCrypto(t *testing.T) {
	// Ensure values are stored as ciphertext only, bound to their row.
	t.Run("CiphertextBoundToRow", func(t *testing.T) {
		e := MustOpenEnv(t)
		e.MustSet(t, "web", "A", "value-of-a", nil)
		e.MustSet(t, "web", "B", "value-of-b", nil)
		ss, err := e.Store.LoadSecrets(context.Background(), e.Owner.OrgID, "web", nil)
		if err != nil || len(ss) != 2 {
			t.Fatal(err)
		}
		for _, s := range ss {
			if strings.Contains(string(s.Current.Ciphertext), "value-of") {
				t.Fatal("plaintext in ciphertext")
			}
		}
		a, b := ss[0], ss[1]
		sealedB := &envelope.Sealed{Ciphertext: b.Current.Ciphertext, WrappedDEK: b.Current.WrappedDEK, KeeperID: b.Current.KeeperID}
		if _, err := envelope.Open(context.Background(), e.Keeper, sealedB, envelope.SecretAAD(a.OrgID, a.ID, 1)); err == nil {
			t.Fatal("B's ciphertext opened as A's row")
		}
		if _, err := envelope.Open(context.Background(), e.Keeper, sealedB, envelope.SecretAAD(b.OrgID, b.ID, 2)); err == nil {
			t.Fatal("B's ciphertext opened as another version")
		}
		if pt, err := envelope.Open(context.Background(), e.Keeper, sealedB, envelope.SecretAAD(b.OrgID, b.ID, 1)); err != nil || string(pt) != "value-of-b" {
			t.Fatalf("own row: %q %v", pt, err)
		}
	})

	// Ensure a different KEK is detected by the canary before anything is written.
	t.Run("WrongKEK", func(t *testing.T) {
		e := MustOpenEnv(t)
		other, err := envelope.OpenKeeper(context.Background(), "base64key://"+base64.StdEncoding.EncodeToString(make([]byte, 32)), envelope.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc := vault.New(vault.Config{Store: e.Store, Keeper: other})
		if err := svc.CheckKeeper(context.Background()); err == nil {
			t.Fatal("wrong KEK accepted")
		}
	})
}

func TestAuditVerify(t *testing.T) {
	// Ensure the chain verifies after many mixed operations and lists in order.
	e := MustOpenEnv(t)
	for i := 0; i < 20; i++ {
		e.MustSet(t, "web", "A", "v", nil)
	}
	v, err := e.Service.VerifyAudit(As(e.Owner, "cli"))
	if err != nil || !v.OK || v.Events != 21 {
		t.Fatalf("verify=%+v err=%v", v, err)
	}
}

// BenchmarkAccessSecrets measures the value read path below HTTP: device,
// policies, decrypt and a committed audit event, with parallel callers.
func BenchmarkAccessSecrets(b *testing.B) {
	e := MustOpenEnv(b)
	e.MustSet(b, "web", "DB_PASSWORD", "correct-horse-battery-staple", map[string]string{"env": "dev"})
	if _, err := e.Service.AddPolicy(As(e.Owner, "cli"), custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways}); err != nil {
		b.Fatal(err)
	}
	k := e.MustApprovedMember(b, custos.LevelRead)
	ctx := As(k, "cli")
	req := custos.AccessRequest{Project: "web", Names: []string{"DB_PASSWORD"}, Mode: custos.ModeReveal}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Service.AccessSecrets(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestCacheAcrossProcesses(t *testing.T) {
	// Ensure changes made by another process (a second store and service on
	// the same database file) apply to this service's very next request,
	// though it has the key, device, policies and secret cached.
	e := MustOpenEnv(t)
	e.MustSet(t, "web", "A", "first-value", map[string]string{"env": "prod"})
	k, tok := e.mustApprovedMember(t, custos.LevelRead)
	if vals, err := reveal2(e, k, "web", "A"); err != nil || vals[0].Value != "first-value" {
		t.Fatalf("warm-up: %v %v", vals, err)
	}

	other, err := sqlite.Open(context.Background(), e.Store.Path(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	svc2 := vault.New(vault.Config{Store: other, Keeper: e.Keeper, Now: e.Clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	owner := As(e.Owner, "cli")

	// A new value set elsewhere is what the next read gets.
	if _, err := svc2.SetSecret(owner, custos.SetSecretInput{Project: "web", Name: "A", Value: "second-value"}); err != nil {
		t.Fatal(err)
	}
	if vals, err := reveal2(e, k, "web", "A"); err != nil || vals[0].Value != "second-value" {
		t.Fatalf("after a set elsewhere: %v %v", vals, err)
	}
	// A policy added elsewhere applies at once.
	p, err := svc2.AddPolicy(owner, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EPOLICY {
		t.Fatalf("after a policy elsewhere: %v", err)
	}
	if err := svc2.RemovePolicy(owner, p.ID); err != nil {
		t.Fatal(err)
	}
	// A device revoked elsewhere gets nothing.
	devs, _ := svc2.ListDevices(owner, custos.DeviceApproved)
	if _, err := svc2.RevokeDevice(owner, devs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := reveal2(e, k, "web", "A"); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("after a device revocation elsewhere: %v", err)
	}
	// A key revoked elsewhere no longer authenticates.
	if err := svc2.RevokeKey(owner, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Service.Authenticate(context.Background(), tok); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
		t.Fatalf("after a key revocation elsewhere: %v", err)
	}
}

func TestCheckKeeperRace(t *testing.T) {
	// Ensure two replicas with different KEKs starting together on an empty
	// database cannot both start: exactly one canary is written and the
	// other replica is refused.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	var svcs []*vault.Service
	for i := 0; i < 2; i++ {
		st, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		key := make([]byte, 32)
		key[0] = byte(i + 1)
		k, err := envelope.OpenKeeper(ctx, "base64key://"+base64.StdEncoding.EncodeToString(key), envelope.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, vault.New(vault.Config{Store: st, Keeper: k}))
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.CheckKeeper(ctx) }()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("errs=%v, want exactly one replica refused", errs)
	}
}

func TestMCPRules(t *testing.T) {
	e := MustOpenEnv(t)
	e.MustSet(t, "web", "A", "mcp-rule-value", map[string]string{"env": "prod"})
	k := e.MustApprovedMember(t, custos.LevelRead)
	mcp := custos.NewContextWithCaller(context.Background(), &custos.Caller{
		Key: k, Agent: "cli", Hostname: "laptop", MachineUser: "alice", IP: "127.0.0.1", Source: custos.SourceMCP,
	})

	// Ensure an agent over MCP gets a reveal only from a device approved at full,
	// while inject works at read.
	t.Run("RevealNeedsFull", func(t *testing.T) {
		_, err := e.Service.AccessSecrets(mcp, custos.AccessRequest{Project: "web", Names: []string{"A"}, Mode: custos.ModeReveal})
		if got, want := custos.ErrorCode(err), custos.EFORBIDDEN; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
		if _, err := e.Service.AccessSecrets(mcp, custos.AccessRequest{Project: "web", Names: []string{"A"}, Mode: custos.ModeInject}); err != nil {
			t.Fatalf("inject at read: %v", err)
		}
		devs, _ := e.Service.ListDevices(As(e.Owner, "cli"), custos.DeviceApproved)
		if _, err := e.Service.ApproveDevice(As(e.Owner, "cli"), devs[0].ID, custos.LevelFull); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Service.AccessSecrets(mcp, custos.AccessRequest{Project: "web", Names: []string{"A"}, Mode: custos.ModeReveal}); err != nil {
			t.Fatalf("reveal at full: %v", err)
		}
	})

	// Ensure approved devices read the policies; pending ones do not.
	t.Run("ListPolicies", func(t *testing.T) {
		if _, err := e.Service.AddPolicy(As(e.Owner, "cli"), custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleNotify, NotifyURL: "https://hooks.example.com/x"}); err != nil {
			t.Fatal(err)
		}
		ps, err := e.Service.ListPolicies(mcp)
		if err != nil || len(ps) != 1 {
			t.Fatalf("approved device: %v %v", ps, err)
		}
		other, _ := e.MustKey(t, "bob", custos.RoleAgent)
		if _, err := e.Service.ListPolicies(As(other, "cli")); custos.ErrorCode(err) != custos.EDEVICEPENDING {
			t.Fatalf("pending device: %v", err)
		}
	})

	// Ensure CurrentSession reports the device's live session, and not_found without one.
	t.Run("CurrentSession", func(t *testing.T) {
		if _, err := e.Service.CurrentSession(mcp); custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Fatalf("without a session: %v", err)
		}
		woke, err := e.Service.WakeSession(mcp, custos.WakeInput{TTL: custos.Duration(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Service.CurrentSession(mcp)
		if err != nil || got.ID != woke.ID {
			t.Fatalf("current=%v %v, want %s", got, err, woke.ID)
		}
		e.Clock.Add(time.Minute)
		if _, err := e.Service.CurrentSession(mcp); custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Fatalf("after expiry: %v", err)
		}
	})
}
