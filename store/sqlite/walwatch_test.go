package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/sqlite"
	"github.com/custos-dev/custos/store/storetest"
)

// bumpEnv names the database a child process of TestCacheEpochWatch bumps.
const bumpEnv = "CUSTOS_TEST_BUMP_EPOCH_DB"

// TestMain lets the test binary act as the other process of
// TestCacheEpochWatch: with bumpEnv set it advances the epoch of that
// database over a connection of its own and exits.
func TestMain(m *testing.M) {
	if path := os.Getenv(bumpEnv); path != "" {
		db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
		if err == nil {
			_, err = db.Exec(`UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1`)
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCacheEpochWatch proves CacheEpoch answers without a query while
// nothing was committed, and that a commit by any connection — this
// store's writer, another store on the file, a plain connection, another
// process, after a checkpoint reset the WAL — shows in its very next answer.
func TestCacheEpochWatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	s := MustOpenStoreAt(t, path, sqlite.Options{})
	if runtime.GOOS != "windows" && !s.Watching() {
		t.Fatal("the store does not watch the WAL index")
	}
	epoch := func() int64 {
		t.Helper()
		e, err := s.CacheEpoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := epoch()
	q := s.EpochQueries()
	for range 100 {
		if got := epoch(); got != e {
			t.Fatalf("epoch %d, want %d", got, e)
		}
	}
	if n := s.EpochQueries() - q; n > 1 {
		t.Errorf("%d queries for 100 unchanged reads", n)
	}

	plain, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	bump := func() {
		t.Helper()
		if _, err := plain.Exec(`UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		e++
	}
	// A plain connection's commits, each seen by the very next read.
	for range 200 {
		bump()
		if got := epoch(); got != e {
			t.Fatalf("after a commit elsewhere: epoch %d, want %d", got, e)
		}
	}
	// A commit that leaves the epoch alone costs a query, not a wrong answer.
	if _, err := plain.Exec(`CREATE TABLE IF NOT EXISTS scratch (x)`); err != nil {
		t.Fatal(err)
	}
	if got := epoch(); got != e {
		t.Fatalf("after an unrelated commit: epoch %d, want %d", got, e)
	}
	// Another store on the file, changing what the cache holds.
	other := MustOpenStoreAt(t, path, sqlite.Options{})
	org, _ := storetest.MustBootstrap(t, other)
	storetest.MustCreateKey(t, other, org.ID, "ci", custos.RoleAgent)
	if got, want := epoch(), storetest.MustCacheEpoch(t, other); got != want || got <= e {
		t.Fatalf("after another store created a key: epoch %d, want %d (> %d)", got, want, e)
	}
	e = epoch()
	// A checkpoint that restarts the WAL, then a commit.
	if _, err := plain.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	bump()
	if got := epoch(); got != e {
		t.Fatalf("after a checkpoint and a commit: epoch %d, want %d", got, e)
	}
	// Another process.
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$") // #nosec G204 -- the test binary itself
		cmd.Env = append(os.Environ(), bumpEnv+"="+path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child process: %v: %s", err, out)
		}
		e++
		if got := epoch(); got != e {
			t.Fatalf("after a commit by another process: epoch %d, want %d", got, e)
		}
	}
}

// TestCacheEpochWatchConcurrent reads the epoch from many goroutines while
// another connection advances it: no read that starts after a commit
// returned may see an older epoch.
func TestCacheEpochWatchConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	s := MustOpenStoreAt(t, path, sqlite.Options{})
	plain, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var (
		mu        sync.Mutex
		committed int64 // the epoch of the last commit known to be done
	)
	committed, _ = s.CacheEpoch(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				floor := committed
				mu.Unlock()
				got, err := s.CacheEpoch(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if got < floor {
					t.Errorf("epoch %d after %d was committed", got, floor)
					return
				}
			}
		}()
	}
	for range 300 {
		var e int64
		if err := plain.QueryRow(`UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch`).Scan(&e); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		committed = e
		mu.Unlock()
	}
	close(done)
	wg.Wait()
}
