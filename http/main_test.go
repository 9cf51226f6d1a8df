package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

// Test credentials and ids. The token is what the spy's Authenticate accepts.
const (
	testToken  = "cst_ak_TESTtokenVALUEthatMUSTneverBEloggedXXXXXXXXXXXX"
	testKeyID  = "key_0123456789abcdef"
	testDevID  = "dev_0123456789abcdef"
	testPolID  = "pol_0123456789abcdef"
	testOrgID  = "org_0123456789abcdef"
	testSecret = "s3cr3t-VALUE-that-must-never-be-logged"
)

// testKey is the key testToken authenticates as.
func testKey() *custos.APIKey {
	return &custos.APIKey{ID: testKeyID, OrgID: testOrgID, Name: "ci", Role: custos.RoleAdmin,
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Spy implements every service interface with func fields and records the
// calls it gets (other than Authenticate). A method whose func is nil fails
// with a plain (internal) error.
type Spy struct {
	mu    sync.Mutex
	calls []string

	AuthenticateFn func(ctx context.Context, token string) (*custos.APIKey, error)
	CreateKeyFn    func(ctx context.Context, in custos.CreateKeyInput) (*custos.APIKey, string, error)
	ListKeysFn     func(ctx context.Context) ([]*custos.APIKey, error)
	RotateKeyFn    func(ctx context.Context, id string, grace time.Duration) (*custos.APIKey, string, error)
	RevokeKeyFn    func(ctx context.Context, id string) error

	SetSecretFn     func(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error)
	ListSecretsFn   func(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error)
	SecretHistoryFn func(ctx context.Context, project, name string) ([]*custos.SecretVersion, error)
	DeleteSecretFn  func(ctx context.Context, project, name string) error
	AccessSecretsFn func(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error)

	ListDevicesFn   func(ctx context.Context, status custos.DeviceStatus) ([]*custos.Device, error)
	ApproveDeviceFn func(ctx context.Context, id string, level custos.Level) (*custos.Device, error)
	DenyDeviceFn    func(ctx context.Context, id string) (*custos.Device, error)
	RevokeDeviceFn  func(ctx context.Context, id string) (*custos.Device, error)

	AddPolicyFn    func(ctx context.Context, in custos.AddPolicyInput) (*custos.Policy, error)
	ListPoliciesFn func(ctx context.Context) ([]*custos.Policy, error)
	RemovePolicyFn func(ctx context.Context, id string) error

	WakeSessionFn    func(ctx context.Context, in custos.WakeInput) (*custos.Session, error)
	SleepSessionFn   func(ctx context.Context) error
	CurrentSessionFn func(ctx context.Context) (*custos.Session, error)
	ConfirmFn        func(ctx context.Context, in custos.ConfirmInput) (*custos.Confirmation, error)

	ListAuditFn   func(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error)
	VerifyAuditFn func(ctx context.Context) (*custos.AuditVerification, error)

	AddProviderFn    func(ctx context.Context, in custos.AddProviderInput) (*custos.ModelProvider, error)
	ListProvidersFn  func(ctx context.Context) ([]*custos.ModelProvider, error)
	RemoveProviderFn func(ctx context.Context, name string) error
	SetBudgetFn      func(ctx context.Context, b custos.Budget) (*custos.Budget, error)
	ListBudgetsFn    func(ctx context.Context) ([]*custos.Budget, error)
	RemoveBudgetFn   func(ctx context.Context, keyID, period string) error
	SetPrivacyFn     func(ctx context.Context, r custos.PrivacyRule) (*custos.PrivacyRule, error)
	ListPrivacyFn    func(ctx context.Context) ([]*custos.PrivacyRule, error)
	RemovePrivacyFn  func(ctx context.Context, scope, target string) error
	ListUsageFn      func(ctx context.Context, f custos.UsageFilter) ([]*custos.UsageRecord, error)
	SummarizeUsageFn func(ctx context.Context, f custos.UsageFilter, by string) ([]*custos.UsageSummary, error)

	CreateTrackerInstallFn func(ctx context.Context, name string) (*custos.TrackerInstall, string, error)
	ListTrackerInstallsFn  func(ctx context.Context) ([]*custos.TrackerInstall, error)
	RevokeTrackerInstallFn func(ctx context.Context, id string) error
	StartTrackerSessionFn  func(ctx context.Context, installToken string) (*custos.RequestKeyGrant, error)
	SpendRequestKeyFn      func(ctx context.Context, installToken, requestKey string) (*custos.TrackerCall, error)
	CreateLaunchLinkFn     func(ctx context.Context, call *custos.TrackerCall, in custos.LaunchLinkInput) (*custos.LaunchLink, error)
	ExchangeLaunchCodeFn   func(ctx context.Context, in custos.LaunchExchangeInput) (*custos.PermitGrant, error)
	CheckPermitFn          func(ctx context.Context, permit string) (*custos.Permit, error)
	CheckScopeFn           func(ctx context.Context, permit, projectID, taskID string) (*custos.Permit, error)
	CreateRunFn            func(ctx context.Context, permit, taskID string) (*custos.Run, error)
	PutArtifactFn          func(ctx context.Context, permit, taskID, runID, name, kind string, body io.Reader) (*custos.Artifact, error)
	GetArtifactFn          func(ctx context.Context, permit, taskID, runID, name string) (*custos.Artifact, []byte, error)
	ListArtifactsFn        func(ctx context.Context, permit, taskID, runID string) ([]*custos.Artifact, error)
	CompleteRunFn          func(ctx context.Context, permit, taskID, runID string) (*custos.Run, error)
	CompleteTaskFn         func(ctx context.Context, permit, taskID string) (*custos.Task, error)
	PutIndexFilesFn        func(ctx context.Context, permit, projectID, indexID string, files []custos.IndexFile) (int, error)
	StaleIndexFilesFn      func(ctx context.Context, permit, projectID, indexID string, refs []custos.IndexRef) ([]string, error)
}

var (
	_ custos.KeyService      = (*Spy)(nil)
	_ custos.SecretService   = (*Spy)(nil)
	_ custos.DeviceService   = (*Spy)(nil)
	_ custos.PolicyService   = (*Spy)(nil)
	_ custos.SessionService  = (*Spy)(nil)
	_ custos.AuditService    = (*Spy)(nil)
	_ custos.ProviderService = (*Spy)(nil)
	_ custos.BudgetService   = (*Spy)(nil)
	_ custos.PrivacyService  = (*Spy)(nil)
	_ custos.UsageService    = (*Spy)(nil)
	_ custos.TrackerService  = (*Spy)(nil)
	_ custos.LaunchService   = (*Spy)(nil)
	_ custos.TaskService     = (*Spy)(nil)
)

func (s *Spy) record(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, name)
}

// Calls returns the service methods called so far, Authenticate excluded.
func (s *Spy) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Reset forgets the recorded calls.
func (s *Spy) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func notSet(name string) error { return fmt.Errorf("spy: %s not set", name) }

func (s *Spy) Authenticate(ctx context.Context, token string) (*custos.APIKey, error) {
	if s.AuthenticateFn != nil {
		return s.AuthenticateFn(ctx, token)
	}
	if token == testToken {
		return testKey(), nil
	}
	return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid API key")
}

func (s *Spy) CreateKey(ctx context.Context, in custos.CreateKeyInput) (*custos.APIKey, string, error) {
	s.record("CreateKey")
	if s.CreateKeyFn == nil {
		return nil, "", notSet("CreateKey")
	}
	return s.CreateKeyFn(ctx, in)
}

func (s *Spy) ListKeys(ctx context.Context) ([]*custos.APIKey, error) {
	s.record("ListKeys")
	if s.ListKeysFn == nil {
		return nil, notSet("ListKeys")
	}
	return s.ListKeysFn(ctx)
}

func (s *Spy) RotateKey(ctx context.Context, id string, grace time.Duration) (*custos.APIKey, string, error) {
	s.record("RotateKey")
	if s.RotateKeyFn == nil {
		return nil, "", notSet("RotateKey")
	}
	return s.RotateKeyFn(ctx, id, grace)
}

func (s *Spy) RevokeKey(ctx context.Context, id string) error {
	s.record("RevokeKey")
	if s.RevokeKeyFn == nil {
		return notSet("RevokeKey")
	}
	return s.RevokeKeyFn(ctx, id)
}

func (s *Spy) SetSecret(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
	s.record("SetSecret")
	if s.SetSecretFn == nil {
		return nil, notSet("SetSecret")
	}
	return s.SetSecretFn(ctx, in)
}

func (s *Spy) ListSecrets(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error) {
	s.record("ListSecrets")
	if s.ListSecretsFn == nil {
		return nil, notSet("ListSecrets")
	}
	return s.ListSecretsFn(ctx, f)
}

func (s *Spy) SecretHistory(ctx context.Context, project, name string) ([]*custos.SecretVersion, error) {
	s.record("SecretHistory")
	if s.SecretHistoryFn == nil {
		return nil, notSet("SecretHistory")
	}
	return s.SecretHistoryFn(ctx, project, name)
}

func (s *Spy) DeleteSecret(ctx context.Context, project, name string) error {
	s.record("DeleteSecret")
	if s.DeleteSecretFn == nil {
		return notSet("DeleteSecret")
	}
	return s.DeleteSecretFn(ctx, project, name)
}

func (s *Spy) AccessSecrets(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
	s.record("AccessSecrets")
	if s.AccessSecretsFn == nil {
		return nil, notSet("AccessSecrets")
	}
	return s.AccessSecretsFn(ctx, req)
}

func (s *Spy) ListDevices(ctx context.Context, status custos.DeviceStatus) ([]*custos.Device, error) {
	s.record("ListDevices")
	if s.ListDevicesFn == nil {
		return nil, notSet("ListDevices")
	}
	return s.ListDevicesFn(ctx, status)
}

func (s *Spy) ApproveDevice(ctx context.Context, id string, level custos.Level) (*custos.Device, error) {
	s.record("ApproveDevice")
	if s.ApproveDeviceFn == nil {
		return nil, notSet("ApproveDevice")
	}
	return s.ApproveDeviceFn(ctx, id, level)
}

func (s *Spy) DenyDevice(ctx context.Context, id string) (*custos.Device, error) {
	s.record("DenyDevice")
	if s.DenyDeviceFn == nil {
		return nil, notSet("DenyDevice")
	}
	return s.DenyDeviceFn(ctx, id)
}

func (s *Spy) RevokeDevice(ctx context.Context, id string) (*custos.Device, error) {
	s.record("RevokeDevice")
	if s.RevokeDeviceFn == nil {
		return nil, notSet("RevokeDevice")
	}
	return s.RevokeDeviceFn(ctx, id)
}

func (s *Spy) AddPolicy(ctx context.Context, in custos.AddPolicyInput) (*custos.Policy, error) {
	s.record("AddPolicy")
	if s.AddPolicyFn == nil {
		return nil, notSet("AddPolicy")
	}
	return s.AddPolicyFn(ctx, in)
}

func (s *Spy) ListPolicies(ctx context.Context) ([]*custos.Policy, error) {
	s.record("ListPolicies")
	if s.ListPoliciesFn == nil {
		return nil, notSet("ListPolicies")
	}
	return s.ListPoliciesFn(ctx)
}

func (s *Spy) RemovePolicy(ctx context.Context, id string) error {
	s.record("RemovePolicy")
	if s.RemovePolicyFn == nil {
		return notSet("RemovePolicy")
	}
	return s.RemovePolicyFn(ctx, id)
}

func (s *Spy) WakeSession(ctx context.Context, in custos.WakeInput) (*custos.Session, error) {
	s.record("WakeSession")
	if s.WakeSessionFn == nil {
		return nil, notSet("WakeSession")
	}
	return s.WakeSessionFn(ctx, in)
}

func (s *Spy) SleepSession(ctx context.Context) error {
	s.record("SleepSession")
	if s.SleepSessionFn == nil {
		return notSet("SleepSession")
	}
	return s.SleepSessionFn(ctx)
}

func (s *Spy) CurrentSession(ctx context.Context) (*custos.Session, error) {
	s.record("CurrentSession")
	if s.CurrentSessionFn == nil {
		return nil, notSet("CurrentSession")
	}
	return s.CurrentSessionFn(ctx)
}

func (s *Spy) Confirm(ctx context.Context, in custos.ConfirmInput) (*custos.Confirmation, error) {
	s.record("Confirm")
	if s.ConfirmFn == nil {
		return nil, notSet("Confirm")
	}
	return s.ConfirmFn(ctx, in)
}

func (s *Spy) ListAudit(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	s.record("ListAudit")
	if s.ListAuditFn == nil {
		return nil, notSet("ListAudit")
	}
	return s.ListAuditFn(ctx, f)
}

func (s *Spy) VerifyAudit(ctx context.Context) (*custos.AuditVerification, error) {
	s.record("VerifyAudit")
	if s.VerifyAuditFn == nil {
		return nil, notSet("VerifyAudit")
	}
	return s.VerifyAuditFn(ctx)
}

func (s *Spy) AddProvider(ctx context.Context, in custos.AddProviderInput) (*custos.ModelProvider, error) {
	s.record("AddProvider")
	if s.AddProviderFn == nil {
		return nil, notSet("AddProvider")
	}
	return s.AddProviderFn(ctx, in)
}

func (s *Spy) ListProviders(ctx context.Context) ([]*custos.ModelProvider, error) {
	s.record("ListProviders")
	if s.ListProvidersFn == nil {
		return nil, notSet("ListProviders")
	}
	return s.ListProvidersFn(ctx)
}

func (s *Spy) RemoveProvider(ctx context.Context, name string) error {
	s.record("RemoveProvider")
	if s.RemoveProviderFn == nil {
		return notSet("RemoveProvider")
	}
	return s.RemoveProviderFn(ctx, name)
}

func (s *Spy) SetBudget(ctx context.Context, b custos.Budget) (*custos.Budget, error) {
	s.record("SetBudget")
	if s.SetBudgetFn == nil {
		return nil, notSet("SetBudget")
	}
	return s.SetBudgetFn(ctx, b)
}

func (s *Spy) ListBudgets(ctx context.Context) ([]*custos.Budget, error) {
	s.record("ListBudgets")
	if s.ListBudgetsFn == nil {
		return nil, notSet("ListBudgets")
	}
	return s.ListBudgetsFn(ctx)
}

func (s *Spy) RemoveBudget(ctx context.Context, keyID, period string) error {
	s.record("RemoveBudget")
	if s.RemoveBudgetFn == nil {
		return notSet("RemoveBudget")
	}
	return s.RemoveBudgetFn(ctx, keyID, period)
}

func (s *Spy) SetPrivacy(ctx context.Context, r custos.PrivacyRule) (*custos.PrivacyRule, error) {
	s.record("SetPrivacy")
	if s.SetPrivacyFn == nil {
		return nil, notSet("SetPrivacy")
	}
	return s.SetPrivacyFn(ctx, r)
}

func (s *Spy) ListPrivacy(ctx context.Context) ([]*custos.PrivacyRule, error) {
	s.record("ListPrivacy")
	if s.ListPrivacyFn == nil {
		return nil, notSet("ListPrivacy")
	}
	return s.ListPrivacyFn(ctx)
}

func (s *Spy) RemovePrivacy(ctx context.Context, scope, target string) error {
	s.record("RemovePrivacy")
	if s.RemovePrivacyFn == nil {
		return notSet("RemovePrivacy")
	}
	return s.RemovePrivacyFn(ctx, scope, target)
}

func (s *Spy) ListUsage(ctx context.Context, f custos.UsageFilter) ([]*custos.UsageRecord, error) {
	s.record("ListUsage")
	if s.ListUsageFn == nil {
		return nil, notSet("ListUsage")
	}
	return s.ListUsageFn(ctx, f)
}

func (s *Spy) SummarizeUsage(ctx context.Context, f custos.UsageFilter, by string) ([]*custos.UsageSummary, error) {
	s.record("SummarizeUsage")
	if s.SummarizeUsageFn == nil {
		return nil, notSet("SummarizeUsage")
	}
	return s.SummarizeUsageFn(ctx, f, by)
}

func (s *Spy) CreateTrackerInstall(ctx context.Context, name string) (*custos.TrackerInstall, string, error) {
	s.record("CreateTrackerInstall")
	if s.CreateTrackerInstallFn == nil {
		return nil, "", notSet("CreateTrackerInstall")
	}
	return s.CreateTrackerInstallFn(ctx, name)
}

func (s *Spy) ListTrackerInstalls(ctx context.Context) ([]*custos.TrackerInstall, error) {
	s.record("ListTrackerInstalls")
	if s.ListTrackerInstallsFn == nil {
		return nil, notSet("ListTrackerInstalls")
	}
	return s.ListTrackerInstallsFn(ctx)
}

func (s *Spy) RevokeTrackerInstall(ctx context.Context, id string) error {
	s.record("RevokeTrackerInstall")
	if s.RevokeTrackerInstallFn == nil {
		return notSet("RevokeTrackerInstall")
	}
	return s.RevokeTrackerInstallFn(ctx, id)
}

func (s *Spy) StartTrackerSession(ctx context.Context, installToken string) (*custos.RequestKeyGrant, error) {
	s.record("StartTrackerSession")
	if s.StartTrackerSessionFn == nil {
		return nil, notSet("StartTrackerSession")
	}
	return s.StartTrackerSessionFn(ctx, installToken)
}

func (s *Spy) SpendRequestKey(ctx context.Context, installToken, requestKey string) (*custos.TrackerCall, error) {
	s.record("SpendRequestKey")
	if s.SpendRequestKeyFn == nil {
		return nil, notSet("SpendRequestKey")
	}
	return s.SpendRequestKeyFn(ctx, installToken, requestKey)
}

func (s *Spy) CreateLaunchLink(ctx context.Context, call *custos.TrackerCall, in custos.LaunchLinkInput) (*custos.LaunchLink, error) {
	s.record("CreateLaunchLink")
	if s.CreateLaunchLinkFn == nil {
		return nil, notSet("CreateLaunchLink")
	}
	return s.CreateLaunchLinkFn(ctx, call, in)
}

func (s *Spy) ExchangeLaunchCode(ctx context.Context, in custos.LaunchExchangeInput) (*custos.PermitGrant, error) {
	s.record("ExchangeLaunchCode")
	if s.ExchangeLaunchCodeFn == nil {
		return nil, notSet("ExchangeLaunchCode")
	}
	return s.ExchangeLaunchCodeFn(ctx, in)
}

// CheckScope implements custos.TaskService.
func (s *Spy) CheckScope(ctx context.Context, permit, projectID, taskID string) (*custos.Permit, error) {
	s.record("CheckScope")
	if s.CheckScopeFn == nil {
		return nil, notSet("CheckScope")
	}
	return s.CheckScopeFn(ctx, permit, projectID, taskID)
}

// CheckPermit implements custos.TaskService.
func (s *Spy) CheckPermit(ctx context.Context, permit string) (*custos.Permit, error) {
	s.record("CheckPermit")
	if s.CheckPermitFn == nil {
		return nil, notSet("CheckPermit")
	}
	return s.CheckPermitFn(ctx, permit)
}

func (s *Spy) CreateRun(ctx context.Context, permit, taskID string) (*custos.Run, error) {
	s.record("CreateRun")
	if s.CreateRunFn == nil {
		return nil, notSet("CreateRun")
	}
	return s.CreateRunFn(ctx, permit, taskID)
}

func (s *Spy) PutArtifact(ctx context.Context, permit, taskID, runID, name, kind string, body io.Reader) (*custos.Artifact, error) {
	s.record("PutArtifact")
	if s.PutArtifactFn == nil {
		return nil, notSet("PutArtifact")
	}
	return s.PutArtifactFn(ctx, permit, taskID, runID, name, kind, body)
}

func (s *Spy) GetArtifact(ctx context.Context, permit, taskID, runID, name string) (*custos.Artifact, []byte, error) {
	s.record("GetArtifact")
	if s.GetArtifactFn == nil {
		return nil, nil, notSet("GetArtifact")
	}
	return s.GetArtifactFn(ctx, permit, taskID, runID, name)
}

func (s *Spy) ListArtifacts(ctx context.Context, permit, taskID, runID string) ([]*custos.Artifact, error) {
	s.record("ListArtifacts")
	if s.ListArtifactsFn == nil {
		return nil, notSet("ListArtifacts")
	}
	return s.ListArtifactsFn(ctx, permit, taskID, runID)
}

func (s *Spy) CompleteRun(ctx context.Context, permit, taskID, runID string) (*custos.Run, error) {
	s.record("CompleteRun")
	if s.CompleteRunFn == nil {
		return nil, notSet("CompleteRun")
	}
	return s.CompleteRunFn(ctx, permit, taskID, runID)
}

func (s *Spy) CompleteTask(ctx context.Context, permit, taskID string) (*custos.Task, error) {
	s.record("CompleteTask")
	if s.CompleteTaskFn == nil {
		return nil, notSet("CompleteTask")
	}
	return s.CompleteTaskFn(ctx, permit, taskID)
}

func (s *Spy) PutIndexFiles(ctx context.Context, permit, projectID, indexID string, files []custos.IndexFile) (int, error) {
	s.record("PutIndexFiles")
	if s.PutIndexFilesFn == nil {
		return 0, notSet("PutIndexFiles")
	}
	return s.PutIndexFilesFn(ctx, permit, projectID, indexID, files)
}

func (s *Spy) StaleIndexFiles(ctx context.Context, permit, projectID, indexID string, refs []custos.IndexRef) ([]string, error) {
	s.record("StaleIndexFiles")
	if s.StaleIndexFilesFn == nil {
		return nil, notSet("StaleIndexFiles")
	}
	return s.StaleIndexFilesFn(ctx, permit, projectID, indexID, refs)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Env is one API handler over a Spy, served by httptest, with a client.
type Env struct {
	Spy    *Spy
	Logs   *syncBuffer
	Config custoshttp.Config
	Server *httptest.Server
	Client *custoshttp.Client
}

// MustServe starts an API server over a fresh Spy and returns it with a
// client that uses testToken. The server closes with the test.
func MustServe(tb testing.TB) *Env {
	tb.Helper()
	spy := &Spy{}
	logs := &syncBuffer{}
	cfg := custoshttp.Config{
		Services: custoshttp.Services{Keys: spy, Secrets: spy, Devices: spy, Policies: spy, Sessions: spy, Audit: spy,
			Providers: spy, Budgets: spy, Privacy: spy, Usage: spy,
			Trackers: spy, Launch: spy, Tasks: spy},
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: "v0.0.0-test",
	}
	srv := httptest.NewServer(custoshttp.NewHandler(cfg))
	tb.Cleanup(srv.Close)
	return &Env{Spy: spy, Logs: logs, Config: cfg, Server: srv, Client: MustClient(tb, srv.URL, custoshttp.ClientOptions{Token: testToken})}
}

// MustClient returns a client of url or fails the test.
func MustClient(tb testing.TB, url string, opts custoshttp.ClientOptions) *custoshttp.Client {
	tb.Helper()
	c, err := custoshttp.NewClient(url, opts)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	return c
}

// Response is a raw answer of the server.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Err decodes the JSON error shape of the body.
func (r *Response) Err(tb testing.TB) (code, message string) {
	tb.Helper()
	var er struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &er); err != nil {
		tb.Fatalf("error body is not JSON: %v: %q", err, r.Body)
	}
	return er.Error.Code, er.Error.Message
}

// Request is a raw request for Env.Do.
type Request struct {
	Method, Path string
	Body         string
	ContentType  string // "" means application/json when Body is set; "-" means none
	Token        string // "" means testToken; "-" means no Authorization header
	Header       map[string]string
}

// Do sends a raw request to the server.
func (e *Env) Do(tb testing.TB, req Request) *Response {
	tb.Helper()
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	r, err := http.NewRequest(req.Method, e.Server.URL+req.Path, body)
	if err != nil {
		tb.Fatal(err)
	}
	switch {
	case req.ContentType == "-":
	case req.ContentType != "":
		r.Header.Set("Content-Type", req.ContentType)
	case req.Body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	switch req.Token {
	case "-":
	case "":
		r.Header.Set("Authorization", "Bearer "+testToken)
	default:
		r.Header.Set("Authorization", req.Token)
	}
	for k, v := range req.Header {
		r.Header.Set(k, v)
	}
	resp, err := e.Server.Client().Do(r)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// AssertNoCalls fails the test if any service method was called.
func (e *Env) AssertNoCalls(tb testing.TB) {
	tb.Helper()
	if calls := e.Spy.Calls(); len(calls) != 0 {
		tb.Fatalf("service called: %v", calls)
	}
}

// ctx returns a context for client calls.
func ctx(tb testing.TB) context.Context {
	tb.Helper()
	return tb.Context()
}

// clientOpts returns client options with token and a full identity.
func clientOpts(token string) custoshttp.ClientOptions {
	return custoshttp.ClientOptions{Token: token, Agent: "claude-code", Hostname: "build-01", MachineUser: "ana",
		Source: custos.SourceCLI, Model: "claude-sonnet-4.5"}
}

// discardLogger returns a logger that drops everything.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Short names for the spy funcs' parameter types.
type (
	ctxT      = context.Context
	durationT = time.Duration
)

// slogJSON returns a JSON logger writing to w at debug level.
func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// readResponse reads and closes resp.
func readResponse(tb testing.TB, resp *http.Response) *Response {
	tb.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
