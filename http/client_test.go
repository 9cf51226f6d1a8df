package http_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

func TestNewClient(t *testing.T) {
	// Ensure only http and https URLs with a host are accepted.
	t.Run("BadURL", func(t *testing.T) {
		for _, u := range []string{
			"", "localhost:8080", "ftp://example.com", "http://", "https:///path", "://x",
			"http://user:" + testToken + "@example.com", "http://example.com/?x=1", "http://example.com/#frag", "unix:///tmp/sock",
		} {
			_, err := custoshttp.NewClient(u, custoshttp.ClientOptions{Token: testToken})
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("%q: err=%v, want invalid", u, err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("%q: token in error %v", u, err)
			}
		}
	})

	// Ensure a good URL is kept without its trailing slash.
	t.Run("OK", func(t *testing.T) {
		for u, want := range map[string]string{
			"http://127.0.0.1:8080":                  "http://127.0.0.1:8080",
			"http://127.0.0.1:8080/":                 "http://127.0.0.1:8080",
			"https://custos.example.com/prefix/":     "https://custos.example.com/prefix",
			"https://[::1]:8443":                     "https://[::1]:8443",
			"HTTPS://custos.example.com/a%20b/path/": "https://custos.example.com/a%20b/path",
		} {
			c, err := custoshttp.NewClient(u, custoshttp.ClientOptions{})
			if err != nil {
				t.Fatalf("%q: %v", u, err)
			}
			if got := c.URL(); got != want {
				t.Fatalf("URL()=%q, want %q", got, want)
			}
		}
	})

	// Ensure options that cannot travel as headers are rejected.
	t.Run("BadOptions", func(t *testing.T) {
		for _, opts := range []custoshttp.ClientOptions{
			{Token: "cst_ak_with space"},
			{Token: "cst_ak_x\r\nX-Evil: 1"},
			{Agent: "-x"},
			{Hostname: "a/b"},
			{MachineUser: strings.Repeat("u", 65)},
			{Source: "web"},
			{Model: strings.Repeat("m", 129)},
			{Model: "m\n"},
		} {
			_, err := custoshttp.NewClient("http://127.0.0.1:1", opts)
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("%+v: err=%v, want invalid", opts, err)
			}
			if strings.Contains(err.Error(), "cst_ak_") {
				t.Fatalf("token in error %v", err)
			}
		}
	})
}

// Ensure a server that is not running gives a clear error with a hint.
func TestClient_Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()

	c := MustClient(t, url, custoshttp.ClientOptions{Token: testToken})
	_, err = c.ListSecrets(ctx(t), custos.SecretFilter{})
	if got, want := custos.ErrorCode(err), custos.EUNAVAILABLE; got != want {
		t.Fatalf("code=%q, want %q: %v", got, want, err)
	}
	msg := custos.ErrorMessage(err)
	for _, want := range []string{url, "not reachable", "custos serve", "CUSTOS_URL"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(err.Error(), testToken) {
		t.Fatalf("token in error: %v", err)
	}
	if _, err := c.Authenticate(ctx(t), testToken); err == nil || strings.Contains(err.Error(), testToken) {
		t.Fatalf("Authenticate err=%v", err)
	}
}

// Ensure a canceled context comes back as such.
func TestClient_Canceled(t *testing.T) {
	env := MustServe(t)
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	_, err := env.Client.ListKeys(c)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err=%v, want context.Canceled", err)
	}
}

// Ensure answers that are not the API's error shape are mapped by status,
// with a message naming the status and never the token or the body.
func TestClient_ForeignAnswers(t *testing.T) {
	for _, tt := range []struct {
		name        string
		status      int
		contentType string
		body        string
		code        string
		message     string
	}{
		{"BadGateway", 502, "text/html", "<html>nginx " + testToken + "</html>", custos.EINTERNAL, "502 Bad Gateway"},
		{"Unavailable", 503, "text/plain", "down", custos.EUNAVAILABLE, "503"},
		{"NotFound", 404, "text/plain", "404 page not found", custos.ENOTFOUND, "404"},
		{"Forbidden", 403, "text/plain", "", custos.EFORBIDDEN, "403"},
		{"Unauthorized", 401, "application/json", `{"message":"nope"}`, custos.EUNAUTHORIZED, "401"},
		{"UnknownCode", 409, "application/json", `{"error":{"code":"teapot","message":"short and stout"}}`, custos.ECONFLICT, "short and stout"},
		{"Redirect", 307, "text/plain", "", custos.EINTERNAL, "307"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sawAuth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					sawAuth = r.Header.Get("Authorization")
					w.WriteHeader(200)
					return
				}
				if tt.status == 307 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := MustClient(t, srv.URL, custoshttp.ClientOptions{Token: testToken})
			_, err := c.ListPolicies(ctx(t))
			var ce *custos.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err=%T %v", err, err)
			}
			if ce.Code != tt.code || !strings.Contains(ce.Message, tt.message) {
				t.Fatalf("error=%q %q, want %q containing %q", ce.Code, ce.Message, tt.code, tt.message)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "nginx") {
				t.Fatalf("error echoes the body or token: %v", err)
			}
			if sawAuth != "" {
				t.Fatalf("redirect followed with the token")
			}
		})
	}

	// Ensure a 2xx answer that is not JSON is an internal error.
	t.Run("InvalidSuccess", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>login page</html>"))
		}))
		defer srv.Close()
		c := MustClient(t, srv.URL, custoshttp.ClientOptions{Token: testToken})
		if _, err := c.ListPolicies(ctx(t)); custos.ErrorCode(err) != custos.EINTERNAL {
			t.Fatalf("err=%v, want internal", err)
		}
	})
}

// Ensure the API works under a path prefix behind a proxy.
func TestClient_PathPrefix(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	mux := http.NewServeMux()
	mux.Handle("/custos/", http.StripPrefix("/custos", custoshttp.NewHandler(env.Config)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := MustClient(t, srv.URL+"/custos/", custoshttp.ClientOptions{Token: testToken})
	if _, err := c.ListKeys(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSecret(ctx(t), "web-app", "API_KEY"); err != nil {
		t.Fatal(err)
	}
}

// Ensure the client rejects ids and arguments it can check before sending.
func TestClient_Validates(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	c := env.Client
	for name, err := range map[string]error{
		"RotateKey":    func() error { _, _, err := c.RotateKey(ctx(t), "../../x", 0); return err }(),
		"RotateGrace":  func() error { _, _, err := c.RotateKey(ctx(t), testKeyID, -1); return err }(),
		"RevokeKey":    c.RevokeKey(ctx(t), testDevID),
		"Approve":      func() error { _, err := c.ApproveDevice(ctx(t), "dev_..", custos.LevelRead); return err }(),
		"Deny":         func() error { _, err := c.DenyDevice(ctx(t), testKeyID); return err }(),
		"ListDevices":  func() error { _, err := c.ListDevices(ctx(t), "weird"); return err }(),
		"RemovePolicy": c.RemovePolicy(ctx(t), "pol_/x"),
		"History":      func() error { _, err := c.SecretHistory(ctx(t), "p", "A B"); return err }(),
		"AuditLimit":   func() error { _, err := c.ListAudit(ctx(t), custos.AuditFilter{Limit: 10001}); return err }(),
		"AuditAfter":   func() error { _, err := c.ListAudit(ctx(t), custos.AuditFilter{AfterSeq: -1}); return err }(),
	} {
		if custos.ErrorCode(err) != custos.EINVALID {
			t.Fatalf("%s: err=%v, want invalid", name, err)
		}
	}
	env.AssertNoCalls(t)
}
