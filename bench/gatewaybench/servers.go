package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/gateway"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
	"github.com/custos-dev/custos/store/memory"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/vault"
)

// ---- the servers, each in a process of its own ----

// The roles: the servers the bench runs, each in a child process started
// from its own executable (see startProc), so that no server shares a Go
// runtime (scheduler, garbage collector) with another or with the load
// generator, as custos shares none with its callers and providers.
const (
	roleUpstream = "upstream"
	roleProxy    = "reverse-proxy"
	roleCustos   = "custos"

	// roleBaseline names a second custos process (-baseline) in profiles
	// and errors; it serves roleCustos.
	roleBaseline = "baseline"
)

// The environment of a child process.
const (
	roleEnv     = "CUSTOS_GATEWAYBENCH_ROLE"     // the role to serve
	upstreamEnv = "CUSTOS_GATEWAYBENCH_UPSTREAM" // the upstream's base URL (the proxies)
	dirEnv      = "CUSTOS_GATEWAYBENCH_DIR"      // custos's data directory
	rulesEnv    = "CUSTOS_GATEWAYBENCH_RULES"    // custos's redaction rules: rulesNone, or the default
)

// The redaction rules custos serves with.
const (
	rulesDefault = "default" // secrets and the default personal-data detectors
	rulesNone    = "none"    // none: the body is still parsed, nothing is found
)

// hello is a child's first line on stdout.
type hello struct {
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"` // custos: the caller's API key
	Rules string `json:"rules,omitempty"` // custos: rulesDefault or rulesNone
	Error string `json:"error,omitempty"`
}

// serveRole is the whole life of a child process: it starts the role's
// server on a loopback port, says hello on stdout, answers the parent's
// commands on stdin (see commands) and shuts down when stdin ends, as it
// does when the parent exits.
func serveRole(role string) error {
	setGC()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		h       http.Handler
		token   string
		rules   string
		cleanup = func() {}
		err     error
	)
	switch role {
	case roleUpstream:
		h = newUpstreamMux()
	case roleProxy:
		h, err = newReverseProxy(os.Getenv(upstreamEnv))
	case roleCustos:
		rules = rulesDefault
		if v := os.Getenv(rulesEnv); v != "" {
			rules = v
		}
		h, token, cleanup, err = newCustos(ctx, os.Getenv(dirEnv), os.Getenv(upstreamEnv), rules)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	defer cleanup()
	var srv *http.Server
	var u string
	if err == nil {
		srv, u, err = serve(h)
	}
	out := json.NewEncoder(os.Stdout)
	if err != nil {
		_ = out.Encode(hello{Error: err.Error()})
		return err
	}
	if err := out.Encode(hello{URL: u, Token: token, Rules: rules}); err != nil {
		return err
	}
	commands(os.Stdin, os.Stdout)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}

// commands answers the parent's commands, one line each, until in ends:
//
//	cpu            the process's CPU time so far, in nanoseconds
//	profile FILE   start a CPU profile written to FILE
//	stop           stop the CPU profile
//	allocs FILE    write an allocation profile to FILE
//
// Each answer is one line: a number, "ok", or "error: " and the reason.
func commands(in io.Reader, out io.Writer) {
	sc := bufio.NewScanner(in)
	var prof *os.File
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			_ = prof.Close()
		}
	}()
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch cmd {
		case "cpu":
			fmt.Fprintln(out, processCPU().Nanoseconds())
			continue
		case "profile":
			if prof != nil {
				err = errors.New("a profile is running")
			} else if prof, err = os.Create(arg); err == nil { // #nosec G304 -- a profile named on the command line
				if err = pprof.StartCPUProfile(prof); err != nil {
					_ = prof.Close()
					prof = nil
				}
			}
		case "stop":
			if prof != nil {
				pprof.StopCPUProfile()
				err = prof.Close()
				prof = nil
			}
		case "allocs":
			err = writeAllocs(arg)
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Fprintln(out, "error:", err)
		} else {
			fmt.Fprintln(out, "ok")
		}
	}
}

// writeAllocs writes the process's allocation profile to name.
func writeAllocs(name string) error {
	f, err := os.Create(name) // #nosec G304 -- a profile named on the command line
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// setGC sets the garbage collector as `custos serve` does (GOGC=400 unless
// GOGC is set) and returns the setting.
func setGC() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	debug.SetGCPercent(400)
	return "400"
}

// serve serves h on a new loopback listener with the timeouts of the
// custos server and returns the server and its base URL.
func serve(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
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
	go func() { _ = s.Serve(ln) }()
	return s, "http://" + ln.Addr().String(), nil
}

// newReverseProxy returns the bare reverse proxy to the upstream, with a
// transport that keeps enough idle connections for the throughput phase
// (the default keeps 2 per host).
func newReverseProxy(upstream string) (http.Handler, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("upstream URL %q: %v", upstream, err)
	}
	rt := http.DefaultTransport.(*http.Transport).Clone()
	rt.MaxIdleConns, rt.MaxIdleConnsPerHost = 1024, 1024
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
			// net/http's transport reads a request body once more after
			// its Content-Length to see that it ends; when the upstream's
			// answer comes first, the server has already closed the
			// inbound body, that read fails and the transport drops the
			// upstream connection in the middle of a stream (the caller
			// gets "unexpected EOF"). A body that ends itself at its
			// length makes no such read.
			if r.Out.Body != nil && r.Out.ContentLength > 0 {
				r.Out.Body = &sizedBody{ReadCloser: r.Out.Body, left: r.Out.ContentLength}
			}
		},
		Transport:     rt,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	return rp, nil
}

// sizedBody is a request body that reports its end after its declared
// length without reading on.
type sizedBody struct {
	io.ReadCloser
	left int64
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// newCustos sets custos up in dir as `custos serve` runs it and returns
// its API handler, the caller's API key, and what closes it; rules is
// rulesDefault or rulesNone.
func newCustos(ctx context.Context, dir, upstream, rules string) (_ http.Handler, token string, cleanup func(), err error) {
	var closers []func() error
	cleanup = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	if dir == "" || upstream == "" {
		return nil, "", cleanup, errors.New("custos needs a directory and the upstream's URL")
	}
	discard := slog.New(slog.DiscardHandler)
	keeper, err := envelope.OpenKeeper(ctx, "file://"+filepath.Join(dir, "kek.key"), envelope.OpenOptions{Create: true})
	if err != nil {
		return nil, "", cleanup, fmt.Errorf("open keeper: %w", err)
	}
	closers = append(closers, keeper.Close)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "custos.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		return nil, "", cleanup, fmt.Errorf("open database: %w", err)
	}
	closers = append(closers, store.Close)
	svc := vault.New(vault.Config{Store: store, Keeper: keeper, Logger: discard})
	if err := svc.CheckKeeper(ctx); err != nil {
		return nil, "", cleanup, err
	}
	token, created, err := svc.Bootstrap(ctx, "bench")
	if err != nil {
		return nil, "", cleanup, fmt.Errorf("bootstrap: %w", err)
	} else if !created {
		return nil, "", cleanup, errors.New("bootstrap: the fresh database already has an org")
	}
	// custos as `custos serve` runs it: the providers stored in the vault
	// (local ones: the gateway reaches them with its egress client
	// restricted to their own host at non-public addresses), the org's
	// setup resolved and cached by the vault, budgets checked, usage
	// recorded in batches, the AI rate limits counted (set high enough
	// never to refuse here).
	owner, err := svc.Authenticate(ctx, token)
	if err != nil {
		return nil, "", cleanup, err
	}
	octx := custos.NewContextWithCaller(ctx, &custos.Caller{Key: owner, Agent: "bench", Source: custos.SourceCLI})
	for _, p := range []custos.AddProviderInput{
		{Name: "mock", Kind: custos.ProviderLocal, BaseURL: upstream + "/v1", APIKey: providerToken, Models: []string{benchModel}},
		{Name: "echo", Kind: custos.ProviderLocal, BaseURL: upstream + "/echo/v1", APIKey: providerToken, Models: []string{echoModel}},
	} {
		if _, err := svc.AddProvider(octx, p); err != nil {
			return nil, "", cleanup, fmt.Errorf("add provider %s: %w", p.Name, err)
		}
	}
	rc := redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig())}
	switch rules {
	case rulesDefault:
	case rulesNone:
		rc = redact.Config{}
	default:
		return nil, "", cleanup, fmt.Errorf("%s=%q: want %s or %s", rulesEnv, rules, rulesDefault, rulesNone)
	}
	vg := svc.NewGateway(rc)
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
		return nil, "", cleanup, fmt.Errorf("gateway: %w", err)
	}
	api := custoshttp.NewHandler(custoshttp.Config{
		Services: custoshttp.Services{Keys: svc, Secrets: svc, Devices: svc, Policies: svc, Sessions: svc, Audit: svc},
		Gateway:  gw,
		Logger:   discard,
		Ready:    store.Ping,
		Limiter:  nil,
	})
	return api, token, cleanup, nil
}

// ---- the mock upstream ----

// newUpstreamMux returns the mock upstream: /v1 answers from precomputed
// bodies; /echo/v1 answers with the placeholders it received, and
// GET /echo/last returns the last body it received, for the check.
func newUpstreamMux() http.Handler {
	echo := &echoUpstream{}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", newUpstream())
	mux.Handle("POST /echo/v1/chat/completions", echo)
	mux.HandleFunc("GET /echo/last", echo.last)
	return mux
}

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

// echoUpstream answers with the placeholders it received and keeps the
// last body, so the check can see what reached the upstream.
type echoUpstream struct {
	mu       sync.Mutex
	lastBody []byte
}

func (e *echoUpstream) last(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	b := e.lastBody
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

var placeholderRE = regexp.MustCompile(`\[\[[A-Z][A-Z0-9_]*_[0-9]+\]\]`)

func (e *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	e.mu.Lock()
	e.lastBody = b
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
