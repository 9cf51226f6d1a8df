package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/ratelimit"
)

// testTok returns a well-formed token of prefix whose body starts with seed.
func testTok(prefix, seed string) string {
	return prefix + (seed + strings.Repeat("X", 43))[:43]
}

// Credentials and ids of the tasks capability that the spies accept.
var (
	testInstallToken = testTok("cst_ti_", "TESTinstallTOKENneverLOGGED")
	testRequestKey   = testTok("cst_rk_", "TESTrequestKEYneverLOGGED")
	testNextKey      = testTok("cst_rk_", "TESTnextKEYneverLOGGED")
	testLaunchCode   = testTok("cst_lc_", "TESTlaunchCODEneverLOGGED")
	testPermit       = testTok("cst_pm_", "TESTpermitNEVERlogged")
)

const (
	testInstallID = "trk_0123456789abcdef"
	testRunID     = "run_0123456789abcdef"
	testSHA       = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// okTaskSpy makes every tasks method of s succeed, as a service that
// accepts exactly the test credentials would.
func okTaskSpy(s *Spy) {
	install := &custos.TrackerInstall{ID: testInstallID, OrgID: testOrgID, Name: "jira-prod"}
	s.CreateTrackerInstallFn = func(_ ctxT, name string) (*custos.TrackerInstall, string, error) {
		return &custos.TrackerInstall{ID: testInstallID, OrgID: testOrgID, Name: name}, testInstallToken, nil
	}
	s.ListTrackerInstallsFn = func(_ ctxT) ([]*custos.TrackerInstall, error) { return nil, nil }
	s.RevokeTrackerInstallFn = func(_ ctxT, _ string) error { return nil }
	s.StartTrackerSessionFn = func(_ ctxT, tok string) (*custos.RequestKeyGrant, error) {
		if tok != testInstallToken {
			return nil, custos.Errorf(custos.EUNAUTHORIZED, "invalid tracker install token")
		}
		return &custos.RequestKeyGrant{RequestKey: testRequestKey, SessionID: "trs_0123456789abcdef", ExpiresAt: time.Now().Add(custos.RequestKeyTTL)}, nil
	}
	s.SpendRequestKeyFn = func(_ ctxT, tok, key string) (*custos.TrackerCall, error) {
		if tok != testInstallToken || key != testRequestKey {
			return nil, custos.Errorf(custos.EUNAUTHORIZED, "request key refused: used, expired or unknown")
		}
		return &custos.TrackerCall{Install: install, Spent: &custos.RequestKey{ID: "rqk_0123456789abcdef"},
			Next: &custos.RequestKeyGrant{RequestKey: testNextKey, SessionID: "trs_0123456789abcdef"}}, nil
	}
	s.CreateLaunchLinkFn = func(_ ctxT, _ *custos.TrackerCall, in custos.LaunchLinkInput) (*custos.LaunchLink, error) {
		return &custos.LaunchLink{Code: testLaunchCode, Link: "custos://launch?code=" + testLaunchCode, ProjectID: in.ProjectID, TaskID: in.TaskID}, nil
	}
	s.ExchangeLaunchCodeFn = func(_ ctxT, in custos.LaunchExchangeInput) (*custos.PermitGrant, error) {
		if in.Code != testLaunchCode {
			return nil, custos.Errorf(custos.EUNAUTHORIZED, "launch code refused")
		}
		return &custos.PermitGrant{Permit: testPermit, ID: "pmt_0123456789abcdef", ProjectID: in.ProjectID, TaskID: in.TaskID}, nil
	}
	permit := func(tok string) error {
		if tok != testPermit {
			return custos.Errorf(custos.EUNAUTHORIZED, "permit refused")
		}
		return nil
	}
	s.CheckPermitFn = func(_ ctxT, tok string) (*custos.Permit, error) {
		if err := permit(tok); err != nil {
			return nil, err
		}
		return &custos.Permit{ID: "pmt_0123456789abcdef", OrgID: testOrgID, ProjectID: "PROJ", TaskID: "PROJ-42"}, nil
	}
	s.CheckScopeFn = func(c ctxT, tok, project, task string) (*custos.Permit, error) {
		p, err := s.CheckPermitFn(c, tok)
		if err != nil {
			return nil, err
		}
		if (project != "" && project != p.ProjectID) || (task != "" && task != p.TaskID) {
			return nil, custos.Errorf(custos.EFORBIDDEN, "the permit is for another project or task")
		}
		return p, nil
	}
	s.CreateRunFn = func(_ ctxT, tok, task string) (*custos.Run, error) {
		return &custos.Run{ID: testRunID, TaskID: task}, permit(tok)
	}
	s.PutArtifactFn = func(_ ctxT, tok, task, run, name, kind string, body io.Reader) (*custos.Artifact, error) {
		if err := permit(tok); err != nil {
			return nil, err
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		return &custos.Artifact{ID: "art_0123456789abcdef", TaskID: task, RunID: run, Name: name, Kind: kind, Size: int64(len(b))}, nil
	}
	s.GetArtifactFn = func(_ ctxT, tok, task, run, name string) (*custos.Artifact, []byte, error) {
		if err := permit(tok); err != nil {
			return nil, nil, err
		}
		return &custos.Artifact{ID: "art_0123456789abcdef", TaskID: task, RunID: run, Name: name, Kind: "source"}, []byte("package main\n"), nil
	}
	s.ListArtifactsFn = func(_ ctxT, tok, _, _ string) ([]*custos.Artifact, error) { return nil, permit(tok) }
	s.CompleteRunFn = func(_ ctxT, tok, _, run string) (*custos.Run, error) { return &custos.Run{ID: run}, permit(tok) }
	s.CompleteTaskFn = func(_ ctxT, tok, task string) (*custos.Task, error) { return &custos.Task{ID: task}, permit(tok) }
	s.PutIndexFilesFn = func(_ ctxT, tok, _, _ string, files []custos.IndexFile) (int, error) { return len(files), permit(tok) }
	s.StaleIndexFilesFn = func(_ ctxT, tok, _, _ string, _ []custos.IndexRef) ([]string, error) { return nil, permit(tok) }
}

// mustTaskServe is MustServe with okSpy and a client without an API key.
func mustTaskServe(t *testing.T) (*Env, *custoshttp.Client) {
	t.Helper()
	env := MustServe(t)
	okSpy(env)
	return env, MustClient(t, env.Server.URL, custoshttp.ClientOptions{})
}

// Ensure the tracker app's flow works through the client: request key,
// launch link with the next key from the answer's header.
func TestTaskRoutes_TrackerFlow(t *testing.T) {
	env, cl := mustTaskServe(t)
	g, err := cl.StartTrackerSession(ctx(t), testInstallToken)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.RequestKey, testRequestKey; got != want {
		t.Fatalf("request key=%q, want %q", got, want)
	}
	link, next, err := cl.CreateLaunchLink(ctx(t), testInstallToken, g.RequestKey, custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: "PROJ-42", TTL: custos.Duration(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := next, testNextKey; got != want {
		t.Fatalf("next key=%q, want %q", got, want)
	}
	if got, want := link.Code, testLaunchCode; got != want {
		t.Fatalf("code=%q, want %q", got, want)
	}
	if got, want := strings.Join(env.Spy.Calls(), ","), "StartTrackerSession,SpendRequestKey,CreateLaunchLink"; got != want {
		t.Fatalf("calls=%s, want %s", got, want)
	}

	// Ensure the request-key answer also carries the key in the header.
	resp := env.Do(t, Request{Method: "POST", Path: "/v1/tracker/request-key", Token: "Bearer " + testInstallToken})
	if got, want := resp.Header.Get(custos.HeaderNextRequestKey), testRequestKey; got != want {
		t.Fatalf("%s=%q, want %q", custos.HeaderNextRequestKey, got, want)
	}
}

// Ensure a launch link refused for its body (bad pair, bad ttl) still
// answers the next key of the chain once the key is spent, and a refused
// key answers none.
func TestTaskRoutes_NextKeyOnRefusal(t *testing.T) {
	for _, body := range []string{
		`{"projectId":"PROJ","taskId":"../etc"}`,
		`{"projectId":"","taskId":"T"}`,
		`{"projectId":"P","taskId":"T","ttl":"1h"}`,
		`{"projectId":"P","taskId":"T","ttl":"15d"}`,
		`{"projectId":"P","taskId":"T","ttl":"forever"}`,
		`{"projectId":"P","taskId":"T","extra":1}`,
	} {
		t.Run(body, func(t *testing.T) {
			env, cl := mustTaskServe(t)
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/security/launch-link", Body: body, Token: "Bearer " + testInstallToken,
				Header: map[string]string{custos.HeaderRequestKey: testRequestKey}})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
			}
			if got, want := resp.Header.Get(custos.HeaderNextRequestKey), testNextKey; got != want {
				t.Fatalf("next key=%q, want %q", got, want)
			}
			// The client hands the next key back with the error.
			var in custos.LaunchLinkInput
			dec := json.NewDecoder(strings.NewReader(body))
			dec.DisallowUnknownFields()
			if dec.Decode(&in) != nil {
				return // not a body the client can send
			}
			_, next, err := cl.CreateLaunchLink(ctx(t), testInstallToken, testRequestKey, in)
			if custos.ErrorCode(err) != custos.EINVALID || next != testNextKey {
				t.Fatalf("client: next=%q err=%v", next, err)
			}
		})
	}

	// Ensure a replayed (refused) key gets 401, no next key, and counts as
	// a failed authentication.
	env, cl := mustTaskServe(t)
	_, next, err := cl.CreateLaunchLink(ctx(t), testInstallToken, testNextKey, custos.LaunchLinkInput{ProjectID: "P", TaskID: "T"})
	if custos.ErrorCode(err) != custos.EUNAUTHORIZED || next != "" {
		t.Fatalf("replayed key: next=%q err=%v", next, err)
	}
	if got := env.Spy.Calls(); len(got) != 1 || got[0] != "SpendRequestKey" {
		t.Fatalf("calls=%v", got)
	}
	if !strings.Contains(env.Logs.String(), "authentication failed") {
		t.Fatal("a refused request key is not logged as a failed authentication")
	}
}

// Ensure the request key header is required, single and well formed, and
// checked before anything is spent.
func TestTaskRoutes_RequestKeyHeader(t *testing.T) {
	for name, hdr := range map[string][]string{
		"Missing":  nil,
		"Twice":    {testRequestKey, testRequestKey},
		"Empty":    {""},
		"Permit":   {testPermit},
		"Short":    {testRequestKey[:20]},
		"Garbage":  {"cst_rk_" + strings.Repeat("!", 43)},
		"Injected": {testRequestKey + "\tx"},
	} {
		t.Run(name, func(t *testing.T) {
			env := MustServe(t)
			okSpy(env)
			r, _ := http.NewRequest("POST", env.Server.URL+"/v1/security/launch-link", strings.NewReader(`{"projectId":"P","taskId":"T"}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+testInstallToken)
			for _, v := range hdr {
				r.Header.Add(custos.HeaderRequestKey, v)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			res := readResponse(t, resp)
			assertRejected(t, env, res, http.StatusUnauthorized, custos.EUNAUTHORIZED)
			if res.Header.Get(custos.HeaderNextRequestKey) != "" {
				t.Fatal("a next key without a spent one")
			}
		})
	}
}

// Ensure the exchange refuses a malformed code before the service runs and
// counts it, and that a code the service refuses counts too.
func TestTaskRoutes_ExchangeBadCode(t *testing.T) {
	for _, code := range []string{"", "cst_lc_", testPermit, testLaunchCode + "x", "cst_lc_" + strings.Repeat("é", 21) + "X", strings.Repeat("A", 50)} {
		t.Run(code, func(t *testing.T) {
			env := MustServe(t)
			okSpy(env)
			b, _ := json.Marshal(custos.LaunchExchangeInput{Code: code, ProjectID: "PROJ", TaskID: "PROJ-42"})
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/security/launch-exchange", Body: string(b), Token: "-"})
			assertRejected(t, env, resp, http.StatusUnauthorized, custos.EUNAUTHORIZED)
		})
	}
	for _, body := range []string{
		`{"code":"` + testLaunchCode + `","projectId":"PROJ"}`,
		`{"code":"` + testLaunchCode + `","projectId":"P R","taskId":"T"}`,
		`{"code":"` + testLaunchCode + `","projectId":"P","taskId":"` + strings.Repeat("t", 129) + `"}`,
	} {
		env := MustServe(t)
		okSpy(env)
		resp := env.Do(t, Request{Method: "POST", Path: "/v1/security/launch-exchange", Body: body, Token: "-"})
		assertRejected(t, env, resp, http.StatusBadRequest, custos.EINVALID)
	}
	env, cl := mustTaskServe(t)
	_, err := cl.ExchangeLaunchCode(ctx(t), custos.LaunchExchangeInput{Code: testTok("cst_lc_", "other"), ProjectID: "P", TaskID: "T"})
	if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
		t.Fatalf("err=%v", err)
	}
	if !strings.Contains(env.Logs.String(), "authentication failed") {
		t.Fatal("a refused code is not logged as a failed authentication")
	}
}

// Ensure failed authentications on the tracker, exchange and permit routes
// count against the client IP: past the limit even a valid credential is
// refused with 429 before it is looked at.
func TestTaskRoutes_AuthFailureLimit(t *testing.T) {
	for _, rt := range []struct{ path, auth, body string }{
		{"/v1/tracker/request-key", "Bearer " + testTok("cst_ti_", "wrong"), ""},
		{"/v1/security/launch-exchange", "-", `{"code":"` + testTok("cst_lc_", "wrong") + `","projectId":"P","taskId":"T"}`},
		{"/v1/tasks/T/runs", "Bearer " + testTok("cst_pm_", "wrong"), ""},
		{"/v1/tasks/T/runs", "Bearer nonsense", ""},
	} {
		t.Run(rt.path+"/"+rt.auth, func(t *testing.T) {
			env := MustServeLimited(t, ratelimit.Config{AuthFailuresPerIP: ratelimit.Limit{N: 3, Window: time.Hour}}).Env
			for i := 0; i < 3; i++ {
				resp := env.Do(t, Request{Method: "POST", Path: rt.path, Token: rt.auth, Body: rt.body})
				if got, want := resp.Status, http.StatusUnauthorized; got != want {
					t.Fatalf("try %d: status=%d, want %d: %s", i, got, want, resp.Body)
				}
			}
			env.Spy.Reset()
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/tasks/PROJ-42/runs", Token: "Bearer " + testPermit})
			assertRejected(t, env, resp, http.StatusTooManyRequests, custos.ERATELIMITED)
		})
	}
	// Ensure the per-IP limit applies to the credential routes.
	env := MustServeLimited(t, ratelimit.Config{PerIP: ratelimit.Limit{N: 2, Window: time.Hour}}).Env
	for i := 0; i < 2; i++ {
		env.Do(t, Request{Method: "POST", Path: "/v1/tasks/PROJ-42/runs", Token: "Bearer " + testPermit})
	}
	env.Spy.Reset()
	resp := env.Do(t, Request{Method: "GET", Path: "/launch", Token: "-"})
	if resp.Status != 200 {
		t.Fatalf("the launch page is limited with the API: %d", resp.Status)
	}
	resp = env.Do(t, Request{Method: "POST", Path: "/v1/security/launch-exchange", Token: "-", Body: `{"code":"` + testLaunchCode + `","projectId":"P","taskId":"T"}`})
	assertRejected(t, env, resp, http.StatusTooManyRequests, custos.ERATELIMITED)
}

// Ensure a permit refused by the service is a 401 that counts, and a scope
// violation (403) is passed through as it is.
func TestTaskRoutes_PermitErrors(t *testing.T) {
	env, cl := mustTaskServe(t)
	if _, err := cl.CreateRun(ctx(t), testTok("cst_pm_", "expired"), "PROJ-42"); custos.ErrorCode(err) != custos.EUNAUTHORIZED {
		t.Fatalf("err=%v", err)
	}
	if !strings.Contains(env.Logs.String(), "authentication failed") {
		t.Fatal("a refused permit is not logged as a failed authentication")
	}
	env.Spy.CompleteTaskFn = func(_ ctxT, _, _ string) (*custos.Task, error) {
		return nil, custos.Errorf(custos.EFORBIDDEN, "this permit is for another task")
	}
	if _, err := cl.CompleteTask(ctx(t), testPermit, "OTHER-1"); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("err=%v", err)
	}
	env.Spy.PutArtifactFn = func(_ ctxT, _, _, _, _, _ string, body io.Reader) (*custos.Artifact, error) {
		_, _ = io.CopyN(io.Discard, body, 10)
		return nil, custos.Errorf(custos.ETOOLARGE, "artifact larger than 10 bytes")
	}
	_, err := cl.PutArtifact(ctx(t), testPermit, "PROJ-42", testRunID, "big.bin", "", strings.NewReader(strings.Repeat("x", 1<<20)))
	if custos.ErrorCode(err) != custos.ETOOLARGE {
		t.Fatalf("err=%v", err)
	}
}

// Ensure ?projectId= on a task route must name the permit's project:
// another project is 403 and the route's method never runs.
func TestTaskRoutes_ProjectQuery(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	resp := env.Do(t, Request{Method: "POST", Path: "/v1/tasks/PROJ-42/runs?projectId=OTHER", Token: "Bearer " + testPermit})
	if got, want := resp.Status, http.StatusForbidden; got != want {
		t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
	}
	if got := env.Spy.Calls(); len(got) != 1 || got[0] != "CheckScope" {
		t.Fatalf("calls=%v, want only CheckScope", got)
	}
	env.Spy.Reset()
	resp = env.Do(t, Request{Method: "POST", Path: "/v1/tasks/PROJ-42/runs?projectId=PROJ", Token: "Bearer " + testPermit})
	if got, want := resp.Status, http.StatusCreated; got != want {
		t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
	}
}

// Ensure artifacts go up as raw bytes with their kind and come back as a
// download no browser renders, byte for byte, through the client.
func TestTaskRoutes_Artifacts(t *testing.T) {
	env, cl := mustTaskServe(t)
	var got struct {
		name, kind string
		body       []byte
	}
	stored := map[string][]byte{}
	var mu sync.Mutex
	env.Spy.PutArtifactFn = func(_ ctxT, _, task, run, name, kind string, body io.Reader) (*custos.Artifact, error) {
		b, _ := io.ReadAll(body)
		mu.Lock()
		defer mu.Unlock()
		got.name, got.kind, got.body = name, kind, b
		stored[name] = b
		return &custos.Artifact{ID: "art_0123456789abcdef", TaskID: task, RunID: run, Name: name, Kind: kind, Size: int64(len(b))}, nil
	}
	env.Spy.GetArtifactFn = func(_ ctxT, _, task, run, name string) (*custos.Artifact, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		b, ok := stored[name]
		if !ok {
			return nil, nil, custos.Errorf(custos.ENOTFOUND, "no artifact %q", name)
		}
		return &custos.Artifact{ID: "art_0123456789abcdef", TaskID: task, RunID: run, Name: name, Kind: "diff"}, append([]byte(nil), b...), nil
	}
	body := []byte("<script>alert(1)</script>\x00\xff binary")
	const name = "src/dir with space/ünï code/a+b#c?.html"
	a, err := cl.PutArtifact(ctx(t), testPermit, "PROJ-42", testRunID, name, "diff", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != name || got.name != name || got.kind != "diff" || !bytes.Equal(got.body, body) {
		t.Fatalf("stored %q kind %q body %q", got.name, got.kind, got.body)
	}
	a2, b, err := cl.GetArtifact(ctx(t), testPermit, "PROJ-42", testRunID, name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, body) || a2.Kind != "diff" || a2.Size != int64(len(body)) {
		t.Fatalf("got %+v %q", a2, b)
	}

	resp := env.Do(t, Request{Method: "GET", Path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/" + (&url.URL{Path: name}).EscapedPath(), Token: "Bearer " + testPermit})
	for k, want := range map[string]string{
		"Content-Type":           "application/octet-stream",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || strings.ContainsAny(cd, "\r\n") {
		t.Errorf("Content-Disposition=%q", cd)
	}

	// Ensure a missing artifact is a JSON 404 through the client.
	if _, _, err := cl.GetArtifact(ctx(t), testPermit, "PROJ-42", testRunID, "nope"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("err=%v", err)
	}
	// Ensure a kind outside the list is refused before the service runs.
	env.Spy.Reset()
	resp = env.Do(t, Request{Method: "PUT", Path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/x", Body: "x", ContentType: "application/octet-stream",
		Token: "Bearer " + testPermit, Header: map[string]string{custos.HeaderArtifactKind: "binary"}})
	assertRejected(t, env, resp, http.StatusBadRequest, custos.EINVALID)
	// Ensure an artifact with no Content-Type is taken as bytes.
	resp = env.Do(t, Request{Method: "PUT", Path: "/v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/x", Body: "x", ContentType: "-", Token: "Bearer " + testPermit})
	if got, want := resp.Status, http.StatusCreated; got != want {
		t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
	}
}

// Ensure the index takes path, hash and summary only: a body with file
// content is refused with a message that says so.
func TestTaskRoutes_IndexRefusesContent(t *testing.T) {
	for _, body := range []string{
		`{"files":[{"path":"a.go","sha256":"` + testSHA + `","summary":"s","content":"package main"}]}`,
		`{"files":[{"path":"a.go","sha256":"` + testSHA + `","summary":"s"}],"content":"x"}`,
		`{"files":[{"path":"a.go","text":"package main"}]}`,
	} {
		env := MustServe(t)
		okSpy(env)
		resp := env.Do(t, Request{Method: "PUT", Path: "/v1/projects/PROJ/indexes/main/files", Body: body, Token: "Bearer " + testPermit})
		assertRejected(t, env, resp, http.StatusBadRequest, custos.EINVALID)
		if _, msg := resp.Err(t); !strings.Contains(msg, "file content is refused") {
			t.Fatalf("message=%q", msg)
		}
	}
	env, cl := mustTaskServe(t)
	n, err := cl.PutIndexFiles(ctx(t), testPermit, "PROJ", "main", []custos.IndexFile{{Path: "a.go", SHA256: testSHA, Summary: "s"}, {Path: "b.go", SHA256: testSHA}})
	if err != nil || n != 2 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	env.Spy.StaleIndexFilesFn = func(_ ctxT, _, _, _ string, refs []custos.IndexRef) ([]string, error) {
		return []string{refs[0].Path}, nil
	}
	stale, err := cl.StaleIndexFiles(ctx(t), testPermit, "PROJ", "main", []custos.IndexRef{{Path: "a.go", SHA256: testSHA}})
	if err != nil || len(stale) != 1 || stale[0] != "a.go" {
		t.Fatalf("stale=%v err=%v", stale, err)
	}
	// Ensure more than MaxIndexFiles entries are refused unseen.
	files := make([]custos.IndexFile, custos.MaxIndexFiles+1)
	for i := range files {
		files[i] = custos.IndexFile{Path: "f", SHA256: testSHA}
	}
	env.Spy.Reset()
	if _, err := cl.PutIndexFiles(ctx(t), testPermit, "PROJ", "main", files); custos.ErrorCode(err) != custos.ETOOLARGE {
		t.Fatalf("err=%v", err)
	}
	env.AssertNoCalls(t)
}

// Ensure the launch page is static, strict and spends nothing: no service
// runs, the answer holds no code even when one is sent, and its script
// only reads the fragment.
func TestLaunchPage(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	resp := env.Do(t, Request{Method: "GET", Path: "/launch", Token: "-"})
	if got, want := resp.Status, http.StatusOK; got != want {
		t.Fatalf("status=%d, want %d", got, want)
	}
	env.AssertNoCalls(t)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type=%q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	page := string(resp.Body)
	if !strings.Contains(page, `src="/launch.js"`) || regexp.MustCompile(`<script>|\son[a-z]+=`).MatchString(page) {
		t.Fatalf("page has inline script or lacks /launch.js:\n%s", page)
	}

	js := env.Do(t, Request{Method: "GET", Path: "/launch.js", Token: "-"})
	if js.Status != 200 || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("launch.js: %d %s", js.Status, js.Header.Get("Content-Type"))
	}
	src := string(js.Body)
	for _, want := range []string{"location.hash", "custos task open", "custos://launch?", "textContent", "history.replaceState"} {
		if !strings.Contains(src, want) {
			t.Errorf("launch.js lacks %q", want)
		}
	}
	for _, bad := range []string{"innerHTML", "fetch(", "XMLHttpRequest", "location.search", "document.write", "eval("} {
		if strings.Contains(src, bad) {
			t.Errorf("launch.js uses %q", bad)
		}
	}
	if css := env.Do(t, Request{Method: "GET", Path: "/launch.css", Token: "-"}); css.Status != 200 {
		t.Fatalf("launch.css: %d", css.Status)
	}

	// Ensure a code sent in the query is refused, not echoed, not spent.
	resp = env.Do(t, Request{Method: "GET", Path: "/launch?code=" + testLaunchCode, Token: "-"})
	assertRejected(t, env, resp, http.StatusBadRequest, custos.EINVALID)
	if strings.Contains(string(resp.Body), testLaunchCode) {
		t.Fatal("the answer echoes the code")
	}
}

// Ensure no credential of the tasks capability reaches the logs, whatever
// the route answers.
func TestTaskRoutes_TokensNotLogged(t *testing.T) {
	env, cl := mustTaskServe(t)
	c := ctx(t)
	_, _ = cl.StartTrackerSession(c, testInstallToken)
	_, _, _ = cl.CreateLaunchLink(c, testInstallToken, testRequestKey, custos.LaunchLinkInput{ProjectID: "P", TaskID: "T"})
	_, _, _ = cl.CreateLaunchLink(c, testInstallToken, testNextKey, custos.LaunchLinkInput{ProjectID: "P", TaskID: "T"})
	_, _ = cl.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: testLaunchCode, ProjectID: "P", TaskID: "T"})
	_, _ = cl.ExchangeLaunchCode(c, custos.LaunchExchangeInput{Code: testTok("cst_lc_", "WRONGcodeNEVERlogged"), ProjectID: "P", TaskID: "T"})
	_, _ = cl.CreateRun(c, testPermit, "T")
	_, _ = cl.CreateRun(c, testTok("cst_pm_", "WRONGpermitNEVERlogged"), "T")
	_, _ = cl.PutArtifact(c, testPermit, "T", testRunID, "a", "", strings.NewReader("x"))
	_, _, _ = cl.GetArtifact(c, testPermit, "T", testRunID, "a")
	env.Do(t, Request{Method: "GET", Path: "/launch?code=" + testLaunchCode, Token: "-"})
	env.Do(t, Request{Method: "POST", Path: "/v1/tasks/T/runs", Token: "Bearer " + testPermit + "x"})
	env.Do(t, Request{Method: "POST", Path: "/v1/tasks/" + testPermit + "/runs", Token: "Bearer " + testPermit})
	logs := env.Logs.String()
	for _, tok := range []string{testInstallToken, testRequestKey, testNextKey, testLaunchCode, testPermit,
		testTok("cst_lc_", "WRONGcodeNEVERlogged"), testTok("cst_pm_", "WRONGpermitNEVERlogged")} {
		body := tok[7:]
		if strings.Contains(logs, body[:20]) && !strings.Contains(logs, "/v1/tasks/"+testPermit) {
			t.Errorf("logs contain a token (%s…)", tok[:7])
		}
	}
	if strings.Contains(logs, testLaunchCode[7:27]) {
		t.Error("logs contain the launch code of a /launch query")
	}
}

// Ensure a server without the tasks services answers 503 on their routes,
// after the per-IP limit and before any credential is looked at.
func TestTaskRoutes_Unconfigured(t *testing.T) {
	spy := &Spy{}
	hs := httptest.NewServer(custoshttp.NewHandler(custoshttp.Config{Services: custoshttp.Services{Keys: spy}, Logger: discardLogger()}))
	t.Cleanup(hs.Close)
	srv := hs.URL
	for _, p := range []struct{ method, path string }{
		{"POST", "/v1/tracker/installs"}, {"POST", "/v1/tracker/request-key"}, {"POST", "/v1/security/launch-link"},
		{"POST", "/v1/security/launch-exchange"}, {"POST", "/v1/tasks/T/runs"}, {"PUT", "/v1/projects/P/indexes/I/files"},
	} {
		req, _ := http.NewRequestWithContext(context.Background(), p.method, srv+p.path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res := readResponse(t, resp)
		if res.Status != http.StatusServiceUnavailable {
			t.Errorf("%s %s: status=%d, want 503", p.method, p.path, res.Status)
		}
	}
}

// Ensure a malformed artifact body (a broken chunk) is a 400, not an
// internal error.
func TestTaskRoutes_BrokenBody(t *testing.T) {
	env := MustServe(t)
	okSpy(env)
	conn, err := net.Dial("tcp", env.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "PUT /v1/tasks/PROJ-42/runs/" + testRunID + "/artifacts/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testPermit +
		"\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := readResponse(t, resp)
	if code, _ := res.Err(t); res.Status != http.StatusBadRequest || code != custos.EINVALID {
		t.Fatalf("status=%d code=%s: %s", res.Status, code, res.Body)
	}
}
