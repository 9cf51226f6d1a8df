// Package redis is the custos.HotStore that replicas share: fixed-window
// counters in Redis, each hit one atomic Lua script (INCR, and PEXPIRE on
// the first hit of a window), so any number of `custos serve` processes count
// together.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/custos-dev/custos"
	goredis "github.com/redis/go-redis/v9"
)

// KeyPrefix starts every key the store writes.
const KeyPrefix = "custos:rl:"

// Timeouts used when the URL does not set its own (dial_timeout,
// read_timeout, write_timeout): a rate-limit check must not hang a request.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = time.Second
	DefaultWriteTimeout = time.Second
	openTimeout         = 5 * time.Second
)

// hitScript counts one hit: it starts the window on the first hit (and heals
// a key that somehow has no expiry) and returns {count, milliseconds left}.
var hitScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// peekScript reads a counter and its time left without changing either.
var peekScript = goredis.NewScript(`
local n = redis.call('GET', KEYS[1])
if not n then
	return {0, 0}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	ttl = 0
end
return {tonumber(n), ttl}
`)

// Store is a custos.HotStore in Redis.
type Store struct {
	client    *goredis.Client
	addr      string // host:port, for messages; never the password
	closeOnce sync.Once
	closeErr  error
}

var _ custos.HotStore = (*Store)(nil)

// Open connects to the Redis server at url (redis://[user:password@]host:port/db
// or rediss:// for TLS; query parameters as go-redis's ParseURL takes them)
// and pings it. Returns EINVALID for a malformed URL and EUNAVAILABLE if
// the server does not answer. Messages name the host, never the password.
func Open(ctx context.Context, url string) (*Store, error) {
	opts, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	s := &Store{client: goredis.NewClient(opts), addr: opts.Addr}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		_ = s.client.Close()
		return nil, fmt.Errorf("%w: %w", custos.Errorf(custos.EUNAVAILABLE,
			"cannot reach Redis at %s: %s", s.addr, scrub(err.Error(), opts.Password)), err)
	}
	return s, nil
}

// parseURL parses and checks a Redis URL and fills in the defaults of this
// package: short timeouts, one dial attempt per connection, no retries of a
// non-idempotent INCR unless the URL asks for them, TLS 1.2 at least.
func parseURL(rawURL string) (*goredis.Options, error) {
	password := ""
	u, perr := url.Parse(rawURL)
	if perr == nil && u.User != nil {
		password, _ = u.User.Password()
	}
	invalid := func(reason string) error {
		return custos.Errorf(custos.EINVALID,
			"invalid Redis URL: %s; want redis://[user:password@]host:port/db or rediss://…", scrub(reason, password))
	}
	if perr != nil {
		var ue *url.Error
		if errors.As(perr, &ue) {
			perr = ue.Err // url.Error repeats the whole URL, password included
		}
		return nil, invalid(perr.Error())
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, invalid(fmt.Sprintf("scheme %q", clip(u.Scheme, 16)))
	}
	if u.Host == "" {
		return nil, invalid("no host")
	}
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, invalid(strings.TrimPrefix(err.Error(), "redis: "))
	}
	q := u.Query()
	if !q.Has("dial_timeout") {
		opts.DialTimeout = DefaultDialTimeout
	}
	if !q.Has("read_timeout") {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if !q.Has("write_timeout") {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if !q.Has("max_retries") {
		opts.MaxRetries = -1 // a retried INCR could count one hit twice
	}
	opts.DialerRetries = 1 // fail fast; the limiter counts locally meanwhile
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion < tls.VersionTLS12 {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return opts, nil
}

// Hit adds one to counter key in its current fixed window, in one atomic
// script, and returns the count and the time until the window ends. Returns
// EINVALID for an empty key or a window under a millisecond, and
// EUNAVAILABLE (wrapping the cause) when Redis fails.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	if err := validate(key, window); err != nil {
		return 0, 0, err
	}
	vals, err := hitScript.Run(ctx, s.client, []string{KeyPrefix + key}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, s.unavailable(err)
	}
	if len(vals) != 2 {
		return 0, 0, s.unavailable(fmt.Errorf("unexpected script result %v", vals))
	}
	return vals[0], time.Duration(vals[1]) * time.Millisecond, nil
}

// Peek returns the count of key in its current window and the time until
// that window ends, without adding to it: 0 and 0 when no window is open.
// Returns EINVALID for an empty key and EUNAVAILABLE when Redis fails.
func (s *Store) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	if err := validate(key, time.Millisecond); err != nil {
		return 0, 0, err
	}
	vals, err := peekScript.Run(ctx, s.client, []string{KeyPrefix + key}).Int64Slice()
	if err != nil {
		return 0, 0, s.unavailable(err)
	}
	if len(vals) != 2 {
		return 0, 0, s.unavailable(fmt.Errorf("unexpected script result %v", vals))
	}
	return vals[0], time.Duration(vals[1]) * time.Millisecond, nil
}

// Ping checks that Redis answers (for /readyz). Returns EUNAVAILABLE if not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// Close closes the connections to Redis. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.client.Close() })
	return s.closeErr
}

// unavailable wraps a Redis failure as EUNAVAILABLE naming the host.
func (s *Store) unavailable(err error) error {
	return fmt.Errorf("%w: %w", custos.Errorf(custos.EUNAVAILABLE, "Redis at %s is unavailable", s.addr), err)
}

// validate checks the arguments every HotStore method shares.
func validate(key string, window time.Duration) error {
	switch {
	case key == "":
		return custos.Errorf(custos.EINVALID, "hot store: empty counter key")
	case window < time.Millisecond:
		return custos.Errorf(custos.EINVALID, "hot store: window %s is under 1ms", window)
	}
	return nil
}

// scrub removes password from a message.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "xxxxx")
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
