// Package sqlite is the embedded default storage backend of custos: one
// SQLite file in WAL mode, written by one goroutine that groups concurrent
// writes into one commit, and read through a pool of query-only connections.
//
// Every mutating method that takes an audit event appends it to the org's
// hash chain in the same transaction as the change, so a change and its
// audit record are durable together or not at all. Appending seals the
// event: it sets Seq, PrevHash and Hash, after normalising Time to UTC with
// microsecond precision (what the database keeps). A nil event appends
// nothing. A write returns only once its transaction has committed.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-dev/custos"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ custos.Store = (*Store)(nil)

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("sqlite: store is closed")

// Defaults of Options.
const (
	DefaultBusyTimeout = 5 * time.Second // wait for a lock held by another process
	DefaultReaders     = 4               // read connections (at least one per CPU)
)

// maxBatch is the largest number of writes grouped into one commit.
const maxBatch = 256

// Options tune the store. The zero value is the recommended configuration.
type Options struct {
	// Synchronous is the SQLite synchronous pragma: "NORMAL" (default; with
	// WAL every committed transaction survives a kill -9 of the process) or
	// "FULL" (fsync on every commit; survives power loss).
	Synchronous string

	// BusyTimeout is how long a connection waits for a lock held by another
	// process before it fails (0 means DefaultBusyTimeout).
	BusyTimeout time.Duration

	// Readers is the size of the read-only connection pool (0 means
	// DefaultReaders, or the number of CPUs if that is larger).
	Readers int

	// NoMigrate opens the database as it is, without applying pending
	// migrations (for `custos admin migrate --status`).
	NoMigrate bool
}

// Store implements custos.Store on one SQLite file. Open it with Open; it is
// safe for concurrent use.
type Store struct {
	path string
	wdb  *sql.DB   // one connection, owned by the writer goroutine
	conn *sql.Conn // the writer's connection
	rdb  *sql.DB   // query-only pool

	mu     sync.RWMutex // held shared while enqueueing, exclusively by Close
	closed bool
	ops    chan *op
	quit   chan struct{}
	done   chan struct{}

	// Writer goroutine state: only run and the ops it calls touch these.
	wstmts map[string]*sql.Stmt
	heads  map[string]auditHead // org id → last committed-or-pending (seq, hash)
	// dataVersion is the writer connection's PRAGMA data_version at its last
	// batch; it changes only when another connection (another process on
	// the same file) committed, and then heads may be stale.
	dataVersion int64

	rstmts sync.Map // query → *sql.Stmt on rdb

	// wal tells CacheEpoch whether anything was committed since its last
	// query; nil (not WAL mode, no mapping) means a query every time.
	wal          *walWatch
	epochQueries atomic.Int64 // CacheEpoch's queries, for tests

	batches, writes atomic.Int64 // counters for Stats

	closeOnce sync.Once
	closeErr  error
}

// op is one write: fn runs inside its own savepoint of the batch's
// transaction; its result is sent on done once the batch commits.
type op struct {
	fn   func(w *wtx) error
	done chan error
}

// auditHead is the last event of an org's chain.
type auditHead struct {
	seq  int64
	hash string
}

// headUndo remembers an org's head before an op changed it.
type headUndo struct {
	head auditHead
	had  bool
}

// Open opens (creating it 0600 if needed) the database at path, whose parent
// directory must exist, and brings its schema up to date unless
// opts.NoMigrate is set.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = "NORMAL"
	case "NORMAL", "FULL":
	default:
		return nil, fmt.Errorf("sqlite: invalid synchronous mode %q: want NORMAL or FULL", opts.Synchronous)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.Readers <= 0 {
		opts.Readers = max(DefaultReaders, runtime.NumCPU())
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolve path: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the path is operator configuration (data dir, key file)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: create database file: %w", err)
	}

	s := &Store{
		path:   abs,
		ops:    make(chan *op, 2*maxBatch),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		wstmts: make(map[string]*sql.Stmt),
		heads:  make(map[string]auditHead),
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", opts.BusyTimeout.Milliseconds())
	base := "file:" + escapePath(abs) + "?" + busy

	// temp_store(MEMORY): the statement journals of the writer's per-op
	// savepoints stay in memory instead of temporary files (a fifth off a
	// batch of usage records, and no page copies on disk).
	s.wdb, err = sql.Open("sqlite", base+
		"&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_pragma=temp_store(MEMORY)"+
		"&_pragma=synchronous("+syncMode+")")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if s.conn, err = s.wdb.Conn(ctx); err != nil {
		_ = s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	if !opts.NoMigrate {
		if err := migrate(ctx, s.conn); err != nil {
			_ = s.conn.Close()
			_ = s.wdb.Close()
			return nil, err
		}
	}

	s.rdb, err = sql.Open("sqlite", base+"&_query_only=1")
	if err != nil {
		_ = s.conn.Close()
		_ = s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	s.rdb.SetMaxOpenConns(opts.Readers)
	s.rdb.SetMaxIdleConns(opts.Readers)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if err := s.rdb.PingContext(ctx); err != nil {
		_ = s.rdb.Close()
		_ = s.conn.Close()
		_ = s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}

	s.wal = watchWAL(ctx, s.conn, abs)
	go s.run()
	return s, nil
}

// watchWAL maps the WAL index of the database at path if the writer
// connection conn has it in WAL mode, or returns nil.
func watchWAL(ctx context.Context, conn *sql.Conn, path string) *walWatch {
	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		return nil
	}
	// A read makes sure the -shm file exists and is initialized.
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(new(int)); err != nil {
		return nil
	}
	w, err := openWALWatch(path + "-shm")
	if err != nil {
		return nil
	}
	return w
}

// escapePath turns a file path into the path part of a SQLite URI.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(p))
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Close stops the writer after it has committed every queued write, then
// closes the connections. Writes after Close return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		<-s.done

		var errs []error
		for _, st := range s.wstmts {
			errs = append(errs, st.Close())
		}
		s.rstmts.Range(func(_, v any) bool {
			errs = append(errs, v.(*sql.Stmt).Close())
			return true
		})
		if s.wal != nil {
			errs = append(errs, s.wal.close())
		}
		errs = append(errs, s.conn.Close(), s.wdb.Close(), s.rdb.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// Stats are counters of the writer since Open.
type Stats struct {
	Batches int64 // transactions the writer committed or tried to
	Writes  int64 // writes (ops) in those transactions; Writes/Batches is the mean batch size
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{Batches: s.batches.Load(), Writes: s.writes.Load()}
}

// Ping checks that the database answers reads and that the writer can take
// the write lock and commit. It is meant for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping readers: %w", err)
	}
	if err := s.write(ctx, func(*wtx) error { return nil }); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	return nil
}

// write runs fn in the writer goroutine and returns once the batch holding it
// has committed (or failed). ctx only bounds the wait for a queue slot.
func (s *Store) write(ctx context.Context, fn func(w *wtx) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	if err := s.enqueue(ctx, o); err != nil {
		return err
	}
	return <-o.done
}

// enqueue hands o to the writer goroutine.
func (s *Store) enqueue(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the writer goroutine: it takes whatever writes are queued, commits
// them as one transaction and answers each.
func (s *Store) run() {
	defer close(s.done)
	batch := make([]*op, 0, maxBatch)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Nothing can be enqueued any more: commit what is left, then stop.
			select {
			case first = <-s.ops:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
		// Let writers that are about to enqueue do so: on few cores this
		// grows batches several times over at the cost of one yield.
		runtime.Gosched()
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit runs batch in one transaction, each op in its own savepoint.
func (s *Store) commit(batch []*op) {
	s.batches.Add(1)
	s.writes.Add(int64(len(batch)))
	ctx := context.Background()
	errs := make([]error, len(batch))
	answer := func() {
		for i, o := range batch {
			o.done <- errs[i]
		}
	}
	w := &wtx{s: s, ctx: ctx}
	fail := func(err error) {
		_, _ = w.exec(`ROLLBACK`) // may fail if SQLite already rolled back
		clear(s.heads)
		for i := range errs {
			errs[i] = err
		}
		answer()
	}

	if _, err := w.exec(`BEGIN IMMEDIATE`); err != nil {
		if !isCode(err, sqlite3.SQLITE_ERROR) {
			fail(fmt.Errorf("begin write: %w", err))
			return
		}
		// A transaction left open (a failed ROLLBACK) would block every later
		// batch: end it and try once more.
		_, _ = w.exec(`ROLLBACK`)
		if _, err := w.exec(`BEGIN IMMEDIATE`); err != nil {
			fail(fmt.Errorf("begin write: %w", err))
			return
		}
	}
	// Another process may have appended audit events since our last batch:
	// then the cached chain heads are stale. Holding the write lock now, one
	// pragma per batch tells.
	var dv int64
	if err := w.queryRow(`PRAGMA data_version`).Scan(&dv); err != nil {
		fail(fmt.Errorf("data version: %w", err))
		return
	}
	if dv != s.dataVersion {
		clear(s.heads)
		s.dataVersion = dv
	}
	for i, o := range batch {
		if _, err := w.exec(`SAVEPOINT op`); err != nil {
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		w.undo = nil
		err := w.call(o.fn)
		if err != nil {
			errs[i] = err
			for org, u := range w.undo {
				if u.had {
					s.heads[org] = u.head
				} else {
					delete(s.heads, org)
				}
			}
			if _, rerr := w.exec(`ROLLBACK TO op`); rerr != nil {
				fail(fmt.Errorf("roll back savepoint: %w", rerr))
				return
			}
		}
		if _, err := w.exec(`RELEASE op`); err != nil {
			fail(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if _, err := w.exec(`COMMIT`); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	answer()
}

// wtx is what a write op sees: the writer connection inside the batch's
// transaction.
type wtx struct {
	s    *Store
	ctx  context.Context
	undo map[string]headUndo
}

// call runs fn, turning a panic into an error so the writer survives.
func (w *wtx) call(fn func(w *wtx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v", r)
		}
	}()
	return fn(w)
}

// stmt returns query prepared on the writer connection.
func (w *wtx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := w.s.wstmts[query]; ok {
		return st, nil
	}
	st, err := w.s.conn.PrepareContext(w.ctx, query)
	if err != nil {
		return nil, err
	}
	w.s.wstmts[query] = st
	return st, nil
}

// exec runs a statement on the writer connection.
func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(w.ctx, args...)
}

// execN runs a statement and returns how many rows it changed.
func (w *wtx) execN(query string, args ...any) (int64, error) {
	res, err := w.exec(query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// query runs a query on the writer connection.
func (w *wtx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(w.ctx, args...)
}

// queryRow runs a one-row query on the writer connection.
func (w *wtx) queryRow(query string, args ...any) *sql.Row {
	st, err := w.stmt(query)
	if err != nil {
		// A nil *sql.Stmt's QueryRow would panic; report the error through a
		// query that cannot succeed instead.
		return w.s.conn.QueryRowContext(w.ctx, query, args...)
	}
	return st.QueryRowContext(w.ctx, args...)
}

// exists reports whether query returns a row.
func (w *wtx) exists(query string, args ...any) (bool, error) {
	var one int
	switch err := w.queryRow(query, args...).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// appendEvent seals ev after the org's last event and inserts it. A nil ev
// appends nothing.
func (w *wtx) appendEvent(ev *custos.AuditEvent) error {
	if ev == nil {
		return nil
	}
	// The stored time has microsecond precision: seal exactly what is stored.
	ev.Time = time.UnixMicro(ev.Time.UnixMicro()).UTC()

	h, had := w.s.heads[ev.OrgID]
	if !had {
		err := w.queryRow(`SELECT seq, hash FROM audit_events WHERE org_id = ? ORDER BY seq DESC LIMIT 1`, ev.OrgID).Scan(&h.seq, &h.hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			h = auditHead{0, custos.GenesisHash}
		case err != nil:
			return fmt.Errorf("read audit head: %w", err)
		}
	}
	ev.Seal(h.seq+1, h.hash)
	if _, err := w.exec(`INSERT INTO audit_events (org_id, seq, time, action, outcome, reason, key_id, user,
		device_id, agent, hostname, machine_user, ip, source, mode, model, project, secret, version, target,
		prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.OrgID, ev.Seq, ev.Time.UnixMicro(), ev.Action, ev.Outcome, ev.Reason, ev.KeyID, ev.User,
		ev.DeviceID, ev.Agent, ev.Hostname, ev.MachineUser, ev.IP, ev.Source, ev.Mode, ev.Model,
		ev.Project, ev.Secret, ev.Version, ev.Target, ev.PrevHash, ev.Hash); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	if w.undo == nil {
		w.undo = make(map[string]headUndo)
	}
	if _, ok := w.undo[ev.OrgID]; !ok {
		prev, ok := w.s.heads[ev.OrgID]
		w.undo[ev.OrgID] = headUndo{head: prev, had: ok}
	}
	w.s.heads[ev.OrgID] = auditHead{ev.Seq, ev.Hash}
	return nil
}

// rstmt returns query prepared on the reader pool.
func (s *Store) rstmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if v, ok := s.rstmts.Load(query); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if v, loaded := s.rstmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// rquery runs a prepared query on the reader pool.
func (s *Store) rquery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.rstmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// rqueryRow runs a prepared one-row query on the reader pool.
func (s *Store) rqueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.rstmt(ctx, query)
	if err != nil {
		return s.rdb.QueryRowContext(ctx, query, args...) // reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	return isCode(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE) || isCode(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// isCode reports whether err is a SQLite error with the (extended) result
// code c.
func isCode(err error, c int) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == c
}

// conflictOr returns an ECONFLICT error with msg if err is a uniqueness
// violation, and err wrapped with context otherwise.
func conflictOr(err error, context, format string, args ...any) error {
	if isUnique(err) {
		return custos.Errorf(custos.ECONFLICT, format, args...)
	}
	return fmt.Errorf("%s: %w", context, err)
}

// micros returns t as unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros returns t as unix microseconds, or NULL for nil.
func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// blob returns b, or an empty non-nil slice for nil (the driver binds a nil
// slice as NULL).
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
