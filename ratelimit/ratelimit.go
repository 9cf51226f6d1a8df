// Package ratelimit is the rate-limit policy of the API: fixed-window limits
// per client IP, per API key, and on failed authentications per IP, counted
// in a custos.HotStore (memory for one server, Redis for replicas that must
// agree).
//
// The limiter never fails open: when the hot store errors (Redis down), the
// call is counted in a process-local memory store instead, and a warning is
// logged at most once every ten seconds. Nor does it fail a request because
// the store is down.
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/memory"
)

// Bounds of a limit's window.
const (
	MinWindow = time.Second
	MaxWindow = 24 * time.Hour
)

// WarnEvery is the least time between two warnings that the hot store failed.
const WarnEvery = 10 * time.Second

// Limit allows N events per fixed Window. A zero N turns the limit off.
type Limit struct {
	N      int64
	Window time.Duration
}

// Off reports whether the limit is turned off.
func (l Limit) Off() bool { return l.N <= 0 }

// String returns the limit in the form ParseLimit reads: "3000/1m", or "off".
func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return strconv.FormatInt(l.N, 10) + "/" + formatWindow(l.Window)
}

// Set parses s into l, so a *Limit is a flag.Value.
func (l *Limit) Set(s string) error {
	v, err := ParseLimit(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Validate checks an enabled limit: its window lies within MinWindow and
// MaxWindow. Returns EINVALID otherwise.
func (l Limit) Validate() error {
	if l.Off() {
		return nil
	}
	if l.Window < MinWindow || l.Window > MaxWindow {
		return custos.Errorf(custos.EINVALID, "invalid rate limit %s: the window must be between %s and %s",
			l, formatWindow(MinWindow), formatWindow(MaxWindow))
	}
	return nil
}

// ParseLimit reads a limit: "N/window" with N a positive integer and window a
// Go duration ("3000/1m", "50/1s", "20/10m"; a bare unit means one of it:
// "50/s"), or "off" or "0" for no limit. Returns EINVALID with the reason.
func ParseLimit(s string) (Limit, error) {
	in := strings.TrimSpace(s)
	if in == "off" || in == "0" {
		return Limit{}, nil
	}
	bad := func(reason string) (Limit, error) {
		return Limit{}, custos.Errorf(custos.EINVALID,
			"invalid rate limit %q: %s; want N/window like 3000/1m or 50/1s, or off", clip(in, 40), reason)
	}
	if in == "" {
		return bad("empty")
	}
	ns, ws, ok := strings.Cut(in, "/")
	if !ok {
		return bad("no window")
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	switch {
	case err != nil && strings.Contains(err.Error(), "range"):
		return bad("the count is too large")
	case err != nil || strings.HasPrefix(ns, "+"):
		return bad(fmt.Sprintf("the count %q is not a whole number", clip(ns, 20)))
	case n <= 0:
		return bad("the count must be at least 1 (use off to turn the limit off)")
	}
	switch ws {
	case "s", "m", "h":
		ws = "1" + ws
	}
	w, err := time.ParseDuration(ws)
	if err != nil {
		return bad(fmt.Sprintf("the window %q is not a duration such as 1s, 1m or 10m", clip(ws, 20)))
	}
	if w < MinWindow || w > MaxWindow {
		return bad(fmt.Sprintf("the window must be between %s and %s", formatWindow(MinWindow), formatWindow(MaxWindow)))
	}
	return Limit{N: n, Window: w}, nil
}

// Config is the limits the API enforces. A zero Limit turns one off.
type Config struct {
	PerKey            Limit // requests per authenticated API key
	PerIP             Limit // requests per client IP, checked before authentication
	AuthFailuresPerIP Limit // failed authentications per client IP; past it, the IP is refused
	// Namespace prefixes the per-IP and per-key counters, so a second
	// limiter (the model gateway's, with stricter limits) counts on its
	// own. Failed authentications are counted together whatever it says.
	Namespace string
}

// DefaultConfig returns the defaults: 3000 requests a minute per key, 6000 a
// minute per IP, and 20 failed authentications per IP in ten minutes.
func DefaultConfig() Config {
	return Config{
		PerKey:            Limit{N: 3000, Window: time.Minute},
		PerIP:             Limit{N: 6000, Window: time.Minute},
		AuthFailuresPerIP: Limit{N: 20, Window: 10 * time.Minute},
	}
}

// Validate checks every limit. Returns EINVALID naming the field.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		l    Limit
	}{{"PerKey", c.PerKey}, {"PerIP", c.PerIP}, {"AuthFailuresPerIP", c.AuthFailuresPerIP}} {
		if err := f.l.Validate(); err != nil {
			return custos.Errorf(custos.EINVALID, "ratelimit: %s: %s", f.name, custos.ErrorMessage(err))
		}
	}
	return nil
}

// Limiter enforces a Config. It is safe for concurrent use.
type Limiter struct {
	hot    custos.HotStore
	local  *memory.Store // when hot fails; and hot itself when none is given
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	lastWarn time.Time
}

// Key prefixes of the counters in the hot store.
const (
	prefixIP       = "ip:"
	prefixKey      = "key:"
	prefixAuthFail = "authfail:"
)

// New returns a limiter that enforces cfg, counting in hot. A nil hot counts
// in process memory; a nil logger means slog.Default(). cfg should pass
// Validate; a window out of bounds is clamped to MinWindow or MaxWindow, so
// a bad config never turns a limit off.
func New(hot custos.HotStore, cfg Config, logger *slog.Logger) *Limiter {
	return NewWithClock(hot, cfg, logger, time.Now)
}

// NewWithClock is New with the clock of the fallback store and of the
// warning throttle injected, for tests.
func NewWithClock(hot custos.HotStore, cfg Config, logger *slog.Logger, now func() time.Time) *Limiter {
	if logger == nil {
		logger = slog.Default()
	}
	for _, lim := range []*Limit{&cfg.PerKey, &cfg.PerIP, &cfg.AuthFailuresPerIP} {
		if !lim.Off() {
			lim.Window = min(max(lim.Window, MinWindow), MaxWindow)
		}
	}
	l := &Limiter{local: memory.NewWithClock(now), cfg: cfg, logger: logger, now: now}
	l.hot = hot
	if hot == nil {
		l.hot = l.local
	}
	return l
}

// Config returns the limits the limiter enforces.
func (l *Limiter) Config() Config { return l.cfg }

// AllowIP counts one request from ip against the per-IP limit. If the limit
// is exceeded it returns ok false and the time until the window ends.
func (l *Limiter) AllowIP(ctx context.Context, ip string) (retryAfter time.Duration, ok bool) {
	return l.allow(ctx, l.cfg.PerIP, l.cfg.Namespace+prefixIP+ipKey(ip))
}

// AllowKey counts one request of API key keyID against the per-key limit. If
// the limit is exceeded it returns ok false and the time until the window
// ends.
func (l *Limiter) AllowKey(ctx context.Context, keyID string) (retryAfter time.Duration, ok bool) {
	return l.allow(ctx, l.cfg.PerKey, l.cfg.Namespace+prefixKey+keyID)
}

// AuthBlocked reports whether ip has failed authentication as many times as
// the limit allows in the current window, and if so how long until that
// window ends. A blocked ip is refused before its token is even checked. It
// counts nothing.
func (l *Limiter) AuthBlocked(ctx context.Context, ip string) (retryAfter time.Duration, blocked bool) {
	lim := l.cfg.AuthFailuresPerIP
	if lim.Off() {
		return 0, false
	}
	key := prefixAuthFail + ipKey(ip)
	var (
		count int64
		reset time.Duration
		err   error
	)
	count, reset, err = l.hot.Peek(ctx, key)
	if err != nil {
		l.warn(err)
		count, reset, _ = l.local.Peek(ctx, key)
	}
	if count >= lim.N {
		return reset, true
	}
	return 0, false
}

// AuthFailed counts one failed authentication from ip.
func (l *Limiter) AuthFailed(ctx context.Context, ip string) {
	lim := l.cfg.AuthFailuresPerIP
	if lim.Off() {
		return
	}
	l.hit(ctx, prefixAuthFail+ipKey(ip), lim.Window)
}

// allow counts one event against lim under key.
func (l *Limiter) allow(ctx context.Context, lim Limit, key string) (time.Duration, bool) {
	if lim.Off() {
		return 0, true
	}
	count, reset := l.hit(ctx, key, lim.Window)
	if count > lim.N {
		return reset, false
	}
	return 0, true
}

// hit counts in the hot store, or in the local one if the hot store fails.
func (l *Limiter) hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration) {
	count, reset, err := l.hot.Hit(ctx, key, window)
	if err == nil {
		return count, reset
	}
	l.warn(err)
	count, reset, err = l.local.Hit(ctx, key, window)
	if err != nil { // only for arguments no caller passes: an empty key
		l.logger.Error("rate limit: local counter failed", slog.String("error", err.Error()))
		return 0, 0
	}
	return count, reset
}

// warn logs that the hot store failed, at most once every WarnEvery.
func (l *Limiter) warn(err error) {
	now := l.now()
	l.mu.Lock()
	if !l.lastWarn.IsZero() && now.Sub(l.lastWarn) < WarnEvery {
		l.mu.Unlock()
		return
	}
	l.lastWarn = now
	l.mu.Unlock()
	l.logger.Warn("rate limit store unavailable; counting in this process only until it is back",
		slog.String("error", err.Error()))
}

// ipKey is the counter key of a client IP: IPv4 addresses as they are
// (IPv4-mapped IPv6 unmapped first), IPv6 addresses by their /64 prefix, the
// smallest block a single client is usually given.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return clip(ip, 64)
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// formatWindow renders a duration without the trailing zero units Go adds:
// 1m, 10m, 1h, 1h30m, 90s.
func formatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// RetryAfterSeconds rounds a retry delay up to whole seconds, at least 1, for
// a Retry-After header.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= time.Second {
		return 1
	}
	return int64(math.Ceil(d.Seconds()))
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
