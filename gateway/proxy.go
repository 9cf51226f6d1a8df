package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-dev/custos"
)

// request is the state of one proxied request.
type request struct {
	query    string // the query forwarded to an Anthropic provider ("?beta=true")
	h        *Handler
	f        wire
	rt       route
	key      *custos.APIKey
	prov     *Provider // the provider that answered (or the last tried)
	mode     string
	stream   bool
	sc       *scrubber
	start    time.Time
	upstream time.Duration // time spent waiting on providers
	fwd      forwarded     // the redacted body, as the providers get it
	usage    custos.UsageRecord
	resv     *custos.Reservation
	answered bool // a provider's 2xx reached the caller
	reported bool // the answer carried token usage
}

// IDPrefix is the prefix of usage record ids.
const IDPrefix = custos.PrefixUsage

func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, f wire, rt route) {
	rq := &request{h: h, f: f, rt: rt, start: time.Now()}
	// Anthropic's SDKs mark beta calls with ?beta=true (Claude Code does);
	// that flag, and nothing else of the caller's query, is forwarded.
	if b := r.URL.Query().Get("beta"); f == wireAnthropic && (b == "true" || b == "false") {
		rq.query = "?beta=" + b
	}
	key := h.admit(w, r, f)
	if key == nil {
		return
	}
	rq.key = key
	in, err := readBody(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody), r.ContentLength, h.cfg.MaxBody)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, f, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body larger than %d bytes.", h.cfg.MaxBody))
			return
		}
		writeError(w, f, http.StatusBadRequest, "Could not read the request body.")
		return
	}
	// The whole forwarded request, fallbacks and a stream included, ends
	// by this deadline.
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.TotalTimeout)
	defer cancel()
	setup, err := h.setup(ctx, key)
	if err != nil {
		in.release()
		h.log.Error("gateway: load the org's setup", "org_id", key.OrgID, "err", err)
		writeError(w, f, http.StatusServiceUnavailable, "custos could not load the gateway's configuration; try again.")
		return
	}
	// One pass validates the body, reads its routing fields and redacts
	// every text field; the model and the flags stay as they are.
	rq.sc = newScrubber(setup.Engine).withCache(h.cache, key.ID)
	if rt == routeResponses && rq.sc != nil && continues(in.b) {
		// The earlier turns stay at the provider, their placeholders
		// unseen: number this request's far from them.
		rq.sc.sess.NumberFrom(1e6 + rand.IntN(9e7)) // #nosec G404 -- placeholder numbering, not a secret
	}
	rq.fwd.bb = bodyPool.Get().(*bodyBuf)
	defer rq.fwd.release() // after every attempt's Do has returned
	out, body, err := scrubBody(rq.fwd.bb, in.b, rq.sc, f == wireOpenAI && rt == routeChat)
	in.release() // out is a copy: the caller's body is not read again
	if err != nil {
		msg := "The request body is not a JSON object."
		if errors.Is(err, errDuplicateName) {
			msg = "The request body has an object with the same member name twice."
		}
		writeError(w, f, http.StatusBadRequest, msg)
		return
	}
	model := body.model
	if model == "" {
		writeError(w, f, http.StatusBadRequest, "The request names no model.")
		return
	}
	// From here on every answer, refusals included, leaves a usage record.
	rq.stream = body.stream
	if rt == routeEmbeddings || rt == routeCountTokens {
		rq.stream = false
	}
	rq.usage = custos.UsageRecord{
		ID: custos.NewTimeID(IDPrefix, rq.start), OrgID: key.OrgID, KeyID: key.ID,
		Model: clip(model, 128), Route: rt.String(), Stream: rq.stream, Mode: h.cfg.Mode, Time: rq.start.UTC(),
	}
	defer rq.record()
	if rq.mode, err = h.mode(setup, key, r); err != nil {
		rq.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	rq.usage.Mode = rq.mode
	code := strings.EqualFold(r.Header.Get(HeaderContext), "code")
	provs, rerr := candidates(setup, model, f, rt, rq.mode, code)
	if rerr != nil {
		rq.fail(w, rerr.status, rerr.msg)
		return
	}
	rq.prov = provs[0]
	rq.usage.Provider = rq.prov.Name
	if rq.sc != nil {
		rq.usage.Redactions = rq.sc.n
		if len(rq.sc.known) > 0 {
			names := make([]string, 0, len(rq.sc.known))
			for n := range rq.sc.known {
				names = append(names, n)
			}
			slices.Sort(names)
			rq.usage.KnownHits = len(names)
			blocked := h.cfg.OnSecret == OnSecretBlock
			if h.cfg.OnKnown != nil {
				h.cfg.OnKnown(ctx, KnownHit{Key: key, Names: names, Blocked: blocked, Model: model, Provider: rq.prov.Name, IP: clientIP(r)})
			}
			if blocked {
				rq.fail(w, http.StatusForbidden, fmt.Sprintf("The request contains the value of the stored secret(s) %s; custos refuses to send it to a model (on-secret: block).", strings.Join(names, ", ")))
				return
			}
		}
	}
	if !rq.reserve(ctx, w, body.maxTokens, len(out)) {
		return
	}

	// Long answers stream for longer than the API server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.TotalTimeout))
	hdr := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"custos-gateway"}}
	if rq.stream {
		hdr.Set("Accept", "text/event-stream")
	} else {
		hdr.Set("Accept", "application/json")
	}
	var last *attemptError
	for i, p := range provs {
		rq.prov = p
		rq.usage.Provider = p.Name
		ph := hdr.Clone()
		if p.Kind == KindAnthropic {
			for _, name := range []string{"anthropic-version", "anthropic-beta"} {
				for _, v := range r.Header.Values(name) {
					ph.Add(name, v)
				}
			}
		}
		t0 := time.Now()
		resp, aerr := rq.send(ctx, p, out, ph)
		rq.upstream += time.Since(t0)
		if aerr == nil {
			defer func() { _ = resp.Body.Close() }()
			rq.answered = true
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				rq.usage.Stream = true
				rq.streamResponse(r.Context(), w, resp) // the caller's context: did the caller go away
				return
			}
			rq.jsonResponse(w, resp)
			return
		}
		if last != nil && last.resp != nil {
			_ = last.resp.Body.Close()
		}
		last = aerr
		if !aerr.retryable() || ctx.Err() != nil || i == len(provs)-1 {
			break
		}
		h.log.Info("gateway: falling back to the next provider", "from", p.Name, "to", provs[i+1].Name, "status", aerr.status)
	}
	if last.resp != nil {
		defer func() { _ = last.resp.Body.Close() }()
		rq.upstreamError(w, last.resp)
		return
	}
	rq.fail(w, last.status, last.msg)
}

// continues reports whether a Responses API body may continue a
// conversation stored at the provider (previous_response_id,
// conversation). A string that merely says so counts too: it only
// changes how placeholders are numbered.
func continues(body []byte) bool {
	return bytes.Contains(body, []byte(`"previous_response_id"`)) || bytes.Contains(body, []byte(`"conversation"`))
}

// reserve holds the request's worst case against the budgets: its encoded
// size in bytes bounds its input tokens (no tokenizer makes a token of less
// than a byte), plus its output limit. It answers the caller and returns
// false when the request may not go on.
func (rq *request) reserve(ctx context.Context, w http.ResponseWriter, maxOut int64, size int) bool {
	if rq.h.cfg.Budgets == nil || rq.rt == routeCountTokens {
		return true
	}
	worst := int64(size)
	if rq.rt != routeEmbeddings {
		if maxOut == 0 {
			maxOut = rq.h.cfg.DefaultMaxOutput
		}
		worst += maxOut
	}
	r, err := rq.h.cfg.Budgets.ReserveBudget(ctx, rq.key.OrgID, rq.key.ID, worst, time.Now())
	if err != nil {
		if custos.ErrorCode(err) == custos.ERATELIMITED {
			rq.fail(w, http.StatusTooManyRequests, "Token budget exhausted: "+custos.ErrorMessage(err))
			return false
		}
		rq.h.log.Error("gateway: reserve budget", "org_id", rq.key.OrgID, "err", err)
		rq.fail(w, http.StatusServiceUnavailable, "custos could not check the token budget; try again.")
		return false
	}
	if len(r.Windows) > 0 {
		rq.resv = r
	}
	return true
}

func (rq *request) fail(w http.ResponseWriter, status int, msg string) {
	rq.usage.Status = status
	writeError(w, rq.f, status, msg)
}

// record settles the reservation and hands the usage record on.
func (rq *request) record() {
	if rq.resv != nil {
		used := rq.usage.TokensIn + rq.usage.TokensOut
		if rq.answered && !rq.reported {
			used = rq.resv.Tokens // consumed, amount unknown: charge the worst case
		}
		// The caller may be gone; the settlement must still land.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := rq.h.cfg.Budgets.SettleBudget(ctx, rq.resv, used); err != nil {
			rq.h.log.Error("gateway: settle budget", "org_id", rq.key.OrgID, "err", err)
		}
		cancel()
	}
	rq.usage.LatencyMS = ms(time.Since(rq.start))
	rq.usage.OverheadMS = ms(time.Since(rq.start) - rq.upstream)
	if rq.h.cfg.OnUsage != nil {
		u := rq.usage
		rq.h.cfg.OnUsage(&u)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MaxAnswer bounds a provider's non-streamed answer.
const MaxAnswer = 64 << 20

// maxUpstreamError bounds the error body read from a provider.
const maxUpstreamError = 64 << 10

// upstreamError answers a provider's non-2xx in the caller's format: 4xx
// statuses are kept, 5xx become 502.
func (rq *request) upstreamError(w http.ResponseWriter, resp *http.Response) {
	t0 := time.Now()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamError))
	rq.upstream += time.Since(t0)
	msg := ""
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &inner) == nil {
			msg = inner.Message
		} else {
			_ = json.Unmarshal(e.Error, &msg)
		}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	msg = fmt.Sprintf("Provider %q: %s", rq.prov.Name, rq.sc.restoreString(clip(msg, 2048)))
	status := resp.StatusCode
	if status >= 500 || status < 400 {
		status = http.StatusBadGateway
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", clip(ra, 32))
	}
	rq.fail(w, status, msg)
}

// jsonResponse restores a non-streamed answer and records its usage.
func (rq *request) jsonResponse(w http.ResponseWriter, resp *http.Response) {
	t0 := time.Now()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	rq.upstream += time.Since(t0)
	if err != nil {
		rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q: could not read the answer.", rq.prov.Name))
		return
	}
	if len(b) > MaxAnswer {
		rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q answered more than %d MiB.", rq.prov.Name, MaxAnswer>>20))
		return
	}
	if rq.rt == routeCountTokens {
		rq.reported = true
	}
	out := b
	// Vectors hold no text, and an answer with no '[' in its strings holds
	// no placeholder: those go back as they came, once known to be JSON.
	if rq.rt == routeEmbeddings || rq.sc == nil || len(rq.sc.raw) == 0 || !bracketInString(b) {
		var usage []byte
		if !eachMember(b, func(name, v []byte) {
			if string(name) == "usage" {
				usage = v
			}
		}) && !validJSON(b) {
			rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q answered invalid JSON.", rq.prov.Name))
			return
		}
		if usage != nil && rq.rt != routeCountTokens {
			rq.takeUsageJSON(usage)
		}
	} else {
		var v any
		if err := decode(b, &v); err != nil {
			rq.fail(w, http.StatusBadGateway, fmt.Sprintf("Provider %q answered invalid JSON.", rq.prov.Name))
			return
		}
		if m, ok := v.(map[string]any); ok && rq.rt != routeCountTokens {
			rq.takeUsage(m["usage"])
		}
		if out, err = marshal(rq.sc.restoreValue(v, nil)); err != nil {
			rq.fail(w, http.StatusBadGateway, "Could not encode the answer.")
			return
		}
	}
	rq.usage.Status = resp.StatusCode
	rq.copyHeaders(w, resp)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
	// The answer is whole: it goes to the caller now, not after the
	// request's bookkeeping (the budget's settlement is a database write).
	_ = http.NewResponseController(w).Flush()
}

// copyHeaders passes the provider's request id and custos' overhead so far.
func (rq *request) copyHeaders(w http.ResponseWriter, resp *http.Response) {
	for _, hd := range []string{"Request-Id", "X-Request-Id"} {
		if v := resp.Header.Get(hd); v != "" {
			w.Header().Set(hd, clip(v, 128))
		}
	}
	w.Header().Set(HeaderOverhead, fmt.Sprintf("%.3f", ms(time.Since(rq.start)-rq.upstream)))
}

// takeUsage reads token counts from a usage object of either format.
func (rq *request) takeUsage(u any) {
	m, ok := u.(map[string]any)
	if !ok {
		return
	}
	rq.setUsage(func(k string) int64 {
		n, _ := m[k].(json.Number)
		i, _ := n.Int64()
		return max(i, 0)
	})
}

// usageFields are the token counts custos reads from a usage object.
var usageFields = []string{"prompt_tokens", "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "completion_tokens", "output_tokens"}

// takeUsageJSON reads token counts from a usage object given as JSON text
// (as takeUsage does from a decoded one: a name given twice counts once,
// the last; anything but an integer counts 0).
func (rq *request) takeUsageJSON(raw []byte) {
	var n [6]int64
	valid := eachMember(raw, func(name, v []byte) {
		if i := slices.Index(usageFields, string(name)); i >= 0 {
			x, _ := strconv.ParseInt(string(v), 10, 64)
			n[i] = max(x, 0)
		}
	})
	if valid {
		rq.setUsage(func(k string) int64 { return n[slices.Index(usageFields, k)] })
	}
}

// setUsage sets the token counts from num, the count of each usage field.
func (rq *request) setUsage(num func(k string) int64) {
	if in := num("prompt_tokens") + num("input_tokens") + num("cache_creation_input_tokens") + num("cache_read_input_tokens"); in > 0 {
		rq.usage.TokensIn = in
		rq.reported = true
	}
	if out := num("completion_tokens") + num("output_tokens"); out > 0 {
		rq.usage.TokensOut = out
		rq.reported = true
	}
}

func trimSlash(s string) string { return strings.TrimSuffix(s, "/") }
