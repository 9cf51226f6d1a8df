package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// auditSpy serves n chained events in pages of at most page, honouring
// AfterSeq and Since, and records the filters it was asked with.
func auditSpy(tc *testCLI, n, page int) *[]custos.AuditFilter {
	var events []*custos.AuditEvent
	prev := custos.GenesisHash
	for i := 1; i <= n; i++ {
		e := &custos.AuditEvent{OrgID: "org_0123456789abcdef", Time: testNow.Add(time.Duration(i-n) * time.Hour),
			Action: custos.ActionSecretReveal, Outcome: custos.OutcomeOK, KeyID: "key_0123456789abcdef",
			Agent: "cli", Hostname: "laptop", Project: "web", Secret: "A", Mode: custos.ModeReveal}
		e.Seal(int64(i), prev)
		prev = e.Hash
		events = append(events, e)
	}
	var filters []custos.AuditFilter
	tc.spy.listAudit = func(f custos.AuditFilter) ([]*custos.AuditEvent, error) {
		filters = append(filters, f)
		var out []*custos.AuditEvent
		for _, e := range events {
			if e.Seq > f.AfterSeq && !e.Time.Before(f.Since) && len(out) < page {
				out = append(out, e)
			}
		}
		return out, nil
	}
	return &filters
}

func TestAuditList(t *testing.T) {
	t.Run("Paging", func(t *testing.T) {
		// Ensure list pages with after=<last seq> until an empty page and
		// prints every event once.
		tc := newTestCLI(t)
		filters := auditSpy(tc, 7, 3)
		out := tc.mustRun(t, "audit", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 8 || !strings.HasPrefix(lines[0], "SEQ") || !strings.HasPrefix(lines[7], "7 ") || !strings.Contains(lines[1], "web/A") {
			t.Fatalf("table:\n%s", out)
		}
		var afters []int64
		for _, f := range *filters {
			afters = append(afters, f.AfterSeq)
		}
		if got, want := afters, []int64{0, 3, 6, 7}; len(got) != len(want) || got[1] != 3 || got[2] != 6 || got[3] != 7 {
			t.Fatalf("after %v, want %v", got, want)
		}
	})
	t.Run("Since", func(t *testing.T) {
		// Ensure --since takes a duration, an RFC 3339 time or a date.
		for in, want := range map[string]time.Time{
			"24h":                  testNow.Add(-24 * time.Hour),
			"7d":                   testNow.Add(-7 * 24 * time.Hour),
			"2026-02-01T10:00:00Z": time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC),
			"2026-02-01":           time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		} {
			tc := newTestCLI(t)
			filters := auditSpy(tc, 0, 10)
			tc.mustRun(t, "audit", "list", "--since", in)
			if got := (*filters)[0].Since; !got.Equal(want) {
				t.Errorf("--since %s: %v, want %v", in, got, want)
			}
		}
	})
	t.Run("JSON", func(t *testing.T) {
		// Ensure --json prints every event as the struct, and [] for none.
		tc := newTestCLI(t)
		auditSpy(tc, 5, 2)
		var evs []custos.AuditEvent
		if err := json.Unmarshal([]byte(tc.mustRun(t, "audit", "list", "--json")), &evs); err != nil || len(evs) != 5 {
			t.Fatalf("%v %d", err, len(evs))
		}
		auditSpy(tc, 0, 2)
		if out := tc.mustRun(t, "audit", "list", "--json"); out != "[]\n" {
			t.Fatalf("empty: %q", out)
		}
	})
	t.Run("ErrOutOfOrder", func(t *testing.T) {
		// Ensure a server that repeats events cannot make the CLI loop forever.
		tc := newTestCLI(t)
		tc.spy.listAudit = func(custos.AuditFilter) ([]*custos.AuditEvent, error) {
			return []*custos.AuditEvent{{Seq: 1}}, nil
		}
		if code := tc.run("audit", "list"); code != 1 || !strings.Contains(tc.err.String(), "out of order") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
}

func TestAuditVerify(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Ensure an intact chain prints OK with the count and last hash, exit 0.
		tc := newTestCLI(t)
		tc.spy.verifyAudit = func() (*custos.AuditVerification, error) {
			return &custos.AuditVerification{OK: true, Events: 12, LastHash: "abc123"}, nil
		}
		if out := tc.mustRun(t, "audit", "verify"); out != "audit chain OK: 12 events, last hash abc123\n" {
			t.Fatalf("printed %q", out)
		}
	})
	t.Run("Broken", func(t *testing.T) {
		// Ensure a broken chain prints where and why, exit 1.
		tc := newTestCLI(t)
		tc.spy.verifyAudit = func() (*custos.AuditVerification, error) {
			return &custos.AuditVerification{OK: false, Events: 4, BrokenAt: 5, Reason: "hash does not match the event's content (modified)"}, nil
		}
		if code := tc.run("audit", "verify"); code != 1 || tc.out.String() != "audit chain BROKEN at event 5: hash does not match the event's content (modified)\n" {
			t.Fatalf("exit %d, printed %q", code, tc.out.String())
		}
	})
}

func TestAuditExport(t *testing.T) {
	// Ensure export writes every event, one JSON object per line, that still
	// verifies as a chain.
	tc := newTestCLI(t)
	auditSpy(tc, 2500, auditPageSize)
	out := tc.mustRun(t, "audit", "export", "--format", "jsonl")
	sc := bufio.NewScanner(strings.NewReader(out))
	var evs []*custos.AuditEvent
	for sc.Scan() {
		var e custos.AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, &e)
	}
	if len(evs) != 2500 {
		t.Fatalf("%d events", len(evs))
	}
	if v := custos.VerifyChain(nil, evs); !v.OK {
		t.Fatalf("exported chain does not verify: %+v", v)
	}
	// --format defaults to jsonl.
	if out2 := tc.mustRun(t, "audit", "export"); out2 != out {
		t.Fatal("default format differs")
	}
}
