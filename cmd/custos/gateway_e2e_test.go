package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/custos-dev/custos"
)

// The end-to-end tests of the model gateway: a real server (MustStartE2E),
// configured with the CLI, called with the official OpenAI SDK and raw
// HTTP, in front of a fake OpenAI-compatible provider on loopback (a local
// provider: cloud kinds are refused at loopback addresses).

// placeholderRE matches the gateway's placeholders ([[SECRET_1]], [[EMAIL_2]]).
var placeholderRE = regexp.MustCompile(`\[\[[A-Z][A-Z0-9_]*_[0-9]+\]\]`)

// keyIDRE matches an API key id.
var keyIDRE = regexp.MustCompile(`key_[0-9a-f]{16}`)

// fakeRequest is one request the fake provider received.
type fakeRequest struct {
	Path, Auth string
	Header     http.Header
	Body       string
}

// fakeProvider is an OpenAI-compatible model server (chat completions as
// JSON or SSE, embeddings) that records what it receives. Every chat
// answer echoes the placeholders it was sent and reports 10 tokens in and
// 5 out.
type fakeProvider struct {
	srv *httptest.Server

	mu   sync.Mutex
	got  []fakeRequest
	hold func() // if set, called before answering a chat request
}

func newFakeProvider(tb testing.TB) *fakeProvider {
	tb.Helper()
	fp := &fakeProvider{}
	fp.srv = httptest.NewServer(http.HandlerFunc(fp.serve))
	tb.Cleanup(fp.srv.Close)
	return fp
}

// BaseURL is the provider's base URL as custos takes it (with /v1).
func (fp *fakeProvider) BaseURL() string { return fp.srv.URL + "/v1" }

// Requests returns what the provider received so far.
func (fp *fakeProvider) Requests() []fakeRequest {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return append([]fakeRequest(nil), fp.got...)
}

// Saw reports whether any request's headers or body contained s.
func (fp *fakeProvider) Saw(s string) bool {
	for _, r := range fp.Requests() {
		if strings.Contains(r.Body, s) || strings.Contains(fmt.Sprint(r.Header), s) {
			return true
		}
	}
	return false
}

func (fp *fakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	body := string(b)
	fp.mu.Lock()
	fp.got = append(fp.got, fakeRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Header: r.Header.Clone(), Body: body})
	hold := fp.hold
	fp.mu.Unlock()
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/v1/embeddings":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","model":%q,"data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5]}],"usage":{"prompt_tokens":3,"total_tokens":3}}`, req.Model)
		return
	case "/v1/responses":
		fp.responses(w, req.Model, req.Stream, "echo "+strings.Join(placeholderRE.FindAllString(body, -1), " "))
		return
	case "/v1/chat/completions":
	default:
		http.NotFound(w, r)
		return
	}
	if hold != nil {
		hold()
	}
	text := "echo " + strings.Join(placeholderRE.FindAllString(body, -1), " ")
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`, req.Model, text)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	chunk := func(delta, finish string) {
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", req.Model, delta, finish)
		if fl != nil {
			fl.Flush()
		}
	}
	chunk(`{"role":"assistant","content":""}`, "null")
	for len(text) > 0 { // 4-byte pieces cut the placeholders apart
		n := min(4, len(text))
		p, _ := json.Marshal(text[:n])
		chunk(`{"content":`+string(p)+`}`, "null")
		text = text[n:]
	}
	chunk(`{}`, `"stop"`)
	fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}}\n\ndata: [DONE]\n\n", req.Model)
}

// responses answers as OpenAI's Responses API: text as one message, or as
// a stream of events whose 4-byte deltas cut the placeholders apart.
func (fp *fakeProvider) responses(w http.ResponseWriter, model string, stream bool, text string) {
	usage := `{"input_tokens":12,"output_tokens":6,"total_tokens":18}`
	msg := func(t string) string {
		b, _ := json.Marshal(t)
		return `{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":` + string(b) + `,"annotations":[]}]}`
	}
	done := fmt.Sprintf(`{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":%q,"output":[%s],"usage":%s}`, model, msg(text), usage)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, done)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	seq := 0
	ev := func(typ, fields string) {
		fmt.Fprintf(w, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d,%s}\n\n", typ, typ, seq, fields)
		seq++
		if fl != nil {
			fl.Flush()
		}
	}
	ev("response.created", fmt.Sprintf(`"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":%q,"output":[]}`, model))
	ev("response.output_item.added", `"output_index":0,"item":{"type":"message","id":"msg_1","status":"in_progress","role":"assistant","content":[]}`)
	for rest := text; len(rest) > 0; {
		n := min(4, len(rest))
		d, _ := json.Marshal(rest[:n])
		ev("response.output_text.delta", `"item_id":"msg_1","output_index":0,"content_index":0,"delta":`+string(d))
		rest = rest[n:]
	}
	t, _ := json.Marshal(text)
	ev("response.output_text.done", `"item_id":"msg_1","output_index":0,"content_index":0,"text":`+string(t))
	ev("response.output_item.done", `"output_index":0,"item":`+msg(text))
	ev("response.completed", `"response":`+done)
}

// randAlnum returns n random letters and digits.
func randAlnum(tb testing.TB, n int) string {
	tb.Helper()
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(abc))))
		if err != nil {
			tb.Fatal(err)
		}
		b[i] = abc[k.Int64()]
	}
	return string(b)
}

// MustAgentKey creates an agent key through the CLI and returns its token
// and id.
func (e *E2E) MustAgentKey(tb testing.TB, name string) (tok, id string) {
	tb.Helper()
	out := e.MustCLI(tb, e.Owner, "cli", "", "key", "create", "--name", name, "--role", "agent")
	tok, id = tokenRE.FindString(out), keyIDRE.FindString(out)
	if tok == "" || id == "" {
		tb.Fatalf("key create printed no token or id: %s", out)
	}
	e.Remember(tok)
	return tok, id
}

// MustProvider adds a provider through the CLI, feeding key (if any) on
// stdin, and remembers the key as a value that must never leak.
func (e *E2E) MustProvider(tb testing.TB, key string, args ...string) {
	tb.Helper()
	if key == "" {
		args = append(args, "--no-key")
	} else {
		e.Remember(key)
	}
	out := e.MustCLI(tb, e.Owner, "cli", key+"\n", append([]string{"provider", "add"}, args...)...)
	if key != "" && strings.Contains(out, key) {
		tb.Fatal("provider add printed the key")
	}
}

// Post sends a JSON body to the gateway with tok as the provider API key and
// returns the status and the response body.
func (e *E2E) Post(tb testing.TB, tok, path, body string, hdr ...string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, e.Main.URL()+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// OpenAI returns an OpenAI SDK client for the server with tok as its API key.
func (e *E2E) OpenAI(tok string) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.Main.URL()+"/v1"), option.WithAPIKey(tok), option.WithMaxRetries(0))
}

// MustUsage polls custos usage --json until pred holds for the records
// (they are written in the background) and returns them.
func (e *E2E) MustUsage(tb testing.TB, pred func([]custos.UsageRecord) bool, args ...string) ([]custos.UsageRecord, string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := e.MustCLI(tb, e.Owner, "cli", "", append([]string{"usage", "--json", "--limit", "1000"}, args...)...)
		var recs []custos.UsageRecord
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			tb.Fatalf("usage --json: %v: %s", err, out)
		}
		if pred(recs) {
			return recs, out
		}
		if time.Now().After(deadline) {
			tb.Fatalf("usage records never matched: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNotIn fails if text holds any of values.
func assertNotIn(tb testing.TB, where, text string, values ...string) {
	tb.Helper()
	for _, v := range values {
		if strings.Contains(text, v) {
			tb.Errorf("%s contains a planted value (%d bytes)", where, len(v))
		}
	}
}

func TestE2E_GatewayProviders(t *testing.T) {
	// Ensure providers are managed through the CLI by admins only: the key
	// comes from stdin, is stored only encrypted (AssertNoLeaks reads the
	// database files) and is never shown again; a cloud kind pointed at a
	// loopback address is refused with a clear error.
	e := MustStartE2E(t)
	provKey := "sk-prov-" + randAlnum(t, 32)
	e.MustProvider(t, provKey, "local", "--kind", "local", "--base-url", "http://127.0.0.1:9/v1", "--model", "m1,m2", "--model", "fam-*", "--priority", "3")

	out := e.MustCLI(t, e.Owner, "cli", "", "provider", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "local local http://127.0.0.1:9/v1 m1,m2,fam-* 3 yes" {
		t.Fatalf("provider list:\n%s", out)
	}
	js := e.MustCLI(t, e.Owner, "cli", "", "provider", "list", "--json")
	var ps []custos.ModelProvider
	if err := json.Unmarshal([]byte(js), &ps); err != nil || len(ps) != 1 || !ps[0].HasKey || ps[0].Kind != "local" {
		t.Fatalf("provider list --json: %v %s", err, js)
	}
	assertNotIn(t, "provider list", out+js, provKey)

	r := e.CLI(t, e.Owner, "cli", "sk-cloud-"+randAlnum(t, 24)+"\n", "provider", "add", "x", "--kind", "openai", "--base-url", "http://127.0.0.1:1/v1", "--model", "gpt-4o")
	if r.Code != 1 || !strings.Contains(r.Err, "not allowed for a cloud provider") || !strings.Contains(r.Err, "[invalid]") {
		t.Fatalf("cloud kind on loopback: exit %d, stderr %q", r.Code, r.Err)
	}
	member := e.MustMemberKey(t, "bob")
	if r := e.CLI(t, member, "cli", "sk-member-"+randAlnum(t, 24)+"\n", "provider", "add", "y", "--kind", "local", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"); r.Code != 1 || !strings.Contains(r.Err, "[forbidden]") {
		t.Fatalf("member adds a provider: exit %d, stderr %q", r.Code, r.Err)
	}

	e.MustCLI(t, e.Owner, "cli", "", "provider", "rm", "local")
	if out := e.MustCLI(t, e.Owner, "cli", "", "provider", "list", "--json"); out != "[]\n" {
		t.Fatalf("after rm: %s", out)
	}
	if r := e.CLI(t, e.Owner, "cli", "", "provider", "rm", "local"); r.Code != 1 || !strings.Contains(r.Err, "[not_found]") {
		t.Fatalf("rm twice: exit %d, stderr %q", r.Code, r.Err)
	}
	seen := map[string]bool{}
	for _, ev := range e.Audit(t) {
		seen[ev.Action] = true
	}
	if !seen[custos.ActionProviderAdd] || !seen[custos.ActionProviderRemove] {
		t.Fatalf("audit lacks provider.add or provider.remove: %v", seen)
	}
}

// startPlanted starts custos serve with the local provider "lab" (a fake
// provider with key provKey) serving model, an agent key named agent, and a
// GitHub token and an email address to plant, remembered so that the
// server's logs and database are checked for them.
func startPlanted(t *testing.T, agent, model string) (e *E2E, fp *fakeProvider, provKey, tok, keyID, ghp, email string) {
	t.Helper()
	e = MustStartE2E(t)
	fp = newFakeProvider(t)
	provKey = "sk-local-" + randAlnum(t, 32)
	e.MustProvider(t, provKey, "lab", "--kind", "local", "--base-url", fp.BaseURL(), "--model", model)
	tok, keyID = e.MustAgentKey(t, agent)
	ghp = "ghp_" + randAlnum(t, 36)
	email = "dana." + strings.ToLower(randAlnum(t, 8)) + "@northwind-traders.com"
	e.Remember(ghp)
	e.Remember(email)
	return e, fp, provKey, tok, keyID, ghp, email
}

func TestE2E_GatewayRedaction(t *testing.T) {
	// Ensure a chat completion through the official OpenAI SDK, JSON and
	// streamed, reaches the provider with placeholders instead of a planted
	// GitHub token and email address and with the provider's key instead of
	// the custos key; the SDK gets the original values back; usage lists
	// the requests with their tokens and no content; nothing leaks into the
	// server's logs or database.
	e, fp, provKey, tok, keyID, ghp, email := startPlanted(t, "claude-laptop", "local-gpt")
	ctx := context.Background()
	c := e.OpenAI(tok)
	params := openai.ChatCompletionNewParams{
		Model:     "local-gpt",
		MaxTokens: openai.Int(50),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Deploy with " + ghp),
			openai.UserMessage("Mail " + email + " the status."),
		},
	}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; !strings.Contains(got, ghp) || !strings.Contains(got, email) || strings.Contains(got, "[[") {
		t.Fatalf("SDK got %q: want the original values restored", got)
	}
	st := c.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; !strings.Contains(got, ghp) || !strings.Contains(got, email) || strings.Contains(got, "[[") {
		t.Fatalf("SDK stream got %q: want the original values restored", got)
	}

	reqs := fp.Requests()
	if len(reqs) != 2 {
		t.Fatalf("provider got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.Path != "/v1/chat/completions" || r.Auth != "Bearer "+provKey {
			t.Fatalf("provider got %s with Authorization %q: want the provider key", r.Path, r.Auth)
		}
		if n := len(placeholderRE.FindAllString(r.Body, -1)); n < 2 {
			t.Fatalf("provider body has %d placeholders: %s", n, r.Body)
		}
	}
	if fp.Saw(ghp) || fp.Saw(email) || fp.Saw(tok) {
		t.Fatal("the provider saw a planted value or the custos key")
	}

	// The models the key may use; and the Anthropic endpoint refuses a
	// model served by an OpenAI-format provider without calling it.
	ms, err := c.Models.List(ctx)
	if err != nil || len(ms.Data) != 1 || ms.Data[0].ID != "local-gpt" {
		t.Fatalf("models: %v %+v", err, ms)
	}
	status, body := e.Post(t, tok, "/v1/messages", `{"model":"local-gpt","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "anthropic-version", "2023-06-01")
	if status != http.StatusBadRequest || !strings.Contains(body, `"invalid_request_error"`) || !strings.Contains(body, "openai format") || len(fp.Requests()) != 2 {
		t.Fatalf("/v1/messages for an OpenAI-format model: %d %s", status, body)
	}

	all, js := e.MustUsage(t, func(rs []custos.UsageRecord) bool { return len(rs) >= 3 })
	// The refused /v1/messages request is on record too, with no provider.
	var recs []custos.UsageRecord
	for _, u := range all {
		if u.Route == "messages" {
			if u.Status != http.StatusBadRequest || u.Provider != "" || u.TokensIn != 0 {
				t.Errorf("refusal record %+v", u)
			}
			continue
		}
		recs = append(recs, u)
	}
	for _, u := range recs {
		if u.KeyID != keyID || u.Provider != "lab" || u.Model != "local-gpt" || u.Route != "chat" || u.Status != 200 ||
			u.TokensIn != 10 || u.TokensOut != 5 || u.Redactions < 2 || u.LatencyMS <= 0 {
			t.Errorf("usage record %+v", u)
		}
	}
	if len(all) != 3 || len(recs) != 2 || recs[0].Stream == recs[1].Stream {
		t.Fatalf("want one streamed and one JSON record and one refusal: %+v", all)
	}
	table := e.MustCLI(t, e.Owner, "cli", "", "usage")
	sum := e.MustCLI(t, e.Owner, "cli", "", "usage", "--by", "model", "--json")
	var ss []custos.UsageSummary
	if err := json.Unmarshal([]byte(sum), &ss); err != nil || len(ss) != 1 || ss[0].Group != "local-gpt" || ss[0].Requests != 3 || ss[0].Errors != 1 || ss[0].TokensIn != 20 || ss[0].TokensOut != 10 {
		t.Fatalf("usage --by model: %v %s", err, sum)
	}
	assertNotIn(t, "usage output", js+table+sum, ghp, email, "Deploy with", "the status", tok, provKey)

	// An agent key reads its own usage only.
	own := e.MustCLI(t, tok, "cli", "", "usage", "--json")
	if err := json.Unmarshal([]byte(own), &recs); err != nil || len(recs) != 3 {
		t.Fatalf("agent's own usage: %v %s", err, own)
	}
	owner, err := e.Main.Service.Authenticate(ctx, e.Owner)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.CLI(t, tok, "cli", "", "usage", "--key", owner.ID); r.Code != 1 || !strings.Contains(r.Err, "[forbidden]") {
		t.Fatalf("agent reads the owner's usage: exit %d %s", r.Code, r.Err)
	}
}

func TestE2E_GatewayResponses(t *testing.T) {
	// Ensure the Responses API (Codex's only wire API) through custos serve and the official SDK: the provider gets
	// placeholders and its own key, the SDK the values back, JSON and streamed, and usage is recorded as route responses.
	e, fp, provKey, tok, _, ghp, email := startPlanted(t, "codex", "gpt-5*")
	ctx := context.Background()
	c := e.OpenAI(tok)
	params := responses.ResponseNewParams{
		Model:           "gpt-5-codex",
		Instructions:    openai.String("Deploy with " + ghp),
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Mail " + email + " the status.")},
		MaxOutputTokens: openai.Int(64),
	}
	resp, err := c.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.OutputText(); !strings.Contains(got, ghp) || !strings.Contains(got, email) || strings.Contains(got, "[[") {
		t.Fatalf("SDK got %q: want the original values restored", got)
	}
	st := c.Responses.NewStreaming(ctx, params)
	var text strings.Builder
	for st.Next() {
		if ev := st.Current(); ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if got := text.String(); got != resp.OutputText() {
		t.Fatalf("SDK stream got %q, want %q", got, resp.OutputText())
	}
	reqs := fp.Requests()
	if len(reqs) != 2 || reqs[0].Path != "/v1/responses" || reqs[0].Auth != "Bearer "+provKey {
		t.Fatalf("provider got %+v", reqs)
	}
	if fp.Saw(ghp) || fp.Saw(email) || fp.Saw(tok) {
		t.Fatal("the provider saw a planted value or the custos key")
	}
	all, _ := e.MustUsage(t, func(rs []custos.UsageRecord) bool { return len(rs) >= 2 })
	for _, u := range all {
		if u.Route != "responses" || u.TokensIn != 12 || u.TokensOut != 6 || u.Redactions < 2 || u.Provider != "lab" {
			t.Errorf("usage %+v", u)
		}
	}
}

func TestE2E_GatewayKnownSecret(t *testing.T) {
	// Ensure the value of a stored secret (and its base64) in a prompt never
	// reaches the provider, is restored in the answer, and is audited as
	// gateway.secret_detected naming the secret, never the value; and that
	// with serve --on-secret block the request is refused with 403 naming
	// the secret, before the provider is called.
	e := MustStartE2E(t)
	fp := newFakeProvider(t)
	e.MustProvider(t, "", "lab", "--kind", "local", "--base-url", fp.BaseURL(), "--model", "local-gpt")
	value := "kv-" + randAlnum(t, 24)
	b64 := base64.StdEncoding.EncodeToString([]byte(value))
	e.Remember(value)
	e.Remember(b64)
	e.MustCLI(t, e.Owner, "cli", value+"\n", "secret", "set", "DEPLOY_KEY", "--project", "web")
	tok, _ := e.MustAgentKey(t, "agent")

	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "local-gpt",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("use " + value + " or " + b64 + " to deploy")},
	}
	oc := e.OpenAI(tok)
	resp, err := oc.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; !strings.Contains(got, value) || !strings.Contains(got, b64) {
		t.Fatalf("SDK got %q: want both values restored", got)
	}
	if fp.Saw(value) || fp.Saw(b64) || len(fp.Requests()) != 1 {
		t.Fatalf("the provider saw the stored value (%d requests)", len(fp.Requests()))
	}
	events := e.MustCLI(t, e.Owner, "cli", "", "audit", "list", "--json")
	var evs []custos.AuditEvent
	if err := json.Unmarshal([]byte(events), &evs); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, ev := range evs {
		if ev.Action == custos.ActionGatewaySecret {
			found++
			if ev.Secret != "DEPLOY_KEY" || ev.Project != "web" || ev.Outcome != "redacted" || ev.Model != "local-gpt" {
				t.Errorf("event %+v", ev)
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d gateway.secret_detected events, want 1", found)
	}
	assertNotIn(t, "audit list", events, value, b64)
	e.MustUsage(t, func(rs []custos.UsageRecord) bool { return len(rs) == 1 && rs[0].KnownHits == 1 && rs[0].Status == 200 })

	e.Close()
	e.MustStart(t, "--on-secret", "block")
	oc = e.OpenAI(tok)
	_, err = oc.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || !strings.Contains(apiErr.Message, "web/DEPLOY_KEY") {
		t.Fatalf("on-secret block: %v", err)
	}
	assertNotIn(t, "the 403", apiErr.Message+apiErr.RawJSON(), value, b64)
	if len(fp.Requests()) != 1 {
		t.Fatal("a blocked request reached the provider")
	}
	blocked := 0
	for _, ev := range e.Audit(t) {
		if ev.Action == custos.ActionGatewaySecret && ev.Outcome == "blocked" && ev.Secret == "DEPLOY_KEY" {
			blocked++
		}
	}
	if blocked != 1 {
		t.Fatalf("%d blocked gateway.secret_detected events, want 1", blocked)
	}
	e.MustUsage(t, func(rs []custos.UsageRecord) bool {
		return len(rs) == 2 && rs[0].Status == http.StatusForbidden && rs[0].KnownHits == 1
	})
}

func TestE2E_GatewayBudgetConcurrent(t *testing.T) {
	// Ensure a token budget holds under 200 concurrent requests: each
	// reserves its worst case W (forwarded body size + max_tokens) before
	// it is forwarded, and the provider holds every request until all 200
	// were either refused or are waiting there, so every reservation is
	// concurrent. Exactly floor(N/W) pass, the rest get 429 about the
	// token budget; afterwards spent <= N and nothing stays reserved; usage
	// lists every request with no content.
	e := MustStartE2E(t)
	fp := newFakeProvider(t)
	e.MustProvider(t, "", "lab", "--kind", "local", "--base-url", fp.BaseURL(), "--model", "budget-gpt")
	tok, _ := e.MustAgentKey(t, "agent")
	probe := "budget-probe-" + randAlnum(t, 16)
	e.Remember(probe)
	const maxTokens, total, want = 100, 200, 37
	body := `{"model":"budget-gpt","max_tokens":100,"messages":[{"role":"user","content":"` + probe + `"}]}`

	// Measure the forwarded body with no budget set.
	if status, b := e.Post(t, tok, "/v1/chat/completions", body); status != 200 {
		t.Fatalf("calibration: %d %s", status, b)
	}
	w := int64(len(fp.Requests()[0].Body)) + maxTokens
	limit := want*w + w/2
	e.MustCLI(t, e.Owner, "cli", "", "budget", "set", "--tokens", fmt.Sprint(limit), "--per", "day")

	var arrived atomic.Int64
	var timedOut atomic.Bool
	release := make(chan struct{})
	arrive := func() {
		if arrived.Add(1) == total {
			close(release)
		}
	}
	fp.mu.Lock()
	fp.hold = func() {
		arrive()
		select {
		case <-release:
		case <-time.After(15 * time.Second):
			timedOut.Store(true)
		}
	}
	fp.mu.Unlock()

	tr := &http.Transport{MaxIdleConnsPerHost: total}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	type result struct {
		status int
		body   string
		err    error
	}
	results := make([]result, total)
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.Main.URL()+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				results[i].err = err
				arrive()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			results[i] = result{status: resp.StatusCode, body: string(b)}
			if resp.StatusCode != http.StatusOK {
				arrive()
			}
		})
	}
	wg.Wait()
	if timedOut.Load() {
		t.Errorf("the barrier timed out: %d of %d arrived", arrived.Load(), total)
	}
	ok, refused := 0, 0
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Fatalf("request: %v", r.err)
		case r.status == http.StatusOK:
			ok++
		case r.status == http.StatusTooManyRequests && strings.Contains(r.body, "Token budget exhausted"):
			refused++
		default:
			t.Fatalf("unexpected answer %d: %s", r.status, r.body)
		}
	}
	if ok != want || refused != total-want {
		t.Fatalf("%d passed and %d were refused; want floor(N/W) = %d of %d (W=%d, N=%d)", ok, refused, want, total, w, limit)
	}

	var bs []custos.Budget
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := e.MustCLI(t, e.Owner, "cli", "", "budget", "list", "--json")
		if err := json.Unmarshal([]byte(out), &bs); err != nil || len(bs) != 1 {
			t.Fatalf("budget list: %v %s", err, out)
		}
		if bs[0].Reserved == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b := bs[0]; b.Reserved != 0 || b.Spent != want*15 || b.Spent > limit || b.Limit != limit {
		t.Fatalf("budget after: %+v; want spent %d (15 tokens per answered request), reserved 0", b, want*15)
	}

	recs, js := e.MustUsage(t, func(rs []custos.UsageRecord) bool { return len(rs) == total+1 })
	byStatus := map[int]int{}
	for _, u := range recs {
		byStatus[u.Status]++
	}
	if byStatus[200] != want+1 || byStatus[429] != total-want {
		t.Fatalf("usage by status %v", byStatus)
	}
	sum := e.MustCLI(t, e.Owner, "cli", "", "usage", "--by", "model", "--json")
	var ss []custos.UsageSummary
	if err := json.Unmarshal([]byte(sum), &ss); err != nil || len(ss) != 1 || ss[0].Requests != total+1 || ss[0].Errors != total-want ||
		ss[0].TokensIn != (want+1)*10 || ss[0].TokensOut != (want+1)*5 {
		t.Fatalf("usage --by model: %v %s", err, sum)
	}
	assertNotIn(t, "usage output", js+sum, probe, tok)
}

func TestE2E_GatewayPrivacy(t *testing.T) {
	// Ensure privacy rules set with the CLI route requests: in sensitive
	// mode embeddings for a model only a cloud provider serves are refused
	// with 403 while a local provider still serves; offline refuses every
	// cloud model; a key's and a project's rule apply to their requests.
	// (Refusals happen at routing: no request leaves for the cloud.)
	e := MustStartE2E(t)
	fp := newFakeProvider(t)
	e.MustProvider(t, "", "lab", "--kind", "local", "--base-url", fp.BaseURL(), "--model", "local-gpt,local-embed")
	e.MustProvider(t, "sk-cloud-"+randAlnum(t, 32), "cloud", "--kind", "openai", "--model", "cloud-gpt,cloud-embed")
	tok, keyID := e.MustAgentKey(t, "agent")
	embed := func(model string, hdr ...string) (int, string) {
		return e.Post(t, tok, "/v1/embeddings", `{"model":"`+model+`","input":"func main() {}"}`, hdr...)
	}
	chat := func(model string, hdr ...string) (int, string) {
		return e.Post(t, tok, "/v1/chat/completions", `{"model":"`+model+`","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, hdr...)
	}
	expect := func(what string, status int, body string, want int, msg string) {
		t.Helper()
		if status != want || !strings.Contains(body, msg) {
			t.Fatalf("%s: %d %s; want %d with %q", what, status, body, want, msg)
		}
	}

	e.MustCLI(t, e.Owner, "cli", "", "privacy", "set", "sensitive")
	s, b := embed("cloud-embed")
	expect("sensitive: cloud embeddings", s, b, 403, "sensitive mode sends embeddings (code context) to local providers only")
	s, b = chat("cloud-gpt", "X-Custos-Context", "code")
	expect("sensitive: cloud code context", s, b, 403, "sensitive mode sends code context to local providers only")
	s, b = embed("local-embed")
	expect("sensitive: local embeddings", s, b, 200, `"embedding"`)

	e.MustCLI(t, e.Owner, "cli", "", "privacy", "set", "offline")
	s, b = chat("cloud-gpt")
	expect("offline: cloud chat", s, b, 403, "offline mode allows local providers only")
	s, b = chat("local-gpt")
	expect("offline: local chat", s, b, 200, `"chat.completion"`)
	js := e.MustCLI(t, e.Owner, "cli", "", "privacy", "list", "--json")
	var rules []custos.PrivacyRule
	if err := json.Unmarshal([]byte(js), &rules); err != nil || len(rules) != 1 || rules[0].Scope != "org" || rules[0].Mode != "offline" {
		t.Fatalf("privacy list: %v %s", err, js)
	}

	e.MustCLI(t, e.Owner, "cli", "", "privacy", "rm")
	e.MustCLI(t, e.Owner, "cli", "", "privacy", "set", "offline", "--key", keyID)
	s, b = chat("cloud-gpt")
	expect("key rule offline: cloud chat", s, b, 403, "offline mode allows local providers only")
	e.MustCLI(t, e.Owner, "cli", "", "privacy", "rm", "--key", keyID)
	e.MustCLI(t, e.Owner, "cli", "", "privacy", "set", "sensitive", "--project", "payroll")
	s, b = embed("cloud-embed", "X-Custos-Project", "payroll")
	expect("project rule sensitive: cloud embeddings", s, b, 403, "sensitive mode")
	if out := e.MustCLI(t, e.Owner, "cli", "", "privacy", "list"); !strings.Contains(out, "payroll") || strings.Contains(out, keyID) {
		t.Fatalf("privacy list:\n%s", out)
	}
	if r := e.CLI(t, e.Owner, "cli", "", "privacy", "rm", "--key", keyID); r.Code != 1 || !strings.Contains(r.Err, "[not_found]") {
		t.Fatalf("rm a removed rule: exit %d %s", r.Code, r.Err)
	}
	if n := len(fp.Requests()); n != 2 {
		t.Fatalf("the local provider got %d requests, want 2", n)
	}
}
