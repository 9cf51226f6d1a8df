// Package gateway is the model gateway of custos: an OpenAI- and
// Anthropic-compatible HTTP front that authenticates the caller with its
// custos API key, applies the privacy mode, redacts secrets and personal
// data from the request, reserves the request's worst case against the
// token budgets, forwards it through the egress client to the configured
// provider with the team's own provider key (falling back to the next
// provider when one fails before the first byte), and returns the answer
// (streamed or not) with the placeholders restored. It keeps usage metadata
// only, never content.
package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/redact"
)

// Kind is the wire format a provider speaks.
type Kind string

// Provider kinds.
const (
	// KindOpenAI is the OpenAI chat completions format, also spoken by
	// Google's OpenAI-compatible endpoint and local servers.
	KindOpenAI Kind = "openai"
	// KindAnthropic is the Anthropic messages format.
	KindAnthropic Kind = "anthropic"
)

// Provider is one upstream model provider.
type Provider struct {
	// Name identifies the provider in usage records and model listings.
	Name string
	// Kind is the wire format of the provider.
	Kind Kind
	// BaseURL is the API root as the provider's SDK takes it: for the
	// openai kind it includes the version ("https://api.openai.com/v1",
	// paths "/chat/completions" are appended); for the anthropic kind it
	// does not ("https://api.anthropic.com", "/v1/messages" is appended).
	BaseURL string
	// APIKey is the team's key for the provider. It replaces the caller's
	// custos key on every forwarded request.
	APIKey string
	// Models are the model names routed here: exact names, or prefixes
	// ending in "*".
	Models []string
	// Local marks a provider on the local network or machine. Only local
	// providers may be reached at non-public addresses, and they only at
	// non-public addresses.
	Local bool
}

// Default base URLs of the provider kinds of custos.ModelProvider.
var DefaultBaseURLs = map[string]string{
	custos.ProviderOpenAI:    "https://api.openai.com/v1",
	custos.ProviderAnthropic: "https://api.anthropic.com",
	custos.ProviderGoogle:    "https://generativelanguage.googleapis.com/v1beta/openai",
}

// FromModelProvider returns the gateway's view of a stored provider whose
// key, opened, is apiKey.
func FromModelProvider(p *custos.ModelProvider, apiKey string) Provider {
	g := Provider{Name: p.Name, Kind: KindOpenAI, BaseURL: p.BaseURL, APIKey: apiKey, Models: p.Models, Local: p.Local()}
	if p.Kind == custos.ProviderAnthropic || p.Kind == custos.ProviderLocalAnthropic {
		g.Kind = KindAnthropic
	}
	if g.BaseURL == "" {
		g.BaseURL = DefaultBaseURLs[p.Kind]
	}
	return g
}

// Setup is what the gateway serves for one org: its providers in routing
// order, its redaction engine (with the org's stored secret values as known
// values) and its privacy rules.
type Setup struct {
	Providers []Provider
	Engine    *redact.Engine // nil forwards requests unredacted (never to a cloud provider in sensitive mode)
	Privacy   []*custos.PrivacyRule
}

// Budgets reserves and settles tokens (custos.BudgetStore does).
type Budgets interface {
	ReserveBudget(ctx context.Context, orgID, keyID string, tokens int64, now time.Time) (*custos.Reservation, error)
	SettleBudget(ctx context.Context, r *custos.Reservation, used int64) error
}

// KnownHit reports stored secret values found in a request.
type KnownHit struct {
	Key      *custos.APIKey
	Names    []string // the secrets' names, never their values
	Blocked  bool     // the request was refused, not redacted
	Model    string
	Provider string
	IP       string
}

// OnSecret values: what the gateway does when a request holds the value of
// a stored secret.
const (
	OnSecretRedact = "redact" // replace it with a placeholder and forward
	OnSecretBlock  = "block"  // refuse the request with 403
)

// Config configures a gateway handler.
type Config struct {
	// Keys authenticates the caller's custos API key.
	Keys custos.KeyService
	// Resolve returns the setup of the caller's org. Nil means the static
	// setup of Providers and Engine for every caller.
	Resolve func(ctx context.Context, key *custos.APIKey) (*Setup, error)
	// Providers are routed by model name or prefix, in order; later
	// matches are fallbacks. Used when Resolve is nil.
	Providers []Provider
	// Engine redacts requests when Resolve is nil; nil forwards them
	// unchanged.
	Engine *redact.Engine
	// Egress is the outbound policy for cloud providers (AllowHosts,
	// ConnectTimeout; AllowPrivate only for an operator's internal
	// endpoint). Local providers get a client restricted to their own host
	// at non-public addresses. Offline, Timeout and HeaderTimeout are
	// ignored: they come from the privacy mode, TotalTimeout and
	// FirstByteTimeout.
	Egress egress.Config
	// Mode is the server's privacy floor: no request runs looser. "" means
	// custos.PrivacyNormal.
	Mode string
	// OnSecret is OnSecretRedact ("" too) or OnSecretBlock.
	OnSecret string
	// Budgets holds token budgets; nil means none.
	Budgets Budgets
	// Limiter applies the AI routes' rate limits; nil means none.
	Limiter *ratelimit.Limiter
	// OnUsage receives the usage of every request that reached routing;
	// nil drops it. It must not block.
	OnUsage func(*custos.UsageRecord)
	// OnAuth is told which key a request authenticated with (for the
	// server's access log); nil drops it.
	OnAuth func(r *http.Request, key *custos.APIKey)
	// OnKnown is told about stored secret values found in a request (to
	// audit and notify); nil drops it.
	OnKnown func(ctx context.Context, hit KnownHit)
	// Logger logs failures (never content); nil means slog.Default().
	Logger *slog.Logger
	// MaxBody bounds a request body; zero means DefaultMaxBody.
	MaxBody int64
	// FirstByteTimeout bounds the wait for a provider's response headers;
	// zero means DefaultFirstByteTimeout. TotalTimeout bounds a whole
	// forwarded request including a stream; zero means DefaultTotalTimeout.
	FirstByteTimeout, TotalTimeout time.Duration
	// BreakerFailures consecutive failures (connection errors, timeouts,
	// 5xx) open a provider's circuit for BreakerOpenFor; zero means the
	// defaults.
	BreakerFailures uint32
	BreakerOpenFor  time.Duration
	// DefaultMaxOutput is the output tokens reserved for a request that
	// sets no max_tokens; zero means 4096.
	DefaultMaxOutput int64
	// NoFindCache turns off the cache of findings of long strings (by
	// SHA-256, per engine and key) that spares re-scanning the history an
	// agent resends on every turn.
	NoFindCache bool
}

// Defaults of Config.
const (
	DefaultMaxBody          = 4 << 20
	DefaultFirstByteTimeout = 2 * time.Minute
	DefaultTotalTimeout     = 15 * time.Minute
	DefaultBreakerFailures  = 5
	DefaultBreakerOpenFor   = 30 * time.Second
	DefaultMaxOutput        = 4096
)

// wire is the format of the caller.
type wire int

const (
	wireOpenAI wire = iota
	wireAnthropic
)

// Handler is the gateway. It is an http.Handler.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	cloud *http.Client

	cache   *findCache // findings of long strings; nil when disabled
	catalog catalog    // providers' model listings, for GET /v1/models

	mu       sync.RWMutex
	locals   map[string]*http.Client // local provider host → client
	breakers map[string]*breaker     // provider identity → breaker
}

// NewHandler returns the gateway handler. It serves POST
// /v1/chat/completions, POST /v1/responses, POST /v1/embeddings and GET
// /v1/models (OpenAI format; /v1/models answers in Anthropic format when
// the request carries anthropic-version), POST /v1/messages and POST
// /v1/messages/count_tokens (Anthropic format). It fails if cfg.Egress is
// invalid.
func NewHandler(cfg Config) (*Handler, error) {
	h := &Handler{cfg: cfg, log: cfg.Logger, locals: map[string]*http.Client{}, breakers: map[string]*breaker{}}
	if !cfg.NoFindCache {
		h.cache = newFindCache()
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	c := &h.cfg
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.FirstByteTimeout <= 0 {
		c.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if c.TotalTimeout <= 0 {
		c.TotalTimeout = DefaultTotalTimeout
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerOpenFor <= 0 {
		c.BreakerOpenFor = DefaultBreakerOpenFor
	}
	if c.DefaultMaxOutput <= 0 {
		c.DefaultMaxOutput = DefaultMaxOutput
	}
	if c.Mode == "" {
		c.Mode = custos.PrivacyNormal
	}
	if custos.PrivacyRank(c.Mode) == 0 {
		return nil, custos.Errorf(custos.EINVALID, "gateway: unknown privacy mode %q (normal, sensitive or offline)", c.Mode)
	}
	if c.OnSecret == "" {
		c.OnSecret = OnSecretRedact
	}
	if c.OnSecret != OnSecretRedact && c.OnSecret != OnSecretBlock {
		return nil, custos.Errorf(custos.EINVALID, "gateway: on-secret must be redact or block, not %q", c.OnSecret)
	}
	ec := c.Egress
	ec.Offline = false
	ec.Timeout, ec.HeaderTimeout, ec.IdleConnsPerHost = c.TotalTimeout, c.FirstByteTimeout, 256
	cloud, err := egress.NewClient(ec)
	if err != nil {
		return nil, err
	}
	h.cloud = withoutTimeout(cloud)
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireOpenAI, routeChat)
	})
	h.mux.HandleFunc("POST /v1/embeddings", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireOpenAI, routeEmbeddings)
	})
	h.mux.HandleFunc("POST /v1/responses", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireOpenAI, routeResponses)
	})
	h.mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireAnthropic, routeMessages)
	})
	h.mux.HandleFunc("POST /v1/messages/count_tokens", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireAnthropic, routeCountTokens)
	})
	h.mux.HandleFunc("GET /v1/models", h.models)
	return h, nil
}

// ServeHTTP implements http.Handler. One request context memoizes what
// the services read once per request (the cache epoch), so authentication
// and the org's setup look at one snapshot.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r.WithContext(custos.NewRequestContext(r.Context())))
}

// writeError answers status and msg in the caller's format.
func writeError(w http.ResponseWriter, f wire, status int, msg string) {
	var body any
	if f == wireAnthropic {
		t := map[int]string{
			400: "invalid_request_error", 401: "authentication_error",
			403: "permission_error", 404: "not_found_error",
			413: "request_too_large", 429: "rate_limit_error",
			529: "overloaded_error",
		}[status]
		if t == "" {
			t = "api_error"
		}
		body = map[string]any{"type": "error", "error": map[string]any{"type": t, "message": msg}}
	} else {
		t, code := "invalid_request_error", any(nil)
		switch status {
		case 401:
			code = "invalid_api_key"
		case 403:
			t, code = "permission_error", "forbidden"
		case 404:
			code = "model_not_found"
		case 413:
			code = "request_too_large"
		case 429:
			t, code = "rate_limit_error", "rate_limit_exceeded"
		default:
			if status >= 500 {
				t = "api_error"
			}
		}
		body = map[string]any{"error": map[string]any{"message": msg, "type": t, "code": code, "param": nil}}
	}
	b, _ := marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// clientIP is the address of the peer (proxies' forwarding headers are not
// trusted, as in the API).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admit authenticates the caller and applies the rate limits, answering in
// the caller's format. It returns nil when it has answered.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, f wire) *custos.APIKey {
	lim, ip := h.cfg.Limiter, clientIP(r)
	refuse := func(retry time.Duration, msg string) {
		w.Header().Set("Retry-After", itoa(ratelimit.RetryAfterSeconds(retry)))
		writeError(w, f, http.StatusTooManyRequests, msg)
	}
	if lim != nil {
		if retry, ok := lim.AllowIP(r.Context(), ip); !ok {
			refuse(retry, "Rate limit exceeded: too many model requests from this address.")
			return nil
		}
		if retry, blocked := lim.AuthBlocked(r.Context(), ip); blocked {
			refuse(retry, "Rate limit exceeded: too many failed authentications from this address.")
			return nil
		}
	}
	key, msg := h.authenticate(r)
	if key == nil {
		if lim != nil {
			lim.AuthFailed(r.Context(), ip)
		}
		writeError(w, f, http.StatusUnauthorized, msg)
		return nil
	}
	if h.cfg.OnAuth != nil {
		h.cfg.OnAuth(r, key)
	}
	if lim != nil {
		if retry, ok := lim.AllowKey(r.Context(), key.ID); !ok {
			refuse(retry, "Rate limit exceeded: too many model requests for this API key.")
			return nil
		}
	}
	return key
}

// authenticate checks the caller's custos key: x-api-key or a bearer token.
func (h *Handler) authenticate(r *http.Request) (*custos.APIKey, string) {
	tok := r.Header.Get("x-api-key")
	if a := r.Header.Get("Authorization"); tok == "" && len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		tok = strings.TrimSpace(a[7:])
	}
	if tok == "" {
		return nil, "Missing custos API key: send it as the provider API key (Authorization: Bearer or x-api-key)."
	}
	if h.cfg.Keys == nil {
		return nil, "Invalid custos API key."
	}
	k, err := h.cfg.Keys.Authenticate(r.Context(), tok)
	if err != nil || k == nil {
		return nil, "Invalid custos API key."
	}
	return k, ""
}

// setup returns the caller's org setup.
func (h *Handler) setup(ctx context.Context, key *custos.APIKey) (*Setup, error) {
	if h.cfg.Resolve == nil {
		return &Setup{Providers: h.cfg.Providers, Engine: h.cfg.Engine}, nil
	}
	return h.cfg.Resolve(ctx, key)
}

// models lists the model names the caller may use: each provider's exact
// names, and the models its name patterns match in its own listing (see
// catalog.go; a cloud provider is not asked in offline mode).
func (h *Handler) models(w http.ResponseWriter, r *http.Request) {
	f := wireOpenAI
	if r.Header.Get("anthropic-version") != "" {
		f = wireAnthropic
	}
	key := h.admit(w, r, f)
	if key == nil {
		return
	}
	s, err := h.setup(r.Context(), key)
	if err != nil {
		h.log.Error("gateway: load the org's setup", "org_id", key.OrgID, "err", err)
		writeError(w, f, http.StatusServiceUnavailable, "custos could not load the gateway's configuration; try again.")
		return
	}
	mode, err := h.mode(s, key, r)
	if err != nil {
		writeError(w, f, http.StatusBadRequest, err.Error())
		return
	}
	var provs []*Provider
	for i := range s.Providers {
		if p := &s.Providers[i]; (f == wireAnthropic) == (p.Kind == KindAnthropic) {
			provs = append(provs, p)
		}
	}
	// The providers' listings, asked for at once.
	listed := make([][]string, len(provs))
	var wg sync.WaitGroup
	for i, p := range provs {
		if !p.patterned() || (!p.Local && mode == custos.PrivacyOffline) {
			continue
		}
		wg.Go(func() { listed[i], _ = h.providerModels(r.Context(), key.OrgID, p, mode) })
	}
	wg.Wait()
	data := []any{}
	seen := map[string]bool{}
	add := func(p *Provider, m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		if f == wireAnthropic {
			data = append(data, map[string]any{"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"})
		} else {
			data = append(data, map[string]any{"id": m, "object": "model", "created": 0, "owned_by": p.Name})
		}
	}
	for i, p := range provs {
		for _, m := range p.Models {
			if !strings.HasSuffix(m, "*") {
				add(p, m)
			}
		}
		for _, m := range listed[i] {
			if p.serves(m) {
				add(p, m)
			}
		}
	}
	var body any = map[string]any{"object": "list", "data": data}
	if f == wireAnthropic {
		first, last := any(nil), any(nil)
		if len(data) > 0 {
			first, last = data[0].(map[string]any)["id"], data[len(data)-1].(map[string]any)["id"]
		}
		body = map[string]any{"data": data, "has_more": false, "first_id": first, "last_id": last}
	}
	b, _ := marshal(body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
