package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/gateway"
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

// loopbackCloud lets "cloud" providers be httptest servers on 127.0.0.1.
var loopbackCloud = egress.Config{AllowPrivate: []string{"127.0.0.1"}}

// embedTokensPerInput is what fakeUp reports as prompt_tokens per
// embeddings input.
const embedTokensPerInput = 9

// fakeUp is a model provider on loopback speaking the OpenAI (chat
// completions, embeddings) and Anthropic (messages) wire formats. Its text
// answers are "from NAME: " followed by the request body it received, so a
// test sees what the provider saw, restored by the gateway. It counts the
// requests it receives.
type fakeUp struct {
	name   string
	srv    *httptest.Server
	hits   atomic.Int64
	status atomic.Int64 // non-zero: answer this status with an error body
	custom func(w http.ResponseWriter, r *http.Request, body []byte)

	mu         sync.Mutex
	lastBody   string
	lastHeader http.Header
}

// newFakeUp starts a provider; custom, when set, answers instead of the
// built-in wire formats (after the request is counted and recorded).
func newFakeUp(t testing.TB, name string, custom func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeUp {
	t.Helper()
	u := &fakeUp{name: name, custom: custom}
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	return u
}

// openAI returns an OpenAI-kind provider served by u.
func (u *fakeUp) openAI(key string, models ...string) gateway.Provider {
	return gateway.Provider{Name: u.name, Kind: gateway.KindOpenAI, BaseURL: u.srv.URL + "/v1", APIKey: key, Models: models}
}

// anthropic returns an Anthropic-kind provider served by u.
func (u *fakeUp) anthropic(key string, models ...string) gateway.Provider {
	return gateway.Provider{Name: u.name, Kind: gateway.KindAnthropic, BaseURL: u.srv.URL, APIKey: key, Models: models}
}

// last returns the body and headers of the last request received.
func (u *fakeUp) last(t testing.TB) (string, http.Header) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lastHeader == nil {
		t.Fatalf("provider %s received nothing", u.name)
	}
	return u.lastBody, u.lastHeader
}

func (u *fakeUp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.hits.Add(1)
	u.mu.Lock()
	u.lastBody, u.lastHeader = string(b), r.Header.Clone()
	u.mu.Unlock()
	if u.custom != nil {
		u.custom(w, r, b)
		return
	}
	anth := strings.HasPrefix(r.URL.Path, "/v1/messages")
	if st := int(u.status.Load()); st != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		if anth {
			_, _ = fmt.Fprintf(w, `{"type":"error","error":{"type":"api_error","message":"%s says no"}}`, u.name)
		} else {
			_, _ = fmt.Fprintf(w, `{"error":{"message":"%s says no","type":"server_error","param":null,"code":null}}`, u.name)
		}
		return
	}
	var req struct {
		Model  string          `json:"model"`
		Stream bool            `json:"stream"`
		Input  json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(b, &req)
	text := "from " + u.name + ": " + string(b)
	switch r.URL.Path {
	case "/v1/chat/completions":
		writeOpenAIAnswer(w, req.Model, text, req.Stream)
	case "/v1/embeddings":
		var inputs []string
		var one string
		if json.Unmarshal(req.Input, &one) == nil {
			inputs = []string{one}
		} else if json.Unmarshal(req.Input, &inputs) != nil {
			http.Error(w, `{"error":{"message":"bad input","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
		data := make([]any, len(inputs))
		for i := range inputs {
			data[i] = map[string]any{"object": "embedding", "index": i, "embedding": fakeVector(i)}
		}
		n := embedTokensPerInput * len(inputs)
		out, _ := json.Marshal(map[string]any{"object": "list", "model": req.Model, "data": data,
			"usage": map[string]any{"prompt_tokens": n, "total_tokens": n}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	case "/v1/messages":
		writeAnthropicAnswer(w, req.Model, text, req.Stream)
	default:
		http.NotFound(w, r)
	}
}

// fakeVector is the embedding fakeUp returns for input i.
func fakeVector(i int) []float64 { return []float64{float64(i) + 0.5, 0.25, -1} }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// splitN cuts s into n-byte pieces (placeholders fall apart across them).
func splitN(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func writeOpenAIAnswer(w http.ResponseWriter, model, text string, stream bool) {
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%s,"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%s}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`,
			jsonString(model), jsonString(text))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	chunk := func(delta, finish string) {
		_, _ = fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%s,\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", jsonString(model), delta, finish)
		if fl != nil {
			fl.Flush()
		}
	}
	chunk(`{"role":"assistant","content":""}`, "null")
	for _, p := range splitN(text, 5) {
		chunk(`{"content":`+jsonString(p)+`}`, "null")
	}
	chunk(`{}`, `"stop"`)
	_, _ = fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%s,\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\ndata: [DONE]\n\n", jsonString(model))
}

func writeAnthropicAnswer(w http.ResponseWriter, model, text string, stream bool) {
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%s,"content":[{"type":"text","text":%s}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":13,"output_tokens":5}}`,
			jsonString(model), jsonString(text))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	ev := func(name, data string) {
		_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
		if fl != nil {
			fl.Flush()
		}
	}
	ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":`+jsonString(model)+`,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":13,"output_tokens":1}}}`)
	ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	for _, p := range splitN(text, 5) {
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+jsonString(p)+`}}`)
	}
	ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
	ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}`)
	ev("message_stop", `{"type":"message_stop"}`)
}

// gwEnv is a gateway on loopback with its usage records and known-value
// reports collected.
type gwEnv struct {
	t        testing.TB
	h        *gateway.Handler
	srv      *httptest.Server
	inflight atomic.Int64

	mu    sync.Mutex
	usage []custos.UsageRecord
	known []gateway.KnownHit
}

// newGW starts a gateway for cfg. Keys defaults to spyKeys (custosKey is
// the one good key), Logger to a discarding one; OnUsage and OnKnown are
// recorded before calling the ones cfg sets.
func newGW(t testing.TB, cfg gateway.Config) *gwEnv {
	t.Helper()
	g := &gwEnv{t: t}
	if cfg.Keys == nil {
		cfg.Keys = spyKeys{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	onUsage, onKnown := cfg.OnUsage, cfg.OnKnown
	cfg.OnUsage = func(u *custos.UsageRecord) {
		g.mu.Lock()
		g.usage = append(g.usage, *u)
		g.mu.Unlock()
		if onUsage != nil {
			onUsage(u)
		}
	}
	cfg.OnKnown = func(ctx context.Context, hit gateway.KnownHit) {
		g.mu.Lock()
		g.known = append(g.known, hit)
		g.mu.Unlock()
		if onKnown != nil {
			onKnown(ctx, hit)
		}
	}
	h, err := gateway.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.h = h
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.inflight.Add(1)
		defer g.inflight.Add(-1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// settle waits until no request is inside the gateway handler, so every
// usage record of the requests made so far has been delivered.
func (g *gwEnv) settle() {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			g.t.Fatal("gateway handler still busy after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// usages returns the usage records delivered so far and forgets them.
func (g *gwEnv) usages() []custos.UsageRecord {
	g.settle()
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.usage
	g.usage = nil
	return u
}

// lastUsage returns the last usage record delivered since the last call
// (refusals before it leave records too).
func (g *gwEnv) lastUsage() custos.UsageRecord {
	g.t.Helper()
	us := g.usages()
	if len(us) == 0 {
		g.t.Fatal("got no usage record")
	}
	return us[len(us)-1]
}

// knownHits returns the known-value reports so far.
func (g *gwEnv) knownHits() []gateway.KnownHit {
	g.settle()
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gateway.KnownHit(nil), g.known...)
}

func (g *gwEnv) openai(opts ...ooption.RequestOption) *openai.Client {
	c := openai.NewClient(append([]ooption.RequestOption{ooption.WithBaseURL(g.srv.URL + "/v1"), ooption.WithAPIKey(custosKey), ooption.WithMaxRetries(0)}, opts...)...)
	return &c
}

func (g *gwEnv) anthropic(opts ...aoption.RequestOption) *anthropic.Client {
	c := anthropic.NewClient(append([]aoption.RequestOption{aoption.WithBaseURL(g.srv.URL), aoption.WithAPIKey(custosKey), aoption.WithMaxRetries(0)}, opts...)...)
	return &c
}

// rawResp is an answer read in full.
type rawResp struct {
	status int
	header http.Header
	body   string
}

// post sends body to path over plain HTTP; hdr are extra headers.
func (g *gwEnv) post(path, body string, hdr map[string]string) rawResp {
	g.t.Helper()
	return g.do(http.MethodPost, path, body, hdr)
}

// get sends GET path over plain HTTP; hdr are extra headers.
func (g *gwEnv) get(path string, hdr map[string]string) rawResp {
	g.t.Helper()
	return g.do(http.MethodGet, path, "", hdr)
}

func (g *gwEnv) do(method, path, body string, hdr map[string]string) rawResp {
	g.t.Helper()
	req, err := http.NewRequest(method, g.srv.URL+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return rawResp{resp.StatusCode, resp.Header, string(b)}
}

// wireError is an error answer of either wire format.
type wireError struct {
	Type  string `json:"type"` // "error" in the Anthropic format
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Code    any    `json:"code"`
		Param   any    `json:"param"`
	} `json:"error"`
}

// checkWireError asserts r is an error answer with status in the wire
// format of path (an Anthropic path is /v1/messages…) and returns its
// message.
func checkWireError(t testing.TB, path string, r rawResp, status int) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", path, r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	var e wireError
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: error body %q: %v", path, r.body, err)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("%s: error body %q lacks type or message", path, r.body)
	}
	anth := strings.HasPrefix(path, "/v1/messages")
	if anth && e.Type != "error" {
		t.Errorf("%s: not in the Anthropic format: %s", path, r.body)
	}
	if !anth && (e.Type != "" || !bytes.Contains([]byte(r.body), []byte(`"param":null`))) {
		t.Errorf("%s: not in the OpenAI format: %s", path, r.body)
	}
	return e.Error.Message
}

// authHeader is the custos key header of path's wire format.
func authHeader(path string) map[string]string {
	if strings.HasPrefix(path, "/v1/messages") {
		return map[string]string{"x-api-key": custosKey, "anthropic-version": "2023-06-01"}
	}
	return map[string]string{"Authorization": "Bearer " + custosKey}
}

// openaiStatus is the status of an *openai.Error, or 0.
func openaiStatus(err error) (int, *openai.Error) {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode, e
	}
	return 0, nil
}

// anthropicStatus is the status of an *anthropic.Error, or 0.
func anthropicStatus(err error) (int, *anthropic.Error) {
	var e *anthropic.Error
	if errors.As(err, &e) {
		return e.StatusCode, e
	}
	return 0, nil
}

// planted returns a fresh GitHub token and email address.
func planted(t *testing.T) (tok, email string) {
	return "ghp_" + randAlnum(t, 36), "lee." + strings.ToLower(randAlnum(t, 6)) + "@contoso-mail.com"
}

// newEngine returns a redaction engine with the secret rules, the PII
// detectors and the known values (labelled by names, index by index).
func newEngine(t testing.TB, known, names []string) *redact.Engine {
	t.Helper()
	e, err := redact.New(redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig()), Known: known, KnownLabels: names})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func chatParams(model string, text ...string) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{Model: model}
	for _, s := range text {
		p.Messages = append(p.Messages, openai.UserMessage(s))
	}
	return p
}

func messageParams(model string, text ...string) anthropic.MessageNewParams {
	p := anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 64}
	for _, s := range text {
		p.Messages = append(p.Messages, anthropic.NewUserMessage(anthropic.NewTextBlock(s)))
	}
	return p
}

// mustNotContain fails when s holds any of vals.
func mustNotContain(t testing.TB, what, s string, vals ...string) {
	t.Helper()
	for _, v := range vals {
		if v != "" && strings.Contains(s, v) {
			t.Errorf("%s contains %q", what, v)
		}
	}
}
