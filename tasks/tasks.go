// Package tasks is the tasks service: tracker installs and their chains of
// single-use request keys, one-time launch codes, task-scoped permits, runs,
// encrypted short-lived artifacts and their purge, and the project index
// (file hashes and summaries, never content). Every business rule of the
// capability lives here, above the stores, so all backends behave the same.
//
// Tokens (install tokens, request keys, launch codes, permits) are random,
// stored as SHA-256 only and never written to errors, logs or audit records;
// their ids are.
package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
)

// Store is what the service needs of a storage backend.
type Store interface {
	custos.TaskStore
	custos.AuditStore
}

// Config holds what a Service needs. Zero limits and durations take the
// defaults of package custos.
type Config struct {
	Store  Store
	Keeper envelope.Keeper
	Bucket *blob.Bucket // where artifact ciphertexts go (see OpenBucket)
	Now    custos.Clock // nil means time.Now
	Logger *slog.Logger // nil means slog.Default()
	// PublicURL is the base of the https form of launch links
	// (https://custos.example.com); empty means links carry only the
	// custos:// form.
	PublicURL string
	// Retention is how long artifacts live after their task completes
	// (default custos.DefaultArtifactRetention); it may not exceed
	// RetentionCap (default custos.DefaultArtifactRetention too), which
	// only an operator raises.
	Retention    time.Duration
	RetentionCap time.Duration
	// MaxArtifactBytes bounds one artifact (default
	// custos.DefaultMaxArtifactBytes); MaxRunBytes all live artifacts of a
	// run (default custos.DefaultMaxRunBytes).
	MaxArtifactBytes int64
	MaxRunBytes      int64
}

// Service implements custos.TrackerService, custos.LaunchService and
// custos.TaskService, and purges expired artifacts.
type Service struct {
	store     Store
	keeper    envelope.Keeper
	bucket    *blob.Bucket
	now       custos.Clock
	log       *slog.Logger
	publicURL string
	retention time.Duration
	maxArt    int64
	maxRun    int64
}

var (
	_ custos.TrackerService = (*Service)(nil)
	_ custos.LaunchService  = (*Service)(nil)
	_ custos.TaskService    = (*Service)(nil)
)

// ConfigError is a Config that New refuses; Field names the setting.
type ConfigError struct {
	Field   string
	Message string
}

// Error implements the error interface.
func (e *ConfigError) Error() string {
	return "tasks: invalid " + e.Field + ": " + e.Message
}

// New validates cfg, fills in its defaults and returns a Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, &ConfigError{"Store", "no store"}
	case cfg.Keeper == nil:
		return nil, &ConfigError{"Keeper", "no keeper"}
	case cfg.Bucket == nil:
		return nil, &ConfigError{"Bucket", "no blob store"}
	}
	if cfg.Retention == 0 {
		cfg.Retention = custos.DefaultArtifactRetention
	}
	if cfg.RetentionCap == 0 {
		cfg.RetentionCap = custos.DefaultArtifactRetention
	}
	if cfg.MaxArtifactBytes == 0 {
		cfg.MaxArtifactBytes = custos.DefaultMaxArtifactBytes
	}
	if cfg.MaxRunBytes == 0 {
		cfg.MaxRunBytes = custos.DefaultMaxRunBytes
	}
	switch {
	case cfg.Retention < 0:
		return nil, &ConfigError{"Retention", fmt.Sprintf("%s is negative", cfg.Retention)}
	case cfg.RetentionCap < 0:
		return nil, &ConfigError{"RetentionCap", fmt.Sprintf("%s is negative", cfg.RetentionCap)}
	case cfg.Retention > cfg.RetentionCap:
		return nil, &ConfigError{"Retention", fmt.Sprintf("artifact retention %s is above the retention cap %s; lower the retention or raise the cap", cfg.Retention, cfg.RetentionCap)}
	case cfg.MaxArtifactBytes < 0:
		return nil, &ConfigError{"MaxArtifactBytes", "negative"}
	case cfg.MaxRunBytes < 0:
		return nil, &ConfigError{"MaxRunBytes", "negative"}
	case cfg.MaxArtifactBytes > cfg.MaxRunBytes:
		return nil, &ConfigError{"MaxArtifactBytes", fmt.Sprintf("the artifact limit %d is above the run limit %d", cfg.MaxArtifactBytes, cfg.MaxRunBytes)}
	}
	pub, err := checkPublicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	s := &Service{
		store: cfg.Store, keeper: cfg.Keeper, bucket: cfg.Bucket, now: cfg.Now, log: cfg.Logger,
		publicURL: pub, retention: cfg.Retention, maxArt: cfg.MaxArtifactBytes, maxRun: cfg.MaxRunBytes,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// checkPublicURL returns the base of launch URLs without a trailing slash.
func checkPublicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", &ConfigError{"PublicURL", "want an http(s) URL without credentials, query or fragment, such as https://custos.example.com"}
	}
	return strings.TrimRight(raw, "/"), nil
}

// Retention returns how long artifacts live after their task completes.
func (s *Service) Retention() time.Duration { return s.retention }

// timeNow returns the current time as stored: UTC, microsecond precision.
func (s *Service) timeNow() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// caller returns the authenticated API key caller or EUNAUTHORIZED.
func caller(ctx context.Context) (*custos.Caller, error) {
	c := custos.CallerFromContext(ctx)
	if c == nil || c.Key == nil {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "authentication required")
	}
	return c, nil
}

// requireAdmin returns EFORBIDDEN unless c holds an owner or admin key.
func requireAdmin(c *custos.Caller) error {
	if !c.Key.Role.IsAdmin() {
		return custos.Errorf(custos.EFORBIDDEN, "this needs an owner or admin key (key %s has role %s)", c.Key.ID, c.Key.Role)
	}
	return nil
}

// event starts an audit event in org for the credential keyID, with what
// the caller in ctx (if any) tells of the request's origin.
func (s *Service) event(ctx context.Context, orgID, keyID, action, outcome string) *custos.AuditEvent {
	ev := &custos.AuditEvent{OrgID: orgID, Time: s.timeNow(), Action: action, Outcome: outcome, KeyID: keyID}
	if c := custos.CallerFromContext(ctx); c != nil {
		ev.Agent, ev.Hostname, ev.MachineUser, ev.IP, ev.Source, ev.Model = c.Agent, c.Hostname, c.MachineUser, c.IP, c.Source, c.Model
		if c.Key != nil && keyID == "" {
			ev.KeyID, ev.User = c.Key.ID, c.Key.Name
		}
	}
	return ev
}

// adminEvent starts an audit event for an API key caller.
func (s *Service) adminEvent(ctx context.Context, c *custos.Caller, action string) *custos.AuditEvent {
	ev := s.event(ctx, c.OrgID(), c.Key.ID, action, custos.OutcomeOK)
	ev.User = c.Key.Name
	return ev
}

// deny records denied requests in the audit log and returns err. A denial
// that cannot be recorded is still a denial; the failure is logged.
func (s *Service) deny(ctx context.Context, err error, evs ...*custos.AuditEvent) error {
	for _, ev := range evs {
		ev.Outcome = custos.OutcomeDenied
		if ev.Reason == "" {
			ev.Reason = custos.ErrorMessage(err)
		}
	}
	if aerr := s.store.AppendAudit(ctx, evs, nil); aerr != nil {
		s.log.Error("audit write failed for a denial", "action", evs[0].Action, "org", evs[0].OrgID, "err", aerr)
	}
	return err
}

// auditFailed is what a caller gets when its audit record could not be made
// durable: the request did not happen.
func (s *Service) auditFailed(action string, err error) error {
	s.log.Error("audit write failed; request refused", "action", action, "err", err)
	return custos.Errorf(custos.EUNAVAILABLE, "the audit log could not be written, so nothing was done or delivered; try again later")
}

// quote shortens an untrusted string and quotes it for a message.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}
