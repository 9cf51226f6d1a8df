// Package memory is the in-process custos.HotStore: fixed-window counters in
// a map behind a mutex. It is the default for a single server; replicas that
// must agree use store/redis instead.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/custos-dev/custos"
)

// Store is an in-memory custos.HotStore. Expired windows are swept as it
// goes, so memory stays bounded by the keys hit in the recent past.
type Store struct {
	now func() time.Time

	mu        sync.Mutex
	counters  map[string]*counter
	nextSweep time.Time // sweep at the first hit at or after this time
	sweepAt   int       // … or once the map holds this many counters
}

// counter is one key's count in its current window.
type counter struct {
	count int64
	end   time.Time // the window is [first hit, end)
}

var _ custos.HotStore = (*Store)(nil)

// Sweep tuning: expired counters are dropped at least once a minute, and
// whenever the map has doubled since the last sweep.
const (
	sweepEvery   = time.Minute
	minSweepSize = 1024
)

// New returns an empty store on the wall clock.
func New() *Store { return NewWithClock(time.Now) }

// NewWithClock returns an empty store that reads the time from now, so tests
// can end windows without sleeping.
func NewWithClock(now func() time.Time) *Store {
	return &Store{now: now, counters: make(map[string]*counter), sweepAt: minSweepSize}
}

// Hit adds one to counter key in its current fixed window and returns the
// count and the time until the window ends. Returns EINVALID for an empty
// key or a window under a millisecond.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	if err := validate(key, window); err != nil {
		return 0, 0, err
	}
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweep(now)
	c, ok := s.counters[key]
	if !ok || !now.Before(c.end) {
		c = &counter{end: now.Add(window)}
		s.counters[key] = c
	}
	c.count++
	return c.count, c.end.Sub(now), nil
}

// Peek returns the count of key in its current window and the time until
// that window ends, without adding to it: 0 and 0 when no window is open.
// Returns EINVALID for an empty key.
func (s *Store) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	if err := validate(key, time.Millisecond); err != nil {
		return 0, 0, err
	}
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[key]
	if !ok || !now.Before(c.end) {
		return 0, 0, nil
	}
	return c.count, c.end.Sub(now), nil
}

// Close releases the store. It holds nothing outside the process; Close
// forgets the counters and the store stays usable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counters)
	return nil
}

// maybeSweep drops expired counters when a sweep is due. s.mu is held.
func (s *Store) maybeSweep(now time.Time) {
	if now.Before(s.nextSweep) && len(s.counters) < s.sweepAt {
		return
	}
	for k, c := range s.counters {
		if !now.Before(c.end) {
			delete(s.counters, k)
		}
	}
	s.nextSweep = now.Add(sweepEvery)
	s.sweepAt = max(minSweepSize, 2*len(s.counters))
}

// validate checks the arguments every HotStore method shares.
func validate(key string, window time.Duration) error {
	switch {
	case key == "":
		return custos.Errorf(custos.EINVALID, "hot store: empty counter key")
	case window < time.Millisecond:
		return custos.Errorf(custos.EINVALID, "hot store: window %s is under 1ms", window)
	}
	return nil
}
