package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// RunHot runs the custos.HotStore conformance suite. open returns a fresh
// store for one subtest; RunHot closes it when the subtest ends. Keys carry
// a random prefix per subtest, so stores that share a server (Redis) can run
// the suite in parallel. The suite sleeps about a second in all.
func RunHot(t *testing.T, open func(t *testing.T) custos.HotStore) {
	t.Helper()
	mustOpen := func(t *testing.T) (custos.HotStore, string) {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, randomPrefix(t)
	}

	// Ensure hits on one key count 1, 2, 3 and reset lies within the window.
	t.Run("Count", func(t *testing.T) {
		s, p := mustOpen(t)
		window := time.Minute
		for want := int64(1); want <= 3; want++ {
			count, reset := mustHit(t, s, p+"k", window)
			if count != want {
				t.Fatalf("count=%d, want %d", count, want)
			}
			if reset <= 0 || reset > window {
				t.Fatalf("reset=%s, want in (0, %s]", reset, window)
			}
		}
	})

	// Ensure a counter restarts at 1 once its window has passed.
	t.Run("WindowExpires", func(t *testing.T) {
		s, p := mustOpen(t)
		window := 200 * time.Millisecond
		mustHit(t, s, p+"k", window)
		_, reset := mustHit(t, s, p+"k", window)
		if reset < 0 || reset > window {
			t.Fatalf("reset=%s, want in [0, %s]", reset, window)
		}
		time.Sleep(window + 150*time.Millisecond)
		if count, _ := mustHit(t, s, p+"k", window); count != 1 {
			t.Fatalf("count after the window=%d, want 1", count)
		}
	})

	// Ensure keys count independently.
	t.Run("IndependentKeys", func(t *testing.T) {
		s, p := mustOpen(t)
		for range 3 {
			mustHit(t, s, p+"a", time.Minute)
		}
		if count, _ := mustHit(t, s, p+"b", time.Minute); count != 1 {
			t.Fatalf("count of b=%d, want 1", count)
		}
		if count, _ := mustHit(t, s, p+"a", time.Minute); count != 4 {
			t.Fatalf("count of a=%d, want 4", count)
		}
	})

	// Ensure concurrent hits on one key are each counted once: 50 goroutines
	// × 20 hits see every count from 1 to 1000 exactly once.
	t.Run("Concurrent", func(t *testing.T) {
		s, p := mustOpen(t)
		const workers, hits = 50, 20
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seen = make(map[int64]int)
			errs = make(chan error, workers)
		)
		for range workers {
			wg.Go(func() {
				for range hits {
					count, _, err := s.Hit(t.Context(), p+"k", time.Minute)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seen[count]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Hit: %v", err)
		}
		if got, want := len(seen), workers*hits; got != want {
			t.Fatalf("distinct counts=%d, want %d", got, want)
		}
		for c := int64(1); c <= workers*hits; c++ {
			if seen[c] != 1 {
				t.Fatalf("count %d seen %d times, want once", c, seen[c])
			}
		}
		if count, _ := mustHit(t, s, p+"k", time.Minute); count != workers*hits+1 {
			t.Fatalf("count after=%d, want %d", count, workers*hits+1)
		}
	})

	// Ensure an empty key or a window under a millisecond is EINVALID.
	t.Run("ErrInvalid", func(t *testing.T) {
		s, p := mustOpen(t)
		for _, tt := range []struct {
			key    string
			window time.Duration
		}{
			{"", time.Minute},
			{p + "k", 0},
			{p + "k", -time.Second},
			{p + "k", time.Microsecond},
		} {
			if _, _, err := s.Hit(t.Context(), tt.key, tt.window); custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("Hit(%q, %s) err=%v, want EINVALID", tt.key, tt.window, err)
			}
		}
	})

	// Ensure Peek reads a counter without adding to it.
	t.Run("Peek", func(t *testing.T) {
		s, p := mustOpen(t)
		pk := s
		if count, reset, err := pk.Peek(t.Context(), p+"k"); err != nil || count != 0 || reset != 0 {
			t.Fatalf("Peek of a new key=%d %s %v, want 0 0 nil", count, reset, err)
		}
		mustHit(t, s, p+"k", time.Minute)
		mustHit(t, s, p+"k", time.Minute)
		for range 2 {
			count, reset, err := pk.Peek(t.Context(), p+"k")
			if err != nil {
				t.Fatalf("Peek: %v", err)
			}
			if count != 2 {
				t.Fatalf("Peek count=%d, want 2", count)
			}
			if reset <= 0 || reset > time.Minute {
				t.Fatalf("Peek reset=%s, want in (0, 1m]", reset)
			}
		}
		if count, _ := mustHit(t, s, p+"k", time.Minute); count != 3 {
			t.Fatalf("count after Peek=%d, want 3", count)
		}
		if _, _, err := pk.Peek(t.Context(), ""); custos.ErrorCode(err) != custos.EINVALID {
			t.Fatalf("Peek of an empty key: err=%v, want EINVALID", err)
		}
	})

	// Ensure Peek sees no count once the window has passed.
	t.Run("PeekExpired", func(t *testing.T) {
		s, p := mustOpen(t)
		pk := s
		window := 200 * time.Millisecond
		mustHit(t, s, p+"k", window)
		time.Sleep(window + 150*time.Millisecond)
		if count, _, err := pk.Peek(t.Context(), p+"k"); err != nil || count != 0 {
			t.Fatalf("Peek after the window=%d %v, want 0 nil", count, err)
		}
	})
}

// mustHit calls s.Hit or fails the test.
func mustHit(tb testing.TB, s custos.HotStore, key string, window time.Duration) (int64, time.Duration) {
	tb.Helper()
	count, reset, err := s.Hit(tb.Context(), key, window)
	if err != nil {
		tb.Fatalf("Hit(%q): %v", key, err)
	}
	return count, reset
}

// randomPrefix returns a key prefix unique to one test run.
func randomPrefix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return "test:" + hex.EncodeToString(b) + ":"
}
