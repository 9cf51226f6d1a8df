package gateway

import (
	"bytes"
	"crypto/fips140"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/custos-dev/custos/redact"
)

// countingDetector finds "needle" and counts its runs.
type countingDetector struct{ runs *atomic.Int64 }

func (d countingDetector) Detect(src []byte, emit func(redact.Finding)) {
	d.runs.Add(1)
	for i := 0; ; {
		j := strings.Index(string(src[i:]), "needle")
		if j < 0 {
			return
		}
		emit(redact.Finding{Kind: redact.KindSecret, RuleID: "needle", Start: i + j, End: i + j + 6})
		i += j + 6
	}
}

// TestFindCache proves the findings cache answers exactly what Find does,
// scans a long string once per engine and key, never shares entries
// between keys or engines, hands out copies, and stays bounded, with its
// GMAC digest and with the SHA-256 one of FIPS 140-only mode.
func TestFindCache(t *testing.T) {
	for _, mode := range []string{"gmac", "sha256"} {
		t.Run(mode, func(t *testing.T) {
			c := newFindCache()
			if (c.mac == nil) != fips140.Enforced() {
				t.Fatalf("GMAC %v, FIPS 140-only mode %v: want GMAC exactly outside it", c.mac != nil, fips140.Enforced())
			}
			if mode == "sha256" {
				c.mac = nil
			}
			testFindCache(t, c)
		})
	}
}

// TestFindCacheDigest proves the digest tells strings apart, is stable,
// and is keyed: another cache's digest of the same string differs, so
// digests cannot be computed outside the process.
func TestFindCacheDigest(t *testing.T) {
	if fips140.Enforced() {
		t.Skip("FIPS 140-only mode: the digest is SHA-256 (TestFindCache/sha256)")
	}
	c1, c2 := newFindCache(), newFindCache()
	a := []byte(strings.Repeat("hay ", 300))
	b := append([]byte(nil), a...)
	b[len(b)/2] ^= 1
	if c1.digest(a) != c1.digest(bytes.Clone(a)) {
		t.Error("digest of the same string differs")
	}
	if c1.digest(a) == c1.digest(b) || c1.digest(a) == c1.digest(a[:len(a)-1]) {
		t.Error("strings one bit or one byte apart share a digest")
	}
	if c1.digest(a) == c2.digest(a) {
		t.Error("two caches share a digest: it is not keyed")
	}
	if d := c1.digest(a); d == sha256.Sum256(a) || [16]byte(d[16:]) != [16]byte{} {
		t.Errorf("GMAC digest %x: want a 16-byte tag, not SHA-256", d)
	}
	c1.mac = nil
	if c1.digest(a) != sha256.Sum256(a) {
		t.Error("without GMAC the digest is not SHA-256")
	}
}

func testFindCache(t *testing.T, c *findCache) {
	var runs atomic.Int64
	mk := func() *redact.Engine {
		e, err := redact.New(redact.Config{Detectors: []redact.Detector{countingDetector{&runs}}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e1, e2 := mk(), mk()
	long := []byte(strings.Repeat("hay ", 300) + "needle " + strings.Repeat("hay ", 300) + "needle")

	want := e1.Find(long)
	runs.Store(0)
	got := c.find(e1, "key_a", long)
	if fmt.Sprint(got) != fmt.Sprint(want) || runs.Load() != 1 {
		t.Fatalf("first find: %v (runs %d), want %v", got, runs.Load(), want)
	}
	got[0].Start = -1 // the caller's copy, not the cache's
	if again := c.find(e1, "key_a", long); fmt.Sprint(again) != fmt.Sprint(want) || runs.Load() != 1 {
		t.Fatalf("second find scanned again or changed: %v (runs %d)", again, runs.Load())
	}
	c.find(e1, "key_b", long)
	c.find(e2, "key_a", long)
	if runs.Load() != 3 {
		t.Errorf("another key or engine used a cached entry: %d runs, want 3", runs.Load())
	}
	short := []byte("needle")
	c.find(e1, "key_a", short)
	c.find(e1, "key_a", short)
	if runs.Load() != 5 {
		t.Errorf("a short string was cached: %d runs, want 5", runs.Load())
	}
	for i := range maxCached + 10 {
		c.find(e1, "key_a", append([]byte(fmt.Sprint(i)), long...))
	}
	if n := len(c.m); n > maxCached {
		t.Errorf("%d entries, more than %d", n, maxCached)
	}
}
