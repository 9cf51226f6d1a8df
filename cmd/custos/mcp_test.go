package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/mcp"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCPAgent is an SDK client connected in memory to custos's MCP server,
// which talks to a real custos server through the HTTP client. Every tool
// result it gets, and every line the MCP server logs, is kept.
type MCPAgent struct {
	CS   *sdkmcp.ClientSession
	Logs *syncBuffer

	mu      sync.Mutex
	env     map[string]string
	results strings.Builder // every result except reveal_secret's
	reveals strings.Builder
}

// MustMCPAgent connects an agent named name with API key key.
func (e *E2E) MustMCPAgent(tb testing.TB, key, name string, allowRun, allowReveal bool, env ...string) *MCPAgent {
	tb.Helper()
	a := &MCPAgent{Logs: &syncBuffer{}, env: map[string]string{
		"CUSTOS_URL": e.Main.URL(), "CUSTOS_API_KEY": key, "CUSTOS_HOME": filepath.Join(e.Home, ".custos"),
	}}
	for i := 0; i+1 < len(env); i += 2 {
		a.env[env[i]] = env[i+1]
	}
	c := &CLI{
		Stdin: strings.NewReader(""), Stdout: a.Logs, Stderr: a.Logs,
		Getenv: a.getenv, Dir: e.Home, Home: e.Home, Hostname: "laptop", MachineUser: "alice",
	}
	dir, err := c.sessionDir()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := c.mcpConfig(dir, &mcpKey{}, allowRun, allowReveal, newJSONLogger(a.Logs))
	cfg.Now = e.Clock.Now
	ct, st := sdkmcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := mcp.NewServer(cfg).Connect(ctx, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: name, Version: "1.0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cs.Close(); _ = ss.Close() })
	a.CS = cs
	return a
}

func (a *MCPAgent) getenv(k string) string { a.mu.Lock(); defer a.mu.Unlock(); return a.env[k] }

// SetKey changes the API key the MCP server finds in its environment.
func (a *MCPAgent) SetKey(k string) { a.mu.Lock(); a.env["CUSTOS_API_KEY"] = k; a.mu.Unlock() }

// Call calls tool with raw JSON args and returns the result's text and
// whether it is an error.
func (a *MCPAgent) Call(tb testing.TB, tool, args string) (string, bool) {
	tb.Helper()
	res, err := a.CS.CallTool(context.Background(), &sdkmcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
	if err != nil {
		tb.Fatalf("%s: protocol error: %v", tool, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*sdkmcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	sc, _ := json.Marshal(res.StructuredContent)
	a.mu.Lock()
	if tool == mcp.ToolRevealSecret {
		a.reveals.WriteString(b.String())
		a.reveals.Write(sc)
	} else {
		a.results.WriteString(b.String())
		a.results.Write(sc)
	}
	a.mu.Unlock()
	return b.String(), res.IsError
}

// MustOK calls tool and fails on an error result; it decodes the
// structured result into out (if not nil).
func (a *MCPAgent) MustOK(tb testing.TB, tool, args string, out any) string {
	tb.Helper()
	text, isErr := a.Call(tb, tool, args)
	if isErr {
		tb.Fatalf("%s %s: %s", tool, args, text)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			tb.Fatalf("%s: %v: %s", tool, err, text)
		}
	}
	return text
}

// MustErr calls tool and fails unless the result is an error ending in
// [code] and containing every one of want.
func (a *MCPAgent) MustErr(tb testing.TB, tool, args, code string, want ...string) string {
	tb.Helper()
	text, isErr := a.Call(tb, tool, args)
	if !isErr || !strings.HasSuffix(text, "["+code+"]") {
		tb.Fatalf("%s %s: error=%v %q, want [%s]", tool, args, isErr, text, code)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			tb.Fatalf("%s: %q lacks %q", tool, text, w)
		}
	}
	return text
}

// Captured is everything the agent saw (except reveals) and the MCP logs.
func (a *MCPAgent) Captured() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.results.String() + a.Logs.String()
}

// mcpWorld is a server with secrets and policies for the MCP tests.
type mcpWorld struct {
	*E2E
	Alice  string
	Values map[string]string // name → value
}

func mustMCPWorld(tb testing.TB) *mcpWorld {
	tb.Helper()
	e := MustStartE2E(tb)
	w := &mcpWorld{E2E: e, Values: map[string]string{
		"DB_PASSWORD": "mcp-db-password-9f8e7d6c",
		"API_TOKEN":   "mcp-api-token-1a2b3c4d",
		"GUARDED":     "mcp-guarded-value-5e6f",
		"BLOCKED":     "mcp-blocked-value-7a8b",
		"SESSIONED":   "mcp-sessioned-value-9c0d",
		"GATED":       "mcp-gated-value-1e2f",
		"SHORTLIVED":  "mcp-shortlived-value-3a4b",
	}}
	set := func(name, project string, flags ...string) {
		e.Remember(w.Values[name])
		e.MustCLI(tb, e.Owner, "cli", w.Values[name]+"\n", append([]string{"secret", "set", name, "--project", project}, flags...)...)
	}
	set("DB_PASSWORD", "web", "--tag", "env=prod")
	set("API_TOKEN", "web", "--tag", "team=core")
	set("GUARDED", "guarded", "--tag", "guard=confirm")
	set("BLOCKED", "guarded", "--tag", "tier=secret")
	set("SESSIONED", "guarded", "--tag", "env=sess")
	set("GATED", "guarded", "--tag", "model=gated")
	set("SHORTLIVED", "temp", "--ttl", "1h")
	e.MustCLI(tb, e.Owner, "cli", "", "policy", "add", "--tag", "guard=confirm", "--rule", "require_confirmation")
	e.MustCLI(tb, e.Owner, "cli", "", "policy", "add", "--tag", "tier=secret", "--rule", "block_always")
	e.MustCLI(tb, e.Owner, "cli", "", "policy", "add", "--tag", "env=sess", "--rule", "require_session")
	e.MustCLI(tb, e.Owner, "cli", "", "policy", "add", "--tag", "model=gated", "--rule", "block_models", "--models", "gpt-*")
	w.Alice = e.MustMemberKey(tb, "alice")
	return w
}

// AssertNoValues fails if text contains any secret value.
func (w *mcpWorld) AssertNoValues(tb testing.TB, where, text string) {
	tb.Helper()
	for name, v := range w.Values {
		if strings.Contains(text, v) {
			tb.Errorf("%s contains the value of %s", where, name)
		}
	}
}

var approveRE = regexp.MustCompile(`custos device approve (dev_[0-9a-f]{16})`)

func TestMCP_Tools(t *testing.T) {
	w := mustMCPWorld(t)
	a := w.MustMCPAgent(t, w.Alice, "claude-code", false, false, "CUSTOS_AI_MODEL", "gpt-4o")

	// Ensure a new device is pending: the error names it and the approve command.
	text := a.MustErr(t, mcp.ToolListSecrets, `{}`, custos.EDEVICEPENDING, "agent claude-code", "custos device approve dev_")
	devID := approveRE.FindStringSubmatch(text)[1]
	a.MustErr(t, mcp.ToolInjectSecret, `{"names":["DB_PASSWORD"],"project":"web"}`, custos.EDEVICEPENDING, devID)
	w.MustCLI(t, w.Owner, "cli", "", "device", "approve", devID, "--level", "read")

	t.Run("ListSecrets", func(t *testing.T) {
		// Ensure list_secrets returns metadata only.
		var out mcp.ListSecretsOutput
		a.MustOK(t, mcp.ToolListSecrets, `{"project":"web"}`, &out)
		if len(out.Secrets) != 2 || out.Secrets[0].Name != "API_TOKEN" || out.Secrets[1].Tags["env"] != "prod" || out.Secrets[1].Version != 1 {
			t.Fatalf("list: %+v", out)
		}
		a.MustOK(t, mcp.ToolListSecrets, `{"tags":{"env":"prod"}}`, &out)
		if len(out.Secrets) != 1 || out.Secrets[0].Name != "DB_PASSWORD" {
			t.Fatalf("list by tag: %+v", out)
		}
	})
	t.Run("InjectSecret", func(t *testing.T) {
		// Ensure inject_secret writes the file `custos secret inject` writes (dir 0700,
		// file 0600) and returns only its path and the names.
		var out mcp.InjectSecretOutput
		a.MustOK(t, mcp.ToolInjectSecret, `{"names":["DB_PASSWORD","API_TOKEN","DB_PASSWORD"],"project":"web"}`, &out)
		if want := filepath.Join(w.Home, ".custos", "session", "web.env"); out.Path != want || strings.Join(out.Names, ",") != "DB_PASSWORD,API_TOKEN" {
			t.Fatalf("inject: %+v, want path %s", out, want)
		}
		fi, err := os.Stat(out.Path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("file: %v %v", fi, err)
		}
		if di, err := os.Stat(filepath.Dir(out.Path)); err != nil || di.Mode().Perm() != 0o700 {
			t.Fatalf("dir: %v %v", di, err)
		}
		b, _ := os.ReadFile(out.Path)
		if !strings.HasPrefix(string(b), injectHeader) || !strings.Contains(string(b), "DB_PASSWORD="+w.Values["DB_PASSWORD"]) ||
			!strings.Contains(string(b), "API_TOKEN="+w.Values["API_TOKEN"]) {
			t.Fatalf("inject file lacks the variables")
		}
		// The CLI reads what MCP wrote: the same file, merged.
		w.MustCLI(t, w.Alice, "claude-code", "", "secret", "inject", "DB_PASSWORD", "--project", "web")
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["NOPE"],"project":"web"}`, custos.ENOTFOUND, "NOPE")
	})
	t.Run("ErrPolicy", func(t *testing.T) {
		// Ensure policy denials name the rule, and acknowledge_rule and wake_session
		// satisfy theirs.
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["BLOCKED"],"project":"guarded"}`, custos.EPOLICY, "block_always")
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["GATED"],"project":"guarded"}`, custos.EPOLICY, "block_models")
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["GUARDED"],"project":"guarded"}`, custos.EPOLICY, "require_confirmation")
		var ack mcp.AcknowledgeRuleOutput
		a.MustOK(t, mcp.ToolAcknowledgeRule, `{"name":"GUARDED","project":"guarded"}`, &ack)
		if ack.Name != "GUARDED" || ack.ExpiresAt.Sub(w.Clock.Now()) > custos.ConfirmationTTL+time.Second {
			t.Fatalf("ack: %+v", ack)
		}
		a.MustOK(t, mcp.ToolInjectSecret, `{"names":["GUARDED"],"project":"guarded"}`, nil)
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["GUARDED"],"project":"guarded"}`, custos.EPOLICY, "require_confirmation")
		a.MustErr(t, mcp.ToolAcknowledgeRule, `{"name":"NOPE","project":"guarded"}`, custos.ENOTFOUND)

		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["SESSIONED"],"project":"guarded"}`, custos.EPOLICY, "require_session")
		var st mcp.SessionOutput
		a.MustOK(t, mcp.ToolSessionStatus, `{}`, &st)
		if st.Active {
			t.Fatalf("status before wake: %+v", st)
		}
		a.MustOK(t, mcp.ToolWakeSession, `{"tags":{"env":"sess"},"ttl":"10m"}`, &st)
		if !st.Active || st.Tags["env"] != "sess" || st.ExpiresAt == nil {
			t.Fatalf("wake: %+v", st)
		}
		a.MustOK(t, mcp.ToolSessionStatus, `{}`, &st)
		if !st.Active || st.Covers != "secrets tagged env=sess" {
			t.Fatalf("status: %+v", st)
		}
		var inj mcp.InjectSecretOutput
		a.MustOK(t, mcp.ToolInjectSecret, `{"names":["SESSIONED"],"project":"guarded"}`, &inj)
		var sl mcp.SleepSessionOutput
		a.MustOK(t, mcp.ToolSleepSession, `{}`, &sl)
		if !sl.Ended || sl.FilesRemoved != 2 {
			t.Fatalf("sleep: %+v (want web.env and guarded.env removed)", sl)
		}
		if _, err := os.Stat(inj.Path); !os.IsNotExist(err) {
			t.Fatalf("sleep_session left %s", inj.Path)
		}
		a.MustOK(t, mcp.ToolSessionStatus, `{}`, &st)
		if st.Active {
			t.Fatalf("status after sleep: %+v", st)
		}
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["SESSIONED"],"project":"guarded"}`, custos.EPOLICY, "require_session")
	})
	t.Run("GetActiveRules", func(t *testing.T) {
		// Ensure get_active_rules lists the policies in evaluation order.
		var out mcp.GetActiveRulesOutput
		a.MustOK(t, mcp.ToolGetActiveRules, `{}`, &out)
		var got []string
		for _, r := range out.Rules {
			got = append(got, r.Rule+":"+r.Tag)
		}
		if want := "block_always:tier=secret,require_session:env=sess,block_models:model=gated,require_confirmation:guard=confirm"; strings.Join(got, ",") != want {
			t.Fatalf("rules: %s, want %s", strings.Join(got, ","), want)
		}
	})
	t.Run("CreateUpdateImport", func(t *testing.T) {
		// Ensure create_secret/update_secret return the CLI command and import_env
		// the web page, and none of them changes state.
		before := w.Snapshot(t)
		var out mcp.SecretCommandOutput
		a.MustOK(t, mcp.ToolCreateSecret, `{"name":"NEW_KEY","project":"web","tags":{"env":"prod"},"ttl":"30d","description":"it's new"}`, &out)
		if want := `custos secret set NEW_KEY --project web --tag env=prod --ttl 30d --description 'it'\''s new'`; out.Command != want {
			t.Fatalf("create: %q, want %q", out.Command, want)
		}
		a.MustErr(t, mcp.ToolCreateSecret, `{"name":"DB_PASSWORD","project":"web"}`, custos.ECONFLICT, "update_secret")
		a.MustOK(t, mcp.ToolUpdateSecret, `{"name":"DB_PASSWORD","project":"web"}`, &out)
		if out.Command != "custos secret set DB_PASSWORD --project web" {
			t.Fatalf("update: %q", out.Command)
		}
		a.MustErr(t, mcp.ToolUpdateSecret, `{"name":"NOPE","project":"web"}`, custos.ENOTFOUND, "create_secret")
		var imp mcp.ImportEnvOutput
		a.MustOK(t, mcp.ToolImportEnv, `{}`, &imp)
		if imp.URL != w.Main.URL()+"/import" || imp.Available || !strings.Contains(imp.Message, "not built yet") {
			t.Fatalf("import_env: %+v", imp)
		}
		if w.Snapshot(t) != before {
			t.Fatal("create/update/import changed state")
		}
	})
	t.Run("ErrDisabled", func(t *testing.T) {
		// Ensure reveal_secret and run_with_secrets are off unless the operator enabled them.
		a.MustErr(t, mcp.ToolRevealSecret, `{"name":"DB_PASSWORD","project":"web"}`, custos.EFORBIDDEN, "--allow-reveal")
		a.MustErr(t, mcp.ToolRunWithSecrets, `{"command":"true"}`, custos.EFORBIDDEN, "--allow-run")
	})
	t.Run("RunWithSecrets", func(t *testing.T) {
		// Ensure run_with_secrets runs the command with the secrets and masks each
		// value, its base64 and its hex in the output; the exit code passes through.
		r := w.MustMCPAgent(t, w.Alice, "claude-code", true, false)
		v := w.Values["DB_PASSWORD"]
		script := `echo "$DB_PASSWORD"; printf %s "$DB_PASSWORD" | base64; echo "$DB_PASSWORD" | base64; ` +
			`printf %s "$DB_PASSWORD" | od -An -tx1 | tr -d ' \n'; echo; echo "err $API_TOKEN" >&2; exit 3`
		args, _ := json.Marshal(map[string]any{"command": "sh", "args": []string{"-c", script}, "project": "web"})
		var out mcp.RunWithSecretsOutput
		r.MustOK(t, mcp.ToolRunWithSecrets, string(args), &out)
		if out.ExitCode != 3 || strings.Count(out.Stdout, "[masked:DB_PASSWORD]") != 4 || out.Stderr != "err [masked:API_TOKEN]\n" ||
			strings.Join(out.Injected, ",") != "API_TOKEN,DB_PASSWORD" || out.Masked != 5 {
			t.Fatalf("run: %+v", out)
		}
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), hex.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte(v))[:12]} {
			if strings.Contains(out.Stdout, form) {
				t.Fatalf("run output shows %q", form)
			}
		}
		// --only limits the environment; a missing command is exit 127.
		args, _ = json.Marshal(map[string]any{"command": "sh", "args": []string{"-c", `test -z "$API_TOKEN" && test -n "$DB_PASSWORD"`}, "project": "web", "only": []string{"DB_PASSWORD"}})
		if r.MustOK(t, mcp.ToolRunWithSecrets, string(args), &out); out.ExitCode != 0 {
			t.Fatalf("run --only: %+v", out)
		}
		if r.MustOK(t, mcp.ToolRunWithSecrets, `{"command":"custos-no-such-command","project":"web"}`, &out); out.ExitCode != 127 {
			t.Fatalf("missing command: %+v", out)
		}
		r.MustErr(t, mcp.ToolRunWithSecrets, `{"command":"true","project":"guarded"}`, custos.EPOLICY)
		w.AssertNoValues(t, "run_with_secrets results", r.Captured())
	})
	t.Run("RevealSecret", func(t *testing.T) {
		// Ensure reveal_secret, once enabled, needs a device at full, and is audited as reveal.
		r := w.MustMCPAgent(t, w.Alice, "claude-code", false, true)
		r.MustErr(t, mcp.ToolRevealSecret, `{"name":"DB_PASSWORD","project":"web"}`, custos.EFORBIDDEN, "full")
		w.MustCLI(t, w.Owner, "cli", "", "device", "approve", devID, "--level", "full")
		var out mcp.RevealSecretOutput
		r.MustOK(t, mcp.ToolRevealSecret, `{"name":"DB_PASSWORD","project":"web"}`, &out)
		if out.Value != w.Values["DB_PASSWORD"] || out.Version != 1 {
			t.Fatalf("reveal: %+v", out.Version)
		}
		w.AssertNoValues(t, "reveal agent's other results and logs", r.Captured())
		w.MustCLI(t, w.Owner, "cli", "", "device", "approve", devID, "--level", "read")
	})
	t.Run("ErrExpired", func(t *testing.T) {
		// Ensure an expired secret is a clear expired error.
		w.Clock.Advance(2 * time.Hour)
		a.MustErr(t, mcp.ToolInjectSecret, `{"names":["SHORTLIVED"],"project":"temp"}`, custos.EEXPIRED, "SHORTLIVED")
		var out mcp.ListSecretsOutput
		a.MustOK(t, mcp.ToolListSecrets, `{"project":"temp"}`, &out)
		if len(out.Secrets) != 1 || !out.Secrets[0].Expired {
			t.Fatalf("list expired: %+v", out)
		}
	})

	// Ensure the audit log records MCP accesses with agent, source and model, and
	// that no result, log line or audit record holds a value.
	var sawInject, sawReveal bool
	for _, ev := range w.Audit(t) {
		if ev.Source == custos.SourceMCP && ev.Action == custos.ActionSecretInject && ev.DeviceID == devID && ev.Model == "gpt-4o" {
			sawInject = true
		}
		if ev.Source == custos.SourceMCP && ev.Action == custos.ActionSecretReveal && ev.Outcome == "ok" {
			sawReveal = true
		}
	}
	if !sawInject || !sawReveal {
		t.Fatalf("audit: inject via mcp %v, reveal via mcp %v", sawInject, sawReveal)
	}
	export := w.MustCLI(t, w.Owner, "cli", "", "audit", "export", "--format", "jsonl")
	all := a.Captured() + w.Logs.String() + export
	w.AssertNoValues(t, "MCP results, MCP logs, server logs and audit export", all)
	if !strings.Contains(a.Logs.String(), `"tool":"inject_secret"`) {
		t.Fatalf("the MCP server logs no tool calls: %s", a.Logs.String())
	}
}

func TestMCP_Reconnect(t *testing.T) {
	// Ensure a 401 makes the MCP server re-read its key once: a rotated key past
	// its grace is replaced by the new one from the key source; a revoked key
	// with no replacement gives the unauthorized error.
	w := mustMCPWorld(t)
	a := w.MustMCPAgent(t, w.Alice, "cursor", false, false)
	text := a.MustErr(t, mcp.ToolSessionStatus, `{}`, custos.EDEVICEPENDING)
	w.MustCLI(t, w.Owner, "cli", "", "device", "approve", approveRE.FindStringSubmatch(text)[1], "--level", "read")
	a.MustOK(t, mcp.ToolListSecrets, `{}`, nil)

	keys, _ := w.Main.Store.ListKeys(context.Background(), w.OrgID(t))
	var id string
	for _, k := range keys {
		if k.Name == "alice" {
			id = k.ID
		}
	}
	alice2 := tokenRE.FindString(w.MustCLI(t, w.Owner, "cli", "", "key", "rotate", id, "--grace", "1m"))
	w.Remember(alice2)
	w.Clock.Advance(2 * time.Minute)
	a.SetKey(alice2)
	a.MustOK(t, mcp.ToolInjectSecret, `{"names":["DB_PASSWORD"],"project":"web"}`, nil)
	if n := strings.Count(a.Logs.String(), `"msg":"mcp reconnect"`); n != 1 {
		t.Fatalf("%d reconnects, want 1", n)
	}
	a.MustOK(t, mcp.ToolListSecrets, `{}`, nil) // no further reconnect

	keys, _ = w.Main.Store.ListKeys(context.Background(), w.OrgID(t))
	for _, k := range keys {
		if k.Name == "alice" && k.RevokedAt == nil && k.RotatedAt == nil {
			w.MustCLI(t, w.Owner, "cli", "", "key", "revoke", k.ID)
		}
	}
	a.MustErr(t, mcp.ToolListSecrets, `{}`, custos.EUNAUTHORIZED)
	if n := strings.Count(a.Logs.String(), `"msg":"mcp reconnect"`); n != 2 {
		t.Fatalf("%d reconnects, want 2", n)
	}
	w.AssertNoValues(t, "results and logs", a.Captured())
	if tokenRE.MatchString(a.Captured()) {
		t.Fatal("an API key appears in a result or log line")
	}
}

func TestMCP_BadInput(t *testing.T) {
	// Ensure bad input gets clear tool errors and changes nothing.
	w := mustMCPWorld(t)
	a := w.MustMCPAgent(t, w.Alice, "codex", true, false)
	text := a.MustErr(t, mcp.ToolSessionStatus, `{}`, custos.EDEVICEPENDING)
	w.MustCLI(t, w.Owner, "cli", "", "device", "approve", approveRE.FindStringSubmatch(text)[1], "--level", "read")
	before := w.Snapshot(t)
	huge := strings.Repeat("A", 100<<10)
	v := w.Values["DB_PASSWORD"]
	for _, tc := range []struct{ tool, args, code string }{
		{"delete_everything", `{}`, custos.ENOTFOUND},
		{mcp.ToolRevealSecret, `{"name":"DB_PASSWORD","project":"web"}`, custos.EFORBIDDEN},
		{mcp.ToolListSecrets, `{"project":["web"]}`, custos.EINVALID},
		{mcp.ToolListSecrets, `{"reveal":true}`, custos.EINVALID},
		{mcp.ToolListSecrets, `{"values":true}`, custos.EINVALID},
		{mcp.ToolListSecrets, `{"tags":{"BAD KEY":"x"}}`, custos.EINVALID},
		{mcp.ToolInjectSecret, `{"names":["../../../etc/passwd"],"project":"web"}`, custos.EINVALID},
		{mcp.ToolInjectSecret, `{"names":["DB_PASSWORD"],"project":"../web"}`, custos.EINVALID},
		{mcp.ToolInjectSecret, `{"names":["DB_PASSWORD"],"project":"web","value":"` + v + `"}`, custos.EINVALID},
		{mcp.ToolInjectSecret, `{"names":["` + huge + `"]}`, custos.ETOOLARGE},
		{mcp.ToolInjectSecret, `{"names":[1,2]}`, custos.EINVALID},
		{mcp.ToolInjectSecret, `{"names":[]}`, custos.EINVALID},
		{mcp.ToolRunWithSecrets, `{"command":"true","env":{"X":"` + v + `"}}`, custos.EINVALID},
		{mcp.ToolRunWithSecrets, `{"command":""}`, custos.EINVALID},
		{mcp.ToolRunWithSecrets, `{"command":"true","only":["a/b"]}`, custos.EINVALID},
		{mcp.ToolAcknowledgeRule, `{"name":"GUARDED","project":"guarded","ttl":"24h"}`, custos.EINVALID},
		{mcp.ToolWakeSession, `{"ttl":"-5m"}`, custos.EINVALID},
		{mcp.ToolWakeSession, `{"ttl":5}`, custos.EINVALID},
		{mcp.ToolCreateSecret, `{"name":"NEW","value":"` + v + `"}`, custos.EINVALID},
		{mcp.ToolUpdateSecret, `{"name":"DB_PASSWORD","project":"web","value":"` + v + `"}`, custos.EINVALID},
		{mcp.ToolCreateSecret, `{"name":"NEW","description":"a\nb"}`, custos.EINVALID},
		{mcp.ToolImportEnv, `{"content":"DB_PASSWORD=` + v + `"}`, custos.EINVALID},
		{mcp.ToolSleepSession, `{"all":true}`, custos.EINVALID},
		{mcp.ToolListSecrets, `"not an object"`, custos.EINVALID},
		{mcp.ToolListSecrets, `null`, ""},
	} {
		got, isErr := a.Call(t, tc.tool, tc.args)
		if tc.code == "" { // accepted as no arguments
			if isErr {
				t.Errorf("%s %s: %s", tc.tool, tc.args, got)
			}
			continue
		}
		if !isErr || !strings.HasSuffix(got, "["+tc.code+"]") || len(got) > 600 {
			t.Errorf("%s %.80s: error=%v %.200q, want [%s]", tc.tool, tc.args, isErr, got, tc.code)
		}
	}
	// A JSON-RPC level type error (arguments not an object) is refused by the SDK.
	if _, err := a.CS.CallTool(context.Background(), &sdkmcp.CallToolParams{Name: mcp.ToolListSecrets, Arguments: json.RawMessage(`"x"`)}); err == nil {
		t.Log("arguments given as a string were accepted as a tool error")
	}
	if w.Snapshot(t) != before {
		t.Fatal("bad input changed state")
	}
	if _, err := os.Stat(filepath.Join(w.Home, ".custos", "session")); !os.IsNotExist(err) {
		t.Fatalf("bad input created the session dir: %v", err)
	}
	w.AssertNoValues(t, "results and logs", a.Captured())
}

// mcpChild returns `custos mcp` as an agent starts it: this test binary
// as a child, with Alice's key, a home of its own and env added; stderr is
// captured.
func mcpChild(t *testing.T, w *mcpWorld, env ...string) (cmd *exec.Cmd, home string, stderr *syncBuffer) {
	t.Helper()
	home, stderr = t.TempDir(), &syncBuffer{}
	cmd = exec.Command(os.Args[0], "mcp") // #nosec G204 -- the test binary
	cmd.Env = append(append(os.Environ(), "CUSTOS_TEST_CHILD=custos", "CUSTOS_URL="+w.Main.URL(), "CUSTOS_API_KEY="+w.Alice,
		"CUSTOS_HOME="+filepath.Join(home, ".custos"), "HOME="+home), env...)
	cmd.Dir = home
	cmd.Stderr = stderr
	return cmd, home, stderr
}

func TestMCP_Subprocess(t *testing.T) {
	// Ensure `custos mcp` speaks MCP on stdio to the SDK client, as an agent runs it.
	w := mustMCPWorld(t)
	cmd, home, stderr := mcpChild(t, w, "CUSTOS_AI_MODEL=claude-x")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "claude-code", Version: "2.0"}, nil).
		Connect(ctx, &sdkmcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 10 {
		t.Fatalf("tools/list: %v %d tools", err, len(tools.Tools))
	}
	callText := func(tool, args string) (string, bool) {
		res, err := cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Content[0].(*sdkmcp.TextContent).Text, res.IsError
	}
	text, isErr := callText(mcp.ToolInjectSecret, `{"names":["DB_PASSWORD"],"project":"web"}`)
	m := approveRE.FindStringSubmatch(text)
	if !isErr || m == nil || !strings.Contains(text, "agent claude-code") {
		t.Fatalf("first call: %v %q", isErr, text)
	}
	w.MustCLI(t, w.Owner, "cli", "", "device", "approve", m[1], "--level", "read")
	text, isErr = callText(mcp.ToolInjectSecret, `{"names":["DB_PASSWORD"],"project":"web"}`)
	var out mcp.InjectSecretOutput
	if err := json.Unmarshal([]byte(text), &out); isErr || err != nil || out.Path != filepath.Join(home, ".custos", "session", "web.env") {
		t.Fatalf("inject: %v %q", isErr, text)
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if fi, err := os.Stat(out.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("injected file: %v %v", fi, err)
	}
	w.AssertNoValues(t, "stdio results and stderr", text+stderr.String())
	if !strings.Contains(stderr.String(), `"tool":"inject_secret"`) {
		t.Fatalf("stderr has no log line: %s", stderr.String())
	}
}

func TestMCP_StdioBadLines(t *testing.T) {
	// Ensure `custos mcp` answers a line that is not JSON-RPC with a JSON-RPC error, goes on, and exits 0 when stdin closes.
	w := mustMCPWorld(t)
	cmd, _, stderr := mcpChild(t, w)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	out := bufio.NewScanner(stdout)
	v := w.Values["DB_PASSWORD"]
	exchange := func(line, want string) {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatal(err)
		}
		if !out.Scan() {
			t.Fatalf("%.60s: no answer (%v); stderr: %s", strings.ReplaceAll(line, v, "<value>"), out.Err(), stderr.String())
		}
		if got := out.Text(); !strings.HasPrefix(got, want) {
			t.Fatalf("%.60s: got %.200s, want %s…", strings.ReplaceAll(line, v, "<value>"), got, want)
		}
	}
	exchange("DB_PASSWORD="+v, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,`)
	exchange(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"codex","version":"1"}}}`,
		`{"jsonrpc":"2.0","id":1,"result":{`)
	exchange(`{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"+`[{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,`)
	exchange(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, `{"jsonrpc":"2.0","id":3,"result":{`)
	if err := stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("custos mcp: %v; stderr: %s", err, stderr.String())
	}
	w.AssertNoValues(t, "stderr", stderr.String())
	if !strings.Contains(stderr.String(), `"msg":"mcp: refused a message"`) {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

func TestMCP_HTTP(t *testing.T) {
	// Ensure streamable HTTP needs the bearer key, compared in full, and serves the tools.
	w := mustMCPWorld(t)
	c := &CLI{Getenv: func(k string) string {
		return map[string]string{"CUSTOS_URL": w.Main.URL(), "CUSTOS_API_KEY": w.Alice}[k]
	}, Dir: w.Home, Home: w.Home, Hostname: "laptop", MachineUser: "alice", Stderr: &syncBuffer{}}
	key := &mcpKey{}
	key.set(w.Alice)
	srv := mcp.NewServer(c.mcpConfig(filepath.Join(w.Home, "s"), key, false, false, newJSONLogger(&syncBuffer{})))
	ts := httptest.NewServer(mcpBearer(key, sdkmcp.NewStreamableHTTPHandler(func(*http.Request) *sdkmcp.Server { return srv }, nil)))
	defer ts.Close()

	for _, auth := range []string{"", "Bearer ", "Bearer " + w.Alice[:len(w.Alice)-1], "Bearer " + w.Alice + "x", "Basic " + w.Alice} {
		req, _ := http.NewRequest("POST", ts.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("auth %.12q: status %d", auth, resp.StatusCode)
		}
	}
	hc := &http.Client{Transport: bearerTransport{w.Alice}}
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "remote-agent", Version: "1"}, nil).
		Connect(context.Background(), &sdkmcp.StreamableClientTransport{Endpoint: ts.URL, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdkmcp.CallToolParams{Name: mcp.ToolSessionStatus, Arguments: json.RawMessage(`{}`)})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*sdkmcp.TextContent).Text, "agent remote-agent") {
		t.Fatalf("session_status over HTTP: %v %+v", err, res)
	}
}

// newJSONLogger logs JSON lines to w.
func newJSONLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

type bearerTransport struct{ tok string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func TestMCP_Flags(t *testing.T) {
	// Ensure --http refuses non-loopback addresses and custos mcp needs a key.
	for _, tc := range []struct {
		addr string
		ok   bool
	}{{"127.0.0.1:8766", true}, {"[::1]:8766", true}, {"localhost:0", true}, {"0.0.0.0:8766", false}, {":8766", false}, {"10.0.0.1:80", false}, {"example.com:80", false}, {"nonsense", false}} {
		if err := checkLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v", tc.addr, err)
		}
	}
	tc := newTestCLI(t)
	if code := tc.run("mcp", "--http", "0.0.0.0:8766"); code != 2 || !strings.Contains(tc.err.String(), "loopback") {
		t.Fatalf("non-loopback: exit %d: %s", code, tc.err.String())
	}
}
