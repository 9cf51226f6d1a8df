package ratelimit_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/store/memory"
)

// Clock is a fake clock that tests move by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

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

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustLimiter returns a limiter over a memory store on a fake clock.
func MustLimiter(tb testing.TB, cfg ratelimit.Config) (*ratelimit.Limiter, *Clock) {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	clock := NewClock()
	return ratelimit.NewWithClock(memory.NewWithClock(clock.Now), cfg, slog.New(slog.DiscardHandler), clock.Now), clock
}

// Ensure ParseLimit reads the documented forms and rejects the rest with
// EINVALID and a clear reason.
func TestParseLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ratelimit.Limit
		err  string // a part of the error message; "" for success
	}{
		{"3000/1m", ratelimit.Limit{N: 3000, Window: time.Minute}, ""},
		{"50/1s", ratelimit.Limit{N: 50, Window: time.Second}, ""},
		{"20/10m", ratelimit.Limit{N: 20, Window: 10 * time.Minute}, ""},
		{" 5/1h30m ", ratelimit.Limit{N: 5, Window: 90 * time.Minute}, ""},
		{"50/s", ratelimit.Limit{N: 50, Window: time.Second}, ""},
		{"7/h", ratelimit.Limit{N: 7, Window: time.Hour}, ""},
		{"1/24h", ratelimit.Limit{N: 1, Window: 24 * time.Hour}, ""},
		{"off", ratelimit.Limit{}, ""},
		{"0", ratelimit.Limit{}, ""},
		{"", ratelimit.Limit{}, "empty"},
		{"abc", ratelimit.Limit{}, "no window"},
		{"100", ratelimit.Limit{}, "no window"},
		{"/1m", ratelimit.Limit{}, "not a whole number"},
		{"1.5/1m", ratelimit.Limit{}, "not a whole number"},
		{"+5/1m", ratelimit.Limit{}, "not a whole number"},
		{"0/1m", ratelimit.Limit{}, "at least 1"},
		{"-3/1m", ratelimit.Limit{}, "at least 1"},
		{"99999999999999999999/1m", ratelimit.Limit{}, "too large"},
		{"10/", ratelimit.Limit{}, "not a duration"},
		{"10/1x", ratelimit.Limit{}, "not a duration"},
		{"10/minute", ratelimit.Limit{}, "not a duration"},
		{"10/500ms", ratelimit.Limit{}, "between 1s and 24h"},
		{"10/0s", ratelimit.Limit{}, "between 1s and 24h"},
		{"10/48h", ratelimit.Limit{}, "between 1s and 24h"},
		{"OFF", ratelimit.Limit{}, "no window"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ratelimit.ParseLimit(tt.in)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ParseLimit(%q): %v", tt.in, err)
				}
				if got != tt.want {
					t.Fatalf("ParseLimit(%q)=%+v, want %+v", tt.in, got, tt.want)
				}
				return
			}
			if got, want := custos.ErrorCode(err), custos.EINVALID; got != want {
				t.Fatalf("ParseLimit(%q) code=%q (%v), want %q", tt.in, got, err, want)
			}
			if msg := custos.ErrorMessage(err); !strings.Contains(msg, tt.err) || !strings.Contains(msg, "want N/window") {
				t.Fatalf("ParseLimit(%q) message %q, want it to contain %q and the expected form", tt.in, msg, tt.err)
			}
		})
	}
}

// Ensure String renders what ParseLimit reads back, and *Limit is a flag.Value.
func TestLimitString(t *testing.T) {
	for _, tt := range []struct {
		l    ratelimit.Limit
		want string
	}{
		{ratelimit.Limit{N: 3000, Window: time.Minute}, "3000/1m"},
		{ratelimit.Limit{N: 20, Window: 10 * time.Minute}, "20/10m"},
		{ratelimit.Limit{N: 50, Window: time.Second}, "50/1s"},
		{ratelimit.Limit{N: 1, Window: time.Hour}, "1/1h"},
		{ratelimit.Limit{N: 5, Window: 90 * time.Minute}, "5/1h30m"},
		{ratelimit.Limit{N: 5, Window: 90 * time.Second}, "5/1m30s"},
		{ratelimit.Limit{}, "off"},
	} {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("String(%+v)=%q, want %q", tt.l, got, tt.want)
		}
		back, err := ratelimit.ParseLimit(tt.l.String())
		if err != nil || back != tt.l {
			t.Errorf("ParseLimit(%q)=%+v %v, want %+v", tt.l.String(), back, err, tt.l)
		}
	}

	cfg := ratelimit.DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	fs.Var(&cfg.PerKey, "rate-key", "requests per key")
	fs.Var(&cfg.PerIP, "rate-ip", "requests per IP")
	if err := fs.Parse([]string{"--rate-key=10/1s", "--rate-ip=off"}); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.PerKey, (ratelimit.Limit{N: 10, Window: time.Second}); got != want {
		t.Fatalf("PerKey=%+v, want %+v", got, want)
	}
	if !cfg.PerIP.Off() {
		t.Fatalf("PerIP=%+v, want off", cfg.PerIP)
	}
	if err := fs.Parse([]string{"--rate-key=fast"}); err == nil || !strings.Contains(err.Error(), "rate-key") {
		t.Fatalf("bad flag value: err=%v, want one naming rate-key", err)
	}
}

// Ensure the defaults are the documented ones and valid, and Validate names
// a bad field.
func TestConfig(t *testing.T) {
	cfg := ratelimit.DefaultConfig()
	if got, want := fmt.Sprint(cfg.PerKey, " ", cfg.PerIP, " ", cfg.AuthFailuresPerIP), "3000/1m 6000/1m 20/10m"; got != want {
		t.Fatalf("DefaultConfig=%s, want %s", got, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(DefaultConfig): %v", err)
	}
	if err := (ratelimit.Config{}).Validate(); err != nil {
		t.Fatalf("Validate(all off): %v", err)
	}
	cfg.AuthFailuresPerIP.Window = 0
	err := cfg.Validate()
	if custos.ErrorCode(err) != custos.EINVALID || !strings.Contains(custos.ErrorMessage(err), "AuthFailuresPerIP") {
		t.Fatalf("Validate=%v, want EINVALID naming AuthFailuresPerIP", err)
	}
}

// step is one call in a limiter scenario.
type step struct {
	advance   time.Duration // move the clock first
	call      string        // ip, key, blocked, failed
	arg       string
	wantOK    bool          // ip, key: allowed; blocked: not blocked
	wantRetry time.Duration // when refused
}

// Ensure the limiter enforces each limit over its window, table-driven over
// a memory store and a fake clock.
func TestLimiter(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   ratelimit.Config
		steps []step
	}{
		{
			name: "PerIP",
			cfg:  ratelimit.Config{PerIP: ratelimit.Limit{N: 3, Window: time.Minute}},
			steps: []step{
				{0, "ip", "10.0.0.1", true, 0},
				{0, "ip", "10.0.0.1", true, 0},
				{10 * time.Second, "ip", "10.0.0.1", true, 0},
				{5 * time.Second, "ip", "10.0.0.1", false, 45 * time.Second},
				{0, "ip", "10.0.0.2", true, 0}, // another IP is unaffected
				{0, "key", "key_0123456789abcdef", true, 0},
				{44 * time.Second, "ip", "10.0.0.1", false, time.Second},
				{time.Second, "ip", "10.0.0.1", true, 0}, // the window has ended
			},
		},
		{
			name: "PerKey",
			cfg:  ratelimit.Config{PerKey: ratelimit.Limit{N: 2, Window: time.Second}},
			steps: []step{
				{0, "key", "key_a", true, 0},
				{0, "key", "key_a", true, 0},
				{0, "key", "key_a", false, time.Second},
				{0, "key", "key_b", true, 0},
				{0, "ip", "10.0.0.1", true, 0},
				{time.Second, "key", "key_a", true, 0},
			},
		},
		{
			name: "AuthFailures",
			cfg:  ratelimit.Config{AuthFailuresPerIP: ratelimit.Limit{N: 2, Window: 10 * time.Minute}},
			steps: []step{
				{0, "blocked", "10.0.0.1", true, 0},
				{0, "failed", "10.0.0.1", true, 0},
				{0, "blocked", "10.0.0.1", true, 0},
				{time.Minute, "failed", "10.0.0.1", true, 0},
				{0, "blocked", "10.0.0.1", false, 9 * time.Minute},
				{0, "blocked", "10.0.0.1", false, 9 * time.Minute}, // checking counts nothing
				{0, "blocked", "10.0.0.2", true, 0},
				{0, "ip", "10.0.0.1", true, 0}, // per-IP limit off
				{9 * time.Minute, "blocked", "10.0.0.1", true, 0},
			},
		},
		{
			name: "IPv6Prefix",
			cfg:  ratelimit.Config{PerIP: ratelimit.Limit{N: 2, Window: time.Minute}},
			steps: []step{
				{0, "ip", "2001:db8:1:2::1", true, 0},
				{0, "ip", "2001:db8:1:2:ffff::9", true, 0}, // the same /64
				{0, "ip", "2001:db8:1:2::abcd", false, time.Minute},
				{0, "ip", "2001:db8:1:3::1", true, 0}, // another /64
				{0, "ip", "::ffff:192.0.2.7", true, 0},
				{0, "ip", "192.0.2.7", true, 0}, // the same address, unmapped
				{0, "ip", "192.0.2.7", false, time.Minute},
			},
		},
		{
			name: "Off",
			cfg:  ratelimit.Config{},
			steps: []step{
				{0, "ip", "10.0.0.1", true, 0},
				{0, "key", "key_a", true, 0},
				{0, "failed", "10.0.0.1", true, 0},
				{0, "blocked", "10.0.0.1", true, 0},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := MustLimiter(t, tt.cfg)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				var (
					retry time.Duration
					ok    = true
				)
				switch s.call {
				case "ip":
					retry, ok = l.AllowIP(t.Context(), s.arg)
				case "key":
					retry, ok = l.AllowKey(t.Context(), s.arg)
				case "blocked":
					var blocked bool
					retry, blocked = l.AuthBlocked(t.Context(), s.arg)
					ok = !blocked
				case "failed":
					l.AuthFailed(t.Context(), s.arg)
				}
				if ok != s.wantOK || retry != s.wantRetry {
					t.Fatalf("step %d (%s %s): ok=%v retry=%s, want %v %s", i, s.call, s.arg, ok, retry, s.wantOK, s.wantRetry)
				}
			}
		})
	}
}

// SpyStore is a HotStore that fails while Down is set and counts its calls.
type SpyStore struct {
	*memory.Store
	Down  atomic.Bool
	Calls atomic.Int64
}

func (s *SpyStore) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	s.Calls.Add(1)
	if s.Down.Load() {
		return 0, 0, fmt.Errorf("%w: %w", custos.Errorf(custos.EUNAVAILABLE, "Redis at 127.0.0.1:6379 is unavailable"), errors.New("connection refused"))
	}
	return s.Store.Hit(ctx, key, window)
}

func (s *SpyStore) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	s.Calls.Add(1)
	if s.Down.Load() {
		return 0, 0, custos.Errorf(custos.EUNAVAILABLE, "Redis at 127.0.0.1:6379 is unavailable")
	}
	return s.Store.Peek(ctx, key)
}

// Ensure a failing hot store neither turns the limits off nor fails a call:
// counting moves to process memory, with one warning per ten seconds.
func TestFallback(t *testing.T) {
	clock := NewClock()
	hot := &SpyStore{Store: memory.NewWithClock(clock.Now)}
	logs := &syncBuffer{}
	cfg := ratelimit.Config{
		PerIP:             ratelimit.Limit{N: 2, Window: time.Minute},
		PerKey:            ratelimit.Limit{N: 2, Window: time.Minute},
		AuthFailuresPerIP: ratelimit.Limit{N: 2, Window: time.Minute},
	}
	l := ratelimit.NewWithClock(hot, cfg, slog.New(slog.NewJSONHandler(logs, nil)), clock.Now)
	warnings := func() int { return strings.Count(logs.String(), "rate limit store unavailable") }

	hot.Down.Store(true)
	for i, want := range []bool{true, true, false, false} {
		if _, ok := l.AllowIP(t.Context(), "10.0.0.1"); ok != want {
			t.Fatalf("AllowIP #%d with the store down: ok=%v, want %v", i+1, ok, want)
		}
	}
	for i, want := range []bool{true, true, false} {
		if _, ok := l.AllowKey(t.Context(), "key_a"); ok != want {
			t.Fatalf("AllowKey #%d with the store down: ok=%v, want %v", i+1, ok, want)
		}
	}
	l.AuthFailed(t.Context(), "10.0.0.9")
	l.AuthFailed(t.Context(), "10.0.0.9")
	if _, blocked := l.AuthBlocked(t.Context(), "10.0.0.9"); !blocked {
		t.Fatal("AuthBlocked with the store down: not blocked after 2 failures")
	}
	if got, want := warnings(), 1; got != want {
		t.Fatalf("warnings=%d, want %d: %s", got, want, logs)
	}
	if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Fatalf("warning lacks the cause or level: %s", logs)
	}

	clock.Advance(9 * time.Second)
	l.AllowIP(t.Context(), "10.0.0.3")
	if got, want := warnings(), 1; got != want {
		t.Fatalf("warnings 9s later=%d, want %d", got, want)
	}
	clock.Advance(time.Second)
	l.AllowIP(t.Context(), "10.0.0.3")
	if got, want := warnings(), 2; got != want {
		t.Fatalf("warnings 10s later=%d, want %d", got, want)
	}

	// The store is back: counting returns to it.
	hot.Down.Store(false)
	before := hot.Calls.Load()
	if _, ok := l.AllowIP(t.Context(), "10.0.0.4"); !ok {
		t.Fatal("AllowIP after recovery refused")
	}
	if count, _, _ := hot.Store.Peek(t.Context(), "ip:10.0.0.4"); count != 1 || hot.Calls.Load() != before+1 {
		t.Fatalf("the recovered store was not used: count=%d", count)
	}
}

// Ensure a limit that is off never touches the store.
func TestOffTouchesNothing(t *testing.T) {
	hot := &SpyStore{Store: memory.New()}
	l := ratelimit.New(hot, ratelimit.Config{}, nil)
	l.AllowIP(t.Context(), "10.0.0.1")
	l.AllowKey(t.Context(), "key_a")
	l.AuthFailed(t.Context(), "10.0.0.1")
	l.AuthBlocked(t.Context(), "10.0.0.1")
	if got := hot.Calls.Load(); got != 0 {
		t.Fatalf("store calls=%d, want 0", got)
	}
}

// Ensure a nil store counts in memory, auth-failure blocking included.
func TestStores(t *testing.T) {
	cfg := ratelimit.Config{PerIP: ratelimit.Limit{N: 1, Window: time.Minute}, AuthFailuresPerIP: ratelimit.Limit{N: 1, Window: time.Minute}}
	for name, hot := range map[string]custos.HotStore{"Nil": nil} {
		t.Run(name, func(t *testing.T) {
			l := ratelimit.New(hot, cfg, nil)
			if _, ok := l.AllowIP(t.Context(), "10.0.0.1"); !ok {
				t.Fatal("first request refused")
			}
			if _, ok := l.AllowIP(t.Context(), "10.0.0.1"); ok {
				t.Fatal("second request allowed")
			}
			l.AuthFailed(t.Context(), "10.0.0.1")
			if retry, blocked := l.AuthBlocked(t.Context(), "10.0.0.1"); !blocked || retry <= 0 {
				t.Fatalf("AuthBlocked=%s %v, want blocked", retry, blocked)
			}
		})
	}
}

// Ensure a window out of bounds is clamped by New, never turning a limit off.
func TestClamp(t *testing.T) {
	l := ratelimit.New(nil, ratelimit.Config{PerKey: ratelimit.Limit{N: 1, Window: time.Nanosecond}}, nil)
	if got, want := l.Config().PerKey.Window, ratelimit.MinWindow; got != want {
		t.Fatalf("window=%s, want %s", got, want)
	}
	l.AllowKey(t.Context(), "key_a")
	if _, ok := l.AllowKey(t.Context(), "key_a"); ok {
		t.Fatal("second request allowed under a 1/1ns limit clamped to 1/1s")
	}
}

// Ensure concurrent callers get exactly N allowances per window.
func TestConcurrent(t *testing.T) {
	l, _ := MustLimiter(t, ratelimit.Config{PerKey: ratelimit.Limit{N: 100, Window: time.Minute}})
	var (
		wg      sync.WaitGroup
		allowed atomic.Int64
	)
	for range 20 {
		wg.Go(func() {
			for range 20 {
				if _, ok := l.AllowKey(t.Context(), "key_a"); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got, want := allowed.Load(), int64(100); got != want {
		t.Fatalf("allowed=%d, want %d", got, want)
	}
}

// Ensure Retry-After seconds round up and are at least 1.
func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1}, {-time.Second, 1}, {time.Millisecond, 1}, {time.Second, 1},
		{time.Second + time.Millisecond, 2}, {40 * time.Second, 40}, {10 * time.Minute, 600},
	} {
		if got := ratelimit.RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("RetryAfterSeconds(%s)=%d, want %d", tt.d, got, tt.want)
		}
	}
}
