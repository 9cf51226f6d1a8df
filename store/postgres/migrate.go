package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sort"
	"time"

	migrationpkg "github.com/custos-dev/custos/store/internal/migration"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one embedded schema change (see store/internal/migration).
type migration = migrationpkg.Migration

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	return migrationpkg.Load(migrationFS, "migrations")
}

// SchemaVersion returns the highest embedded migration version: the schema
// version a database has after Open.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// errNewerSchema is wrapped by the error Open returns for a database whose
// schema is newer than this binary's.
var errNewerSchema = errors.New("the database schema is newer than this binary's; upgrade custos")

// migrate applies every embedded migration the database lacks, in order, in
// one transaction that holds a transaction-scoped advisory lock, so that
// replicas starting together wait for each other and apply each migration
// once. It refuses a database whose schema is newer than this binary knows.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return s.tx(ctx, "migrate", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at BIGINT NOT NULL
		)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if n := len(ms); n > 0 && current > ms[n-1].Version {
			return fmt.Errorf("%w (database version %d, binary version %d)", errNewerSchema, current, ms[n-1].Version)
		}
		for _, m := range ms {
			if m.Version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Title(), time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("migration %s: record version: %w", m.Name, err)
			}
		}
		return nil
	})
}

// Migrations returns every embedded migration in version order, each with
// the time it was applied or nil if it is pending, followed by any version
// the database records that this binary does not know (with the name the
// database records). It works on a store opened with NoMigrate.
func (s *Store) Migrations(ctx context.Context) ([]custos.MigrationState, error) {
	ms, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	type row struct {
		name string
		at   time.Time
	}
	applied := make(map[int]row)
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fail("read migrations", err)
	}
	if exists {
		rows, err := s.pool.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			return nil, fail("read migrations", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			var r row
			var at int64
			if err := rows.Scan(&v, &r.name, &at); err != nil {
				return nil, fail("read migrations", err)
			}
			r.at = column.FromMicros(at)
			applied[v] = r
		}
		if err := rows.Err(); err != nil {
			return nil, fail("read migrations", err)
		}
	}
	out := make([]custos.MigrationState, 0, len(ms))
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
		st := custos.MigrationState{Version: m.Version, Name: m.Title()}
		if r, ok := applied[m.Version]; ok {
			st.AppliedAt = &r.at
		}
		out = append(out, st)
	}
	var unknown []int
	for v := range applied {
		if !known[v] {
			unknown = append(unknown, v)
		}
	}
	sort.Ints(unknown)
	for _, v := range unknown {
		r := applied[v]
		out = append(out, custos.MigrationState{Version: v, Name: r.name, AppliedAt: &r.at})
	}
	return out, nil
}
