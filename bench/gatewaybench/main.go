// Command gatewaybench measures the latency the custos model gateway adds
// to a model request, next to a bare reverse proxy, in one run on loopback.
//
//	go run ./bench/gatewaybench                              # print the table
//	go run ./bench/gatewaybench -duration 8s -rate 2000      # longer phases
//	go run ./bench/gatewaybench -out docs/GATEWAY-BENCH.md   # also write it to a file
//	go run ./bench/gatewaybench -cpuprofile cpu.out          # see below
//
// One process starts, each on its own loopback listener: a mock upstream
// speaking the OpenAI chat completions format (a precomputed JSON answer, or
// an SSE stream of chunks ending with a usage chunk and [DONE]); a bare
// httputil.ReverseProxy to it; and custos — the real API handler (package
// http, in an http.Server with the custos server's timeouts) with the real
// model gateway mounted, redacting secrets and personal data with the real
// engine, forwarding through the egress client, authenticating the caller's
// API key against the vault service on SQLite. The -cpuprofile profile
// labels samples target=custos, upstream, reverse proxy or load generator:
//
//	go tool pprof -top -tagfocus target=custos cpu.out
//
// The client sends an 8 KB chat request (a system prompt and a user message
// with code, holding planted fake secrets) to each of the three targets —
// direct to the upstream, through the reverse proxy, through custos — non
// streaming and streaming, and measures: latency one request at a time
// (interleaved over the targets), latency at a fixed open-loop rate (-rate,
// measured from each request's scheduled time, so a slow target cannot hide
// its queueing), and throughput with -conc concurrent clients. The rate and
// throughput phases are split into -rounds rounds that rotate the targets.
// Added latency is a target's percentile minus the direct one of the same
// phase. Before measuring, it checks once that the upstream never sees a
// planted value and that the caller gets every one back restored; a broken
// setup exits 1, a missed target never does.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/store/memory"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/gateway"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/vault"
)

// The targets of the issue.
const (
	targetP50     = 250 * time.Microsecond // added p50 at -rate
	targetP99     = 2 * time.Millisecond   // added p99 at -rate
	targetRatio   = 0.6                    // custos req/s ÷ reverse proxy req/s
	promptSize    = 8 << 10                // bytes of the request body
	benchModel    = "gpt-bench"
	echoModel     = "gpt-bench-echo" // routed to the echo upstream used by the check
	providerToken = "sk-bench-provider-key-0000000000000000"
)

// Published anchors: added latency in an independent localhost benchmark.
const anchors = "Bifrost 0.44 ms, Portkey 2.37 ms, LiteLLM 4.34 ms"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration   time.Duration
	rate       float64
	seqN       int
	conc       int
	rounds     int
	out        string
	cpuprofile string
	memprofile string
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "how long each target runs in each rate and throughput phase")
	flag.Float64Var(&o.rate, "rate", 2000, "open-loop request rate (requests/s)")
	flag.IntVar(&o.seqN, "seq", 1000, "requests per target in each sequential phase")
	flag.IntVar(&o.conc, "conc", 32, "concurrent clients in the throughput phase")
	flag.IntVar(&o.rounds, "rounds", 4, "rounds the rate and throughput phases are split into, rotating the targets")
	flag.StringVar(&o.out, "out", "", "also write the table (markdown) to this `FILE`")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured phases to `FILE`")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile to `FILE` at the end")
	flag.Parse()
	if o.duration <= 0 || o.rate <= 0 || o.seqN <= 0 || o.conc <= 0 || o.rounds <= 0 {
		return errors.New("-duration, -rate, -seq, -conc and -rounds must be positive")
	}
	// As `custos serve` does.
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(400)
		gogc = "400"
	}

	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "custos-gatewaybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if o.cpuprofile != "" {
		// Everything started from here on is the load generator unless a
		// server's connection relabels it (see fixture.serve).
		pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("target", "load generator")))
	}
	fx, err := setup(ctx, tmp, o.cpuprofile != "")
	if err != nil {
		return err
	}
	defer fx.close()

	p, err := newPrompt()
	if err != nil {
		return err
	}
	if err := fx.check(p); err != nil {
		return fmt.Errorf("redaction check: %w", err)
	}
	fmt.Fprintf(os.Stderr, "check passed: the upstream saw %d placeholders and no planted value; the caller got every value back\n", fx.echo.placeholders)

	modes := []mode{
		{"non-streaming", false, p.plain, bytes.Index(p.plain, []byte(nonceSlot))},
		{"streaming", true, p.stream, bytes.Index(p.stream, []byte(nonceSlot))},
	}
	for _, m := range modes {
		for _, t := range fx.targets {
			if s := t.do(m, time.Now()); !s.ok {
				return fmt.Errorf("%s, %s: first request failed: %s", t.name, m.name, s.err)
			}
		}
	}

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	var lat []latRow
	var tput []tputRow
	var overhead [2][]float64 // custos non-streaming: sequential, at -rate
	for _, m := range modes {
		fmt.Fprintf(os.Stderr, "%s: warm-up and sequential\n", m.name)
		sequential(fx.targets, m, o.seqN/5) // warm-up, discarded
		seq := sequential(fx.targets, m, o.seqN)
		lat = append(lat, latRows(m, "sequential", seq)...)
		fmt.Fprintf(os.Stderr, "%s: %.0f req/s open loop\n", m.name, o.rate)
		ol := rotate(fx.targets, o.rounds, func(t *target) []sample { return openLoop(t, m, o.rate, o.duration/time.Duration(o.rounds)) })
		lat = append(lat, latRows(m, fmt.Sprintf("%.0f req/s", o.rate), ol)...)
		if !m.stream {
			overhead[0], overhead[1] = overheads(seq[len(seq)-1]), overheads(ol[len(ol)-1])
		}
		fmt.Fprintf(os.Stderr, "%s: throughput, %d clients\n", m.name, o.conc)
		tp := rotate(fx.targets, o.rounds, func(t *target) []sample { return closedLoop(t, m, o.conc, o.duration/time.Duration(o.rounds)) })
		tput = append(tput, tputRows(m, fx.targets, tp)...)
	}

	// The agent loop: the same prompt resent, as an agent resends its
	// history every turn. custos finds its secrets once and then looks
	// the findings up by SHA-256 (not a target; shown for comparison).
	fmt.Fprintf(os.Stderr, "non-streaming, same prompt resent: sequential\n")
	same := mode{"non-streaming", false, p.plain, -1}
	sequential(fx.targets, same, o.seqN/5)
	lat = append(lat, latRows(same, "sequential, same prompt resent", sequential(fx.targets, same, o.seqN))...)

	if o.memprofile != "" {
		f, err := os.Create(o.memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s/%s, %d CPUs, %s, GOGC=%s; command: `go run ./bench/gatewaybench -duration %s -rate %.0f -seq %d -conc %d -rounds %d`\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), gogc,
		o.duration, o.rate, o.seqN, o.conc, o.rounds)
	fmt.Fprintf(&b, "One process on loopback: mock OpenAI upstream, bare `httputil.ReverseProxy`, custos configured as `custos serve` runs it (API handler + model gateway; key, providers, budgets and the org's setup from the vault on SQLite; redaction of secrets, PII and the org's stored values; AI rate limits; usage recorded; egress client), load generator. "+
		"Request: %d-byte chat completion (%d bytes streaming; system + user message with code), %d placeholders per request after custos redacts it (3 planted values: GitHub token, AWS key id, email). "+
		"Latency is to the end of the answer (the end of the stream when streaming); at the fixed rate it counts from each request's scheduled send time. Added = target − direct in the same phase.\n\n",
		len(p.plain), len(p.stream), fx.echo.placeholders)
	fmt.Fprintln(&b, "| mode | load | target | requests | errors | p50 | p99 | added p50 | added p99 | first byte p50 | first byte p99 |")
	fmt.Fprintln(&b, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range lat {
		added50, added99, fb50, fb99 := "—", "—", "—", "—"
		if r.target != "direct" {
			added50, added99 = ms(r.added50), ms(r.added99)
		}
		if r.stream {
			fb50, fb99 = ms(r.fb50), ms(r.fb99)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s |\n",
			r.mode, r.load, r.target, r.n, r.errors, ms(r.p50), ms(r.p99), added50, added99, fb50, fb99)
	}
	rateLoad := fmt.Sprintf("%.0f req/s", o.rate)
	d := findLat(lat, "non-streaming", rateLoad, "direct")
	fmt.Fprintf(&b, "\nAt %s the load generator itself sends p50 %s, p99 %s after the scheduled time (Go's timers sleep at least about 1 ms on an idle core); that lag is in every row of the phase, direct included, and cancels out of the added latency.\n",
		rateLoad, ms(d.late50), ms(d.late99))
	fmt.Fprintf(&b, "\nThroughput, %d concurrent clients:\n\n", o.conc)
	fmt.Fprintln(&b, "| mode | target | requests | errors | req/s | vs reverse proxy | CPU µs/request | of which the target |")
	fmt.Fprintln(&b, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, r := range tput {
		own := "—"
		if d := findTput(tput, r.mode, "direct"); r.target != "direct" && d.cpu > 0 {
			own = fmt.Sprintf("%.0f", float64(r.cpu-d.cpu)/1e3)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.0f | %.2f× | %.0f | %s |\n", r.mode, r.target, r.n, r.errors, r.rps, r.ratio, float64(r.cpu)/1e3, own)
	}
	fmt.Fprintln(&b, "\nCPU µs/request is the whole process's CPU time (load generator, upstream and target) in the phase over its requests;")
	fmt.Fprintln(&b, "\"of which the target\" subtracts the direct row's, leaving what the proxy in between costs per request.")
	fmt.Fprintln(&b, "\nTargets (custos):")
	fmt.Fprintln(&b, "\n| mode | target | measured | result |")
	fmt.Fprintln(&b, "|---|---|--:|---|")
	for _, m := range modes {
		c := findLat(lat, m.name, rateLoad, "custos")
		// Any failed request is a miss: percentiles of the rest mean little.
		fmt.Fprintf(&b, "| %s | added p50 at %s ≤ %s | %s | %s |\n", m.name, rateLoad, ms(targetP50), ms(c.added50), verdict(c.errors == 0 && c.added50 <= targetP50))
		fmt.Fprintf(&b, "| %s | added p99 at %s ≤ %s | %s | %s |\n", m.name, rateLoad, ms(targetP99), ms(c.added99), verdict(c.errors == 0 && c.added99 <= targetP99))
		tr := findTput(tput, m.name, "custos")
		fmt.Fprintf(&b, "| %s | throughput ≥ %.1f× reverse proxy | %.2f× | %s |\n", m.name, targetRatio, tr.ratio, verdict(tr.errors == 0 && tr.ratio >= targetRatio))
	}
	var errs []string
	for _, r := range lat {
		if r.errors > 0 {
			errs = append(errs, fmt.Sprintf("- %s, %s, %s: %d failed; first: %s", r.mode, r.load, r.target, r.errors, r.firstErr))
		}
	}
	for _, r := range tput {
		if r.errors > 0 {
			errs = append(errs, fmt.Sprintf("- %s, throughput, %s: %d failed; first: %s", r.mode, r.target, r.errors, r.firstErr))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "\nFailed requests:\n\n%s\n", strings.Join(errs, "\n"))
	}
	seqC := findLat(lat, "non-streaming", "sequential", "custos")
	rateC := findLat(lat, "non-streaming", rateLoad, "custos")
	fmt.Fprintf(&b, "\ncustos' own `X-Custos-Overhead-Ms` (non-streaming): sequential p50 %s, p99 %s; at %s p50 %s, p99 %s.\n",
		msf(fpct(overhead[0], 50)), msf(fpct(overhead[0], 99)), rateLoad, msf(fpct(overhead[1], 50)), msf(fpct(overhead[1], 99)))
	fmt.Fprintf(&b, "\nPublished anchors (added latency, independent localhost benchmark): %s. custos, non-streaming: added p50 %s sequential, %s at %s.\n",
		anchors, ms(seqC.added50), ms(rateC.added50), rateLoad)

	fmt.Print(b.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.String()), 0o600)
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func msf(v float64) string { return fmt.Sprintf("%.3f ms", v) }

// ---- setup ----

// fixture is everything the run serves, and the targets that reach it.
type fixture struct {
	servers []*http.Server
	store   *sqlite.Store
	keeper  envelope.Keeper
	echo    *echoUpstream
	labels  bool   // label server goroutines for the CPU profile
	token   string // the caller's custos API key
	custURL string
	targets []*target // direct, reverse proxy, custos
}

func (f *fixture) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range f.servers {
		_ = s.Shutdown(ctx)
	}
	if f.store != nil {
		_ = f.store.Close()
	}
	if f.keeper != nil {
		_ = f.keeper.Close()
	}
}

// serve serves h on a new loopback listener with the timeouts of the
// custos server and returns its base URL. With labels, each connection's
// goroutine (and every goroutine it starts: handler work, outbound
// connections) carries the pprof label target=name.
func (f *fixture) serve(name string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: custoshttp.ReadHeaderTimeout,
		ReadTimeout:       custoshttp.ReadTimeout,
		WriteTimeout:      custoshttp.WriteTimeout,
		IdleTimeout:       custoshttp.IdleTimeout,
		MaxHeaderBytes:    custoshttp.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	if f.labels {
		lctx := pprof.WithLabels(context.Background(), pprof.Labels("target", name))
		// StateActive is reported on the connection's own goroutine.
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateActive {
				pprof.SetGoroutineLabels(lctx)
			}
		}
	}
	f.servers = append(f.servers, s)
	go func() { _ = s.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

func setup(ctx context.Context, dir string, labels bool) (_ *fixture, err error) {
	f := &fixture{echo: &echoUpstream{}, labels: labels}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	discard := slog.New(slog.DiscardHandler)

	// The mock upstream: /v1 answers from precomputed bodies; /echo/v1
	// answers with the placeholders it received, for the check.
	up := newUpstream()
	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", up)
	mux.Handle("POST /echo/v1/chat/completions", f.echo)
	upURL, err := f.serve("upstream", mux)
	if err != nil {
		return nil, err
	}

	// The bare reverse proxy, with a transport that keeps enough idle
	// connections for the throughput phase (the default keeps 2 per host).
	u, err := url.Parse(upURL)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rt := http.DefaultTransport.(*http.Transport).Clone()
	rt.MaxIdleConns, rt.MaxIdleConnsPerHost = 1024, 1024
	rp.Transport = rt
	rp.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	rpURL, err := f.serve("reverse proxy", rp)
	if err != nil {
		return nil, err
	}

	// custos: vault on SQLite, redaction engine, egress client, gateway,
	// API server.
	if f.keeper, err = envelope.OpenKeeper(ctx, "file://"+filepath.Join(dir, "kek.key"), envelope.OpenOptions{Create: true}); err != nil {
		return nil, fmt.Errorf("open keeper: %w", err)
	}
	if f.store, err = sqlite.Open(ctx, filepath.Join(dir, "custos.db"), sqlite.Options{Synchronous: "NORMAL"}); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	svc := vault.New(vault.Config{Store: f.store, Keeper: f.keeper, Logger: discard})
	if err := svc.CheckKeeper(ctx); err != nil {
		return nil, err
	}
	var created bool
	if f.token, created, err = svc.Bootstrap(ctx, "bench"); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	} else if !created {
		return nil, errors.New("bootstrap: the fresh database already has an org")
	}
	// custos as `custos serve` runs it: the providers stored in the vault
	// (local ones: the gateway reaches them with its egress client
	// restricted to their own host at non-public addresses), the org's
	// setup resolved and cached by the vault, budgets checked, usage
	// recorded in batches, the AI rate limits counted (set high enough
	// never to refuse here).
	owner, err := svc.Authenticate(ctx, f.token)
	if err != nil {
		return nil, err
	}
	octx := custos.NewContextWithCaller(ctx, &custos.Caller{Key: owner, Agent: "bench", Source: custos.SourceCLI})
	for _, p := range []custos.AddProviderInput{
		{Name: "mock", Kind: custos.ProviderLocal, BaseURL: upURL + "/v1", APIKey: providerToken, Models: []string{benchModel}},
		{Name: "echo", Kind: custos.ProviderLocal, BaseURL: upURL + "/echo/v1", APIKey: providerToken, Models: []string{echoModel}},
	} {
		if _, err := svc.AddProvider(octx, p); err != nil {
			return nil, fmt.Errorf("add provider %s: %w", p.Name, err)
		}
	}
	vg := svc.NewGateway(redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig())})
	usage := svc.NewUsageRecorder()
	go usage.Run(ctx)
	lim := ratelimit.New(memory.New(), ratelimit.Config{
		PerKey: ratelimit.Limit{N: 1 << 40, Window: time.Minute}, PerIP: ratelimit.Limit{N: 1 << 40, Window: time.Minute},
		AuthFailuresPerIP: ratelimit.Limit{N: 20, Window: 10 * time.Minute}, Namespace: "ai:"}, discard)
	gw, err := gateway.NewHandler(gateway.Config{
		Keys:     svc,
		Resolve:  vg.Setup,
		Budgets:  vg,
		OnKnown:  vg.KnownFound,
		OnUsage:  usage.Record,
		Limiter:  lim,
		Egress:   egress.Config{},
		Logger:   discard,
		Mode:     custos.PrivacyNormal,
		OnSecret: gateway.OnSecretRedact,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	api := custoshttp.NewHandler(custoshttp.Config{
		Services: custoshttp.Services{Keys: svc, Secrets: svc, Devices: svc, Policies: svc, Sessions: svc, Audit: svc},
		Gateway:  gw,
		Logger:   discard,
		Ready:    f.store.Ping,
		Limiter:  nil,
	})
	if f.custURL, err = f.serve("custos", api); err != nil {
		return nil, err
	}

	const path = "/v1/chat/completions"
	f.targets = []*target{
		newTarget("direct", upURL+path, f.token),
		newTarget("reverse proxy", rpURL+path, f.token),
		newTarget("custos", f.custURL+path, f.token),
	}
	return f, nil
}

// ---- the mock upstream ----

// upstream answers chat completions from precomputed bodies.
type upstream struct {
	plain  []byte
	chunks [][]byte // SSE events, each flushed
	bufs   sync.Pool
}

func newUpstream() *upstream {
	const content = "The handler reads the configuration once at start and never logs the token. " +
		"Two suggestions: load the credentials from the environment or a secrets manager instead of the source file, " +
		"and wrap the client in a context with a deadline so a slow API cannot hold the request goroutine. " +
		"The retry loop should also back off exponentially with jitter."
	u := &upstream{bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	u.plain = mustJSON(map[string]any{
		"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": benchModel,
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "logprobs": nil, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 2048, "completion_tokens": 64, "total_tokens": 2112},
	})
	chunk := func(delta map[string]any, finish any) []byte {
		return sse(mustJSON(map[string]any{
			"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": benchModel,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}))
	}
	u.chunks = append(u.chunks, chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, part := range splitN(content, 4) {
		u.chunks = append(u.chunks, chunk(map[string]any{"content": part}, nil))
	}
	u.chunks = append(u.chunks, chunk(map[string]any{}, "stop"))
	u.chunks = append(u.chunks, sse(mustJSON(map[string]any{
		"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": benchModel,
		"choices": []any{}, "usage": map[string]any{"prompt_tokens": 2048, "completion_tokens": 64, "total_tokens": 2112},
	})))
	u.chunks = append(u.chunks, []byte("data: [DONE]\n\n"))
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := u.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = buf.ReadFrom(r.Body)
	stream := bytes.Contains(buf.Bytes(), []byte(`"stream":true`))
	u.bufs.Put(buf)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(u.plain)))
		_, _ = w.Write(u.plain)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	for _, c := range u.chunks {
		_, _ = w.Write(c)
		if fl != nil {
			fl.Flush()
		}
	}
}

// echoUpstream answers with the placeholders it received, and records
// whether any planted value reached it.
type echoUpstream struct {
	mu           sync.Mutex
	bodies       [][]byte
	placeholders int
}

var placeholderRE = regexp.MustCompile(`\[\[[A-Z][A-Z0-9_]*_[0-9]+\]\]`)

func (e *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	e.mu.Lock()
	e.bodies = append(e.bodies, b)
	e.mu.Unlock()
	var seen []string
	for _, p := range placeholderRE.FindAllString(string(b), -1) {
		if !contains(seen, p) {
			seen = append(seen, p)
		}
	}
	content := "echo: " + strings.Join(seen, " | ")
	if !bytes.Contains(b, []byte(`"stream":true`)) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(mustJSON(map[string]any{
			"id": "chatcmpl-echo", "object": "chat.completion", "created": 1700000000, "model": echoModel,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
		}))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	// Small pieces, so placeholders arrive cut apart.
	for _, part := range pieces(content, 7) {
		_, _ = w.Write(sse(mustJSON(map[string]any{
			"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 1700000000, "model": echoModel,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": part}, "finish_reason": nil}},
		})))
		if fl != nil {
			fl.Flush()
		}
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func sse(data []byte) []byte { return append(append([]byte("data: "), data...), "\n\n"...) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// splitN cuts s into n pieces of about the same length.
func splitN(s string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, s[i*len(s)/n:(i+1)*len(s)/n])
	}
	return out
}

// pieces cuts s into n-byte pieces.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// ---- the prompt ----

// prompt is the request, non-streaming and streaming, and the values
// planted in it.
type prompt struct {
	plain, stream []byte
	planted       []string
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []chatMessage  `json:"messages"`
	Temperature   float64        `json:"temperature"`
	MaxTokens     int            `json:"max_tokens"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

const systemPrompt = "You are a senior Go reviewer on the platform team. Review the code the user pastes: point out bugs, " +
	"race conditions, missing error handling, resource leaks and security problems, then suggest concrete fixes as small diffs. " +
	"Prefer the standard library. Keep the answer short and specific; do not restate the code. " +
	"If the code handles credentials, check that they are never logged, never written to disk in the clear and never sent to a third party. " +
	"Answer in Markdown with one heading per file."

// codeBlock is repeated (with its names varied) to fill the user message.
const codeBlock = `
// %[1]sClient talks to the %[1]s API.
type %[1]sClient struct {
	base    string
	http    *http.Client
	retries int
}

// Fetch%[1]s returns the items of page, retrying on 5xx answers.
func (c *%[1]sClient) Fetch%[1]s(ctx context.Context, page int) ([]Item, error) {
	var lastErr error
	for attempt := 0; attempt <= c.retries; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%%s/items?page=%%d", c.base, page), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 {
			lastErr = fmt.Errorf("%[2]s: status %%d", resp.StatusCode)
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			continue
		}
		var out struct{ Items []Item }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		return out.Items, err
	}
	return nil, lastErr
}
`

// newPrompt builds the 8 KB request with freshly generated fake secrets: a
// GitHub token, an AWS access key id and an email address.
func newPrompt() (*prompt, error) {
	ghp := "ghp_" + (rand.Text() + strings.ToLower(rand.Text()))[:36]
	aws := "AKIA" + rand.Text()[:16]
	email := "dana." + strings.ToLower(rand.Text()[:6]) + "@northwind-traders.com"
	var u strings.Builder
	u.WriteString("Request " + nonceSlot + ". Can you review this client package? It is slow under load and I think the retry loop leaks connections.\n\n```go\npackage inventory\n\n")
	fmt.Fprintf(&u, "// Maintainer: %s\n\nconst (\n\tgithubToken = %q // TODO: move to the vault\n\tawsKeyID    = %q\n)\n", email, ghp, aws)
	names := []string{"Inventory", "Orders", "Shipping", "Billing", "Catalog", "Returns", "Pricing", "Warehouse", "Suppliers", "Invoices"}
	for i := 0; u.Len() < 2*promptSize; i++ {
		n := names[i%len(names)]
		fmt.Fprintf(&u, codeBlock, n, strings.ToLower(n))
	}
	content := u.String()
	build := func(c string, stream bool) ([]byte, error) {
		r := chatRequest{Model: benchModel, Temperature: 0.2, MaxTokens: 1024,
			Messages: []chatMessage{{Role: "system", Content: systemPrompt}, {Role: "user", Content: c + "```\n"}}}
		if stream {
			r.Stream, r.StreamOptions = true, &streamOptions{IncludeUsage: true}
		}
		return json.Marshal(r)
	}
	// Keep the longest prefix of the code with which the streaming body
	// (the longer one) fits in promptSize.
	lo, hi := 0, len(content)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		b, err := build(content[:mid], true)
		if err != nil {
			return nil, err
		}
		if len(b) <= promptSize {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	content = content[:lo]
	p := &prompt{planted: []string{ghp, aws, email}}
	var err error
	if p.plain, err = build(content, false); err != nil {
		return nil, err
	}
	if p.stream, err = build(content, true); err != nil {
		return nil, err
	}
	for _, v := range p.planted {
		if !bytes.Contains(p.plain, []byte(v)) {
			return nil, fmt.Errorf("prompt: planted value cut off")
		}
	}
	return p, nil
}

// check sends the prompt through custos to the echo upstream, streaming and
// not, and fails unless the upstream saw placeholders and no planted value
// and the caller got every planted value back.
func (f *fixture) check(p *prompt) error {
	for _, stream := range []bool{false, true} {
		body := p.plain
		if stream {
			body = p.stream
		}
		body = bytes.Replace(body, []byte(`"model":"`+benchModel+`"`), []byte(`"model":"`+echoModel+`"`), 1)
		t := newTarget("custos", f.custURL+"/v1/chat/completions", f.token)
		req, err := t.request(body)
		if err != nil {
			return err
		}
		resp, err := t.client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("stream=%v: status %d: %s", stream, resp.StatusCode, clip(b))
		}
		answer, err := answerText(b, stream)
		if err != nil {
			return fmt.Errorf("stream=%v: %w", stream, err)
		}
		f.echo.mu.Lock()
		got := f.echo.bodies[len(f.echo.bodies)-1]
		f.echo.mu.Unlock()
		n := len(placeholderRE.FindAll(got, -1))
		if n < len(p.planted) {
			return fmt.Errorf("stream=%v: the upstream saw %d placeholders, want at least %d", stream, n, len(p.planted))
		}
		f.echo.placeholders = n
		for _, v := range p.planted {
			if bytes.Contains(got, []byte(v)) {
				return fmt.Errorf("stream=%v: the upstream received a planted value (%.8s…) in the clear", stream, v)
			}
			if !strings.Contains(answer, v) {
				return fmt.Errorf("stream=%v: the caller did not get a planted value (%.8s…) back restored: %q", stream, v, answer)
			}
		}
		if strings.Contains(answer, "[[") {
			return fmt.Errorf("stream=%v: a placeholder reached the caller: %q", stream, answer)
		}
	}
	return nil
}

// answerText returns the assistant text of a chat completion or of an SSE
// stream of chunks.
func answerText(b []byte, stream bool) (string, error) {
	type choice struct {
		Message struct{ Content string } `json:"message"`
		Delta   struct{ Content string } `json:"delta"`
	}
	type completion struct{ Choices []choice }
	if !stream {
		var c completion
		if err := json.Unmarshal(b, &c); err != nil || len(c.Choices) == 0 {
			return "", fmt.Errorf("bad answer: %s", clip(b))
		}
		return c.Choices[0].Message.Content, nil
	}
	var s strings.Builder
	done := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if d == "[DONE]" {
			done = true
			continue
		}
		var c completion
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			return "", fmt.Errorf("bad chunk %q", d)
		}
		for _, ch := range c.Choices {
			s.WriteString(ch.Delta.Content)
		}
	}
	if !done {
		return "", errors.New("the stream did not end with [DONE]")
	}
	return s.String(), nil
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// ---- the load generator ----

// mode is non-streaming or streaming, with its request body.
type mode struct {
	name   string
	stream bool
	body   []byte
	nonce  int // offset of the nonce slot in body; -1: send body unchanged
}

// nonceSlot is replaced in every request by a number of its own, so no two
// requests carry the same text and custos's cache of findings cannot make
// the cold path look faster than it is.
const nonceSlot = "NONCE-0000000000"

var nonces atomic.Uint64

// payload returns the body of one request: a copy of m.body with a fresh
// nonce, or m.body itself.
func (m mode) payload() []byte {
	if m.nonce < 0 {
		return m.body
	}
	b := bytes.Clone(m.body)
	copy(b[m.nonce+len("NONCE-"):m.nonce+len(nonceSlot)], fmt.Sprintf("%010d", nonces.Add(1)%1e10))
	return b
}

// target is one endpoint under test with its own connection pool.
type target struct {
	name   string
	url    string
	token  string
	client *http.Client
	bufs   sync.Pool
}

func newTarget(name, u, token string) *target {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	return &target{name: name, url: u, token: token,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		bufs:   sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

func (t *target) request(body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// sample is one request's outcome. Times count from the time given to do.
type sample struct {
	ok        bool
	err       string
	lat, ttfb time.Duration
	late      time.Duration // sent this long after from
	overhead  float64       // X-Custos-Overhead-Ms; -1 when absent
}

// firstByte notes when the first body byte arrives.
type firstByte struct {
	r  io.Reader
	at time.Time
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}

var doneEvent = []byte("data: [DONE]")

// do sends one request and reads the whole answer; from is when it was due.
func (t *target) do(m mode, from time.Time) sample {
	s := sample{overhead: -1, late: time.Since(from)}
	req, err := t.request(m.payload())
	if err != nil {
		s.err = err.Error()
		return s
	}
	resp, err := t.client.Do(req)
	if err != nil {
		s.lat, s.err = time.Since(from), err.Error()
		return s
	}
	fb := &firstByte{r: resp.Body}
	buf := t.bufs.Get().(*bytes.Buffer)
	defer t.bufs.Put(buf)
	buf.Reset()
	_, err = buf.ReadFrom(fb)
	_ = resp.Body.Close()
	end := time.Now()
	s.lat, s.ttfb = end.Sub(from), fb.at.Sub(from)
	switch b := bytes.TrimSpace(buf.Bytes()); {
	case err != nil:
		s.err = err.Error()
	case resp.StatusCode != http.StatusOK:
		s.err = fmt.Sprintf("status %d: %s", resp.StatusCode, clip(b))
	case m.stream && !bytes.HasSuffix(b, doneEvent):
		s.err = "stream did not end with [DONE]"
	case !m.stream && (len(b) == 0 || b[0] != '{' || !bytes.Contains(b, []byte(`"usage"`))):
		s.err = "not a chat completion: " + clip(b)
	default:
		s.ok = true
	}
	if v := resp.Header.Get("X-Custos-Overhead-Ms"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			s.overhead = f
		}
	}
	return s
}

// sequential sends n requests to each target one at a time, interleaving
// the targets (rotating who goes first), and returns each target's samples.
func sequential(ts []*target, m mode, n int) [][]sample {
	out := make([][]sample, len(ts))
	for i := 0; i < n; i++ {
		for j := range ts {
			k := (i + j) % len(ts)
			out[k] = append(out[k], ts[k].do(m, time.Now()))
		}
	}
	return out
}

// rotate runs phase on every target in each of rounds rounds, rotating
// the order, and returns each target's samples of all rounds.
func rotate(ts []*target, rounds int, phase func(*target) []sample) [][]sample {
	out := make([][]sample, len(ts))
	for r := 0; r < rounds; r++ {
		for j := range ts {
			k := (r + j) % len(ts)
			runtime.GC() // start each target from the same heap state
			out[k] = append(out[k], phase(ts[k])...)
		}
	}
	return out
}

// openLoop sends at rate req/s for d, each request on schedule whatever
// the previous ones do; latencies count from the scheduled time.
func openLoop(t *target, m mode, rate float64, d time.Duration) []sample {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	out := make([]sample, n)
	var wg sync.WaitGroup
	t0 := time.Now().Add(time.Millisecond)
	for i := 0; i < n; i++ {
		at := t0.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = t.do(m, at)
		}()
	}
	wg.Wait()
	return out
}

// closedLoop runs conc clients back to back for d. The last sample carries
// the elapsed time in its lat field and is not a request.
func closedLoop(t *target, m mode, conc int, d time.Duration) []sample {
	var mu sync.Mutex
	var all []sample
	var wg sync.WaitGroup
	var stop atomic.Bool
	start, cpu0 := time.Now(), processCPU()
	time.AfterFunc(d, func() { stop.Store(true) })
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []sample
			for !stop.Load() {
				t0 := time.Now()
				mine = append(mine, t.do(m, t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return append(all, sample{err: elapsedMarker, lat: time.Since(start)}, sample{err: cpuMarker, lat: processCPU() - cpu0})
}

// Markers of the phase's wall time and the process's CPU time among a
// closed loop's samples.
const (
	elapsedMarker = "\x00elapsed"
	cpuMarker     = "\x00cpu"
)

// processCPU returns the CPU time (user + system) the process has used:
// load generator, upstream and the target together, so a target's share is
// its CPU per request minus the direct one's.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- summaries ----

type latRow struct {
	mode, load, target string
	stream             bool
	n, errors          int
	p50, p99           time.Duration
	fb50, fb99         time.Duration
	late50, late99     time.Duration
	firstErr           string
	added50, added99   time.Duration
}

// latRows summarizes one phase; samples are in target order, direct first.
func latRows(m mode, load string, samples [][]sample) []latRow {
	names := []string{"direct", "reverse proxy", "custos"}
	var rows []latRow
	for i, ss := range samples {
		var lat, fb, late []time.Duration
		errs, firstErr := 0, ""
		for _, s := range ss {
			late = append(late, s.late)
			if !s.ok {
				if errs == 0 {
					firstErr = s.err
				}
				errs++
				continue
			}
			lat, fb = append(lat, s.lat), append(fb, s.ttfb)
		}
		r := latRow{mode: m.name, load: load, target: names[i], stream: m.stream, n: len(ss), errors: errs,
			p50: pct(lat, 50), p99: pct(lat, 99), fb50: pct(fb, 50), fb99: pct(fb, 99), late50: pct(late, 50), late99: pct(late, 99), firstErr: firstErr}
		if i > 0 {
			r.added50, r.added99 = r.p50-rows[0].p50, r.p99-rows[0].p99
		}
		rows = append(rows, r)
	}
	return rows
}

type tputRow struct {
	mode, target string
	firstErr     string
	n, errors    int
	rps, ratio   float64
	cpu          time.Duration // process CPU per request
}

func tputRows(m mode, ts []*target, samples [][]sample) []tputRow {
	var rows []tputRow
	for i, ss := range samples {
		var el, cpu time.Duration
		r := tputRow{mode: m.name, target: ts[i].name}
		for _, s := range ss {
			switch {
			case s.err == elapsedMarker:
				el += s.lat
			case s.err == cpuMarker:
				cpu += s.lat
			case s.ok:
				r.n++
			default:
				if r.errors == 0 {
					r.firstErr = s.err
				}
				r.n++
				r.errors++
			}
		}
		r.rps = float64(r.n-r.errors) / el.Seconds()
		if r.n > 0 {
			r.cpu = cpu / time.Duration(r.n)
		}
		rows = append(rows, r)
	}
	for i := range rows {
		rows[i].ratio = rows[i].rps / rows[1].rps // the reverse proxy
	}
	return rows
}

func findLat(rows []latRow, m, load, target string) latRow {
	for _, r := range rows {
		if r.mode == m && r.load == load && r.target == target {
			return r
		}
	}
	return latRow{}
}

func findTput(rows []tputRow, m, target string) tputRow {
	for _, r := range rows {
		if r.mode == m && r.target == target {
			return r
		}
	}
	return tputRow{}
}

// overheads returns the X-Custos-Overhead-Ms values of ss.
func overheads(ss []sample) []float64 {
	var out []float64
	for _, s := range ss {
		if s.ok && s.overhead >= 0 {
			out = append(out, s.overhead)
		}
	}
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[pctIndex(len(d), p)]
}

func fpct(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[pctIndex(len(v), p)]
}

// pctIndex is the nearest-rank index of percentile p among n values.
func pctIndex(n, p int) int {
	i := (n*p + 99) / 100
	if i >= n {
		return n - 1
	} else if i > 0 {
		i--
	}
	return i
}
