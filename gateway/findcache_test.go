package gateway

import (
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
// between keys or engines, hands out copies, and stays bounded.
func TestFindCache(t *testing.T) {
	var runs atomic.Int64
	mk := func() *redact.Engine {
		e, err := redact.New(redact.Config{Detectors: []redact.Detector{countingDetector{&runs}}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e1, e2 := mk(), mk()
	c := newFindCache()
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
