package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

// newHTTPTestCLI returns a test CLI that reaches its spy services through
// the real HTTP client and API handler, with the key in CUSTOS_API_KEY.
func newHTTPTestCLI(t *testing.T) *testCLI {
	t.Helper()
	tc := newTestCLI(t)
	tc.services = nil
	srv := httptest.NewServer(custoshttp.NewHandler(custoshttp.Config{
		Services: custoshttp.Services{Keys: tc.spy, Secrets: tc.spy, Devices: tc.spy, Policies: tc.spy, Sessions: tc.spy, Audit: tc.spy},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	tc.env["CUSTOS_URL"] = srv.URL
	tc.env["CUSTOS_API_KEY"] = testToken
	tc.spy.authenticateFn = func(token string) (*custos.APIKey, error) {
		if token != testToken {
			return nil, custos.Errorf(custos.EUNAUTHORIZED, "unknown API key")
		}
		return &custos.APIKey{ID: "key_0123456789abcdef", OrgID: "org_0123456789abcdef", Name: "owner", Role: custos.RoleOwner}, nil
	}
	return tc
}

func TestClientHTTP(t *testing.T) {
	t.Run("IdentityAndValue", func(t *testing.T) {
		// Ensure a command reaches the service over HTTP with the key, the
		// device identity, source cli and the model, and the value from stdin.
		tc := newHTTPTestCLI(t)
		tc.env["CUSTOS_AI_MODEL"] = "claude-sonnet-4"
		tc.Stdin = strings.NewReader("v@lue with spaces\n")
		var got custos.SetSecretInput
		tc.spy.setSecret = func(in custos.SetSecretInput) (*custos.Secret, error) {
			got = in
			return &custos.Secret{ID: "sec_0123456789abcdef", Project: in.Project, Name: in.Name, Version: 1, Tags: in.Tags}, nil
		}
		out := tc.mustRun(t, "--agent", "claude-code", "secret", "set", "A", "--project", "web", "--tag", "env=prod", "--ttl", "72h")
		if out != "set web/A version 1\n" {
			t.Fatalf("printed %q", out)
		}
		if got.Value != "v@lue with spaces" || got.Tags["env"] != "prod" || time.Duration(got.TTL) != 72*time.Hour {
			t.Fatalf("service got %+v", got)
		}
		c := tc.spy.lastCaller()
		if c == nil || c.Agent != "claude-code" || c.Hostname != "laptop" || c.MachineUser != "alice" || c.Source != custos.SourceCLI || c.Model != "claude-sonnet-4" {
			t.Fatalf("caller %+v", c)
		}
		if strings.Contains(tc.out.String()+tc.err.String(), testToken) {
			t.Fatal("the key was printed")
		}
	})
	t.Run("ErrorCode", func(t *testing.T) {
		// Ensure the server's error code comes back to the user in brackets.
		tc := newHTTPTestCLI(t)
		tc.spy.accessSecrets = func(custos.AccessRequest) ([]*custos.SecretValue, error) {
			return nil, custos.Errorf(custos.EDEVICEPENDING, "device dev_0123456789abcdef is pending approval")
		}
		if code := tc.run("secret", "reveal", "A"); code != 1 || tc.err.String() != "custos: device dev_0123456789abcdef is pending approval [device_pending]\n" {
			t.Fatalf("exit %d: %q", code, tc.err.String())
		}
	})
	t.Run("WrongKey", func(t *testing.T) {
		// Ensure a key from .custosrc is used, and a wrong one is unauthorized.
		tc := newHTTPTestCLI(t)
		delete(tc.env, "CUSTOS_API_KEY")
		writeFile(t, tc.Dir, ".custosrc", "CUSTOS_API_KEY=cst_ak_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n", 0o600)
		if code := tc.run("key", "list"); code != 1 || !strings.Contains(tc.err.String(), "[unauthorized]") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
		writeFile(t, tc.Dir, ".custosrc", "CUSTOS_API_KEY="+testToken+"\n", 0o600)
		tc.spy.listKeys = func() ([]*custos.APIKey, error) { return nil, nil }
		if out := tc.mustRun(t, "key", "list", "--json"); out != "[]\n" {
			t.Fatalf("printed %q", out)
		}
	})
	t.Run("AuditPaging", func(t *testing.T) {
		// Ensure audit export pages through the API until the end.
		tc := newHTTPTestCLI(t)
		filters := auditSpy(tc, 25, 10)
		out := tc.mustRun(t, "audit", "export")
		if n := strings.Count(out, "\n"); n != 25 {
			t.Fatalf("%d lines", n)
		}
		if len(*filters) != 4 || (*filters)[3].AfterSeq != 25 {
			t.Fatalf("filters %+v", *filters)
		}
		var e custos.AuditEvent
		if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &e); err != nil || e.Seq != 1 {
			t.Fatalf("%v %+v", err, e)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		// Ensure a server that is not there gets a clear message, exit 1.
		tc := newHTTPTestCLI(t)
		tc.env["CUSTOS_URL"] = "http://127.0.0.1:1"
		if code := tc.run("session", "sleep"); code != 1 || !strings.Contains(tc.err.String(), "not reachable") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
}
