package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/gateway"
	custoshttp "github.com/custos-dev/custos/http"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
	"github.com/custos-dev/custos/store/memory"
	"github.com/custos-dev/custos/store/postgres"
	"github.com/custos-dev/custos/store/redis"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/token"
	"github.com/custos-dev/custos/vault"
	"gocloud.dev/blob"
)

// Version is the build's version, set with -ldflags "-X main.Version=…".
var Version = "dev"

// File names inside the data dir.
const (
	dbFile       = "custos.db"
	kekFile      = "kek.key"
	ownerKeyFile = "owner.key"
	keeperFile   = "keeper.url" // the keeper URL in force after a rotate-kek, when it holds no key material
	lockFile     = ".lock"
)

// Config is the server's configuration: defaults, then environment, then flags.
type Config struct {
	Addr          string // listen address
	DataDir       string
	Keeper        string // KEK keeper URL; "" means the data dir's keeper.url or file://DATA/kek.key
	TLSCert       string
	TLSKey        string
	InsecureHTTP  bool   // allow plain HTTP on a non-loopback address
	Sync          string // SQLite synchronous: normal or full
	LogLevel      string
	Database      string // postgres://… for many replicas; "" means SQLite in the data dir
	Redis         string // redis://… for shared hot state; "" means memory
	RateKey       string // per API key limit, N/window or off
	RateIP        string // per client IP limit
	RateAuthFail  string // authentication failures per client IP
	EgressPrivate string // comma-separated CIDRs/hosts outbound calls may reach in private ranges
	EgressHosts   string // comma-separated host names outbound calls may reach; "" means any public host

	// The model gateway.
	Privacy        string // the server's privacy floor: normal, sensitive or offline
	OnSecret       string // redact or block a request holding a stored secret's value
	AIRateKey      string // per API key limit on the model routes
	AIRateIP       string // per client IP limit on the model routes
	UsageRetention string // how long usage records are kept (e.g. 90d)
	GatewayTimeout string // bound on one forwarded model request, stream included

	// The tasks capability.
	BlobURL              string // artifact blob store; "" means file://DATA/artifacts
	PublicURL            string // base of the https form of launch links; "" means the listen URL
	PurgeInterval        string // how often expired and replaced artifacts are purged
	ArtifactRetention    string // how long artifacts live after their task completes
	ArtifactRetentionCap string // the most --artifact-retention may be
	ArtifactMaxBytes     string // one artifact
	RunMaxBytes          string // all live artifacts of one run
}

// DefaultConfig returns the embedded default: loopback, ./custos-data.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", DataDir: "custos-data", Sync: "normal", LogLevel: "info",
		RateKey: "3000/1m", RateIP: "6000/1m", RateAuthFail: "20/10m",
		Privacy: custos.PrivacyNormal, OnSecret: gateway.OnSecretRedact, AIRateKey: "600/1m", AIRateIP: "1200/1m",
		UsageRetention: "90d", GatewayTimeout: "15m",
		PurgeInterval: "10m", ArtifactRetention: "48h", ArtifactRetentionCap: "48h",
		ArtifactMaxBytes: "16MiB", RunMaxBytes: "128MiB"}
}

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field, Message string
}

// Error implements error.
func (e *ConfigError) Error() string { return e.Field + ": " + e.Message }

// Validate checks c, returning a *ConfigError naming the bad field.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return &ConfigError{"--addr", fmt.Sprintf("%q is not host:port", c.Addr)}
	}
	if c.DataDir == "" {
		return &ConfigError{"--data", "must not be empty"}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return &ConfigError{"--tls-cert/--tls-key", "give both or neither"}
	}
	if c.TLSCert == "" && !c.InsecureHTTP && !isLoopback(host) {
		return &ConfigError{"--addr", fmt.Sprintf("plain HTTP is only served on loopback; give --tls-cert and --tls-key for %s, or --insecure-http behind a TLS-terminating proxy", c.Addr)}
	}
	switch strings.ToLower(c.Sync) {
	case "normal", "full":
	default:
		return &ConfigError{"--sync", "use normal (survives a crash of the process) or full (fsync on every commit; survives power loss)"}
	}
	if c.Database != "" && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		return &ConfigError{"--database", "use a postgres:// URL, or leave it empty for SQLite in the data dir"}
	}
	if c.Redis != "" && !strings.HasPrefix(c.Redis, "redis://") && !strings.HasPrefix(c.Redis, "rediss://") {
		return &ConfigError{"--redis", "use a redis:// or rediss:// URL, or leave it empty for memory"}
	}
	if _, err := c.rateConfig(); err != nil {
		return err
	}
	if _, err := egress.NewClient(c.egressConfig()); err != nil {
		return &ConfigError{"--egress-allow-private/--egress-allow-hosts", err.Error()}
	}
	if custos.PrivacyRank(c.Privacy) == 0 {
		return &ConfigError{"--privacy", "use normal, sensitive or offline"}
	}
	if c.OnSecret != gateway.OnSecretRedact && c.OnSecret != gateway.OnSecretBlock {
		return &ConfigError{"--on-secret", "use redact or block"}
	}
	if _, err := c.aiRateConfig(); err != nil {
		return err
	}
	if d, err := custos.ParseDuration(c.UsageRetention); err != nil || d < 24*time.Hour {
		return &ConfigError{"--usage-retention", "use a duration of at least 1d, such as 90d"}
	}
	if d, err := custos.ParseDuration(c.GatewayTimeout); err != nil || d < time.Second || d > 24*time.Hour {
		return &ConfigError{"--gateway-timeout", "use a duration from 1s to 24h, such as 15m"}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return &ConfigError{"--log-level", "use debug, info, warn or error"}
	}
	if _, err := c.taskConfig(); err != nil {
		return err
	}
	return nil
}

// taskLimits are the parsed settings of the tasks capability.
type taskLimits struct {
	purgeInterval, retention, retentionCap time.Duration
	maxArtifact, maxRun                    int64
}

// taskConfig parses the settings of the tasks capability.
func (c *Config) taskConfig() (taskLimits, error) {
	var tl taskLimits
	if d, err := custos.ParseDuration(c.PurgeInterval); err != nil || d < time.Second || d > 24*time.Hour {
		return tl, &ConfigError{"--purge-interval", "use a duration from 1s to 24h, such as 10m"}
	} else {
		tl.purgeInterval = d
	}
	for _, f := range []struct {
		flag, val string
		dst       *time.Duration
	}{{"--artifact-retention", c.ArtifactRetention, &tl.retention}, {"--artifact-retention-cap", c.ArtifactRetentionCap, &tl.retentionCap}} {
		d, err := custos.ParseDuration(f.val)
		if err != nil || d < time.Minute || d > 3650*24*time.Hour {
			return tl, &ConfigError{f.flag, "use a duration of at least 1m, such as 48h or 7d"}
		}
		*f.dst = d
	}
	if tl.retention > tl.retentionCap {
		return tl, &ConfigError{"--artifact-retention", fmt.Sprintf("%s is above --artifact-retention-cap %s; lower it, or raise the cap (a decision for the operator: artifacts hold source code)", c.ArtifactRetention, c.ArtifactRetentionCap)}
	}
	for _, f := range []struct {
		flag, val string
		dst       *int64
	}{{"--artifact-max-bytes", c.ArtifactMaxBytes, &tl.maxArtifact}, {"--run-max-bytes", c.RunMaxBytes, &tl.maxRun}} {
		n, err := parseBytes(f.val)
		if err != nil {
			return tl, &ConfigError{f.flag, err.Error()}
		}
		*f.dst = n
	}
	if tl.maxArtifact > tl.maxRun {
		return tl, &ConfigError{"--artifact-max-bytes", fmt.Sprintf("%s is above --run-max-bytes %s", c.ArtifactMaxBytes, c.RunMaxBytes)}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return tl, &ConfigError{"--public-url", "want an http(s) URL without credentials, query or fragment, such as https://custos.example.com"}
		}
	}
	if c.BlobURL != "" && !strings.Contains(c.BlobURL, "://") {
		return tl, &ConfigError{"--blob-url", "want a URL such as file:///var/lib/custos/artifacts or s3://bucket?region=eu-west-1"}
	}
	return tl, nil
}

// parseBytes reads a size: a number of bytes, optionally with a KiB, MiB
// or GiB suffix (K, M, G and KB, MB, GB mean the same), from 1 KiB to 64 GiB.
func parseBytes(s string) (int64, error) {
	bad := fmt.Errorf("invalid size %q: use bytes or a size such as 512KiB, 16MiB or 1GiB", clip(s, 24))
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffixes []string
		mult     int64
	}{{[]string{"KiB", "KB", "K"}, 1 << 10}, {[]string{"MiB", "MB", "M"}, 1 << 20}, {[]string{"GiB", "GB", "G"}, 1 << 30}} {
		for _, suf := range u.suffixes {
			if len(num) > len(suf) && strings.EqualFold(num[len(num)-len(suf):], suf) {
				num, mult = num[:len(num)-len(suf)], u.mult
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	if num == "" || len(num) > 12 {
		return 0, bad
	}
	var n int64
	for _, ch := range num {
		if ch < '0' || ch > '9' {
			return 0, bad
		}
		n = n*10 + int64(ch-'0')
	}
	n *= mult
	if n < 1<<10 || n > 64<<30 {
		return 0, fmt.Errorf("invalid size %q: from 1KiB to 64GiB", clip(s, 24))
	}
	return n, nil
}

// blobURL is the artifact blob store's URL: --blob-url, or the artifacts
// directory in the data dir.
func (c *Config) blobURL() string {
	if c.BlobURL != "" {
		return c.BlobURL
	}
	return "file://" + filepath.Join(c.DataDir, "artifacts")
}

// rateConfig parses the rate limit settings.
func (c *Config) rateConfig() (ratelimit.Config, error) {
	var rc ratelimit.Config
	for _, f := range []struct {
		flag, val string
		dst       *ratelimit.Limit
	}{{"--rate-key", c.RateKey, &rc.PerKey}, {"--rate-ip", c.RateIP, &rc.PerIP}, {"--rate-auth-fail", c.RateAuthFail, &rc.AuthFailuresPerIP}} {
		l, err := ratelimit.ParseLimit(f.val)
		if err != nil {
			return rc, &ConfigError{f.flag, custos.ErrorMessage(err)}
		}
		*f.dst = l
	}
	return rc, nil
}

// aiRateConfig parses the model routes' rate limits; failed
// authentications count with the API's.
func (c *Config) aiRateConfig() (ratelimit.Config, error) {
	rc, err := c.rateConfig()
	if err != nil {
		return rc, err
	}
	for _, f := range []struct {
		flag, val string
		dst       *ratelimit.Limit
	}{{"--ai-rate-key", c.AIRateKey, &rc.PerKey}, {"--ai-rate-ip", c.AIRateIP, &rc.PerIP}} {
		l, err := ratelimit.ParseLimit(f.val)
		if err != nil {
			return rc, &ConfigError{f.flag, custos.ErrorMessage(err)}
		}
		*f.dst = l
	}
	rc.Namespace = "ai:"
	return rc, nil
}

// egressConfig is the outbound policy for webhooks and cloud model providers:
// public HTTPS hosts, plus the private destinations the operator lists.
func (c *Config) egressConfig() egress.Config {
	var cfg egress.Config
	for _, p := range strings.Split(c.EgressPrivate, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.AllowPrivate = append(cfg.AllowPrivate, p)
		}
	}
	for _, h := range strings.Split(c.EgressHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.AllowHosts = append(cfg.AllowHosts, h)
		}
	}
	return cfg
}

// redactURL returns u without its password, for printing.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// envOr returns the environment value of name, or of name_FILE read from a
// file (for values that may hold secrets), or def.
func envOr(getenv func(string) string, name, def string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	if p := getenv(name + "_FILE"); p != "" {
		b, err := os.ReadFile(p) // #nosec G304 -- the operator names the file
		if err != nil {
			return "", fmt.Errorf("read %s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return def, nil
}

// Main is the server program: ParseFlags, Run, then Close. Tests drive it
// the same way main does, with the data dir in a temp dir and port 0.
type Main struct {
	Config Config
	Stdout io.Writer // startup messages for the operator
	Stderr io.Writer // JSON logs

	Logger  *slog.Logger
	Now     func() time.Time // nil means time.Now; tests move time
	Store   custos.Store
	Hot     custos.HotStore
	Service *vault.Service

	keeper   envelope.Keeper
	bucket   *blob.Bucket
	Tasks    *tasks.Service
	server   *custoshttp.Server
	ln       net.Listener
	lock     *os.File
	cancel   context.CancelFunc
	done     chan struct{}
	serveErr chan error
}

// NewMain returns a Main with the default config.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Config: DefaultConfig(), Stdout: stdout, Stderr: stderr}
}

// ParseFlags reads the environment and then args into m.Config.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	c := &m.Config
	var err error
	for _, e := range []struct {
		dst  *string
		name string
	}{
		{&c.Addr, "CUSTOS_ADDR"}, {&c.DataDir, "CUSTOS_DATA"}, {&c.Keeper, "CUSTOS_KEEPER"},
		{&c.TLSCert, "CUSTOS_TLS_CERT"}, {&c.TLSKey, "CUSTOS_TLS_KEY"}, {&c.Sync, "CUSTOS_SYNC"}, {&c.LogLevel, "CUSTOS_LOG_LEVEL"},
		{&c.Database, "CUSTOS_DATABASE_URL"}, {&c.Redis, "CUSTOS_REDIS_URL"},
		{&c.RateKey, "CUSTOS_RATE_KEY"}, {&c.RateIP, "CUSTOS_RATE_IP"}, {&c.RateAuthFail, "CUSTOS_RATE_AUTH_FAIL"},
		{&c.EgressPrivate, "CUSTOS_EGRESS_ALLOW_PRIVATE"}, {&c.EgressHosts, "CUSTOS_EGRESS_ALLOW_HOSTS"},
		{&c.Privacy, "CUSTOS_PRIVACY"}, {&c.OnSecret, "CUSTOS_ON_SECRET"},
		{&c.AIRateKey, "CUSTOS_AI_RATE_KEY"}, {&c.AIRateIP, "CUSTOS_AI_RATE_IP"},
		{&c.UsageRetention, "CUSTOS_USAGE_RETENTION"}, {&c.GatewayTimeout, "CUSTOS_GATEWAY_TIMEOUT"},
		{&c.BlobURL, "CUSTOS_BLOB_URL"}, {&c.PublicURL, "CUSTOS_PUBLIC_URL"}, {&c.PurgeInterval, "CUSTOS_PURGE_INTERVAL"},
		{&c.ArtifactRetention, "CUSTOS_ARTIFACT_RETENTION"}, {&c.ArtifactRetentionCap, "CUSTOS_ARTIFACT_RETENTION_CAP"},
		{&c.ArtifactMaxBytes, "CUSTOS_ARTIFACT_MAX_BYTES"}, {&c.RunMaxBytes, "CUSTOS_RUN_MAX_BYTES"},
	} {
		if *e.dst, err = envOr(getenv, e.name, *e.dst); err != nil {
			return err
		}
	}
	if v := getenv("CUSTOS_INSECURE_HTTP"); v == "1" || v == "true" {
		c.InsecureHTTP = true
	}

	fs := flag.NewFlagSet("custos serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", c.Addr, "")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "")
	fs.StringVar(&c.Keeper, "keeper", c.Keeper, "")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "")
	fs.StringVar(&c.Sync, "sync", c.Sync, "")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "")
	fs.StringVar(&c.Database, "database", c.Database, "")
	fs.StringVar(&c.Redis, "redis", c.Redis, "")
	fs.StringVar(&c.RateKey, "rate-key", c.RateKey, "")
	fs.StringVar(&c.RateIP, "rate-ip", c.RateIP, "")
	fs.StringVar(&c.RateAuthFail, "rate-auth-fail", c.RateAuthFail, "")
	fs.StringVar(&c.EgressPrivate, "egress-allow-private", c.EgressPrivate, "")
	fs.StringVar(&c.EgressHosts, "egress-allow-hosts", c.EgressHosts, "")
	fs.StringVar(&c.Privacy, "privacy", c.Privacy, "")
	fs.StringVar(&c.OnSecret, "on-secret", c.OnSecret, "")
	fs.StringVar(&c.AIRateKey, "ai-rate-key", c.AIRateKey, "")
	fs.StringVar(&c.AIRateIP, "ai-rate-ip", c.AIRateIP, "")
	fs.StringVar(&c.UsageRetention, "usage-retention", c.UsageRetention, "")
	fs.StringVar(&c.GatewayTimeout, "gateway-timeout", c.GatewayTimeout, "")
	fs.StringVar(&c.BlobURL, "blob-url", c.BlobURL, "")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "")
	fs.StringVar(&c.PurgeInterval, "purge-interval", c.PurgeInterval, "")
	fs.StringVar(&c.ArtifactRetention, "artifact-retention", c.ArtifactRetention, "")
	fs.StringVar(&c.ArtifactRetentionCap, "artifact-retention-cap", c.ArtifactRetentionCap, "")
	fs.StringVar(&c.ArtifactMaxBytes, "artifact-max-bytes", c.ArtifactMaxBytes, "")
	fs.StringVar(&c.RunMaxBytes, "run-max-bytes", c.RunMaxBytes, "")
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error(), serveUsage}
	} else if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0)), serveUsage}
	}
	return c.Validate()
}

// openStore opens the configured database: PostgreSQL when --database is
// given, else the SQLite file in the data dir. noMigrate opens it as it is.
func (c *Config) openStore(ctx context.Context, noMigrate bool) (custos.Store, error) {
	if c.Database != "" {
		st, err := postgres.Open(ctx, c.Database, postgres.Options{NoMigrate: noMigrate})
		if err != nil {
			return nil, fmt.Errorf("open database %s: %w", redactURL(c.Database), err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, filepath.Join(c.DataDir, dbFile), sqlite.Options{Synchronous: strings.ToUpper(c.Sync), NoMigrate: noMigrate})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return st, nil
}

// serverLocker is a shared database (PostgreSQL) on which running servers
// hold a lock that offline admin commands need exclusively; on SQLite the
// data dir's file lock does the same.
type serverLocker interface {
	LockShared(ctx context.Context) error
	TryLockExclusive(ctx context.Context) (release func(), err error)
}

// keeperURL returns the keeper URL in force and whether it is the default
// key file, which Run creates on first start.
func (c *Config) keeperURL() (string, bool, error) {
	if c.Keeper != "" {
		return c.Keeper, false, nil
	}
	b, err := os.ReadFile(filepath.Join(c.DataDir, keeperFile)) // #nosec G304 -- inside the data dir
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	return "file://" + filepath.Join(c.DataDir, kekFile), true, nil
}

// Run opens the data dir, checks the KEK, bootstraps a fresh database and
// starts serving in the background. It returns once the listener is open.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()
	c := &m.Config
	if m.Logger == nil {
		m.Logger = newLogger(m.Stderr, c.LogLevel)
	}
	// The server's live heap is small (keys, devices, policies, ciphertext of
	// the hot projects); trading a little memory for less GC work raises the
	// read throughput by about a tenth. GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if m.lock, err = lockDataDir(c.DataDir, false); err != nil {
		return err
	}

	kurl, isDefault, err := c.keeperURL()
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	if m.keeper, err = envelope.OpenKeeper(ctx, kurl, envelope.OpenOptions{Create: isDefault}); err != nil {
		return fmt.Errorf("open keeper %s: %w", envelope.Redact(kurl), err)
	}
	if m.Store, err = c.openStore(ctx, false); err != nil {
		return err
	}
	if l, ok := m.Store.(serverLocker); ok {
		if err := l.LockShared(ctx); err != nil {
			return err
		}
	}
	if c.Redis != "" {
		if m.Hot, err = redis.Open(ctx, c.Redis); err != nil {
			return fmt.Errorf("open redis %s: %w", redactURL(c.Redis), err)
		}
	} else {
		m.Hot = memory.New()
	}
	rc, _ := c.rateConfig() // validated in ParseFlags
	ecfg := c.egressConfig()
	outbound, err := egress.NewClient(ecfg)
	if err != nil {
		return err
	}
	m.Service = vault.New(vault.Config{Store: m.Store, Keeper: m.keeper, Logger: m.Logger, Now: m.Now,
		CheckNotifyURL: func(u string) error { return egress.CheckURL(ecfg, u) }})
	if err := m.Service.CheckKeeper(ctx); err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	tok, created, err := m.Service.Bootstrap(ctx, "default")
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if created {
		path := filepath.Join(c.DataDir, ownerKeyFile)
		if err := writeFileAtomic(c.DataDir, path, []byte(tok+"\n")); err != nil {
			return fmt.Errorf("write owner key: %w", err)
		}
		abs, _ := filepath.Abs(path)
		fmt.Fprintf(m.Stdout, "first start: created the owner API key and wrote it to %s (mode 0600)\n", abs)
		fmt.Fprintf(m.Stdout, "  use it with: export CUSTOS_API_KEY=$(cat %s)\n", abs)
	}

	if m.ln, err = net.Listen("tcp", c.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	gw, vg, usage, err := m.gateway(ecfg)
	if err != nil {
		return err
	}
	retention, _ := custos.ParseDuration(c.UsageRetention) // validated in ParseFlags
	tl, _ := c.taskConfig()                                // validated in ParseFlags
	if m.bucket, err = tasks.OpenBucket(ctx, c.blobURL()); err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	publicURL := c.PublicURL
	if publicURL == "" {
		publicURL = m.URL()
	}
	if m.Tasks, err = tasks.New(tasks.Config{Store: m.Store, Keeper: m.keeper, Bucket: m.bucket, Now: m.Now, Logger: m.Logger,
		PublicURL: publicURL, Retention: tl.retention, RetentionCap: tl.retentionCap,
		MaxArtifactBytes: tl.maxArtifact, MaxRunBytes: tl.maxRun}); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	srv := custoshttp.NewServer(custoshttp.Config{
		Services: custoshttp.Services{Keys: m.Service, Secrets: m.Service, Devices: m.Service,
			Policies: m.Service, Sessions: m.Service, Audit: m.Service,
			Providers: m.Service, Budgets: m.Service, Privacy: m.Service, Usage: m.Service,
			Trackers: m.Tasks, Launch: m.Tasks, Tasks: m.Tasks},
		Logger:  m.Logger,
		Ready:   m.Store.Ping,
		Limiter: ratelimit.New(m.Hot, rc, m.Logger),
		Version: Version,
		Gateway: gw,
	})
	m.server = srv
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel, m.done, m.serveErr = cancel, make(chan struct{}), make(chan error, 1)
	var workers sync.WaitGroup
	workers.Go(func() { m.Service.RunNotifier(bg, outbound) })
	workers.Go(func() { usage.Run(bg) })
	workers.Go(vg.Warm) // the first model request need not compile the redaction rules
	workers.Go(func() { m.Service.RunUsagePurge(bg, retention, time.Hour) })
	workers.Go(func() { m.Tasks.RunPurger(bg, tl.purgeInterval) })
	go func() { defer close(m.done); workers.Wait() }()
	ln := m.ln
	go func() {
		var err error
		if c.TLSCert != "" {
			err = srv.ServeTLS(ln, c.TLSCert, c.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		m.serveErr <- err
	}()

	abs, _ := filepath.Abs(c.DataDir)
	fmt.Fprintf(m.Stdout, "custos %s listening on %s\n", Version, m.URL())
	db := "SQLite in the data dir"
	if c.Database != "" {
		db = "database " + redactURL(c.Database)
	}
	hot := "rate limits in memory"
	if c.Redis != "" {
		hot = "rate limits in redis " + redactURL(c.Redis)
	}
	fmt.Fprintf(m.Stdout, "data dir: %s (%s, keeper %s, %s)\n", abs, db, envelope.Redact(kurl), hot)
	fmt.Fprintf(m.Stdout, "model gateway: OPENAI_BASE_URL=%s/v1 ANTHROPIC_BASE_URL=%s (privacy %s; add providers with custos provider add)\n", m.URL(), m.URL(), c.Privacy)
	fmt.Fprintf(m.Stdout, "tasks: artifacts in %s, kept %s after a task completes, purged every %s; launch links at %s%s\n",
		envelope.Redact(c.blobURL()), fmtDuration(tl.retention), fmtDuration(tl.purgeInterval), publicURL, custos.LaunchPath)
	return nil
}

// gateway builds the model gateway over the vault: per-org providers,
// privacy rules and known values, budgets in the store, usage recorded in
// batches.
func (m *Main) gateway(ecfg egress.Config) (*gateway.Handler, *vault.Gateway, *vault.UsageRecorder, error) {
	c := &m.Config
	arc, _ := c.aiRateConfig()                         // validated in ParseFlags
	total, _ := custos.ParseDuration(c.GatewayTimeout) // validated in ParseFlags
	vg := m.Service.NewGateway(redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig())})
	usage := m.Service.NewUsageRecorder()
	ecfg.AllowPrivate = nil // private destinations are local providers, each allowed on its own
	gw, err := gateway.NewHandler(gateway.Config{
		Keys:         m.Service,
		Resolve:      vg.Setup,
		Egress:       ecfg,
		Mode:         c.Privacy,
		OnSecret:     c.OnSecret,
		Budgets:      vg,
		Limiter:      ratelimit.New(m.Hot, arc, m.Logger),
		OnUsage:      usage.Record,
		OnKnown:      vg.KnownFound,
		OnAuth:       func(r *nethttp.Request, k *custos.APIKey) { custoshttp.NoteKey(r, k.ID) },
		Logger:       m.Logger,
		TotalTimeout: total,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("gateway: %w", err)
	}
	return gw, vg, usage, nil
}

// URL returns the base URL the server listens on.
func (m *Main) URL() string {
	scheme := "http"
	if m.Config.TLSCert != "" {
		scheme = "https"
	}
	if m.ln == nil {
		return ""
	}
	return scheme + "://" + m.ln.Addr().String()
}

// Close stops the server gracefully and releases everything.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.server.Shutdown(ctx))
		cancel()
		m.server = nil
	}
	if m.cancel != nil {
		m.cancel()
		<-m.done
		m.cancel = nil
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
		m.Store = nil
	}
	if m.bucket != nil {
		errs = append(errs, m.bucket.Close())
		m.bucket = nil
	}
	if m.Hot != nil {
		errs = append(errs, m.Hot.Close())
		m.Hot = nil
	}
	if m.keeper != nil {
		errs = append(errs, m.keeper.Close())
		m.keeper = nil
	}
	if m.lock != nil {
		errs = append(errs, m.lock.Close())
		m.lock = nil
	}
	return errors.Join(errs...)
}

// lockDataDir takes a lock on the data dir: shared for servers (replicas may
// share a data dir), exclusive and non-blocking for offline admin commands.
func lockDataDir(dir string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- inside the data dir
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	how := syscall.LOCK_SH | syscall.LOCK_NB
	if exclusive {
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil { // #nosec G115 -- file descriptors fit in int
		_ = f.Close()
		if exclusive {
			return nil, fmt.Errorf("a custos server is running on data dir %s; stop it first", dir)
		}
		return nil, fmt.Errorf("data dir %s is locked by an offline admin command (custos admin …); wait for it to finish", dir)
	}
	return f, nil
}

// newLogger returns a slog JSON logger whose string values are scrubbed of
// anything that looks like a custos token.
func newLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Value.Kind() {
			case slog.KindString:
				if s := a.Value.String(); strings.Contains(s, "cst_") {
					return slog.String(a.Key, token.Redact(s))
				}
			case slog.KindAny:
				if err, ok := a.Value.Any().(error); ok && strings.Contains(err.Error(), "cst_") {
					return slog.String(a.Key, token.Redact(err.Error()))
				}
			}
			return a
		},
	}))
}

// serveUsage is the help of custos serve.
const serveUsage = `Usage: custos serve [flags]

Runs the custos server. With no flags it serves on 127.0.0.1:8080 with
everything in ./custos-data: the SQLite database, the KEK key file (0600)
and, on first start, the owner API key in custos-data/owner.key (0600).

Flags (environment variable in brackets; secrets also take NAME_FILE):
  --addr HOST:PORT     listen address (CUSTOS_ADDR; default 127.0.0.1:8080)
  --data DIR           data dir (CUSTOS_DATA; default ./custos-data)
  --keeper URL         KEK keeper: file://PATH or base64key://KEY
                       (CUSTOS_KEEPER, CUSTOS_KEEPER_FILE; default file://DATA/kek.key)
  --tls-cert FILE      TLS certificate (CUSTOS_TLS_CERT); TLS 1.2 or newer
  --tls-key FILE       TLS key (CUSTOS_TLS_KEY)
  --insecure-http      allow plain HTTP on a non-loopback address (CUSTOS_INSECURE_HTTP=1)
  --sync normal|full   SQLite durability: normal survives a process crash,
                       full fsyncs every commit (CUSTOS_SYNC; default normal)
  --log-level LEVEL    debug, info, warn or error (CUSTOS_LOG_LEVEL)
  --database URL       postgres://… shared by any number of replicas
                       (CUSTOS_DATABASE_URL, CUSTOS_DATABASE_URL_FILE; default SQLite in DATA)
  --redis URL          redis://… for rate limits shared by replicas
                       (CUSTOS_REDIS_URL, CUSTOS_REDIS_URL_FILE; default memory)
  --rate-key N/WINDOW  requests per API key (CUSTOS_RATE_KEY; default 3000/1m; off)
  --rate-ip N/WINDOW   requests per client IP (CUSTOS_RATE_IP; default 6000/1m; off)
  --rate-auth-fail N/WINDOW
                       failed authentications per client IP before 429
                       (CUSTOS_RATE_AUTH_FAIL; default 20/10m)
  --egress-allow-private LIST
                       CIDRs or host names outbound calls (notify webhooks) may
                       reach in private, loopback or link-local ranges; by
                       default only public HTTPS hosts (CUSTOS_EGRESS_ALLOW_PRIVATE)
  --egress-allow-hosts LIST
                       host names (exact or *.example.com) outbound calls — notify
                       webhooks and cloud model providers — may reach; default any
                       public host (CUSTOS_EGRESS_ALLOW_HOSTS)

Model gateway (OPENAI_BASE_URL=http://HOST:PORT/v1, ANTHROPIC_BASE_URL=http://HOST:PORT;
providers are added with custos provider add; see docs/GATEWAY.md):
  --privacy MODE       the least strict privacy mode any request runs in: normal,
                       sensitive (cloud only after redaction, code context local
                       only) or offline (local providers only, enforced at connect
                       time) (CUSTOS_PRIVACY; default normal)
  --on-secret redact|block
                       a request holding a stored secret's value is redacted and
                       audited, or refused with 403 (CUSTOS_ON_SECRET; default redact)
  --ai-rate-key N/WINDOW
                       model requests per API key (CUSTOS_AI_RATE_KEY; default 600/1m)
  --ai-rate-ip N/WINDOW
                       model requests per client IP (CUSTOS_AI_RATE_IP; default 1200/1m)
  --usage-retention D  how long usage records are kept (CUSTOS_USAGE_RETENTION; default 90d)
  --gateway-timeout D  bound on one model request, streaming included
                       (CUSTOS_GATEWAY_TIMEOUT; default 15m)

Tasks (tracker launch links, task permits, encrypted artifacts; see docs/TASKS.md):
  --blob-url URL       where encrypted artifacts go: file://PATH or s3://BUCKET?region=…
                       (CUSTOS_BLOB_URL; default file://DATA/artifacts)
  --public-url URL     base of the https form of launch links, as users reach
                       this server (CUSTOS_PUBLIC_URL; default the listen URL)
  --artifact-retention D
                       how long artifacts live after their task completes
                       (CUSTOS_ARTIFACT_RETENTION; default 48h)
  --artifact-retention-cap D
                       the most --artifact-retention may be
                       (CUSTOS_ARTIFACT_RETENTION_CAP; default 48h)
  --artifact-max-bytes N
                       largest artifact, e.g. 16MiB (CUSTOS_ARTIFACT_MAX_BYTES; default 16MiB)
  --run-max-bytes N    all live artifacts of one run (CUSTOS_RUN_MAX_BYTES; default 128MiB)
  --purge-interval D   how often expired and replaced artifacts are purged; the
                       purge also runs at start (CUSTOS_PURGE_INTERVAL; default 10m)

Example:
  custos serve
  custos serve --addr 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem
  custos serve --privacy sensitive --on-secret block
  custos serve --database postgres://custos:…@db:5432/custos --redis redis://cache:6379/0 \
               --keeper file:///etc/custos/kek.key --addr 0.0.0.0:8443 --tls-cert c.pem --tls-key k.pem
`

// runServe runs the server until ctx is done.
func (c *CLI) runServe(ctx context.Context, args []string) error {
	if isHelp(args) {
		return &helpRequest{serveUsage}
	}
	m := NewMain(c.Stdout, c.Stderr)
	if err := m.ParseFlags(args, c.Getenv); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return &usageError{err.Error(), serveUsage}
		}
		return err
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.Stdout, "shutting down")
	case err := <-m.serveErr:
		if err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			_ = m.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	return m.Close()
}

// isHelp reports whether args ask for help.
func isHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			return true
		case "--":
			return false
		}
	}
	return false
}
