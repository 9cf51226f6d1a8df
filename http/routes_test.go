package http_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

// Body kinds of a route.
const (
	bodyNone     = iota // takes no body
	bodyRequired        // a JSON object is required
	bodyOptional        // a JSON object may be sent
	bodyRaw             // raw bytes (an artifact)
)

// route is one API endpoint with a valid request and invalid path variants.
type route struct {
	method, path string
	body         string // a valid body
	kind         int
	badPaths     []string // same route, invalid identifiers: 400

	auth   string            // the Authorization of a valid request; "" means the API key, "-" none
	header map[string]string // more headers of a valid request
	spends bool              // the request key is spent (and the next one sent) before the body is looked at
	limit  int               // the body limit; 0 means MaxBodyBytes
}

// v1Routes lists every /v1 endpoint of docs/API.md.
var v1Routes = []route{
	{method: "GET", path: "/v1/whoami"},
	{method: "GET", path: "/v1/secrets"},
	{method: "PUT", path: "/v1/secrets/web-app/API_KEY", body: `{"value":"v","tags":{"env":"prod"},"ttl":"1h","description":"d"}`, kind: bodyRequired,
		badPaths: []string{"/v1/secrets/Web-App/API_KEY", "/v1/secrets/web-app/1KEY", "/v1/secrets/web-app/API-KEY",
			"/v1/secrets/web-app/%2e%2e", "/v1/secrets/web%2Fapp/API_KEY", "/v1/secrets/-app/KEY",
			"/v1/secrets/web-app/" + strings.Repeat("K", 129), "/v1/secrets/web-app/A%00B"}},
	{method: "DELETE", path: "/v1/secrets/web-app/API_KEY",
		badPaths: []string{"/v1/secrets/Web-App/API_KEY", "/v1/secrets/web-app/API%20KEY"}},
	{method: "GET", path: "/v1/secrets/web-app/API_KEY/versions",
		badPaths: []string{"/v1/secrets/web%20app/API_KEY/versions", "/v1/secrets/web-app/9/versions"}},
	{method: "POST", path: "/v1/secrets/access", body: `{"project":"web-app","names":["API_KEY"],"mode":"inject"}`, kind: bodyRequired},
	{method: "POST", path: "/v1/keys", body: `{"name":"ci","role":"agent","ttl":"30d"}`, kind: bodyRequired},
	{method: "GET", path: "/v1/keys"},
	{method: "POST", path: "/v1/keys/" + testKeyID + "/rotate", body: `{"grace":"2h"}`, kind: bodyOptional,
		badPaths: []string{"/v1/keys/" + testDevID + "/rotate", "/v1/keys/key_0123/rotate", "/v1/keys/KEY_0123456789ABCDEF/rotate", "/v1/keys/cst_ak_token/rotate"}},
	{method: "POST", path: "/v1/keys/" + testKeyID + "/revoke",
		badPaths: []string{"/v1/keys/key_0123456789abcdeg/revoke", "/v1/keys/key_0123456789abcdef0/revoke"}},
	{method: "GET", path: "/v1/devices"},
	{method: "POST", path: "/v1/devices/" + testDevID + "/approve", body: `{"level":"read"}`, kind: bodyRequired,
		badPaths: []string{"/v1/devices/" + testKeyID + "/approve", "/v1/devices/dev_x/approve"}},
	{method: "POST", path: "/v1/devices/" + testDevID + "/deny",
		badPaths: []string{"/v1/devices/dev_%2e%2e/deny"}},
	{method: "POST", path: "/v1/devices/" + testDevID + "/revoke",
		badPaths: []string{"/v1/devices/" + testPolID + "/revoke"}},
	{method: "POST", path: "/v1/policies", body: `{"tag_key":"env","tag_value":"prod","rule":"block_models","models":["gpt-*"],"ttl":"1h"}`, kind: bodyRequired},
	{method: "GET", path: "/v1/policies"},
	{method: "DELETE", path: "/v1/policies/" + testPolID,
		badPaths: []string{"/v1/policies/" + testKeyID, "/v1/policies/pol_"}},
	{method: "POST", path: "/v1/session/wake", body: `{"tags":{"env":"prod"},"ttl":"10m"}`, kind: bodyOptional},
	{method: "POST", path: "/v1/session/sleep"},
	{method: "GET", path: "/v1/session"},
	{method: "POST", path: "/v1/confirmations", body: `{"project":"web-app","name":"API_KEY"}`, kind: bodyRequired},
	{method: "GET", path: "/v1/audit"},
	{method: "GET", path: "/v1/audit/verify"},
	{method: "POST", path: "/v1/providers", body: `{"name":"ollama","kind":"local","base_url":"http://127.0.0.1:11434/v1","models":["llama*"],"priority":1}`, kind: bodyRequired},
	{method: "GET", path: "/v1/providers"},
	{method: "DELETE", path: "/v1/providers/ollama",
		badPaths: []string{"/v1/providers/" + strings.Repeat("p", 65)}},
	{method: "PUT", path: "/v1/budgets", body: `{"key_id":"` + testKeyID + `","period":"day","limit":1000}`, kind: bodyRequired},
	{method: "GET", path: "/v1/budgets"},
	{method: "DELETE", path: "/v1/budgets?period=day&key_id=" + testKeyID,
		badPaths: []string{"/v1/budgets?period=week", "/v1/budgets", "/v1/budgets?period=day&key_id=" + testDevID, "/v1/budgets?period=day&bogus=1", "/v1/budgets?period=day&period=month"}},
	{method: "PUT", path: "/v1/privacy", body: `{"scope":"project","target":"payments","mode":"offline"}`, kind: bodyRequired},
	{method: "GET", path: "/v1/privacy"},
	{method: "DELETE", path: "/v1/privacy?scope=project&target=payments",
		badPaths: []string{"/v1/privacy?scope=team", "/v1/privacy", "/v1/privacy?scope=org&target=" + strings.Repeat("t", 129)}},
	{method: "GET", path: "/v1/usage?since=2026-01-02T15:04:05Z&until=2026-02-02T15:04:05Z&key_id=" + testKeyID + "&limit=10",
		badPaths: []string{"/v1/usage?since=yesterday", "/v1/usage?limit=0", "/v1/usage?limit=10001", "/v1/usage?key_id=" + testPolID, "/v1/usage?bogus=1"}},
	{method: "GET", path: "/v1/usage/summary?by=model",
		badPaths: []string{"/v1/usage/summary?by=model&by=key", "/v1/usage/summary?until=x"}},
	{method: "POST", path: "/v1/tracker/installs", body: `{"name":"jira-prod"}`, kind: bodyRequired},
	{method: "GET", path: "/v1/tracker/installs"},
	{method: "DELETE", path: "/v1/tracker/installs/" + testInstallID,
		badPaths: []string{"/v1/tracker/installs/" + testKeyID, "/v1/tracker/installs/trk_x", "/v1/tracker/installs/" + testInstallToken}},
	// The tracker app: install token, then its request keys.
	{method: "POST", path: "/v1/tracker/request-key", auth: "Bearer " + testInstallToken},
	{method: "POST", path: "/v1/security/launch-link", body: `{"projectId":"PROJ","taskId":"PROJ-42","ttl":"7d"}`, kind: bodyRequired,
		auth: "Bearer " + testInstallToken, header: map[string]string{"X-Custos-Request-Key": testRequestKey}, spends: true},
	// The developer: the code in the body is the credential.
	{method: "POST", path: "/v1/security/launch-exchange", body: `{"code":"` + testLaunchCode + `","projectId":"PROJ","taskId":"PROJ-42"}`, kind: bodyRequired, auth: "-"},
	// The permit routes.
	{method: "POST", path: "/v1/tasks/PROJ-42/runs", auth: "Bearer " + testPermit,
		badPaths: []string{"/v1/tasks/-42/runs", "/v1/tasks/PROJ%2042/runs", "/v1/tasks/%2e%2e/runs", "/v1/tasks/" + strings.Repeat("t", 129) + "/runs",
			"/v1/tasks/PROJ-42/runs?bogus=1", "/v1/tasks/PROJ-42/runs?projectId=bad%20project", "/v1/tasks/PROJ-42/runs?projectId=A&projectId=A"}},
	{method: "GET", path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts", auth: "Bearer " + testPermit,
		badPaths: []string{"/v1/tasks/PROJ-42/runs/" + testKeyID + "/artifacts", "/v1/tasks/PROJ-42/runs/run_x/artifacts", "/v1/tasks/P%00/runs/" + testRunID + "/artifacts"}},
	{method: "PUT", path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/src/main.go", body: "package main\n", kind: bodyRaw, auth: "Bearer " + testPermit,
		badPaths: []string{"/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/", "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/%2e%2e/etc/passwd",
			"/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/a%2F%2Fb", "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/%2Fetc",
			"/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/C:%5Cx", "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/a%00b",
			"/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/a%0Ab", "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/" + strings.Repeat("n", 513),
			"/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/" + strings.Repeat("a/", 33) + "z", "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/%FF",
			"/v1/tasks/PROJ-42/runs/" + testInstallID + "/artifacts/x"}},
	{method: "GET", path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/src/main.go", auth: "Bearer " + testPermit,
		badPaths: []string{"/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/%2e/x", "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/x?y=1"}},
	{method: "POST", path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/complete", auth: "Bearer " + testPermit,
		badPaths: []string{"/v1/tasks/PROJ-42/runs/RUN_0123456789abcdef/complete"}},
	{method: "POST", path: "/v1/tasks/PROJ-42/complete", auth: "Bearer " + testPermit,
		badPaths: []string{"/v1/tasks/.hidden/complete", "/v1/tasks/a%2Fb/complete"}},
	{method: "PUT", path: "/v1/projects/PROJ/indexes/main/files", body: `{"files":[{"path":"src/main.go","sha256":"` + testSHA + `","summary":"entry point"}]}`,
		kind: bodyRequired, auth: "Bearer " + testPermit, limit: custoshttp.MaxIndexBodyBytes,
		badPaths: []string{"/v1/projects/-P/indexes/main/files", "/v1/projects/PROJ/indexes/ma%20in/files", "/v1/projects/PROJ/indexes/main/files?projectId=PROJ"}},
	{method: "POST", path: "/v1/projects/PROJ/indexes/main/stale", body: `{"files":[{"path":"src/main.go","sha256":"` + testSHA + `"}]}`,
		kind: bodyRequired, auth: "Bearer " + testPermit, limit: custoshttp.MaxIndexBodyBytes,
		badPaths: []string{"/v1/projects/P%3Cscript%3E/indexes/main/stale"}},
}

// do sends rt's valid request, changed by req's non-empty fields.
func (rt route) do(t *testing.T, env *Env, req Request) *Response {
	t.Helper()
	if req.Method == "" {
		req.Method = rt.method
	}
	if req.Path == "" {
		req.Path = rt.path
	}
	if req.Token == "" {
		req.Token = rt.auth
	}
	hdr := map[string]string{}
	for k, v := range rt.header {
		hdr[k] = v
	}
	for k, v := range req.Header {
		hdr[k] = v
	}
	req.Header = hdr
	if rt.kind == bodyRaw && req.ContentType == "" && req.Body != "" {
		req.ContentType = "application/octet-stream"
	}
	return env.Do(t, req)
}

// assertRouteRejected is assertRejected for rt: a route that spends its
// request key first must have spent it and sent the next one.
func assertRouteRejected(t *testing.T, env *Env, rt route, resp *Response, status int, code string) {
	t.Helper()
	if !rt.spends {
		assertRejected(t, env, resp, status, code)
		return
	}
	if got, want := resp.Status, status; got != want {
		t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
	}
	if got, _ := resp.Err(t); got != code {
		t.Fatalf("code=%q, want %q", got, code)
	}
	if calls := env.Spy.Calls(); len(calls) != 1 || calls[0] != "SpendRequestKey" {
		t.Fatalf("service calls %v, want only SpendRequestKey", calls)
	}
	if got, want := resp.Header.Get("X-Custos-Next-Request-Key"), testNextKey; got != want {
		t.Fatalf("X-Custos-Next-Request-Key=%q, want the next key even on a refusal", got)
	}
}

func (rt route) String() string { return rt.method + " " + rt.path }

// okSpy makes every service method of env succeed.
func okSpy(env *Env) {
	s := env.Spy
	s.SetSecretFn = func(_ ctxT, in custos.SetSecretInput) (*custos.Secret, error) {
		return &custos.Secret{Name: in.Name}, nil
	}
	s.ListSecretsFn = func(_ ctxT, _ custos.SecretFilter) ([]*custos.Secret, error) { return nil, nil }
	s.SecretHistoryFn = func(_ ctxT, _, _ string) ([]*custos.SecretVersion, error) { return nil, nil }
	s.DeleteSecretFn = func(_ ctxT, _, _ string) error { return nil }
	s.AccessSecretsFn = func(_ ctxT, _ custos.AccessRequest) ([]*custos.SecretValue, error) { return nil, nil }
	s.CurrentSessionFn = func(_ ctxT) (*custos.Session, error) { return &custos.Session{ID: "ses_0123456789abcdef"}, nil }
	s.CreateKeyFn = func(_ ctxT, _ custos.CreateKeyInput) (*custos.APIKey, string, error) {
		return &custos.APIKey{}, "t", nil
	}
	s.ListKeysFn = func(_ ctxT) ([]*custos.APIKey, error) { return nil, nil }
	s.RotateKeyFn = func(_ ctxT, _ string, _ durationT) (*custos.APIKey, string, error) { return &custos.APIKey{}, "t", nil }
	s.RevokeKeyFn = func(_ ctxT, _ string) error { return nil }
	s.ListDevicesFn = func(_ ctxT, _ custos.DeviceStatus) ([]*custos.Device, error) { return nil, nil }
	s.ApproveDeviceFn = func(_ ctxT, id string, _ custos.Level) (*custos.Device, error) { return &custos.Device{ID: id}, nil }
	s.DenyDeviceFn = func(_ ctxT, id string) (*custos.Device, error) { return &custos.Device{ID: id}, nil }
	s.RevokeDeviceFn = func(_ ctxT, id string) (*custos.Device, error) { return &custos.Device{ID: id}, nil }
	s.AddPolicyFn = func(_ ctxT, _ custos.AddPolicyInput) (*custos.Policy, error) { return &custos.Policy{}, nil }
	s.ListPoliciesFn = func(_ ctxT) ([]*custos.Policy, error) { return nil, nil }
	s.RemovePolicyFn = func(_ ctxT, _ string) error { return nil }
	s.WakeSessionFn = func(_ ctxT, _ custos.WakeInput) (*custos.Session, error) { return &custos.Session{}, nil }
	s.SleepSessionFn = func(_ ctxT) error { return nil }
	s.ConfirmFn = func(_ ctxT, _ custos.ConfirmInput) (*custos.Confirmation, error) { return &custos.Confirmation{}, nil }
	s.ListAuditFn = func(_ ctxT, _ custos.AuditFilter) ([]*custos.AuditEvent, error) { return nil, nil }
	s.VerifyAuditFn = func(_ ctxT) (*custos.AuditVerification, error) { return &custos.AuditVerification{OK: true}, nil }
	s.AddProviderFn = func(_ ctxT, in custos.AddProviderInput) (*custos.ModelProvider, error) {
		return &custos.ModelProvider{Name: in.Name}, nil
	}
	s.ListProvidersFn = func(_ ctxT) ([]*custos.ModelProvider, error) { return nil, nil }
	s.RemoveProviderFn = func(_ ctxT, _ string) error { return nil }
	s.SetBudgetFn = func(_ ctxT, b custos.Budget) (*custos.Budget, error) { return &b, nil }
	s.ListBudgetsFn = func(_ ctxT) ([]*custos.Budget, error) { return nil, nil }
	s.RemoveBudgetFn = func(_ ctxT, _, _ string) error { return nil }
	s.SetPrivacyFn = func(_ ctxT, r custos.PrivacyRule) (*custos.PrivacyRule, error) { return &r, nil }
	s.ListPrivacyFn = func(_ ctxT) ([]*custos.PrivacyRule, error) { return nil, nil }
	s.RemovePrivacyFn = func(_ ctxT, _, _ string) error { return nil }
	s.ListUsageFn = func(_ ctxT, _ custos.UsageFilter) ([]*custos.UsageRecord, error) { return nil, nil }
	s.SummarizeUsageFn = func(_ ctxT, _ custos.UsageFilter, _ string) ([]*custos.UsageSummary, error) { return nil, nil }
	okTaskSpy(s)
}

// assertRejected checks status and code and that no service method ran.
func assertRejected(t *testing.T, env *Env, resp *Response, status int, code string) {
	t.Helper()
	if got, want := resp.Status, status; got != want {
		t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
	}
	if got, _ := resp.Err(t); got != code {
		t.Fatalf("code=%q, want %q", got, code)
	}
	env.AssertNoCalls(t)
}

// Ensure every route answers its valid request with 2xx, so the rejections
// below are about the bad input only.
func TestRoutes_OK(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	for _, rt := range v1Routes {
		t.Run(rt.String(), func(t *testing.T) {
			resp := rt.do(t, env, Request{Body: rt.body})
			if resp.Status < 200 || resp.Status > 299 {
				t.Fatalf("status=%d: %s", resp.Status, resp.Body)
			}
		})
	}
}

// Ensure every /v1 route wants a valid bearer token of its kind before
// anything else: API key routes an API key, the tracker routes an install
// token, the permit routes a permit.
func TestRoutes_Unauthorized(t *testing.T) {
	for _, rt := range v1Routes {
		if rt.auth == "-" {
			continue // the credential is in the body: TestTaskRoutes_ExchangeBadCode
		}
		auths := []string{"-", "Bearer cst_ak_wrong", "Basic dXNlcjpwdw==", "Bearer", "Bearer ", "Bearer a b", "cst_ak_" + testToken, testToken}
		if rt.auth != "" {
			// Another kind of credential, well formed, is refused unseen.
			auths = append(auths, "Bearer "+testToken, "Bearer "+testLaunchCode, "Bearer "+testRequestKey, strings.TrimPrefix(rt.auth, "Bearer "))
			if rt.auth != "Bearer "+testPermit {
				auths = append(auths, "Bearer "+testPermit)
			} else {
				auths = append(auths, "Bearer "+testInstallToken, "Bearer "+testPermit+"x", "Bearer "+testPermit[:len(testPermit)-1]+"!")
			}
		}
		for _, auth := range auths {
			t.Run(rt.String()+"/"+auth, func(t *testing.T) {
				env := MustServe(t)
				okSpy(env)
				resp := rt.do(t, env, Request{Body: rt.body, Token: auth,
					Header: map[string]string{"X-Custos-Agent": "-invalid-"}})
				assertRejected(t, env, resp, http.StatusUnauthorized, custos.EUNAUTHORIZED)
				if got, want := resp.Header.Get("WWW-Authenticate"), "Bearer"; got != want {
					t.Fatalf("WWW-Authenticate=%q, want %q", got, want)
				}
			})
		}
	}
}

// Ensure a wrong method gets a JSON 405 with the Allow header.
func TestRoutes_MethodNotAllowed(t *testing.T) {
	for _, rt := range v1Routes {
		t.Run(rt.String(), func(t *testing.T) {
			env := MustServe(t)
			okSpy(env)
			resp := rt.do(t, env, Request{Method: "PATCH", Body: rt.body})
			assertRejected(t, env, resp, http.StatusMethodNotAllowed, custos.EINVALID)
			if allow := resp.Header.Get("Allow"); !strings.Contains(allow, rt.method) {
				t.Fatalf("Allow=%q, want it to contain %s", allow, rt.method)
			}
		})
	}
	// Ensure the unauthenticated routes answer 405 the same way.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/launch", "/launch.js", "/launch.css"} {
		env := MustServe(t)
		resp := env.Do(t, Request{Method: "POST", Path: path, Body: "{}"})
		assertRejected(t, env, resp, http.StatusMethodNotAllowed, custos.EINVALID)
	}
}

// Ensure unknown paths get a JSON 404, with or without a token.
func TestRoutes_NotFound(t *testing.T) {
	for _, path := range []string{
		"/", "/v1", "/v1/", "/v1/nope", "/v2/secrets", "/v1/keys/", "/v1//keys", "/v1/secrets/a/b/c/d",
		"/v1/secrets/web-app/API_KEY/versions/1", "/v1/keys/" + testKeyID, "/v1/./keys", "/v1/secrets/../keys", "/favicon.ico",
		"/v1/tasks", "/v1/tasks/T", "/v1/tasks/T/runs/" + testRunID, "/v1/tracker", "/v1/tracker/installs/" + testInstallID + "/x",
		"/v1/tasks/T/runs/" + testRunID + "/artifacts/../../x", "/v1/projects/P/indexes/I", "/launch/x", "/v1/security/launch",
	} {
		for _, token := range []string{"", "-"} {
			t.Run(path+"/"+token, func(t *testing.T) {
				env := MustServe(t)
				okSpy(env)
				resp := env.Do(t, Request{Method: "GET", Path: path, Token: token})
				assertRejected(t, env, resp, http.StatusNotFound, custos.ENOTFOUND)
				if loc := resp.Header.Get("Location"); loc != "" {
					t.Fatalf("Location=%q on a 404", loc)
				}
			})
		}
	}
}

// Ensure invalid identifiers in paths are rejected before the service runs.
func TestRoutes_BadPath(t *testing.T) {
	for _, rt := range v1Routes {
		for _, path := range rt.badPaths {
			t.Run(rt.method+" "+path, func(t *testing.T) {
				env := MustServe(t)
				okSpy(env)
				resp := rt.do(t, env, Request{Path: path, Body: rt.body})
				assertRejected(t, env, resp, http.StatusBadRequest, custos.EINVALID)
			})
		}
	}
}

// Ensure bodies are decoded strictly on every route.
func TestRoutes_BadBody(t *testing.T) {
	huge := `{"value":"` + strings.Repeat("x", 300<<10) + `"}`
	type bad struct {
		name, body, contentType string
		status                  int
		code                    string
	}
	for _, rt := range v1Routes {
		huge := huge
		if rt.limit > 0 {
			huge = `{"files":"` + strings.Repeat("x", rt.limit) + `"}`
		}
		var cases []bad
		switch rt.kind {
		case bodyNone:
			cases = []bad{
				{"Object", `{}`, "", 400, custos.EINVALID},
				{"Text", `hello`, "text/plain", 400, custos.EINVALID},
				{"TooLarge", huge, "", 413, custos.ETOOLARGE},
			}
		case bodyRequired, bodyOptional:
			cases = []bad{
				{"Malformed", `{"a":`, "", 400, custos.EINVALID},
				{"Garbage", `not json`, "", 400, custos.EINVALID},
				{"UnknownField", `{"bogus":1,` + rt.body[1:], "", 400, custos.EINVALID},
				{"TrailingObject", rt.body + ` {}`, "", 400, custos.EINVALID},
				{"TrailingGarbage", rt.body + `x`, "", 400, custos.EINVALID},
				{"TwoValues", rt.body + rt.body, "", 400, custos.EINVALID},
				{"Array", `[` + rt.body + `]`, "", 400, custos.EINVALID},
				{"Null", `null`, "", 400, custos.EINVALID},
				{"WrongType", `{"tags":"x","ttl":1,"level":2,"names":"x","role":[],"rule":{},"name":3,"grace":4}`, "", 400, custos.EINVALID},
				{"TooLarge", huge, "", 413, custos.ETOOLARGE},
				{"TooLargeWrongType", huge, "text/plain", 415, custos.EINVALID},
				{"TextPlain", rt.body, "text/plain", 415, custos.EINVALID},
				{"NoContentType", rt.body, "-", 415, custos.EINVALID},
				{"FormEncoded", "value=x", "application/x-www-form-urlencoded", 415, custos.EINVALID},
				{"Latin1", rt.body, "application/json; charset=latin1", 415, custos.EINVALID},
				{"JSONish", rt.body, "application/jsonx", 415, custos.EINVALID},
			}
		case bodyRaw:
			cases = []bad{
				{"JSON", `{"a":1}`, "application/json", 415, custos.EINVALID},
				{"TextPlain", rt.body, "text/plain", 415, custos.EINVALID},
				{"Form", "a=b", "application/x-www-form-urlencoded", 415, custos.EINVALID},
				{"Garbled", rt.body, "application/octet-stream; =", 415, custos.EINVALID},
			}
			if rt.kind == bodyRequired {
				cases = append(cases,
					bad{"ContentField", `{"content":"package main"}`, "", 400, custos.EINVALID},
					bad{"Empty", "", "", 400, custos.EINVALID},
					bad{"EmptyNoContentType", "", "-", 415, custos.EINVALID},
					bad{"Whitespace", " \n\t ", "", 400, custos.EINVALID},
				)
			}
		}
		for _, tt := range cases {
			t.Run(rt.String()+"/"+tt.name, func(t *testing.T) {
				env := MustServe(t)
				okSpy(env)
				ct := tt.contentType
				if ct == "" && tt.body == "" {
					ct = "application/json"
				}
				resp := rt.do(t, env, Request{Body: tt.body, ContentType: ct})
				assertRouteRejected(t, env, rt, resp, tt.status, tt.code)
			})
		}
	}
}

// Ensure a JSON content type with charset utf-8 is accepted.
func TestRoutes_ContentTypeCharset(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	for _, ct := range []string{"application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"} {
		resp := env.Do(t, Request{Method: "POST", Path: "/v1/keys", Body: `{"name":"ci","role":"agent"}`, ContentType: ct})
		if got, want := resp.Status, http.StatusCreated; got != want {
			t.Fatalf("%s: status=%d, want %d: %s", ct, got, want, resp.Body)
		}
	}
}
