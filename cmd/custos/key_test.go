package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

const testToken = "cst_ak_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func TestKeyCreate(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure create sends name, role and TTL, and prints the id and the
		// token once, with a warning on stderr.
		tc := newTestCLI(t)
		var got custos.CreateKeyInput
		tc.spy.createKey = func(in custos.CreateKeyInput) (*custos.APIKey, string, error) {
			got = in
			exp := testNow.Add(time.Duration(in.TTL))
			return &custos.APIKey{ID: "key_0123456789abcdef", Name: in.Name, Role: in.Role, ExpiresAt: &exp}, testToken, nil
		}
		out := tc.mustRun(t, "key", "create", "--name", "ci bot", "--role", "agent", "--ttl", "30d")
		if want := (custos.CreateKeyInput{Name: "ci bot", Role: custos.RoleAgent, TTL: custos.Duration(30 * 24 * time.Hour)}); got != want {
			t.Fatalf("sent %+v", got)
		}
		if strings.Count(out, testToken) != 1 || !strings.Contains(out, "key_0123456789abcdef") || !strings.Contains(out, "2026-03-31T12:00:00Z") {
			t.Fatalf("printed %q", out)
		}
		if !strings.Contains(tc.err.String(), "only once") || strings.Contains(tc.err.String(), testToken) {
			t.Fatalf("stderr %q", tc.err.String())
		}
	})
	t.Run("DefaultRole", func(t *testing.T) {
		// Ensure the role defaults to member and the TTL to none.
		tc := newTestCLI(t)
		tc.spy.createKey = func(in custos.CreateKeyInput) (*custos.APIKey, string, error) {
			if in.Role != custos.RoleMember || in.TTL != 0 {
				t.Errorf("sent %+v", in)
			}
			return &custos.APIKey{ID: "key_0123456789abcdef", Name: in.Name, Role: in.Role}, testToken, nil
		}
		tc.mustRun(t, "key", "create", "--name", "x")
	})
}

func TestKeyList(t *testing.T) {
	// Ensure list shows each key's status, and --json the structs without tokens or hashes.
	tc := newTestCLI(t)
	revoked := testNow.Add(-time.Minute)
	tc.spy.listKeys = func() ([]*custos.APIKey, error) {
		return []*custos.APIKey{
			{ID: "key_0000000000000001", Name: "owner", Role: custos.RoleOwner, CreatedAt: testNow, Hash: "secret-hash"},
			{ID: "key_0000000000000002", Name: "old laptop", Role: custos.RoleMember, CreatedAt: testNow, RevokedAt: &revoked},
		}, nil
	}
	out := tc.mustRun(t, "key", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !reflect.DeepEqual(strings.Fields(lines[0]), []string{"ID", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES"}) ||
		!strings.Contains(lines[1], "active") || !strings.Contains(lines[2], "revoked") || !strings.Contains(lines[2], "old laptop") {
		t.Fatalf("table:\n%s", out)
	}
	js := tc.mustRun(t, "key", "list", "--json")
	var keys []custos.APIKey
	if err := json.Unmarshal([]byte(js), &keys); err != nil || len(keys) != 2 || strings.Contains(js, "secret-hash") {
		t.Fatalf("%v %s", err, js)
	}
	tc.spy.listKeys = func() ([]*custos.APIKey, error) { return []*custos.APIKey{}, nil }
	if out := tc.mustRun(t, "key", "list", "--json"); out != "[]\n" {
		t.Fatalf("empty: %q", out)
	}
}

func TestKeyRotate(t *testing.T) {
	// Ensure rotate sends the grace (default 48h) and prints the new token once.
	tc := newTestCLI(t)
	var grace time.Duration
	tc.spy.rotateKey = func(id string, g time.Duration) (*custos.APIKey, string, error) {
		grace = g
		return &custos.APIKey{ID: "key_00000000000000ff", Name: "ci", Role: custos.RoleMember}, testToken, nil
	}
	out := tc.mustRun(t, "key", "rotate", "key_0123456789abcdef")
	if grace != 48*time.Hour || strings.Count(out, testToken) != 1 || !strings.Contains(out, "key_0123456789abcdef keeps working for 48h") {
		t.Fatalf("grace %v, printed %q", grace, out)
	}
	tc.mustRun(t, "key", "rotate", "--grace", "1h", "key_0123456789abcdef")
	if grace != time.Hour {
		t.Fatalf("grace %v", grace)
	}
}

func TestKeyRevoke(t *testing.T) {
	// Ensure revoke names the key, and server errors come through with their code.
	tc := newTestCLI(t)
	tc.spy.revokeKey = func(id string) error { return nil }
	if out := tc.mustRun(t, "key", "revoke", "key_0123456789abcdef"); out != "revoked key_0123456789abcdef\n" {
		t.Fatalf("printed %q", out)
	}
	tc.spy.revokeKey = func(id string) error { return custos.Errorf(custos.ECONFLICT, "key %s is already revoked", id) }
	if code := tc.run("key", "revoke", "key_0123456789abcdef"); code != 1 || !strings.HasSuffix(tc.err.String(), "[conflict]\n") {
		t.Fatalf("exit %d: %s", code, tc.err.String())
	}
}
