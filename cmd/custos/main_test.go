package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// TestMain lets the test binary act as the child of `custos run`: with
// CUSTOS_TEST_CHILD set it runs that helper instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CUSTOS_TEST_CHILD"); mode != "" {
		os.Exit(testChild(mode))
	}
	os.Exit(m.Run())
}

// testChild is the child process of the run tests.
func testChild(mode string) int {
	switch mode {
	case "custos": // the test binary as the custos program (replica tests run it as servers)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return NewCLI().Run(ctx, os.Args[1:])
	case "env": // print the named variables
		for _, k := range os.Args[1:] {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		return 0
	case "signal": // report the first forwarded signal and exit with its number
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
		fmt.Println("ready")
		select {
		case s := <-ch:
			fmt.Println("got", s)
			return 100 + int(s.(syscall.Signal))
		case <-time.After(20 * time.Second):
			fmt.Println("timeout")
			return 99
		}
	}
	return 98
}

// testNow is the fixed time of the test CLIs.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCLI is a CLI whose services are spies and whose output is captured.
type testCLI struct {
	*CLI
	out, err bytes.Buffer
	env      map[string]string
	spy      *spy
}

// newTestCLI returns a CLI with Dir and Home in temp dirs, a fixed clock,
// and spy services that fail any call not set up.
func newTestCLI(t *testing.T) *testCLI {
	t.Helper()
	tc := &testCLI{env: map[string]string{}, spy: &spy{t: t}}
	tc.CLI = &CLI{
		Stdin: strings.NewReader(""), Stdout: &tc.out, Stderr: &tc.err,
		Getenv: func(k string) string { return tc.env[k] },
		Dir:    t.TempDir(), Home: t.TempDir(), Hostname: "laptop", MachineUser: "alice",
		now:      func() time.Time { return testNow },
		services: tc.spy.services(),
	}
	return tc
}

// run runs the CLI with args and returns its exit code; output is reset first.
func (tc *testCLI) run(args ...string) int {
	tc.out.Reset()
	tc.err.Reset()
	return tc.Run(context.Background(), args)
}

// mustRun runs args and fails unless the exit code is 0.
func (tc *testCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	if code := tc.run(args...); code != 0 {
		t.Fatalf("custos %s: exit %d, stderr %q", strings.Join(args, " "), code, tc.err.String())
	}
	return tc.out.String()
}

// spy implements every service. Each method records its call and runs the
// matching func field, failing the test if it is nil.
type spy struct {
	t      *testing.T
	mu     sync.Mutex
	calls  []string
	caller *custos.Caller // of the last call that carried one

	setSecret     func(custos.SetSecretInput) (*custos.Secret, error)
	listSecrets   func(custos.SecretFilter) ([]*custos.Secret, error)
	secretHistory func(project, name string) ([]*custos.SecretVersion, error)
	deleteSecret  func(project, name string) error
	accessSecrets func(custos.AccessRequest) ([]*custos.SecretValue, error)

	createKey func(custos.CreateKeyInput) (*custos.APIKey, string, error)
	listKeys  func() ([]*custos.APIKey, error)
	rotateKey func(id string, grace time.Duration) (*custos.APIKey, string, error)
	revokeKey func(id string) error

	listDevices   func(custos.DeviceStatus) ([]*custos.Device, error)
	approveDevice func(id string, level custos.Level) (*custos.Device, error)
	denyDevice    func(id string) (*custos.Device, error)
	revokeDevice  func(id string) (*custos.Device, error)

	addPolicy      func(custos.AddPolicyInput) (*custos.Policy, error)
	listPolicies   func() ([]*custos.Policy, error)
	removePolicy   func(id string) error
	wakeSession    func(custos.WakeInput) (*custos.Session, error)
	sleepSession   func() error
	confirm        func(custos.ConfirmInput) (*custos.Confirmation, error)
	listAudit      func(custos.AuditFilter) ([]*custos.AuditEvent, error)
	verifyAudit    func() (*custos.AuditVerification, error)
	authenticateFn func(token string) (*custos.APIKey, error)
}

func (s *spy) services() *Services {
	return &Services{Keys: s, Secrets: s, Devices: s, Policies: s, Sessions: s, Audit: s}
}

// record notes a call and its caller, and fails the test if fn is not set.
func (s *spy) record(ctx context.Context, name string, set bool) {
	s.mu.Lock()
	s.calls = append(s.calls, name)
	if c := custos.CallerFromContext(ctx); c != nil {
		s.caller = c
	}
	s.mu.Unlock()
	if !set {
		s.t.Errorf("unexpected call to %s", name)
	}
}

// lastCaller returns the caller of the last call that carried one.
func (s *spy) lastCaller() *custos.Caller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caller
}

// Calls returns the recorded calls.
func (s *spy) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

var errUnexpected = custos.Errorf(custos.EINTERNAL, "unexpected call")

func (s *spy) Authenticate(ctx context.Context, token string) (*custos.APIKey, error) {
	if s.record(ctx, "Authenticate", s.authenticateFn != nil); s.authenticateFn == nil {
		return nil, errUnexpected
	}
	return s.authenticateFn(token)
}

func (s *spy) SetSecret(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
	if s.record(ctx, "SetSecret", s.setSecret != nil); s.setSecret == nil {
		return nil, errUnexpected
	}
	return s.setSecret(in)
}

func (s *spy) ListSecrets(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error) {
	if s.record(ctx, "ListSecrets", s.listSecrets != nil); s.listSecrets == nil {
		return nil, errUnexpected
	}
	return s.listSecrets(f)
}

func (s *spy) SecretHistory(ctx context.Context, project, name string) ([]*custos.SecretVersion, error) {
	if s.record(ctx, "SecretHistory", s.secretHistory != nil); s.secretHistory == nil {
		return nil, errUnexpected
	}
	return s.secretHistory(project, name)
}

func (s *spy) DeleteSecret(ctx context.Context, project, name string) error {
	if s.record(ctx, "DeleteSecret", s.deleteSecret != nil); s.deleteSecret == nil {
		return errUnexpected
	}
	return s.deleteSecret(project, name)
}

func (s *spy) AccessSecrets(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
	if s.record(ctx, "AccessSecrets", s.accessSecrets != nil); s.accessSecrets == nil {
		return nil, errUnexpected
	}
	return s.accessSecrets(req)
}

func (s *spy) CreateKey(ctx context.Context, in custos.CreateKeyInput) (*custos.APIKey, string, error) {
	if s.record(ctx, "CreateKey", s.createKey != nil); s.createKey == nil {
		return nil, "", errUnexpected
	}
	return s.createKey(in)
}

func (s *spy) ListKeys(ctx context.Context) ([]*custos.APIKey, error) {
	if s.record(ctx, "ListKeys", s.listKeys != nil); s.listKeys == nil {
		return nil, errUnexpected
	}
	return s.listKeys()
}

func (s *spy) RotateKey(ctx context.Context, id string, grace time.Duration) (*custos.APIKey, string, error) {
	if s.record(ctx, "RotateKey", s.rotateKey != nil); s.rotateKey == nil {
		return nil, "", errUnexpected
	}
	return s.rotateKey(id, grace)
}

func (s *spy) RevokeKey(ctx context.Context, id string) error {
	if s.record(ctx, "RevokeKey", s.revokeKey != nil); s.revokeKey == nil {
		return errUnexpected
	}
	return s.revokeKey(id)
}

func (s *spy) ListDevices(ctx context.Context, status custos.DeviceStatus) ([]*custos.Device, error) {
	if s.record(ctx, "ListDevices", s.listDevices != nil); s.listDevices == nil {
		return nil, errUnexpected
	}
	return s.listDevices(status)
}

func (s *spy) ApproveDevice(ctx context.Context, id string, level custos.Level) (*custos.Device, error) {
	if s.record(ctx, "ApproveDevice", s.approveDevice != nil); s.approveDevice == nil {
		return nil, errUnexpected
	}
	return s.approveDevice(id, level)
}

func (s *spy) DenyDevice(ctx context.Context, id string) (*custos.Device, error) {
	if s.record(ctx, "DenyDevice", s.denyDevice != nil); s.denyDevice == nil {
		return nil, errUnexpected
	}
	return s.denyDevice(id)
}

func (s *spy) RevokeDevice(ctx context.Context, id string) (*custos.Device, error) {
	if s.record(ctx, "RevokeDevice", s.revokeDevice != nil); s.revokeDevice == nil {
		return nil, errUnexpected
	}
	return s.revokeDevice(id)
}

func (s *spy) AddPolicy(ctx context.Context, in custos.AddPolicyInput) (*custos.Policy, error) {
	if s.record(ctx, "AddPolicy", s.addPolicy != nil); s.addPolicy == nil {
		return nil, errUnexpected
	}
	return s.addPolicy(in)
}

func (s *spy) ListPolicies(ctx context.Context) ([]*custos.Policy, error) {
	if s.record(ctx, "ListPolicies", s.listPolicies != nil); s.listPolicies == nil {
		return nil, errUnexpected
	}
	return s.listPolicies()
}

func (s *spy) RemovePolicy(ctx context.Context, id string) error {
	if s.record(ctx, "RemovePolicy", s.removePolicy != nil); s.removePolicy == nil {
		return errUnexpected
	}
	return s.removePolicy(id)
}

func (s *spy) WakeSession(ctx context.Context, in custos.WakeInput) (*custos.Session, error) {
	if s.record(ctx, "WakeSession", s.wakeSession != nil); s.wakeSession == nil {
		return nil, errUnexpected
	}
	return s.wakeSession(in)
}

func (s *spy) SleepSession(ctx context.Context) error {
	if s.record(ctx, "SleepSession", s.sleepSession != nil); s.sleepSession == nil {
		return errUnexpected
	}
	return s.sleepSession()
}

func (s *spy) CurrentSession(ctx context.Context) (*custos.Session, error) {
	s.record(ctx, "CurrentSession", false)
	return nil, errUnexpected
}

func (s *spy) Confirm(ctx context.Context, in custos.ConfirmInput) (*custos.Confirmation, error) {
	if s.record(ctx, "Confirm", s.confirm != nil); s.confirm == nil {
		return nil, errUnexpected
	}
	return s.confirm(in)
}

func (s *spy) ListAudit(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	if s.record(ctx, "ListAudit", s.listAudit != nil); s.listAudit == nil {
		return nil, errUnexpected
	}
	return s.listAudit(f)
}

func (s *spy) VerifyAudit(ctx context.Context) (*custos.AuditVerification, error) {
	if s.record(ctx, "VerifyAudit", s.verifyAudit != nil); s.verifyAudit == nil {
		return nil, errUnexpected
	}
	return s.verifyAudit()
}

// helpPaths are every command and subcommand of the CLI (serve and admin
// belong to the server side and are tested there).
var helpPaths = [][]string{
	{"secret"}, {"secret", "set"}, {"secret", "list"}, {"secret", "inject"}, {"secret", "reveal"},
	{"secret", "rm"}, {"secret", "history"},
	{"session"}, {"session", "wake"}, {"session", "sleep"}, {"session", "clear"},
	{"confirm"}, {"run"},
	{"key"}, {"key", "create"}, {"key", "list"}, {"key", "rotate"}, {"key", "revoke"},
	{"device"}, {"device", "list"}, {"device", "approve"}, {"device", "deny"}, {"device", "revoke"},
	{"policy"}, {"policy", "add"}, {"policy", "list"}, {"policy", "rm"},
	{"audit"}, {"audit", "list"}, {"audit", "verify"}, {"audit", "export"},
	{"version"},
	{"serve"}, {"admin"}, {"admin", "rotate-kek"}, {"admin", "migrate"},
	{"mcp"}, {"redact"}, {"context"},
	{"provider"}, {"provider", "add"}, {"provider", "list"}, {"provider", "rm"},
	{"budget"}, {"budget", "set"}, {"budget", "list"}, {"budget", "rm"},
	{"privacy"}, {"privacy", "set"}, {"privacy", "list"}, {"privacy", "rm"},
	{"usage"},
	{"tracker"}, {"tracker", "install"}, {"tracker", "list"}, {"tracker", "rm"},
	{"task"}, {"task", "launch"}, {"task", "open"}, {"task", "upload"}, {"task", "download"}, {"task", "complete"}, {"task", "purge"},
}

func TestHelpCoversEveryCommand(t *testing.T) {
	// Ensure every top-level command is in helpPaths, so none ships without
	// help and an example.
	for name := range commands {
		found := false
		for _, p := range helpPaths {
			if p[0] == name {
				found = true
			}
		}
		if !found {
			t.Errorf("command %q has no help test", name)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Run("Main", func(t *testing.T) {
		// Ensure custos --help, -h and help print the usage to stdout and exit 0.
		for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
			tc := newTestCLI(t)
			if code := tc.run(args...); code != 0 {
				t.Fatalf("%v: exit %d", args, code)
			}
			for _, want := range []string{"Usage:", "Example", "secret", "run", "audit"} {
				if !strings.Contains(tc.out.String(), want) {
					t.Fatalf("%v: usage lacks %q", args, want)
				}
			}
		}
	})
	t.Run("EveryCommand", func(t *testing.T) {
		// Ensure custos CMD --help, custos CMD -h and custos help CMD print help
		// with an example, exit 0 and call no service.
		for _, path := range helpPaths {
			for _, args := range [][]string{
				append(append([]string{}, path...), "--help"),
				append(append([]string{}, path...), "-h"),
				append([]string{"help"}, path...),
			} {
				tc := newTestCLI(t)
				if code := tc.run(args...); code != 0 {
					t.Fatalf("custos %s: exit %d, stderr %q", strings.Join(args, " "), code, tc.err.String())
				}
				out := tc.out.String()
				if !strings.Contains(out, "Example") || !strings.Contains(out, "Usage: custos "+path[0]) {
					t.Fatalf("custos %s: help lacks usage or example:\n%s", strings.Join(args, " "), out)
				}
				if len(tc.spy.Calls()) != 0 {
					t.Fatalf("custos %s called %v", strings.Join(args, " "), tc.spy.Calls())
				}
			}
		}
	})
	t.Run("HelpAfterArgs", func(t *testing.T) {
		// Ensure --help works after positional arguments too.
		tc := newTestCLI(t)
		if code := tc.run("secret", "set", "NAME", "--help"); code != 0 || !strings.Contains(tc.out.String(), "Usage: custos secret set") {
			t.Fatalf("exit %d: %s", code, tc.out.String())
		}
	})
	t.Run("LeafShowsFlags", func(t *testing.T) {
		// Ensure a command's help lists its flags with two dashes.
		tc := newTestCLI(t)
		tc.mustRun(t, "secret", "set", "--help")
		for _, want := range []string{"--project PROJECT", "--tag k=v", "--ttl D", "--description TEXT", "--agent NAME", "(default default)"} {
			if !strings.Contains(tc.out.String(), want) {
				t.Errorf("help lacks %q:\n%s", want, tc.out.String())
			}
		}
	})
}

func TestUsageErrors(t *testing.T) {
	// Ensure bad commands, flags and arguments exit 2 with the usage on
	// stderr, before any call to the server.
	for _, args := range [][]string{
		{},
		{"nosuchcommand"},
		{"--nosuchflag", "secret", "list"},
		{"secret"},
		{"secret", "nosuch"},
		{"secret", "list", "--nosuchflag"},
		{"secret", "list", "extra"},
		{"secret", "list", "--project", "Bad Project"},
		{"secret", "list", "--tag", "novalue"},
		{"secret", "set"},
		{"secret", "set", "A", "value-in-argv"},
		{"secret", "set", "1BAD"},
		{"secret", "set", "A", "--tag", "novalue"},
		{"secret", "set", "A", "--tag", "env=a", "--tag", "env=b"},
		{"secret", "set", "A", "--ttl", "forever"},
		{"secret", "set", "A", "--ttl", "-1h"},
		{"secret", "set", "A", "--description", strings.Repeat("x", 1025)},
		{"secret", "set", "A", "--project"},
		{"secret", "reveal"},
		{"secret", "reveal", "A", "B"},
		{"secret", "inject"},
		{"secret", "inject", "A", "bad-name"},
		{"secret", "rm", "A", "--project", "UPPER"},
		{"secret", "history", "a-b"},
		{"session"},
		{"session", "wake", "--ttl", "48h"},
		{"session", "wake", "--tags", "BAD=x"},
		{"session", "sleep", "now"},
		{"confirm"},
		{"confirm", "NOT-A-NAME"},
		{"run"},
		{"run", "--project", "default"},
		{"run", "--only", "bad-name", "--", "true"},
		{"run", "--nosuchflag", "--", "true"},
		{"key"},
		{"key", "create"},
		{"key", "create", "--name", "x", "--role", "god"},
		{"key", "create", "--name", "bad\nname"},
		{"key", "rotate", "nope"},
		{"key", "rotate", "dev_0123456789abcdef"},
		{"key", "rotate", "key_0123456789abcdef", "--grace", "0s"},
		{"key", "revoke"},
		{"device", "approve", "dev_0123456789abcdef"},
		{"device", "approve", "dev_0123456789abcdef", "--level", "root"},
		{"device", "approve", "nope", "--level", "read"},
		{"device", "deny", "key_0123456789abcdef"},
		{"device", "revoke"},
		{"device", "list", "--status", "x"},
		{"policy", "add", "--tag", "env=prod", "--rule", "allow"},
		{"policy", "add", "--rule", "notify"},
		{"policy", "add", "--tag", "env=prod"},
		{"policy", "add", "--tag", "env=prod", "--tag", "team=x", "--rule", "notify"},
		{"policy", "add", "--tag", "env=prod", "--rule", "block_models"},
		{"policy", "add", "--tag", "env=prod", "--rule", "notify", "--models", "gpt-*"},
		{"policy", "add", "--tag", "env=prod", "--rule", "block_models", "--models", "a,,b"},
		{"policy", "add", "--tag", "env=prod", "--rule", "block_always", "--notify-url", "https://x"},
		{"policy", "add", "--tag", "env=prod", "--rule", "notify", "--notify-url", "not a url"},
		{"policy", "rm", "pol_xyz"},
		{"audit", "list", "--since", "yesterday"},
		{"audit", "export", "--format", "csv"},
		{"audit", "verify", "extra"},
		{"version", "extra"},
		{"--agent", "bad\tagent", "secret", "list"},
		{"secret", "list", "--agent", ""},
	} {
		tc := newTestCLI(t)
		tc.Stdin = strings.NewReader("v\n")
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

func TestUsageErrorsNoNetwork(t *testing.T) {
	// Ensure usage errors happen before the CLI even looks for a server: no
	// services, a URL nothing listens on, and no key at all.
	tc := newTestCLI(t)
	tc.services = nil
	tc.env["CUSTOS_URL"] = "http://127.0.0.1:1"
	for _, args := range [][]string{{"secret", "set", "A", "B"}, {"device", "approve", "nope"}, {"audit", "list", "--since", "x"}} {
		if code := tc.run(args...); code != 2 {
			t.Errorf("custos %q: exit %d, want 2: %s", args, code, tc.err.String())
		}
	}
}

func TestErrorOutput(t *testing.T) {
	t.Run("CustosError", func(t *testing.T) {
		// Ensure a *custos.Error prints its message and code in brackets, exit 1.
		tc := newTestCLI(t)
		tc.spy.accessSecrets = func(custos.AccessRequest) ([]*custos.SecretValue, error) {
			return nil, custos.Errorf(custos.EDEVICEPENDING, "device dev_0123456789abcdef is pending approval")
		}
		if code := tc.run("secret", "reveal", "A"); code != 1 {
			t.Fatalf("exit %d", code)
		}
		if got, want := tc.err.String(), "custos: device dev_0123456789abcdef is pending approval [device_pending]\n"; got != want {
			t.Fatalf("stderr %q, want %q", got, want)
		}
	})
	t.Run("Wrapped", func(t *testing.T) {
		// Ensure a wrapped *custos.Error (as the client returns) still prints its code.
		tc := newTestCLI(t)
		tc.spy.sleepSession = func() error {
			return fmt.Errorf("%w: %w", custos.Errorf(custos.EUNAVAILABLE, "server down"), syscall.ECONNREFUSED)
		}
		if code := tc.run("session", "sleep"); code != 1 || tc.err.String() != "custos: server down [unavailable]\n" {
			t.Fatalf("exit %d, stderr %q", code, tc.err.String())
		}
	})
	t.Run("Interrupted", func(t *testing.T) {
		// Ensure a canceled context (Ctrl-C) exits 130.
		tc := newTestCLI(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		tc.spy.sleepSession = func() error { return fmt.Errorf("request: %w", context.Canceled) }
		if code := tc.Run(ctx, []string{"session", "sleep"}); code != 130 {
			t.Fatalf("exit %d, stderr %q", code, tc.err.String())
		}
	})
	t.Run("LeadUsageError", func(t *testing.T) {
		// Ensure the server commands' usage errors exit 2.
		tc := newTestCLI(t)
		if code := tc.run("admin"); code != 2 {
			t.Fatalf("exit %d", code)
		}
	})
}

func TestVersion(t *testing.T) {
	// Ensure custos version prints the version.
	tc := newTestCLI(t)
	if out := tc.mustRun(t, "version"); !strings.HasPrefix(out, "custos "+Version+" ") {
		t.Fatalf("version printed %q", out)
	}
}

func TestAgent(t *testing.T) {
	// Ensure the agent comes from --agent (before or after the command), then
	// CUSTOS_AGENT, then "cli".
	for _, tt := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"session", "sleep"}, "cli"},
		{"from-env", []string{"session", "sleep"}, "from-env"},
		{"from-env", []string{"--agent", "global", "session", "sleep"}, "global"},
		{"from-env", []string{"session", "sleep", "--agent", "local"}, "local"},
		{"", []string{"--agent=first", "session", "sleep", "--agent=second"}, "second"},
	} {
		tc := newTestCLI(t)
		tc.env["CUSTOS_AGENT"] = tt.env
		tc.spy.sleepSession = func() error { return nil }
		tc.mustRun(t, tt.args...)
		if tc.agent != tt.want {
			t.Errorf("%q with CUSTOS_AGENT=%q: agent %q, want %q", tt.args, tt.env, tc.agent, tt.want)
		}
	}
}

func TestSanitizeLabel(t *testing.T) {
	// Ensure hostnames and user names become valid labels.
	for _, in := range []string{"laptop", "my-host.example.com", `CORP\alice`, "-x", strings.Repeat("h", 100), "é"} {
		got := sanitizeLabel(in)
		if err := custos.ValidateLabel("hostname", got); err != nil {
			t.Errorf("sanitizeLabel(%q) = %q: %v", in, got, err)
		}
	}
	if got := sanitizeLabel("laptop.local"); got != "laptop.local" {
		t.Errorf("a valid label changed: %q", got)
	}
}

// itoa is strconv.Itoa, for brevity in tests.
func itoa(n int) string { return strconv.Itoa(n) }
