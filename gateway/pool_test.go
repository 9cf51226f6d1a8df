package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/custos-dev/custos/gateway"
)

// TestConcurrentBodiesStayApart sends many requests at once, of many sizes,
// some without a length (chunked), each with its own marker and its own
// email address: each provider request must hold exactly its own marker and
// no address, and each caller must get back exactly its own text, restored.
// The gateway reuses the buffers request bodies are read into; a buffer
// shared or reused too early would show here as a marker in the wrong
// request (run with -race in CI).
func TestConcurrentBodiesStayApart(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	up := newFakeUp(t, "echo", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct {
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) != 1 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		text := req.Messages[0].Content
		if n := strings.Count(text, "marker-"); n != 1 || strings.Contains(text, "@example.com") {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("provider got %d markers, or an address, in %.60q", n, text))
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"m-1","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, jsonString(text))
	})
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "m-*")}, Egress: loopbackCloud, Engine: newEngine(t, nil, nil)})

	concurrently(t, 16, 12, func(id int) error {
		text := fmt.Sprintf("marker-%d %s mail user%d@example.com end", id, strings.Repeat("pad ", (id*397)%3000), id)
		body := `{"model":"m-1","messages":[{"role":"user","content":` + jsonString(text) + `}]}`
		var rd io.Reader = strings.NewReader(body)
		if id%3 == 0 {
			rd = io.MultiReader(rd) // no length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/chat/completions", rd)
		req.Header.Set("Authorization", "Bearer "+custosKey)
		resp, err := g.srv.Client().Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var got struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &got) != nil || len(got.Choices) != 1 {
			return fmt.Errorf("request %d: %d %.200s", id, resp.StatusCode, b)
		}
		if got.Choices[0].Message.Content != text {
			return fmt.Errorf("request %d got back %.80q, not its own text", id, got.Choices[0].Message.Content)
		}
		return nil
	})
	for _, b := range bad {
		t.Error(b)
	}
}

// TestForwardedBodiesStayApart sends many large requests at once to a
// provider that answers before it reads what it was sent, so the gateway
// has the answer — and has finished with the request — while its
// transport may still be writing the redacted copy. The gateway pools
// that copy too; reused before the write ended, it would carry another
// request's text to this provider. Every body the provider reads must
// hold one request's words only, and no zeros (a released buffer is
// cleared).
func TestForwardedBodiesStayApart(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	var checked int
	words := regexp.MustCompile(`w[0-9]+;`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","created":1,"model":"m-1","choices":[{"index":0,"message":{"role":"assistant","content":"done"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
		_ = rc.Flush()
		b, _ := io.ReadAll(r.Body) // may be cut short: the gateway may hang up
		ids := map[string]bool{}
		for _, m := range words.FindAll(b, -1) {
			ids[string(m)] = true
		}
		mu.Lock()
		defer mu.Unlock()
		checked++
		if len(ids) > 1 || bytes.IndexByte(b, 0) >= 0 {
			bad = append(bad, fmt.Sprintf("a provider request held the words of %d requests, or zeros", len(ids)))
		}
	}))
	defer srv.Close()
	prov := gateway.Provider{Name: "early", Kind: gateway.KindOpenAI, BaseURL: srv.URL + "/v1", APIKey: openaiKey, Models: []string{"m-*"}}
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{prov}, Egress: loopbackCloud, Engine: newEngine(t, nil, nil)})

	const workers, each = 8, 10
	concurrently(t, workers, each, func(id int) error {
		text := strings.Repeat(fmt.Sprintf("w%d; ", id), 4000+(id*7919)%30000) // 24 KB to 250 KB
		body := `{"model":"m-1","messages":[{"role":"user","content":"` + text + `"}]}`
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+custosKey)
		resp, err := g.srv.Client().Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("request %d: status %d", id, resp.StatusCode)
		}
		return nil
	})
	srv.Close() // waits for the handlers still reading
	for _, b := range bad {
		t.Error(b)
	}
	if checked != workers*each {
		t.Errorf("the provider read %d bodies, want %d", checked, workers*each)
	}
}

// concurrently runs fn for the ids 0 to workers×each−1, workers at a time,
// and fails t with every error fn returns.
func concurrently(t *testing.T, workers, each int, fn func(id int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := fn(w*each + i); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
