package gateway_test

import (
	"bytes"
	"io"
	"net/http"
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
