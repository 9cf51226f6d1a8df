package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/custos-dev/custos/gateway"
)

// TestProviderAnswerLimits proves a provider cannot make custos hold an
// unbounded answer: a JSON answer over MaxAnswer gets 502, and a streamed
// event over MaxEvent cuts the stream (the caller sees the connection end
// early, never a complete answer), both recorded as 502.
func TestProviderAnswerLimits(t *testing.T) {
	huge := func(w http.ResponseWriter, r *http.Request, body []byte) {
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"")
			chunk := strings.Repeat("a", 1<<20)
			for range gateway.MaxEvent>>20 + 2 {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"`)
		chunk := strings.Repeat("a", 1<<20)
		for range gateway.MaxAnswer>>20 + 2 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}}]}`)
	}
	up := newFakeUp(t, "huge", huge)
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o")}, Egress: loopbackCloud})

	r := g.post("/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, authHeader("/v1/chat/completions"))
	if msg := checkWireError(t, "/v1/chat/completions", r, http.StatusBadGateway); !strings.Contains(msg, "more than") {
		t.Errorf("oversized answer: %q", msg)
	}
	if u := g.lastUsage(); u.Status != http.StatusBadGateway {
		t.Errorf("usage status %d, want 502", u.Status)
	}

	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	for k, v := range authHeader("/v1/chat/completions") {
		req.Header.Set(k, v)
	}
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err == nil || len(b) > gateway.MaxEvent {
		t.Errorf("oversized event: read %d bytes, err %v; want the stream cut", len(b), err)
	}
	if u := g.lastUsage(); u.Status != http.StatusBadGateway {
		t.Errorf("stream usage status %d, want 502", u.Status)
	}
}

// TestAnthropicBetaQuery proves the ?beta=true of Anthropic's beta calls
// (Claude Code makes them) reaches the provider, and nothing else of the
// caller's query does.
func TestAnthropicBetaQuery(t *testing.T) {
	queries := make(chan string, 4)
	up := newFakeUp(t, "anthropic", func(w http.ResponseWriter, r *http.Request, body []byte) {
		queries <- r.URL.RawQuery
		writeAnthropicAnswer(w, "claude-sonnet-4-5", "ok", false)
	})
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.anthropic(anthropicKey, "claude-*")}, Egress: loopbackCloud})
	hdr := authHeader("/v1/messages")
	hdr["anthropic-version"] = "2023-06-01"
	for path, want := range map[string]string{
		"/v1/messages?beta=true":                 "beta=true",
		"/v1/messages?beta=true&secret=ghp_abcd": "beta=true",
		"/v1/messages?other=1":                   "",
	} {
		r := g.post(path, `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, hdr)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		if got := <-queries; got != want {
			t.Errorf("%s: provider saw query %q, want %q", path, got, want)
		}
	}
}

// TestStreamLongEvent proves an event longer than the stream reader's
// buffer (one 100 KB data line) is relayed whole, with a placeholder in its
// middle restored.
func TestStreamLongEvent(t *testing.T) {
	const mail = "dana.ops@northwind-traders.com"
	pad := strings.Repeat("x", 50<<10)
	up := newFakeUp(t, "long", func(w http.ResponseWriter, r *http.Request, body []byte) {
		ph := regexp.MustCompile(`\[\[EMAIL_[0-9]+\]\]`).Find(body)
		if ph == nil {
			http.Error(w, "no placeholder", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"`+pad+string(ph)+pad+`"}}]}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o")}, Egress: loopbackCloud, Engine: newEngine(t, nil, nil)})
	r := g.post("/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"write to `+mail+`"}]}`, authHeader("/v1/chat/completions"))
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var text strings.Builder
	for _, line := range strings.Split(r.body, "\n") {
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("event %.80q…: %v", d, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if got, want := text.String(), pad+mail+pad; got != want {
		t.Errorf("relayed %d bytes (restored: %v), want %d", len(got), strings.Contains(got, mail), len(want))
	}
}
