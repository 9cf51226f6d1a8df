package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// Snapshot serializes every piece of state a request could change.
func (e *E2E) Snapshot(tb testing.TB) string {
	tb.Helper()
	ctx, st, org := context.Background(), e.Main.Store, e.OrgID(tb)
	secrets, err := st.ListSecrets(ctx, org, custos.SecretFilter{})
	if err != nil {
		tb.Fatal(err)
	}
	var versions [][]*custos.SecretVersion
	for _, s := range secrets {
		vs, err := st.ListVersions(ctx, org, s.ID)
		if err != nil {
			tb.Fatal(err)
		}
		versions = append(versions, vs)
	}
	keys, _ := st.ListKeys(ctx, org)
	devs, _ := st.ListDevices(ctx, org, "")
	pols, _ := st.ListPolicies(ctx, org)
	evs := e.Audit(tb)
	b, err := json.Marshal([]any{secrets, versions, keys, devs, pols, evs})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// Raw sends one HTTP request with tok (if any) and the CLI's identity headers.
func (e *E2E) Raw(tb testing.TB, tok, method, path, contentType string, body io.Reader) (int, string, string) {
	tb.Helper()
	req, err := http.NewRequest(method, e.Main.URL()+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Custos-Agent", "cli")
	req.Header.Set("X-Custos-Hostname", "laptop")
	req.Header.Set("X-Custos-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(b, &env)
	return resp.StatusCode, env.Error.Code, string(b)
}

func TestE2E_BadInput(t *testing.T) {
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "original-value\n", "secret", "set", "A", "--project", "web", "--tag", "env=prod")
	e.Remember("original-value")
	alice := e.MustMemberKey(t, "alice")
	devID := e.MustApprove(t, alice, "cli", "read")
	revoked := e.MustMemberKey(t, "mallory")
	var revokedID string
	keys, _ := e.Main.Store.ListKeys(context.Background(), e.OrgID(t))
	for _, k := range keys {
		if k.Name == "mallory" {
			revokedID = k.ID
		}
	}
	e.MustCLI(t, e.Owner, "cli", "", "key", "revoke", revokedID)
	const json = "application/json"
	big := strings.Repeat("x", 300<<10)
	bigValue := `{"value":"` + strings.Repeat("x", custos.MaxValueBytes+1) + `"}`

	for _, tc := range []struct {
		name, tok, method, path, ctype, body string
		status                               int
		code                                 string
	}{
		{"MalformedJSON", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":`, 400, "invalid"},
		{"UnknownField", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":"x","owner":"me"}`, 400, "invalid"},
		{"TrailingData", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":"x"}{"value":"y"}`, 400, "invalid"},
		{"WrongType", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":42}`, 400, "invalid"},
		{"EmptyBody", e.Owner, "PUT", "/v1/secrets/web/A", json, ``, 400, "invalid"},
		{"OversizedBody", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":"` + big + `"}`, 413, "too_large"},
		{"OversizedValue", e.Owner, "PUT", "/v1/secrets/web/A", json, bigValue, 413, "too_large"},
		{"WrongContentType", e.Owner, "PUT", "/v1/secrets/web/A", "text/plain", `{"value":"x"}`, 415, "invalid"},
		{"InvalidName", e.Owner, "PUT", "/v1/secrets/web/1BAD", json, `{"value":"x"}`, 400, "invalid"},
		{"InvalidNameInjection", e.Owner, "PUT", "/v1/secrets/web/A%27%3B%20DROP%20TABLE%20secrets", json, `{"value":"x"}`, 400, "invalid"},
		{"InvalidProject", e.Owner, "PUT", "/v1/secrets/Web%20App/A", json, `{"value":"x"}`, 400, "invalid"},
		{"InvalidTag", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":"x","tags":{"Bad Key":"v"}}`, 400, "invalid"},
		{"InvalidTTL", e.Owner, "PUT", "/v1/secrets/web/A", json, `{"value":"x","ttl":"soon"}`, 400, "invalid"},
		{"NoAuth", "", "PUT", "/v1/secrets/web/A", json, `{"value":"x"}`, 401, "unauthorized"},
		{"MalformedToken", "not-a-token", "PUT", "/v1/secrets/web/A", json, `{"value":"x"}`, 401, "unauthorized"},
		{"UnknownToken", "cst_ak_" + strings.Repeat("A", 43), "PUT", "/v1/secrets/web/A", json, `{"value":"x"}`, 401, "unauthorized"},
		{"WrongTokenType", "cst_pm_" + strings.Repeat("A", 43), "GET", "/v1/secrets", "", "", 401, "unauthorized"},
		{"RevokedKey", revoked, "GET", "/v1/secrets", "", "", 401, "unauthorized"},
		{"BadMode", alice, "POST", "/v1/secrets/access", json, `{"project":"web","names":["A"],"mode":"steal"}`, 400, "invalid"},
		{"TooManyNames", alice, "POST", "/v1/secrets/access", json, `{"project":"web","names":[` + strings.TrimSuffix(strings.Repeat(`"A",`, 300), ",") + `],"mode":"reveal"}`, 400, "invalid"},
		{"AccessBadName", alice, "POST", "/v1/secrets/access", json, `{"project":"web","names":["../../etc"],"mode":"reveal"}`, 400, "invalid"},
		{"MemberManagesDevices", alice, "POST", "/v1/devices/" + devID + "/approve", json, `{"level":"full"}`, 403, "forbidden"},
		{"BadLevel", e.Owner, "POST", "/v1/devices/" + devID + "/approve", json, `{"level":"root"}`, 400, "invalid"},
		{"UnknownDevice", e.Owner, "POST", "/v1/devices/dev_0000000000000000/approve", json, `{"level":"read"}`, 404, "not_found"},
		{"MalformedDeviceID", e.Owner, "POST", "/v1/devices/dev_x/approve", json, `{"level":"read"}`, 400, "invalid"},
		{"BadRule", e.Owner, "POST", "/v1/policies", json, `{"tag_key":"env","tag_value":"prod","rule":"allow_all"}`, 400, "invalid"},
		{"BadNotifyURL", e.Owner, "POST", "/v1/policies", json, `{"tag_key":"env","tag_value":"prod","rule":"notify","notify_url":"file:///etc/passwd"}`, 400, "invalid"},
		{"BadRole", e.Owner, "POST", "/v1/keys", json, `{"name":"x","role":"root"}`, 400, "invalid"},
		{"BadKeyName", e.Owner, "POST", "/v1/keys", json, `{"name":"\u0000evil","role":"member"}`, 400, "invalid"},
		{"UnknownKey", e.Owner, "POST", "/v1/keys/key_0000000000000000/rotate", json, `{}`, 404, "not_found"},
		{"BadAuditLimit", e.Owner, "GET", "/v1/audit?limit=abc", "", "", 400, "invalid"},
		{"BadAuditSince", e.Owner, "GET", "/v1/audit?since=yesterday", "", "", 400, "invalid"},
		{"WrongMethod", e.Owner, "PATCH", "/v1/secrets/web/A", json, `{"value":"x"}`, 405, "invalid"},
		{"UnknownPath", e.Owner, "GET", "/v1/nope", "", "", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Ensure the request gets its status and code and changes nothing.
			before := e.Snapshot(t)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			status, code, raw := e.Raw(t, tc.tok, tc.method, tc.path, tc.ctype, body)
			if status != tc.status || code != tc.code {
				t.Fatalf("status=%d code=%q, want %d %q: %s", status, code, tc.status, tc.code, raw)
			}
			if status >= 500 {
				t.Fatalf("bad input gave a server error: %s", raw)
			}
			if after := e.Snapshot(t); after != before {
				t.Fatal("a rejected request changed state")
			}
		})
	}

	// Ensure a hostile identity header is refused before anything happens.
	t.Run("HostileIdentity", func(t *testing.T) {
		before := e.Snapshot(t)
		req, _ := http.NewRequest("POST", e.Main.URL()+"/v1/secrets/access", strings.NewReader(`{"project":"web","names":["A"],"mode":"reveal"}`))
		req.Header.Set("Authorization", "Bearer "+alice)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Custos-Agent", "cli:evil;"+strings.Repeat("a", 100))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status=%d, want 400", resp.StatusCode)
		}
		if after := e.Snapshot(t); after != before {
			t.Fatal("state changed")
		}
	})
}

func TestE2E_Denials(t *testing.T) {
	// Ensure denials return the right code, deliver nothing, and change nothing but the audit log.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "prodvalue\n", "secret", "set", "P", "--project", "web", "--tag", "env=prod")
	e.Remember("prodvalue")
	alice := e.MustMemberKey(t, "alice")
	e.MustApprove(t, alice, "cli", "read")
	e.MustCLI(t, e.Owner, "cli", "", "policy", "add", "--tag", "env=prod", "--rule", "require_confirmation")

	reveal := func() (int, string, string) {
		return e.Raw(t, alice, "POST", "/v1/secrets/access", "application/json", strings.NewReader(`{"project":"web","names":["P"],"mode":"reveal"}`))
	}
	// Ensure a replayed confirmation is refused.
	e.MustCLI(t, alice, "cli", "", "confirm", "P", "--project", "web")
	if status, _, raw := reveal(); status != 200 || !strings.Contains(raw, "prodvalue") {
		t.Fatalf("confirmed read: %d %s", status, raw)
	}
	n := len(e.Audit(t))
	if status, code, raw := reveal(); status != 403 || code != "policy_denied" || strings.Contains(raw, "prodvalue") {
		t.Fatalf("replayed confirmation: %d %s %s", status, code, raw)
	}
	if got := len(e.Audit(t)); got != n+1 {
		t.Fatalf("denial not audited: %d events, want %d", got, n+1)
	}

	// Ensure an expired TTL secret gets 410 expired.
	e.MustCLI(t, e.Owner, "cli", "tmpvalue\n", "secret", "set", "TMP", "--project", "web", "--ttl", "1h")
	e.Remember("tmpvalue")
	e.Clock.Advance(time.Hour + time.Minute)
	status, code, raw := e.Raw(t, alice, "POST", "/v1/secrets/access", "application/json", strings.NewReader(`{"project":"web","names":["TMP"],"mode":"reveal"}`))
	if status != 410 || code != "expired" || strings.Contains(raw, "tmpvalue") {
		t.Fatalf("expired: %d %s %s", status, code, raw)
	}
	if out := e.MustCLI(t, e.Owner, "cli", "", "secret", "list", "--project", "web"); !strings.Contains(out, "expired") {
		t.Fatalf("list does not show expiry: %s", out)
	}

	// Ensure a denied device gets 403 and nothing.
	bob := e.MustMemberKey(t, "bob")
	r := e.CLI(t, bob, "cli", "", "secret", "reveal", "TMP", "--project", "web")
	id := deviceRE.FindString(r.Err)
	e.MustCLI(t, e.Owner, "cli", "", "device", "deny", id)
	status, code, _ = e.Raw(t, bob, "POST", "/v1/secrets/access", "application/json", strings.NewReader(`{"project":"web","names":["TMP"],"mode":"reveal"}`))
	if status != 403 || code != "forbidden" {
		t.Fatalf("denied device: %d %s", status, code)
	}
}

func TestE2E_CLIBadInput(t *testing.T) {
	// Ensure the CLI rejects bad arguments with exit 2 and changes nothing.
	e := MustStartE2E(t)
	e.MustCLI(t, e.Owner, "cli", "v\n", "secret", "set", "A")
	before := e.Snapshot(t)
	for _, args := range [][]string{
		{"secret", "set", "A", "value-in-argv"},
		{"secret", "set", "1BAD"},
		{"secret", "set", "A", "--tag", "novalue"},
		{"secret", "set", "A", "--ttl", "forever"},
		{"secret", "reveal"},
		{"device", "approve", "dev_0000000000000000", "--level", "root"},
		{"device", "approve", "nope", "--level", "read"},
		{"key", "create"},
		{"key", "create", "--name", "x", "--role", "god"},
		{"policy", "add", "--tag", "env=prod", "--rule", "allow"},
		{"run", "--project", "default"},
		{"nosuchcommand"},
		{"secret", "list", "--nosuchflag"},
	} {
		r := e.CLI(t, e.Owner, "cli", "v\n", args...)
		if r.Code != 2 {
			t.Errorf("custos %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), r.Code, r.Err)
		}
	}
	if after := e.Snapshot(t); after != before {
		t.Fatal("a rejected command changed state")
	}
	// An empty value from stdin is an error, not an empty secret.
	if r := e.CLI(t, e.Owner, "cli", "", "secret", "set", "EMPTY"); r.Code == 0 {
		t.Fatal("empty value accepted")
	}
	if after := e.Snapshot(t); after != before {
		t.Fatal("an empty value changed state")
	}
}
