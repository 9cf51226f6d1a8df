package vault

import (
	"context"
	"sync"

	"github.com/custos-dev/custos"
)

// maxCached bounds each map of the cache; a full map is emptied and refilled.
const maxCached = 10000

// cache keeps the read-mostly objects of the value read path in memory:
// API keys (by token hash; the token itself is never held), devices, policies and the secrets of a project (as ciphertext, exactly as
// stored; plaintext is never cached). It is exact, not eventually right:
// every request first reads the store's cache epoch, which the store
// advances in the same transaction as any change to those objects, by any
// process, and a changed epoch empties the cache. Entries loaded under an
// older epoch are never stored under a newer one.
type cache struct {
	mu       sync.Mutex
	epoch    int64
	keys     map[string]*custos.APIKey   // token hash
	devices  map[string]*custos.Device   // org \x00 fingerprint
	policies map[string][]*custos.Policy // org
	projects map[string][]*custos.Secret // org \x00 project: every secret, Current filled
}

func newCache() *cache {
	c := &cache{}
	c.reset(0)
	return c
}

func (c *cache) reset(epoch int64) {
	c.epoch = epoch
	c.keys = make(map[string]*custos.APIKey)
	c.devices = make(map[string]*custos.Device)
	c.policies = make(map[string][]*custos.Policy)
	c.projects = make(map[string][]*custos.Secret)
}

// view is one request's look at the cache, pinned to the epoch read at its
// start. Objects it returns are shared: callers must not modify them.
type view struct {
	s     *Service
	epoch int64
}

// epochKey memoizes the cache epoch per request (custos.RequestMemo), so a
// request that authenticates and then reads a value looks at one snapshot.
type epochKey struct{}

// view reads the store's epoch (once per request) and brings the cache up to it.
func (s *Service) view(ctx context.Context) (*view, error) {
	e, err := custos.RequestMemo(ctx, epochKey{}, func() (int64, error) { return s.store.CacheEpoch(ctx) })
	if err != nil {
		return nil, err
	}
	s.cache.mu.Lock()
	if e != s.cache.epoch {
		s.cache.reset(e)
	}
	s.cache.mu.Unlock()
	return &view{s: s, epoch: e}, nil
}

// put stores fn's result if the cache is still at v's epoch.
func (v *view) put(fn func(c *cache)) {
	c := v.s.cache
	c.mu.Lock()
	if c.epoch == v.epoch {
		fn(c)
	}
	c.mu.Unlock()
}

// key returns the API key whose token hashes to hash. Returns ENOTFOUND (not
// cached, so guessed tokens cannot fill the cache).
func (v *view) key(ctx context.Context, hash string) (*custos.APIKey, error) {
	c := v.s.cache
	c.mu.Lock()
	k, ok := c.keys[hash]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := v.s.store.FindKeyByHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	v.put(func(c *cache) {
		if len(c.keys) >= maxCached {
			c.keys = make(map[string]*custos.APIKey)
		}
		c.keys[hash] = k
	})
	return k, nil
}

// device returns the org's device with fingerprint fp. Returns ENOTFOUND
// (not cached: the next request looks again).
func (v *view) device(ctx context.Context, orgID, fp string) (*custos.Device, error) {
	k := orgID + "\x00" + fp
	c := v.s.cache
	c.mu.Lock()
	d, ok := c.devices[k]
	c.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := v.s.store.FindDevice(ctx, orgID, fp)
	if err != nil {
		return nil, err
	}
	v.put(func(c *cache) {
		if len(c.devices) >= maxCached {
			c.devices = make(map[string]*custos.Device)
		}
		c.devices[k] = d
	})
	return d, nil
}

// policies returns the org's policies.
func (v *view) policies(ctx context.Context, orgID string) ([]*custos.Policy, error) {
	c := v.s.cache
	c.mu.Lock()
	ps, ok := c.policies[orgID]
	c.mu.Unlock()
	if ok {
		return ps, nil
	}
	ps, err := v.s.store.ListPolicies(ctx, orgID)
	if err != nil {
		return nil, err
	}
	v.put(func(c *cache) {
		if len(c.policies) >= maxCached {
			c.policies = make(map[string][]*custos.Policy)
		}
		c.policies[orgID] = ps
	})
	return ps, nil
}

// secrets returns the named secrets of project (all of them for no names)
// with Current filled, in name order; missing names are absent.
func (v *view) secrets(ctx context.Context, orgID, project string, names []string) ([]*custos.Secret, error) {
	k := orgID + "\x00" + project
	c := v.s.cache
	c.mu.Lock()
	all, ok := c.projects[k]
	c.mu.Unlock()
	if !ok {
		var err error
		if all, err = v.s.store.LoadSecrets(ctx, orgID, project, nil); err != nil {
			return nil, err
		}
		v.put(func(c *cache) {
			if len(c.projects) >= maxCached {
				c.projects = make(map[string][]*custos.Secret)
			}
			c.projects[k] = all
		})
	}
	if len(names) == 0 {
		return all, nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make([]*custos.Secret, 0, len(names))
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}
