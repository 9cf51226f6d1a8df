package redis_test

import (
	"io"
	"net"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/redis"
	"github.com/custos-dev/custos/store/storetest"
	goredis "github.com/redis/go-redis/v9"
)

// MustOpen opens the store at rawURL or fails the test; it closes with the test.
func MustOpen(tb testing.TB, rawURL string) *redis.Store {
	tb.Helper()
	s, err := redis.Open(tb.Context(), rawURL)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// randomKey returns a counter key no other test run uses.
func randomKey(tb testing.TB) string {
	tb.Helper()
	return "test:" + strings.ReplaceAll(tb.Name(), "/", ":") + ":" + time.Now().Format("150405.000000000")
}

// Ensure the Redis store passes the HotStore conformance suite.
func TestHotStore(t *testing.T) {
	rawURL := storetest.RedisURL(t)
	storetest.RunHot(t, func(t *testing.T) custos.HotStore {
		s, err := redis.Open(t.Context(), rawURL)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// Ensure two handles on one Redis (two replicas) count together.
func TestReplicasShareCounts(t *testing.T) {
	rawURL := storetest.RedisURL(t)
	a, b := MustOpen(t, rawURL), MustOpen(t, rawURL)
	key := randomKey(t)
	for i, s := range []*redis.Store{a, b, a, b, b} {
		count, _, err := s.Hit(t.Context(), key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := count, int64(i+1); got != want {
			t.Fatalf("hit %d: count=%d, want %d", i+1, got, want)
		}
	}
	count, _, err := a.Peek(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := count, int64(5); got != want {
		t.Fatalf("Peek=%d, want %d", got, want)
	}
}

// Ensure 1000 concurrent hits split across two replicas are each counted once.
func TestReplicasConcurrent(t *testing.T) {
	rawURL := storetest.RedisURL(t)
	stores := []*redis.Store{MustOpen(t, rawURL), MustOpen(t, rawURL)}
	key := randomKey(t)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = make(map[int64]bool)
	)
	for w := range 50 {
		wg.Go(func() {
			for range 20 {
				count, _, err := stores[w%2].Hit(t.Context(), key, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[count] {
					t.Errorf("count %d seen twice", count)
				}
				seen[count] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got, want := len(seen), 1000; got != want {
		t.Fatalf("distinct counts=%d, want %d", got, want)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Ensure Open of an unreachable Redis is EUNAVAILABLE, names the host and
// never the password.
func TestOpen_ErrUnreachable(t *testing.T) {
	addr := closedAddr(t)
	_, err := redis.Open(t.Context(), "redis://custos:hunter2secret@"+addr+"/0")
	if got, want := custos.ErrorCode(err), custos.EUNAVAILABLE; got != want {
		t.Fatalf("code=%q (%v), want %q", got, err, want)
	}
	msg := custos.ErrorMessage(err)
	if !strings.Contains(msg, addr) {
		t.Fatalf("message %q does not name %s", msg, addr)
	}
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("password leaked: %v", err)
	}
}

// Ensure a bad URL is EINVALID with a clear message and no password.
func TestOpen_ErrInvalidURL(t *testing.T) {
	for _, tt := range []struct{ name, url, want string }{
		{"Scheme", "http://127.0.0.1:6379", `scheme "http"`},
		{"NoScheme", "127.0.0.1:6379", "want redis://"},
		{"NoHost", "redis:///0", "no host"},
		{"BadPort", "redis://:hunter2secret@127.0.0.1:port/0", "invalid port"},
		{"BadDB", "redis://:hunter2secret@127.0.0.1:6379/x", "invalid database number"},
		{"UnknownOption", "redis://:hunter2secret@127.0.0.1:6379/0?frobnicate=1", "unexpected option"},
		{"Unix", "unix:///tmp/redis.sock", `scheme "unix"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redis.Open(t.Context(), tt.url)
			if got, want := custos.ErrorCode(err), custos.EINVALID; got != want {
				t.Fatalf("code=%q (%v), want %q", got, err, want)
			}
			if msg := custos.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Fatalf("message %q does not contain %q", msg, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2secret") {
				t.Fatalf("password leaked: %v", err)
			}
		})
	}
}

// proxy forwards TCP connections to a target until closed, so a test can
// make a working Redis disappear.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// startProxy listens on a loopback port and forwards to target.
func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	tb.Cleanup(p.Close)
	return p
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
	}
}

// Close stops listening and cuts every forwarded connection.
func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Ensure hits against a Redis that has stopped are EUNAVAILABLE (wrapping
// the cause) and name the host.
func TestHit_ErrUnavailable(t *testing.T) {
	u, err := neturl.Parse(storetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	s := MustOpen(t, u.String())
	key := randomKey(t)
	if _, _, err := s.Hit(t.Context(), key, time.Minute); err != nil {
		t.Fatalf("Hit through the proxy: %v", err)
	}

	p.Close() // Redis "stops"
	for _, call := range []struct {
		name string
		fn   func() error
	}{
		{"Hit", func() error { _, _, err := s.Hit(t.Context(), key, time.Minute); return err }},
		{"Peek", func() error { _, _, err := s.Peek(t.Context(), key); return err }},
		{"Ping", func() error { return s.Ping(t.Context()) }},
	} {
		err := call.fn()
		if got, want := custos.ErrorCode(err), custos.EUNAVAILABLE; got != want {
			t.Fatalf("%s: code=%q (%v), want %q", call.name, got, err, want)
		}
		if !strings.Contains(custos.ErrorMessage(err), u.Host) {
			t.Fatalf("%s: message %q does not name the host", call.name, custos.ErrorMessage(err))
		}
		if w, ok := err.(interface{ Unwrap() []error }); !ok || len(w.Unwrap()) != 2 {
			t.Fatalf("%s: %v does not wrap its cause", call.name, err)
		}
	}
}

// Ensure a counter lives at custos:rl:<key> with the window as its expiry.
func TestKeyPrefix(t *testing.T) {
	rawURL := storetest.RedisURL(t)
	s := MustOpen(t, rawURL)
	key := randomKey(t)
	for range 2 {
		if _, _, err := s.Hit(t.Context(), key, time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opts)
	defer rc.Close()
	if got, err := rc.Get(t.Context(), "custos:rl:"+key).Result(); err != nil || got != "2" {
		t.Fatalf("GET custos:rl:<key>=%q %v, want \"2\"", got, err)
	}
	ttl, err := rc.PTTL(t.Context(), "custos:rl:"+key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL=%s, want in (0, 1m]", ttl)
	}
}
