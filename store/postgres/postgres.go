// Package postgres is the scale-out storage backend of custos: any number
// of `custos serve` replicas share one PostgreSQL database through a pgx
// connection pool. It passes the same conformance suite (store/storetest)
// as the embedded SQLite backend and keeps the same schema semantics: times
// are BIGINT unix microseconds in UTC, so audit events read back exactly as
// they were sealed and custos.VerifyChain recomputes the same hashes.
//
// # One audit chain across replicas
//
// Every org's audit log is one hash chain, and replicas append to it
// concurrently. The table audit_heads holds, per org, the seq and hash of
// the chain's last event. Appending an event happens in the same transaction
// as the change it records: insert the org's genesis head if it has none
// (INSERT … ON CONFLICT DO NOTHING), lock the head row (SELECT seq, hash …
// FOR UPDATE), seal the event after it (seq+1, prev_hash = hash), insert the
// event and move the head. The row lock serializes the appenders of one org
// across every replica and connection, so there is exactly one chain with no
// gap and no fork; appenders of different orgs lock different rows and
// never wait for each other. A transaction that fails rolls back its events
// and its head together, so a failed change never advances the chain.
// Appends that touch several orgs lock their heads in org id order, so two
// of them cannot deadlock. The primary key (org_id, seq) of audit_events
// backs this up: a second event with the same seq cannot be stored.
//
// # Single-use operations and counters
//
// Every single-use or counter operation is one atomic statement or a
// transaction that holds the row locks it decides on, so it is race-free
// across processes, not only goroutines: a confirmation is consumed with
// UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) AND used_at IS NULL;
// device decisions, key rotation and revocation, secret updates and budget
// reservations are conditional UPDATEs on the row's current state; the outbox is claimed
// with FOR UPDATE SKIP LOCKED; Bootstrap runs under a transaction-scoped
// advisory lock. Transactions run at READ COMMITTED; one that loses a
// serialization or deadlock race is retried a few times, then reported as
// ECONFLICT.
//
// # The cache epoch
//
// The single row of cache_epoch is advanced by statement-level triggers on
// every insert, update, delete or truncate of api_keys, devices, policies,
// secrets, secret_versions, model_providers, privacy_rules and budgets, in
// the same transaction, whichever process makes the change, so in-memory
// caches of those tables stay exact. Budget counters change on every
// gateway request and have no trigger.
//
// # Errors
//
// Unique violations are ECONFLICT and foreign key violations EINVALID. When
// the database cannot be reached (refused or broken connections, a server
// shutting down) a method returns EUNAVAILABLE, "the database is
// unavailable; nothing was changed", which the HTTP layer turns into 503;
// the cause stays in the error chain for the log. A cancelled or expired
// context, or a connection lost while committing (when the outcome is
// unknown), is reported as a plain error, which the services treat as
// internal. Messages never hold values or tokens.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/custos-dev/custos"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var _ custos.Store = (*Store)(nil)

// Defaults of Options.
const (
	DefaultMaxConns       = 20               // connections in the pool
	DefaultConnectTimeout = 10 * time.Second // when the URL sets no connect_timeout
)

// Audit listing limits, as in the SQLite backend.
const (
	DefaultAuditLimit = 1000  // events per listing when AuditFilter.Limit is 0
	MaxAuditLimit     = 10000 // larger limits are capped to this
)

// maxAttempts is how often a transaction that lost a serialization or
// deadlock race is tried before the call fails with ECONFLICT.
const maxAttempts = 5

// Advisory lock keys: the first is held while migrating, the second while
// bootstrapping. Both are transaction-scoped.
const (
	migrateLockKey   int64 = 0x637573746f7301 // "custos" 01
	bootstrapLockKey int64 = 0x637573746f7302 // "custos" 02
)

// Options tune the store. The zero value is the recommended configuration.
type Options struct {
	// MaxConns is the size of the connection pool (0 means DefaultMaxConns).
	MaxConns int32

	// NoMigrate opens the database without applying pending migrations
	// (for `custos admin migrate --status`); Open then only checks that the
	// database answers.
	NoMigrate bool
}

// Store implements custos.Store on a PostgreSQL database. Open it with
// Open; it is safe for concurrent use, and any number of Stores, in any
// number of processes, may share one database.
type Store struct {
	pool *pgxpool.Pool

	lockMu    sync.Mutex
	lockConns []*pgxpool.Conn // connections holding LockShared

	appends   chan *appendReq // AppendAudit calls waiting for the appender
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Open connects to the database at url (a postgres:// URL or key=value
// connection string; a search_path parameter selects a schema) and, unless
// opts.NoMigrate is set, applies the embedded migrations it lacks, under an
// advisory lock so replicas starting together apply each exactly once. It
// refuses a database whose schema is newer than this binary. Returns
// EUNAVAILABLE if the database cannot be reached.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("postgres: invalid database url: use postgres://user:password@host:port/database or key=value pairs")
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fail("open pool", err)
	}
	s := &Store{pool: pool, appends: make(chan *appendReq, 2*appendBatch), quit: make(chan struct{}), done: make(chan struct{})}
	if opts.NoMigrate {
		err = s.ping(ctx, false)
	} else {
		err = s.migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	go s.appender()
	return s, nil
}

// Close closes every connection of the pool. Calls after Close fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.lockMu.Lock()
		for _, c := range s.lockConns {
			c.Release() // the pool closes the connection, which ends its locks
		}
		s.lockConns = nil
		s.lockMu.Unlock()
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers and accepts writes (it is not a
// read-only standby and the session is not read-only). It is meant for
// readiness probes. Returns EUNAVAILABLE if the database cannot be reached.
func (s *Store) Ping(ctx context.Context) error { return s.ping(ctx, true) }

// ping checks that the database answers, and with writable that it takes
// writes.
func (s *Store) ping(ctx context.Context, writable bool) error {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'`).Scan(&ok); err != nil {
		return fail("ping", err)
	}
	if writable && !ok {
		return custos.Errorf(custos.EUNAVAILABLE, "the database is read-only (a standby?); nothing was changed")
	}
	return nil
}

// tx runs fn in a transaction and commits it. A transaction that lost a
// serialization or deadlock race is run again, up to maxAttempts times, so
// fn must be safe to repeat. Errors are mapped by fail; what names the
// operation in them.
func (s *Store) tx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		if err = s.tryTx(ctx, fn); err == nil || !retryable(err) || attempt == maxAttempts {
			break
		}
		// Back off a little, with jitter, so the racers do not meet again.
		d := time.Duration(attempt)*2*time.Millisecond + rand.N(3*time.Millisecond) // #nosec G404 -- jitter, not a secret
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(what, ctx.Err())
		case <-t.C:
		}
	}
	return fail(what, err)
}

// tryTx runs fn in one transaction.
func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) (err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			rollback(tx)
			panic(r)
		}
	}()
	if err := fn(tx); err != nil {
		rollback(tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return &commitError{err}
	}
	return nil
}

// rollback ends tx, giving a healthy connection back to the pool even when
// the caller's context is done.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// commitError is an error returned by COMMIT: if the connection broke then,
// the transaction may or may not have committed.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// retryable reports whether err is a serialization failure or a deadlock,
// after which the transaction may simply be run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// errUnavailable is the error of every call made while the database cannot
// be reached.
var errUnavailable = custos.Errorf(custos.EUNAVAILABLE, "the database is unavailable; nothing was changed")

// fail maps err, from the operation what, to the error a method returns:
// custos errors pass through; unique and foreign key violations, lost races
// and unreachable databases get their custos codes; anything else, a done
// context included, is wrapped as a plain (internal) error.
func fail(what string, err error) error {
	var ce *custos.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	var commit *commitError
	committing := errors.As(err, &commit)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return custos.Errorf(custos.ECONFLICT, "the change conflicts with an existing object; nothing was changed")
		case pe.Code == "23503":
			return custos.Errorf(custos.EINVALID, "the change refers to an object that does not exist; nothing was changed")
		case pe.Code == "40001" || pe.Code == "40P01":
			return custos.Errorf(custos.ECONFLICT, "the database was busy with conflicting changes; nothing was changed; try again")
		case !committing && serverUnavailable(pe.Code):
			return fmt.Errorf("%w: %w", errUnavailable, err)
		}
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	// A connection that broke before COMMIT was sent rolled the transaction
	// back; one that broke during COMMIT leaves the outcome unknown.
	if (!committing && connectionFailed(err)) || (committing && pgconn.SafeToRetry(err)) {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// serverUnavailable reports whether SQLSTATE code says the server cannot
// serve: connection exceptions, shutdowns, start-up, too many connections.
func serverUnavailable(code string) bool {
	return len(code) == 5 && code[:2] == "08" ||
		slices.Contains([]string{"57P01", "57P02", "57P03", "53300"}, code)
}

// connectionFailed reports whether err means the database could not be
// reached or the connection broke.
func connectionFailed(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// conflictOr returns an ECONFLICT error with the formatted message if err
// is a uniqueness violation, and err otherwise (for fail to map).
func conflictOr(err error, format string, args ...any) error {
	if isUnique(err) {
		return custos.Errorf(custos.ECONFLICT, format, args...)
	}
	return err
}

// micros returns t as unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros returns t as unix microseconds, or nil (NULL) for nil.
func nullMicros(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	x := t.UnixMicro()
	return &x
}

// blob returns b, or an empty non-nil slice for nil (pgx sends a nil slice
// as NULL).
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// serverLockKey is the advisory lock running servers hold shared and offline
// admin commands (KEK rotation) take exclusively.
const serverLockKey = 0x637573746f73 // "custos"

// LockShared holds a shared advisory lock for as long as the store is open:
// running servers take it so an offline admin command on the same database
// (which needs it exclusively) refuses to run while any replica serves.
func (s *Store) LockShared(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fail("server lock", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock_shared($1)`, serverLockKey); err != nil {
		conn.Release()
		return fail("server lock", err)
	}
	s.lockMu.Lock()
	s.lockConns = append(s.lockConns, conn)
	s.lockMu.Unlock()
	return nil
}

// TryLockExclusive takes the server lock exclusively, without waiting.
// Returns ECONFLICT while any server holds it shared. release ends the lock.
func (s *Store) TryLockExclusive(ctx context.Context) (release func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fail("admin lock", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, serverLockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, fail("admin lock", err)
	}
	if !ok {
		conn.Release()
		return nil, custos.Errorf(custos.ECONFLICT, "a custos server is running on this database; stop every replica first")
	}
	return func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, serverLockKey)
		conn.Release()
	}, nil
}
