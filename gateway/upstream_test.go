package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/gateway"
)

// countingListener accepts connections on 127.0.0.1 and closes them at
// once, remembering their peers.
type countingListener struct {
	ln    net.Listener
	mu    sync.Mutex
	peers []string
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.peers = append(l.peers, c.RemoteAddr().String())
			l.mu.Unlock()
			_ = c.Close()
		}
	}()
	return l
}

func (l *countingListener) port() string {
	return fmt.Sprint(l.ln.Addr().(*net.TCPAddr).Port)
}

// acceptedBefore connects a sentinel and returns how many connections the
// listener accepted before it: the accept queue is first in, first out, so
// any connection made earlier is counted.
func (l *countingListener) acceptedBefore(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	me := c.LocalAddr().String()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		i := slices.Index(l.peers, me)
		l.mu.Unlock()
		if i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatal("the sentinel connection was not accepted in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ensure cloud providers at loopback, link-local (metadata), mapped and
// NAT64 forms of them, and host names resolving to loopback are refused
// by the default egress policy with 502, never connected to, and never
// counted against the provider's circuit.
func TestEgressRefusesNonPublicCloudProviders(t *testing.T) {
	l := newCountingListener(t)
	port := l.port()
	for _, base := range []string{
		"http://127.0.0.1:" + port + "/v1",
		"https://127.0.0.1:" + port + "/v1",
		"http://169.254.169.254/v1",
		"https://169.254.169.254/v1",
		"http://[::ffff:127.0.0.1]:" + port + "/v1",
		"https://[::ffff:127.0.0.1]:" + port + "/v1",
		"https://[::ffff:169.254.169.254]/v1",
		"https://[64:ff9b::7f00:1]:" + port + "/v1",
		"https://[::1]:" + port + "/v1",
		"https://0.0.0.0:" + port + "/v1",
		"http://localhost:" + port + "/v1",
		"https://localhost:" + port + "/v1", // a DNS name: refused at connect time
		"https://LocalHost:" + port + "/v1",
	} {
		t.Run(base, func(t *testing.T) {
			g := newGW(t, gateway.Config{
				Providers:       []gateway.Provider{{Name: "evil", Kind: gateway.KindOpenAI, BaseURL: base, APIKey: "k", Models: []string{"gpt-4o"}}},
				Engine:          newEngine(t, nil, nil),
				BreakerFailures: 2,
			})
			for range 3 { // more than BreakerFailures: refusals never open the circuit
				r := g.post("/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, authHeader("/v1/chat/completions"))
				msg := checkWireError(t, "/v1/chat/completions", r, 502)
				if !strings.Contains(msg, "egress policy") {
					t.Fatalf("message %q does not name the egress policy", msg)
				}
			}
			if u := g.usages(); len(u) != 3 || u[0].Status != 502 || u[0].TokensIn != 0 {
				t.Errorf("usage %+v", u)
			}
		})
	}
	t.Run("Anthropic", func(t *testing.T) {
		g := newGW(t, gateway.Config{
			Providers: []gateway.Provider{{Name: "evil", Kind: gateway.KindAnthropic, BaseURL: "https://localhost:" + port, APIKey: "k", Models: []string{"claude-*"}}},
			Engine:    newEngine(t, nil, nil),
		})
		r := g.post("/v1/messages", `{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, authHeader("/v1/messages"))
		if msg := checkWireError(t, "/v1/messages", r, 502); !strings.Contains(msg, "egress policy") {
			t.Errorf("message %q does not name the egress policy", msg)
		}
	})
	if n := l.acceptedBefore(t); n != 0 {
		t.Errorf("the listener accepted %d connections from the gateway", n)
	}
}

// Ensure a provider marked Local at a link-local (cloud metadata) address,
// in any spelling, is refused in every mode.
func TestLocalProviderAtMetadataAddressRefused(t *testing.T) {
	for _, mode := range []string{custos.PrivacyNormal, custos.PrivacySensitive, custos.PrivacyOffline} {
		for _, base := range []string{"http://169.254.169.254/v1", "http://169.254.169.254:80/v1", "https://[::ffff:169.254.169.254]/v1", "http://[64:ff9b::a9fe:a9fe]/v1", "http://[fe80::1]/v1"} {
			t.Run(mode+"/"+base, func(t *testing.T) {
				g := newGW(t, gateway.Config{
					Providers: []gateway.Provider{{Name: "metadata", Kind: gateway.KindOpenAI, BaseURL: base, Models: []string{"llama*"}, Local: true}},
					Engine:    newEngine(t, nil, nil),
					Mode:      mode,
				})
				r := g.post("/v1/chat/completions", `{"model":"llama3","messages":[{"role":"user","content":"hi"}]}`, authHeader("/v1/chat/completions"))
				msg := checkWireError(t, "/v1/chat/completions", r, 502)
				if !strings.Contains(msg, "egress policy") || !strings.Contains(msg, "metadata") {
					t.Errorf("message %q does not name the provider and the egress policy", msg)
				}
			})
		}
	}
}

// Ensure BreakerFailures consecutive 5xx open a provider's circuit: the
// next request gets 503 "circuit open" without reaching the provider; once
// the provider is healthy the circuit half-opens after BreakerOpenFor and
// closes on a success.
func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	up := newFakeUp(t, "flaky", nil)
	up.status.Store(500)
	g := newGW(t, gateway.Config{
		Providers:       []gateway.Provider{up.openAI(openaiKey, "gpt-4o")},
		Egress:          loopbackCloud,
		BreakerFailures: 3,
		BreakerOpenFor:  200 * time.Millisecond,
	})
	c := g.openai()
	ctx := context.Background()
	for i := range 3 {
		_, err := c.Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
		if st, _ := openaiStatus(err); st != 502 {
			t.Fatalf("failure %d: %v, want 502", i+1, err)
		}
	}
	if got, want := up.hits.Load(), int64(3); got != want {
		t.Fatalf("provider hits = %d, want %d", got, want)
	}
	// The fourth request finds the circuit open. A machine slow enough to
	// let BreakerOpenFor pass first sends a half-open probe instead, which
	// fails and reopens the circuit; the next request must then be refused.
	refused := false
	for range 10 {
		before := up.hits.Load()
		_, err := c.Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
		st, e := openaiStatus(err)
		if st == 503 {
			if !strings.Contains(e.Message, "circuit open") {
				t.Errorf("503 message %q", e.Message)
			}
			if up.hits.Load() != before {
				t.Fatal("a request refused by the open circuit reached the provider")
			}
			refused = true
			break
		}
		if st != 502 || up.hits.Load() != before+1 {
			t.Fatalf("open circuit: %v (provider hits %d→%d)", err, before, up.hits.Load())
		}
	}
	if !refused {
		t.Fatal("the circuit never opened")
	}
	up.status.Store(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
		if err == nil {
			break
		}
		if st, _ := openaiStatus(err); st != 503 {
			t.Fatalf("while waiting for the circuit: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the circuit did not close in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := up.hits.Load()
	for i := range 5 {
		if _, err := c.Chat.Completions.New(ctx, chatParams("gpt-4o", "hi")); err != nil {
			t.Fatalf("closed circuit, request %d: %v", i+1, err)
		}
	}
	if got, want := up.hits.Load()-before, int64(5); got != want {
		t.Errorf("provider hits after closing = %d, want %d", got, want)
	}
}

// Ensure 4xx answers (the caller's fault, or a rate limit) never open a
// provider's circuit.
func TestCircuitBreakerIgnores4xx(t *testing.T) {
	for _, status := range []int{400, 404, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			up := newFakeUp(t, "picky", nil)
			up.status.Store(int64(status))
			g := newGW(t, gateway.Config{
				Providers:       []gateway.Provider{up.openAI(openaiKey, "gpt-4o")},
				Egress:          loopbackCloud,
				BreakerFailures: 3,
				BreakerOpenFor:  time.Hour,
			})
			for i := range 6 {
				_, err := g.openai().Chat.Completions.New(context.Background(), chatParams("gpt-4o", "hi"))
				if st, _ := openaiStatus(err); st != status {
					t.Fatalf("request %d: %v, want %d", i+1, err, status)
				}
			}
			if got, want := up.hits.Load(), int64(6); got != want {
				t.Errorf("provider hits = %d, want %d", got, want)
			}
		})
	}
}

// fallbackEnv routes gpt-4o to first, then to a healthy second provider.
func fallbackEnv(t *testing.T, first gateway.Provider, cfg gateway.Config) (*gwEnv, *fakeUp) {
	t.Helper()
	second := newFakeUp(t, "second", nil)
	first.Name, first.Models = "first", []string{"gpt-4o"}
	cfg.Providers = []gateway.Provider{first, second.openAI(openaiKey, "gpt-4o")}
	cfg.Egress = loopbackCloud
	return newGW(t, cfg), second
}

// checkFellBack asserts the request was answered by the second provider.
func checkFellBack(t *testing.T, g *gwEnv, second *fakeUp) {
	t.Helper()
	resp, err := g.openai().Chat.Completions.New(context.Background(), chatParams("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Choices[0].Message.Content; !strings.HasPrefix(c, "from second: ") {
		t.Errorf("answered by %q", c)
	}
	if got, want := second.hits.Load(), int64(1); got != want {
		t.Errorf("second provider hits = %d, want %d", got, want)
	}
	if u := g.lastUsage(); u.Provider != "second" || u.Status != 200 || u.TokensIn != 11 {
		t.Errorf("usage %+v", u)
	}
}

// Ensure a 5xx from the first provider falls back to the next one.
func TestFallbackOn5xx(t *testing.T) {
	first := newFakeUp(t, "first", nil)
	first.status.Store(500)
	g, second := fallbackEnv(t, first.openAI(openaiKey), gateway.Config{})
	checkFellBack(t, g, second)
	if got := first.hits.Load(); got != 1 {
		t.Errorf("first provider hits = %d, want 1", got)
	}
}

// Ensure a provider that refuses connections falls back to the next one.
func TestFallbackOnDeadProvider(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	g, second := fallbackEnv(t, gateway.Provider{Kind: gateway.KindOpenAI, BaseURL: dead.URL + "/v1", APIKey: "k"}, gateway.Config{})
	checkFellBack(t, g, second)
}

// Ensure a provider that sends no headers within FirstByteTimeout falls
// back to the next one.
func TestFallbackOnFirstByteTimeout(t *testing.T) {
	release := make(chan struct{})
	first := newFakeUp(t, "first", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before the server's Close
	g, second := fallbackEnv(t, first.openAI(openaiKey), gateway.Config{FirstByteTimeout: 500 * time.Millisecond})
	checkFellBack(t, g, second)
	if got := first.hits.Load(); got != 1 {
		t.Errorf("first provider hits = %d, want 1", got)
	}
}

// Ensure a 4xx from the first provider is answered as is, never retried on
// the next one.
func TestNoFallbackOn4xx(t *testing.T) {
	first := newFakeUp(t, "first", nil)
	first.status.Store(400)
	g, second := fallbackEnv(t, first.openAI(openaiKey), gateway.Config{})
	_, err := g.openai().Chat.Completions.New(context.Background(), chatParams("gpt-4o", "hi"))
	if st, e := openaiStatus(err); st != 400 || !strings.Contains(e.Message, "first says no") {
		t.Fatalf("%v, want the first provider's 400", err)
	}
	if n := second.hits.Load(); n != 0 {
		t.Errorf("second provider called %d times", n)
	}
	if u := g.lastUsage(); u.Provider != "first" || u.Status != 400 {
		t.Errorf("usage %+v", u)
	}
}

// Ensure a stream that breaks after its first bytes reached the caller is
// not retried on the next provider, and the caller sees it broke.
func TestNoRetryAfterStreamStarted(t *testing.T) {
	first := newFakeUp(t, "first", func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"partial\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	g, second := fallbackEnv(t, first.openAI(openaiKey), gateway.Config{})
	st := g.openai().Chat.Completions.NewStreaming(context.Background(), chatParams("gpt-4o", "hi"))
	var text strings.Builder
	for st.Next() {
		for _, ch := range st.Current().Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if got, want := text.String(), "partial"; got != want {
		t.Errorf("caller got %q, want %q", got, want)
	}
	if st.Err() == nil {
		t.Error("the broken stream ended like a complete one")
	}
	if n := second.hits.Load(); n != 0 {
		t.Errorf("second provider called %d times", n)
	}
	if u := g.lastUsage(); u.Provider != "first" || !u.Stream || u.Status != 502 {
		t.Errorf("usage %+v", u)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Ensure the gateway's logs, at debug level and through every failure
// path, never hold request content, the custos key or a provider key.
func TestNoContentInLogs(t *testing.T) {
	tok, email := planted(t)
	value := "hunter2-" + randAlnum(t, 12)
	provKey := "sk-prov-" + randAlnum(t, 24)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	good := newFakeUp(t, "good", nil)
	broken := newFakeUp(t, "broken", nil)
	broken.status.Store(500)
	release := make(chan struct{})
	hang := newFakeUp(t, "hang", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	cut := newFakeUp(t, "cut", func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[[SECRET_1]] [[EMAIL_1]]\"}}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	prov := func(u *fakeUp, models ...string) gateway.Provider { return u.openAI(provKey, models...) }
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{
			prov(good, "gpt-good", "gpt-fallback"),
			prov(broken, "gpt-broken", "gpt-fallback-5xx"),
			prov(hang, "gpt-hang"),
			prov(cut, "gpt-cut"),
			{Name: "dead", Kind: gateway.KindOpenAI, BaseURL: dead.URL + "/v1", APIKey: provKey, Models: []string{"gpt-dead"}},
			{Name: "metadata", Kind: gateway.KindOpenAI, BaseURL: "http://169.254.169.254/v1", APIKey: provKey, Models: []string{"gpt-ssrf"}},
			{Name: "metadata-local", Kind: gateway.KindOpenAI, BaseURL: "http://169.254.169.254/v1", APIKey: provKey, Models: []string{"gpt-ssrf-local"}, Local: true},
			prov(good, "gpt-fallback-5xx"),
			good.anthropic(provKey, "claude-*"),
			prov(broken, "gpt-listed-*"), // its model listing fails
		},
		Engine:           newEngine(t, []string{value}, []string{"DB_PASSWORD"}),
		Egress:           loopbackCloud,
		Logger:           logger,
		BreakerFailures:  2,
		FirstByteTimeout: 500 * time.Millisecond,
	})
	content := "token " + tok + " mail " + email + " password " + value
	ctx := context.Background()
	c := g.openai()
	for _, model := range []string{"gpt-good", "gpt-broken", "gpt-broken", "gpt-broken", "gpt-hang", "gpt-dead", "gpt-ssrf", "gpt-ssrf-local", "gpt-fallback-5xx", "gpt-unknown"} {
		_, _ = c.Chat.Completions.New(ctx, chatParams(model, content))
	}
	for _, model := range []string{"gpt-good", "gpt-cut"} {
		st := c.Chat.Completions.NewStreaming(ctx, chatParams(model, content))
		for st.Next() {
		}
	}
	for _, model := range []string{"gpt-good", "gpt-broken", "gpt-cut"} {
		p := responses.ResponseNewParams{Model: model, Instructions: openai.String(content), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(content)}}
		_, _ = c.Responses.New(ctx, p)
		st := c.Responses.NewStreaming(ctx, p)
		for st.Next() {
		}
	}
	_, _ = c.Models.List(ctx)
	_, _ = g.anthropic().Messages.New(ctx, messageParams("claude-x", content))
	_, _ = g.openai(ooption.WithAPIKey(tok)).Chat.Completions.New(ctx, chatParams("gpt-good", content)) // a secret as the key
	_, _ = g.openai().Chat.Completions.New(ctx, chatParams("gpt-good", content), ooption.WithHeader(gateway.HeaderPrivacy, tok))
	g.settle()

	out := logs.String()
	mustNotContain(t, "the log", out, tok, email, value, custosKey, provKey, "hunter2")
	// The failure paths above were taken and logged.
	for _, want := range []string{"provider unreachable", "egress refused", "circuit changed state", "timed out", "stream broke off", "could not list"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// Ensure TotalTimeout ends a stream a provider never finishes: the caller's
// connection is cut (the answer is not taken for a complete one) and the
// usage record says 502.
func TestTotalTimeoutEndsStream(t *testing.T) {
	release := make(chan struct{})
	up := newFakeUp(t, "slow", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	g := newGW(t, gateway.Config{
		Providers:    []gateway.Provider{up.openAI(openaiKey, "gpt-4o")},
		Egress:       loopbackCloud,
		TotalTimeout: time.Second,
	})
	req, err := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+custosKey)
	client := &http.Client{Timeout: time.Minute} // a guard, far above TotalTimeout
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the stream ended cleanly after %q; want the connection cut", b)
	}
	if !strings.Contains(string(b), "hel") {
		t.Errorf("the first event did not reach the caller: %q", b)
	}
	if u := g.lastUsage(); u.Status != http.StatusBadGateway {
		t.Errorf("usage %+v, want status 502", u)
	}
}

// Ensure a stream's headers reach the caller while the provider has not
// sent its first event (they wait at most HeaderDelay for it), and that
// the events that follow still arrive whole.
func TestStreamHeadersBeforeSlowFirstEvent(t *testing.T) {
	release := make(chan struct{})
	up := newFakeUp(t, "slow-start", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush() // headers only
		select {
		case <-r.Context().Done():
			return
		case <-release:
		}
		for _, part := range []string{"hel", "lo"} {
			_, _ = io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\""+part+"\"}}]}\n\n")
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o")},
		Egress:    loopbackCloud,
	})
	req, err := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+custosKey)
	// The provider sends no event until the caller has the headers: if
	// custos held them back for the first event, Do would wait for ever
	// (here: until the guard's timeout).
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	close(release)
	if err != nil {
		t.Fatalf("no headers while the provider waits: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"hel"`) || !strings.Contains(string(b), `"lo"`) || !strings.HasSuffix(strings.TrimSpace(string(b)), "data: [DONE]") {
		t.Errorf("stream %q", b)
	}
}

// Ensure the event that ends a stream reaches the caller while the
// provider's stream has not ended (it waits at most TailDelay for the end,
// to go out with it in one write), for OpenAI's [DONE] and Anthropic's
// message_stop alike.
func TestStreamLastEventBeforeProviderEnds(t *testing.T) {
	for _, tc := range []struct {
		name, model, path, body, first, last string
	}{
		{"openai", "gpt-4o", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}\n\n", "data: [DONE]\n\n"},
		{"anthropic", "claude-sonnet-4", "/v1/messages", `{"model":"claude-sonnet-4","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\n\n", "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The provider sends each event only once the caller has the
			// one before, and ends its stream only once the caller has the
			// last: held for the end, the last would wait for ever (here:
			// until the guard's timeout).
			seen := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
			up := newFakeUp(t, "lingering", func(w http.ResponseWriter, r *http.Request, _ []byte) {
				w.Header().Set("Content-Type", "text/event-stream")
				for i, ev := range []string{tc.first, tc.last} {
					_, _ = io.WriteString(w, ev)
					w.(http.Flusher).Flush()
					select {
					case <-seen[i]:
					case <-r.Context().Done():
						return
					case <-time.After(time.Minute):
						t.Errorf("the caller did not get event %d while the provider's stream was open", i)
						return
					}
				}
			})
			prov := up.openAI(openaiKey, tc.model)
			if tc.name == "anthropic" {
				prov = up.anthropic(anthropicKey, tc.model)
			}
			g := newGW(t, gateway.Config{Providers: []gateway.Provider{prov}, Egress: loopbackCloud})
			req, err := http.NewRequest(http.MethodPost, g.srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+custosKey)
			resp, err := g.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			end := "data: [DONE]"
			if tc.name == "anthropic" {
				end = `data: {"type":"message_stop"}`
			}
			var got strings.Builder
			buf := make([]byte, 4096)
			for i, want := range []string{"hello", end} {
				for !strings.Contains(got.String(), want) {
					n, err := resp.Body.Read(buf)
					got.Write(buf[:n])
					if err != nil && !strings.Contains(got.String(), want) {
						t.Fatalf("stream ended (%v) before %q; got %q", err, want, got.String())
					}
				}
				close(seen[i])
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got.String(), "hello") {
				t.Errorf("stream %q", got.String())
			}
		})
	}
}

// slowSettle is a Budgets that reserves everything and settles only once
// release is closed (or its context ends), as a busy database would.
type slowSettle struct {
	release chan struct{}
	settled *atomic.Bool // a settlement has returned
}

func (b slowSettle) ReserveBudget(_ context.Context, orgID, keyID string, tokens int64, now time.Time) (*custos.Reservation, error) {
	return &custos.Reservation{OrgID: orgID, Tokens: tokens, Windows: []custos.BudgetWindow{{KeyID: keyID, Period: "day", Start: now}}}, nil
}

func (b slowSettle) SettleBudget(ctx context.Context, _ *custos.Reservation, _ int64) error {
	defer b.settled.Store(true)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

// Ensure an answer reaches the caller before the request's budget is
// settled: the settlement (a database write) waits here until the caller
// has the answer — a non-streamed one whole, a stream up to its last
// event — so an answer held for the end of the handler would come only
// after the settlement gave up (its own timeout), and the settlement
// still happens after.
func TestAnswerBeforeSettlement(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			up := newFakeUp(t, "up", nil)
			budgets := slowSettle{release: make(chan struct{}), settled: new(atomic.Bool)}
			g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o")}, Egress: loopbackCloud, Budgets: budgets})
			body := fmt.Sprintf(`{"model":"gpt-4o","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
			req, err := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/chat/completions", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+custosKey)
			got := make(chan error, 1)
			go func() { got <- readAnswer(g.srv.Client(), req, stream, budgets.settled) }()
			if err := <-got; err != nil {
				t.Fatal(err)
			}
			close(budgets.release)
			if u := g.lastUsage(); u.Status != http.StatusOK {
				t.Errorf("usage %+v, want status 200 once settled", u)
			}
		})
	}
}

// readAnswer sends req and reads its answer — whole, or up to a stream's
// [DONE] — and fails if settled was set before it had it.
func readAnswer(client *http.Client, req *http.Request, stream bool, settled *atomic.Bool) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if stream {
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), "data: [DONE]") {
			n, err := resp.Body.Read(buf)
			got.Write(buf[:n])
			if err != nil && !strings.Contains(got.String(), "data: [DONE]") {
				return fmt.Errorf("stream ended (%v) before [DONE]: %q", err, got.String())
			}
		}
	} else {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(b)) || !json.Valid(b) {
			return fmt.Errorf("status %d, length %d, body %q", resp.StatusCode, resp.ContentLength, b)
		}
	}
	if settled.Load() {
		return errors.New("the answer came only after the budget's settlement")
	}
	return nil
}
