package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Services are the domain services the API serves. A nil service makes its
// routes answer 503 unavailable; a nil Keys makes every /v1 route do so.
type Services struct {
	Keys     custos.KeyService // also authenticates every /v1 request
	Secrets  custos.SecretService
	Devices  custos.DeviceService
	Policies custos.PolicyService
	Sessions custos.SessionService
	Audit    custos.AuditService
	// The model gateway's management services.
	Providers custos.ProviderService
	Budgets   custos.BudgetService
	Privacy   custos.PrivacyService
	Usage     custos.UsageService
	// The tasks capability: tracker installs (API key), the tracker app's
	// launch links and the developer's exchange, and the permit routes.
	Trackers custos.TrackerService
	Launch   custos.LaunchService
	Tasks    custos.TaskService
}

// Config configures the API handler and server.
type Config struct {
	Services Services
	Logger   *slog.Logger                    // nil means slog.Default()
	Ready    func(ctx context.Context) error // for /readyz; nil means always ready
	Version  string                          // reported by /v1/whoami and custos_build_info
	Limiter  *ratelimit.Limiter              // rate limits on /v1 (docs/API.md); nil means none
	// Gateway serves the model gateway's routes (GatewayRoutes) on the same
	// listener; nil leaves them unrouted. It authenticates and limits its
	// callers itself, answering errors in the caller's wire format.
	Gateway http.Handler
}

// GatewayRoutes are the patterns Config.Gateway serves: the OpenAI and
// Anthropic APIs a model SDK calls.
var GatewayRoutes = []string{
	"POST /v1/chat/completions",
	"POST /v1/responses",
	"POST /v1/embeddings",
	"GET /v1/models",
	"POST /v1/messages",
	"POST /v1/messages/count_tokens",
}

// Server timeouts and limits.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// Server serves the API: a net/http.Server with the API handler, the
// timeouts above and TLS 1.2 at least.
type Server struct {
	srv *http.Server
}

// NewServer returns a Server for cfg. Call Serve or ServeTLS to start it.
func NewServer(cfg Config) *Server {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{srv: &http.Server{
		Handler:           NewHandler(cfg),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
}

// Serve accepts plain HTTP connections on ln until Shutdown, after which it
// returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeTLS accepts HTTPS connections (TLS 1.2 or later) on ln with the given
// certificate and key files until Shutdown, after which it returns nil.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	if err := s.srv.ServeTLS(ln, certFile, keyFile); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits for active requests to end,
// or for ctx to be done.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// handler is the API: routes, services and the middleware's state.
type handler struct {
	svc     Services
	logger  *slog.Logger
	ready   func(ctx context.Context) error
	version string
	limiter *ratelimit.Limiter
	mux     *http.ServeMux

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
}

// NewHandler returns the whole API with all middleware applied: request
// logging and metrics, security headers, panic recovery, JSON 404 and 405,
// and on /v1 the rate limits and bearer authentication. Each handler has its
// own metrics registry, served at /metrics.
func NewHandler(cfg Config) http.Handler {
	h := &handler{
		svc:     cfg.Services,
		logger:  cfg.Logger,
		ready:   cfg.Ready,
		version: cfg.Version,
		limiter: cfg.Limiter,
		mux:     http.NewServeMux(),
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}

	reg := prometheus.NewRegistry()
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_http_requests_total",
		Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	h.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "custos_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	h.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_http_rate_limited_total",
		Help: "Requests refused with 429 by the limit that refused them: ip, auth_failures or key.",
	}, []string{"limit"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "custos_build_info",
		Help:        "Always 1; the version label names the running build.",
		ConstLabels: prometheus.Labels{"version": cfg.Version},
	})
	build.Set(1)
	reg.MustRegister(h.requests, h.duration, h.rateLimited, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	h.handle("GET /healthz", h.handleHealthz)
	h.handle("GET /readyz", h.handleReadyz)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	h.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request) error {
		metrics.ServeHTTP(w, r)
		return nil
	})

	h.handleV1("GET /v1/whoami", h.svc.Keys != nil, "keys", h.handleWhoami)
	h.registerSecretRoutes()
	h.registerKeyRoutes()
	h.registerDeviceRoutes()
	h.registerPolicyRoutes()
	h.registerSessionRoutes()
	h.registerAuditRoutes()
	h.registerGatewayRoutes()
	h.registerTaskRoutes()
	if cfg.Gateway != nil {
		for _, p := range GatewayRoutes {
			h.handle(p, func(w http.ResponseWriter, r *http.Request) error {
				cfg.Gateway.ServeHTTP(w, r)
				return nil
			})
		}
	}

	return http.HandlerFunc(h.serve)
}

// handlerFunc is a route's handler; a returned error goes through Error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers an unauthenticated route.
func (h *handler) handle(pattern string, fn handlerFunc) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r)
		info.route = r.Pattern
		if err := fn(w, r); err != nil {
			Error(w, r, err)
		}
	})
}

// handleV1 registers a route that needs a bearer token and service name
// (present tells whether it is configured). In order: the per-IP rate limit,
// the block on IPs with too many failed authentications, authentication,
// the per-key rate limit.
func (h *handler) handleV1(pattern string, present bool, name string, fn handlerFunc) {
	h.handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
		if err := h.limitIP(w, r); err != nil {
			return err
		}
		if h.svc.Keys == nil || !present {
			return custos.Errorf(custos.EUNAVAILABLE, "the %s service is not configured on this server", name)
		}
		if err := h.limitAuthFailures(w, r); err != nil {
			return err
		}
		authed, err := h.authenticate(r)
		if err != nil {
			return err
		}
		if err := h.limitKey(w, authed); err != nil {
			return err
		}
		return fn(w, authed)
	})
}

// reqInfo is what the middleware learns about a request as it goes.
type reqInfo struct {
	logger *slog.Logger
	route  string // the matched pattern; "" until a route runs
	keyID  string // the authenticated key
}

type infoKey struct{}

// infoFrom returns the request's info, or a blank one outside the handler.
func infoFrom(r *http.Request) *reqInfo {
	if info, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// NoteKey records the API key that a handler authenticated itself (the
// model gateway does), for the request's log line.
func NoteKey(r *http.Request, keyID string) {
	if info, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		info.keyID = keyID
	}
}

// loggerFrom returns the logger of the handler serving r.
func loggerFrom(r *http.Request) *slog.Logger {
	if l := infoFrom(r).logger; l != nil {
		return l
	}
	return slog.Default()
}

// routeOf returns the matched route pattern of r, or "unmatched".
func routeOf(r *http.Request) string {
	if route := infoFrom(r).route; route != "" {
		return route
	}
	return "unmatched"
}

// responseWriter records the status of a response.
type responseWriter struct {
	http.ResponseWriter
	status int
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serve is the outermost middleware: it logs and measures the request, sets
// the security headers, recovers panics and turns the mux's own 404 and 405
// answers into the JSON error shape.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	info := &reqInfo{logger: h.logger}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))

	setSecurityHeaders(rw, r)

	var abort bool
	func() {
		defer h.recoverPanic(rw, r, &abort)
		h.mux.ServeHTTP(&muxWriter{responseWriter: rw, r: r, info: info}, r)
	}()

	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	route := routeOf(r)
	h.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	h.duration.WithLabelValues(route).Observe(elapsed.Seconds())

	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.logger.LogAttrs(r.Context(), level, "http request",
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", clip(r.URL.Path, 256)),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("key_id", info.keyID),
		slog.String("ip", clientIP(r)),
	)
	if abort {
		panic(http.ErrAbortHandler) // a response already under way: let net/http cut the connection
	}
}

// recoverPanic turns a panic into a logged 500 internal error. If the
// response had already started, it sets *abort so that serve aborts the
// connection once the request is logged.
func (h *handler) recoverPanic(rw *responseWriter, r *http.Request, abort *bool) {
	v := recover()
	if v == nil {
		return
	}
	if v != http.ErrAbortHandler {
		h.logger.Error("panic serving request",
			slog.String("method", r.Method),
			slog.String("route", routeOf(r)),
			slog.String("panic", fmt.Sprint(v)),
			slog.String("stack", string(debug.Stack())))
	}
	if rw.status == 0 && v != http.ErrAbortHandler {
		writeJSON(rw, r, http.StatusInternalServerError, &errorResponse{Error: errorBody{Code: custos.EINTERNAL, Message: "Internal error."}})
		return
	}
	rw.status = http.StatusInternalServerError // for the log line and metrics
	*abort = true
}

// muxWriter intercepts the answers of the mux itself (no route matched: 404,
// 405 or a redirect to a cleaned path) and replaces them with a JSON error.
type muxWriter struct {
	*responseWriter
	r           *http.Request
	info        *reqInfo
	intercepted bool
}

func (w *muxWriter) WriteHeader(status int) {
	if w.info.route != "" {
		w.responseWriter.WriteHeader(status)
		return
	}
	w.intercepted = true
	hdr := w.Header()
	hdr.Del("Location")
	hdr.Del("X-Content-Type-Options")
	setSecurityHeaders(w.responseWriter, w.r)
	if status == http.StatusMethodNotAllowed {
		Error(w.responseWriter, w.r, &statusError{
			status: http.StatusMethodNotAllowed,
			err:    custos.Errorf(custos.EINVALID, "method %s not allowed here; allowed: %s", clip(w.r.Method, 16), hdr.Get("Allow")),
		})
		return
	}
	hdr.Del("Allow")
	Error(w.responseWriter, w.r, custos.Errorf(custos.ENOTFOUND, "no such endpoint; see docs/API.md"))
}

func (w *muxWriter) Write(b []byte) (int, error) {
	if w.info.route == "" && !w.intercepted {
		w.WriteHeader(http.StatusOK)
	}
	if w.intercepted {
		return len(b), nil
	}
	return w.responseWriter.Write(b)
}

// setSecurityHeaders sets the headers every response carries.
func setSecurityHeaders(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	if r.TLS != nil {
		hdr.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// clientIP is the host part of the connection's remote address. Headers such
// as X-Forwarded-For are never consulted: a client could forge them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate checks the bearer token and the identity headers and returns
// r with the *custos.Caller in its context.
func (h *handler) authenticate(r *http.Request) (*http.Request, error) {
	info := infoFrom(r)
	token, err := bearerToken(r)
	if err != nil {
		h.authFailed(r, custos.ErrorMessage(err))
		return nil, err
	}
	// One request, one consistent look at the services' state: authenticate
	// and the call that follows share it (custos.RequestMemo).
	r = r.WithContext(custos.NewRequestContext(r.Context()))
	key, err := h.svc.Keys.Authenticate(r.Context(), token)
	switch code := custos.ErrorCode(err); {
	case code == custos.EINTERNAL || code == custos.EUNAVAILABLE:
		return nil, err
	case err != nil:
		h.authFailed(r, custos.ErrorMessage(err))
		if code != custos.EUNAUTHORIZED {
			err = custos.Errorf(custos.EUNAUTHORIZED, "invalid API key")
		}
		return nil, err
	case key == nil:
		h.authFailed(r, "key service returned no key")
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid API key")
	}
	info.keyID = key.ID

	caller, err := callerFromHeaders(r)
	if err != nil {
		return nil, err
	}
	caller.Key = key
	return r.WithContext(custos.NewContextWithCaller(r.Context(), caller)), nil
}

// authFailed logs a rejected credential with its reason, never the token,
// and counts it against the client IP's limit of failed authentications.
func (h *handler) authFailed(r *http.Request, reason string) {
	if h.limiter != nil {
		h.limiter.AuthFailed(r.Context(), clientIP(r))
	}
	h.logger.Warn("authentication failed",
		slog.String("method", r.Method),
		slog.String("route", routeOf(r)),
		slog.String("ip", clientIP(r)),
		slog.String("reason", reason))
}

// bearerToken returns the token of the one Authorization: Bearer header.
func bearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", custos.Errorf(custos.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer <API key>")
	}
	if len(vals) > 1 {
		return "", custos.Errorf(custos.EUNAUTHORIZED, "more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", custos.Errorf(custos.EUNAUTHORIZED, "malformed Authorization header: want Bearer <API key>")
	}
	token = strings.Trim(token, " \t")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", custos.Errorf(custos.EUNAUTHORIZED, "malformed Authorization header: want Bearer <API key>")
	}
	return token, nil
}

// callerFromHeaders reads and validates the identity headers and the client
// IP. The key is added by the caller.
func callerFromHeaders(r *http.Request) (*custos.Caller, error) {
	c := &custos.Caller{Agent: DefaultAgent, Source: custos.SourceAPI, IP: clientIP(r)}
	for _, f := range []struct {
		header, what string
		dst          *string
	}{
		{HeaderAgent, "agent", &c.Agent},
		{HeaderHostname, "hostname", &c.Hostname},
		{HeaderMachineUser, "machine user", &c.MachineUser},
	} {
		v, err := oneHeader(r, f.header)
		if err != nil {
			return nil, err
		}
		if v == "" {
			continue
		}
		if err := custos.ValidateLabel(f.what, v); err != nil {
			return nil, err
		}
		*f.dst = v
	}

	src, err := oneHeader(r, HeaderSource)
	if err != nil {
		return nil, err
	}
	switch src {
	case "":
	case custos.SourceAPI, custos.SourceCLI, custos.SourceMCP:
		c.Source = src
	default:
		return nil, invalidf("invalid %s %q: want cli, api or mcp", HeaderSource, clip(src, 16))
	}

	model, err := oneHeader(r, HeaderModel)
	if err != nil {
		return nil, err
	}
	if err := validateModel(model); err != nil {
		return nil, err
	}
	c.Model = model
	return c, nil
}

// oneHeader returns the value of a header that may appear at most once.
func oneHeader(r *http.Request, name string) (string, error) {
	vals := r.Header.Values(name)
	if len(vals) > 1 {
		return "", invalidf("header %s given more than once", name)
	}
	if len(vals) == 0 {
		return "", nil
	}
	return vals[0], nil
}

// validateModel accepts "" or at most MaxModelBytes printable ASCII characters.
func validateModel(s string) error {
	if len(s) > MaxModelBytes {
		return invalidf("invalid %s: at most %d characters", HeaderModel, MaxModelBytes)
	}
	if !utf8.ValidString(s) {
		return invalidf("invalid %s: use printable ASCII characters", HeaderModel)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return invalidf("invalid %s: use printable ASCII characters", HeaderModel)
		}
	}
	return nil
}

// handleHealthz answers GET /healthz: the process is up.
func (h *handler) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleReadyz answers GET /readyz: whether the server can take requests.
// The reason of a failure is logged, not sent.
func (h *handler) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if h.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := h.ready(ctx); err != nil {
			h.logger.Warn("not ready", slog.String("error", err.Error()))
			return custos.Errorf(custos.EUNAVAILABLE, "not ready")
		}
	}
	writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// whoamiResponse is the body of GET /v1/whoami.
type whoamiResponse struct {
	Key     *custos.APIKey `json:"key"`
	Version string         `json:"version,omitempty"`
}

// handleWhoami answers GET /v1/whoami with the authenticated key.
func (h *handler) handleWhoami(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	c := custos.CallerFromContext(r.Context())
	writeJSON(w, r, http.StatusOK, &whoamiResponse{Key: c.Key, Version: h.version})
	return nil
}
