package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/mcp"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

const mcpUsage = `Usage: custos mcp [--allow-run] [--allow-reveal] [--http 127.0.0.1:PORT]

Serves custos's tools to a coding agent over MCP: on stdin/stdout by
default, or over streamable HTTP on a loopback address with --http (clients
send Authorization: Bearer <the API key custos mcp uses>). Tool results
never contain a secret value, except reveal_secret's, which exists only
with --allow-reveal. Logs go to stderr.

The server and key are found as for every command (CUSTOS_URL;
CUSTOS_API_KEY, CUSTOS_API_KEY_FILE, .custosrc, .mcp.json); the key is read
again if the server refuses it (it may have been rotated). The agent is the
MCP client's name; the model is CUSTOS_AI_MODEL. See docs/MCP.md.

Add it to an agent's MCP config:
  {"mcpServers": {"custos": {"command": "custos", "args": ["mcp"]}}}

Example:
  custos mcp
  custos mcp --allow-run --http 127.0.0.1:8766
`

// mcpRunTimeout bounds one run_with_secrets command.
const mcpRunTimeout = 10 * time.Minute

func (c *CLI) runMCP(ctx context.Context, args []string) error {
	f := c.newFlags("mcp", mcpUsage)
	allowRun := f.Bool("allow-run", false, "offer run_with_secrets: agents run commands with secrets in their environment (output masked)")
	allowReveal := f.Bool("allow-reveal", false, "offer reveal_secret: agents may read values (device approved at full; audited)")
	addr := f.String("http", "", "serve streamable HTTP on loopback `ADDR` instead of stdio")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *addr != "" {
		if err := checkLoopback(*addr); err != nil {
			return f.usageErr("--http: %s", err)
		}
	}
	cfg, err := c.loadConfig() // fail now, not at the agent's first call
	if err != nil {
		return err
	}
	dir, err := c.sessionDir()
	if err != nil {
		return err
	}
	key := &mcpKey{}
	key.set(cfg.Key)
	logger := slog.New(slog.NewJSONHandler(c.Stderr, nil))
	srv := mcp.NewServer(c.mcpConfig(dir, key, *allowRun, *allowReveal, logger))
	if *addr == "" {
		err := srv.Run(ctx, &mcp.StdioTransport{In: c.Stdin, Out: c.Stdout, Logger: logger})
		if ctx.Err() != nil || errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	return c.serveMCPHTTP(ctx, *addr, srv, key, logger)
}

// mcpKey is the API key custos mcp uses now; Connect replaces it when it
// re-reads the key, and the HTTP transport compares bearers with it.
type mcpKey struct {
	mu  sync.Mutex
	key string
}

func (k *mcpKey) set(s string) { k.mu.Lock(); k.key = s; k.mu.Unlock() }
func (k *mcpKey) get() string  { k.mu.Lock(); defer k.mu.Unlock(); return k.key }

// mcpConfig wires package mcp to the CLI: the HTTP client (source mcp),
// the session dir of `custos secret inject`, and command execution.
func (c *CLI) mcpConfig(dir string, key *mcpKey, allowRun, allowReveal bool, logger *slog.Logger) mcp.Config {
	var webURL string
	if cfg, err := c.loadConfig(); err == nil {
		webURL = cfg.URL
	}
	return mcp.Config{
		Connect: func(agent string) (*mcp.Services, error) {
			if c.services != nil { // tests
				return &mcp.Services{Secrets: c.services.Secrets, Sessions: c.services.Sessions, Policies: c.services.Policies}, nil
			}
			cfg, err := c.loadConfig() // afresh: the key may have been rotated
			if err != nil {
				return nil, custos.Errorf(custos.EUNAUTHORIZED, "%s", err.Error())
			}
			cl, err := custoshttp.NewClient(cfg.URL, custoshttp.ClientOptions{
				Token:       cfg.Key,
				Agent:       agent,
				Hostname:    c.Hostname,
				MachineUser: c.MachineUser,
				Source:      custos.SourceMCP,
				Model:       c.getenv("CUSTOS_AI_MODEL"),
			})
			if err != nil {
				return nil, err
			}
			key.set(cfg.Key)
			return &mcp.Services{Secrets: cl, Sessions: cl, Policies: cl}, nil
		},
		AllowRun:    allowRun,
		AllowReveal: allowReveal,
		Inject: func(project string, values []*custos.SecretValue) (string, error) {
			lines := make([]EnvLine, 0, len(values))
			for _, v := range values {
				lines = append(lines, EnvLine{Key: v.Name, Value: v.Value})
			}
			return writeInjected(dir, project, lines)
		},
		ClearSession: func() (int, error) { return clearSessionDir(dir) },
		Run:          c.mcpRun,
		WebURL:       webURL,
		Version:      Version,
		Logger:       logger,
		Now:          c.now,
	}
}

// mcpRun runs a command for run_with_secrets: the CLI's environment plus
// env, no stdin, output captured (at most mcp.CaptureLimit+1 bytes of
// each stream), killed after mcpRunTimeout or when the call is cancelled.
func (c *CLI) mcpRun(ctx context.Context, command string, args []string, env map[string]string) (int, []byte, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, mcpRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, args...) // #nosec G204 -- running the agent's command is the tool's point; the operator enabled it with --allow-run
	cmd.Env = mergeEnv(os.Environ(), env)
	cmd.Dir = c.Dir
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stdout := &capBuffer{max: mcp.CaptureLimit + 1}
	stderr := &capBuffer{max: mcp.CaptureLimit + 1}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.b.Bytes(), stderr.b.Bytes(), nil
	case errors.As(err, &ee):
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "\ncustos: the command was stopped: %v\n", context.Cause(ctx))
		}
		return code, stdout.b.Bytes(), stderr.b.Bytes(), nil
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		return 127, nil, []byte(fmt.Sprintf("custos: %s: command not found\n", clip(command, 200))), nil
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil:
		return cmd.ProcessState.ExitCode(), stdout.b.Bytes(), stderr.b.Bytes(), nil
	}
	return 126, stdout.b.Bytes(), []byte(fmt.Sprintf("custos: cannot run %s\n", clip(command, 200))), nil
}

// capBuffer keeps the first max bytes written and discards the rest.
type capBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (w *capBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// checkLoopback accepts host:port whose host is a loopback IP or localhost.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want HOST:PORT, e.g. 127.0.0.1:8766")
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address: custos mcp serves agents on this machine only (use 127.0.0.1 or [::1])", clip(host, 64))
}

// mcpBearer lets a request through only with Authorization: Bearer <key>,
// compared in constant time.
func mcpBearer(key *mcpKey, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		want := key.get()
		if !ok || want == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="custos-mcp"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"send Authorization: Bearer <the API key custos mcp uses>"}}`+"\n")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4*mcp.MaxArgumentBytes)
		next.ServeHTTP(w, r)
	})
}

// serveMCPHTTP serves srv over streamable HTTP on addr until ctx ends.
func (c *CLI) serveMCPHTTP(ctx context.Context, addr string, srv *sdkmcp.Server, key *mcpKey, logger *slog.Logger) error {
	h := sdkmcp.NewStreamableHTTPHandler(func(*http.Request) *sdkmcp.Server { return srv }, nil)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: mcpBearer(key, h), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	fmt.Fprintf(c.Stderr, "custos mcp: serving streamable HTTP on http://%s (Authorization: Bearer <API key>)\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		return nil
	}
}
