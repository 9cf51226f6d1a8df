package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"sort"
	"time"

	migrationpkg "github.com/custos-dev/custos/store/internal/migration"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
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

// migrate applies every embedded migration the database lacks, in order, in
// one transaction. It refuses a database whose schema is newer than this
// binary knows.
func migrate(ctx context.Context, conn *sql.Conn) (err error) {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("sqlite: migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("sqlite: migrate: read version: %w", err)
	}
	if n := len(ms); n > 0 && current > ms[n-1].Version {
		return fmt.Errorf("sqlite: database schema version %d is newer than this binary's (%d); upgrade custos", current, ms[n-1].Version)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", m.Name, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			m.Version, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: migrate %s: record version: %w", m.Name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("sqlite: migrate: commit: %w", err)
	}
	return nil
}

// Migrations returns every embedded migration in version order, each with
// the time it was applied or nil if it is pending, followed by any version
// the database records that this binary does not know (with an empty Name).
func (s *Store) Migrations(ctx context.Context) ([]custos.MigrationState, error) {
	ms, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	applied := make(map[int]time.Time)
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("sqlite: read migrations: %w", err)
	}
	if n > 0 {
		rows, err := s.rdb.QueryContext(ctx, `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			return nil, fmt.Errorf("sqlite: read migrations: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				return nil, fmt.Errorf("sqlite: read migrations: %w", err)
			}
			applied[v] = column.FromMicros(at)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: read migrations: %w", err)
		}
	}
	return migrationStates(ms, applied), nil
}

// migrationStates pairs the embedded migrations with the applied versions.
func migrationStates(ms []migration, applied map[int]time.Time) []custos.MigrationState {
	out := make([]custos.MigrationState, 0, len(ms))
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
		st := custos.MigrationState{Version: m.Version, Name: m.Title()}
		if at, ok := applied[m.Version]; ok {
			st.AppliedAt = &at
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
		at := applied[v]
		out = append(out, custos.MigrationState{Version: v, AppliedAt: &at})
	}
	return out
}
