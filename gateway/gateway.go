// Package gateway is the model gateway of custos: an OpenAI- and
// Anthropic-compatible HTTP front that authenticates the caller with its
// custos API key, redacts secrets and personal data from the request,
// forwards it to the configured provider with the team's own provider key,
// and returns the answer (streamed or not) with the placeholders restored.
// It keeps usage metadata only, never content.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/custos-dev/custos"
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
	// Local marks a provider on the local network or machine.
	Local bool
}

// Usage is the metadata of one forwarded request. It never holds content.
type Usage struct {
	KeyID      string        `json:"key_id"`
	OrgID      string        `json:"org_id"`
	Provider   string        `json:"provider"`
	Model      string        `json:"model"`
	TokensIn   int           `json:"tokens_in"`
	TokensOut  int           `json:"tokens_out"`
	Latency    time.Duration `json:"latency"`
	Status     int           `json:"status"`
	Redactions int           `json:"redactions"`
	Stream     bool          `json:"stream"`
	Time       time.Time     `json:"time"`
}

// Config configures a gateway handler.
type Config struct {
	// Keys authenticates the caller's custos API key.
	Keys custos.KeyService
	// Providers are routed by model name or prefix; the first match wins.
	Providers []Provider
	// Engine redacts requests; nil forwards them unchanged.
	Engine *redact.Engine
	// Client sends the outbound requests (the egress client); nil means
	// http.DefaultClient.
	Client *http.Client
	// OnUsage receives the usage of every forwarded request; nil drops it.
	OnUsage func(Usage)
	// Logger logs failures (never content); nil means slog.Default().
	Logger *slog.Logger
	// MaxBody bounds a request body; zero means DefaultMaxBody.
	MaxBody int64
}

// DefaultMaxBody is the default limit on a request body.
const DefaultMaxBody = 4 << 20

// wire is the format of the caller.
type wire int

const (
	wireOpenAI wire = iota
	wireAnthropic
)

type handler struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
}

// NewHandler returns the gateway handler. It serves POST /v1/chat/completions
// and GET /v1/models (OpenAI format; Anthropic format when the request
// carries anthropic-version), POST /v1/messages and POST
// /v1/messages/count_tokens (Anthropic format).
func NewHandler(cfg Config) http.Handler {
	h := &handler{cfg: cfg, client: cfg.Client, log: cfg.Logger}
	if h.client == nil {
		h.client = http.DefaultClient
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.cfg.MaxBody <= 0 {
		h.cfg.MaxBody = DefaultMaxBody
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireOpenAI, "/chat/completions")
	})
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireAnthropic, "/v1/messages")
	})
	mux.HandleFunc("POST /v1/messages/count_tokens", func(w http.ResponseWriter, r *http.Request) {
		h.proxy(w, r, wireAnthropic, "/v1/messages/count_tokens")
	})
	mux.HandleFunc("GET /v1/models", h.models)
	return mux
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
			t, code = "invalid_request_error", "invalid_api_key"
		case 404:
			code = "model_not_found"
		case 413:
			code = "request_too_large"
		case 429:
			t = "rate_limit_error"
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

// authenticate checks the caller's custos key.
func (h *handler) authenticate(r *http.Request) (*custos.APIKey, error) {
	tok := r.Header.Get("x-api-key")
	if a := r.Header.Get("Authorization"); tok == "" && len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		tok = strings.TrimSpace(a[7:])
	}
	if tok == "" {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "Missing custos API key.")
	}
	if h.cfg.Keys == nil {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "Invalid custos API key.")
	}
	k, err := h.cfg.Keys.Authenticate(custos.NewRequestContext(r.Context()), tok)
	if err != nil || k == nil {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "Invalid custos API key.")
	}
	return k, nil
}

// route returns the provider serving model.
func (h *handler) route(model string) *Provider {
	for i := range h.cfg.Providers {
		p := &h.cfg.Providers[i]
		for _, m := range p.Models {
			if m == model || (strings.HasSuffix(m, "*") && strings.HasPrefix(model, strings.TrimSuffix(m, "*"))) {
				return p
			}
		}
	}
	return nil
}

// models lists the configured exact model names.
func (h *handler) models(w http.ResponseWriter, r *http.Request) {
	f := wireOpenAI
	if r.Header.Get("anthropic-version") != "" {
		f = wireAnthropic
	}
	if _, err := h.authenticate(r); err != nil {
		writeError(w, f, http.StatusUnauthorized, custos.ErrorMessage(err))
		return
	}
	data := []any{}
	for _, p := range h.cfg.Providers {
		for _, m := range p.Models {
			if strings.HasSuffix(m, "*") {
				continue
			}
			if f == wireAnthropic {
				data = append(data, map[string]any{"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"})
			} else {
				data = append(data, map[string]any{"id": m, "object": "model", "created": 0, "owned_by": p.Name})
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

// request is the state of one proxied request.
type request struct {
	h         *handler
	f         wire
	key       *custos.APIKey
	prov      *Provider
	model     string
	stream    bool
	sc        *scrubber
	start     time.Time
	upstream  time.Duration // time spent waiting on the provider
	countOnly bool          // count_tokens: no tokens are consumed
	usage     Usage
}

func (h *handler) proxy(w http.ResponseWriter, r *http.Request, f wire, path string) {
	rq := &request{h: h, f: f, start: time.Now(), countOnly: strings.HasSuffix(path, "/count_tokens")}
	key, err := h.authenticate(r)
	if err != nil {
		writeError(w, f, http.StatusUnauthorized, custos.ErrorMessage(err))
		return
	}
	rq.key = key
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, f, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body larger than %d bytes.", h.cfg.MaxBody))
			return
		}
		writeError(w, f, http.StatusBadRequest, "Could not read the request body.")
		return
	}
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil || body == nil {
		writeError(w, f, http.StatusBadRequest, "The request body is not a JSON object.")
		return
	}
	rq.model, _ = body["model"].(string)
	if rq.model == "" {
		writeError(w, f, http.StatusBadRequest, "The request names no model.")
		return
	}
	rq.prov = h.route(rq.model)
	if rq.prov == nil {
		writeError(w, f, http.StatusNotFound, fmt.Sprintf("The model %q is not configured in custos.", rq.model))
		return
	}
	if (f == wireAnthropic) != (rq.prov.Kind == KindAnthropic) {
		writeError(w, f, http.StatusBadRequest, fmt.Sprintf("The model %q is served by provider %q, which speaks the %s format; use its endpoint.", rq.model, rq.prov.Name, rq.prov.Kind))
		return
	}
	rq.stream, _ = body["stream"].(bool)
	if rq.stream && f == wireOpenAI {
		if _, ok := body["stream_options"]; !ok {
			body["stream_options"] = map[string]any{"include_usage": true}
		}
	}
	rq.sc = newScrubber(h.cfg.Engine)
	for k, v := range body {
		if k != "model" && k != "stream" {
			body[k] = rq.sc.redactValue(v)
		}
	}
	out, err := marshal(body)
	if err != nil {
		writeError(w, f, http.StatusBadRequest, "The request body could not be encoded.")
		return
	}
	rq.usage = Usage{KeyID: key.ID, OrgID: key.OrgID, Provider: rq.prov.Name, Model: rq.model, Stream: rq.stream, Time: rq.start.UTC()}
	if rq.sc != nil {
		rq.usage.Redactions = rq.sc.n
	}
	defer rq.record()

	ctx := r.Context()
	up, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(rq.prov.BaseURL, "/")+path, strings.NewReader(string(out)))
	if err != nil {
		rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q has an invalid base URL.", rq.prov.Name))
		return
	}
	up.Header.Set("Content-Type", "application/json")
	up.Header.Set("User-Agent", "custos-gateway")
	if rq.prov.Kind == KindAnthropic {
		up.Header.Set("x-api-key", rq.prov.APIKey)
		for _, hd := range []string{"anthropic-version", "anthropic-beta"} {
			for _, v := range r.Header.Values(hd) {
				up.Header.Add(hd, v)
			}
		}
		if up.Header.Get("anthropic-version") == "" {
			up.Header.Set("anthropic-version", "2023-06-01")
		}
	} else {
		up.Header.Set("Authorization", "Bearer "+rq.prov.APIKey)
	}
	if rq.stream {
		up.Header.Set("Accept", "text/event-stream")
	} else {
		up.Header.Set("Accept", "application/json")
	}
	t0 := time.Now()
	resp, err := h.client.Do(up) // #nosec G704 -- the URL is the operator's configured provider; Client is the egress client
	rq.upstream = time.Since(t0)
	if err != nil {
		status, msg := http.StatusBadGateway, fmt.Sprintf("Provider %q is unreachable.", rq.prov.Name)
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			status, msg = http.StatusGatewayTimeout, fmt.Sprintf("Provider %q timed out.", rq.prov.Name)
		}
		h.log.Warn("gateway: upstream request failed", "provider", rq.prov.Name, "model", rq.model, "err", err)
		rq.fail(w, status, msg)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		rq.upstreamError(w, resp)
		return
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		rq.usage.Stream = true
		rq.streamResponse(w, resp)
		return
	}
	rq.jsonResponse(w, resp)
}

func (rq *request) fail(w http.ResponseWriter, status int, msg string) {
	rq.usage.Status = status
	writeError(w, rq.f, status, msg)
}

func (rq *request) record() {
	rq.usage.Latency = time.Since(rq.start)
	if rq.h.cfg.OnUsage != nil {
		rq.h.cfg.OnUsage(rq.usage)
	}
}

// maxUpstreamError bounds the error body read from a provider.
const maxUpstreamError = 64 << 10

// upstreamError answers a provider's non-2xx in the caller's format: 4xx
// statuses are kept, 5xx become 502.
func (rq *request) upstreamError(w http.ResponseWriter, resp *http.Response) {
	t0 := time.Now()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamError))
	rq.upstream += time.Since(t0)
	msg := ""
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &inner) == nil {
			msg = inner.Message
		} else {
			_ = json.Unmarshal(e.Error, &msg)
		}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	msg = fmt.Sprintf("Provider %q: %s", rq.prov.Name, rq.sc.restoreString(msg))
	status := resp.StatusCode
	if status >= 500 || status < 400 {
		status = http.StatusBadGateway
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	rq.fail(w, status, msg)
}

// jsonResponse restores a non-streamed answer and records its usage.
func (rq *request) jsonResponse(w http.ResponseWriter, resp *http.Response) {
	t0 := time.Now()
	b, err := io.ReadAll(resp.Body)
	rq.upstream += time.Since(t0)
	if err != nil {
		rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q: could not read the answer.", rq.prov.Name))
		return
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q answered invalid JSON.", rq.prov.Name))
		return
	}
	if m, ok := v.(map[string]any); ok && !rq.countOnly {
		rq.takeUsage(m["usage"])
	}
	out, err := marshal(rq.sc.restoreValue(v, nil))
	if err != nil {
		rq.fail(w, http.StatusBadGateway, "Could not encode the answer.")
		return
	}
	rq.usage.Status = resp.StatusCode
	for _, hd := range []string{"Request-Id", "X-Request-Id"} {
		if v := resp.Header.Get(hd); v != "" {
			w.Header().Set(hd, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	overhead := time.Since(rq.start) - rq.upstream
	w.Header().Set("X-Custos-Overhead-Ms", fmt.Sprintf("%.3f", float64(overhead.Microseconds())/1000))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// takeUsage reads token counts from a usage object of either format.
func (rq *request) takeUsage(u any) {
	m, ok := u.(map[string]any)
	if !ok {
		return
	}
	num := func(k string) int {
		n, _ := m[k].(json.Number)
		i, _ := n.Int64()
		return int(i)
	}
	if in := num("prompt_tokens") + num("input_tokens") + num("cache_creation_input_tokens") + num("cache_read_input_tokens"); in > 0 {
		rq.usage.TokensIn = in
	}
	if out := num("completion_tokens") + num("output_tokens"); out > 0 {
		rq.usage.TokensOut = out
	}
}
