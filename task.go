package custos

import (
	"context"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The tasks capability: a tracker app (through an install token and a chain
// of single-use request keys) mints a one-time launch code for a
// project/task pair; a developer's CLI or IDE exchanges it for a permit
// bound to org, project and task; with the permit only, runs upload
// encrypted artifacts that are purged after the task completes, and keep a
// project index of file hashes and summaries (never content).

// ID prefixes of the tasks capability.
const (
	PrefixTrackerInstall = "trk" // a tracker app install
	PrefixTrackerSession = "trs" // one chain of request keys
	PrefixRequestKey     = "rqk"
	PrefixLaunchCode     = "lnc"
	PrefixPermit         = "pmt"
	PrefixRun            = "run"
	PrefixArtifact       = "art"
)

// Lifetimes and limits of the tasks capability.
const (
	RequestKeyTTL            = 10 * time.Minute   // a request key's life
	DefaultLaunchTTL         = 7 * 24 * time.Hour // a launch code's default life
	MinLaunchTTL             = 24 * time.Hour
	MaxLaunchTTL             = 14 * 24 * time.Hour
	PermitTTL                = 24 * time.Hour
	DefaultArtifactRetention = 48 * time.Hour // after task completion; also the default cap
	DefaultMaxArtifactBytes  = 16 << 20       // one artifact
	DefaultMaxRunBytes       = 128 << 20      // all live artifacts of one run
	MaxArtifactNameBytes     = 512
	MaxArtifactNameSegments  = 32
	MaxIndexFiles            = 1000 // path entries per index request
	MaxIndexPathBytes        = 1024
	MaxIndexSummaryBytes     = 4096
)

// Audit actions of the tasks capability.
const (
	ActionTrackerInstall   = "tracker.install"
	ActionTrackerRevoke    = "tracker.revoke"
	ActionTrackerSession   = "tracker.session"     // a new request key chain
	ActionRequestKeyReplay = "tracker.key_refused" // a used, expired or foreign request key
	ActionLaunchCreate     = "launch.create"
	ActionLaunchExchange   = "launch.exchange" // ok, or denied with the reason
	ActionTaskDenied       = "task.denied"     // a permit used outside its scope
	ActionRunCreate        = "task.run"
	ActionRunComplete      = "task.run_complete"
	ActionTaskComplete     = "task.complete"
	ActionArtifactPut      = "artifact.put"
	ActionArtifactGet      = "artifact.get"
	ActionArtifactPurge    = "artifact.purge"
	ActionIndexPut         = "index.put"
)

// Names on the wire of the tasks capability.
const (
	HeaderRequestKey     = "X-Custos-Request-Key"      // a tracker call's request key
	HeaderNextRequestKey = "X-Custos-Next-Request-Key" // the next key of the chain, on the answer
	HeaderArtifactKind   = "X-Custos-Artifact-Kind"    // optional kind of an uploaded artifact
	LaunchScheme         = "custos"                    // custos://launch?code=…
	LaunchPath           = "/launch"                   // the https form of a launch link, served by custos
)

// ArtifactKinds are the kinds an artifact may declare (or none).
var ArtifactKinds = []string{"source", "input", "output", "diff"}

var refRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ValidateRef reports whether s is a valid tracker-given identifier (what
// names a projectId, taskId or indexId): letters, digits and . _ : -,
// starting with a letter or digit, at most 128 characters.
func ValidateRef(what, s string) error {
	if !refRE.MatchString(s) {
		return Errorf(EINVALID, "invalid %s %q: use letters, digits and . _ : -, starting with a letter or digit, at most 128 characters", what, truncate(s))
	}
	return nil
}

// ValidateArtifactName reports whether s is a safe artifact name: a relative
// slash-separated path of valid UTF-8 without control characters or
// backslashes, no empty, "." or ".." segment, at most
// MaxArtifactNameBytes bytes and MaxArtifactNameSegments segments.
func ValidateArtifactName(s string) error {
	bad := func(why string) error {
		return Errorf(EINVALID, "invalid artifact name %q: %s", truncate(s), why)
	}
	switch {
	case s == "":
		return bad("empty")
	case len(s) > MaxArtifactNameBytes:
		return bad("longer than 512 bytes")
	case !utf8.ValidString(s):
		return bad("not UTF-8")
	case s[0] == '/':
		return bad("absolute paths are not allowed")
	case len(s) >= 2 && s[1] == ':':
		return bad("drive letters are not allowed")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return bad("control characters and backslashes are not allowed")
		}
	}
	segs := strings.Split(s, "/")
	if len(segs) > MaxArtifactNameSegments {
		return bad("more than 32 path segments")
	}
	for _, seg := range segs {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("'.' and '..' segments are not allowed")
		}
	}
	return nil
}

// TrackerInstall is a tracker app's installation in an org (Jira, Linear,
// GitHub Issues through a connector). Its token (cst_ti_…) is shown once;
// only its SHA-256 is stored.
type TrackerInstall struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	Name      string     `json:"name"`
	Hash      string     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// RequestKey is one link of a tracker session's chain (cst_rk_…): spent by
// exactly one request, which gets the next link.
type RequestKey struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	InstallID string     `json:"install_id"`
	SessionID string     `json:"session_id"`
	Hash      string     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// LaunchCode is a one-time code (cst_lc_…) bound to one project/task pair.
type LaunchCode struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	InstallID string     `json:"install_id"`
	ProjectID string     `json:"project_id"`
	TaskID    string     `json:"task_id"`
	Hash      string     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// Permit is a task-scoped bearer credential (cst_pm_…) bound to org,
// project and task; it is the only credential of the task routes.
type Permit struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	ProjectID string    `json:"project_id"`
	TaskID    string    `json:"task_id"`
	LaunchID  string    `json:"launch_id"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Task is a tracker ticket that AI work runs on, known by its org, project
// and the tracker's task id. It exists from its first launch code on.
type Task struct {
	OrgID       string     `json:"org_id"`
	ProjectID   string     `json:"project_id"`
	ID          string     `json:"task_id"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Run is one agent run on a task.
type Run struct {
	ID          string     `json:"id"`
	OrgID       string     `json:"org_id"`
	ProjectID   string     `json:"project_id"`
	TaskID      string     `json:"task_id"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Artifact is one encrypted file of a run (selected source files, task
// inputs, AI outputs, diff bundles). The blob holds the envelope ciphertext;
// the row holds the wrapped DEK. A replaced artifact (same run and name put
// again) and an expired one are purged: blob first, then row.
type Artifact struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	ProjectID  string     `json:"project_id"`
	TaskID     string     `json:"task_id"`
	RunID      string     `json:"run_id"`
	Name       string     `json:"name"`
	Kind       string     `json:"kind,omitempty"` // source, input, output, diff, or empty
	Size       int64      `json:"size"`           // plaintext bytes
	SHA256     string     `json:"sha256"`         // hex, of the plaintext
	BlobKey    string     `json:"-"`
	WrappedDEK []byte     `json:"-"`
	KeeperID   string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`  // set when the task completes
	ReplacedAt *time.Time `json:"replaced_at,omitempty"` // set when put again; purged next
}

// IndexFile is one entry of a project index: a path, the SHA-256 of the
// file and a summary. File content is never stored.
type IndexFile struct {
	Path      string    `json:"path"`
	SHA256    string    `json:"sha256"`
	Summary   string    `json:"summary"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// IndexRef names a file and the hash it has now, to ask whether its index
// entry is stale.
type IndexRef struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// PurgeItem is one artifact a purge removed (or, dry, would remove).
type PurgeItem struct {
	ArtifactID string    `json:"artifact_id"`
	OrgID      string    `json:"org_id"`
	TaskID     string    `json:"task_id"`
	RunID      string    `json:"run_id"`
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	Reason     string    `json:"reason"` // "expired" or "replaced"
	ExpiredAt  time.Time `json:"expired_at"`
}

// PurgeReport is what one purge did.
type PurgeReport struct {
	DryRun  bool         `json:"dry_run"`
	Removed []*PurgeItem `json:"removed"`
	Bytes   int64        `json:"bytes"`
}

// LaunchLinkInput is what a tracker app gives to mint a launch code. TTL is
// 1–14 days (0 means DefaultLaunchTTL).
type LaunchLinkInput struct {
	ProjectID string   `json:"projectId"`
	TaskID    string   `json:"taskId"`
	TTL       Duration `json:"ttl,omitempty"`
}

// LaunchLink is a minted launch code (shown once) and its links.
type LaunchLink struct {
	Code      string    `json:"code"`
	Link      string    `json:"link"`      // custos://launch?code=…&project=…&task=…
	URL       string    `json:"url"`       // the https form served by custos (empty if unknown)
	ID        string    `json:"id"`        // the code's id, for audit lookups
	ProjectID string    `json:"projectId"` // echoed
	TaskID    string    `json:"taskId"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// LaunchExchangeInput is what a developer's CLI or IDE gives to exchange a
// launch code for a permit.
type LaunchExchangeInput struct {
	Code      string `json:"code"`
	ProjectID string `json:"projectId"`
	TaskID    string `json:"taskId"`
}

// PermitGrant is a new permit (the token is shown once).
type PermitGrant struct {
	Permit    string    `json:"permit"`
	ID        string    `json:"id"`
	OrgID     string    `json:"orgId"`
	ProjectID string    `json:"projectId"`
	TaskID    string    `json:"taskId"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// RequestKeyGrant is a new request key (shown once).
type RequestKeyGrant struct {
	RequestKey string    `json:"requestKey"`
	SessionID  string    `json:"sessionId"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// TrackerCall is an authenticated tracker request: its install, and the
// request key it spent with the next one in the chain.
type TrackerCall struct {
	Install *TrackerInstall
	Spent   *RequestKey
	Next    *RequestKeyGrant
}

// TrackerService manages tracker app installs. Only owner and admin API
// keys (the caller in ctx) may call it.
type TrackerService interface {
	// CreateTrackerInstall creates an install named name and returns it with
	// its token (cst_ti_…), which is never shown again. Returns ECONFLICT if
	// the org has a live install of that name.
	CreateTrackerInstall(ctx context.Context, name string) (*TrackerInstall, string, error)
	// ListTrackerInstalls lists the org's installs.
	ListTrackerInstalls(ctx context.Context) ([]*TrackerInstall, error)
	// RevokeTrackerInstall revokes install id: its token, request keys and
	// unused launch codes stop working. Returns ENOTFOUND.
	RevokeTrackerInstall(ctx context.Context, id string) error
}

// LaunchService is the tracker app's and the developer's side of a launch.
type LaunchService interface {
	// StartTrackerSession authenticates an install token and starts a new
	// request key chain. Returns EUNAUTHORIZED.
	StartTrackerSession(ctx context.Context, installToken string) (*RequestKeyGrant, error)
	// SpendRequestKey authenticates an install token and spends its request
	// key: of concurrent calls with one key exactly one succeeds and gets the
	// next key. A used, expired, unknown or foreign key is refused with
	// EUNAUTHORIZED and audited.
	SpendRequestKey(ctx context.Context, installToken, requestKey string) (*TrackerCall, error)
	// CreateLaunchLink mints a launch code for in's pair, for a tracker call
	// that spent its request key.
	CreateLaunchLink(ctx context.Context, call *TrackerCall, in LaunchLinkInput) (*LaunchLink, error)
	// ExchangeLaunchCode consumes an unused, unexpired code bound to exactly
	// in's pair and returns a permit; of concurrent calls exactly one
	// succeeds. Anything else is refused (EUNAUTHORIZED or EFORBIDDEN),
	// audited when the code is known, and changes nothing.
	ExchangeLaunchCode(ctx context.Context, in LaunchExchangeInput) (*PermitGrant, error)
}

// TaskService serves the permit routes. Every call takes the permit token
// and checks, before anything changes: the permit is live; taskID is its
// task; any projectID is its project; any runID belongs to its task.
// Violations return EFORBIDDEN (EUNAUTHORIZED for a bad or expired permit),
// are audited, and change nothing.
type TaskService interface {
	// CheckPermit returns the live permit of token. Returns EUNAUTHORIZED.
	CheckPermit(ctx context.Context, permit string) (*Permit, error)
	// CheckScope returns the live permit of token if projectID and taskID
	// (each when not empty) are its project and task. Returns EUNAUTHORIZED,
	// or EFORBIDDEN (audited) for another project or task.
	CheckScope(ctx context.Context, permit, projectID, taskID string) (*Permit, error)
	// CreateRun starts a run on the task. Returns ECONFLICT if the task is
	// complete.
	CreateRun(ctx context.Context, permit, taskID string) (*Run, error)
	// PutArtifact encrypts body (at most the artifact limit) and stores it
	// as name in the run, replacing an artifact of that name. Returns
	// ETOOLARGE over the artifact or run limit, ECONFLICT if the run or task
	// is complete.
	PutArtifact(ctx context.Context, permit, taskID, runID, name, kind string, body io.Reader) (*Artifact, error)
	// GetArtifact returns artifact name of the run, decrypted. Returns
	// ENOTFOUND, or EEXPIRED once past its expiry (whether or not purged).
	GetArtifact(ctx context.Context, permit, taskID, runID, name string) (*Artifact, []byte, error)
	// ListArtifacts lists the run's live artifacts.
	ListArtifacts(ctx context.Context, permit, taskID, runID string) ([]*Artifact, error)
	// CompleteRun marks the run complete (idempotent).
	CompleteRun(ctx context.Context, permit, taskID, runID string) (*Run, error)
	// CompleteTask marks the task and its runs complete and sets every
	// artifact's expiry to completion + retention (idempotent).
	CompleteTask(ctx context.Context, permit, taskID string) (*Task, error)
	// PutIndexFiles stores path + SHA-256 + summary entries in the project's
	// index indexID. Returns how many were stored.
	PutIndexFiles(ctx context.Context, permit, projectID, indexID string, files []IndexFile) (int, error)
	// StaleIndexFiles returns the paths among refs whose entry is missing
	// or has another hash.
	StaleIndexFiles(ctx context.Context, permit, projectID, indexID string, refs []IndexRef) ([]string, error)
}

// TaskStore persists the tasks capability. Every single-use step is one
// atomic statement, so exactly one of many concurrent callers — in any
// number of processes — wins.
type TaskStore interface {
	// CreateTrackerInstall inserts in. Returns ECONFLICT if the org has a
	// live (not revoked) install of that name.
	CreateTrackerInstall(ctx context.Context, in *TrackerInstall, ev *AuditEvent) error
	// ListTrackerInstalls lists the org's installs, oldest first.
	ListTrackerInstalls(ctx context.Context, orgID string) ([]*TrackerInstall, error)
	// FindTrackerInstallByHash returns the install whose token hashes to
	// hash (revoked or not). Returns ENOTFOUND.
	FindTrackerInstallByHash(ctx context.Context, hash string) (*TrackerInstall, error)
	// RevokeTrackerInstall sets the install's RevokedAt to now if unset.
	// Returns ENOTFOUND.
	RevokeTrackerInstall(ctx context.Context, orgID, id string, now time.Time, ev *AuditEvent) error

	// CreateRequestKey inserts k (the first key of a new chain).
	CreateRequestKey(ctx context.Context, k *RequestKey, ev *AuditEvent) error
	// SpendRequestKey, in one transaction, marks the key hashing to hash
	// used at now — only if it belongs to installID, is unused and expires
	// after now — and inserts next, whose OrgID and SessionID it sets from
	// the spent key. Returns the spent key, or ENOTFOUND if no such live key.
	SpendRequestKey(ctx context.Context, installID, hash string, now time.Time, next *RequestKey) (*RequestKey, error)
	// FindRequestKeyByHash returns the key hashing to hash. Returns ENOTFOUND.
	FindRequestKeyByHash(ctx context.Context, hash string) (*RequestKey, error)

	// CreateLaunchCode inserts c and, if new, its task (c's org, project
	// and task, created at c.CreatedAt). Returns ECONFLICT if the task
	// exists and is complete.
	CreateLaunchCode(ctx context.Context, c *LaunchCode, ev *AuditEvent) error
	// ExchangeLaunchCode, in one transaction, marks the code hashing to
	// hash used at now — only if unused, expiring after now, bound to
	// projectID and taskID, and its install is not revoked — and inserts p,
	// whose OrgID and LaunchID it sets from the code, and appends ev (OrgID
	// set likewise). Returns the code, or ENOTFOUND.
	ExchangeLaunchCode(ctx context.Context, hash, projectID, taskID string, now time.Time, p *Permit, ev *AuditEvent) (*LaunchCode, error)
	// FindLaunchCodeByHash returns the code hashing to hash. Returns
	// ENOTFOUND.
	FindLaunchCodeByHash(ctx context.Context, hash string) (*LaunchCode, error)
	// FindPermitByHash returns the permit whose token hashes to hash.
	// Returns ENOTFOUND.
	FindPermitByHash(ctx context.Context, hash string) (*Permit, error)

	// FindTask returns a task. Returns ENOTFOUND.
	FindTask(ctx context.Context, orgID, projectID, taskID string) (*Task, error)
	// CreateRun inserts r if its task exists and is not complete. Returns
	// ENOTFOUND (no task) or ECONFLICT (task complete).
	CreateRun(ctx context.Context, r *Run, ev *AuditEvent) error
	// FindRun returns run id of the org. Returns ENOTFOUND.
	FindRun(ctx context.Context, orgID, id string) (*Run, error)
	// CompleteRun sets the run's CompletedAt to now if unset and returns the
	// run. Returns ENOTFOUND.
	CompleteRun(ctx context.Context, orgID, id string, now time.Time, ev *AuditEvent) (*Run, error)
	// CompleteTask, in one transaction and only if the task is not complete
	// yet, sets its CompletedAt to now, completes its open runs and sets
	// ExpiresAt = expires on each of its artifacts that has none or a later
	// one. Returns the task (unchanged if it was complete). Returns ENOTFOUND.
	CompleteTask(ctx context.Context, orgID, projectID, taskID string, now, expires time.Time, ev *AuditEvent) (*Task, error)

	// PutArtifact inserts a, in one transaction: only if its run exists,
	// and neither the run nor its task is complete (ECONFLICT); only if the
	// run's live artifacts other than one named a.Name plus a.Size stay
	// within maxRunBytes (ETOOLARGE); marking a live artifact of the same
	// run and name replaced at a.CreatedAt.
	PutArtifact(ctx context.Context, a *Artifact, maxRunBytes int64, ev *AuditEvent) error
	// FindArtifact returns the live (not replaced) artifact name of the run,
	// expired or not. Returns ENOTFOUND.
	FindArtifact(ctx context.Context, orgID, runID, name string) (*Artifact, error)
	// ListArtifacts returns the run's live artifacts, by name.
	ListArtifacts(ctx context.Context, orgID, runID string) ([]*Artifact, error)
	// PurgeableArtifacts returns up to limit artifacts replaced, or expiring
	// at or before now, oldest expiry first.
	PurgeableArtifacts(ctx context.Context, now time.Time, limit int) ([]*Artifact, error)
	// DeleteArtifact deletes the artifact row id and appends ev, in one
	// transaction. Deleting a missing row is not an error (purges resume).
	DeleteArtifact(ctx context.Context, id string, ev *AuditEvent) error
	// ArtifactBlobKeys returns the blob keys of every artifact row, for the
	// sweep that deletes blobs no row refers to.
	ArtifactBlobKeys(ctx context.Context) (map[string]bool, error)

	// PutIndexFiles inserts or replaces files (UpdatedAt set to now) in the
	// project's index, in one transaction.
	PutIndexFiles(ctx context.Context, orgID, projectID, indexID string, files []IndexFile, now time.Time, ev *AuditEvent) error
	// IndexHashes returns path → SHA-256 for those of paths in the index.
	IndexHashes(ctx context.Context, orgID, projectID, indexID string, paths []string) (map[string]string, error)
}
