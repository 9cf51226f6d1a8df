package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/custos-dev/custos/gateway"
)

var placeholderRE = regexp.MustCompile(`\[\[[A-Z][A-Z0-9_]*_[0-9]+\]\]`)

// responsesUp answers POST /v1/responses as OpenAI's Responses API does:
// a message whose text names the placeholders it received, and a function
// call whose arguments hold them, as one JSON answer or as the stream of
// events, its deltas cut inside the placeholders.
func responsesUp(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Path != "/v1/responses" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	_ = json.Unmarshal(body, &req)
	ph := placeholderRE.FindAllString(string(body), -1)
	text := "saw " + strings.Join(ph, " and ") + " end [[Z" // the last delta ends like a placeholder begins
	args, _ := json.Marshal(map[string]string{"q": strings.Join(ph, " ")})
	msg := func(status, t string) map[string]any {
		return map[string]any{"type": "message", "id": "msg_1", "status": status, "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": t, "annotations": []any{}}}}
	}
	call := func(status, a string) map[string]any {
		return map[string]any{"type": "function_call", "id": "fc_1", "call_id": "call_Q7x9", "name": "lookup", "arguments": a, "status": status}
	}
	resp := func(status string, output []any, usage bool) map[string]any {
		m := map[string]any{"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": req.Model, "output": output}
		if usage {
			m["usage"] = map[string]any{"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}
		}
		return m
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp("completed", []any{msg("completed", text), call("completed", string(args))}, true))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	seq := 0
	ev := func(m map[string]any) {
		m["sequence_number"] = seq
		seq++
		b, _ := json.Marshal(m)
		_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m["type"], b)
		w.(http.Flusher).Flush()
	}
	ev(map[string]any{"type": "response.created", "response": resp("in_progress", []any{}, false)})
	ev(map[string]any{"type": "response.output_item.added", "output_index": 0, "item": map[string]any{"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []any{}}})
	ev(map[string]any{"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
	for _, d := range splitN(text, 7) {
		ev(map[string]any{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d})
	}
	ev(map[string]any{"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text})
	ev(map[string]any{"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": map[string]any{"type": "output_text", "text": text, "annotations": []any{}}})
	ev(map[string]any{"type": "response.output_item.done", "output_index": 0, "item": msg("completed", text)})
	ev(map[string]any{"type": "response.output_item.added", "output_index": 1, "item": call("in_progress", "")})
	for _, d := range splitN(string(args), 5) {
		ev(map[string]any{"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": d})
	}
	ev(map[string]any{"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 1, "arguments": string(args)})
	ev(map[string]any{"type": "response.output_item.done", "output_index": 1, "item": call("completed", string(args))})
	ev(map[string]any{"type": "response.completed", "response": resp("completed", []any{msg("completed", text), call("completed", string(args))}, true)})
}

// responsesBody is a Responses API request with the planted values in
// every place text can hide, and an encrypted reasoning item that must
// reach the provider byte for byte.
func responsesBody(tok, email, encrypted string, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model": "gpt-5", "stream": stream, "store": false, "max_output_tokens": 64,
		"instructions": "Answer the user. Their mail is " + email,
		"include":      []string{"reasoning.encrypted_content"},
		"input": []any{
			map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "my token is " + tok}}},
			map[string]any{"type": "reasoning", "id": "rs_1", "summary": []any{}, "encrypted_content": encrypted},
			map[string]any{"type": "function_call", "call_id": "call_Q7x9", "name": "lookup", "arguments": `{"who":"` + email + `"}`},
			map[string]any{"type": "function_call_output", "call_id": "call_Q7x9", "output": "found " + tok},
		},
		"tools": []any{map[string]any{"type": "function", "name": "lookup", "description": "Looks up " + email,
			"parameters": map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}}}},
	})
	return string(b)
}

func TestResponsesAPI(t *testing.T) {
	// Ensure POST /v1/responses (Codex's wire API) is redacted in every field, restored in the answer and its stream, and metered.
	tok, email := planted(t)
	encrypted := "gAAAAABo" + "ghp_" + strings.Repeat("Zq8", 12) + "==" // looks like a token: still forwarded as it is
	up := newFakeUp(t, "openai", responsesUp)
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-5*")}, Engine: newEngine(t, nil, nil), Egress: loopbackCloud})
	c := g.openai()
	ctx := context.Background()
	checkUpstream := func() {
		t.Helper()
		body, hdr := up.last(t)
		mustNotContain(t, "the provider's body", body, tok, email, custosKey)
		if hdr.Get("Authorization") != "Bearer "+openaiKey {
			t.Errorf("provider got Authorization %q", hdr.Get("Authorization"))
		}
		var sent struct {
			Input []map[string]any `json:"input"`
		}
		if err := json.Unmarshal([]byte(body), &sent); err != nil || len(sent.Input) != 4 {
			t.Fatalf("provider body %s: %v", body, err)
		}
		if sent.Input[1]["encrypted_content"] != encrypted || sent.Input[2]["call_id"] != "call_Q7x9" || sent.Input[3]["call_id"] != "call_Q7x9" {
			t.Errorf("opaque fields changed: %v", sent.Input)
		}
		if n := len(placeholderRE.FindAllString(body, -1)); n < 5 {
			t.Errorf("%d placeholders in %s", n, body)
		}
	}
	wantArgs := func(args string) {
		t.Helper()
		var a struct{ Q string }
		if err := json.Unmarshal([]byte(args), &a); err != nil || !strings.Contains(a.Q, tok) || !strings.Contains(a.Q, email) || placeholderRE.MatchString(a.Q) {
			t.Errorf("function call arguments %q", args)
		}
	}

	// Not streamed.
	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{}, option.WithRequestBody("application/json", []byte(responsesBody(tok, email, encrypted, false))))
	if err != nil {
		t.Fatal(err)
	}
	checkUpstream()
	if text := resp.OutputText(); !strings.Contains(text, tok) || !strings.Contains(text, email) || placeholderRE.MatchString(text) {
		t.Errorf("output text %q", text)
	}
	if len(resp.Output) != 2 || resp.Output[1].CallID != "call_Q7x9" {
		t.Fatalf("output %+v", resp.Output)
	}
	wantArgs(resp.Output[1].Arguments.OfString)
	if u := g.lastUsage(); u.Route != "responses" || u.TokensIn != 11 || u.TokensOut != 7 || u.Stream || u.Redactions < 5 {
		t.Errorf("usage %+v", u)
	}

	// Streamed: the deltas, cut inside placeholders, add up to the restored text.
	st := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{}, option.WithRequestBody("application/json", []byte(responsesBody(tok, email, encrypted, true))))
	var text, args strings.Builder
	var doneText, doneArgs, last string
	seqs := map[int64]bool{}
	for st.Next() {
		e := st.Current()
		switch e.Type {
		// Every delta comes before its stream's done event, the held-back tail included.
		case "response.output_text.delta":
			if doneText != "" {
				t.Errorf("a text delta after the text's done event")
			}
			text.WriteString(e.Delta)
		case "response.function_call_arguments.delta":
			if doneArgs != "" {
				t.Errorf("an arguments delta after the arguments' done event")
			}
			args.WriteString(e.Delta)
		case "response.output_text.done":
			doneText = e.Text
		case "response.function_call_arguments.done":
			doneArgs = e.Arguments
		}
		seqs[e.SequenceNumber] = true
		last = e.Type
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	checkUpstream()
	if text.String() != doneText || !strings.Contains(doneText, tok) || !strings.Contains(doneText, email) || placeholderRE.MatchString(doneText) {
		t.Errorf("streamed text %q, done text %q", text.String(), doneText)
	}
	if args.String() != doneArgs {
		t.Errorf("streamed arguments %q, done %q", args.String(), doneArgs)
	}
	wantArgs(doneArgs)
	if last != "response.completed" {
		t.Errorf("last event %s", last)
	}
	if u := g.lastUsage(); u.Route != "responses" || u.TokensIn != 11 || u.TokensOut != 7 || !u.Stream {
		t.Errorf("stream usage %+v", u)
	}
}

func TestResponsesAPIRefusals(t *testing.T) {
	// Ensure /v1/responses refuses in the OpenAI format: no key, an Anthropic-format provider's model, bad JSON, an unknown model.
	up := newFakeUp(t, "anth", nil)
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.anthropic(anthropicKey, "claude-*")}, Egress: loopbackCloud})
	for _, tc := range []struct {
		body   string
		hdr    map[string]string
		status int
	}{
		{`{"model":"gpt-5","input":"hi"}`, nil, http.StatusUnauthorized},
		{`{"model":"claude-x","input":"hi"}`, authHeader("/v1/responses"), http.StatusBadRequest},
		{`{"model":"gpt-5","input":"hi"`, authHeader("/v1/responses"), http.StatusBadRequest},
		{`{"model":"gpt-5","input":"hi"}`, authHeader("/v1/responses"), http.StatusNotFound},
	} {
		r := g.post("/v1/responses", tc.body, tc.hdr)
		checkWireError(t, "/v1/responses", r, tc.status)
	}
	if up.hits.Load() != 0 {
		t.Fatal("the provider was called")
	}
}

func TestResponsesContinuedConversation(t *testing.T) {
	// Ensure a Responses request that continues a conversation stored at the provider gets placeholders numbered far from the
	// earlier turns', so one the model repeats from them is not restored to this request's value.
	tok, email := planted(t)
	up := newFakeUp(t, "openai", func(w http.ResponseWriter, _ *http.Request, body []byte) {
		text := "earlier [[SECRET_1]] [[EMAIL_1]]; now " + strings.Join(placeholderRE.FindAllString(string(body), -1), " ")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "resp_2", "object": "response", "status": "completed", "model": "gpt-5",
			"output": []any{map[string]any{"type": "message", "id": "m", "role": "assistant", "status": "completed",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}}})
	})
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-5*")}, Engine: newEngine(t, nil, nil), Egress: loopbackCloud})
	for _, tc := range []struct {
		body      string
		continued bool
	}{
		{`{"model":"gpt-5","previous_response_id":"resp_1","input":"now ` + tok + ` and ` + email + `"}`, true},
		{`{"model":"gpt-5","conversation":"conv_1","input":"now ` + tok + ` and ` + email + `"}`, true},
		{`{"model":"gpt-5","store":false,"input":"now ` + tok + ` and ` + email + `"}`, false},
	} {
		r := g.post("/v1/responses", tc.body, authHeader("/v1/responses"))
		sent, _ := up.last(t)
		mustNotContain(t, "the provider's body", sent, tok, email)
		want := "earlier [[SECRET_1]] [[EMAIL_1]]; now " + tok + " " + email
		if !tc.continued {
			want = "earlier " + tok + " " + email + "; now " + tok + " " + email // numbered from 1: the repeated ones match
		}
		var resp struct {
			Output []struct {
				Content []struct{ Text string }
			}
		}
		if err := json.Unmarshal([]byte(r.body), &resp); err != nil || r.status != http.StatusOK || len(resp.Output) != 1 || resp.Output[0].Content[0].Text != want {
			t.Fatalf("%s: %d %s; the provider got %s", tc.body[:60], r.status, r.body, sent)
		}
	}
}
