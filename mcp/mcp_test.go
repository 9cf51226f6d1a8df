package mcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/mcp"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// spy implements the services with fixed answers and counts calls.
type spy struct {
	custos.SecretService
	custos.SessionService
	custos.PolicyService

	mu       sync.Mutex
	calls    int
	failWith error // returned by every call while set
}

func (s *spy) hit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.failWith
}

func (s *spy) ListSecrets(context.Context, custos.SecretFilter) ([]*custos.Secret, error) {
	if err := s.hit(); err != nil {
		return nil, err
	}
	return []*custos.Secret{{Name: "A", Project: "default", Version: 2, Tags: map[string]string{"env": "prod"}}}, nil
}

func (s *spy) CurrentSession(context.Context) (*custos.Session, error) {
	if err := s.hit(); err != nil {
		return nil, err
	}
	return nil, custos.Errorf(custos.ENOTFOUND, "no session")
}

// MustConnect connects an SDK client over in-memory transports to a server
// with cfg, as client name.
func MustConnect(tb testing.TB, cfg mcp.Config, name string) *sdkmcp.ClientSession {
	tb.Helper()
	ct, st := sdkmcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := mcp.NewServer(cfg).Connect(ctx, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ss.Close() })
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: name, Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cs.Close() })
	return cs
}

// call calls tool with raw JSON arguments and returns the result's text.
func call(tb testing.TB, cs *sdkmcp.ClientSession, tool, args string) (string, bool) {
	tb.Helper()
	res, err := cs.CallTool(context.Background(), &sdkmcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
	if err != nil {
		tb.Fatalf("%s: protocol error: %v", tool, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*sdkmcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String(), res.IsError
}

func TestServer_Tools(t *testing.T) {
	sp := &spy{}
	connect := func(string) (*mcp.Services, error) {
		return &mcp.Services{Secrets: sp, Sessions: sp, Policies: sp}, nil
	}
	t.Run("Listed", func(t *testing.T) {
		// Ensure reveal_secret and run_with_secrets are listed only when enabled,
		// every input schema rejects additional properties, and the annotations hold.
		for _, allow := range []bool{false, true} {
			cs := MustConnect(t, mcp.Config{Connect: connect, AllowRun: allow, AllowReveal: allow}, "test")
			res, err := cs.ListTools(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]*sdkmcp.Tool{}
			for _, tool := range res.Tools {
				got[tool.Name] = tool
				b, _ := json.Marshal(tool.InputSchema)
				if !strings.Contains(string(b), `"additionalProperties":false`) {
					t.Errorf("%s: input schema allows additional properties: %s", tool.Name, b)
				}
				if strings.Contains(string(b), `"value"`) && tool.Name != mcp.ToolRevealSecret {
					t.Errorf("%s: input schema has a value property: %s", tool.Name, b)
				}
			}
			if want := 10 + 2*btoi(allow); len(got) != want {
				t.Fatalf("allow=%v: %d tools, want %d", allow, len(got), want)
			}
			if _, ok := got[mcp.ToolRevealSecret]; ok != allow {
				t.Fatalf("allow=%v: reveal_secret listed=%v", allow, ok)
			}
			for _, name := range []string{mcp.ToolListSecrets, mcp.ToolSessionStatus, mcp.ToolGetActiveRules, mcp.ToolImportEnv} {
				if a := got[name].Annotations; a == nil || !a.ReadOnlyHint {
					t.Errorf("%s: not read-only", name)
				}
			}
			if a := got[mcp.ToolSleepSession].Annotations; a.ReadOnlyHint || a.DestructiveHint == nil || !*a.DestructiveHint {
				t.Errorf("sleep_session: not destructive")
			}
			if a := got[mcp.ToolInjectSecret].Annotations; a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint {
				t.Errorf("inject_secret: annotations %+v", a)
			}
			if allow {
				if a := got[mcp.ToolRunWithSecrets].Annotations; a.DestructiveHint == nil || !*a.DestructiveHint || a.OpenWorldHint == nil || !*a.OpenWorldHint {
					t.Errorf("run_with_secrets: annotations %+v", a)
				}
			}
		}
	})
	t.Run("ErrDisabled", func(t *testing.T) {
		// Ensure calling a disabled tool is a clear tool error that reaches no service.
		cs := MustConnect(t, mcp.Config{Connect: connect}, "test")
		before := sp.calls
		for _, tool := range []string{mcp.ToolRevealSecret, mcp.ToolRunWithSecrets} {
			text, isErr := call(t, cs, tool, `{"name":"A","command":"true"}`)
			if !isErr || !strings.HasSuffix(text, "[forbidden]") || !strings.Contains(text, "--allow-") {
				t.Fatalf("%s: %v %q", tool, isErr, text)
			}
		}
		if sp.calls != before {
			t.Fatal("a disabled tool reached the services")
		}
	})
	t.Run("ErrBadInput", func(t *testing.T) {
		// Ensure bad arguments are invalid tool errors that reach no service.
		cs := MustConnect(t, mcp.Config{Connect: connect}, "test")
		before := sp.calls
		for _, tc := range []struct{ tool, args, want string }{
			{"no_such_tool", `{}`, "[not_found]"},
			{mcp.ToolListSecrets, `{"value":"hunter2-secret"}`, "[invalid]"},
			{mcp.ToolListSecrets, `{"project":42}`, "[invalid]"},
			{mcp.ToolListSecrets, `{"project":"../etc"}`, "[invalid]"},
			{mcp.ToolInjectSecret, `{"names":["../../etc/passwd"]}`, "[invalid]"},
			{mcp.ToolInjectSecret, `{"names":"hunter2-secret"}`, "[invalid]"},
			{mcp.ToolInjectSecret, `{}`, "[invalid]"},
			{mcp.ToolInjectSecret, `{"names":["A"],"reveal":true}`, "[invalid]"},
			{mcp.ToolCreateSecret, `{"name":"A","value":"hunter2-secret"}`, "[invalid]"},
			{mcp.ToolImportEnv, `{"content":"A=hunter2-secret"}`, "[invalid]"},
			{mcp.ToolWakeSession, `{"ttl":"48h"}`, "[invalid]"},
			{mcp.ToolListSecrets, `{"project":"` + strings.Repeat("a", 70000) + `"}`, "[too_large]"},
		} {
			text, isErr := call(t, cs, tc.tool, tc.args)
			if !isErr || !strings.HasSuffix(text, tc.want) {
				t.Errorf("%s %.60s: %v %q, want %s", tc.tool, tc.args, isErr, text, tc.want)
			}
			if strings.Contains(text, "hunter2") {
				t.Errorf("%s: the error echoes the value: %q", tc.tool, text)
			}
			if len(text) > 600 {
				t.Errorf("%s: error of %d bytes", tc.tool, len(text))
			}
		}
		if sp.calls != before {
			t.Fatalf("bad input reached the services %d times", sp.calls-before)
		}
	})
	t.Run("Reconnect", func(t *testing.T) {
		// Ensure a call failing with unauthorized reconnects once and retries.
		var mu sync.Mutex
		var agents []string
		stale := &spy{failWith: custos.Errorf(custos.EUNAUTHORIZED, "invalid API key")}
		fresh := &spy{}
		cs := MustConnect(t, mcp.Config{Connect: func(agent string) (*mcp.Services, error) {
			mu.Lock()
			defer mu.Unlock()
			agents = append(agents, agent)
			sp := stale
			if len(agents) > 1 {
				sp = fresh
			}
			return &mcp.Services{Secrets: sp, Sessions: sp, Policies: sp}, nil
		}}, "Claude Code/1.0")
		if text, isErr := call(t, cs, mcp.ToolListSecrets, `{}`); isErr || !strings.Contains(text, `"name":"A"`) {
			t.Fatalf("after reconnect: %v %q", isErr, text)
		}
		if got, want := strings.Join(agents, ","), "Claude Code-1.0,Claude Code-1.0"; got != want {
			t.Fatalf("Connect calls: %q, want %q", got, want)
		}
		// Both keys refused: one reconnect per call, then the error.
		fresh.failWith = stale.failWith
		if text, isErr := call(t, cs, mcp.ToolSessionStatus, `{}`); !isErr || text != "invalid API key [unauthorized]" {
			t.Fatalf("both refused: %v %q", isErr, text)
		}
		if len(agents) != 3 {
			t.Fatalf("Connect called %d times, want 3", len(agents))
		}
	})
	t.Run("ImportEnv", func(t *testing.T) {
		// Ensure import_env returns the web page's URL and says it is not built yet.
		cs := MustConnect(t, mcp.Config{Connect: connect, WebURL: "http://127.0.0.1:9/"}, "test")
		text, isErr := call(t, cs, mcp.ToolImportEnv, `{}`)
		if isErr || !strings.Contains(text, `"url":"http://127.0.0.1:9/import"`) || !strings.Contains(text, "not built yet") {
			t.Fatalf("%v %q", isErr, text)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
