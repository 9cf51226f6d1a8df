package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
)

// anthropicUp is an Anthropic-compatible provider on loopback speaking the
// documented Messages wire format (JSON and SSE); it echoes the placeholders
// it received, so the caller's answer shows whether they were restored.
type anthropicUp struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []fakeRequest
	qs  []string
}

func newAnthropicUp(tb testing.TB) *anthropicUp {
	u := &anthropicUp{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, fakeRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: string(b)})
		u.qs = append(u.qs, r.URL.RawQuery)
		u.mu.Unlock()
		text := "seen: " + strings.Join(placeholderRE.FindAllString(string(b), -1), " ")
		if !strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-local","stop_reason":"end_turn","stop_sequence":null,"content":[{"type":"text","text":%q}],"usage":{"input_tokens":21,"output_tokens":4}}`, text)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		ev := func(name, data string) { fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data); fl.Flush() }
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-local","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"output_tokens":1}}}`)
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		for i := 0; i < len(text); i += 5 { // cut placeholders apart
			q, _ := json.Marshal(text[i:min(i+5, len(text))])
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+string(q)+`}}`)
		}
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}`)
		ev("message_stop", `{"type":"message_stop"}`)
	}))
	tb.Cleanup(u.srv.Close)
	return u
}

// TestE2E_GatewayAnthropicClaudeCode drives `custos serve` the way Claude
// Code does (ANTHROPIC_BASE_URL at custos, the custos key as the API key,
// beta calls with anthropic-beta and ?beta=true), with the official
// anthropic-sdk-go, to an Anthropic-compatible provider added as kind
// local-anthropic: the provider sees placeholders and its own key only,
// the headers and the beta flag arrive, and the SDK gets the values back,
// streamed and not.
func TestE2E_GatewayAnthropicClaudeCode(t *testing.T) {
	e := MustStartE2E(t)
	up := newAnthropicUp(t)
	provKey := "sk-ant-local-" + randAlnum(t, 24)
	e.MustProvider(t, provKey, "claude-lab", "--kind", "local-anthropic", "--base-url", up.srv.URL, "--model", "claude-*")
	tok, _ := e.MustAgentKey(t, "claude-code")
	ghp := "ghp_" + randAlnum(t, 36)
	email := "dana." + strings.ToLower(randAlnum(t, 6)) + "@northwind-traders.com"
	e.Remember(ghp)
	e.Remember(email)

	c := anthropic.NewClient(aoption.WithBaseURL(e.Main.URL()), aoption.WithAPIKey(tok), aoption.WithMaxRetries(0))
	params := anthropic.BetaMessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 64,
		Messages: []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("deploy with " + ghp + " and mail " + email))},
		Betas:    []anthropic.AnthropicBeta{"interleaved-thinking-2025-05-14"},
	}
	ctx := context.Background()
	msg, err := c.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Content[0].Text; !strings.Contains(got, ghp) || !strings.Contains(got, email) {
		t.Errorf("the SDK got %q, want the values restored", got)
	}
	stream := c.Beta.Messages.NewStreaming(ctx, params)
	var text strings.Builder
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "content_block_delta" {
			text.WriteString(ev.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := text.String(); !strings.Contains(got, ghp) || !strings.Contains(got, email) {
		t.Errorf("the stream gave %q, want the values restored", got)
	}

	up.mu.Lock()
	got, qs := append([]fakeRequest(nil), up.got...), append([]string(nil), up.qs...)
	up.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("provider got %d requests, want 2", len(got))
	}
	for i, r := range got {
		if r.Path != "/v1/messages" || qs[i] != "beta=true" {
			t.Errorf("provider got %s?%s", r.Path, qs[i])
		}
		if r.Header.Get("x-api-key") != provKey || r.Header.Get("Authorization") != "" {
			t.Errorf("provider auth headers: x-api-key %q, Authorization %q", r.Header.Get("x-api-key"), r.Header.Get("Authorization"))
		}
		if r.Header.Get("anthropic-version") == "" || !strings.Contains(r.Header.Get("anthropic-beta"), "interleaved-thinking-2025-05-14") {
			t.Errorf("anthropic headers not forwarded: %v", r.Header)
		}
		for _, v := range []string{ghp, email, tok} {
			if strings.Contains(r.Body, v) || strings.Contains(fmt.Sprint(r.Header), v) {
				t.Fatalf("the provider received a planted value or the custos key")
			}
		}
	}
	e.AssertNoLeaks(t)
}
