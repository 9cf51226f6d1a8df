package http

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// Answer headers of GET …/artifacts/{name}: what the bytes are.
const (
	HeaderArtifactSHA256 = "X-Custos-Artifact-Sha256" // hex SHA-256 of the bytes
	HeaderArtifactID     = "X-Custos-Artifact-Id"
	HeaderArtifactRun    = "X-Custos-Artifact-Run"
	HeaderArtifactTime   = "X-Custos-Artifact-Created" // RFC 3339
	HeaderArtifactExpiry = "X-Custos-Artifact-Expires" // RFC 3339; absent while the task is open
)

// MaxIndexBodyBytes is the largest body of the index routes: up to
// custos.MaxIndexFiles entries of path, hash and summary.
const MaxIndexBodyBytes = 8 << 20

// maxArtifactResponseBytes bounds an artifact the client reads.
const maxArtifactResponseBytes = 1 << 30

// registerTaskRoutes adds the routes of the tasks capability: tracker
// installs (API key), the tracker app's request keys and launch links
// (install token), the launch exchange (the code is the credential), the
// permit routes (permit) and the launch page (no credential).
func (h *handler) registerTaskRoutes() {
	tr, la, ta := h.svc.Trackers != nil, h.svc.Launch != nil, h.svc.Tasks != nil
	h.handleV1("POST /v1/tracker/installs", tr, "tracker", h.handleCreateTrackerInstall)
	h.handleV1("GET /v1/tracker/installs", tr, "tracker", h.handleListTrackerInstalls)
	h.handleV1("DELETE /v1/tracker/installs/{id}", tr, "tracker", h.handleRevokeTrackerInstall)

	h.handleCredential("POST /v1/tracker/request-key", la, "launch", h.handleRequestKey)
	h.handleCredential("POST /v1/security/launch-link", la, "launch", h.handleLaunchLink)
	h.handleCredential("POST /v1/security/launch-exchange", la, "launch", h.handleLaunchExchange)

	h.handlePermit("POST /v1/tasks/{taskId}/runs", ta, h.handleCreateRun)
	h.handlePermit("GET /v1/tasks/{taskId}/runs/{runId}/artifacts", ta, h.handleListArtifacts)
	h.handlePermit("PUT /v1/tasks/{taskId}/runs/{runId}/artifacts/{name...}", ta, h.handlePutArtifact)
	h.handlePermit("GET /v1/tasks/{taskId}/runs/{runId}/artifacts/{name...}", ta, h.handleGetArtifact)
	h.handlePermit("POST /v1/tasks/{taskId}/runs/{runId}/complete", ta, h.handleCompleteRun)
	h.handlePermit("POST /v1/tasks/{taskId}/complete", ta, h.handleCompleteTask)
	h.handlePermit("PUT /v1/projects/{projectId}/indexes/{indexId}/files", ta, h.handlePutIndexFiles)
	h.handlePermit("POST /v1/projects/{projectId}/indexes/{indexId}/stale", ta, h.handleStaleIndexFiles)

	h.handle("GET "+custos.LaunchPath, h.handleLaunchPage)
	h.handle("GET "+custos.LaunchPath+".js", h.handleLaunchAsset(launchJS, "text/javascript; charset=utf-8"))
	h.handle("GET "+custos.LaunchPath+".css", h.handleLaunchAsset(launchCSS, "text/css; charset=utf-8"))
}

// handleCredential registers a route whose credential is not an API key
// (an install token, a launch code, a permit): the handler checks it. In
// order: the per-IP rate limit, whether service name is configured, the
// block on IPs with too many failed authentications. Handlers report a
// rejected credential with authFailed, so it counts against the IP.
func (h *handler) handleCredential(pattern string, present bool, name string, fn handlerFunc) {
	h.handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
		if err := h.limitIP(w, r); err != nil {
			return err
		}
		if !present {
			return custos.Errorf(custos.EUNAVAILABLE, "the %s service is not configured on this server", name)
		}
		if err := h.limitAuthFailures(w, r); err != nil {
			return err
		}
		return fn(w, r.WithContext(custos.NewRequestContext(r.Context())))
	})
}

// permitHandler is a permit route's handler: the permit token is checked
// for shape only; the service checks the rest.
type permitHandler func(w http.ResponseWriter, r *http.Request, permit string) error

// handlePermit registers a route authenticated by a task permit
// (Authorization: Bearer cst_pm_…). A permit the service refuses as
// unauthorized counts as a failed authentication.
func (h *handler) handlePermit(pattern string, present bool, fn permitHandler) {
	h.handleCredential(pattern, present, "tasks", func(w http.ResponseWriter, r *http.Request) error {
		permit, err := h.credential(w, r, token.PrefixPermit, "a task permit (cst_pm_…)")
		if err != nil {
			return err
		}
		if r, err = withCaller(r); err != nil {
			return err
		}
		return h.countAuth(r, fn(w, r, permit))
	})
}

// credential returns the bearer token of r if it has the shape of prefix's
// tokens (what names them for messages); anything else is refused as
// unauthorized and counted. A well-formed token is then counted against
// the per-key limit under its hash, before it is looked up, like an API key.
func (h *handler) credential(w http.ResponseWriter, r *http.Request, prefix, what string) (string, error) {
	tok, err := bearerToken(r)
	if err != nil {
		reason := "malformed Authorization header"
		switch n := len(r.Header.Values("Authorization")); {
		case n == 0:
			reason = "missing bearer token"
		case n > 1:
			reason = "more than one Authorization header"
		}
		h.authFailed(r, reason)
		return "", custos.Errorf(custos.EUNAUTHORIZED, "%s: send Authorization: Bearer <%s>", reason, what)
	}
	if err := token.Check(tok, prefix); err != nil {
		h.authFailed(r, custos.ErrorMessage(err))
		return "", err
	}
	if h.limiter != nil {
		if retry, ok := h.limiter.AllowKey(r.Context(), "cred_"+token.Hash(tok)[:32]); !ok {
			return "", h.rateLimit(w, "key", retry, "too many requests for this credential")
		}
	}
	return tok, nil
}

// withCaller returns r with a *custos.Caller without a key in its
// context: the identity headers and the client IP, which the services
// write into their audit records.
func withCaller(r *http.Request) (*http.Request, error) {
	c, err := callerFromHeaders(r)
	if err != nil {
		return nil, err
	}
	return r.WithContext(custos.NewContextWithCaller(r.Context(), c)), nil
}

// countAuth counts err against the client IP if it refuses a credential,
// and returns it.
func (h *handler) countAuth(r *http.Request, err error) error {
	if custos.ErrorCode(err) == custos.EUNAUTHORIZED {
		h.authFailed(r, custos.ErrorMessage(err))
	}
	return err
}

// ---- tracker installs (API key, owner or admin) ----

// trackerInstallRequest is the body of POST /v1/tracker/installs.
type trackerInstallRequest struct {
	Name string `json:"name"`
}

// trackerInstallResponse is a new install and its token, shown once.
type trackerInstallResponse struct {
	Install *custos.TrackerInstall `json:"install"`
	Token   string                 `json:"token"`
}

type trackerInstallsResponse struct {
	Installs []*custos.TrackerInstall `json:"installs"`
}

// handleCreateTrackerInstall answers POST /v1/tracker/installs.
func (h *handler) handleCreateTrackerInstall(w http.ResponseWriter, r *http.Request) error {
	var in trackerInstallRequest
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if err := custos.ValidateLabel("tracker install name", in.Name); err != nil {
		return err
	}
	inst, tok, err := h.svc.Trackers.CreateTrackerInstall(r.Context(), in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &trackerInstallResponse{Install: inst, Token: tok})
	return nil
}

// handleListTrackerInstalls answers GET /v1/tracker/installs.
func (h *handler) handleListTrackerInstalls(w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	list, err := h.svc.Trackers.ListTrackerInstalls(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*custos.TrackerInstall{}
	}
	writeJSON(w, r, http.StatusOK, &trackerInstallsResponse{Installs: list})
	return nil
}

// handleRevokeTrackerInstall answers DELETE /v1/tracker/installs/{id}.
func (h *handler) handleRevokeTrackerInstall(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := custos.ValidateID(custos.PrefixTrackerInstall, id); err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := h.svc.Trackers.RevokeTrackerInstall(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- the tracker app (install token, request keys) ----

// handleRequestKey answers POST /v1/tracker/request-key: a new chain of
// request keys for the install token, its first key in the body and in
// X-Custos-Next-Request-Key.
func (h *handler) handleRequestKey(w http.ResponseWriter, r *http.Request) error {
	install, err := h.credential(w, r, token.PrefixTrackerInstall, "a tracker install token (cst_ti_…)")
	if err != nil {
		return err
	}
	if r, err = withCaller(r); err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	g, err := h.svc.Launch.StartTrackerSession(r.Context(), install)
	if err != nil {
		return h.countAuth(r, err)
	}
	w.Header().Set(custos.HeaderNextRequestKey, g.RequestKey)
	writeJSON(w, r, http.StatusCreated, g)
	return nil
}

// requestKey returns the one X-Custos-Request-Key of r if it has the shape
// of a request key; anything else is refused as unauthorized and counted.
func (h *handler) requestKey(r *http.Request) (string, error) {
	vals := r.Header.Values(custos.HeaderRequestKey)
	var err error
	switch {
	case len(vals) == 0:
		err = custos.Errorf(custos.EUNAUTHORIZED, "missing %s: every tracker call spends a request key (get the first from POST /v1/tracker/request-key, the next from %s)", custos.HeaderRequestKey, custos.HeaderNextRequestKey)
	case len(vals) > 1:
		err = custos.Errorf(custos.EUNAUTHORIZED, "header %s given more than once", custos.HeaderRequestKey)
	default:
		err = token.Check(strings.TrimSpace(vals[0]), token.PrefixRequestKey)
	}
	if err != nil {
		h.authFailed(r, custos.ErrorMessage(err))
		return "", err
	}
	return strings.TrimSpace(vals[0]), nil
}

// trackerCall authenticates a tracker call: the install token and its
// request key, which it spends. Once spent, the next key of the chain is
// set in X-Custos-Next-Request-Key, whatever the answer, so the chain
// stays usable when the call itself is then refused.
func (h *handler) trackerCall(w http.ResponseWriter, r *http.Request) (*http.Request, *custos.TrackerCall, error) {
	install, err := h.credential(w, r, token.PrefixTrackerInstall, "a tracker install token (cst_ti_…)")
	if err != nil {
		return nil, nil, err
	}
	key, err := h.requestKey(r)
	if err != nil {
		return nil, nil, err
	}
	if r, err = withCaller(r); err != nil {
		return nil, nil, err
	}
	call, err := h.svc.Launch.SpendRequestKey(r.Context(), install, key)
	if err != nil {
		return nil, nil, h.countAuth(r, err)
	}
	if call == nil || call.Next == nil || call.Install == nil {
		return nil, nil, errors.New("launch service returned no tracker call")
	}
	w.Header().Set(custos.HeaderNextRequestKey, call.Next.RequestKey)
	NoteKey(r, call.Install.ID)
	return r, call, nil
}

// handleLaunchLink answers POST /v1/security/launch-link.
func (h *handler) handleLaunchLink(w http.ResponseWriter, r *http.Request) error {
	r, call, err := h.trackerCall(w, r)
	if err != nil {
		return err
	}
	var in custos.LaunchLinkInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if err := validatePair(in.ProjectID, in.TaskID); err != nil {
		return err
	}
	if ttl := time.Duration(in.TTL); ttl != 0 && (ttl < custos.MinLaunchTTL || ttl > custos.MaxLaunchTTL) {
		return invalidf("invalid ttl: a launch link lives from 1d to 14d (default 7d)")
	}
	link, err := h.svc.Launch.CreateLaunchLink(r.Context(), call, in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, link)
	return nil
}

// validatePair checks a projectId and a taskId of a body.
func validatePair(project, task string) error {
	if err := custos.ValidateRef("projectId", project); err != nil {
		return err
	}
	return custos.ValidateRef("taskId", task)
}

// handleLaunchExchange answers POST /v1/security/launch-exchange: the code
// in the body is the credential.
func (h *handler) handleLaunchExchange(w http.ResponseWriter, r *http.Request) error {
	var in custos.LaunchExchangeInput
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if err := token.Check(in.Code, token.PrefixLaunchCode); err != nil {
		h.authFailed(r, custos.ErrorMessage(err))
		return err
	}
	if err := validatePair(in.ProjectID, in.TaskID); err != nil {
		return err
	}
	r, err := withCaller(r)
	if err != nil {
		return err
	}
	g, err := h.svc.Launch.ExchangeLaunchCode(r.Context(), in)
	if code := custos.ErrorCode(err); code == custos.EUNAUTHORIZED || code == custos.EFORBIDDEN {
		h.authFailed(r, custos.ErrorMessage(err))
		return err
	} else if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, g)
	return nil
}

// ---- the permit routes ----

type runResponse struct {
	Run *custos.Run `json:"run"`
}

type taskResponse struct {
	Task *custos.Task `json:"task"`
}

type artifactResponse struct {
	Artifact *custos.Artifact `json:"artifact"`
}

type artifactsResponse struct {
	Artifacts []*custos.Artifact `json:"artifacts"`
}

// taskPath reads and validates the {taskId} (and, with run, {runId}) path
// values, and the optional projectId query parameter, which must name the
// permit's project.
func (h *handler) taskPath(r *http.Request, permit string, run bool) (taskID, runID string, err error) {
	taskID = r.PathValue("taskId")
	if err := custos.ValidateRef("taskId", taskID); err != nil {
		return "", "", err
	}
	if run {
		runID = r.PathValue("runId")
		if err := custos.ValidateID(custos.PrefixRun, runID); err != nil {
			return "", "", err
		}
	}
	q := r.URL.Query()
	if err := allowQuery(q, []string{"projectId"}); err != nil {
		return "", "", err
	}
	if _, ok := q["projectId"]; ok {
		project := q.Get("projectId")
		if err := custos.ValidateRef("projectId", project); err != nil {
			return "", "", err
		}
		// The service audits a permit used for another project.
		if _, err := h.svc.Tasks.CheckScope(r.Context(), permit, project, taskID); err != nil {
			return "", "", err
		}
	}
	return taskID, runID, nil
}

// handleCreateRun answers POST /v1/tasks/{taskId}/runs.
func (h *handler) handleCreateRun(w http.ResponseWriter, r *http.Request, permit string) error {
	taskID, _, err := h.taskPath(r, permit, false)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	run, err := h.svc.Tasks.CreateRun(r.Context(), permit, taskID)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &runResponse{Run: run})
	return nil
}

// artifactName reads and validates the {name...} path value.
func artifactName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := custos.ValidateArtifactName(name); err != nil {
		return "", err
	}
	return name, nil
}

// handlePutArtifact answers PUT /v1/tasks/{taskId}/runs/{runId}/artifacts/{name...}:
// the body is the artifact's bytes, its limit the service's.
func (h *handler) handlePutArtifact(w http.ResponseWriter, r *http.Request, permit string) error {
	taskID, runID, err := h.taskPath(r, permit, true)
	if err != nil {
		return err
	}
	name, err := artifactName(r)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/octet-stream" {
			return &statusError{
				status: http.StatusUnsupportedMediaType,
				err:    custos.Errorf(custos.EINVALID, "Content-Type must be application/octet-stream: an artifact is raw bytes"),
			}
		}
	}
	kind, err := oneHeader(r, custos.HeaderArtifactKind)
	if err != nil {
		return err
	}
	if kind != "" && !slices.Contains(custos.ArtifactKinds, kind) {
		return invalidf("invalid %s %q: want %s", custos.HeaderArtifactKind, clip(kind, 16), strings.Join(custos.ArtifactKinds, ", "))
	}
	body := io.Reader(http.NoBody)
	if r.Body != nil {
		body = &requestBody{r.Body}
	}
	a, err := h.svc.Tasks.PutArtifact(r.Context(), permit, taskID, runID, name, kind, body)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, &artifactResponse{Artifact: a})
	return nil
}

// handleGetArtifact answers GET /v1/tasks/{taskId}/runs/{runId}/artifacts/{name...}
// with the artifact's bytes, as a download that no browser renders.
func (h *handler) handleGetArtifact(w http.ResponseWriter, r *http.Request, permit string) error {
	taskID, runID, err := h.taskPath(r, permit, true)
	if err != nil {
		return err
	}
	name, err := artifactName(r)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	a, b, err := h.svc.Tasks.GetArtifact(r.Context(), permit, taskID, runID, name)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	hdr.Set("Content-Disposition", contentDisposition(name))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set(HeaderArtifactSHA256, hex.EncodeToString(sum[:]))
	if a != nil {
		hdr.Set(HeaderArtifactID, a.ID)
		hdr.Set(HeaderArtifactRun, a.RunID)
		if a.Kind != "" {
			hdr.Set(custos.HeaderArtifactKind, a.Kind)
		}
		if !a.CreatedAt.IsZero() {
			hdr.Set(HeaderArtifactTime, a.CreatedAt.UTC().Format(time.RFC3339Nano))
		}
		if a.ExpiresAt != nil {
			hdr.Set(HeaderArtifactExpiry, a.ExpiresAt.UTC().Format(time.RFC3339Nano))
		}
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		if _, err := w.Write(b); err != nil { // #nosec G705 -- octet-stream, nosniff, attachment and CSP default-src 'none': never rendered
			loggerFrom(r).Debug("write artifact", slog.String("error", err.Error()))
		}
	}
	clear(b)
	return nil
}

// requestBody turns a failure to read a request body (the client went
// away, a malformed chunk) into an EINVALID error, not an internal one.
type requestBody struct{ r io.Reader }

// Read implements io.Reader.
func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		return n, invalidf("could not read the request body")
	}
	return n, err
}

// contentDisposition is an attachment named after the last segment of
// name, in a form every browser reads safely.
func contentDisposition(name string) string {
	base := path.Base(name)
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": base}); v != "" {
		return v
	}
	return "attachment"
}

// handleListArtifacts answers GET /v1/tasks/{taskId}/runs/{runId}/artifacts.
func (h *handler) handleListArtifacts(w http.ResponseWriter, r *http.Request, permit string) error {
	taskID, runID, err := h.taskPath(r, permit, true)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	list, err := h.svc.Tasks.ListArtifacts(r.Context(), permit, taskID, runID)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*custos.Artifact{}
	}
	writeJSON(w, r, http.StatusOK, &artifactsResponse{Artifacts: list})
	return nil
}

// handleCompleteRun answers POST /v1/tasks/{taskId}/runs/{runId}/complete.
func (h *handler) handleCompleteRun(w http.ResponseWriter, r *http.Request, permit string) error {
	taskID, runID, err := h.taskPath(r, permit, true)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	run, err := h.svc.Tasks.CompleteRun(r.Context(), permit, taskID, runID)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &runResponse{Run: run})
	return nil
}

// handleCompleteTask answers POST /v1/tasks/{taskId}/complete.
func (h *handler) handleCompleteTask(w http.ResponseWriter, r *http.Request, permit string) error {
	taskID, _, err := h.taskPath(r, permit, false)
	if err != nil {
		return err
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	task, err := h.svc.Tasks.CompleteTask(r.Context(), permit, taskID)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &taskResponse{Task: task})
	return nil
}

// indexFile is one entry of PUT …/files: never content.
type indexFile struct {
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Summary string `json:"summary"`
}

// indexFilesRequest is the body of PUT /v1/projects/{projectId}/indexes/{indexId}/files.
type indexFilesRequest struct {
	Files []indexFile `json:"files"`
}

func (q *indexFilesRequest) entries() int { return len(q.Files) }

// indexStaleRequest is the body of POST /v1/projects/{projectId}/indexes/{indexId}/stale.
type indexStaleRequest struct {
	Files []custos.IndexRef `json:"files"`
}

func (q *indexStaleRequest) entries() int { return len(q.Files) }

type indexFilesResponse struct {
	Stored int `json:"stored"`
}

type indexStaleResponse struct {
	Stale []string `json:"stale"`
}

// indexPath reads and validates {projectId} and {indexId}; the routes take
// no query.
func indexPath(r *http.Request) (project, index string, err error) {
	project, index = r.PathValue("projectId"), r.PathValue("indexId")
	if err := custos.ValidateRef("projectId", project); err != nil {
		return "", "", err
	}
	if err := custos.ValidateRef("indexId", index); err != nil {
		return "", "", err
	}
	if err := allowQuery(r.URL.Query(), nil); err != nil {
		return "", "", err
	}
	return project, index, nil
}

// decodeIndexBody decodes an index body strictly, with MaxIndexBodyBytes;
// an unknown field is refused with a message that says file content is
// never taken, and more than custos.MaxIndexFiles entries with 413.
func decodeIndexBody(w http.ResponseWriter, r *http.Request, v interface{ entries() int }) error {
	if err := decodeBodyMax(w, r, v, MaxIndexBodyBytes); err != nil {
		if msg := custos.ErrorMessage(err); strings.HasPrefix(msg, "unknown field") {
			return invalidf("%s: an index entry holds only path, sha256 and summary; file content is refused and never stored", msg)
		}
		return err
	}
	if n := v.entries(); n > custos.MaxIndexFiles {
		return custos.Errorf(custos.ETOOLARGE, "too many files: %d (at most %d per request)", n, custos.MaxIndexFiles)
	}
	return nil
}

// handlePutIndexFiles answers PUT /v1/projects/{projectId}/indexes/{indexId}/files.
func (h *handler) handlePutIndexFiles(w http.ResponseWriter, r *http.Request, permit string) error {
	project, index, err := indexPath(r)
	if err != nil {
		return err
	}
	var in indexFilesRequest
	if err := decodeIndexBody(w, r, &in); err != nil {
		return err
	}
	files := make([]custos.IndexFile, len(in.Files))
	for i, f := range in.Files {
		files[i] = custos.IndexFile{Path: f.Path, SHA256: f.SHA256, Summary: f.Summary}
	}
	n, err := h.svc.Tasks.PutIndexFiles(r.Context(), permit, project, index, files)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, &indexFilesResponse{Stored: n})
	return nil
}

// handleStaleIndexFiles answers POST /v1/projects/{projectId}/indexes/{indexId}/stale.
func (h *handler) handleStaleIndexFiles(w http.ResponseWriter, r *http.Request, permit string) error {
	project, index, err := indexPath(r)
	if err != nil {
		return err
	}
	var in indexStaleRequest
	if err := decodeIndexBody(w, r, &in); err != nil {
		return err
	}
	stale, err := h.svc.Tasks.StaleIndexFiles(r.Context(), permit, project, index, in.Files)
	if err != nil {
		return err
	}
	if stale == nil {
		stale = []string{}
	}
	writeJSON(w, r, http.StatusOK, &indexStaleResponse{Stale: stale})
	return nil
}

// ---- the launch page ----

// launchCSP lets the launch page load its own script and style and
// nothing else.
const launchCSP = "default-src 'none'; script-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// launchPage is the https form of a launch link. It is static: the code,
// project and task travel in the URL fragment, which browsers never send,
// and only the script reads them. Fetching the page (a chat app's link
// preview does) spends nothing.
var launchPage = template.Must(template.New("launch").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Open this task with custos</title>
<link rel="stylesheet" href="{{.}}.css">
<script src="{{.}}.js" defer></script>
</head>
<body>
<main>
<h1>Open this task with custos</h1>
<p id="status">This page needs JavaScript to read the launch link. Opening this page does not use the code: it is spent only when your CLI or IDE exchanges it.</p>
<div id="launch" hidden>
<p>Task <code id="task"></code> of project <code id="project"></code>.</p>
<p><a id="open" class="button" href="#">Open in your IDE</a></p>
<p>Or run this in a terminal (with <code>CUSTOS_URL</code> set to this server):</p>
<pre><code id="command"></code></pre>
<p class="note">The code works once. Do not share this link.</p>
</div>
</main>
</body>
</html>
`))

// handleLaunchPage answers GET /launch with the static launch page.
func (h *handler) handleLaunchPage(w http.ResponseWriter, r *http.Request) error {
	if err := allowQuery(r.URL.Query(), nil); err != nil {
		return invalidf("the launch page takes no query: the code travels in the URL fragment (/launch#code=…)")
	}
	if err := noBody(w, r); err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", launchCSP)
	w.WriteHeader(http.StatusOK)
	if err := launchPage.Execute(w, custos.LaunchPath); err != nil {
		loggerFrom(r).Debug("write launch page", slog.String("error", err.Error()))
	}
	return nil
}

// handleLaunchAsset answers a static asset of the launch page.
func (h *handler) handleLaunchAsset(body, contentType string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := allowQuery(r.URL.Query(), nil); err != nil {
			return err
		}
		if err := noBody(w, r); err != nil {
			return err
		}
		hdr := w.Header()
		hdr.Set("Content-Type", contentType)
		hdr.Set("Content-Security-Policy", launchCSP)
		hdr.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, body)
		return nil
	}
}

// launchJS reads the fragment, checks its shape, shows the command and
// the custos:// button, and drops the fragment from the address bar and
// history. It only writes text (textContent), never markup.
const launchJS = `"use strict";
(function () {
  var p = new URLSearchParams(location.hash.replace(/^#/, ""));
  var code = p.get("code") || "", project = p.get("project") || "", task = p.get("task") || "";
  var status = document.getElementById("status");
  if (location.hash) { history.replaceState(null, "", location.pathname); }
  var ref = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
  if (!/^cst_lc_[A-Za-z0-9_-]{43}$/.test(code) || !ref.test(project) || !ref.test(task)) {
    status.textContent = "This launch link is incomplete or malformed: ask for a new one from your tracker.";
    return;
  }
  var q = "code=" + encodeURIComponent(code) + "&project=" + encodeURIComponent(project) + "&task=" + encodeURIComponent(task);
  var link = "custos://launch?" + q;
  document.getElementById("task").textContent = task;
  document.getElementById("project").textContent = project;
  document.getElementById("open").setAttribute("href", link);
  document.getElementById("command").textContent = "custos task open '" + link + "'";
  status.textContent = "Opening this page does not use the code: it is spent only when your CLI or IDE exchanges it.";
  document.getElementById("launch").hidden = false;
})();
`

const launchCSS = `body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
pre{background:#f3f3f3;padding:.75rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.button{display:inline-block;padding:.5rem 1rem;background:#1b4d8c;color:#fff;text-decoration:none;border-radius:.25rem}
.note{color:#6b6b6b;font-size:.9rem}
`

// ---- the client ----

// CreateTrackerInstall creates a tracker install through
// POST /v1/tracker/installs and returns it with its token, shown once.
func (c *Client) CreateTrackerInstall(ctx context.Context, name string) (*custos.TrackerInstall, string, error) {
	var resp trackerInstallResponse
	if err := c.do(ctx, http.MethodPost, "/v1/tracker/installs", &trackerInstallRequest{Name: name}, &resp); err != nil {
		return nil, "", err
	}
	return resp.Install, resp.Token, nil
}

// ListTrackerInstalls lists the org's installs through GET /v1/tracker/installs.
func (c *Client) ListTrackerInstalls(ctx context.Context) ([]*custos.TrackerInstall, error) {
	var resp trackerInstallsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/tracker/installs", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Installs, nil
}

// RevokeTrackerInstall revokes install id through DELETE /v1/tracker/installs/{id}.
func (c *Client) RevokeTrackerInstall(ctx context.Context, id string) error {
	if err := custos.ValidateID(custos.PrefixTrackerInstall, id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, "/v1/tracker/installs/"+segment(id), nil, nil)
}

// checkToken refuses a token that cannot travel in a header, before
// anything is sent.
func checkToken(tok, what string) error {
	if tok == "" || !validToken(tok) {
		return custos.Errorf(custos.EUNAUTHORIZED, "malformed %s", what)
	}
	return nil
}

// StartTrackerSession starts a request key chain for installToken through
// POST /v1/tracker/request-key and returns its first key.
func (c *Client) StartTrackerSession(ctx context.Context, installToken string) (*custos.RequestKeyGrant, error) {
	if err := checkToken(installToken, "tracker install token"); err != nil {
		return nil, err
	}
	var resp custos.RequestKeyGrant
	if err := c.doToken(ctx, installToken, http.MethodPost, "/v1/tracker/request-key", nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// CreateLaunchLink mints a launch code through POST
// /v1/security/launch-link, spending requestKey. It returns the link and
// the next request key of the chain, which the server sends once the key
// is spent — also with an error, when the link itself was refused.
func (c *Client) CreateLaunchLink(ctx context.Context, installToken, requestKey string, in custos.LaunchLinkInput) (*custos.LaunchLink, string, error) {
	if err := checkToken(installToken, "tracker install token"); err != nil {
		return nil, "", err
	}
	if err := checkToken(requestKey, "request key"); err != nil {
		return nil, "", err
	}
	var resp custos.LaunchLink
	hdr, err := c.doJSON(ctx, installToken, http.MethodPost, "/v1/security/launch-link",
		http.Header{custos.HeaderRequestKey: {requestKey}}, &in, &resp)
	next := ""
	if hdr != nil {
		next = hdr.Get(custos.HeaderNextRequestKey)
	}
	if err != nil {
		return nil, next, err
	}
	return &resp, next, nil
}

// ExchangeLaunchCode exchanges a launch code for a permit through POST
// /v1/security/launch-exchange.
func (c *Client) ExchangeLaunchCode(ctx context.Context, in custos.LaunchExchangeInput) (*custos.PermitGrant, error) {
	if err := checkToken(in.Code, "launch code"); err != nil {
		return nil, err
	}
	var resp custos.PermitGrant
	if err := c.doToken(ctx, "", http.MethodPost, "/v1/security/launch-exchange", &in, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// taskURL is the path of task taskID's route under it.
func taskURL(taskID string, elems ...string) string {
	var b strings.Builder
	b.WriteString("/v1/tasks/")
	b.WriteString(segment(taskID))
	for _, e := range elems {
		b.WriteString("/")
		b.WriteString(e)
	}
	return b.String()
}

// artifactPath escapes an artifact name segment by segment.
func artifactPath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = segment(s)
	}
	return strings.Join(segs, "/")
}

// CreateRun starts a run through POST /v1/tasks/{taskId}/runs.
func (c *Client) CreateRun(ctx context.Context, permit, taskID string) (*custos.Run, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, err
	}
	var resp runResponse
	if err := c.doToken(ctx, permit, http.MethodPost, taskURL(taskID, "runs"), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Run, nil
}

// PutArtifact uploads body as artifact name of the run through PUT
// /v1/tasks/{taskId}/runs/{runId}/artifacts/{name}.
func (c *Client) PutArtifact(ctx context.Context, permit, taskID, runID, name, kind string, body io.Reader) (*custos.Artifact, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, err
	}
	if err := custos.ValidateArtifactName(name); err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if kind != "" {
		hdr.Set(custos.HeaderArtifactKind, kind)
	}
	if body == nil {
		body = http.NoBody
	}
	p := taskURL(taskID, "runs", segment(runID), "artifacts", artifactPath(name))
	resp, err := c.send(ctx, permit, http.MethodPut, p, hdr, body, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer drainClose(resp)
	var out artifactResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&out); err != nil || out.Artifact == nil {
		return nil, custos.Errorf(custos.EINTERNAL, "invalid response from the custos server at %s (PUT %s)", c.baseURL, p)
	}
	return out.Artifact, nil
}

// GetArtifact downloads artifact name of the run through GET
// /v1/tasks/{taskId}/runs/{runId}/artifacts/{name}. The artifact is
// described from the answer's headers; the bytes are checked against the
// SHA-256 the server sends.
func (c *Client) GetArtifact(ctx context.Context, permit, taskID, runID, name string) (*custos.Artifact, []byte, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, nil, err
	}
	if err := custos.ValidateArtifactName(name); err != nil {
		return nil, nil, err
	}
	p := taskURL(taskID, "runs", segment(runID), "artifacts", artifactPath(name))
	resp, err := c.send(ctx, permit, http.MethodGet, p, http.Header{"Accept": {"application/octet-stream"}}, nil, "")
	if err != nil {
		return nil, nil, err
	}
	defer drainClose(resp)
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxArtifactResponseBytes+1))
	if err != nil {
		return nil, nil, c.transportError(ctx, err)
	}
	if len(b) > maxArtifactResponseBytes {
		return nil, nil, custos.Errorf(custos.ETOOLARGE, "artifact larger than %d bytes", maxArtifactResponseBytes)
	}
	sum := sha256.Sum256(b)
	a := &custos.Artifact{
		ID: resp.Header.Get(HeaderArtifactID), TaskID: taskID, RunID: runID, Name: name,
		Kind: resp.Header.Get(custos.HeaderArtifactKind), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]),
	}
	if want := resp.Header.Get(HeaderArtifactSHA256); want != "" && want != a.SHA256 {
		return nil, nil, custos.Errorf(custos.EINTERNAL, "artifact %q arrived damaged: its SHA-256 is not the one the server sent", clip(name, 80))
	}
	if t, err := time.Parse(time.RFC3339Nano, resp.Header.Get(HeaderArtifactTime)); err == nil {
		a.CreatedAt = t
	}
	if t, err := time.Parse(time.RFC3339Nano, resp.Header.Get(HeaderArtifactExpiry)); err == nil {
		a.ExpiresAt = &t
	}
	return a, b, nil
}

// ListArtifacts lists the run's artifacts through GET
// /v1/tasks/{taskId}/runs/{runId}/artifacts.
func (c *Client) ListArtifacts(ctx context.Context, permit, taskID, runID string) ([]*custos.Artifact, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, err
	}
	var resp artifactsResponse
	if err := c.doToken(ctx, permit, http.MethodGet, taskURL(taskID, "runs", segment(runID), "artifacts"), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Artifacts, nil
}

// CompleteRun completes the run through POST
// /v1/tasks/{taskId}/runs/{runId}/complete.
func (c *Client) CompleteRun(ctx context.Context, permit, taskID, runID string) (*custos.Run, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, err
	}
	var resp runResponse
	if err := c.doToken(ctx, permit, http.MethodPost, taskURL(taskID, "runs", segment(runID), "complete"), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Run, nil
}

// CompleteTask completes the task through POST /v1/tasks/{taskId}/complete.
func (c *Client) CompleteTask(ctx context.Context, permit, taskID string) (*custos.Task, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, err
	}
	var resp taskResponse
	if err := c.doToken(ctx, permit, http.MethodPost, taskURL(taskID, "complete"), nil, &resp); err != nil {
		return nil, err
	}
	return resp.Task, nil
}

// indexURL is the path of an index route.
func indexURL(projectID, indexID, what string) string {
	return "/v1/projects/" + segment(projectID) + "/indexes/" + segment(indexID) + "/" + what
}

// PutIndexFiles stores index entries through PUT
// /v1/projects/{projectId}/indexes/{indexId}/files.
func (c *Client) PutIndexFiles(ctx context.Context, permit, projectID, indexID string, files []custos.IndexFile) (int, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return 0, err
	}
	in := indexFilesRequest{Files: make([]indexFile, len(files))}
	for i, f := range files {
		in.Files[i] = indexFile{Path: f.Path, SHA256: f.SHA256, Summary: f.Summary}
	}
	var resp indexFilesResponse
	if err := c.doToken(ctx, permit, http.MethodPut, indexURL(projectID, indexID, "files"), &in, &resp); err != nil {
		return 0, err
	}
	return resp.Stored, nil
}

// StaleIndexFiles asks which refs need a new summary through POST
// /v1/projects/{projectId}/indexes/{indexId}/stale.
func (c *Client) StaleIndexFiles(ctx context.Context, permit, projectID, indexID string, refs []custos.IndexRef) ([]string, error) {
	if err := checkToken(permit, "permit"); err != nil {
		return nil, err
	}
	if refs == nil {
		refs = []custos.IndexRef{}
	}
	var resp indexStaleResponse
	if err := c.doToken(ctx, permit, http.MethodPost, indexURL(projectID, indexID, "stale"), &indexStaleRequest{Files: refs}, &resp); err != nil {
		return nil, err
	}
	return resp.Stale, nil
}
