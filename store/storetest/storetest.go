// Package storetest is the one conformance suite every custos.Store backend
// must pass: every store method, every documented error code, the
// single-use and counter operations under concurrency, the audit hash chain,
// the cache epoch, and two stores on one database (two processes).
//
// A backend runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) custos.Store { return MustOpenStore(t) })
//	}
//
//	func TestStore_TwoProcesses(t *testing.T) {
//		storetest.RunShared(t, func(t *testing.T) (custos.Store, custos.Store) { … two stores, one database … })
//	}
//
// Subtests are named after the interface and method they cover
// ("KeyStore_RotateKey/ErrConflict"), so `go test -run 'TestStore/KeyStore'`
// selects a part. Backend-specific behaviour (files, pools, locks,
// migrations) is tested in the backend's own package. RunHot is the suite
// of custos.HotStore backends.
//
// PostgresURL and RedisURL give tests the throwaway servers of
// scripts/services.sh, and skip without them (fail in CI).
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// Now is the suite's clock: microsecond precision, as every store keeps time.
var Now = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

// part is one top-level subtest of the suite.
type part struct {
	name string
	fn   func(t *testing.T, open func(t *testing.T) custos.Store)
}

// parts are the subtests Run runs, in order.
var parts = []part{
	{"Store_Bootstrap", testBootstrap},
	{"Store_Meta", testMeta},
	{"Store_Ping", testPing},
	{"Store_Canceled", testCanceled},
	{"Store_Times", testTimes},
	{"Store_CacheEpoch", testCacheEpoch},
	{"KeyStore", testKeyStore},
	{"KeyStore_RotateKey", testRotateKey},
	{"KeyStore_RevokeKey", testRevokeKey},
	{"DeviceStore", testDeviceStore},
	{"DeviceStore_UpdateDeviceStatus", testUpdateDeviceStatus},
	{"SecretStore", testSecretStore},
	{"SecretStore_UpdateSecret", testUpdateSecret},
	{"SecretStore_ListLoad", testListLoad},
	{"SecretStore_DeleteSecret", testDeleteSecret},
	{"SecretStore_RewrapDEKs", testRewrapDEKs},
	{"PolicyStore", testPolicyStore},
	{"SessionStore", testSessionStore},
	{"SessionStore_ConsumeConfirmation", testConsumeConfirmation},
	{"AuditStore", testAuditStore},
	{"OutboxStore", testOutboxStore},
	{"ProviderStore", testProviderStore},
	{"PrivacyStore", testPrivacyStore},
	{"BudgetStore", testBudgetStore},
	{"BudgetStore_ReserveConcurrent", testReserveConcurrent},
	{"UsageStore", testUsageStore},
	{"TaskStore_TrackerInstalls", testTrackerInstalls},
	{"TaskStore_SpendRequestKey", testSpendRequestKey},
	{"TaskStore_SpendRequestKeyConcurrent", testSpendRequestKeyConcurrent},
	{"TaskStore_LaunchCodes", testLaunchCodes},
	{"TaskStore_ExchangeLaunchCode", testExchangeLaunchCode},
	{"TaskStore_ExchangeLaunchCodeConcurrent", testExchangeLaunchCodeConcurrent},
	{"TaskStore_Runs", testRuns},
	{"TaskStore_CompleteTask", testCompleteTask},
	{"TaskStore_PutArtifact", testPutArtifact},
	{"TaskStore_PutArtifactConcurrent", testPutArtifactConcurrent},
	{"TaskStore_PurgeArtifacts", testPurgeArtifacts},
	{"TaskStore_IndexFiles", testIndexFiles},
	{"TaskStore_CacheEpoch", testTaskCacheEpoch},
}

// Run runs the whole suite against stores made by open. Each call of open
// must return a fresh, empty, migrated store that is closed when its test
// ends.
func Run(t *testing.T, open func(t *testing.T) custos.Store) {
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) { p.fn(t, open) })
	}
}

// MustBootstrap creates an org named "acme" and its owner key in s.
func MustBootstrap(tb testing.TB, s custos.Store) (*custos.Org, *custos.APIKey) {
	tb.Helper()
	org := &custos.Org{ID: custos.NewID(custos.PrefixOrg), Name: "acme", CreatedAt: Now}
	owner := NewKey(org.ID, "owner", custos.RoleOwner)
	if err := s.Bootstrap(context.Background(), org, owner, NewEvent(org.ID, custos.ActionBootstrap)); err != nil {
		tb.Fatal(err)
	}
	return org, owner
}

// MustCreateKey creates a key of role in org.
func MustCreateKey(tb testing.TB, s custos.Store, orgID, name string, role custos.Role) *custos.APIKey {
	tb.Helper()
	k := NewKey(orgID, name, role)
	if err := s.CreateKey(context.Background(), k, NewEvent(orgID, custos.ActionKeyCreate)); err != nil {
		tb.Fatal(err)
	}
	return k
}

// MustCreateDevice creates a pending device of key k used from hostname.
func MustCreateDevice(tb testing.TB, s custos.Store, k *custos.APIKey, hostname string) *custos.Device {
	tb.Helper()
	d := NewDevice(k, hostname)
	if err := s.CreateDevice(context.Background(), d, NewEvent(k.OrgID, custos.ActionDeviceNew)); err != nil {
		tb.Fatal(err)
	}
	return d
}

// MustCreateSecret creates secret project/name with ciphertext ct.
func MustCreateSecret(tb testing.TB, s custos.Store, orgID, project, name string, tags map[string]string, ct string) *custos.Secret {
	tb.Helper()
	sec, v := NewSecret(orgID, project, name, tags, ct)
	if err := s.CreateSecret(context.Background(), sec, v, NewEvent(orgID, custos.ActionSecretSet)); err != nil {
		tb.Fatal(err)
	}
	return sec
}

// MustListAudit returns every event of org, page by page.
func MustListAudit(tb testing.TB, s custos.Store, orgID string) []*custos.AuditEvent {
	tb.Helper()
	var all []*custos.AuditEvent
	var after int64
	for {
		evs, err := s.ListAudit(context.Background(), orgID, custos.AuditFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].Seq
	}
}

// MustVerifyChain checks org's chain with custos.VerifyChain and that it
// holds n events.
func MustVerifyChain(tb testing.TB, s custos.Store, orgID string, n int64) {
	tb.Helper()
	v := custos.VerifyChain(nil, MustListAudit(tb, s, orgID))
	if !v.OK {
		tb.Fatalf("chain of %s broken at %d: %s", orgID, v.BrokenAt, v.Reason)
	} else if got, want := v.Events, n; got != want {
		tb.Fatalf("chain of %s has %d events, want %d", orgID, got, want)
	}
}

// MustCacheEpoch returns s's cache epoch.
func MustCacheEpoch(tb testing.TB, s custos.Store) int64 {
	tb.Helper()
	e, err := s.CacheEpoch(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// NewKey returns an active key of org created at Now, with a random hash.
func NewKey(orgID, name string, role custos.Role) *custos.APIKey {
	return &custos.APIKey{
		ID: custos.NewID(custos.PrefixKey), OrgID: orgID, Name: name, Role: role,
		Hash: custos.NewID("hash"), CreatedAt: Now,
	}
}

// NewDevice returns a pending device of key k used from hostname.
func NewDevice(k *custos.APIKey, hostname string) *custos.Device {
	return &custos.Device{
		ID: custos.NewID(custos.PrefixDevice), OrgID: k.OrgID, KeyID: k.ID,
		Fingerprint: custos.DeviceFingerprint("ana", hostname, "cli", k.ID, "10.0.0.1"),
		MachineUser: "ana", Hostname: hostname, Agent: "cli", IP: "10.0.0.1",
		Status: custos.DevicePending, CreatedAt: Now,
	}
}

// NewSecret returns a secret at version 1 and that version, whose
// ciphertext is ct and whose wrapped DEK is "dek-"+ct under keeper "local:1".
func NewSecret(orgID, project, name string, tags map[string]string, ct string) (*custos.Secret, *custos.SecretVersion) {
	sec := &custos.Secret{
		ID: custos.NewID(custos.PrefixSecret), OrgID: orgID, Project: project, Name: name, Tags: tags,
		Version: 1, CreatedAt: Now, UpdatedAt: Now,
	}
	v := &custos.SecretVersion{
		SecretID: sec.ID, Version: 1, Ciphertext: []byte(ct), WrappedDEK: []byte("dek-" + ct),
		KeeperID: "local:1", CreatedBy: "key_0000000000000001", CreatedAt: Now,
	}
	return sec, v
}

// NewPolicy returns a notify policy on tag a=b of org.
func NewPolicy(orgID string) *custos.Policy {
	return &custos.Policy{ID: custos.NewID(custos.PrefixPolicy), OrgID: orgID, TagKey: "a", TagValue: "b",
		Rule: custos.RuleNotify, CreatedAt: Now}
}

// NewEvent returns a successful API event of org at Now.
func NewEvent(orgID, action string) *custos.AuditEvent {
	return &custos.AuditEvent{OrgID: orgID, Time: Now, Action: action, Outcome: custos.OutcomeOK, Source: custos.SourceAPI}
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// code returns the custos error code of err.
func code(err error) string { return custos.ErrorCode(err) }

// mustRace runs fn from n goroutines at once and fails the test unless
// exactly one call succeeds and every other fails with loser (a custos
// error code).
func mustRace(t *testing.T, n int, loser string, fn func(i int) error) {
	t.Helper()
	var mu sync.Mutex
	wins, losses := 0, 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := fn(i)
			mu.Lock()
			defer mu.Unlock()
			switch code(err) {
			case "":
				wins++
			case loser:
				losses++
			default:
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got, want := wins, 1; got != want {
		t.Fatalf("wins=%d, want %d", got, want)
	} else if got, want := losses, n-1; got != want {
		t.Fatalf("losses (%s)=%d, want %d", loser, got, want)
	}
}
