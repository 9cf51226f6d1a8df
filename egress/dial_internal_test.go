package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// These tests call the dialer directly, bypassing the static URL check, to
// show the Control hook refuses before connect(2): no packet leaves the host.

func TestDialControlOfflineRefusesPublic(t *testing.T) {
	p, err := compile(Config{Offline: true, AllowPrivate: []string{"1.1.1.1/32"}, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := p.dialContext(context.Background(), "tcp", "1.1.1.1:443")
	if err == nil {
		_ = conn.Close()
		t.Fatal("offline dial to public address succeeded")
	}
	if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("want offline refusal, got %v", err)
	}
}

func TestDialControlPlaintextPublicRefused(t *testing.T) {
	p, err := compile(Config{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, reqInfo{plaintext: true})
	conn, err := p.dialContext(ctx, "tcp", "1.1.1.1:80")
	if err == nil {
		_ = conn.Close()
		t.Fatal("plain http dial to public address succeeded")
	}
	if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("want plain-http refusal, got %v", err)
	}
}

func TestDialControlMappedLoopback(t *testing.T) {
	p, err := compile(Config{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1", "0.0.0.0:1"} {
		conn, err := p.dialContext(context.Background(), "tcp", addr)
		if err == nil {
			_ = conn.Close()
			t.Fatalf("dial %s succeeded", addr)
		}
		if !errors.Is(err, ErrBlocked) {
			t.Errorf("dial %s: want ErrBlocked, got %v", addr, err)
		}
	}
}

// The plain-http flag must reach the dialer through net/http's dial context;
// if a Go release stopped propagating context values this would catch it.
func TestPlaintextFlagReachesDialer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	c, err := NewClient(Config{AllowPrivate: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Transport.(*transport)
	var got reqInfo
	var ok bool
	orig := tr.rt.DialContext
	tr.rt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		got, ok = ctx.Value(ctxKey{}).(reqInfo)
		return orig(ctx, network, addr)
	}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if !ok || !got.plaintext {
		t.Fatalf("plaintext flag not propagated: ok=%v info=%+v", ok, got)
	}
}
