package custos

import (
	"context"
	"strings"
	"sync"
)

// Sources of a request, recorded in audit events.
const (
	SourceAPI = "api"
	SourceCLI = "cli"
	SourceMCP = "mcp"
)

// Caller is who makes a request: the authenticated API key and the identity
// of the device it comes from. Adapters build it; services read it from the
// context.
type Caller struct {
	Key         *APIKey
	Agent       string // agent name, e.g. "cli", "claude-code"
	Hostname    string
	MachineUser string // OS user on the calling machine
	IP          string // added by the server, never taken from the client
	Source      string // SourceCLI, SourceAPI or SourceMCP
	Model       string // X-AI-Model, if any
}

// OrgID returns the org of the caller's key, or "" without one.
func (c *Caller) OrgID() string {
	if c == nil || c.Key == nil {
		return ""
	}
	return c.Key.OrgID
}

// Fingerprint returns the device fingerprint of the caller.
func (c *Caller) Fingerprint() string {
	return DeviceFingerprint(c.MachineUser, c.Hostname, c.Agent, c.Key.ID, c.IP)
}

// DeviceFingerprint joins the parts of a device identity as
// user:hostname:agent:keyId:ip.
func DeviceFingerprint(user, hostname, agent, keyID, ip string) string {
	return strings.Join([]string{user, hostname, agent, keyID, ip}, ":")
}

type callerKey struct{}

// NewContextWithCaller returns a copy of ctx that carries c.
func NewContextWithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the caller in ctx, or nil.
func CallerFromContext(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

type requestKey struct{}

// requestScope holds values a service computes once per request.
type requestScope struct {
	mu   sync.Mutex
	vals map[any]any
}

// NewRequestContext marks ctx as one request. An adapter that serves a
// request with several service calls (authenticate, then act) uses it so the
// services can take one consistent look at their state for the whole
// request (see RequestMemo).
func NewRequestContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestKey{}, &requestScope{vals: make(map[any]any, 2)})
}

// RequestMemo returns the value stored under key in ctx's request, computing
// it with fn on first use. Without a request in ctx it calls fn every time.
func RequestMemo[T any](ctx context.Context, key any, fn func() (T, error)) (T, error) {
	rs, _ := ctx.Value(requestKey{}).(*requestScope)
	if rs == nil {
		return fn()
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if v, ok := rs.vals[key]; ok {
		return v.(T), nil
	}
	v, err := fn()
	if err == nil {
		rs.vals[key] = v
	}
	return v, err
}
