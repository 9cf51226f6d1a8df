package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
)

// gatewaySpy adds the model gateway's management services to the spy.
type gatewaySpy struct {
	*spy

	addProvider    func(custos.AddProviderInput) (*custos.ModelProvider, error)
	listProviders  func() ([]*custos.ModelProvider, error)
	removeProvider func(name string) error
	setBudget      func(custos.Budget) (*custos.Budget, error)
	listBudgets    func() ([]*custos.Budget, error)
	removeBudget   func(keyID, period string) error
	setPrivacy     func(custos.PrivacyRule) (*custos.PrivacyRule, error)
	listPrivacy    func() ([]*custos.PrivacyRule, error)
	removePrivacy  func(scope, target string) error
	listUsage      func(custos.UsageFilter) ([]*custos.UsageRecord, error)
	summarizeUsage func(f custos.UsageFilter, by string) ([]*custos.UsageSummary, error)
}

var _ gatewayAPI = (*gatewaySpy)(nil)

// newGatewayCLI returns a test CLI whose services also manage the gateway.
func newGatewayCLI(t *testing.T) (*testCLI, *gatewaySpy) {
	t.Helper()
	tc := newTestCLI(t)
	g := &gatewaySpy{spy: tc.spy}
	svc := tc.spy.services()
	svc.Gateway = g
	tc.services = svc
	return tc, g
}

func (g *gatewaySpy) AddProvider(ctx context.Context, in custos.AddProviderInput) (*custos.ModelProvider, error) {
	if g.record(ctx, "AddProvider", g.addProvider != nil); g.addProvider == nil {
		return nil, errUnexpected
	}
	return g.addProvider(in)
}

func (g *gatewaySpy) ListProviders(ctx context.Context) ([]*custos.ModelProvider, error) {
	if g.record(ctx, "ListProviders", g.listProviders != nil); g.listProviders == nil {
		return nil, errUnexpected
	}
	return g.listProviders()
}

func (g *gatewaySpy) RemoveProvider(ctx context.Context, name string) error {
	if g.record(ctx, "RemoveProvider", g.removeProvider != nil); g.removeProvider == nil {
		return errUnexpected
	}
	return g.removeProvider(name)
}

func (g *gatewaySpy) SetBudget(ctx context.Context, b custos.Budget) (*custos.Budget, error) {
	if g.record(ctx, "SetBudget", g.setBudget != nil); g.setBudget == nil {
		return nil, errUnexpected
	}
	return g.setBudget(b)
}

func (g *gatewaySpy) ListBudgets(ctx context.Context) ([]*custos.Budget, error) {
	if g.record(ctx, "ListBudgets", g.listBudgets != nil); g.listBudgets == nil {
		return nil, errUnexpected
	}
	return g.listBudgets()
}

func (g *gatewaySpy) RemoveBudget(ctx context.Context, keyID, period string) error {
	if g.record(ctx, "RemoveBudget", g.removeBudget != nil); g.removeBudget == nil {
		return errUnexpected
	}
	return g.removeBudget(keyID, period)
}

func (g *gatewaySpy) SetPrivacy(ctx context.Context, r custos.PrivacyRule) (*custos.PrivacyRule, error) {
	if g.record(ctx, "SetPrivacy", g.setPrivacy != nil); g.setPrivacy == nil {
		return nil, errUnexpected
	}
	return g.setPrivacy(r)
}

func (g *gatewaySpy) ListPrivacy(ctx context.Context) ([]*custos.PrivacyRule, error) {
	if g.record(ctx, "ListPrivacy", g.listPrivacy != nil); g.listPrivacy == nil {
		return nil, errUnexpected
	}
	return g.listPrivacy()
}

func (g *gatewaySpy) RemovePrivacy(ctx context.Context, scope, target string) error {
	if g.record(ctx, "RemovePrivacy", g.removePrivacy != nil); g.removePrivacy == nil {
		return errUnexpected
	}
	return g.removePrivacy(scope, target)
}

func (g *gatewaySpy) ListUsage(ctx context.Context, f custos.UsageFilter) ([]*custos.UsageRecord, error) {
	if g.record(ctx, "ListUsage", g.listUsage != nil); g.listUsage == nil {
		return nil, errUnexpected
	}
	return g.listUsage(f)
}

func (g *gatewaySpy) SummarizeUsage(ctx context.Context, f custos.UsageFilter, by string) ([]*custos.UsageSummary, error) {
	if g.record(ctx, "SummarizeUsage", g.summarizeUsage != nil); g.summarizeUsage == nil {
		return nil, errUnexpected
	}
	return g.summarizeUsage(f, by)
}

// #nosec G101 -- a test value
const testProviderKey = "sk-test-provider-key-0123456789"

// storedProvider is what the spy's AddProvider answers for in.
func storedProvider(in custos.AddProviderInput) *custos.ModelProvider {
	base := in.BaseURL
	if base == "" {
		base = "https://api.openai.com/v1"
	}
	return &custos.ModelProvider{ID: "prv_0123456789abcdef", Name: in.Name, Kind: in.Kind, BaseURL: base,
		Models: in.Models, Priority: in.Priority, HasKey: in.APIKey != "", CreatedAt: testNow}
}

func TestProviderAdd(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure add reads the key from stdin (one trailing newline removed),
		// takes repeated and comma-separated models, prints what was stored
		// but never the key, and says the key will not be shown again.
		tc, g := newGatewayCLI(t)
		var got custos.AddProviderInput
		g.addProvider = func(in custos.AddProviderInput) (*custos.ModelProvider, error) {
			got = in
			return storedProvider(in), nil
		}
		tc.Stdin = strings.NewReader(testProviderKey + "\n")
		out := tc.mustRun(t, "provider", "add", "openai", "--kind", "openai", "--model", "gpt-4o", "--model", "o3*, gpt-5", "--priority", "5")
		want := custos.AddProviderInput{Name: "openai", Kind: "openai", Models: []string{"gpt-4o", "o3*", "gpt-5"}, Priority: 5, APIKey: testProviderKey}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("sent %+v, want %+v", got, want)
		}
		if got, want := out, "added provider openai (openai) at https://api.openai.com/v1, priority 5, models gpt-4o,o3*,gpt-5\n"; got != want {
			t.Fatalf("printed %q, want %q", got, want)
		}
		if !strings.Contains(tc.err.String(), "never show it again") {
			t.Fatalf("stderr %q", tc.err.String())
		}
		if strings.Contains(out+tc.err.String(), testProviderKey) {
			t.Fatal("the key was printed")
		}
	})
	t.Run("LocalNoKey", func(t *testing.T) {
		// Ensure a local provider with --no-key reads nothing from stdin and
		// sends no key.
		tc, g := newGatewayCLI(t)
		var got custos.AddProviderInput
		g.addProvider = func(in custos.AddProviderInput) (*custos.ModelProvider, error) {
			got = in
			return storedProvider(in), nil
		}
		tc.Stdin = strings.NewReader("not-read-at-all")
		tc.mustRun(t, "provider", "add", "ollama", "--kind", "local", "--base-url", "http://127.0.0.1:11434/v1", "--model", "llama3.1", "--no-key")
		if got.APIKey != "" || got.BaseURL != "http://127.0.0.1:11434/v1" || got.Kind != custos.ProviderLocal {
			t.Fatalf("sent %+v", got)
		}
		if strings.Contains(tc.err.String(), "never show") {
			t.Fatalf("stderr mentions a key that does not exist: %q", tc.err.String())
		}
	})
	t.Run("JSON", func(t *testing.T) {
		// Ensure --json prints the stored provider, with no key in it.
		tc, g := newGatewayCLI(t)
		g.addProvider = func(in custos.AddProviderInput) (*custos.ModelProvider, error) { return storedProvider(in), nil }
		tc.Stdin = strings.NewReader(testProviderKey)
		out := tc.mustRun(t, "provider", "add", "claude", "--kind", "anthropic", "--model", "claude-*", "--json")
		var p custos.ModelProvider
		if err := json.Unmarshal([]byte(out), &p); err != nil || p.Name != "claude" || !p.HasKey || strings.Contains(out, testProviderKey) {
			t.Fatalf("%v %s", err, out)
		}
	})
	t.Run("ErrEmptyKey", func(t *testing.T) {
		// Ensure an empty stdin fails before any call, naming how to give the key.
		tc, _ := newGatewayCLI(t)
		if code := tc.run("provider", "add", "openai", "--kind", "openai", "--model", "gpt-4o"); code != 1 || !strings.Contains(tc.err.String(), "empty API key") {
			t.Fatalf("exit %d, stderr %q", code, tc.err.String())
		}
		if calls := tc.spy.Calls(); len(calls) != 0 {
			t.Fatalf("called %v", calls)
		}
	})
	t.Run("ErrServer", func(t *testing.T) {
		// Ensure the server's refusal comes through with its code, exit 1.
		tc, g := newGatewayCLI(t)
		g.addProvider = func(custos.AddProviderInput) (*custos.ModelProvider, error) {
			return nil, custos.Errorf(custos.EINVALID, "base_url is not allowed for a cloud provider")
		}
		tc.Stdin = strings.NewReader(testProviderKey)
		code := tc.run("provider", "add", "x", "--kind", "openai", "--base-url", "http://127.0.0.1:1/v1", "--model", "m")
		if code != 1 || tc.err.String() != "custos: base_url is not allowed for a cloud provider [invalid]\n" {
			t.Fatalf("exit %d, stderr %q", code, tc.err.String())
		}
	})
}

func TestProviderList(t *testing.T) {
	// Ensure list shows each provider with whether it has a key, never a key,
	// and --json the structs.
	tc, g := newGatewayCLI(t)
	g.listProviders = func() ([]*custos.ModelProvider, error) {
		return []*custos.ModelProvider{
			{Name: "openai", Kind: "openai", BaseURL: "https://api.openai.com/v1", Models: []string{"gpt-*", "o3*"}, HasKey: true, Ciphertext: []byte(testProviderKey)},
			{Name: "ollama", Kind: "local", BaseURL: "http://127.0.0.1:11434/v1", Models: []string{"llama3.1"}, Priority: 10},
		}, nil
	}
	out := tc.mustRun(t, "provider", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 ||
		!reflect.DeepEqual(strings.Fields(lines[0]), []string{"NAME", "KIND", "BASE_URL", "MODELS", "PRIORITY", "HAS_KEY"}) ||
		!reflect.DeepEqual(strings.Fields(lines[1]), []string{"openai", "openai", "https://api.openai.com/v1", "gpt-*,o3*", "0", "yes"}) ||
		!reflect.DeepEqual(strings.Fields(lines[2]), []string{"ollama", "local", "http://127.0.0.1:11434/v1", "llama3.1", "10", "no"}) {
		t.Fatalf("table:\n%s", out)
	}
	js := tc.mustRun(t, "provider", "list", "--json")
	var ps []custos.ModelProvider
	if err := json.Unmarshal([]byte(js), &ps); err != nil || len(ps) != 2 || strings.Contains(js, testProviderKey) {
		t.Fatalf("%v %s", err, js)
	}
	g.listProviders = func() ([]*custos.ModelProvider, error) { return nil, nil }
	if out := tc.mustRun(t, "provider", "list", "--json"); out != "[]\n" {
		t.Fatalf("empty: %q", out)
	}
}

func TestProviderRemove(t *testing.T) {
	// Ensure rm removes the provider by name, and not found comes through.
	tc, g := newGatewayCLI(t)
	var got string
	g.removeProvider = func(name string) error { got = name; return nil }
	if out := tc.mustRun(t, "provider", "rm", "ollama"); out != "removed provider ollama\n" || got != "ollama" {
		t.Fatalf("printed %q, removed %q", out, got)
	}
	g.removeProvider = func(name string) error { return custos.Errorf(custos.ENOTFOUND, "provider %q not found", name) }
	if code := tc.run("provider", "rm", "nope"); code != 1 || !strings.HasSuffix(tc.err.String(), "[not_found]\n") {
		t.Fatalf("exit %d: %s", code, tc.err.String())
	}
}

func TestGatewayUsageErrors(t *testing.T) {
	// Ensure bad input to the gateway commands exits 2 with the message and
	// the usage on stderr, before any call to the server.
	for _, args := range [][]string{
		{"provider"},
		{"provider", "nosuch"},
		{"provider", "add"},
		{"provider", "add", "x", "--model", "m"},
		{"provider", "add", "x", "--kind", "azure", "--model", "m"},
		{"provider", "add", "x", "--kind", "openai"},
		{"provider", "add", "x", "--kind", "openai", "--model", "a,,b"},
		{"provider", "add", "x", "--kind", "openai", "--model", "has space"},
		{"provider", "add", "x", "--kind", "openai", "--model", "m", "sk-key-in-argv"},
		{"provider", "add", "Bad Name", "--kind", "openai", "--model", "m"},
		{"provider", "add", "x", "--kind", "openai", "--model", "m", "--priority", "high"},
		{"provider", "add", "x", "--kind", "openai", "--model", "m", "--priority", "-1"},
		{"provider", "add", "x", "--kind", "openai", "--model", "m", "--no-key"},
		{"provider", "add", "x", "--kind", "local", "--model", "m", "--no-key"},
		{"provider", "add", "x", "--kind", "local", "--model", "m", "--base-url", "127.0.0.1:11434", "--no-key"},
		{"provider", "add", "x", "--kind", "openai", "--model", "m", "--base-url", "https://u:p@api.example.com/v1"},
		{"provider", "add", "x", "--kind", "openai", "--model", "m", "--api-key", "sk-x"},
		{"provider", "list", "extra"},
		{"provider", "list", "--nosuchflag"},
		{"provider", "rm"},
		{"provider", "rm", "a", "b"},
		{"provider", "rm", "UPPER"},
		{"budget"},
		{"budget", "set"},
		{"budget", "set", "--per", "day"},
		{"budget", "set", "--tokens", "lots", "--per", "day"},
		{"budget", "set", "--tokens", "1e6", "--per", "day"},
		{"budget", "set", "--tokens", "-5", "--per", "day"},
		{"budget", "set", "--tokens", "100"},
		{"budget", "set", "--tokens", "100", "--per", "week"},
		{"budget", "set", "--tokens", "100", "--per", "day", "--key", "dev_0123456789abcdef"},
		{"budget", "set", "--tokens", "100", "--per", "day", "extra"},
		{"budget", "list", "--per", "day"},
		{"budget", "rm"},
		{"budget", "rm", "--per", "year"},
		{"budget", "rm", "--per", "day", "--key", "nope"},
		{"privacy"},
		{"privacy", "set"},
		{"privacy", "set", "paranoid"},
		{"privacy", "set", "offline", "sensitive"},
		{"privacy", "set", "offline", "--key", "k"},
		{"privacy", "set", "offline", "--project", ""},
		{"privacy", "set", "offline", "--project", "has space"},
		{"privacy", "set", "offline", "--key", "key_0123456789abcdef", "--project", "p"},
		{"privacy", "list", "--key", "key_0123456789abcdef"},
		{"privacy", "rm", "offline"},
		{"privacy", "rm", "--key", "pol_0123456789abcdef"},
		{"usage", "--by", "team"},
		{"usage", "--since", "yesterday"},
		{"usage", "--limit", "0"},
		{"usage", "--limit", "10001"},
		{"usage", "--limit", "ten"},
		{"usage", "--by", "model", "--limit", "5"},
		{"usage", "--key", "key_x"},
		{"usage", "extra"},
	} {
		tc, _ := newGatewayCLI(t)
		tc.Stdin = strings.NewReader("sk-from-stdin\n")
		code := tc.run(args...)
		if code != 2 {
			t.Errorf("custos %q: exit %d, want 2 (stderr %q)", args, code, tc.err.String())
			continue
		}
		if !strings.HasPrefix(tc.err.String(), "custos: ") || !strings.Contains(tc.err.String(), "Usage:") {
			t.Errorf("custos %q: stderr lacks message or usage: %q", args, tc.err.String())
		}
		if tc.out.Len() != 0 {
			t.Errorf("custos %q: printed to stdout: %q", args, tc.out.String())
		}
		if calls := tc.spy.Calls(); len(calls) != 0 {
			t.Errorf("custos %q: called %v", args, calls)
		}
	}
}

func TestGatewayUsageErrorsNoNetwork(t *testing.T) {
	// Ensure the gateway commands' usage errors happen before the CLI looks
	// for a server: no services, nothing listening and no key.
	tc := newTestCLI(t)
	tc.services = nil
	tc.env["CUSTOS_URL"] = "http://127.0.0.1:1"
	for _, args := range [][]string{
		{"provider", "add", "x", "--kind", "cloud", "--model", "m"},
		{"budget", "set", "--tokens", "x", "--per", "day"},
		{"privacy", "set", "paranoid"},
		{"usage", "--by", "team"},
	} {
		if code := tc.run(args...); code != 2 {
			t.Errorf("custos %q: exit %d, want 2: %s", args, code, tc.err.String())
		}
	}
}
