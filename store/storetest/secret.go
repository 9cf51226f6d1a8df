package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func testSecretStore(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure secrets round-trip, with nil tags read back as an empty map.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec, v := NewSecret(org.ID, "web", "DB_URL", nil, "ct1")
		sec.Description = "the database"
		sec.ExpiresAt = ptr(Now.Add(72 * time.Hour))
		if err := s.CreateSecret(ctx, sec, v, NewEvent(org.ID, custos.ActionSecretSet)); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindSecret(ctx, org.ID, "web", "DB_URL")
		if err != nil {
			t.Fatal(err)
		}
		want := *sec
		want.Tags = map[string]string{}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("FindSecret=%+v, want %+v", got, &want)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure a second secret with the same project and name is a conflict.
	t.Run("ErrConflict", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "x")
		sec, v := NewSecret(org.ID, "web", "A", nil, "y")
		err := s.CreateSecret(context.Background(), sec, v, NewEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure a version that does not belong to the secret is rejected.
	t.Run("ErrInvalid", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec, v := NewSecret(org.ID, "web", "A", nil, "y")
		v.Version = 2
		err := s.CreateSecret(context.Background(), sec, v, NewEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.EINVALID; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})

	// Ensure a missing secret is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "x")
		for _, c := range []struct{ org, project, name string }{{org.ID, "web", "B"}, {org.ID, "api", "A"}, {"org_0000000000000000", "web", "A"}} {
			if _, err := s.FindSecret(context.Background(), c.org, c.project, c.name); code(err) != custos.ENOTFOUND {
				t.Fatalf("FindSecret(%v) err=%v", c, err)
			}
		}
	})
}

func testUpdateSecret(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure an update stores the next version and the new metadata.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", map[string]string{"env": "dev"}, "v1")
		upd := *sec
		upd.Version, upd.Tags, upd.Description, upd.UpdatedAt = 2, map[string]string{"env": "prod"}, "Now prod", Now.Add(time.Hour)
		v := &custos.SecretVersion{Version: 2, Ciphertext: []byte("v2"), WrappedDEK: []byte("d2"), KeeperID: "local:1", CreatedBy: "k", CreatedAt: Now.Add(time.Hour)}
		if err := s.UpdateSecret(ctx, &upd, v, NewEvent(org.ID, custos.ActionSecretSet)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindSecret(ctx, org.ID, "web", "A"); err != nil {
			t.Fatal(err)
		} else if !reflect.DeepEqual(got, &upd) {
			t.Fatalf("FindSecret=%+v, want %+v", got, &upd)
		}
		loaded, err := s.LoadSecrets(ctx, org.ID, "web", nil)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(loaded), 1; got != want {
			t.Fatalf("len=%d, want %d", got, want)
		} else if got, want := string(loaded[0].Current.Ciphertext), "v2"; got != want {
			t.Fatalf("current ciphertext=%q, want %q", got, want)
		}
		vs, err := s.ListVersions(ctx, org.ID, sec.ID)
		if err != nil {
			t.Fatal(err)
		} else if got, want := len(vs), 2; got != want {
			t.Fatalf("versions=%d, want %d", got, want)
		} else if vs[0].Version != 2 || vs[1].Version != 1 {
			t.Fatalf("versions order=%d,%d", vs[0].Version, vs[1].Version)
		} else if vs[0].Ciphertext != nil || vs[0].WrappedDEK != nil || vs[0].KeeperID != "local:1" {
			t.Fatalf("ListVersions leaks ciphertext or misses keeper: %+v", vs[0])
		}
		if vs, err := s.ListVersions(ctx, "org_0000000000000000", sec.ID); err != nil {
			t.Fatal(err)
		} else if len(vs) != 0 {
			t.Fatalf("versions of other org=%d", len(vs))
		}
		MustVerifyChain(t, s, org.ID, 3)
	})

	// Ensure a stale version is a conflict and stores nothing.
	t.Run("ErrConflict", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		stale := *sec
		stale.Version = 3
		err := s.UpdateSecret(ctx, &stale, &custos.SecretVersion{Version: 3, Ciphertext: []byte("v3")}, NewEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.ECONFLICT; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		if vs, _ := s.ListVersions(ctx, org.ID, sec.ID); len(vs) != 1 {
			t.Fatalf("versions=%d, want 1", len(vs))
		}
		MustVerifyChain(t, s, org.ID, 2)
	})

	// Ensure updating a missing secret is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec, _ := NewSecret(org.ID, "web", "A", nil, "v1")
		sec.Version = 2
		err := s.UpdateSecret(context.Background(), sec, &custos.SecretVersion{Version: 2}, NewEvent(org.ID, custos.ActionSecretSet))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
	})

	// Ensure exactly one of many concurrent updates from the same version wins.
	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		const n = 50
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				upd := *sec
				upd.Version = 2
				v := &custos.SecretVersion{Version: 2, Ciphertext: fmt.Appendf(nil, "by-%d", i), WrappedDEK: []byte("d")}
				switch err := s.UpdateSecret(ctx, &upd, v, NewEvent(org.ID, custos.ActionSecretSet)); code(err) {
				case "":
					wins.Add(1)
				case custos.ECONFLICT:
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got, want := wins.Load(), int32(1); got != want {
			t.Fatalf("wins=%d, want %d", got, want)
		} else if got, want := conflicts.Load(), int32(n-1); got != want {
			t.Fatalf("conflicts=%d, want %d", got, want)
		}
		if vs, _ := s.ListVersions(ctx, org.ID, sec.ID); len(vs) != 2 {
			t.Fatalf("versions=%d, want 2", len(vs))
		}
		MustVerifyChain(t, s, org.ID, 3)
	})
}

func testListLoad(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure ListSecrets filters by project and tags, and LoadSecrets returns
	// the current version of the named secrets in one call.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "B", map[string]string{"env": "prod", "team": "x"}, "b")
		MustCreateSecret(t, s, org.ID, "web", "A", map[string]string{"env": "dev"}, "a")
		MustCreateSecret(t, s, org.ID, "api", "C", map[string]string{"env": "prod"}, "c")
		MustCreateSecret(t, s, "org_00000000000000ff", "web", "Z", nil, "z")

		names := func(secs []*custos.Secret) (out []string) {
			for _, sec := range secs {
				out = append(out, sec.Project+"/"+sec.Name)
			}
			return out
		}
		for _, c := range []struct {
			f    custos.SecretFilter
			want []string
		}{
			{custos.SecretFilter{}, []string{"api/C", "web/A", "web/B"}},
			{custos.SecretFilter{Project: "web"}, []string{"web/A", "web/B"}},
			{custos.SecretFilter{Tags: map[string]string{"env": "prod"}}, []string{"api/C", "web/B"}},
			{custos.SecretFilter{Project: "web", Tags: map[string]string{"env": "prod", "team": "x"}}, []string{"web/B"}},
			{custos.SecretFilter{Tags: map[string]string{"env": "qa"}}, nil},
		} {
			secs, err := s.ListSecrets(ctx, org.ID, c.f)
			if err != nil {
				t.Fatal(err)
			} else if got, want := names(secs), c.want; !reflect.DeepEqual(got, want) {
				t.Fatalf("ListSecrets(%+v)=%v, want %v", c.f, got, want)
			}
		}

		for _, c := range []struct {
			names []string
			want  []string
		}{
			{nil, []string{"web/A", "web/B"}},
			{[]string{"B"}, []string{"web/B"}},
			{[]string{"B", "A", "MISSING", "C"}, []string{"web/A", "web/B"}},
			{[]string{"MISSING"}, nil},
		} {
			secs, err := s.LoadSecrets(ctx, org.ID, "web", c.names)
			if err != nil {
				t.Fatal(err)
			} else if got, want := names(secs), c.want; !reflect.DeepEqual(got, want) {
				t.Fatalf("LoadSecrets(%v)=%v, want %v", c.names, got, want)
			}
			for _, sec := range secs {
				cur := sec.Current
				if cur == nil || cur.SecretID != sec.ID || cur.Version != sec.Version {
					t.Fatalf("Current=%+v", cur)
				} else if got, want := string(cur.Ciphertext), map[string]string{"A": "a", "B": "b"}[sec.Name]; got != want {
					t.Fatalf("ciphertext=%q, want %q", got, want)
				} else if got, want := string(cur.WrappedDEK), "dek-"+string(cur.Ciphertext); got != want {
					t.Fatalf("wrapped dek=%q, want %q", got, want)
				} else if got, want := cur.KeeperID, "local:1"; got != want {
					t.Fatalf("keeper=%q, want %q", got, want)
				}
			}
		}
	})
}

func testDeleteSecret(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure a deleted secret and every version are gone, the event stays,
	// and the name can be used again.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		sec := MustCreateSecret(t, s, org.ID, "web", "A", nil, "v1")
		upd := *sec
		upd.Version = 2
		if err := s.UpdateSecret(ctx, &upd, &custos.SecretVersion{Version: 2, Ciphertext: []byte("v2"), WrappedDEK: []byte("d")},
			NewEvent(org.ID, custos.ActionSecretSet)); err != nil {
			t.Fatal(err)
		}
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		ev := NewEvent(org.ID, custos.ActionSecretDelete)
		ev.Project, ev.Secret = "web", "A"
		if err := s.DeleteSecret(ctx, org.ID, "web", "A", ev); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSecret(ctx, org.ID, "web", "A"); code(err) != custos.ENOTFOUND {
			t.Fatalf("FindSecret err=%v", err)
		}
		if vs, err := s.ListVersions(ctx, org.ID, sec.ID); err != nil {
			t.Fatal(err)
		} else if len(vs) != 0 {
			t.Fatalf("versions listed=%d, want 0", len(vs))
		}
		// RewrapDEKs visits every stored version: only B's is left.
		if n, err := s.RewrapDEKs(ctx, func(w []byte, k string) ([]byte, string, error) { return w, k, nil }); err != nil {
			t.Fatal(err)
		} else if got, want := n, 1; got != want {
			t.Fatalf("versions stored=%d, want %d", got, want)
		}
		evs := MustListAudit(t, s, org.ID)
		if got, want := evs[len(evs)-1].Action, custos.ActionSecretDelete; got != want {
			t.Fatalf("last action=%q, want %q", got, want)
		}
		MustVerifyChain(t, s, org.ID, 5)
		again := MustCreateSecret(t, s, org.ID, "web", "A", nil, "new")
		if vs, err := s.ListVersions(ctx, org.ID, again.ID); err != nil {
			t.Fatal(err)
		} else if len(vs) != 1 {
			t.Fatalf("versions of the new secret=%d, want 1", len(vs))
		}
	})

	// Ensure deleting a missing secret is not found.
	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t)
		org, _ := MustBootstrap(t, s)
		err := s.DeleteSecret(context.Background(), org.ID, "web", "A", NewEvent(org.ID, custos.ActionSecretDelete))
		if got, want := code(err), custos.ENOTFOUND; got != want {
			t.Fatalf("code=%q, want %q (%v)", got, want, err)
		}
		MustVerifyChain(t, s, org.ID, 1)
	})
}

func testRewrapDEKs(t *testing.T, open func(t *testing.T) custos.Store) {
	// Ensure every wrapped DEK, of secret versions, of model providers'
	// keys and of task artifacts (live and replaced), is replaced,
	// ciphertext untouched, and a provider without a key is left alone.
	t.Run("OK", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		MustCreateLaunchCode(t, s, in, "web", "T-1")
		run := MustCreateRun(t, s, org.ID, "web", "T-1")
		old := NewArtifact(run, "out.diff", 1)
		MustPutArtifact(t, s, old)
		art := NewArtifact(run, "out.diff", 2)
		art.CreatedAt = Now.Add(time.Second)
		MustPutArtifact(t, s, art)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "a")
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		MustCreateProvider(t, s, NewProvider(org.ID, "openai", 0))
		MustCreateProvider(t, s, NewProvider("org_0000000000000000", "anthropic", 0))
		local := &custos.ModelProvider{ID: custos.NewID("prv"), OrgID: org.ID, Name: "ollama", Kind: custos.ProviderLocal,
			BaseURL: "http://127.0.0.1:11434/v1", Priority: 1, CreatedAt: Now}
		MustCreateProvider(t, s, local)
		n, err := s.RewrapDEKs(ctx, func(wrapped []byte, keeperID string) ([]byte, string, error) {
			if keeperID != "local:1" {
				return nil, "", fmt.Errorf("keeper %q", keeperID)
			}
			return append([]byte("new-"), wrapped...), "local:2", nil
		})
		if err != nil {
			t.Fatal(err)
		} else if got, want := n, 6; got != want {
			t.Fatalf("rewrapped=%d, want %d", got, want)
		}
		replaced, err := s.PurgeableArtifacts(ctx, Now, 10)
		if err != nil {
			t.Fatal(err)
		} else if len(replaced) != 1 {
			t.Fatalf("replaced artifacts=%d, want 1", len(replaced))
		}
		live, err := s.FindArtifact(ctx, org.ID, run.ID, "out.diff")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []*custos.Artifact{replaced[0], live} {
			if got, want := string(a.WrappedDEK), "new-dek-out.diff"; got != want {
				t.Fatalf("artifact %s: wrapped=%q, want %q", a.ID, got, want)
			} else if got, want := a.KeeperID, "local:2"; got != want {
				t.Fatalf("artifact %s: keeper=%q, want %q", a.ID, got, want)
			}
		}
		for _, orgID := range []string{org.ID, "org_0000000000000000"} {
			ps, err := s.ListProviders(ctx, orgID)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if !p.HasKey {
					if p.WrappedDEK != nil || p.KeeperID != "" {
						t.Fatalf("provider %s without key: wrapped=%q keeper=%q", p.Name, p.WrappedDEK, p.KeeperID)
					}
					continue
				}
				if got, want := string(p.WrappedDEK), "new-dek-"+p.Name; got != want {
					t.Fatalf("provider %s: wrapped=%q, want %q", p.Name, got, want)
				} else if got, want := p.KeeperID, "local:2"; got != want {
					t.Fatalf("provider %s: keeper=%q, want %q", p.Name, got, want)
				} else if got, want := string(p.Ciphertext), "ct-"+p.Name; got != want {
					t.Fatalf("provider %s: ciphertext=%q, want %q", p.Name, got, want)
				}
			}
		}
		secs, err := s.LoadSecrets(ctx, org.ID, "web", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range secs {
			ct := string(sec.Current.Ciphertext)
			if got, want := string(sec.Current.WrappedDEK), "new-dek-"+ct; got != want {
				t.Fatalf("wrapped=%q, want %q", got, want)
			} else if got, want := sec.Current.KeeperID, "local:2"; got != want {
				t.Fatalf("keeper=%q, want %q", got, want)
			}
		}
	})

	// Ensure one failure, on a secret version, a provider's key or an
	// artifact's, rolls every rewrap back.
	t.Run("ErrRollback", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "a")
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		MustCreateProvider(t, s, NewProvider(org.ID, "openai", 0))
		MustCreateProvider(t, s, NewProvider(org.ID, "anthropic", 1))
		in := MustCreateTrackerInstall(t, s, org.ID, "jira")
		MustCreateLaunchCode(t, s, in, "web", "T-1")
		run := MustCreateRun(t, s, org.ID, "web", "T-1")
		MustPutArtifact(t, s, NewArtifact(run, "a", 1))
		MustPutArtifact(t, s, NewArtifact(run, "b", 1))
		for _, failAt := range []int{2, 4, 6} {
			calls := 0
			_, err := s.RewrapDEKs(ctx, func(wrapped []byte, keeperID string) ([]byte, string, error) {
				if calls++; calls == failAt {
					return nil, "", custos.Errorf(custos.EUNAVAILABLE, "keeper down")
				}
				return []byte("new"), "local:2", nil
			})
			if got, want := code(err), custos.EUNAVAILABLE; got != want {
				t.Fatalf("failing call %d: code=%q, want %q (%v)", failAt, got, want, err)
			}
			secs, _ := s.LoadSecrets(ctx, org.ID, "web", nil)
			for _, sec := range secs {
				if got, want := sec.Current.KeeperID, "local:1"; got != want {
					t.Fatalf("failing call %d: keeper=%q, want %q", failAt, got, want)
				}
			}
			ps, _ := s.ListProviders(ctx, org.ID)
			for _, p := range ps {
				if got, want := p.KeeperID, "local:1"; got != want {
					t.Fatalf("failing call %d: provider %s: keeper=%q, want %q", failAt, p.Name, got, want)
				} else if got, want := string(p.WrappedDEK), "dek-"+p.Name; got != want {
					t.Fatalf("failing call %d: provider %s: wrapped=%q, want %q", failAt, p.Name, got, want)
				}
			}
			for _, a := range mustLive(t, s, run) {
				if got, want := a.KeeperID, "local:1"; got != want {
					t.Fatalf("failing call %d: artifact %s: keeper=%q, want %q", failAt, a.Name, got, want)
				} else if got, want := string(a.WrappedDEK), "dek-"+a.Name; got != want {
					t.Fatalf("failing call %d: artifact %s: wrapped=%q, want %q", failAt, a.Name, got, want)
				}
			}
		}
	})

	// Ensure a panicking callback fails the call, changes nothing, and
	// leaves the store working.
	t.Run("ErrPanic", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		org, _ := MustBootstrap(t, s)
		MustCreateSecret(t, s, org.ID, "web", "A", nil, "a")
		if _, err := s.RewrapDEKs(ctx, func([]byte, string) ([]byte, string, error) { panic("boom") }); err == nil {
			t.Fatal("expected error")
		}
		if secs, err := s.LoadSecrets(ctx, org.ID, "web", nil); err != nil {
			t.Fatal(err)
		} else if got, want := secs[0].Current.KeeperID, "local:1"; got != want {
			t.Fatalf("keeper=%q, want %q", got, want)
		}
		MustCreateSecret(t, s, org.ID, "web", "B", nil, "b")
		MustVerifyChain(t, s, org.ID, 3)
	})
}
