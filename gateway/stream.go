package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sseEvent is one server-sent event. Its buffers are reused for the next
// event: nothing may keep them.
type sseEvent struct {
	event   string
	data    []byte
	hasData bool   // a data field was given (data may still be empty)
	raw     []byte // the event as received
}

// reset empties ev for the next event, keeping its buffers.
func (ev *sseEvent) reset() {
	ev.event, ev.data, ev.hasData, ev.raw = "", ev.data[:0], false, ev.raw[:0]
}

// readers are the buffered readers of providers' streams.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

// openAIStreamed are the delta fields restored through a stream restorer.
var openAIStreamed = map[string]bool{"content": true, "refusal": true, "reasoning_content": true, "reasoning": true, "arguments": true}

// anthropicStreamed are the delta fields restored through a stream restorer
// (or, for thinking and signatures, passed unchanged).
var anthropicStreamed = map[string]bool{"text": true, "partial_json": true, "thinking": true, "signature": true}

// MaxEvent bounds one server-sent event from a provider; a longer one
// breaks the stream off (a provider is not trusted with custos' memory).
const MaxEvent = 8 << 20

var errEventTooLarge = errors.New("gateway: provider sent an event larger than MaxEvent")

// streamResponse relays an SSE answer event by event, restoring
// placeholders per content stream, and records usage at the end. If the
// provider's stream breaks off, it aborts the caller's connection
// (panics with http.ErrAbortHandler).
func (rq *request) streamResponse(ctx context.Context, w http.ResponseWriter, resp *http.Response) {
	rc := http.NewResponseController(w)
	rq.copyHeaders(w, resp)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(resp.StatusCode)
	rq.usage.Status = resp.StatusCode
	br, _ := readers.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	st := &streamState{rq: rq, w: w, rc: rc, br: br, streams: map[string]*streamRestorer{}}
	if rq.rt == routeResponses {
		st.tails = map[string]map[string]any{}
	}
	// The headers go out with the first event, in one write; if the
	// provider is slow to send one, they go out alone after HeaderDelay
	// (the caller's SDK waits for them). The same timer sends a held
	// last event (see emit).
	st.late = time.AfterFunc(HeaderDelay, st.flushLate)
	defer func() {
		st.late.Stop()
		st.mu.Lock()
		st.done = true // a flushLate running now has finished
		st.mu.Unlock()
	}()
	var (
		ev      sseEvent
		long    []byte // a line longer than br's buffer, so far
		readErr error
	)
	for {
		t0 := time.Now()
		frag, err := br.ReadSlice('\n')
		rq.upstream += time.Since(t0)
		// The bound holds while a line is still arriving.
		if len(ev.raw)+len(long)+len(frag) > MaxEvent {
			readErr = errEventTooLarge
			break
		}
		if err == bufio.ErrBufferFull {
			long = append(long, frag...)
			continue
		}
		line := frag
		if len(long) > 0 {
			long = append(long, frag...)
			line = long
		}
		if len(line) > 0 {
			ev.raw = append(ev.raw, line...)
			l := bytes.TrimRight(line, "\r\n")
			switch {
			case len(l) == 0:
				st.handle(&ev)
				ev.reset()
			case bytes.HasPrefix(l, []byte("event:")):
				ev.event = string(bytes.TrimSpace(l[len("event:"):]))
			case bytes.HasPrefix(l, []byte("data:")):
				d := bytes.TrimPrefix(l[len("data:"):], []byte(" "))
				if ev.hasData {
					ev.data = append(ev.data, '\n')
				}
				ev.data, ev.hasData = append(ev.data, d...), true
			}
		}
		long = long[:0]
		if err != nil {
			readErr = err
			break
		}
	}
	if len(ev.raw) > 0 {
		st.handle(&ev)
	}
	st.flushAll()
	// At the end of the stream what is written but not sent (a held last
	// event) goes out with the end of the response, when the handler
	// returns: in one write, and one wake-up of the caller — unless the
	// request's budget is to be settled first (a database write; see
	// record): then it goes now.
	if rq.resv != nil && len(rq.resv.Windows) > 0 {
		st.flush()
	}
	if readErr != io.EOF && ctx.Err() == nil {
		// The provider's stream broke (or timed out) while the caller
		// waits: send what there is, then cut the caller's connection
		// too, so the answer is not taken for a complete one.
		st.flush()
		rq.usage.Status = http.StatusBadGateway
		rq.h.log.Warn("gateway: provider stream broke off", "provider", rq.prov.Name, "err", readErr)
		panic(http.ErrAbortHandler)
	}
}

type streamState struct {
	rq      *request
	w       http.ResponseWriter
	rc      *http.ResponseController
	br      *bufio.Reader // the provider's stream
	mu      sync.Mutex    // w and rc: the handler, and flushLate
	late    *time.Timer   // runs flushLate: the headers' delay, then a held event's
	sent    bool          // something (the headers at least) went to the caller
	held    bool          // the last event is written but not sent (see emit)
	last    bool          // the event being handled ends the stream
	done    bool          // the handler is done with w
	streams map[string]*streamRestorer
	order   []string
	tmpl    map[string]any            // the last OpenAI chunk decoded, a template for flushes
	lastRaw []byte                    // the last chunk passed through, decoded when a flush needs it
	tails   map[string]map[string]any // Responses API: a last delta's fields, per stream
}

func (st *streamState) stream(key string, jsonMode bool) *streamRestorer {
	r, ok := st.streams[key]
	if !ok {
		r = st.rq.sc.newStream(jsonMode)
		st.streams[key] = r
		st.order = append(st.order, key)
	}
	return r
}

func (st *streamState) send(event string, v any) {
	b, err := marshal(v)
	if err != nil {
		return
	}
	var buf bytes.Buffer
	if event != "" {
		buf.WriteString("event: " + event + "\n")
	}
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	st.emit(buf.Bytes())
}

// HeaderDelay is how long a stream's headers wait for its first event
// before they are sent alone.
const HeaderDelay = 50 * time.Millisecond

// TailDelay is how long the event that ends a stream (OpenAI's [DONE],
// Anthropic's message_stop) waits for the provider's stream to end before
// it is sent alone; it usually ends at once, and the event then goes out
// with the end of the response, in one write.
const TailDelay = time.Millisecond

// emit writes b and sends what was written to the caller, unless more of
// the provider's stream has already arrived: then the next event goes in
// the same write. The event that ends the stream is held: it goes out with
// the end of the response when the provider's stream ends, or alone after
// TailDelay.
func (st *streamState) emit(b []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, _ = st.w.Write(b)
	switch {
	case st.last:
		st.held = true
		st.late.Reset(TailDelay)
	case st.br.Buffered() == 0:
		st.flushLocked()
	}
}

// flush sends what was written to the caller.
func (st *streamState) flush() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked()
}

// flushLate sends the headers if nothing has gone to the caller yet, and
// a held last event.
func (st *streamState) flushLate() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if (!st.sent || st.held) && !st.done {
		st.flushLocked()
	}
}

// flushLocked sends what was written to the caller; st.mu is held.
func (st *streamState) flushLocked() {
	_ = st.rc.Flush()
	st.sent, st.held = true, false
}

// passthrough reports whether ev can go to the caller byte for byte: the
// request had nothing redacted, or ev holds no placeholder and nothing is
// held back (and a template chunk for later flushes exists).
func (st *streamState) passthrough(ev *sseEvent) bool {
	if st.rq.sc == nil || len(st.rq.sc.raw) == 0 {
		return true
	}
	if bracketInString(ev.data) {
		return false
	}
	for _, r := range st.streams {
		if len(r.pending) > 0 {
			return false
		}
	}
	return true
}

// bracketInString reports whether a JSON text has a '[' (which may begin
// or continue a placeholder) inside one of its strings, raw or escaped as
// \u005b; the brackets of its arrays do not count.
func bracketInString(data []byte) bool {
	in := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			in = !in
		case !in:
		case c == '[':
			return true
		case c == '\\':
			if i+5 < len(data) && data[i+1] == 'u' && data[i+2] == '0' && data[i+3] == '0' && data[i+4] == '5' && (data[i+5] == 'b' || data[i+5] == 'B') {
				return true
			}
			i++ // the escaped byte
		}
	}
	return false
}

// usageOnly reads the token counts of an event passed through unchanged.
func (st *streamState) usageOnly(ev *sseEvent) {
	if !bytes.Contains(ev.data, []byte(`"usage"`)) {
		return
	}
	var usage, msgUsage []byte
	if !eachMember(ev.data, func(name, v []byte) {
		switch string(name) {
		case "usage":
			usage = v
		case "message", "response": // Anthropic's message_start, the Responses API's response.completed
			msgUsage = nil
			eachMember(v, func(name, v []byte) {
				if string(name) == "usage" {
					msgUsage = v
				}
			})
		}
	}) {
		return
	}
	if usage != nil {
		st.rq.takeUsageJSON(usage)
	}
	if msgUsage != nil {
		st.rq.takeUsageJSON(msgUsage)
	}
}

func (st *streamState) handle(ev *sseEvent) {
	done := ev.hasData && string(ev.data) == "[DONE]"
	st.last = done || ev.event == "message_stop" || (st.rq.rt == routeResponses && responsesEnd[ev.event])
	if !ev.hasData {
		st.emit(ev.raw) // comments, retry fields
		return
	}
	if done {
		st.flushAll() // held back with [DONE], in the same write
		st.emit(ev.raw)
		return
	}
	if st.passthrough(ev) {
		st.usageOnly(ev)
		st.lastRaw = append(st.lastRaw[:0], ev.data...) // ev's buffer is reused
		st.emit(ev.raw)
		return
	}
	var m map[string]any
	if decode(ev.data, &m) != nil {
		st.emit(ev.raw)
		return
	}
	switch {
	case st.rq.f == wireAnthropic:
		st.anthropic(ev.event, m)
	case st.rq.rt == routeResponses:
		st.responses(ev.event, m)
	default:
		st.openAI(m)
	}
}

func index(v any) string {
	n, _ := v.(json.Number)
	return n.String()
}

// openAI restores one chat.completion.chunk.
func (st *streamState) openAI(m map[string]any) {
	st.rq.takeUsage(m["usage"])
	choices, _ := m["choices"].([]any)
	for _, c := range choices {
		ch, _ := c.(map[string]any)
		if ch == nil {
			continue
		}
		ci := index(ch["index"])
		if delta, _ := ch["delta"].(map[string]any); delta != nil {
			for k := range openAIStreamed {
				if s, ok := delta[k].(string); ok && k != "arguments" {
					delta[k] = string(st.stream(ci+"/"+k, false).write([]byte(s)))
				}
			}
			calls, _ := delta["tool_calls"].([]any)
			for _, tc := range calls {
				tcm, _ := tc.(map[string]any)
				fn, _ := tcm["function"].(map[string]any)
				if s, ok := fn["arguments"].(string); ok {
					fn["arguments"] = string(st.stream(ci+"/tool/"+index(tcm["index"]), true).write([]byte(s)))
				}
			}
		}
		if fr, _ := ch["finish_reason"].(string); fr != "" {
			st.finishOpenAIChoice(m, ch, ci)
		}
	}
	st.rq.sc.restoreValue(m, openAIStreamed)
	st.tmpl, st.lastRaw = m, nil
	st.send("", m)
}

// finishOpenAIChoice releases what choice ci's restorers hold back when
// the chunk m finishes it: appended to the field of m's delta that carries
// the same stream, or sent in a chunk of its own before m.
func (st *streamState) finishOpenAIChoice(m, ch map[string]any, ci string) {
	delta, _ := ch["delta"].(map[string]any)
	if delta != nil {
		prefix := ci + "/"
		for _, key := range st.order {
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			field := key[len(prefix):]
			if s, ok := delta[field].(string); ok {
				delta[field] = s + string(st.streams[key].flush())
				continue
			}
			if n, ok := strings.CutPrefix(field, "tool/"); ok {
				calls, _ := delta["tool_calls"].([]any)
				for _, tc := range calls {
					tcm, _ := tc.(map[string]any)
					fn, _ := tcm["function"].(map[string]any)
					if a, ok := fn["arguments"].(string); ok && index(tcm["index"]) == n {
						fn["arguments"] = a + string(st.streams[key].flush())
					}
				}
			}
		}
	}
	st.flushOpenAIChoice(m, ci)
}

// flushOpenAIChoice sends what choice ci's restorers still hold back, in
// chunks modelled on m.
func (st *streamState) flushOpenAIChoice(m map[string]any, ci string) {
	prefix := ci + "/"
	for _, key := range st.order {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		r := st.streams[key]
		held := r.flush()
		if len(held) == 0 {
			continue
		}
		field := key[len(prefix):]
		delta := map[string]any{}
		if tn, ok := strings.CutPrefix(field, "tool/"); ok {
			n, _ := strconv.Atoi(tn)
			delta["tool_calls"] = []any{map[string]any{"index": n, "function": map[string]any{"arguments": string(held)}}}
		} else {
			delta[field] = string(held)
		}
		chunk := map[string]any{}
		for k, v := range m {
			if k != "choices" && k != "usage" {
				chunk[k] = v
			}
		}
		idx, _ := strconv.Atoi(ci)
		chunk["choices"] = []any{map[string]any{"index": idx, "delta": delta, "finish_reason": nil}}
		st.send("", chunk)
	}
}

// anthropic restores one messages stream event.
func (st *streamState) anthropic(event string, m map[string]any) {
	typ, _ := m["type"].(string)
	switch typ {
	case "message_start":
		if msg, _ := m["message"].(map[string]any); msg != nil {
			st.rq.takeUsage(msg["usage"])
		}
	case "message_delta":
		st.rq.takeUsage(m["usage"])
	case "content_block_delta":
		bi := index(m["index"])
		if d, _ := m["delta"].(map[string]any); d != nil {
			if s, ok := d["text"].(string); ok {
				d["text"] = string(st.stream(bi, false).write([]byte(s)))
			}
			if s, ok := d["partial_json"].(string); ok {
				d["partial_json"] = string(st.stream(bi, true).write([]byte(s)))
			}
		}
	case "content_block_stop":
		st.flushAnthropicBlock(index(m["index"]), m["index"])
	}
	skip := map[string]bool(nil)
	if typ == "content_block_delta" {
		skip = anthropicStreamed
	}
	st.rq.sc.restoreValue(m, skip)
	if event == "" {
		event = typ
	}
	st.send(event, m)
}

// flushAnthropicBlock sends what block bi's restorer holds back as a last
// delta of the block.
func (st *streamState) flushAnthropicBlock(bi string, idx any) {
	r, ok := st.streams[bi]
	if !ok {
		return
	}
	held := r.flush()
	if len(held) == 0 {
		return
	}
	d := map[string]any{"type": "text_delta", "text": string(held)}
	if r.json {
		d = map[string]any{"type": "input_json_delta", "partial_json": string(held)}
	}
	st.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": idx, "delta": d})
}

// responsesEnd are the events that end a Responses API stream (it sends
// no [DONE]).
var responsesEnd = map[string]bool{"response.completed": true, "response.incomplete": true, "response.failed": true}

// responses restores one Responses API stream event. A delta's text (or
// call arguments) is restored across events per item, content part and
// summary part; the event that ends such a stream (….done, with the whole
// text) first sends what is held back as a last delta.
func (st *streamState) responses(event string, m map[string]any) {
	typ, _ := m["type"].(string)
	key := func() string { // the stream: item, content part, summary part
		return fmt.Sprint(m["item_id"], "/", index(m["output_index"]), "/", index(m["content_index"]), "/", index(m["summary_index"]))
	}
	var skip map[string]bool
	switch {
	case strings.HasSuffix(typ, ".delta") && m["item_id"] != nil:
		if d, ok := m["delta"].(string); ok {
			key := key()
			r, seen := st.streams[key]
			if !seen {
				// A template for the last delta, should the stream end without its done event.
				tail := map[string]any{"type": typ}
				for _, k := range []string{"item_id", "output_index", "content_index", "summary_index"} {
					if v, ok := m[k]; ok {
						tail[k] = v
					}
				}
				st.tails[key] = tail
				r = st.stream(key, strings.Contains(typ, "arguments"))
			}
			m["delta"] = string(r.write([]byte(d)))
			skip = responsesStreamed
		}
	case strings.HasSuffix(typ, ".done") && m["item_id"] != nil:
		st.flushResponsesStream(key(), event != "", m["sequence_number"])
	case responsesEnd[typ]:
		st.flushAll() // a stream whose done event never came
		if resp, _ := m["response"].(map[string]any); resp != nil {
			st.rq.takeUsage(resp["usage"])
		}
	}
	st.rq.sc.restoreValue(m, skip)
	st.send(event, m)
}

// responsesStreamed is the field of Responses API delta events restored
// across events.
var responsesStreamed = map[string]bool{"delta": true}

// flushResponsesStream sends what the stream key holds back as a last
// delta event, numbered seq (that of the event that follows it).
func (st *streamState) flushResponsesStream(key string, named bool, seq any) {
	r, ok := st.streams[key]
	if !ok {
		return
	}
	held := r.flush()
	if len(held) == 0 {
		return
	}
	ev := map[string]any{}
	for k, v := range st.tails[key] {
		ev[k] = v
	}
	ev["delta"] = string(held)
	if seq != nil {
		ev["sequence_number"] = seq
	}
	event := ""
	if named {
		event, _ = ev["type"].(string)
	}
	st.send(event, ev)
}

// flushAll sends whatever is still held back at the end of the stream.
func (st *streamState) flushAll() {
	if st.rq.rt == routeResponses {
		for _, key := range st.order {
			st.flushResponsesStream(key, true, nil)
		}
		return
	}
	if st.rq.f == wireAnthropic {
		for _, key := range st.order {
			n, _ := strconv.Atoi(key)
			st.flushAnthropicBlock(key, n)
		}
		return
	}
	held := false
	for _, r := range st.streams {
		held = held || len(r.pending) > 0
	}
	if !held {
		return
	}
	if st.lastRaw != nil {
		var m map[string]any
		if decode(st.lastRaw, &m) == nil {
			st.tmpl = m
		}
	}
	if st.tmpl == nil {
		return
	}
	seen := map[string]bool{}
	for _, key := range st.order {
		ci, _, _ := strings.Cut(key, "/")
		if !seen[ci] {
			seen[ci] = true
			st.flushOpenAIChoice(st.tmpl, ci)
		}
	}
}
