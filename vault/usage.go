package vault

import (
	"context"
	"time"

	"github.com/custos-dev/custos"
)

// UsageRecorder writes the gateway's usage records to the store in
// batches, off the request path.
type UsageRecorder struct {
	s  *Service
	ch chan *custos.UsageRecord
}

// usageBatch is the most records written in one transaction. SQLite has
// one writer: a budget reservation (on the request path) waits for the
// transaction before it, so a batch is kept to well under a millisecond.
const usageBatch = 64

// usageLinger is how long the recorder waits for more records after the
// first of a batch: a transaction per hundred requests at 2,000 req/s
// instead of one per request. A commit costs more than its rows (the
// transaction's statements, the WAL frames of every page it touched, and
// on SQLite a cache-epoch query by every replica's next request): at 10
// ms the gateway process used 4-6 % more CPU a request than at 50 ms
// (bench/gatewaybench's throughput phase, one build against the other).
// Batches stay at most usageBatch records, so the writes of a linger are
// not one long transaction that the requests of that moment wait behind.
// Records still queued when the recorder stops are written then.
const usageLinger = 50 * time.Millisecond

// NewUsageRecorder returns a recorder; start Run before recording.
func (s *Service) NewUsageRecorder() *UsageRecorder {
	return &UsageRecorder{s: s, ch: make(chan *custos.UsageRecord, 8192)}
}

// Record queues r (gateway.Config.OnUsage). If the queue stays full for a
// second (the store is down), r is dropped and an error logged: usage is
// metadata, and a request is never held back for it.
func (u *UsageRecorder) Record(r *custos.UsageRecord) {
	select {
	case u.ch <- r:
		return
	default:
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case u.ch <- r:
	case <-t.C:
		u.s.log.Error("gateway: usage queue full; a usage record was dropped", "org", r.OrgID, "model", r.Model)
	}
}

// Run writes queued records until ctx ends, then writes what is left.
//
// It wakes once per linger, not once per record: after the first record
// of a batch it sleeps out the linger and then takes what has queued
// meanwhile without blocking, a batch at a time until the queue is
// empty. A receive that blocks in a select makes every Record wake this
// goroutine (and often an idle thread to run it), a context switch per
// request on a busy machine.
func (u *UsageRecorder) Run(ctx context.Context) {
	batch := make([]*custos.UsageRecord, 0, usageBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if err := u.s.store.AppendUsage(wctx, batch); err != nil {
			u.s.log.Error("gateway: write usage records", "records", len(batch), "err", err)
		}
		cancel()
		clear(batch)
		batch = batch[:0]
	}
	// drain writes everything queued, a batch at a time.
	drain := func() {
		for {
		fill:
			for len(batch) < usageBatch {
				select {
				case r := <-u.ch:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			full := len(batch) == usageBatch
			flush()
			if !full {
				return
			}
		}
	}
	linger := time.NewTimer(usageLinger)
	linger.Stop()
	for {
		select {
		case r := <-u.ch:
			batch = append(batch, r)
		case <-ctx.Done():
			drain()
			return
		}
		linger.Reset(usageLinger)
		select {
		case <-linger.C:
		case <-ctx.Done():
			linger.Stop()
		}
		drain()
	}
}

// PurgeUsage deletes usage records older than retention and returns how
// many it deleted.
func (s *Service) PurgeUsage(ctx context.Context, retention time.Duration) (int64, error) {
	return s.store.PurgeUsage(ctx, s.timeNow().Add(-retention))
}

// RunUsagePurge purges usage records older than retention now and then
// every interval until ctx ends.
func (s *Service) RunUsagePurge(ctx context.Context, retention, interval time.Duration) {
	for {
		n, err := s.PurgeUsage(ctx, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("gateway: purge usage records", "err", err)
		case n > 0:
			s.log.Info("gateway: purged usage records", "records", n, "older_than", retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
