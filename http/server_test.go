package http_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

// Ensure every error code gets the status of docs/API.md, and the client
// gets the same code and message back.
func TestErrorCodes(t *testing.T) {
	for _, tt := range []struct {
		code   string
		status int
	}{
		{custos.EINVALID, 400},
		{custos.EUNAUTHORIZED, 401},
		{custos.EFORBIDDEN, 403},
		{custos.EDEVICEPENDING, 403},
		{custos.EPOLICY, 403},
		{custos.ENOTFOUND, 404},
		{custos.ECONFLICT, 409},
		{custos.EEXPIRED, 410},
		{custos.ETOOLARGE, 413},
		{custos.ERATELIMITED, 429},
		{custos.EINTERNAL, 500},
		{custos.EUNAVAILABLE, 503},
	} {
		t.Run(tt.code, func(t *testing.T) {
			if got, want := custoshttp.ErrorStatusCode(tt.code), tt.status; got != want {
				t.Fatalf("ErrorStatusCode=%d, want %d", got, want)
			}
			env := MustServe(t)
			message := "the message for " + tt.code
			env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
				return nil, fmt.Errorf("wrapped: %w", custos.Errorf(tt.code, "%s", message))
			}
			wantMessage := message
			if tt.code == custos.EINTERNAL {
				wantMessage = "Internal error."
			}

			resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
			if got, want := resp.Status, tt.status; got != want {
				t.Fatalf("status=%d, want %d", got, want)
			}
			if got, want := resp.Header.Get("Content-Type"), "application/json"; got != want {
				t.Fatalf("Content-Type=%q, want %q", got, want)
			}
			code, msg := resp.Err(t)
			if code != tt.code || msg != wantMessage {
				t.Fatalf("error=%q %q, want %q %q", code, msg, tt.code, wantMessage)
			}

			_, err := env.Client.ListKeys(ctx(t))
			var ce *custos.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err=%T %v, want *custos.Error", err, err)
			}
			if ce.Code != tt.code || ce.Message != wantMessage {
				t.Fatalf("client error=%q %q, want %q %q", ce.Code, ce.Message, tt.code, wantMessage)
			}
		})
	}

	// Ensure a plain error is sent as "Internal error." and logged with its detail.
	t.Run("PlainError", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
			return nil, errors.New("database is locked: dsn=postgres://admin:pw@db")
		}
		resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
		code, msg := resp.Err(t)
		if resp.Status != 500 || code != custos.EINTERNAL || msg != "Internal error." {
			t.Fatalf("got %d %q %q", resp.Status, code, msg)
		}
		if strings.Contains(string(resp.Body), "database") {
			t.Fatalf("detail leaked: %s", resp.Body)
		}
		if !strings.Contains(env.Logs.String(), "database is locked") {
			t.Fatalf("detail not logged: %s", env.Logs)
		}
	})

	// Ensure an *custos.Error with a code outside the table is internal.
	t.Run("UnknownCode", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
			return nil, custos.Errorf("teapot", "detail of an unknown code")
		}
		resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
		code, msg := resp.Err(t)
		if resp.Status != 500 || code != custos.EINTERNAL || msg != "Internal error." {
			t.Fatalf("got %d %q %q", resp.Status, code, msg)
		}
	})

	// Ensure FromErrorStatusCode maps statuses back.
	t.Run("FromErrorStatusCode", func(t *testing.T) {
		for status, want := range map[int]string{
			400: custos.EINVALID, 401: custos.EUNAUTHORIZED, 403: custos.EFORBIDDEN, 404: custos.ENOTFOUND,
			405: custos.EINVALID, 409: custos.ECONFLICT, 410: custos.EEXPIRED, 413: custos.ETOOLARGE,
			415: custos.EINVALID, 429: custos.ERATELIMITED, 500: custos.EINTERNAL, 502: custos.EINTERNAL, 503: custos.EUNAVAILABLE, 418: custos.EINTERNAL,
		} {
			if got := custoshttp.FromErrorStatusCode(status); got != want {
				t.Errorf("FromErrorStatusCode(%d)=%q, want %q", status, got, want)
			}
		}
	})
}

// Ensure errors of the key service's Authenticate are mapped safely.
func TestAuthenticateErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"Unauthorized", custos.Errorf(custos.EUNAUTHORIZED, "key revoked"), 401, custos.EUNAUTHORIZED},
		{"OtherCode", custos.Errorf(custos.ENOTFOUND, "no such key"), 401, custos.EUNAUTHORIZED},
		{"Internal", errors.New("store down"), 500, custos.EINTERNAL},
		{"Unavailable", custos.Errorf(custos.EUNAVAILABLE, "busy"), 503, custos.EUNAVAILABLE},
		{"NilKey", nil, 401, custos.EUNAUTHORIZED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := MustServe(t)
			okSpy(env)
			env.Spy.AuthenticateFn = func(ctx context.Context, token string) (*custos.APIKey, error) { return nil, tt.err }
			resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
			assertRejected(t, env, resp, tt.status, tt.code)
		})
	}
}

// Ensure a panicking service gives 500 "Internal error." and the server
// keeps serving.
func TestPanic(t *testing.T) {
	env := MustServe(t)
	panicking := true
	env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
		if panicking {
			panic("boom: " + testSecret)
		}
		return []*custos.APIKey{{ID: testKeyID}}, nil
	}
	resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
	code, msg := resp.Err(t)
	if resp.Status != 500 || code != custos.EINTERNAL || msg != "Internal error." {
		t.Fatalf("got %d %q %q", resp.Status, code, msg)
	}
	if strings.Contains(string(resp.Body), "boom") {
		t.Fatalf("panic leaked: %s", resp.Body)
	}
	assertSecurityHeaders(t, resp, false)
	if !strings.Contains(env.Logs.String(), "panic serving request") {
		t.Fatalf("panic not logged")
	}

	panicking = false
	keys, err := env.Client.ListKeys(ctx(t))
	if err != nil || len(keys) != 1 {
		t.Fatalf("after panic: %v %v", keys, err)
	}
}

// Ensure the Caller reaches the service with the identity headers and the
// IP of the connection, whatever X-Forwarded-For says.
func TestCaller(t *testing.T) {
	// Ensure every identity header is read.
	t.Run("Headers", func(t *testing.T) {
		env := MustServe(t)
		var got *custos.Caller
		env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
			got = custos.CallerFromContext(ctx)
			return nil, nil
		}
		resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys", Header: map[string]string{
			"X-Forwarded-For":   "203.0.113.9",
			"X-Real-IP":         "203.0.113.10",
			"Forwarded":         "for=203.0.113.11",
			"X-Custos-Agent":    "claude-code",
			"X-Custos-Hostname": "build-01.example.com",
			"X-Custos-User":     "ana",
			"X-Custos-Source":   "mcp",
			"X-AI-Model":        "claude-sonnet-4.5",
		}})
		if resp.Status != 200 {
			t.Fatalf("status=%d: %s", resp.Status, resp.Body)
		}
		want := custos.Caller{Agent: "claude-code", Hostname: "build-01.example.com", MachineUser: "ana",
			IP: "127.0.0.1", Source: custos.SourceMCP, Model: "claude-sonnet-4.5"}
		if got == nil || got.Key == nil || got.Key.ID != testKeyID {
			t.Fatalf("caller=%+v, want key %s", got, testKeyID)
		}
		if c := withoutKey(got); c != want {
			t.Fatalf("caller=%+v, want %+v", c, want)
		}
		if got, want := got.Fingerprint(), "ana:build-01.example.com:claude-code:"+testKeyID+":127.0.0.1"; got != want {
			t.Fatalf("fingerprint=%q, want %q", got, want)
		}
	})

	// Ensure the defaults apply without identity headers.
	t.Run("Defaults", func(t *testing.T) {
		env := MustServe(t)
		var got *custos.Caller
		env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
			got = custos.CallerFromContext(ctx)
			return nil, nil
		}
		if _, err := env.Client.ListKeys(ctx(t)); err != nil {
			t.Fatal(err)
		}
		want := custos.Caller{Agent: "api", IP: "127.0.0.1", Source: custos.SourceAPI}
		if c := withoutKey(got); c != want {
			t.Fatalf("caller=%+v, want %+v", c, want)
		}
	})

	// Ensure the client sends its identity.
	t.Run("Client", func(t *testing.T) {
		env := MustServe(t)
		var got *custos.Caller
		env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
			got = custos.CallerFromContext(ctx)
			return nil, nil
		}
		c := MustClient(t, env.Server.URL, clientOpts(testToken))
		if _, err := c.ListKeys(ctx(t)); err != nil {
			t.Fatal(err)
		}
		want := custos.Caller{Agent: "claude-code", Hostname: "build-01", MachineUser: "ana", IP: "127.0.0.1",
			Source: custos.SourceCLI, Model: "claude-sonnet-4.5"}
		if c := withoutKey(got); c != want {
			t.Fatalf("caller=%+v, want %+v", c, want)
		}
	})

	// Ensure an invalid identity header is rejected before the service runs.
	t.Run("Invalid", func(t *testing.T) {
		for _, hdr := range []map[string]string{
			{"X-Custos-Agent": "-agent"},
			{"X-Custos-Agent": strings.Repeat("a", 65)},
			{"X-Custos-Agent": "a\tb"},
			{"X-Custos-Hostname": "host/name"},
			{"X-Custos-Hostname": "host:22"},
			{"X-Custos-User": "ana;rm"},
			{"X-Custos-Source": "web"},
			{"X-Custos-Source": "CLI"},
			{"X-AI-Model": strings.Repeat("m", 129)},
			{"X-AI-Model": "modèle"},
		} {
			env := MustServe(t)
			okSpy(env)
			resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys", Header: hdr})
			assertRejected(t, env, resp, http.StatusBadRequest, custos.EINVALID)
		}
	})

	// Ensure a header given twice is rejected.
	t.Run("Repeated", func(t *testing.T) {
		env := MustServe(t)
		okSpy(env)
		for _, name := range []string{"Authorization", "X-Custos-Agent", "X-Custos-Source"} {
			req, _ := http.NewRequest("GET", env.Server.URL+"/v1/keys", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Add(name, req.Header.Get(name)+"x")
			if name != "Authorization" {
				req.Header.Add(name, "cli")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 && resp.StatusCode != 401 {
				t.Fatalf("%s twice: status=%d", name, resp.StatusCode)
			}
		}
		env.AssertNoCalls(t)
	})
}

// assertSecurityHeaders checks the headers every response must carry.
func assertSecurityHeaders(t *testing.T, resp *Response, tls bool) {
	t.Helper()
	for k, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Fatalf("%s=%q, want %q", k, got, want)
		}
	}
	if got := resp.Header.Get("Strict-Transport-Security"); (got != "") != tls {
		t.Fatalf("Strict-Transport-Security=%q with TLS=%v", got, tls)
	}
}

// Ensure every kind of response carries the security headers.
func TestSecurityHeaders(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	for _, req := range []Request{
		{Method: "GET", Path: "/healthz"},
		{Method: "GET", Path: "/readyz"},
		{Method: "GET", Path: "/metrics"},
		{Method: "GET", Path: "/v1/keys"},
		{Method: "POST", Path: "/v1/secrets/access", Body: `{"project":"p","names":["A"],"mode":"reveal"}`},
		{Method: "GET", Path: "/v1/keys", Token: "-"},
		{Method: "GET", Path: "/v1/nope"},
		{Method: "GET", Path: "/v1//keys"},
		{Method: "PATCH", Path: "/v1/keys"},
		{Method: "POST", Path: "/v1/keys", Body: "{"},
		{Method: "DELETE", Path: "/v1/policies/" + testPolID},
	} {
		t.Run(req.Method+" "+req.Path, func(t *testing.T) {
			assertSecurityHeaders(t, env.Do(t, req), false)
		})
	}

	// Ensure HSTS is sent over TLS.
	t.Run("TLS", func(t *testing.T) {
		srv := httptest.NewTLSServer(custoshttp.NewHandler(env.Config))
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		assertSecurityHeaders(t, &Response{Status: resp.StatusCode, Header: resp.Header}, true)
	})
}

// Ensure the logs hold one line per request with its route, status, key and
// IP, and never a token or a secret value.
func TestLogs(t *testing.T) {
	env := MustServe(t)
	env.Spy.SetSecretFn = func(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
		return &custos.Secret{Name: in.Name}, nil
	}
	env.Spy.AccessSecretsFn = func(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
		return []*custos.SecretValue{{Name: "API_KEY", Value: testSecret}}, nil
	}
	env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) { panic("boom") }
	env.Spy.ListPoliciesFn = func(ctx context.Context) ([]*custos.Policy, error) { return nil, errors.New("disk full") }
	const badToken = "cst_ak_ANOTHERtokenTHATmustNOTappearANYWHERE"

	if _, err := env.Client.SetSecret(ctx(t), custos.SetSecretInput{Project: "web-app", Name: "API_KEY", Value: testSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.AccessSecrets(ctx(t), custos.AccessRequest{Project: "web-app", Names: []string{"API_KEY"}, Mode: "reveal"}); err != nil {
		t.Fatal(err)
	}
	env.Do(t, Request{Method: "PUT", Path: "/v1/secrets/web-app/API_KEY", Body: `{"value":"` + testSecret + `","bogus":1}`})
	env.Do(t, Request{Method: "PUT", Path: "/v1/secrets/web-app/API_KEY", Body: `{"value":"` + testSecret + `"`})
	env.Do(t, Request{Method: "PUT", Path: "/v1/secrets/web-app/API_KEY", Body: `{"value":"` + testSecret + `"}`, Token: "Bearer " + badToken})
	env.Do(t, Request{Method: "GET", Path: "/v1/keys", Token: "Bearer " + badToken + " extra"})
	env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
	env.Do(t, Request{Method: "GET", Path: "/v1/policies"})
	bad := MustClient(t, env.Server.URL, custoshttp.ClientOptions{Token: badToken})
	if _, err := bad.ListKeys(ctx(t)); custos.ErrorCode(err) != custos.EUNAUTHORIZED || strings.Contains(err.Error(), badToken) {
		t.Fatalf("err=%v", err)
	}

	logs := env.Logs.String()
	for _, s := range []string{testToken, badToken, testSecret, "ANOTHERtoken", "TESTtoken", "s3cr3t"} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs contain %q:\n%s", s, logs)
		}
	}

	// Find the request line of the first PUT.
	var found, authWarn bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "http request" && rec["route"] == "PUT /v1/secrets/{project}/{name}" && rec["status"] == float64(200) {
			found = true
			if rec["key_id"] != testKeyID || rec["ip"] != "127.0.0.1" || rec["method"] != "PUT" || rec["duration_ms"] == nil {
				t.Fatalf("request line=%v", rec)
			}
		}
		if rec["msg"] == "authentication failed" && rec["level"] == "WARN" && rec["reason"] != "" {
			authWarn = true
		}
	}
	if !found || !authWarn {
		t.Fatalf("request line found=%v, auth warning found=%v:\n%s", found, authWarn, logs)
	}
}

// Ensure /metrics counts requests by route pattern and status.
func TestMetrics(t *testing.T) {
	env := MustServe(t)
	env.Do(t, Request{Method: "GET", Path: "/healthz"})
	env.Do(t, Request{Method: "GET", Path: "/healthz"})
	env.Do(t, Request{Method: "GET", Path: "/v1/nope/" + testSecret})
	env.Do(t, Request{Method: "GET", Path: "/v1/keys", Token: "-"})
	resp := env.Do(t, Request{Method: "GET", Path: "/metrics", Token: "-"})
	if resp.Status != 200 {
		t.Fatalf("status=%d", resp.Status)
	}
	body := string(resp.Body)
	for _, want := range []string{
		`custos_http_requests_total{code="200",route="GET /healthz"} 2`,
		`custos_http_requests_total{code="404",route="unmatched"} 1`,
		`custos_http_requests_total{code="401",route="GET /v1/keys"} 1`,
		`custos_http_request_duration_seconds_bucket{route="GET /healthz",le="+Inf"} 2`,
		`custos_build_info{version="v0.0.0-test"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, testSecret) {
		t.Fatalf("raw path in metrics")
	}
}

// Ensure /healthz and /readyz answer, and readiness failures are logged
// without detail to the client.
func TestHealth(t *testing.T) {
	env := MustServe(t)
	resp := env.Do(t, Request{Method: "GET", Path: "/healthz", Token: "-"})
	if got, want := strings.TrimSpace(string(resp.Body)), `{"status":"ok"}`; resp.Status != 200 || got != want {
		t.Fatalf("healthz=%d %s", resp.Status, got)
	}
	resp = env.Do(t, Request{Method: "GET", Path: "/readyz", Token: "-"})
	if got, want := strings.TrimSpace(string(resp.Body)), `{"status":"ready"}`; resp.Status != 200 || got != want {
		t.Fatalf("readyz=%d %s", resp.Status, got)
	}

	cfg := env.Config
	logs := &syncBuffer{}
	cfg.Logger = slogJSON(logs)
	cfg.Ready = func(ctx context.Context) error { return errors.New("ping postgres://db.internal: refused") }
	srv := httptest.NewServer(custoshttp.NewHandler(cfg))
	defer srv.Close()
	hr, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r := readResponse(t, hr)
	if code, _ := r.Err(t); r.Status != 503 || code != custos.EUNAVAILABLE {
		t.Fatalf("readyz=%d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), "postgres") || !strings.Contains(logs.String(), "db.internal") {
		t.Fatalf("body=%s logs=%s", r.Body, logs)
	}
}

// Ensure a service left out answers 503 instead of panicking.
func TestMissingServices(t *testing.T) {
	spy := &Spy{}
	srv := httptest.NewServer(custoshttp.NewHandler(custoshttp.Config{
		Services: custoshttp.Services{Keys: spy}, Logger: discardLogger(),
	}))
	defer srv.Close()
	c := MustClient(t, srv.URL, custoshttp.ClientOptions{Token: testToken})
	if _, err := c.ListSecrets(ctx(t), custos.SecretFilter{}); custos.ErrorCode(err) != custos.EUNAVAILABLE {
		t.Fatalf("err=%v, want unavailable", err)
	}
	if _, err := c.Authenticate(ctx(t), testToken); err != nil {
		t.Fatal(err)
	}

	srv2 := httptest.NewServer(custoshttp.NewHandler(custoshttp.Config{Logger: discardLogger()}))
	defer srv2.Close()
	c2 := MustClient(t, srv2.URL, custoshttp.ClientOptions{Token: testToken})
	if _, err := c2.Authenticate(ctx(t), testToken); custos.ErrorCode(err) != custos.EUNAVAILABLE {
		t.Fatalf("err=%v, want unavailable", err)
	}
}

// Ensure the Server has the required timeouts, serves until Shutdown and
// then Serve returns nil.
func TestServer(t *testing.T) {
	s := custoshttp.NewServer(custoshttp.Config{Logger: discardLogger()})
	hs := s.HTTPServer()
	if hs.ReadHeaderTimeout != 5*time.Second || hs.ReadTimeout != 30*time.Second || hs.WriteTimeout != 60*time.Second ||
		hs.IdleTimeout != 120*time.Second || hs.MaxHeaderBytes != 64<<10 {
		t.Fatalf("timeouts: %v %v %v %v %d", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	if hs.TLSConfig == nil || hs.TLSConfig.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config %+v", hs.TLSConfig)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status=%d", resp.StatusCode)
	}
	if err := s.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve=%v, want nil", err)
	}
}

// Ensure ServeTLS refuses TLS 1.1, serves TLS 1.2 and sends HSTS.
func TestServerTLS(t *testing.T) {
	certFile, keyFile, pool := mustCert(t)
	s := custoshttp.NewServer(custoshttp.Config{Logger: discardLogger()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeTLS(ln, certFile, keyFile) }()
	url := "https://" + ln.Addr().String() + "/healthz"

	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.1 accepted")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 refused for another reason: %v", err)
	}
	ok := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}}}
	resp, err := ok.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	r := readResponse(t, resp)
	assertSecurityHeaders(t, r, true)
	ok.CloseIdleConnections()

	if err := s.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServeTLS=%v, want nil", err)
	}
}

// mustCert writes a self-signed certificate for 127.0.0.1 and returns its
// files and a pool that trusts it.
func mustCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "custos test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// withoutKey returns a copy of c without its key, for comparisons.
func withoutKey(c *custos.Caller) custos.Caller {
	v := *c
	v.Key = nil
	return v
}
