package memory_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/memory"
	"github.com/custos-dev/custos/store/storetest"
)

// Ensure the memory store passes the HotStore conformance suite.
func TestHotStore(t *testing.T) {
	storetest.RunHot(t, func(t *testing.T) custos.HotStore { return memory.New() })
}

// Clock is a fake clock that tests move by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Ensure windows follow the injected clock: reset counts down, and the
// window ends exactly at first hit + window.
func TestWindowClock(t *testing.T) {
	clock := NewClock()
	s := memory.NewWithClock(clock.Now)
	for _, step := range []struct {
		advance   time.Duration
		wantCount int64
		wantReset time.Duration
	}{
		{0, 1, time.Minute},
		{20 * time.Second, 2, 40 * time.Second},
		{39 * time.Second, 3, time.Second},
		{time.Second - time.Nanosecond, 4, time.Nanosecond},
		{time.Nanosecond, 1, time.Minute}, // the window has ended: a new one starts
		{30 * time.Second, 2, 30 * time.Second},
	} {
		clock.Advance(step.advance)
		count, reset, err := s.Hit(t.Context(), "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if count != step.wantCount || reset != step.wantReset {
			t.Fatalf("after +%s: Hit=%d %s, want %d %s", step.advance, count, reset, step.wantCount, step.wantReset)
		}
		if pc, pr, err := s.Peek(t.Context(), "k"); err != nil || pc != count || pr != reset {
			t.Fatalf("Peek=%d %s %v, want %d %s", pc, pr, err, count, reset)
		}
	}
}

// Ensure expired counters are swept, so memory stays bounded by recent keys.
func TestSweep(t *testing.T) {
	clock := NewClock()
	s := memory.NewWithClock(clock.Now)
	for i := range 5000 {
		if _, _, err := s.Hit(t.Context(), fmt.Sprintf("k%d", i), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Len(); got > 5000 {
		t.Fatalf("Len=%d, want at most 5000", got)
	}

	// A minute later every one of them has expired; the next hit sweeps.
	clock.Advance(time.Minute)
	if _, _, err := s.Hit(t.Context(), "fresh", time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Len(), 1; got != want {
		t.Fatalf("Len after sweep=%d, want %d", got, want)
	}

	// Many short-lived keys within one minute: the size-triggered sweep keeps
	// the map near the number of live counters.
	for i := range 100_000 {
		if i%1000 == 0 {
			clock.Advance(2 * time.Second) // all earlier windows have ended
		}
		if _, _, err := s.Hit(t.Context(), fmt.Sprintf("burst%d", i), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Len(); got > 4096 {
		t.Fatalf("Len=%d after 100000 short-lived keys, want at most 4096", got)
	}
}

// Ensure Close forgets the counters and leaves the store usable.
func TestClose(t *testing.T) {
	s := memory.New()
	for range 3 {
		if _, _, err := s.Hit(t.Context(), "k", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if count, _, err := s.Hit(t.Context(), "k", time.Minute); err != nil || count != 1 {
		t.Fatalf("Hit after Close=%d %v, want 1 nil", count, err)
	}
}
