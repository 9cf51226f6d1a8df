package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos/gateway"
)

// Planted values of the fuzz targets (fixed: the seeds refer to them).
const (
	fuzzToken = "ghp_Fz0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uVw"
	fuzzEmail = "fuzz.target@contoso-mail.com"
	fuzzKnown = "Tr0ub4dor-fuzz-known"
)

// fuzzHandler returns a gateway handler whose providers are the given
// upstream: gpt-* in the OpenAI format, claude-* in the Anthropic format.
func fuzzHandler(f *testing.F, up *fakeUp, maxBody int64) http.Handler {
	f.Helper()
	h, err := gateway.NewHandler(gateway.Config{
		Keys:      spyKeys{},
		Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-*"), up.anthropic(anthropicKey, "claude-*")},
		Engine:    newEngine(f, []string{fuzzKnown}, []string{"FUZZ_SECRET"}),
		Egress:    loopbackCloud,
		Logger:    slog.New(slog.DiscardHandler),
		MaxBody:   maxBody,
	})
	if err != nil {
		f.Fatal(err)
	}
	return h
}

// serveOnce runs one request through h and returns the recorded answer. It
// fails the test if the handler does not return within a minute (a hang),
// and tolerates only http.ErrAbortHandler as a panic.
func serveOnce(t *testing.T, h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for k, v := range authHeader(path) {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		h.ServeHTTP(rec, req)
	}()
	select {
	case p := <-done:
		if p != nil && p != http.ErrAbortHandler {
			t.Fatalf("%s: handler panicked: %v", path, p)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s: handler did not return in a minute", path)
	}
	return rec
}

// FuzzRequestBody sends arbitrary bodies to both chat endpoints through an
// upstream that echoes the request: the handler never panics, answers one
// of the expected statuses, and every error is in the caller's wire format.
func FuzzRequestBody(f *testing.F) {
	up := newFakeUp(f, "echo", nil)
	h := fuzzHandler(f, up, 64<<10)
	for _, s := range []string{
		``,
		`null`,
		`[]`,
		`{}`,
		`{"model":"gpt-4o"}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"use ` + fuzzToken + ` for ` + fuzzEmail + `"}]}`,
		`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"` + fuzzKnown + ` [[SECRET_1]] [[EMAIL_"}]}`,
		`{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"` + fuzzToken + `"}]}]}`,
		`{"model":"claude-x","stream":true,"system":"` + fuzzEmail + `","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"t\":\"` + fuzzToken + `\"}"}}]}]}`,
		`{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{not json ` + fuzzEmail + `"}}]}]}`,
		`{"model":"gpt-4o","stream":"yes","stream_options":7,"max_tokens":-1e400}`,
		`{"model":"claude-x","messages":[{"type":"thinking","thinking":"` + fuzzToken + `","signature":"s"}]}`,
		`{"model":"gpt-4o"}}`,
		`{"model":"gpt-4o"} {"model":"claude-x"}`,
		`{"model":"gpt-4o","messages":"\ud800` + fuzzToken + `\u0000"}`,
		`{"model":"nobody"}`,
		`{"model":["gpt-4o"]}`,
		`{"model":"gpt-4o","x":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"model":"gpt-4o","input":[{"type":"reasoning","encrypted_content":"` + fuzzToken + `"},{"type":"function_call_output","call_id":"c","output":"` + fuzzEmail + `"}],"instructions":"` + fuzzKnown + `"}`))
	want := map[int]bool{200: true, 400: true, 404: true, 413: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/chat/completions", "/v1/responses", "/v1/messages"} {
			rec := serveOnce(t, h, path, body)
			if !want[rec.Code] {
				t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body.String())
			}
			if rec.Code != 200 {
				checkWireError(t, path, rawResp{rec.Code, rec.Header(), rec.Body.String()}, rec.Code)
				continue
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s: 200 answer (%s) is not JSON: %q", path, ct, rec.Body.String())
			}
		}
	})
}

// streamFuzzer returns a function that relays stream as a provider's SSE
// answer to a streamed request on path, while placeholders are live, and
// fails unless the handler answers 200 with an event stream and returns.
func streamFuzzer(f *testing.F) func(t *testing.T, path string, stream []byte) {
	var (
		streams sync.Map // model → the provider's SSE body
		next    atomic.Int64
	)
	up := newFakeUp(f, "sse", func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var req struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "text/event-stream")
		if v, ok := streams.Load(req.Model); ok {
			_, _ = w.Write(v.([]byte))
		}
	})
	h := fuzzHandler(f, up, 0)
	return func(t *testing.T, path string, stream []byte) {
		model := fmt.Sprintf("gpt-fuzz-%d", next.Add(1))
		if path == "/v1/messages" {
			model = fmt.Sprintf("claude-fuzz-%d", next.Add(1))
		}
		streams.Store(model, stream)
		defer streams.Delete(model)
		body, _ := json.Marshal(map[string]any{
			"model": model, "stream": true, "max_tokens": 16, "input": "use " + fuzzEmail,
			"messages": []any{map[string]any{"role": "user", "content": "use " + fuzzToken + " for " + fuzzEmail + " with " + fuzzKnown}},
		})
		rec := serveOnce(t, h, path, body)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%s: status %d, Content-Type %q: %s", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
	}
}

// FuzzUpstreamStream relays arbitrary bytes from a provider as its SSE
// answer, in both wire formats, while placeholders are live: the handler
// never panics and always returns.
func FuzzUpstreamStream(f *testing.F) {
	run := streamFuzzer(f)
	oa := func(delta string) string {
		return `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}` + "\n\n"
	}
	an := func(typ, data string) string { return "event: " + typ + "\ndata: " + data + "\n\n" }
	for _, s := range []string{
		``,
		"data: [DONE]\n\n",
		oa(`{"content":"[[SECR"}`) + oa(`{"content":"ET_1]] and [[EMAIL_1]"}`) + oa(`{"content":"] done"}`) + "data: [DONE]\n\n",
		oa(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":\"[[SEC"}}]}`) + oa(`{"tool_calls":[{"index":0,"function":{"arguments":"RET_1]]\"}"}}]}`) +
			`data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":-9}}` + "\n\n",
		oa(`{"content":"[[KNOWN_1"}`) + "data: {\"choices\":[{\"index\":\"x\",\"delta\":null,\"finish_reason\":\"stop\"}]}\n\n",
		oa(`{"content":"[[SECRET_1]"}`),
		"data: null\n\ndata: 7\n\ndata: \"[[SECRET_1]]\"\n\ndata: [[SECRET_1]]\n\n",
		": comment\nretry: 10\n\nevent: x\n\n",
		"data: {\"choices\":[{\"index\":1e99,\"delta\":{\"content\":\"[[\"}}]}\r\n\r\n",
		an("message_start", `{"type":"message_start","message":{"usage":{"input_tokens":3}}}`) +
			an("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"[[EMA"}}`) +
			an("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"IL_1]]"}}`) +
			an("content_block_stop", `{"type":"content_block_stop","index":0}`) + an("message_stop", `{"type":"message_stop"}`),
		an("content_block_delta", `{"type":"content_block_delta","index":"1.5","delta":{"type":"input_json_delta","partial_json":"{\"k\":\"[[SECRET_"}}`),
		an("content_block_delta", `{"type":"content_block_delta","index":null,"delta":"text"}`) + an("content_block_stop", `{"type":"content_block_stop"}`),
		"data: {\"a\":1}\ndata: {\"b\":2}\n\n" + "data: {" + strings.Repeat("\"x\":[", 200),
		"data:" + strings.Repeat("[[SECRET_1]]", 300),
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, stream []byte, anthropicWire bool) {
		path := "/v1/chat/completions"
		if anthropicWire {
			path = "/v1/messages"
		}
		run(t, path, stream)
	})
}

// FuzzUpstreamResponsesStream relays arbitrary bytes from a provider as a
// Responses API event stream while placeholders are live: the handler
// never panics and always returns.
func FuzzUpstreamResponsesStream(f *testing.F) {
	run := streamFuzzer(f)
	ev := func(typ, data string) string { return "event: " + typ + "\ndata: " + data + "\n\n" }
	delta := func(typ, item, d string) string {
		return ev(typ, `{"type":"`+typ+`","item_id":"`+item+`","output_index":0,"content_index":0,"delta":"`+d+`","sequence_number":3}`)
	}
	for _, s := range []string{
		``,
		ev("response.created", `{"type":"response.created","response":{"id":"r","output":[]}}`),
		delta("response.output_text.delta", "m", "[[SECR") + delta("response.output_text.delta", "m", "ET_1]] and [[EMA") +
			ev("response.output_text.done", `{"type":"response.output_text.done","item_id":"m","output_index":0,"content_index":0,"text":"[[SECRET_1]] and [[EMA"}`) +
			ev("response.completed", `{"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":-2}}}`),
		delta("response.function_call_arguments.delta", "f", `{\"q\":\"[[EMAIL_`) + ev("response.completed", `{"type":"response.completed"}`),
		delta("response.output_text.delta", "m", "[[SECRET_1]") + delta("response.refusal.delta", "m", "[[") + "data: [DONE]\n\n",
		ev("response.output_text.delta", `{"type":"response.output_text.delta","item_id":null,"delta":7}`) +
			ev("response.output_text.done", `{"type":"response.output_text.done","item_id":{"a":1}}`),
		ev("response.failed", `{"type":"response.failed","response":null}`) + ev("response.incomplete", `[]`),
		"data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":\"[[KNOWN_1\"}\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		run(t, "/v1/responses", stream)
	})
}
