package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/gateway"
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

const (
	custosKey    = "cst_ak_testkey0123456789"
	openaiKey    = "prov-openai-key"
	anthropicKey = "prov-anthropic-key"
)

// spyKeys accepts one token.
type spyKeys struct{ custos.KeyService }

func (spyKeys) Authenticate(_ context.Context, tok string) (*custos.APIKey, error) {
	if tok != custosKey {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "bad key")
	}
	return &custos.APIKey{ID: "key_1", OrgID: "org_1", Role: custos.RoleAgent}, nil
}

func randAlnum(t *testing.T, n int) string {
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(abc))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = abc[k.Int64()]
	}
	return string(b)
}

// seen is what an upstream received.
type seen struct {
	path   string
	header http.Header
	body   string
}

type env struct {
	t       *testing.T
	tok     string // planted GitHub token
	email   string // planted email
	gw      *httptest.Server
	up      *httptest.Server
	mu      sync.Mutex
	got     []seen
	usageMu sync.Mutex
	usage   []custos.UsageRecord
}

var (
	secretRE = regexp.MustCompile(`\[\[SECRET_[0-9]+\]\]`)
	emailRE  = regexp.MustCompile(`\[\[EMAIL_[0-9]+\]\]`)
)

// pieces splits s into n-byte pieces, cutting placeholders apart.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func newEnv(t *testing.T) *env { return newEnvEngine(t, true) }

func newEnvEngine(t *testing.T, redacting bool) *env {
	e := &env{t: t, tok: "ghp_" + randAlnum(t, 36), email: "dana." + strings.ToLower(randAlnum(t, 6)) + "@northwind-traders.com"}
	e.up = httptest.NewServer(http.HandlerFunc(e.upstream))
	t.Cleanup(e.up.Close)
	eng, err := redact.New(redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig())})
	if err != nil {
		t.Fatal(err)
	}
	if !redacting {
		eng = nil
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	h, err := gateway.NewHandler(gateway.Config{
		Keys: spyKeys{},
		Providers: []gateway.Provider{
			{Name: "openai", Kind: gateway.KindOpenAI, BaseURL: e.up.URL + "/v1", APIKey: openaiKey, Models: []string{"gpt-4o", "o3-*", "gpt-err*", "gpt-textonly", "text-embedding-*"}},
			{Name: "dead", Kind: gateway.KindOpenAI, BaseURL: dead.URL + "/v1", APIKey: "x", Models: []string{"dead-*"}},
			{Name: "anthropic", Kind: gateway.KindAnthropic, BaseURL: e.up.URL, APIKey: anthropicKey, Models: []string{"claude-*"}},
		},
		Engine:  eng,
		Egress:  egress.Config{AllowPrivate: []string{"127.0.0.1"}}, // the test upstreams stand in for cloud providers
		Logger:  slog.New(slog.DiscardHandler),
		OnUsage: func(u *custos.UsageRecord) { e.usageMu.Lock(); e.usage = append(e.usage, *u); e.usageMu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(h)
	t.Cleanup(e.gw.Close)
	return e
}

func (e *env) upstream(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.got = append(e.got, seen{path: r.URL.Path, header: r.Header.Clone(), body: string(b)})
	e.mu.Unlock()
	body := string(b)
	phT, phE := secretRE.FindString(body), emailRE.FindString(body)
	text := "see " + phT + " and " + phE + " done"
	args := `{"to":"` + phE + `","token":"` + phT + `"}`
	stream := strings.Contains(body, `"stream":true`)
	fl := w.(http.Flusher)
	switch {
	case strings.Contains(body, `"gpt-err500"`), strings.Contains(body, `"claude-err500"`):
		http.Error(w, `{"error":{"message":"boom","type":"server_error"}}`, http.StatusInternalServerError)
		return
	case strings.Contains(body, `"gpt-err429"`):
		w.Header().Set("Retry-After", "3")
		http.Error(w, `{"error":{"message":"slow down with `+phE+`","type":"rate_limit_error"}}`, http.StatusTooManyRequests)
		return
	case strings.Contains(body, `"gpt-textonly"`):
		w.Header().Set("Content-Type", "text/event-stream")
		ps := pieces(text+" [[Z", 5)
		for i, p := range ps {
			f := "null"
			if i == len(ps)-1 {
				f = `"stop"`
			}
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%s},\"finish_reason\":%s}]}\n\n", strconv(p), f)
			fl.Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	switch r.URL.Path {
	case "/v1/chat/completions":
		if !stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":%q,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"send","arguments":%q}}]}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`, text, args)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta string, finish string) {
			f := "null"
			if finish != "" {
				f = `"` + finish + `"`
			}
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, f)
			fl.Flush()
		}
		chunk(`{"role":"assistant","content":""}`, "")
		for _, p := range pieces(text, 5) {
			chunk(`{"content":`+strconv(p)+`}`, "")
		}
		chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"send","arguments":""}}]}`, "")
		for _, p := range pieces(args, 4) {
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":`+strconv(p)+`}}]}`, "")
		}
		chunk(`{}`, "tool_calls")
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\ndata: [DONE]\n\n")
	case "/v1/messages":
		if !stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_reason":"tool_use","stop_sequence":null,"content":[{"type":"text","text":%q},{"type":"tool_use","id":"tu_1","name":"send","input":%s}],"usage":{"input_tokens":13,"output_tokens":5}}`, text, args)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(name, data string) {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
			fl.Flush()
		}
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":13,"output_tokens":1}}}`)
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		ev("ping", `{"type":"ping"}`)
		for _, p := range pieces(text, 5) {
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+strconv(p)+`}}`)
		}
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
		ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu_1","name":"send","input":{}}}`)
		for _, p := range pieces(args, 4) {
			ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":`+strconv(p)+`}}`)
		}
		ev("content_block_stop", `{"type":"content_block_stop","index":1}`)
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":5}}`)
		ev("message_stop", `{"type":"message_stop"}`)
	case "/v1/messages/count_tokens":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"input_tokens":42}`)
	default:
		http.NotFound(w, r)
	}
}

func strconv(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkUpstream asserts the last upstream request carried no planted
// value and no custos key, and the provider key.
func (e *env) checkUpstream(path, provHeader, provValue string) seen {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.got) == 0 {
		e.t.Fatal("upstream got nothing")
	}
	s := e.got[len(e.got)-1]
	if s.path != path {
		e.t.Fatalf("upstream path %q, want %q", s.path, path)
	}
	all := s.body + fmt.Sprint(s.header)
	for _, v := range []string{e.tok, e.email, custosKey} {
		if strings.Contains(all, v) {
			e.t.Errorf("upstream received %q", v)
		}
	}
	if !secretRE.MatchString(s.body) || !emailRE.MatchString(s.body) {
		e.t.Errorf("upstream body has no placeholders: %s", s.body)
	}
	if got := s.header.Get(provHeader); got != provValue {
		e.t.Errorf("upstream %s = %q, want %q", provHeader, got, provValue)
	}
	return s
}

var usageID = regexp.MustCompile(`^use_[0-9a-f]{28}$`)

func (e *env) lastUsage() custos.UsageRecord {
	e.t.Helper()
	for range 200 {
		e.usageMu.Lock()
		n := len(e.usage)
		e.usageMu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.usageMu.Lock()
	defer e.usageMu.Unlock()
	if len(e.usage) == 0 {
		e.t.Fatal("no usage recorded")
	}
	u := e.usage[len(e.usage)-1]
	e.usage = nil
	// The id sorts by time (custos.NewTimeID), so the table grows at one end.
	if !usageID.MatchString(u.ID) || u.ID[len(gateway.IDPrefix)+1:][:12] != fmt.Sprintf("%012x", u.Time.UnixMilli()) {
		e.t.Errorf("usage id %q for a record of %v", u.ID, u.Time)
	}
	b, _ := json.Marshal(u)
	for _, v := range []string{e.tok, e.email, custosKey, "see "} {
		if strings.Contains(string(b), v) {
			e.t.Errorf("usage contains %q: %s", v, b)
		}
	}
	return u
}

func (e *env) checkAnswer(text, args string) {
	e.t.Helper()
	want := "see " + e.tok + " and " + e.email + " done"
	if text != want {
		e.t.Errorf("text = %q, want %q", text, want)
	}
	var a struct{ To, Token string }
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		e.t.Fatalf("arguments %q: %v", args, err)
	}
	if a.To != e.email || a.Token != e.tok {
		e.t.Errorf("arguments = %q", args)
	}
}

func (e *env) openaiClient(key string) openai.Client {
	return openai.NewClient(ooption.WithBaseURL(e.gw.URL+"/v1"), ooption.WithAPIKey(key), ooption.WithMaxRetries(0))
}

func (e *env) anthropicClient(key string) anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL(e.gw.URL), aoption.WithAPIKey(key), aoption.WithMaxRetries(0),
		aoption.WithHeader("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"))
}

func (e *env) openaiParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Deploy with " + e.tok),
			openai.UserMessage("Mail " + e.email + " please"),
			{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "call_0", Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{
					Name: "send", Arguments: `{"to":"` + e.email + `","token":"` + e.tok + `"}`}},
			}}}},
			openai.ToolMessage("sent to "+e.email+" with "+e.tok, "call_0"),
		},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "send", Description: openai.String("Sends mail as " + e.email),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
				"token": map[string]any{"type": "string", "description": "a token such as " + e.tok}}},
		})},
	}
}

func TestOpenAI(t *testing.T) {
	e := newEnv(t)
	c := e.openaiClient(custosKey)
	ctx := context.Background()

	resp, err := c.Chat.Completions.New(ctx, e.openaiParams())
	if err != nil {
		t.Fatal(err)
	}
	e.checkUpstream("/v1/chat/completions", "Authorization", "Bearer "+openaiKey)
	if len(resp.Choices) != 1 || len(resp.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("response %+v", resp)
	}
	e.checkAnswer(resp.Choices[0].Message.Content, resp.Choices[0].Message.ToolCalls[0].Function.Arguments)
	u := e.lastUsage()
	if u.TokensIn != 11 || u.TokensOut != 7 || u.Status != 200 || u.Stream || u.KeyID != "key_1" || u.Provider != "openai" || u.Redactions == 0 {
		t.Errorf("usage %+v", u)
	}

	// Streaming: placeholders split across deltas.
	st := c.Chat.Completions.NewStreaming(ctx, e.openaiParams())
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	e.checkUpstream("/v1/chat/completions", "Authorization", "Bearer "+openaiKey)
	if len(acc.Choices) != 1 || len(acc.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("accumulated %+v", acc.ChatCompletion)
	}
	e.checkAnswer(acc.Choices[0].Message.Content, acc.Choices[0].Message.ToolCalls[0].Function.Arguments)
	u = e.lastUsage()
	if u.TokensIn != 11 || u.TokensOut != 7 || !u.Stream {
		t.Errorf("stream usage %+v", u)
	}

	// Models.
	ms, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Data) != 2 || ms.Data[0].ID != "gpt-4o" || ms.Data[1].ID != "gpt-textonly" {
		t.Errorf("models %+v", ms.Data)
	}
}

func TestOpenAIErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var apiErr *openai.Error
	bad := e.openaiClient("cst_ak_wrong")
	_, err := bad.Chat.Completions.New(ctx, e.openaiParams())
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong key: %v", err)
	}
	if len(e.got) != 0 {
		t.Error("upstream called with a wrong key")
	}
	p := e.openaiParams()
	p.Model = "no-such-model"
	good := e.openaiClient(custosKey)
	_, err = good.Chat.Completions.New(ctx, p)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("unknown model: %v", err)
	}
}

func (e *env) anthropicParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 100,
		System:    []anthropic.TextBlockParam{{Text: "Deploy with " + e.tok}},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("Mail " + e.email)),
			anthropic.NewAssistantMessage(anthropic.NewToolUseBlock("tu_0", map[string]any{"to": e.email, "token": e.tok}, "send")),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock("tu_0", "sent to "+e.email+" with "+e.tok, false)),
		},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name: "send", Description: anthropic.String("Sends mail as " + e.email),
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{
				"token": map[string]any{"type": "string", "description": "a token such as " + e.tok}}},
		}}},
	}
}

func toolInput(t *testing.T, m *anthropic.Message) (string, string) {
	t.Helper()
	var text, args string
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			text += b.Text
		case "tool_use":
			args = string(b.Input)
		}
	}
	return text, args
}

func TestAnthropic(t *testing.T) {
	e := newEnv(t)
	c := e.anthropicClient(custosKey)
	ctx := context.Background()

	msg, err := c.Messages.New(ctx, e.anthropicParams())
	if err != nil {
		t.Fatal(err)
	}
	s := e.checkUpstream("/v1/messages", "x-api-key", anthropicKey)
	if s.header.Get("anthropic-version") == "" || s.header.Get("anthropic-beta") != "fine-grained-tool-streaming-2025-05-14" || s.header.Get("Authorization") != "" {
		t.Errorf("upstream headers %v", s.header)
	}
	e.checkAnswer(toolInput(t, msg))
	u := e.lastUsage()
	if u.TokensIn != 13 || u.TokensOut != 5 || u.Provider != "anthropic" || u.Status != 200 {
		t.Errorf("usage %+v", u)
	}

	st := c.Messages.NewStreaming(ctx, e.anthropicParams())
	acc := anthropic.Message{}
	for st.Next() {
		if err := acc.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	e.checkUpstream("/v1/messages", "x-api-key", anthropicKey)
	e.checkAnswer(toolInput(t, &acc))
	u = e.lastUsage()
	if u.TokensIn != 13 || u.TokensOut != 5 || !u.Stream {
		t.Errorf("stream usage %+v", u)
	}

	p := e.anthropicParams()
	n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: p.Model, Messages: p.Messages, System: anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: p.System}})
	if err != nil {
		t.Fatal(err)
	}
	if n.InputTokens != 42 {
		t.Errorf("count_tokens = %d", n.InputTokens)
	}
	e.checkUpstream("/v1/messages/count_tokens", "x-api-key", anthropicKey)
	if u := e.lastUsage(); u.TokensIn != 0 || u.Status != 200 || u.Redactions == 0 {
		t.Errorf("count_tokens usage %+v", u)
	}
}

func TestAnthropicErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var apiErr *anthropic.Error
	bad := e.anthropicClient("cst_ak_wrong")
	_, err := bad.Messages.New(ctx, e.anthropicParams())
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong key: %v", err)
	}
	p := e.anthropicParams()
	p.Model = "gpt-5-unknown"
	good := e.anthropicClient(custosKey)
	_, err = good.Messages.New(ctx, p)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("unknown model: %v", err)
	}
	if len(e.got) != 0 {
		t.Error("upstream called")
	}
}

func TestOpenAIStreamHeldBackAtFinish(t *testing.T) {
	e := newEnv(t)
	c := e.openaiClient(custosKey)
	p := e.openaiParams()
	p.Model = "gpt-textonly"
	p.Tools = nil
	st := c.Chat.Completions.NewStreaming(context.Background(), p)
	var text strings.Builder
	for st.Next() {
		for _, ch := range st.Current().Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	want := "see " + e.tok + " and " + e.email + " done [[Z"
	if text.String() != want {
		t.Errorf("text = %q, want %q", text.String(), want)
	}
}

func TestUpstreamFailures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.openaiClient(custosKey)
	var oErr *openai.Error
	for model, want := range map[string]int{"gpt-err500": 502, "gpt-err429": 429, "dead-1": 502} {
		p := e.openaiParams()
		p.Model = model
		_, err := c.Chat.Completions.New(ctx, p)
		if !errors.As(err, &oErr) || oErr.StatusCode != want {
			t.Errorf("%s: %v, want status %d", model, err, want)
			continue
		}
		if model == "gpt-err429" && !strings.Contains(oErr.Message, e.email) {
			t.Errorf("429 message not restored: %q", oErr.Message)
		}
	}
	a := e.anthropicClient(custosKey)
	p := e.anthropicParams()
	p.Model = "claude-err500"
	var aErr *anthropic.Error
	_, err := a.Messages.New(ctx, p)
	if !errors.As(err, &aErr) || aErr.StatusCode != 502 || !strings.Contains(err.Error(), "api_error") {
		t.Errorf("anthropic 500: %v", err)
	}
}

func TestRawHTTP(t *testing.T) {
	e := newEnv(t)
	post := func(path, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp, string(b)
	}
	resp, body := post("/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi `+e.email+`"}],"x_unknown":{"keep":[1,2.50]}}`,
		map[string]string{"Authorization": "Bearer " + custosKey})
	if resp.StatusCode != 200 || resp.Header.Get("X-Custos-Overhead-Ms") == "" {
		t.Errorf("status %d, overhead %q: %s", resp.StatusCode, resp.Header.Get("X-Custos-Overhead-Ms"), body)
	}
	e.mu.Lock()
	up := e.got[len(e.got)-1].body
	e.mu.Unlock()
	if !strings.Contains(up, `"x_unknown":{"keep":[1,2.50]}`) {
		t.Errorf("unknown field not passed through: %s", up)
	}
	resp, body = post("/v1/messages", `{"model":"claude-x","messages":[{"role":"user","content":"`+strings.Repeat("a", 5<<20)+`"}]}`,
		map[string]string{"x-api-key": custosKey})
	if resp.StatusCode != 413 || !strings.Contains(body, `"request_too_large"`) || !strings.Contains(body, `"type":"error"`) {
		t.Errorf("too large: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/v1/chat/completions", `not json`, map[string]string{"Authorization": "Bearer " + custosKey})
	if resp.StatusCode != 400 || !strings.Contains(body, `"error":{`) {
		t.Errorf("bad json: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/v1/messages", `{}`, nil)
	if resp.StatusCode != 401 || !strings.Contains(body, `"authentication_error"`) {
		t.Errorf("no key: %d %s", resp.StatusCode, body)
	}
}

func TestPassthrough(t *testing.T) {
	e := newEnvEngine(t, false)
	c := e.openaiClient(custosKey)
	if _, err := c.Chat.Completions.New(context.Background(), e.openaiParams()); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.got[len(e.got)-1]; !strings.Contains(s.body, e.tok) || s.header.Get("Authorization") != "Bearer "+openaiKey {
		t.Error("passthrough changed the request or the key")
	}
}
