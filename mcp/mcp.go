// Package mcp is custos's MCP server for coding agents, built on the official
// Go SDK. Its one promise: a secret value never appears in a tool result
// unless a reveal the operator enabled (custos mcp --allow-reveal), approved
// by a human and audited by the server, asked for it.
//
// The server talks to the custos service interfaces of the root package; the
// command line wires them to the HTTP client and serves them over stdio or
// streamable HTTP. Every authorization decision (devices, levels, policies,
// audit) is the custos server's: this package only narrows what an agent can
// ask for and what it gets back.
package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/custos-dev/custos"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Services are the custos APIs the tools call. cmd/custos builds them from
// the HTTP client of the server it is configured for.
type Services struct {
	Secrets  custos.SecretService
	Sessions custos.SessionService
	Policies custos.PolicyService
}

// Config configures the MCP server.
type Config struct {
	// Connect returns the services for an agent, named after the MCP
	// client's clientInfo.Name (made a valid label; "mcp" if absent). It is
	// called on an agent's first tool call, and again, once, when a call
	// fails with custos.EUNAUTHORIZED: the API key may have been rotated, so
	// Connect should read it from its source afresh.
	Connect func(agent string) (*Services, error)

	// AllowRun lists and enables run_with_secrets (custos mcp --allow-run).
	AllowRun bool
	// AllowReveal lists and enables reveal_secret (custos mcp --allow-reveal).
	// No tool argument can turn it on.
	AllowReveal bool

	// Inject writes values to the session env file of project, as
	// `custos secret inject` does, and returns the file's path.
	Inject func(project string, values []*custos.SecretValue) (path string, err error)
	// ClearSession deletes the injected files, as `custos session clear`
	// does, and returns how many it removed. Nil means none to delete.
	ClearSession func() (int, error)
	// Run runs command with args and env added to its environment, with no
	// stdin, and returns its exit code and (at most CaptureLimit+1 bytes of)
	// its output. An error means it could not be run at all.
	Run func(ctx context.Context, command string, args []string, env map[string]string) (exitCode int, stdout, stderr []byte, err error)

	// WebURL is the base URL of the custos server's web pages (import_env).
	WebURL string
	// Version is reported to clients as the server version.
	Version string
	// Logger receives one line per tool call (tool, agent, outcome; never
	// arguments or values). Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Limits of tool input and output.
const (
	// MaxArgumentBytes is the largest JSON arguments object a tool accepts.
	MaxArgumentBytes = 64 << 10
	// MaxOutputBytes is how much of each of stdout and stderr
	// run_with_secrets returns.
	MaxOutputBytes = 64 << 10
	// CaptureLimit is how much of each stream Config.Run needs to keep.
	CaptureLimit = 1 << 20
	// maxArgs bounds the arguments of a command and their length.
	maxArgs      = 256
	maxArgLength = 4096
	// maxAgents bounds the cached connections (one per client name).
	maxAgents = 32
)

// Tool names.
const (
	ToolListSecrets     = "list_secrets"
	ToolInjectSecret    = "inject_secret"
	ToolRunWithSecrets  = "run_with_secrets"
	ToolRevealSecret    = "reveal_secret"
	ToolWakeSession     = "wake_session"
	ToolSleepSession    = "sleep_session"
	ToolSessionStatus   = "session_status"
	ToolAcknowledgeRule = "acknowledge_rule"
	ToolGetActiveRules  = "get_active_rules"
	ToolImportEnv       = "import_env"
	ToolCreateSecret    = "create_secret"
	ToolUpdateSecret    = "update_secret"
)

// server is the state behind the tools.
type server struct {
	cfg    Config
	log    *slog.Logger
	tools  map[string]bool // the tools this server lists
	mu     sync.Mutex
	agents map[string]*Services
}

// NewServer returns an MCP server with custos's tools. reveal_secret and
// run_with_secrets are registered only when cfg enables them.
func NewServer(cfg Config) *sdkmcp.Server {
	s := &server{cfg: cfg, log: cfg.Logger, tools: map[string]bool{}, agents: map[string]*Services{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	version := cfg.Version
	if version == "" {
		version = "dev"
	}
	srv := sdkmcp.NewServer(&sdkmcp.Implementation{Name: "custos", Title: "custos", Version: version}, &sdkmcp.ServerOptions{
		Instructions: instructions,
		Capabilities: &sdkmcp.ServerCapabilities{},
	})
	s.register(srv)
	srv.AddReceivingMiddleware(s.middleware)
	return srv
}

const instructions = `custos keeps this project's secrets. Tools never return secret values:
use inject_secret to write them to a private env file the user's commands can
source, or run_with_secrets (if the operator enabled it) to run a command with
them. To store a value, ask the user to run the command create_secret returns.
If a call says the device is pending, tell the user the approve command.`

// now returns the current time.
func (s *server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// agentLabel makes a client name a valid device agent label: characters
// outside the label alphabet become '-', it is cut to 64 bytes, and an empty
// or still invalid name becomes "mcp".
func agentLabel(name string) string {
	b := []byte(strings.TrimSpace(name))
	for i, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			i > 0 && strings.IndexByte(" ._@+-", ch) >= 0
		if !ok {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) > 0 && b[0] == '-' {
		b[0] = 'x'
	}
	s := strings.TrimRight(string(b), " ")
	if s == "" || custos.ValidateLabel("agent", s) != nil {
		return "mcp"
	}
	return s
}

// agentOf returns the agent label of the client making req.
func agentOf(req *sdkmcp.CallToolRequest) string {
	if req == nil {
		return "mcp"
	}
	if ci := req.ClientInfo(); ci != nil {
		return agentLabel(ci.Name)
	}
	return "mcp"
}

// services returns the agent's services, connecting if there are none or
// if the cached ones are stale (they just failed with EUNAUTHORIZED).
func (s *server) services(agent string, stale *Services) (*Services, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.agents[agent]; cur != nil && cur != stale {
		return cur, nil
	}
	if s.cfg.Connect == nil {
		return nil, custos.Errorf(custos.EUNAVAILABLE, "custos mcp has no server connection configured")
	}
	svc, err := s.cfg.Connect(agent)
	if err != nil {
		return nil, err
	}
	if svc == nil || svc.Secrets == nil || svc.Sessions == nil || svc.Policies == nil {
		return nil, errors.New("mcp: Connect returned incomplete services")
	}
	if len(s.agents) >= maxAgents {
		clear(s.agents)
	}
	s.agents[agent] = svc
	return svc, nil
}

// call runs fn with the services of req's agent. If fn fails with
// EUNAUTHORIZED it reconnects once (re-reading the key) and tries again:
// a 401 means the server did nothing, so the retry is safe.
func (s *server) call(req *sdkmcp.CallToolRequest, fn func(*Services) error) error {
	agent := agentOf(req)
	svc, err := s.services(agent, nil)
	if err != nil {
		return err
	}
	err = fn(svc)
	if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
		return err
	}
	s.log.Info("mcp reconnect", "agent", agent, "reason", "unauthorized")
	fresh, cerr := s.services(agent, svc)
	if cerr != nil {
		s.log.Warn("mcp reconnect failed", "agent", agent, "code", custos.ErrorCode(cerr))
		return err
	}
	return fn(fresh)
}

// toolError is the error a tool returns: its text, "<message> [<code>]",
// is what the agent sees.
type toolError struct {
	code, msg string
	cause     error // logged, never sent
}

func (e *toolError) Error() string { return e.msg + " [" + e.code + "]" }

// asToolError turns err into what the agent sees: a custos error keeps its
// code and message, anything else is "Internal error." (and is logged by
// the middleware).
func asToolError(err error) error {
	if err == nil {
		return nil
	}
	var te *toolError
	if errors.As(err, &te) {
		return te
	}
	return &toolError{code: custos.ErrorCode(err), msg: custos.ErrorMessage(err), cause: err}
}

// errorf returns a tool error with code and a formatted message.
func errorf(code, format string, args ...any) error {
	return &toolError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errorResult is a tool result carrying err.
func errorResult(err error) *sdkmcp.CallToolResult {
	r := &sdkmcp.CallToolResult{}
	r.SetError(asToolError(err))
	return r
}

// middleware guards tools/call: it bounds the arguments, answers calls of
// unknown or disabled tools with a tool error, turns the SDK's argument
// validation errors into invalid errors, recovers panics, and logs one line
// per call.
func (s *server) middleware(next sdkmcp.MethodHandler) sdkmcp.MethodHandler {
	return func(ctx context.Context, method string, req sdkmcp.Request) (res sdkmcp.Result, err error) {
		call, ok := req.(*sdkmcp.CallToolRequest)
		if method != "tools/call" || !ok || call.Params == nil {
			return next(ctx, method, req)
		}
		start := s.now()
		name := call.Params.Name
		agent := agentOf(call)
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("mcp tool panic", "tool", clip(name), "agent", agent, "panic", fmt.Sprint(p))
				res, err = errorResult(errors.New("panic")), nil
			}
			s.logCall(name, agent, start, res, err)
		}()
		if bad := s.reject(name, len(call.Params.Arguments)); bad != nil {
			return errorResult(bad), nil
		}
		res, err = next(ctx, method, req)
		if r, ok := res.(*sdkmcp.CallToolResult); ok && err == nil && r.IsError {
			var te *toolError
			if !errors.As(r.GetError(), &te) {
				// The SDK rejected the arguments (schema or decoding).
				return errorResult(errorf(custos.EINVALID, "invalid arguments for %s: %s", name, sdkErrorText(r))), nil
			}
		}
		return res, err
	}
}

// reject returns the error for a call of tool name with n bytes of
// arguments that must not reach the tool, or nil.
func (s *server) reject(name string, n int) error {
	switch {
	case name == ToolRevealSecret && !s.cfg.AllowReveal:
		return errorf(custos.EFORBIDDEN, "reveal_secret is disabled: only the operator can enable it, by starting custos mcp with --allow-reveal; use inject_secret or run_with_secrets instead")
	case name == ToolRunWithSecrets && !s.cfg.AllowRun:
		return errorf(custos.EFORBIDDEN, "run_with_secrets is disabled: only the operator can enable it, by starting custos mcp with --allow-run; use inject_secret instead")
	case !s.tools[name]:
		return errorf(custos.ENOTFOUND, "unknown tool %q; list the tools with tools/list", clip(name))
	case n > MaxArgumentBytes:
		return errorf(custos.ETOOLARGE, "the arguments of %s are larger than %d KiB", name, MaxArgumentBytes>>10)
	}
	return nil
}

// echoRE matches the value an SDK type error quotes.
var echoRE = regexp.MustCompile(`(?s)type: .*? has type `)

// sdkErrorText is the SDK's message of an error result, bounded.
func sdkErrorText(r *sdkmcp.CallToolResult) string {
	msg := "malformed arguments"
	if e := r.GetError(); e != nil {
		msg = e.Error()
	}
	msg = strings.TrimPrefix(msg, `validating "arguments": `)
	// Type errors quote the offending value: say which type it had instead.
	msg = echoRE.ReplaceAllString(msg, "type: the value has type ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// logCall writes one line for a tool call: never its arguments or result.
func (s *server) logCall(name, agent string, start time.Time, res sdkmcp.Result, err error) {
	attrs := []any{"tool", clip(name), "agent", agent, "duration_ms", s.now().Sub(start).Milliseconds()}
	r, _ := res.(*sdkmcp.CallToolResult)
	switch {
	case err != nil:
		s.log.Warn("mcp tool call", append(attrs, "outcome", "protocol_error")...)
	case r != nil && r.IsError:
		var te *toolError
		code := custos.EINTERNAL
		if errors.As(r.GetError(), &te) {
			code = te.code
		}
		if te != nil && te.cause != nil && code == custos.EINTERNAL {
			attrs = append(attrs, "error", te.cause.Error())
		}
		s.log.Info("mcp tool call", append(attrs, "outcome", "error", "code", code)...)
	default:
		s.log.Info("mcp tool call", append(attrs, "outcome", "ok")...)
	}
}

// clip bounds s for messages and logs.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
