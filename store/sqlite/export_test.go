package sqlite

import (
	"context"
	"fmt"
)

// BlockWriter makes the writer goroutine wait inside a batch of its own
// until release is called, so tests can queue ops that then share one batch.
func (s *Store) BlockWriter(ctx context.Context) (release func() error) {
	started, unblock := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.write(ctx, func(*wtx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() error {
		close(unblock)
		return <-errc
	}
}

// Queued returns how many ops wait for the writer.
func (s *Store) Queued() int { return len(s.ops) }

// ExecInWriter runs queries, in order, as one op of the writer.
func (s *Store) ExecInWriter(ctx context.Context, queries ...string) error {
	return s.write(ctx, func(w *wtx) error {
		for _, q := range queries {
			if _, err := w.s.conn.ExecContext(w.ctx, q); err != nil {
				return fmt.Errorf("exec %q: %w", q, err)
			}
		}
		return nil
	})
}

// EpochQueries returns how many times CacheEpoch queried the database.
func (s *Store) EpochQueries() int64 { return s.epochQueries.Load() }

// Watching reports whether CacheEpoch watches the WAL index.
func (s *Store) Watching() bool { return s.wal != nil }
