// Command agentcheck is a model provider on loopback for trying real coding
// agents through custos (scripts/agentcheck.sh): it speaks OpenAI's
// Responses API (Codex) and Anthropic's Messages API (Claude Code), streamed
// and not, and answers with the placeholders it received, so the agent
// shows whether custos restored them. A prompt that says "run it" gets, from
// the Responses API, an exec_command call whose command holds the
// SECRET placeholders; the turn that carries the call's output gets that
// output back as text. Every request body is appended to -record, one JSON
// line each, for the script to search for planted values.
//
//	go run ./scripts/agentcheck -addr 127.0.0.1:9096 -record seen.jsonl
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

var placeholderRE = regexp.MustCompile(`\[\[[A-Z][A-Z0-9_]*_[0-9]+\]\]`)

func main() {
	addr := flag.String("addr", "127.0.0.1:9096", "listen `ADDR`")
	record := flag.String("record", "", "append every request body to `FILE`")
	flag.Parse()
	p := &provider{}
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600) // #nosec G304 -- the operator's file
		if err != nil {
			log.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		p.record = f
	}
	srv := &http.Server{Addr: *addr, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("agentcheck: serving on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// provider answers the agents' model requests.
type provider struct {
	mu     sync.Mutex
	record io.Writer
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	if p.record != nil && len(body) > 0 {
		p.mu.Lock()
		line, _ := json.Marshal(map[string]any{"path": r.URL.Path, "body": string(body)})
		_, _ = p.record.Write(append(line, '\n'))
		p.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		models(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/responses":
		responsesAPI(w, body)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/count_tokens":
		writeJSON(w, map[string]any{"input_tokens": 42})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
		messagesAPI(w, body)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func models(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("anthropic-version") != "" {
		writeJSON(w, map[string]any{"data": []any{map[string]any{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
			"created_at": "2025-01-01T00:00:00Z"}}, "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"})
		return
	}
	writeJSON(w, map[string]any{"object": "list", "data": []any{map[string]any{"id": "gpt-5-codex", "object": "model"}}})
}

// saw names the distinct placeholders in v's JSON form.
func saw(v any) []string {
	b, _ := json.Marshal(v)
	ph := placeholderRE.FindAllString(string(b), -1)
	slices.Sort(ph)
	return slices.Compact(ph)
}

func answer(ph []string) string {
	if len(ph) == 0 {
		return "Mock model here. I saw no placeholders."
	}
	return "Mock model here. I saw " + strings.Join(ph, ", ") + "."
}

// sse writes server-sent events, each flushed.
type sse struct {
	w   http.ResponseWriter
	seq int
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	return &sse{w: w}
}

func (s *sse) event(typ string, data map[string]any, numbered bool) {
	data["type"] = typ
	if numbered {
		data["sequence_number"] = s.seq
		s.seq++
	}
	b, _ := json.Marshal(data)
	_, _ = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", typ, b)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// pieces cuts s into n-byte pieces, cutting placeholders apart.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func responsesAPI(w http.ResponseWriter, body []byte) {
	var req struct {
		Model  string           `json:"model"`
		Stream bool             `json:"stream"`
		Input  []map[string]any `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"the input must be a list of items","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	var output any
	var call string
	ph := saw(req.Input)
	for _, it := range req.Input {
		if it["type"] == "function_call_output" {
			output = it["output"]
		}
	}
	text := answer(ph)
	switch {
	case output != nil:
		b, _ := json.Marshal(output)
		text = "The command printed: " + string(b)
	case strings.Contains(lastUser(req.Input), "run it"):
		var secrets []string
		for _, p := range ph {
			if strings.HasPrefix(p, "[[SECRET_") {
				secrets = append(secrets, p)
			}
		}
		b, _ := json.Marshal(map[string]string{"cmd": "printf %s " + strings.Join(secrets, " ") + " | wc -c"})
		call = string(b)
	}
	message := func(status, t string) map[string]any {
		return map[string]any{"type": "message", "id": "msg_1", "status": status, "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": t, "annotations": []any{}}}}
	}
	function := func(status, args string) map[string]any {
		return map[string]any{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": args, "status": status}
	}
	done := message("completed", text)
	if call != "" {
		done = function("completed", call)
	}
	resp := func(status string, out []any) map[string]any {
		return map[string]any{"id": "resp_1", "object": "response", "created_at": time.Now().Unix(), "status": status, "model": req.Model, "output": out,
			"usage": map[string]any{"input_tokens": 100, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": 20, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": 120}}
	}
	if !req.Stream {
		writeJSON(w, resp("completed", []any{done}))
		return
	}
	s := newSSE(w)
	s.event("response.created", map[string]any{"response": resp("in_progress", []any{})}, true)
	s.event("response.in_progress", map[string]any{"response": resp("in_progress", []any{})}, true)
	if call != "" {
		s.event("response.output_item.added", map[string]any{"output_index": 0, "item": function("in_progress", "")}, true)
		for _, d := range pieces(call, 7) {
			s.event("response.function_call_arguments.delta", map[string]any{"item_id": "fc_1", "output_index": 0, "delta": d}, true)
		}
		s.event("response.function_call_arguments.done", map[string]any{"item_id": "fc_1", "output_index": 0, "arguments": call}, true)
	} else {
		s.event("response.output_item.added", map[string]any{"output_index": 0, "item": message("in_progress", "")}, true)
		part := func(t string) map[string]any {
			return map[string]any{"type": "output_text", "text": t, "annotations": []any{}}
		}
		s.event("response.content_part.added", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": part("")}, true)
		for _, d := range pieces(text, 6) {
			s.event("response.output_text.delta", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d, "logprobs": []any{}}, true)
		}
		s.event("response.output_text.done", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text, "logprobs": []any{}}, true)
		s.event("response.content_part.done", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": part(text)}, true)
	}
	s.event("response.output_item.done", map[string]any{"output_index": 0, "item": done}, true)
	s.event("response.completed", map[string]any{"response": resp("completed", []any{done})}, true)
}

// lastUser returns the JSON form of the last user message among items.
func lastUser(items []map[string]any) string {
	for i := len(items) - 1; i >= 0; i-- {
		if items[i]["role"] == "user" {
			b, _ := json.Marshal(items[i])
			return string(b)
		}
	}
	return ""
}

func messagesAPI(w http.ResponseWriter, body []byte) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []any  `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: at least one message is required"}}`)
		return
	}
	text := answer(saw(req.Messages[len(req.Messages)-1]))
	usage := map[string]any{"input_tokens": 10, "output_tokens": 12}
	if !req.Stream {
		writeJSON(w, map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": req.Model,
			"content": []any{map[string]any{"type": "text", "text": text}}, "stop_reason": "end_turn", "stop_sequence": nil, "usage": usage})
		return
	}
	s := newSSE(w)
	s.event("message_start", map[string]any{"message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": req.Model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 10, "output_tokens": 1}}}, false)
	s.event("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "text", "text": ""}}, false)
	for _, d := range pieces(text, 5) {
		s.event("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "text_delta", "text": d}}, false)
	}
	s.event("content_block_stop", map[string]any{"index": 0}, false)
	s.event("message_delta", map[string]any{"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 12}}, false)
	s.event("message_stop", map[string]any{}, false)
}
