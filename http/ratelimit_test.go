package http_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/store/memory"
)

// testToken2 authenticates as a second key in the rate-limit tests.
const (
	testToken2 = "cst_ak_SECONDtokenVALUEthatMUSTneverBEloggedXXXXXXXXXX"
	testKeyID2 = "key_fedcba9876543210"
)

// Clock is a fake clock that tests move by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// LimitEnv is an API handler with rate limits over a Spy, counted in a
// memory store on a fake clock. Auths counts the Spy's Authenticate calls.
type LimitEnv struct {
	*Env
	Handler http.Handler
	Clock   *Clock
	Auths   atomic.Int64
}

// MustServeLimited returns an Env whose handler enforces cfg.
func MustServeLimited(tb testing.TB, cfg ratelimit.Config) *LimitEnv {
	tb.Helper()
	env := MustServe(tb)
	okSpy(env)
	le := &LimitEnv{Env: env, Clock: &Clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}}
	env.Spy.AuthenticateFn = func(ctx context.Context, token string) (*custos.APIKey, error) {
		le.Auths.Add(1)
		switch token {
		case testToken:
			return testKey(), nil
		case testToken2:
			k := testKey()
			k.ID = testKeyID2
			return k, nil
		}
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid API key")
	}
	hot := memory.NewWithClock(le.Clock.Now)
	env.Config.Limiter = ratelimit.NewWithClock(hot, cfg, slog.New(slog.DiscardHandler), le.Clock.Now)
	le.Handler = custoshttp.NewHandler(env.Config)
	srv := httptest.NewServer(le.Handler)
	tb.Cleanup(srv.Close)
	env.Server = srv
	env.Client = MustClient(tb, srv.URL, custoshttp.ClientOptions{Token: testToken})
	return le
}

// From serves req to the handler as if sent from ip; token "" means
// testToken, "-" none.
func (e *LimitEnv) From(tb testing.TB, ip, method, path, token string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = ip + ":40000"
	switch token {
	case "-":
	case "":
		r.Header.Set("Authorization", "Bearer "+testToken)
	default:
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.Handler.ServeHTTP(w, r)
	return w
}

// assertStatus fails the test unless w has status want.
func assertStatus(tb testing.TB, w *httptest.ResponseRecorder, want int) {
	tb.Helper()
	if w.Code != want {
		tb.Fatalf("status=%d, want %d: %s", w.Code, want, w.Body)
	}
}

// assertLimited fails the test unless w is a 429 rate_limited answer with a
// Retry-After of retry seconds naming what in its message.
func assertLimited(tb testing.TB, w *httptest.ResponseRecorder, retry int, what string) {
	tb.Helper()
	assertStatus(tb, w, http.StatusTooManyRequests)
	resp := &Response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
	code, msg := resp.Err(tb)
	if code != custos.ERATELIMITED || !strings.Contains(msg, what) {
		tb.Fatalf("error=%q %q, want %q mentioning %q", code, msg, custos.ERATELIMITED, what)
	}
	if got, want := w.Header().Get("Retry-After"), strconv.Itoa(retry); got != want {
		tb.Fatalf("Retry-After=%q, want %q", got, want)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		tb.Fatalf("Content-Type=%q, want %q", got, want)
	}
}

// Ensure the per-IP limit answers 429 with Retry-After before the key is
// looked up or any service called, and other IPs are unaffected.
func TestRateLimitIP(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{PerIP: ratelimit.Limit{N: 2, Window: time.Minute}})
	for range 2 {
		assertStatus(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", ""), 200)
	}
	env.Spy.Reset()
	env.Auths.Store(0)

	env.Clock.Advance(20*time.Second + 500*time.Millisecond)
	for _, token := range []string{"", "-", "cst_ak_wrong"} {
		assertLimited(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", token), 40, "from this address")
	}
	env.AssertNoCalls(t)
	if got := env.Auths.Load(); got != 0 {
		t.Fatalf("Authenticate called %d times, want 0", got)
	}

	// Another address has its own count.
	assertStatus(t, env.From(t, "203.0.113.8", "GET", "/v1/keys", ""), 200)

	// The window ends: the address is served again.
	env.Clock.Advance(40 * time.Second)
	assertStatus(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", ""), 200)
}

// Ensure the per-key limit answers 429 after authentication, without calling
// the service, and another key from the same IP is unaffected.
func TestRateLimitKey(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{PerKey: ratelimit.Limit{N: 3, Window: time.Minute}})
	for range 3 {
		assertStatus(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", ""), 200)
	}
	env.Spy.Reset()
	assertLimited(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", ""), 60, "for this API key")
	// The key is limited from any address.
	assertLimited(t, env.From(t, "198.51.100.1", "GET", "/v1/whoami", ""), 60, "for this API key")
	env.AssertNoCalls(t)

	assertStatus(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", testToken2), 200)

	env.Clock.Advance(time.Minute)
	assertStatus(t, env.From(t, "203.0.113.7", "GET", "/v1/keys", ""), 200)
}

// Ensure after N failed authentications from an IP even a valid key from it
// gets 429 (without being checked) until the window ends, while other IPs
// are unaffected.
func TestRateLimitAuthFailures(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{AuthFailuresPerIP: ratelimit.Limit{N: 3, Window: 10 * time.Minute}})
	const ip = "203.0.113.7"
	for _, token := range []string{"cst_ak_guess1", "-", "cst_ak_guess3"} {
		w := env.From(t, ip, "GET", "/v1/keys", token)
		assertStatus(t, w, 401)
	}
	env.Spy.Reset()
	env.Auths.Store(0)

	env.Clock.Advance(time.Minute)
	assertLimited(t, env.From(t, ip, "GET", "/v1/keys", ""), 540, "failed authentications")
	assertLimited(t, env.From(t, ip, "GET", "/v1/whoami", "cst_ak_guess4"), 540, "failed authentications")
	env.AssertNoCalls(t)
	if got := env.Auths.Load(); got != 0 {
		t.Fatalf("Authenticate called %d times while blocked, want 0", got)
	}

	// Another address, even with the same key, is served.
	assertStatus(t, env.From(t, "203.0.113.8", "GET", "/v1/keys", ""), 200)

	// Just before the window ends the block holds; then it lifts.
	env.Clock.Advance(9*time.Minute - time.Millisecond)
	assertLimited(t, env.From(t, ip, "GET", "/v1/keys", ""), 1, "failed authentications")
	env.Clock.Advance(time.Millisecond)
	assertStatus(t, env.From(t, ip, "GET", "/v1/keys", ""), 200)
}

// Ensure only rejected credentials count as failures: an unavailable key
// service, or a bad identity header after a good key, does not.
func TestRateLimitAuthFailuresOnlyCredentials(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{AuthFailuresPerIP: ratelimit.Limit{N: 1, Window: time.Minute}})
	const ip = "203.0.113.7"
	auth := env.Spy.AuthenticateFn
	env.Spy.AuthenticateFn = func(ctx context.Context, token string) (*custos.APIKey, error) {
		return nil, custos.Errorf(custos.EUNAVAILABLE, "key store down")
	}
	assertStatus(t, env.From(t, ip, "GET", "/v1/keys", ""), 503)
	env.Spy.AuthenticateFn = auth

	r := httptest.NewRequest("GET", "/v1/keys", nil)
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.Header.Set(custoshttp.HeaderSource, "carrier-pigeon")
	w := httptest.NewRecorder()
	env.Handler.ServeHTTP(w, r)
	assertStatus(t, w, 400)

	assertStatus(t, env.From(t, ip, "GET", "/v1/keys", ""), 200)
}

// Ensure /healthz, /readyz and /metrics are never limited and do not count.
func TestRateLimitExempt(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{
		PerIP:             ratelimit.Limit{N: 1, Window: time.Minute},
		AuthFailuresPerIP: ratelimit.Limit{N: 1, Window: time.Minute},
	})
	const ip = "203.0.113.7"
	for range 5 {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			assertStatus(t, env.From(t, ip, "GET", path, "-"), 200)
		}
	}
	assertStatus(t, env.From(t, ip, "GET", "/v1/keys", "cst_ak_wrong"), 401)
	assertLimited(t, env.From(t, ip, "GET", "/v1/keys", ""), 60, "from this address")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		assertStatus(t, env.From(t, ip, "GET", path, "-"), 200)
	}
}

// Ensure 429 answers are counted in /metrics by the limit that refused them.
func TestRateLimitMetrics(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{
		PerIP:             ratelimit.Limit{N: 2, Window: time.Minute},
		PerKey:            ratelimit.Limit{N: 1, Window: time.Minute},
		AuthFailuresPerIP: ratelimit.Limit{N: 1, Window: time.Minute},
	})
	env.From(t, "203.0.113.1", "GET", "/v1/keys", "")
	env.From(t, "203.0.113.2", "GET", "/v1/keys", "") // key limit
	env.From(t, "203.0.113.3", "GET", "/v1/keys", "cst_ak_wrong")
	env.From(t, "203.0.113.3", "GET", "/v1/keys", "") // auth failures
	env.From(t, "203.0.113.1", "GET", "/v1/keys", "") // key limit again
	env.From(t, "203.0.113.1", "GET", "/v1/keys", "") // ip limit

	body := env.From(t, "203.0.113.9", "GET", "/metrics", "-").Body.String()
	for _, want := range []string{
		`custos_http_rate_limited_total{limit="auth_failures"} 1`,
		`custos_http_rate_limited_total{limit="ip"} 1`,
		`custos_http_rate_limited_total{limit="key"} 2`,
		`custos_http_requests_total{code="429",route="GET /v1/keys"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Ensure the client maps a 429 answer to ERATELIMITED with the server's
// message, and a bare 429 without the JSON shape too.
func TestRateLimitClient(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{PerKey: ratelimit.Limit{N: 1, Window: time.Minute}})
	if _, err := env.Client.ListKeys(ctx(t)); err != nil {
		t.Fatalf("first ListKeys: %v", err)
	}
	_, err := env.Client.ListKeys(ctx(t))
	var ce *custos.Error
	if !errors.As(err, &ce) || ce.Code != custos.ERATELIMITED || !strings.Contains(ce.Message, "retry in 60 s") {
		t.Fatalf("err=%v, want rate_limited naming the retry delay", err)
	}

	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	t.Cleanup(bare.Close)
	c := MustClient(t, bare.URL, custoshttp.ClientOptions{Token: testToken})
	if _, err := c.ListKeys(ctx(t)); custos.ErrorCode(err) != custos.ERATELIMITED {
		t.Fatalf("bare 429: err=%v, want code %q", err, custos.ERATELIMITED)
	}
}

// Ensure a nil Limiter limits nothing.
func TestRateLimitNil(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	for range 50 {
		if resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys", Token: "Bearer cst_ak_wrong"}); resp.Status != 401 {
			t.Fatalf("status=%d, want 401", resp.Status)
		}
	}
	if resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"}); resp.Status != 200 {
		t.Fatalf("status=%d, want 200", resp.Status)
	}
}

// Ensure the tasks credentials have the per-key limit too: a permit and a
// tracker install token are each limited under their own hash, from any
// address, before the service looks at them; another permit is unaffected.
func TestRateLimitTaskCredentials(t *testing.T) {
	env := MustServeLimited(t, ratelimit.Config{PerKey: ratelimit.Limit{N: 2, Window: time.Minute}})
	other := testTok("cst_pm_", "OTHERpermit")
	env.Spy.CreateRunFn = func(_ context.Context, tok, task string) (*custos.Run, error) {
		return &custos.Run{ID: testRunID, TaskID: task}, nil
	}
	for range 2 {
		assertStatus(t, env.From(t, "203.0.113.7", "POST", "/v1/tasks/PROJ-42/runs", testPermit), 201)
	}
	env.Spy.Reset()
	assertLimited(t, env.From(t, "203.0.113.7", "POST", "/v1/tasks/PROJ-42/runs", testPermit), 60, "for this credential")
	assertLimited(t, env.From(t, "198.51.100.1", "POST", "/v1/tasks/PROJ-42/runs", testPermit), 60, "for this credential")
	env.AssertNoCalls(t)
	assertStatus(t, env.From(t, "203.0.113.7", "POST", "/v1/tasks/PROJ-42/runs", other), 201)

	for range 2 {
		assertStatus(t, env.From(t, "203.0.113.7", "POST", "/v1/tracker/request-key", testInstallToken), 201)
	}
	env.Spy.Reset()
	assertLimited(t, env.From(t, "203.0.113.7", "POST", "/v1/tracker/request-key", testInstallToken), 60, "for this credential")
	env.AssertNoCalls(t)

	env.Clock.Advance(time.Minute)
	assertStatus(t, env.From(t, "203.0.113.7", "POST", "/v1/tasks/PROJ-42/runs", testPermit), 201)
}
