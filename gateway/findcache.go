package gateway

import (
	"crypto/sha256"
	"slices"
	"sync"

	"github.com/custos-dev/custos/redact"
)

// findCache remembers the findings of long strings by their SHA-256, per
// redaction engine and API key. Agents resend their whole conversation on
// every turn, so most of a request's text was redacted moments before. It
// holds no text and no value: digests and finding offsets only. Entries of
// one key are never used for another (a cache hit is faster, and one key
// must not learn what another sent), and a rebuilt engine (a secret or
// rule changed) has a new ID, so its predecessor's entries never match.
type findCache struct {
	mu sync.Mutex
	m  map[findKey][]redact.Finding
}

type findKey struct {
	engine uint64
	key    string
	sum    [sha256.Size]byte
}

const (
	// minCached is the shortest string worth caching: below it, hashing
	// and finding cost about the same.
	minCached = 1024
	// maxCached bounds the entries; a full cache is emptied and refilled.
	maxCached = 4096
)

func newFindCache() *findCache { return &findCache{m: map[findKey][]redact.Finding{}} }

// find returns the findings of src on e for API key keyID.
func (c *findCache) find(e *redact.Engine, keyID string, src []byte) []redact.Finding {
	if c == nil || len(src) < minCached {
		return e.Find(src)
	}
	k := findKey{engine: e.ID(), key: keyID, sum: sha256.Sum256(src)}
	c.mu.Lock()
	fs, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return slices.Clone(fs)
	}
	fs = e.Find(src)
	stored := slices.Clone(fs)
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[k] = stored
	c.mu.Unlock()
	return fs
}
