package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// NewTrackerInstall returns a live install of org named name, created at
// Now, with a random hash.
func NewTrackerInstall(orgID, name string) *custos.TrackerInstall {
	return &custos.TrackerInstall{ID: custos.NewID(custos.PrefixTrackerInstall), OrgID: orgID, Name: name,
		Hash: custos.NewID("hash"), CreatedAt: Now}
}

// NewRequestKey returns an unused key of install in of chain sessionID,
// created at Now and living custos.RequestKeyTTL, with a random hash.
func NewRequestKey(in *custos.TrackerInstall, sessionID string) *custos.RequestKey {
	return &custos.RequestKey{ID: custos.NewID(custos.PrefixRequestKey), OrgID: in.OrgID, InstallID: in.ID,
		SessionID: sessionID, Hash: custos.NewID("hash"), CreatedAt: Now, ExpiresAt: Now.Add(custos.RequestKeyTTL)}
}

// NewNextKey returns the next key of a chain as a caller of SpendRequestKey
// gives it: without org, install or session, which the store sets.
func NewNextKey() *custos.RequestKey {
	return &custos.RequestKey{ID: custos.NewID(custos.PrefixRequestKey), Hash: custos.NewID("hash"),
		CreatedAt: Now.Add(time.Second), ExpiresAt: Now.Add(time.Second + custos.RequestKeyTTL)}
}

// NewLaunchCode returns an unused code of install in for projectID/taskID,
// created at Now and living custos.DefaultLaunchTTL, with a random hash.
func NewLaunchCode(in *custos.TrackerInstall, projectID, taskID string) *custos.LaunchCode {
	return &custos.LaunchCode{ID: custos.NewID(custos.PrefixLaunchCode), OrgID: in.OrgID, InstallID: in.ID,
		ProjectID: projectID, TaskID: taskID, Hash: custos.NewID("hash"), CreatedAt: Now,
		ExpiresAt: Now.Add(custos.DefaultLaunchTTL)}
}

// NewPermit returns a permit as a caller of ExchangeLaunchCode gives it:
// without org or launch, which the store sets.
func NewPermit(projectID, taskID string) *custos.Permit {
	return &custos.Permit{ID: custos.NewID(custos.PrefixPermit), ProjectID: projectID, TaskID: taskID,
		Hash: custos.NewID("hash"), CreatedAt: Now.Add(time.Second), ExpiresAt: Now.Add(time.Second + custos.PermitTTL)}
}

// NewRun returns an open run of the task created at Now.
func NewRun(orgID, projectID, taskID string) *custos.Run {
	return &custos.Run{ID: custos.NewID(custos.PrefixRun), OrgID: orgID, ProjectID: projectID, TaskID: taskID, CreatedAt: Now}
}

// NewArtifact returns an artifact name of run r holding size bytes, created
// at Now, whose wrapped DEK is "dek-"+name under keeper "local:1" and whose
// blob key is random.
func NewArtifact(r *custos.Run, name string, size int64) *custos.Artifact {
	id := custos.NewID(custos.PrefixArtifact)
	return &custos.Artifact{ID: id, OrgID: r.OrgID, ProjectID: r.ProjectID, TaskID: r.TaskID, RunID: r.ID,
		Name: name, Kind: "output", Size: size, SHA256: fmt.Sprintf("%064x", size), BlobKey: "blob/" + id,
		WrappedDEK: []byte("dek-" + name), KeeperID: "local:1", CreatedAt: Now}
}

// MustCreateTrackerInstall creates a live install of org named name.
func MustCreateTrackerInstall(tb testing.TB, s custos.Store, orgID, name string) *custos.TrackerInstall {
	tb.Helper()
	in := NewTrackerInstall(orgID, name)
	if err := s.CreateTrackerInstall(context.Background(), in, NewEvent(orgID, custos.ActionTrackerInstall)); err != nil {
		tb.Fatal(err)
	}
	return in
}

// MustCreateRequestKey creates the first key of a new chain of install in.
func MustCreateRequestKey(tb testing.TB, s custos.Store, in *custos.TrackerInstall) *custos.RequestKey {
	tb.Helper()
	k := NewRequestKey(in, custos.NewID(custos.PrefixTrackerSession))
	if err := s.CreateRequestKey(context.Background(), k, NewEvent(in.OrgID, custos.ActionTrackerSession)); err != nil {
		tb.Fatal(err)
	}
	return k
}

// MustCreateLaunchCode creates a code of install in for projectID/taskID
// (and the task, if new).
func MustCreateLaunchCode(tb testing.TB, s custos.Store, in *custos.TrackerInstall, projectID, taskID string) *custos.LaunchCode {
	tb.Helper()
	c := NewLaunchCode(in, projectID, taskID)
	if err := s.CreateLaunchCode(context.Background(), c, NewEvent(in.OrgID, custos.ActionLaunchCreate)); err != nil {
		tb.Fatal(err)
	}
	return c
}

// MustCreateRun creates a run of the task, which must exist.
func MustCreateRun(tb testing.TB, s custos.Store, orgID, projectID, taskID string) *custos.Run {
	tb.Helper()
	r := NewRun(orgID, projectID, taskID)
	if err := s.CreateRun(context.Background(), r, NewEvent(orgID, custos.ActionRunCreate)); err != nil {
		tb.Fatal(err)
	}
	return r
}

// MustPutArtifact puts a without a run limit.
func MustPutArtifact(tb testing.TB, s custos.Store, a *custos.Artifact) {
	tb.Helper()
	if err := s.PutArtifact(context.Background(), a, 0, NewEvent(a.OrgID, custos.ActionArtifactPut)); err != nil {
		tb.Fatal(err)
	}
}

// mustTaskWorld creates an org, a live install and task web/T-1 (through a
// launch code) with one run.
func mustTaskWorld(tb testing.TB, s custos.Store) (*custos.Org, *custos.TrackerInstall, *custos.Run) {
	tb.Helper()
	org, _ := MustBootstrap(tb, s)
	in := MustCreateTrackerInstall(tb, s, org.ID, "jira")
	MustCreateLaunchCode(tb, s, in, "web", "T-1")
	return org, in, MustCreateRun(tb, s, org.ID, "web", "T-1")
}

// auditLen returns how many events org's chain holds.
func auditLen(tb testing.TB, s custos.Store, orgID string) int {
	tb.Helper()
	return len(MustListAudit(tb, s, orgID))
}

// mustCode fails the test unless err has the custos code want.
func mustCode(tb testing.TB, what string, err error, want string) {
	tb.Helper()
	if got := code(err); got != want {
		tb.Fatalf("%s: code=%q, want %q (%v)", what, got, want, err)
	}
}

// mustLive returns the live artifacts of run r.
func mustLive(tb testing.TB, s custos.Store, r *custos.Run) []*custos.Artifact {
	tb.Helper()
	as, err := s.ListArtifacts(context.Background(), r.OrgID, r.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return as
}

func testTrackerInstalls(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure installs round-trip, list oldest first per org, are found by
	// hash (revoked or not), and revoke once: revoking again changes nothing
	// and writes no event.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		b := NewTrackerInstall(org.ID, "linear")
		b.CreatedAt = Now.Add(time.Second)
		a := NewTrackerInstall(org.ID, "jira")
		for _, in := range []*custos.TrackerInstall{b, a} {
			if err := s.CreateTrackerInstall(ctx, in, NewEvent(org.ID, custos.ActionTrackerInstall)); err != nil {
				t.Fatal(err)
			}
		}
		MustCreateTrackerInstall(t, s, "org_0000000000000000", "jira")
		if got, err := s.ListTrackerInstalls(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if want := []*custos.TrackerInstall{a, b}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListTrackerInstalls=%+v, want %+v", got, want)
		}
		if got, err := s.ListTrackerInstalls(ctx, "org_00000000000000ff"); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ListTrackerInstalls of an org without installs=%v, want empty", got)
		}
		if got, err := s.FindTrackerInstallByHash(ctx, a.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, a) {
			t.Fatalf("FindTrackerInstallByHash=%+v, want %+v", got, a)
		}
		at := Now.Add(time.Minute)
		if err := s.RevokeTrackerInstall(ctx, org.ID, a.ID, at, NewEvent(org.ID, custos.ActionTrackerRevoke)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeTrackerInstall(ctx, org.ID, a.ID, at.Add(time.Hour), NewEvent(org.ID, custos.ActionTrackerRevoke)); err != nil {
			t.Fatalf("revoking again: %v", err)
		}
		if got, err := s.FindTrackerInstallByHash(ctx, a.Hash); err != nil {
			t.Fatal(err)
		} else if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
			t.Fatalf("RevokedAt=%v, want %v", got.RevokedAt, at)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[len(evs)-1].Action, custos.ActionTrackerRevoke; got != want {
			t.Fatalf("last action=%q, want %q", got, want)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a live name is a conflict that writes nothing, while a revoked
	// install's name and another org's may be used again.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		first := MustCreateTrackerInstall(t, s, org.ID, "jira")
		dup := NewTrackerInstall(org.ID, "jira")
		mustCode(t, "same live name", s.CreateTrackerInstall(ctx, dup, NewEvent(org.ID, custos.ActionTrackerInstall)), custos.ECONFLICT)
		if _, err := s.FindTrackerInstallByHash(ctx, dup.Hash); code(err) != custos.ENOTFOUND {
			t.Fatalf("refused install stored: err=%v", err)
		}
		sameHash := NewTrackerInstall(org.ID, "other")
		sameHash.Hash = first.Hash
		mustCode(t, "same hash", s.CreateTrackerInstall(ctx, sameHash, nil), custos.ECONFLICT)
		MustVerifyChain(t, s, org.ID, 2)
		MustCreateTrackerInstall(t, s, "org_0000000000000000", "jira")
		if err := s.RevokeTrackerInstall(ctx, org.ID, first.ID, Now, nil); err != nil {
			t.Fatal(err)
		}
		MustCreateTrackerInstall(t, s, org.ID, "jira")
		if got, err := s.ListTrackerInstalls(ctx, org.ID); err != nil {
			t.Fatal(err)
		} else if len(got) != 2 {
			t.Fatalf("installs=%d, want 2", len(got))
		}
	})

	// Ensure a missing install, by hash or by id (also another org's), is
	// reported.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		_, err := s.FindTrackerInstallByHash(ctx, "nope")
		mustCode(t, "FindTrackerInstallByHash", err, custos.ENOTFOUND)
		mustCode(t, "RevokeTrackerInstall", s.RevokeTrackerInstall(ctx, org.ID, "trk_0000000000000000", Now, NewEvent(org.ID, custos.ActionTrackerRevoke)), custos.ENOTFOUND)
		mustCode(t, "RevokeTrackerInstall of another org", s.RevokeTrackerInstall(ctx, "org_0000000000000000", in.ID, Now, nil), custos.ENOTFOUND)
		if got, _ := s.FindTrackerInstallByHash(ctx, in.Hash); got == nil || got.RevokedAt != nil {
			t.Fatalf("install after refused revokes=%+v, want live", got)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})
}

func testSpendRequestKey(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure spending a key marks it used, returns it, and inserts the next
	// key of its chain with the spent key's org, install and session; the
	// next key spends in turn, and nothing is audited by the store.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		k := MustCreateRequestKey(t, s, in)
		if got, err := s.FindRequestKeyByHash(ctx, k.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, k) {
			t.Fatalf("FindRequestKeyByHash=%+v, want %+v", got, k)
		}
		at := Now.Add(time.Minute)
		next := NewNextKey()
		spent, err := s.SpendRequestKey(ctx, in.ID, k.Hash, at, next)
		if err != nil {
			t.Fatal(err)
		}
		want := *k
		want.UsedAt = &at
		if !reflect.DeepEqual(spent, &want) {
			t.Fatalf("spent=%+v, want %+v", spent, &want)
		}
		if got, err := s.FindRequestKeyByHash(ctx, k.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, &want) {
			t.Fatalf("stored spent key=%+v, want %+v", got, &want)
		}
		if next.OrgID != org.ID || next.InstallID != in.ID || next.SessionID != k.SessionID {
			t.Fatalf("next=%+v, want org %s, install %s, session %s", next, org.ID, in.ID, k.SessionID)
		}
		if got, err := s.FindRequestKeyByHash(ctx, next.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, next) {
			t.Fatalf("stored next=%+v, want %+v", got, next)
		}
		if _, err := s.SpendRequestKey(ctx, in.ID, next.Hash, at.Add(time.Second), NewNextKey()); err != nil {
			t.Fatalf("spending the next key: %v", err)
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure a used, expired, unknown or foreign key, or one of a revoked
	// install, is refused and nothing changes: the key stays as it was and
	// no next key is stored.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		other := MustCreateTrackerInstall(t, s, org.ID, "linear")
		live := MustCreateRequestKey(t, s, in)
		used := MustCreateRequestKey(t, s, in)
		if _, err := s.SpendRequestKey(ctx, in.ID, used.Hash, Now, nil); err != nil {
			t.Fatal(err)
		}
		revoked := MustCreateTrackerInstall(t, s, org.ID, "gone")
		ofRevoked := MustCreateRequestKey(t, s, revoked)
		if err := s.RevokeTrackerInstall(ctx, org.ID, revoked.ID, Now, nil); err != nil {
			t.Fatal(err)
		}
		n := auditLen(t, s, org.ID)
		for _, tc := range []struct {
			name      string
			installID string
			key       *custos.RequestKey
			now       time.Time
		}{
			{"Used", in.ID, used, Now.Add(time.Second)},
			{"Expired", in.ID, live, live.ExpiresAt},
			{"LongExpired", in.ID, live, live.ExpiresAt.Add(time.Hour)},
			{"ForeignInstall", other.ID, live, Now},
			{"UnknownInstall", "trk_0000000000000000", live, Now},
			{"RevokedInstall", revoked.ID, ofRevoked, Now},
			{"Unknown", in.ID, &custos.RequestKey{Hash: "nope"}, Now},
		} {
			before, _ := s.FindRequestKeyByHash(ctx, tc.key.Hash)
			next := NewNextKey()
			spent, err := s.SpendRequestKey(ctx, tc.installID, tc.key.Hash, tc.now, next)
			mustCode(t, tc.name, err, custos.ENOTFOUND)
			if spent != nil {
				t.Fatalf("%s: spent=%+v, want nil", tc.name, spent)
			}
			if after, _ := s.FindRequestKeyByHash(ctx, tc.key.Hash); !reflect.DeepEqual(after, before) {
				t.Fatalf("%s: key changed from %+v to %+v", tc.name, before, after)
			}
			if _, err := s.FindRequestKeyByHash(ctx, next.Hash); code(err) != custos.ENOTFOUND {
				t.Fatalf("%s: next key stored (err=%v)", tc.name, err)
			}
		}
		if got := auditLen(t, s, org.ID); got != n {
			t.Fatalf("events=%d, want %d", got, n)
		}
		// The live key still spends once.
		if _, err := s.SpendRequestKey(ctx, in.ID, live.Hash, Now, nil); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure a next key whose hash exists is a conflict that spends nothing.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		k := MustCreateRequestKey(t, s, in)
		other := MustCreateRequestKey(t, s, in)
		next := NewNextKey()
		next.Hash = other.Hash
		_, err := s.SpendRequestKey(ctx, in.ID, k.Hash, Now, next)
		mustCode(t, "SpendRequestKey", err, custos.ECONFLICT)
		if got, err := s.FindRequestKeyByHash(ctx, k.Hash); err != nil {
			t.Fatal(err)
		} else if got.UsedAt != nil {
			t.Fatalf("key used at %v after a failed spend", got.UsedAt)
		}
		dup := NewRequestKey(in, "trs_0000000000000000")
		dup.Hash = k.Hash
		mustCode(t, "CreateRequestKey with a used hash", s.CreateRequestKey(ctx, dup, NewEvent(org.ID, custos.ActionTrackerSession)), custos.ECONFLICT)
		MustVerifyChain(t, s, org.ID, 4)
		_, err = s.FindRequestKeyByHash(ctx, "nope")
		mustCode(t, "FindRequestKeyByHash", err, custos.ENOTFOUND)
	})
}

// raceSpend spends key k of install in from n goroutines through stores
// (round robin), each offering its own next key, and fails the test unless
// exactly one wins and exactly its next key is stored, which then spends
// exactly once too.
func raceSpend(t *testing.T, stores []custos.Store, in *custos.TrackerInstall, k *custos.RequestKey, n int) {
	t.Helper()
	ctx := context.Background()
	nexts := make([]*custos.RequestKey, n)
	for i := range nexts {
		nexts[i] = NewNextKey()
	}
	mustRace(t, n, custos.ENOTFOUND, func(i int) error {
		_, err := stores[i%len(stores)].SpendRequestKey(ctx, in.ID, k.Hash, Now.Add(time.Second), nexts[i])
		return err
	})
	var winner *custos.RequestKey
	for _, next := range nexts {
		_, err := stores[0].FindRequestKeyByHash(ctx, next.Hash)
		switch code(err) {
		case "":
			if winner != nil {
				t.Fatal("two next keys stored")
			}
			winner = next
		case custos.ENOTFOUND:
		default:
			t.Fatal(err)
		}
	}
	if winner == nil {
		t.Fatal("no next key stored")
	}
	nexts2 := make([]*custos.RequestKey, n)
	for i := range nexts2 {
		nexts2[i] = NewNextKey()
	}
	mustRace(t, n, custos.ENOTFOUND, func(i int) error {
		_, err := stores[i%len(stores)].SpendRequestKey(ctx, in.ID, winner.Hash, Now.Add(2*time.Second), nexts2[i])
		return err
	})
}

func testSpendRequestKeyConcurrent(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure of 500 concurrent spends of one key exactly one wins, exactly
	// its next key is stored, and that key is won exactly once in turn.
	t.Run("OK", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		raceSpend(t, []custos.Store{s}, in, MustCreateRequestKey(t, s, in), 500)
	})
}

func testLaunchCodes(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure a code round-trips and creates its task once: a second code of
	// the task leaves the task as it was.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		c := MustCreateLaunchCode(t, s, in, "web", "T-1")
		if got, err := s.FindLaunchCodeByHash(ctx, c.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, c) {
			t.Fatalf("FindLaunchCodeByHash=%+v, want %+v", got, c)
		}
		want := &custos.Task{OrgID: org.ID, ProjectID: "web", ID: "T-1", CreatedAt: Now}
		if got, err := s.FindTask(ctx, org.ID, "web", "T-1"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, want) {
			t.Fatalf("FindTask=%+v, want %+v", got, want)
		}
		c2 := NewLaunchCode(in, "web", "T-1")
		c2.CreatedAt = Now.Add(time.Hour)
		if err := s.CreateLaunchCode(ctx, c2, NewEvent(org.ID, custos.ActionLaunchCreate)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindTask(ctx, org.ID, "web", "T-1"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, want) {
			t.Fatalf("FindTask after a second code=%+v, want %+v", got, want)
		}
		for _, k := range [][3]string{{org.ID, "web", "T-2"}, {org.ID, "api", "T-1"}, {"org_0000000000000000", "web", "T-1"}} {
			_, err := s.FindTask(ctx, k[0], k[1], k[2])
			mustCode(t, fmt.Sprintf("FindTask %v", k), err, custos.ENOTFOUND)
		}
		_, err := s.FindLaunchCodeByHash(ctx, "nope")
		mustCode(t, "FindLaunchCodeByHash", err, custos.ENOTFOUND)
		MustVerifyChain(t, s, org.ID, 4)
	})

	// Ensure a code for a complete task, or with a hash that exists, is a
	// conflict that stores nothing.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, in, _ := mustTaskWorld(t, s)
		if _, err := s.CompleteTask(ctx, org.ID, "web", "T-1", Now, Now.Add(time.Hour), nil); err != nil {
			t.Fatal(err)
		}
		n := auditLen(t, s, org.ID)
		c := NewLaunchCode(in, "web", "T-1")
		mustCode(t, "complete task", s.CreateLaunchCode(ctx, c, NewEvent(org.ID, custos.ActionLaunchCreate)), custos.ECONFLICT)
		if _, err := s.FindLaunchCodeByHash(ctx, c.Hash); code(err) != custos.ENOTFOUND {
			t.Fatalf("refused code stored (err=%v)", err)
		}
		first := MustCreateLaunchCode(t, s, in, "web", "T-2")
		dup := NewLaunchCode(in, "web", "T-3")
		dup.Hash = first.Hash
		mustCode(t, "same hash", s.CreateLaunchCode(ctx, dup, NewEvent(org.ID, custos.ActionLaunchCreate)), custos.ECONFLICT)
		_, err := s.FindTask(ctx, org.ID, "web", "T-3")
		mustCode(t, "task of the refused code", err, custos.ENOTFOUND)
		if got, want := auditLen(t, s, org.ID), n+1; got != want {
			t.Fatalf("events=%d, want %d", got, want)
		}
	})
}

func testExchangeLaunchCode(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure exchanging a code marks it used, stores the permit with the
	// code's org and id, and appends the event to the code's org's chain.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		c := MustCreateLaunchCode(t, s, in, "web", "T-1")
		at := Now.Add(time.Minute)
		p := NewPermit("web", "T-1")
		ev := NewEvent("", custos.ActionLaunchExchange)
		got, err := s.ExchangeLaunchCode(ctx, c.Hash, "web", "T-1", at, p, ev)
		if err != nil {
			t.Fatal(err)
		}
		want := *c
		want.UsedAt = &at
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("code=%+v, want %+v", got, &want)
		}
		if stored, err := s.FindLaunchCodeByHash(ctx, c.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(stored, &want) {
			t.Fatalf("stored code=%+v, want %+v", stored, &want)
		}
		if p.OrgID != org.ID || p.LaunchID != c.ID {
			t.Fatalf("permit org=%q launch=%q, want %q and %q", p.OrgID, p.LaunchID, org.ID, c.ID)
		}
		if stored, err := s.FindPermitByHash(ctx, p.Hash); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(stored, p) {
			t.Fatalf("FindPermitByHash=%+v, want %+v", stored, p)
		}
		if ev.OrgID != org.ID {
			t.Fatalf("event org=%q, want %q", ev.OrgID, org.ID)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[len(evs)-1].Action, custos.ActionLaunchExchange; got != want {
			t.Fatalf("last action=%q, want %q", got, want)
		}
		MustVerifyChain(t, s, org.ID, 4)
		_, err = s.FindPermitByHash(ctx, "nope")
		mustCode(t, "FindPermitByHash", err, custos.ENOTFOUND)
	})

	// Ensure a wrong pair, a used or expired code, one of a revoked install
	// or an unknown one is refused and changes nothing: the code stays
	// unused, no permit and no event is stored.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		live := MustCreateLaunchCode(t, s, in, "web", "T-1")
		MustCreateLaunchCode(t, s, in, "web", "T-2")
		MustCreateLaunchCode(t, s, in, "api", "T-1")
		used := MustCreateLaunchCode(t, s, in, "web", "T-1")
		if _, err := s.ExchangeLaunchCode(ctx, used.Hash, "web", "T-1", Now, NewPermit("web", "T-1"), nil); err != nil {
			t.Fatal(err)
		}
		gone := MustCreateTrackerInstall(t, s, org.ID, "gone")
		ofRevoked := MustCreateLaunchCode(t, s, gone, "web", "T-1")
		if err := s.RevokeTrackerInstall(ctx, org.ID, gone.ID, Now, nil); err != nil {
			t.Fatal(err)
		}
		n := auditLen(t, s, org.ID)
		for _, tc := range []struct {
			name             string
			code             *custos.LaunchCode
			project, task    string
			now              time.Time
			wantUnusedBefore bool
		}{
			{"WrongTask", live, "web", "T-2", Now, true},
			{"WrongProject", live, "api", "T-1", Now, true},
			{"Swapped", live, "T-1", "web", Now, true},
			{"Expired", live, "web", "T-1", live.ExpiresAt, true},
			{"LongExpired", live, "web", "T-1", live.ExpiresAt.Add(time.Hour), true},
			{"Used", used, "web", "T-1", Now.Add(time.Second), false},
			{"RevokedInstall", ofRevoked, "web", "T-1", Now, true},
			{"Unknown", &custos.LaunchCode{Hash: "nope"}, "web", "T-1", Now, false},
		} {
			before, _ := s.FindLaunchCodeByHash(ctx, tc.code.Hash)
			if tc.wantUnusedBefore && (before == nil || before.UsedAt != nil) {
				t.Fatalf("%s: code before=%+v, want unused", tc.name, before)
			}
			p := NewPermit(tc.project, tc.task)
			got, err := s.ExchangeLaunchCode(ctx, tc.code.Hash, tc.project, tc.task, tc.now, p, NewEvent("", custos.ActionLaunchExchange))
			mustCode(t, tc.name, err, custos.ENOTFOUND)
			if got != nil {
				t.Fatalf("%s: code=%+v, want nil", tc.name, got)
			}
			if after, _ := s.FindLaunchCodeByHash(ctx, tc.code.Hash); !reflect.DeepEqual(after, before) {
				t.Fatalf("%s: code changed from %+v to %+v", tc.name, before, after)
			}
			if _, err := s.FindPermitByHash(ctx, p.Hash); code(err) != custos.ENOTFOUND {
				t.Fatalf("%s: permit stored (err=%v)", tc.name, err)
			}
			if got := auditLen(t, s, org.ID); got != n {
				t.Fatalf("%s: events=%d, want %d", tc.name, got, n)
			}
		}
		// The live code still exchanges once, for its pair.
		if _, err := s.ExchangeLaunchCode(ctx, live.Hash, "web", "T-1", Now, NewPermit("web", "T-1"), nil); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure a permit whose hash exists is a conflict that leaves the code
	// unused.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		a := MustCreateLaunchCode(t, s, in, "web", "T-1")
		b := MustCreateLaunchCode(t, s, in, "web", "T-1")
		p := NewPermit("web", "T-1")
		if _, err := s.ExchangeLaunchCode(ctx, a.Hash, "web", "T-1", Now, p, nil); err != nil {
			t.Fatal(err)
		}
		dup := NewPermit("web", "T-1")
		dup.Hash = p.Hash
		_, err := s.ExchangeLaunchCode(ctx, b.Hash, "web", "T-1", Now, dup, NewEvent("", custos.ActionLaunchExchange))
		mustCode(t, "ExchangeLaunchCode", err, custos.ECONFLICT)
		if got, err := s.FindLaunchCodeByHash(ctx, b.Hash); err != nil {
			t.Fatal(err)
		} else if got.UsedAt != nil {
			t.Fatalf("code used at %v after a failed exchange", got.UsedAt)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})
}

// raceExchange exchanges code c from n goroutines through stores (round
// robin), each with its own permit, and fails the test unless exactly one
// wins, exactly its permit is stored and exactly one event is appended.
func raceExchange(t *testing.T, stores []custos.Store, c *custos.LaunchCode, n int) {
	t.Helper()
	ctx := context.Background()
	events := auditLen(t, stores[0], c.OrgID)
	permits := make([]*custos.Permit, n)
	for i := range permits {
		permits[i] = NewPermit(c.ProjectID, c.TaskID)
	}
	mustRace(t, n, custos.ENOTFOUND, func(i int) error {
		_, err := stores[i%len(stores)].ExchangeLaunchCode(ctx, c.Hash, c.ProjectID, c.TaskID, Now.Add(time.Second),
			permits[i], NewEvent("", custos.ActionLaunchExchange))
		return err
	})
	stored := 0
	for _, p := range permits {
		switch _, err := stores[0].FindPermitByHash(ctx, p.Hash); code(err) {
		case "":
			stored++
		case custos.ENOTFOUND:
		default:
			t.Fatal(err)
		}
	}
	if got, want := stored, 1; got != want {
		t.Fatalf("permits stored=%d, want %d", got, want)
	}
	MustVerifyChain(t, stores[0], c.OrgID, int64(events+1))
}

func testExchangeLaunchCodeConcurrent(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure of 500 concurrent exchanges of one code exactly one wins and
	// exactly one permit and one event are stored.
	t.Run("OK", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		raceExchange(t, []custos.Store{s}, MustCreateLaunchCode(t, s, in, "web", "T-1"), 500)
	})
}

func testRuns(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure a run round-trips, is found only in its org, and completes
	// once: completing again returns it unchanged and writes no event.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _, r := mustTaskWorld(t, s)
		if got, err := s.FindRun(ctx, org.ID, r.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, r) {
			t.Fatalf("FindRun=%+v, want %+v", got, r)
		}
		_, err := s.FindRun(ctx, "org_0000000000000000", r.ID)
		mustCode(t, "FindRun of another org", err, custos.ENOTFOUND)
		at := Now.Add(time.Minute)
		want := *r
		want.CompletedAt = &at
		for i, now := range []time.Time{at, at.Add(time.Hour)} {
			if got, err := s.CompleteRun(ctx, org.ID, r.ID, now, NewEvent(org.ID, custos.ActionRunComplete)); err != nil {
				t.Fatal(err)
			} else if !reflect.DeepEqual(got, &want) {
				t.Fatalf("CompleteRun %d=%+v, want %+v", i, got, &want)
			}
		}
		if got, err := s.FindRun(ctx, org.ID, r.ID); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, &want) {
			t.Fatalf("FindRun=%+v, want %+v", got, &want)
		}
		MustVerifyChain(t, s, org.ID, 5)
	})

	// Ensure a run of a missing task, of a complete one, or with an id
	// that exists is refused and stores nothing; a missing run cannot be
	// completed.
	t.Run("Err", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, in, r := mustTaskWorld(t, s)
		MustCreateLaunchCode(t, s, in, "web", "T-2")
		if _, err := s.CompleteTask(ctx, org.ID, "web", "T-2", Now, Now.Add(time.Hour), nil); err != nil {
			t.Fatal(err)
		}
		n := auditLen(t, s, org.ID)
		for _, tc := range []struct {
			name string
			run  *custos.Run
			want string
		}{
			{"NoTask", NewRun(org.ID, "web", "T-9"), custos.ENOTFOUND},
			{"OtherProject", NewRun(org.ID, "api", "T-1"), custos.ENOTFOUND},
			{"OtherOrg", NewRun("org_0000000000000000", "web", "T-1"), custos.ENOTFOUND},
			{"TaskComplete", NewRun(org.ID, "web", "T-2"), custos.ECONFLICT},
			{"SameID", &custos.Run{ID: r.ID, OrgID: org.ID, ProjectID: "web", TaskID: "T-1", CreatedAt: Now}, custos.ECONFLICT},
		} {
			mustCode(t, tc.name, s.CreateRun(ctx, tc.run, NewEvent(org.ID, custos.ActionRunCreate)), tc.want)
			if tc.name != "SameID" {
				if _, err := s.FindRun(ctx, tc.run.OrgID, tc.run.ID); code(err) != custos.ENOTFOUND {
					t.Fatalf("%s: run stored (err=%v)", tc.name, err)
				}
			}
		}
		_, err := s.CompleteRun(ctx, org.ID, "run_0000000000000000", Now, NewEvent(org.ID, custos.ActionRunComplete))
		mustCode(t, "CompleteRun", err, custos.ENOTFOUND)
		_, err = s.CompleteRun(ctx, "org_0000000000000000", r.ID, Now, nil)
		mustCode(t, "CompleteRun of another org", err, custos.ENOTFOUND)
		if got := auditLen(t, s, org.ID); got != n {
			t.Fatalf("events=%d, want %d", got, n)
		}
	})
}

func testCompleteTask(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure completing a task completes it and its open runs (a complete
	// run keeps its time), and sets the expiry of every artifact of the
	// task — live and replaced, of every run — that has none or a later
	// one; completing again changes nothing and writes no event; other
	// tasks are untouched.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, in, r1 := mustTaskWorld(t, s)
		r2 := MustCreateRun(t, s, org.ID, "web", "T-1")
		done := Now.Add(time.Minute)
		if _, err := s.CompleteRun(ctx, org.ID, r2.ID, done, nil); err != nil {
			t.Fatal(err)
		}
		a := NewArtifact(r1, "a.txt", 1)
		MustPutArtifact(t, s, a)
		a2 := NewArtifact(r1, "a.txt", 2) // replaces a
		a2.CreatedAt = Now.Add(time.Second)
		MustPutArtifact(t, s, a2)
		soon := Now.Add(time.Hour)
		b := NewArtifact(r1, "b.txt", 3)
		b.ExpiresAt = &soon // expires before the retention: kept
		MustPutArtifact(t, s, b)
		MustCreateLaunchCode(t, s, in, "web", "T-2")
		rOther := MustCreateRun(t, s, org.ID, "web", "T-2")
		other := NewArtifact(rOther, "a.txt", 4)
		MustPutArtifact(t, s, other)

		now := Now.Add(2 * time.Minute)
		expires := now.Add(custos.DefaultArtifactRetention)
		n := auditLen(t, s, org.ID)
		want := &custos.Task{OrgID: org.ID, ProjectID: "web", ID: "T-1", CreatedAt: Now, CompletedAt: &now}
		// The second call, later and with an earlier expiry, changes nothing.
		for i, c := range [][2]time.Time{{now, expires}, {now.Add(time.Hour), now}} {
			got, err := s.CompleteTask(ctx, org.ID, "web", "T-1", c[0], c[1], NewEvent(org.ID, custos.ActionTaskComplete))
			if err != nil {
				t.Fatal(err)
			} else if !reflect.DeepEqual(got, want) {
				t.Fatalf("CompleteTask %d=%+v, want %+v", i, got, want)
			}
		}
		if got, want := auditLen(t, s, org.ID), n+1; got != want {
			t.Fatalf("events=%d, want %d", got, want)
		}
		if got, err := s.FindTask(ctx, org.ID, "web", "T-1"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, want) {
			t.Fatalf("FindTask=%+v, want %+v", got, want)
		}
		for _, tc := range []struct {
			run  *custos.Run
			want time.Time
		}{{r1, now}, {r2, done}} {
			if got, err := s.FindRun(ctx, org.ID, tc.run.ID); err != nil {
				t.Fatal(err)
			} else if got.CompletedAt == nil || !got.CompletedAt.Equal(tc.want) {
				t.Fatalf("run completed at %v, want %v", got.CompletedAt, tc.want)
			}
		}
		if got, err := s.FindRun(ctx, org.ID, rOther.ID); err != nil {
			t.Fatal(err)
		} else if got.CompletedAt != nil {
			t.Fatalf("run of another task completed at %v", got.CompletedAt)
		}
		wantExp := map[string]time.Time{a.ID: expires, a2.ID: expires, b.ID: soon}
		all, err := s.PurgeableArtifacts(ctx, expires, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(all), 3; got != want {
			t.Fatalf("purgeable at expiry=%d, want %d", got, want)
		}
		for _, x := range all {
			if x.ExpiresAt == nil || !x.ExpiresAt.Equal(wantExp[x.ID]) {
				t.Fatalf("artifact %s (%s) expires at %v, want %v", x.ID, x.Name, x.ExpiresAt, wantExp[x.ID])
			}
		}
		if got, err := s.FindArtifact(ctx, org.ID, rOther.ID, "a.txt"); err != nil {
			t.Fatal(err)
		} else if got.ExpiresAt != nil {
			t.Fatalf("artifact of another task expires at %v", got.ExpiresAt)
		}
		// Nothing more may be added to the task.
		mustCode(t, "CreateRun", s.CreateRun(ctx, NewRun(org.ID, "web", "T-1"), nil), custos.ECONFLICT)
		mustCode(t, "PutArtifact", s.PutArtifact(ctx, NewArtifact(r2, "c.txt", 1), 0, nil), custos.ECONFLICT)
		mustCode(t, "CreateLaunchCode", s.CreateLaunchCode(ctx, NewLaunchCode(in, "web", "T-1"), nil), custos.ECONFLICT)
	})

	// Ensure a missing task is reported.
	t.Run("ErrNotFound", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _, _ := mustTaskWorld(t, s)
		for _, k := range [][3]string{{org.ID, "web", "T-9"}, {org.ID, "api", "T-1"}, {"org_0000000000000000", "web", "T-1"}} {
			_, err := s.CompleteTask(ctx, k[0], k[1], k[2], Now, Now, NewEvent(org.ID, custos.ActionTaskComplete))
			mustCode(t, fmt.Sprintf("CompleteTask %v", k), err, custos.ENOTFOUND)
		}
		if got, err := s.FindTask(ctx, org.ID, "web", "T-1"); err != nil {
			t.Fatal(err)
		} else if got.CompletedAt != nil {
			t.Fatalf("task completed at %v", got.CompletedAt)
		}
		MustVerifyChain(t, s, org.ID, 4)
	})
}

func testPutArtifact(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure an artifact round-trips with its sealed key, lists by name,
	// and putting a name again marks the old one replaced (still purgeable,
	// no longer found or listed).
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _, r := mustTaskWorld(t, s)
		b := NewArtifact(r, "src/b.go", 20)
		a := NewArtifact(r, "a.txt", 10)
		a.Kind = ""
		for _, x := range []*custos.Artifact{b, a} {
			if err := s.PutArtifact(ctx, x, 30, NewEvent(org.ID, custos.ActionArtifactPut)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.FindArtifact(ctx, org.ID, r.ID, "src/b.go"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, b) {
			t.Fatalf("FindArtifact=%+v, want %+v", got, b)
		}
		if got, want := mustLive(t, s, r), []*custos.Artifact{a, b}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListArtifacts=%+v, want %+v", got, want)
		}
		// Replacing b: its old size does not count against the limit.
		b2 := NewArtifact(r, "src/b.go", 20)
		b2.CreatedAt = Now.Add(time.Second)
		if err := s.PutArtifact(ctx, b2, 30, NewEvent(org.ID, custos.ActionArtifactPut)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindArtifact(ctx, org.ID, r.ID, "src/b.go"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, b2) {
			t.Fatalf("FindArtifact after replace=%+v, want %+v", got, b2)
		}
		if got, want := mustLive(t, s, r), []*custos.Artifact{a, b2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListArtifacts after replace=%+v, want %+v", got, want)
		}
		old := *b
		old.ReplacedAt = &b2.CreatedAt
		if got, err := s.PurgeableArtifacts(ctx, Now, 10); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Artifact{&old}; !reflect.DeepEqual(got, want) {
			t.Fatalf("PurgeableArtifacts=%+v, want %+v", got, want)
		}
		_, err := s.FindArtifact(ctx, "org_0000000000000000", r.ID, "a.txt")
		mustCode(t, "FindArtifact of another org", err, custos.ENOTFOUND)
		_, err = s.FindArtifact(ctx, org.ID, r.ID, "c.txt")
		mustCode(t, "FindArtifact of a missing name", err, custos.ENOTFOUND)
		if got, err := s.ListArtifacts(ctx, "org_0000000000000000", r.ID); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ListArtifacts of another org=%v, want empty", got)
		}
		MustVerifyChain(t, s, org.ID, 7)
	})

	// Ensure a put over the run limit, to a missing, foreign or complete
	// run, or with an id that exists, is refused and changes nothing.
	t.Run("Err", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, in, r := mustTaskWorld(t, s)
		a := NewArtifact(r, "a.txt", 60)
		if err := s.PutArtifact(ctx, a, 100, nil); err != nil {
			t.Fatal(err)
		}
		done := MustCreateRun(t, s, org.ID, "web", "T-1")
		if _, err := s.CompleteRun(ctx, org.ID, done.ID, Now, nil); err != nil {
			t.Fatal(err)
		}
		MustCreateLaunchCode(t, s, in, "web", "T-2")
		elsewhere := MustCreateRun(t, s, org.ID, "web", "T-2")
		n := auditLen(t, s, org.ID)
		keys, err := s.ArtifactBlobKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wrongTask := NewArtifact(elsewhere, "x", 1)
		wrongTask.TaskID = "T-1"
		otherOrg := NewArtifact(r, "x", 1)
		otherOrg.OrgID = "org_0000000000000000"
		sameID := NewArtifact(r, "b.txt", 1)
		sameID.ID = a.ID
		for _, tc := range []struct {
			name string
			a    *custos.Artifact
			want string
		}{
			{"OverRunLimit", NewArtifact(r, "b.txt", 41), custos.ETOOLARGE},
			{"ReplaceOverRunLimit", NewArtifact(r, "a.txt", 101), custos.ETOOLARGE},
			{"NoRun", NewArtifact(&custos.Run{ID: "run_0000000000000000", OrgID: org.ID, ProjectID: "web", TaskID: "T-1"}, "x", 1), custos.ENOTFOUND},
			{"RunOfAnotherTask", wrongTask, custos.ENOTFOUND},
			{"RunOfAnotherOrg", otherOrg, custos.ENOTFOUND},
			{"RunComplete", NewArtifact(done, "x", 1), custos.ECONFLICT},
			{"SameID", sameID, custos.ECONFLICT},
		} {
			mustCode(t, tc.name, s.PutArtifact(ctx, tc.a, 100, NewEvent(org.ID, custos.ActionArtifactPut)), tc.want)
		}
		if got, want := mustLive(t, s, r), []*custos.Artifact{a}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ListArtifacts=%+v, want %+v", got, want)
		}
		if got, err := s.ArtifactBlobKeys(ctx); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, keys) {
			t.Fatalf("ArtifactBlobKeys=%v, want %v", got, keys)
		}
		if got := auditLen(t, s, org.ID); got != n {
			t.Fatalf("events=%d, want %d", got, n)
		}
		// Exactly at the limit is allowed.
		if err := s.PutArtifact(ctx, NewArtifact(r, "b.txt", 40), 100, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func testPutArtifactConcurrent(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure concurrent puts of distinct names never take a run over its
	// limit: of 40 puts of 10 bytes under a 100-byte limit, exactly 10
	// succeed.
	t.Run("RunLimit", func(t *testing.T) {
		s := open(t)
		_, _, r := mustTaskWorld(t, s)
		raceRunLimit(t, []custos.Store{s}, r)
	})

	// Ensure concurrent puts of one name each replace the one before:
	// all succeed, one stays live and every other is marked replaced.
	t.Run("Replace", func(t *testing.T) {
		s := open(t)
		_, _, r := mustTaskWorld(t, s)
		raceReplace(t, []custos.Store{s}, r)
	})
}

// raceRunLimit puts 40 artifacts of 10 bytes, each of its own name, into
// run r at once through stores (round robin) under a 100-byte limit, and
// fails the test unless exactly 10 succeed and the rest are too large.
func raceRunLimit(t *testing.T, stores []custos.Store, r *custos.Run) {
	t.Helper()
	ctx := context.Background()
	const n, size, limit = 40, 10, 100
	var mu sync.Mutex
	ok, large := 0, 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := stores[i%len(stores)].PutArtifact(ctx, NewArtifact(r, fmt.Sprintf("f%02d", i), size), limit, nil)
			mu.Lock()
			defer mu.Unlock()
			switch code(err) {
			case "":
				ok++
			case custos.ETOOLARGE:
				large++
			default:
				t.Errorf("put %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok != limit/size || large != n-limit/size {
		t.Fatalf("stored=%d too large=%d, want %d and %d", ok, large, limit/size, n-limit/size)
	}
	var total int64
	for _, a := range mustLive(t, stores[0], r) {
		total += a.Size
	}
	if total != limit {
		t.Fatalf("live bytes=%d, want %d", total, limit)
	}
}

// raceReplace puts 30 artifacts of one name into run r at once through
// stores (round robin) and fails the test unless all succeed, exactly one
// is live and the other 29 are marked replaced.
func raceReplace(t *testing.T, stores []custos.Store, r *custos.Run) {
	t.Helper()
	ctx := context.Background()
	const n = 30
	keys, err := stores[0].ArtifactBlobKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a := NewArtifact(r, "out.diff", 10)
			a.CreatedAt = Now.Add(time.Duration(i) * time.Millisecond)
			if err := stores[i%len(stores)].PutArtifact(ctx, a, 15, nil); err != nil {
				t.Errorf("put %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := mustLive(t, stores[0], r); len(got) != 1 {
		t.Fatalf("live=%d, want 1", len(got))
	}
	if got, err := stores[0].PurgeableArtifacts(ctx, Now, 1000); err != nil {
		t.Fatal(err)
	} else if len(got) != n-1 {
		t.Fatalf("replaced=%d, want %d", len(got), n-1)
	}
	if after, err := stores[0].ArtifactBlobKeys(ctx); err != nil {
		t.Fatal(err)
	} else if got, want := len(after), len(keys)+n; got != want {
		t.Fatalf("blob keys=%d, want %d", got, want)
	}
}

func testPurgeArtifacts(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure purgeable artifacts are the replaced ones and those expiring
	// at or before now, the earliest due first, at most limit; deleting one
	// appends its event, and deleting a missing row is no error and writes
	// no event; blob keys are those of the rows left.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _, r := mustTaskWorld(t, s)
		at := func(d time.Duration) *time.Time { return ptr(Now.Add(d)) }
		late := NewArtifact(r, "late", 1)
		late.ExpiresAt = at(3 * time.Hour)
		early := NewArtifact(r, "early", 1)
		early.ExpiresAt = at(time.Hour)
		edge := NewArtifact(r, "edge", 1)
		edge.ExpiresAt = at(4 * time.Hour) // due exactly at now
		future := NewArtifact(r, "future", 1)
		future.ExpiresAt = at(5 * time.Hour)
		keep := NewArtifact(r, "keep", 1) // no expiry
		old := NewArtifact(r, "re", 1)
		old.ExpiresAt = at(10 * time.Hour)
		re := NewArtifact(r, "re", 1)
		re.CreatedAt = Now.Add(2 * time.Hour) // replaces old, due at 2h
		for _, a := range []*custos.Artifact{late, early, edge, future, keep, old, re} {
			MustPutArtifact(t, s, a)
		}
		old.ReplacedAt = &re.CreatedAt
		now := Now.Add(4 * time.Hour)
		got, err := s.PurgeableArtifacts(ctx, now, 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := []*custos.Artifact{early, old, late, edge}; !reflect.DeepEqual(got, want) {
			t.Fatalf("PurgeableArtifacts=%v, want %v", names(got), names(want))
		}
		if got, err := s.PurgeableArtifacts(ctx, now, 2); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Artifact{early, old}; !reflect.DeepEqual(got, want) {
			t.Fatalf("PurgeableArtifacts limit 2=%v, want %v", names(got), names(want))
		}
		n := auditLen(t, s, org.ID)
		for _, a := range []*custos.Artifact{early, old} {
			if err := s.DeleteArtifact(ctx, a.ID, NewEvent(org.ID, custos.ActionArtifactPurge)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteArtifact(ctx, early.ID, NewEvent(org.ID, custos.ActionArtifactPurge)); err != nil {
			t.Fatalf("deleting a deleted artifact: %v", err)
		}
		if got, want := auditLen(t, s, org.ID), n+2; got != want {
			t.Fatalf("events=%d, want %d", got, want)
		}
		if got, err := s.PurgeableArtifacts(ctx, now, 0); err != nil {
			t.Fatal(err)
		} else if want := []*custos.Artifact{late, edge}; !reflect.DeepEqual(got, want) {
			t.Fatalf("PurgeableArtifacts after deletes=%v, want %v", names(got), names(want))
		}
		if got, err := s.ArtifactBlobKeys(ctx); err != nil {
			t.Fatal(err)
		} else if want := map[string]bool{late.BlobKey: true, edge.BlobKey: true, future.BlobKey: true, keep.BlobKey: true, re.BlobKey: true}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ArtifactBlobKeys=%v, want %v", got, want)
		}
		MustVerifyChain(t, s, org.ID, int64(n+2))
	})

	// Ensure an empty store has nothing to purge and no blob keys.
	t.Run("Empty", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		if got, err := s.PurgeableArtifacts(ctx, Now, 10); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("PurgeableArtifacts=%v, want empty", got)
		}
		if got, err := s.ArtifactBlobKeys(ctx); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("ArtifactBlobKeys=%v, want empty", got)
		}
	})
}

// names returns the names of as.
func names(as []*custos.Artifact) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
		if a.ReplacedAt != nil {
			out[i] += "(replaced)"
		}
	}
	return out
}

func testIndexFiles(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure entries are inserted, replaced (the last of one path in a call
	// wins), and read back per org, project and index.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		put := func(orgID, project, index string, files ...custos.IndexFile) {
			t.Helper()
			if err := s.PutIndexFiles(ctx, orgID, project, index, files, Now, NewEvent(orgID, custos.ActionIndexPut)); err != nil {
				t.Fatal(err)
			}
		}
		put(org.ID, "web", "main",
			custos.IndexFile{Path: "a.go", SHA256: "1a", Summary: "A"},
			custos.IndexFile{Path: "b.go", SHA256: "1b", Summary: "B"},
			custos.IndexFile{Path: "b.go", SHA256: "2b", Summary: "B2"})
		put(org.ID, "web", "main", custos.IndexFile{Path: "a.go", SHA256: "2a", Summary: "A2"})
		put(org.ID, "web", "dev", custos.IndexFile{Path: "c.go", SHA256: "dc"})
		put(org.ID, "api", "main", custos.IndexFile{Path: "c.go", SHA256: "ac"})
		put("org_0000000000000000", "web", "main", custos.IndexFile{Path: "c.go", SHA256: "oc"})
		put(org.ID, "web", "main")
		paths := []string{"a.go", "b.go", "c.go", "missing.go"}
		for _, tc := range []struct {
			org, project, index string
			want                map[string]string
		}{
			{org.ID, "web", "main", map[string]string{"a.go": "2a", "b.go": "2b"}},
			{org.ID, "web", "dev", map[string]string{"c.go": "dc"}},
			{org.ID, "api", "main", map[string]string{"c.go": "ac"}},
			{"org_0000000000000000", "web", "main", map[string]string{"c.go": "oc"}},
			{org.ID, "web", "none", map[string]string{}},
		} {
			if got, err := s.IndexHashes(ctx, tc.org, tc.project, tc.index, paths); err != nil {
				t.Fatal(err)
			} else if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("IndexHashes %s/%s=%v, want %v", tc.project, tc.index, got, tc.want)
			}
		}
		if got, err := s.IndexHashes(ctx, org.ID, "web", "main", nil); err != nil {
			t.Fatal(err)
		} else if got == nil || len(got) != 0 {
			t.Fatalf("IndexHashes of no paths=%v, want empty", got)
		}
		MustVerifyChain(t, s, org.ID, 6)
	})

	// Ensure a large call is stored in one piece.
	t.Run("Max", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		files := make([]custos.IndexFile, custos.MaxIndexFiles)
		paths := make([]string, len(files))
		for i := range files {
			files[i] = custos.IndexFile{Path: fmt.Sprintf("dir/f%04d.go", i), SHA256: fmt.Sprintf("%064x", i), Summary: "s"}
			paths[i] = files[i].Path
		}
		if err := s.PutIndexFiles(ctx, org.ID, "web", "main", files, Now, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.IndexHashes(ctx, org.ID, "web", "main", paths); err != nil {
			t.Fatal(err)
		} else if len(got) != len(files) || got[files[7].Path] != files[7].SHA256 {
			t.Fatalf("IndexHashes=%d entries, want %d", len(got), len(files))
		}
	})
}

func testTaskCacheEpoch(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure changes to the tasks tables do not advance the cache epoch:
	// nothing caches them.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		e := MustCacheEpoch(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		k := MustCreateRequestKey(t, s, in)
		if _, err := s.SpendRequestKey(ctx, in.ID, k.Hash, Now, NewNextKey()); err != nil {
			t.Fatal(err)
		}
		c := MustCreateLaunchCode(t, s, in, "web", "T-1")
		if _, err := s.ExchangeLaunchCode(ctx, c.Hash, "web", "T-1", Now, NewPermit("web", "T-1"), nil); err != nil {
			t.Fatal(err)
		}
		r := MustCreateRun(t, s, org.ID, "web", "T-1")
		a := NewArtifact(r, "a", 1)
		MustPutArtifact(t, s, a)
		if err := s.PutIndexFiles(ctx, org.ID, "web", "main", []custos.IndexFile{{Path: "a", SHA256: "1"}}, Now, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CompleteTask(ctx, org.ID, "web", "T-1", Now, Now, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteArtifact(ctx, a.ID, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeTrackerInstall(ctx, org.ID, in.ID, Now, nil); err != nil {
			t.Fatal(err)
		}
		if got := MustCacheEpoch(t, s); got != e {
			t.Fatalf("epoch=%d, want %d", got, e)
		}
	})
}

// TaskTables are the tables of the tasks capability, for backends' row
// counts in RunTaskRefusals.
var TaskTables = []string{"tracker_installs", "request_keys", "launch_codes", "permits", "tasks", "runs",
	"artifacts", "index_files", "audit_events"}

// RunTaskRefusals makes, on a fresh store s, every refused call of the
// tasks capability (a wrong pair, a used, expired or unknown token, a
// revoked install, a complete task or run, a run over its limit, an id or
// hash that exists) and fails the test unless count — the backend's row
// count of each of TaskTables, by raw SQL — returns the same before and
// after, and the store's rows (rows changed, not only added) read the
// same.
func RunTaskRefusals(t *testing.T, s custos.Store, count func(t *testing.T) map[string]int64) {
	ctx := context.Background()
	org, in, r := mustTaskWorld(t, s)
	MustCreateLaunchCode(t, s, in, "web", "T-2")
	if _, err := s.CompleteTask(ctx, org.ID, "web", "T-2", Now, Now.Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	done := MustCreateRun(t, s, org.ID, "web", "T-1")
	if _, err := s.CompleteRun(ctx, org.ID, done.ID, Now, nil); err != nil {
		t.Fatal(err)
	}
	key := MustCreateRequestKey(t, s, in)
	usedKey := MustCreateRequestKey(t, s, in)
	if _, err := s.SpendRequestKey(ctx, in.ID, usedKey.Hash, Now, nil); err != nil {
		t.Fatal(err)
	}
	code1 := MustCreateLaunchCode(t, s, in, "web", "T-1")
	usedCode := MustCreateLaunchCode(t, s, in, "web", "T-1")
	if _, err := s.ExchangeLaunchCode(ctx, usedCode.Hash, "web", "T-1", Now, NewPermit("web", "T-1"), nil); err != nil {
		t.Fatal(err)
	}
	gone := MustCreateTrackerInstall(t, s, org.ID, "gone")
	goneKey := MustCreateRequestKey(t, s, gone)
	goneCode := MustCreateLaunchCode(t, s, gone, "web", "T-1")
	if err := s.RevokeTrackerInstall(ctx, org.ID, gone.ID, Now, nil); err != nil {
		t.Fatal(err)
	}
	a := NewArtifact(r, "a.txt", 60)
	MustPutArtifact(t, s, a)
	other := MustCreateTrackerInstall(t, s, org.ID, "linear")

	snapshot := func() []any {
		var out []any
		for _, h := range []string{key.Hash, usedKey.Hash, goneKey.Hash} {
			k, err := s.FindRequestKeyByHash(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, k)
		}
		for _, h := range []string{code1.Hash, usedCode.Hash, goneCode.Hash} {
			c, err := s.FindLaunchCodeByHash(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		for _, id := range []string{r.ID, done.ID} {
			x, err := s.FindRun(ctx, org.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		for _, task := range []string{"T-1", "T-2"} {
			x, err := s.FindTask(ctx, org.ID, "web", task)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		ins, err := s.ListTrackerInstalls(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		return append(out, ins, mustLive(t, s, r), MustListAudit(t, s, org.ID))
	}
	rowsBefore, before := count(t), snapshot()

	ev := func(action string) *custos.AuditEvent { return NewEvent(org.ID, action) }
	later := Now.Add(time.Second)
	sameHashInstall := NewTrackerInstall(org.ID, "x")
	sameHashInstall.Hash = in.Hash
	dupKey := NewNextKey()
	dupKey.Hash = usedKey.Hash
	sameID := NewArtifact(r, "b.txt", 1)
	sameID.ID = a.ID
	for _, tc := range []struct {
		name string
		want string
		fn   func() error
	}{
		{"CreateTrackerInstall/LiveName", custos.ECONFLICT, func() error {
			return s.CreateTrackerInstall(ctx, NewTrackerInstall(org.ID, "jira"), ev(custos.ActionTrackerInstall))
		}},
		{"CreateTrackerInstall/SameHash", custos.ECONFLICT, func() error {
			return s.CreateTrackerInstall(ctx, sameHashInstall, ev(custos.ActionTrackerInstall))
		}},
		{"RevokeTrackerInstall/Missing", custos.ENOTFOUND, func() error {
			return s.RevokeTrackerInstall(ctx, org.ID, "trk_0000000000000000", later, ev(custos.ActionTrackerRevoke))
		}},
		{"RevokeTrackerInstall/Revoked", "", func() error {
			return s.RevokeTrackerInstall(ctx, org.ID, gone.ID, later, ev(custos.ActionTrackerRevoke))
		}},
		{"CreateRequestKey/SameHash", custos.ECONFLICT, func() error {
			k := NewRequestKey(in, "trs_0000000000000000")
			k.Hash = key.Hash
			return s.CreateRequestKey(ctx, k, ev(custos.ActionTrackerSession))
		}},
		{"SpendRequestKey/Used", custos.ENOTFOUND, func() error {
			_, err := s.SpendRequestKey(ctx, in.ID, usedKey.Hash, later, NewNextKey())
			return err
		}},
		{"SpendRequestKey/Expired", custos.ENOTFOUND, func() error {
			_, err := s.SpendRequestKey(ctx, in.ID, key.Hash, key.ExpiresAt, NewNextKey())
			return err
		}},
		{"SpendRequestKey/ForeignInstall", custos.ENOTFOUND, func() error {
			_, err := s.SpendRequestKey(ctx, other.ID, key.Hash, later, NewNextKey())
			return err
		}},
		{"SpendRequestKey/RevokedInstall", custos.ENOTFOUND, func() error {
			_, err := s.SpendRequestKey(ctx, gone.ID, goneKey.Hash, later, NewNextKey())
			return err
		}},
		{"SpendRequestKey/Unknown", custos.ENOTFOUND, func() error {
			_, err := s.SpendRequestKey(ctx, in.ID, "nope", later, NewNextKey())
			return err
		}},
		{"SpendRequestKey/NextExists", custos.ECONFLICT, func() error {
			_, err := s.SpendRequestKey(ctx, in.ID, key.Hash, later, dupKey)
			return err
		}},
		{"CreateLaunchCode/TaskComplete", custos.ECONFLICT, func() error {
			return s.CreateLaunchCode(ctx, NewLaunchCode(in, "web", "T-2"), ev(custos.ActionLaunchCreate))
		}},
		{"CreateLaunchCode/SameHash", custos.ECONFLICT, func() error {
			c := NewLaunchCode(in, "web", "T-9")
			c.Hash = code1.Hash
			return s.CreateLaunchCode(ctx, c, ev(custos.ActionLaunchCreate))
		}},
		{"ExchangeLaunchCode/WrongTask", custos.ENOTFOUND, func() error {
			_, err := s.ExchangeLaunchCode(ctx, code1.Hash, "web", "T-2", later, NewPermit("web", "T-2"), ev(custos.ActionLaunchExchange))
			return err
		}},
		{"ExchangeLaunchCode/WrongProject", custos.ENOTFOUND, func() error {
			_, err := s.ExchangeLaunchCode(ctx, code1.Hash, "api", "T-1", later, NewPermit("api", "T-1"), ev(custos.ActionLaunchExchange))
			return err
		}},
		{"ExchangeLaunchCode/Used", custos.ENOTFOUND, func() error {
			_, err := s.ExchangeLaunchCode(ctx, usedCode.Hash, "web", "T-1", later, NewPermit("web", "T-1"), ev(custos.ActionLaunchExchange))
			return err
		}},
		{"ExchangeLaunchCode/Expired", custos.ENOTFOUND, func() error {
			_, err := s.ExchangeLaunchCode(ctx, code1.Hash, "web", "T-1", code1.ExpiresAt, NewPermit("web", "T-1"), ev(custos.ActionLaunchExchange))
			return err
		}},
		{"ExchangeLaunchCode/RevokedInstall", custos.ENOTFOUND, func() error {
			_, err := s.ExchangeLaunchCode(ctx, goneCode.Hash, "web", "T-1", later, NewPermit("web", "T-1"), ev(custos.ActionLaunchExchange))
			return err
		}},
		{"ExchangeLaunchCode/Unknown", custos.ENOTFOUND, func() error {
			_, err := s.ExchangeLaunchCode(ctx, "nope", "web", "T-1", later, NewPermit("web", "T-1"), ev(custos.ActionLaunchExchange))
			return err
		}},
		{"CreateRun/NoTask", custos.ENOTFOUND, func() error {
			return s.CreateRun(ctx, NewRun(org.ID, "web", "T-9"), ev(custos.ActionRunCreate))
		}},
		{"CreateRun/TaskComplete", custos.ECONFLICT, func() error {
			return s.CreateRun(ctx, NewRun(org.ID, "web", "T-2"), ev(custos.ActionRunCreate))
		}},
		{"CompleteRun/Missing", custos.ENOTFOUND, func() error {
			_, err := s.CompleteRun(ctx, org.ID, "run_0000000000000000", later, ev(custos.ActionRunComplete))
			return err
		}},
		{"CompleteRun/Complete", "", func() error {
			_, err := s.CompleteRun(ctx, org.ID, done.ID, later, ev(custos.ActionRunComplete))
			return err
		}},
		{"CompleteTask/Missing", custos.ENOTFOUND, func() error {
			_, err := s.CompleteTask(ctx, org.ID, "web", "T-9", later, later, ev(custos.ActionTaskComplete))
			return err
		}},
		{"CompleteTask/Complete", "", func() error {
			_, err := s.CompleteTask(ctx, org.ID, "web", "T-2", later, later, ev(custos.ActionTaskComplete))
			return err
		}},
		{"PutArtifact/OverRunLimit", custos.ETOOLARGE, func() error {
			return s.PutArtifact(ctx, NewArtifact(r, "b.txt", 41), 100, ev(custos.ActionArtifactPut))
		}},
		{"PutArtifact/ReplaceOverRunLimit", custos.ETOOLARGE, func() error {
			return s.PutArtifact(ctx, NewArtifact(r, "a.txt", 101), 100, ev(custos.ActionArtifactPut))
		}},
		{"PutArtifact/RunComplete", custos.ECONFLICT, func() error {
			return s.PutArtifact(ctx, NewArtifact(done, "b.txt", 1), 100, ev(custos.ActionArtifactPut))
		}},
		{"PutArtifact/NoRun", custos.ENOTFOUND, func() error {
			return s.PutArtifact(ctx, NewArtifact(NewRun(org.ID, "web", "T-1"), "b.txt", 1), 100, ev(custos.ActionArtifactPut))
		}},
		{"PutArtifact/SameID", custos.ECONFLICT, func() error {
			return s.PutArtifact(ctx, sameID, 100, ev(custos.ActionArtifactPut))
		}},
		{"DeleteArtifact/Missing", "", func() error {
			return s.DeleteArtifact(ctx, "art_0000000000000000", ev(custos.ActionArtifactPurge))
		}},
	} {
		if got := code(tc.fn()); got != tc.want {
			t.Fatalf("%s: code=%q, want %q", tc.name, got, tc.want)
		}
		if got := count(t); !reflect.DeepEqual(got, rowsBefore) {
			t.Fatalf("%s: rows=%v, want %v", tc.name, got, rowsBefore)
		}
	}
	if after := snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatalf("rows changed by refused calls:\nbefore=%+v\nafter= %+v", before, after)
	}
}
