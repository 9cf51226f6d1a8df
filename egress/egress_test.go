package egress_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos/egress"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want egress.Class
	}{
		// public
		{"1.1.1.1", egress.ClassPublic},
		{"8.8.8.8", egress.ClassPublic},
		{"172.32.0.1", egress.ClassPublic},
		{"100.128.0.1", egress.ClassPublic},
		{"2606:4700:4700::1111", egress.ClassPublic},
		{"::ffff:1.1.1.1", egress.ClassPublic},
		{"64:ff9b::1.1.1.1", egress.ClassPublic},
		// unspecified / this network
		{"0.0.0.0", egress.ClassUnspecified},
		{"::", egress.ClassUnspecified},
		{"::ffff:0.0.0.0", egress.ClassUnspecified},
		{"0.1.2.3", egress.ClassThisNetwork},
		{"0.255.255.255", egress.ClassThisNetwork},
		// loopback
		{"127.0.0.1", egress.ClassLoopback},
		{"127.255.255.254", egress.ClassLoopback},
		{"::1", egress.ClassLoopback},
		{"::ffff:127.0.0.1", egress.ClassLoopback},
		{"64:ff9b::127.0.0.1", egress.ClassLoopback},
		{"2002:7f00:1::1", egress.ClassLoopback},
		// private
		{"10.0.0.1", egress.ClassPrivate},
		{"10.255.255.255", egress.ClassPrivate},
		{"172.16.0.1", egress.ClassPrivate},
		{"172.31.255.255", egress.ClassPrivate},
		{"192.168.1.1", egress.ClassPrivate},
		{"::ffff:10.0.0.1", egress.ClassPrivate},
		{"::ffff:192.168.0.1", egress.ClassPrivate},
		{"64:ff9b::10.0.0.1", egress.ClassPrivate},
		{"64:ff9b::c0a8:101", egress.ClassPrivate},
		{"64:ff9b:1::1", egress.ClassPrivate},
		{"fc00::1", egress.ClassPrivate},
		{"fd12:3456::1", egress.ClassPrivate},
		{"fec0::1", egress.ClassPrivate},
		// link-local, cloud metadata
		{"169.254.169.254", egress.ClassLinkLocal},
		{"169.254.0.1", egress.ClassLinkLocal},
		{"::ffff:169.254.169.254", egress.ClassLinkLocal},
		{"64:ff9b::169.254.169.254", egress.ClassLinkLocal},
		{"fe80::1", egress.ClassLinkLocal},
		{"fe80::1%eth0", egress.ClassLinkLocal},
		{"febf::1", egress.ClassLinkLocal},
		// CGNAT
		{"100.64.0.1", egress.ClassCGNAT},
		{"100.127.255.255", egress.ClassCGNAT},
		{"::ffff:100.64.0.1", egress.ClassCGNAT},
		// multicast / broadcast
		{"224.0.0.1", egress.ClassMulticast},
		{"239.255.255.250", egress.ClassMulticast},
		{"ff02::1", egress.ClassMulticast},
		{"::ffff:224.0.0.1", egress.ClassMulticast},
		{"255.255.255.255", egress.ClassBroadcast},
		{"::ffff:255.255.255.255", egress.ClassBroadcast},
		// reserved
		{"240.0.0.1", egress.ClassReserved},
		{"192.0.2.1", egress.ClassReserved},
		{"198.51.100.1", egress.ClassReserved},
		{"203.0.113.1", egress.ClassReserved},
		{"198.18.0.1", egress.ClassReserved},
		{"2001:db8::1", egress.ClassReserved},
		{"2001:0:4136:e378::1", egress.ClassReserved}, // Teredo
		{"::127.0.0.1", egress.ClassReserved},         // IPv4-compatible
		{"100::1", egress.ClassReserved},
		{"4000::1", egress.ClassReserved}, // outside 2000::/3
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr)
		if got := egress.Classify(a); got != tc.want {
			t.Errorf("Classify(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if got := egress.Classify(netip.Addr{}); got != egress.ClassUnspecified {
		t.Errorf("Classify(zero) = %v", got)
	}
	for c := egress.ClassPublic; c <= egress.ClassReserved; c++ {
		if c.String() == "unknown" || c.String() == "" {
			t.Errorf("class %d has no name", c)
		}
	}
}

func okServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustClient(t *testing.T, cfg egress.Config) *http.Client {
	t.Helper()
	c, err := egress.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, err = io.ReadAll(resp.Body)
	return err
}

func wantBlocked(t *testing.T, err error, substr ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("want refusal, got nil")
	}
	if !errors.Is(err, egress.ErrBlocked) {
		t.Fatalf("error does not wrap ErrBlocked: %v", err)
	}
	for _, s := range substr {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestLoopbackRefusedByDefault(t *testing.T) {
	srv := okServer(t)
	// Plain http to 127.0.0.1 is refused before dialing (scheme rule)...
	err := get(mustClient(t, egress.Config{}), srv.URL)
	wantBlocked(t, err, "127.0.0.1")
	// ...and the address rule refuses it at dial time too, as CheckURL shows.
	wantBlocked(t, egress.CheckURL(egress.Config{}, "https://127.0.0.1/"), "loopback")
}

func TestLoopbackAllowedWithAllowPrivate(t *testing.T) {
	srv := okServer(t)
	c := mustClient(t, egress.Config{AllowPrivate: []string{"127.0.0.1/32"}})
	if err := get(c, srv.URL); err != nil {
		t.Fatalf("allowed request failed: %v", err)
	}
	// Offline with the same AllowPrivate still reaches it.
	c = mustClient(t, egress.Config{Offline: true, AllowPrivate: []string{"127.0.0.1/32"}})
	if err := get(c, srv.URL); err != nil {
		t.Fatalf("offline allowed request failed: %v", err)
	}
}

func TestHostNameResolvingToLoopbackRefusedAtDial(t *testing.T) {
	srv := okServer(t)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	// https to a host name passes the static URL check; the refusal must
	// come from the dial Control hook, which sees the resolved address.
	c := mustClient(t, egress.Config{})
	err := get(c, "https://localhost"+port+"/")
	wantBlocked(t, err, "localhost", "loopback", "not listed in allow_private")

	// With AllowHosts naming localhost but no AllowPrivate, still refused.
	c = mustClient(t, egress.Config{AllowHosts: []string{"localhost"}})
	wantBlocked(t, get(c, "https://localhost"+port+"/"), "loopback")

	// A host name in AllowPrivate may resolve to loopback.
	c = mustClient(t, egress.Config{AllowPrivate: []string{"localhost"}})
	if err := get(c, "http://localhost"+port+"/"); err != nil {
		t.Fatalf("localhost listed in allow_private: %v", err)
	}
}

func TestRedirectToMetadataRefused(t *testing.T) {
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/?token=s3cret", http.StatusFound)
	}))
	t.Cleanup(redir.Close)
	c := mustClient(t, egress.Config{AllowPrivate: []string{"127.0.0.1/32"}})
	err := get(c, redir.URL)
	wantBlocked(t, err, "169.254.169.254")
	var be *egress.BlockedError
	if !errors.As(err, &be) || strings.Contains(be.Error(), "s3cret") {
		t.Fatalf("want BlockedError without query, got %v", err)
	}

	// https to the metadata address is refused by the address rule, even
	// when the host name is otherwise allowed.
	wantBlocked(t, egress.CheckURL(egress.Config{}, "https://169.254.169.254/"), "link-local")
	wantBlocked(t, egress.CheckURL(egress.Config{}, "https://[::ffff:169.254.169.254]/"), "link-local")
	wantBlocked(t, egress.CheckURL(egress.Config{}, "https://[64:ff9b::a9fe:a9fe]/"), "link-local")
	// A host name entry does not cover link-local; a CIDR does.
	if err := egress.CheckURL(egress.Config{AllowPrivate: []string{"169.254.169.254/32"}}, "http://169.254.169.254/"); err != nil {
		t.Fatalf("explicit CIDR: %v", err)
	}
}

func TestTooManyRedirects(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/again", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	c := mustClient(t, egress.Config{AllowPrivate: []string{"127.0.0.0/8"}})
	wantBlocked(t, get(c, srv.URL), "redirects")
}

func TestOfflineRefusesPublic(t *testing.T) {
	cfg := egress.Config{Offline: true, AllowPrivate: []string{"127.0.0.1/32"}, ConnectTimeout: time.Second}
	c := mustClient(t, cfg)
	// Refused by the static check before dialing.
	wantBlocked(t, get(c, "https://1.1.1.1/"), "1.1.1.1", "offline")
	wantBlocked(t, egress.CheckURL(cfg, "https://api.openai.com/v1"), "offline")
	// Even listed in AllowPrivate, a public address is refused offline (the
	// same rule the dial Control hook applies before connect(2)).
	cfg.AllowPrivate = append(cfg.AllowPrivate, "1.1.1.1/32")
	c = mustClient(t, cfg)
	wantBlocked(t, get(c, "https://1.1.1.1/"), "1.1.1.1", "public", "offline")
}

func TestAllowHosts(t *testing.T) {
	cfg := egress.Config{AllowHosts: []string{"api.example.com", "*.example.org"}}
	for _, u := range []string{
		"https://api.example.com/v1",
		"https://API.Example.com./v1",
		"https://x.example.org/",
		"https://a.b.example.org/",
	} {
		if err := egress.CheckURL(cfg, u); err != nil {
			t.Errorf("CheckURL(%s): %v", u, err)
		}
	}
	for _, u := range []string{
		"https://example.com/",
		"https://evil.com/",
		"https://example.org/",
		"https://api.example.com.evil.com/",
		"https://xexample.org/",
	} {
		wantBlocked(t, egress.CheckURL(cfg, u), "allow_hosts")
	}
	// Enforced by the client before dialing (no network needed).
	c := mustClient(t, cfg)
	wantBlocked(t, get(c, "https://evil.com/"), "evil.com", "allow_hosts")
	// A host listed in AllowPrivate is allowed alongside AllowHosts.
	srv := okServer(t)
	cfg.AllowPrivate = []string{"127.0.0.1"}
	c = mustClient(t, cfg)
	if err := get(c, srv.URL); err != nil {
		t.Fatalf("allow_private host with allow_hosts: %v", err)
	}
}

func TestRedirectToDisallowedHost(t *testing.T) {
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example.net/", http.StatusFound)
	}))
	t.Cleanup(redir.Close)
	c := mustClient(t, egress.Config{AllowHosts: []string{"api.example.com"}, AllowPrivate: []string{"127.0.0.1"}})
	wantBlocked(t, get(c, redir.URL), "evil.example.net", "allow_hosts")
}

func TestCheckURL(t *testing.T) {
	priv := egress.Config{AllowPrivate: []string{"10.0.0.0/8", "ollama.internal", "*.svc.local"}}
	ok := []struct {
		cfg egress.Config
		u   string
	}{
		{egress.Config{}, "https://api.openai.com/v1"},
		{egress.Config{}, "https://1.1.1.1:8443/x"},
		{egress.Config{}, "https://[2606:4700::1111]/"},
		{priv, "http://10.1.2.3:11434/"},
		{priv, "http://ollama.internal:11434/api"},
		{priv, "http://hook.svc.local/"},
		{priv, "https://api.openai.com/"},
	}
	for _, tc := range ok {
		if err := egress.CheckURL(tc.cfg, tc.u); err != nil {
			t.Errorf("CheckURL(%s): %v", tc.u, err)
		}
	}
	bad := []struct {
		cfg    egress.Config
		u      string
		reason string
	}{
		{egress.Config{}, "http://api.openai.com/", "plain http"},
		{egress.Config{}, "http://1.1.1.1/", "plain http"},
		{priv, "http://api.openai.com/", "plain http"},
		{priv, "http://11.0.0.1/", "plain http"},
		{egress.Config{}, "ftp://example.com/", "scheme"},
		{egress.Config{}, "/relative/path", "absolute"},
		{egress.Config{}, "example.com", "absolute"},
		{egress.Config{}, "mailto:a@example.com", "absolute"},
		{egress.Config{}, "https://user:pass@example.com/", "userinfo"},
		{egress.Config{}, "https://10.0.0.1/", "private"},
		{egress.Config{}, "https://[::1]/", "loopback"},
		{egress.Config{}, "https://[::ffff:127.0.0.1]/", "loopback"},
		{egress.Config{}, "https://[fd00::1]/", "private"},
		{egress.Config{}, "https://100.64.1.1/", "carrier-grade"},
		{egress.Config{}, "https://0.0.0.0/", "unspecified"},
		{egress.Config{}, "https://0.1.2.3/", "this-network"},
		{egress.Config{}, "https://224.0.0.1/", "multicast"},
		{egress.Config{}, "https://255.255.255.255/", "broadcast"},
		{egress.Config{AllowPrivate: []string{"0.0.0.0/0"}}, "http://0.0.0.0/", "never allowed"},
		{egress.Config{}, "https://[64:ff9b::10.0.0.1]/", "private"},
		{egress.Config{}, "https://example.com:0/", "port"},
		{egress.Config{}, "https://example.com:99999/", "port"},
		{egress.Config{}, "https://exa mple.com/", ""},
		{egress.Config{}, "https:///path", "absolute"},
		{egress.Config{}, "", "absolute"},
	}
	for _, tc := range bad {
		err := egress.CheckURL(tc.cfg, tc.u)
		if err == nil {
			t.Errorf("CheckURL(%q) = nil, want refusal", tc.u)
			continue
		}
		if !errors.Is(err, egress.ErrBlocked) {
			t.Errorf("CheckURL(%q) = %v, does not wrap ErrBlocked", tc.u, err)
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("CheckURL(%q) = %v, want reason containing %q", tc.u, err, tc.reason)
		}
	}
}

func TestErrorsOmitSecrets(t *testing.T) {
	cases := []string{
		"https://alice:hunter2@evil.com/p?api_key=s3cret",
		"http://alice:hunter2@api.example.com/p?api_key=s3cret",
		"http://api.example.com/p?api_key=s3cret",
		"https://169.254.169.254/p?api_key=s3cret",
		"https://alice:hunter2@exa%zzmple.com/?api_key=s3cret",
		"https://alice:hunter2@[::1/?api_key=s3cret",
	}
	cfg := egress.Config{AllowHosts: []string{"api.example.com"}}
	for _, u := range cases {
		err := egress.CheckURL(cfg, u)
		wantBlocked(t, err)
		for _, secret := range []string{"alice", "hunter2", "s3cret", "api_key", "/p"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("CheckURL error %q leaks %q", err, secret)
			}
		}
	}
	// Through the client, the BlockedError itself carries no secret (the
	// *url.Error wrapper added by net/http quotes the URL with the password
	// redacted; callers should log errors.As'd BlockedError where possible).
	c := mustClient(t, cfg)
	err := get(c, "https://evil.com/p?api_key=s3cret")
	var be *egress.BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("want BlockedError, got %v", err)
	}
	if strings.Contains(be.Error(), "s3cret") {
		t.Errorf("BlockedError leaks query: %v", be)
	}
}

func TestNewClientValidates(t *testing.T) {
	bad := []egress.Config{
		{AllowPrivate: []string{"10.0.0.0/33"}},
		{AllowPrivate: []string{"10.0.0/8"}},
		{AllowPrivate: []string{"not a host"}},
		{AllowHosts: []string{"*"}},
		{AllowHosts: []string{"a.*.com"}},
		{AllowHosts: []string{"https://example.com"}},
		{AllowHosts: []string{""}},
		{Timeout: -time.Second},
		{ConnectTimeout: -time.Second},
	}
	for _, cfg := range bad {
		if _, err := egress.NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) = nil error", cfg)
		} else if errors.Is(err, egress.ErrBlocked) {
			t.Errorf("config error should not wrap ErrBlocked: %v", err)
		}
		if err := egress.CheckURL(cfg, "https://example.com/"); err == nil {
			t.Errorf("CheckURL with bad cfg %+v = nil", cfg)
		}
	}
	c, err := egress.NewClient(egress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout != egress.DefaultTimeout {
		t.Errorf("default timeout = %v", c.Timeout)
	}
}

func TestNoProxyFromEnvironment(t *testing.T) {
	srv := okServer(t)
	// A proxy that would happily forward anything: must never be used.
	proxyHit := false
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxyHit = true
		_, _ = io.WriteString(w, "proxied")
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	c := mustClient(t, egress.Config{AllowPrivate: []string{"127.0.0.1/32"}})
	if err := get(c, srv.URL); err != nil {
		t.Fatal(err)
	}
	if proxyHit {
		t.Fatal("environment proxy was used")
	}
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://api.openai.com/v1",
		"http://127.0.0.1:8080/",
		"https://user:pw@[::ffff:169.254.169.254]:443/?q=1",
		"http://[fe80::1%25eth0]/",
		"https://*.example.com/",
		"//example.com",
		"https://0x7f.1/",
		"https://2130706433/",
		"",
		"%",
	} {
		f.Add(s)
	}
	cfgs := []egress.Config{
		{},
		{AllowHosts: []string{"*.example.com"}, AllowPrivate: []string{"127.0.0.0/8", "ollama.local"}},
		{Offline: true, AllowPrivate: []string{"::1/128", "10.0.0.0/8"}},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, cfg := range cfgs {
			if err := egress.CheckURL(cfg, raw); err != nil && !errors.Is(err, egress.ErrBlocked) {
				t.Fatalf("CheckURL(%q) error does not wrap ErrBlocked: %v", raw, err)
			}
		}
	})
}
