package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestUsage(t *testing.T) {
	t.Run("List", func(t *testing.T) {
		// Ensure usage lists the latest records since 30 days, at most 100,
		// with tokens, latency, overhead, status, redactions and known hits.
		tc, g := newGatewayCLI(t)
		var got custos.UsageFilter
		g.listUsage = func(f custos.UsageFilter) ([]*custos.UsageRecord, error) {
			got = f
			return []*custos.UsageRecord{{ID: "use_1", KeyID: "key_0123456789abcdef", Provider: "ollama", Model: "llama3.1", Route: "chat",
				TokensIn: 11, TokensOut: 7, LatencyMS: 12.345, OverheadMS: 0.51, Status: 200, Redactions: 2, KnownHits: 1, Stream: true, Time: testNow}}, nil
		}
		out := tc.mustRun(t, "usage")
		if want := (custos.UsageFilter{Since: testNow.Add(-30 * 24 * time.Hour), Limit: 100}); got != want {
			t.Fatalf("sent %+v, want %+v", got, want)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 ||
			!reflect.DeepEqual(strings.Fields(lines[0]), []string{"TIME", "KEY", "PROVIDER", "MODEL", "ROUTE", "IN", "OUT", "LATENCY_MS", "OVERHEAD_MS", "STATUS", "REDACTIONS", "KNOWN"}) ||
			!reflect.DeepEqual(strings.Fields(lines[1]), []string{"2026-03-01T12:00:00Z", "key_0123456789abcdef", "ollama", "llama3.1", "chat+stream", "11", "7", "12.3", "0.5", "200", "2", "1"}) {
			t.Fatalf("table:\n%s", out)
		}
		tc.mustRun(t, "usage", "--since", "2026-02-01T00:00:00Z", "--key", "key_0123456789abcdef", "--limit", "5")
		if want := (custos.UsageFilter{Since: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), KeyID: "key_0123456789abcdef", Limit: 5}); !got.Since.Equal(want.Since) || got.KeyID != want.KeyID || got.Limit != want.Limit {
			t.Fatalf("sent %+v, want %+v", got, want)
		}
		var recs []custos.UsageRecord
		if err := json.Unmarshal([]byte(tc.mustRun(t, "usage", "--json")), &recs); err != nil || len(recs) != 1 || recs[0].TokensIn != 11 {
			t.Fatalf("%v %+v", err, recs)
		}
	})
	t.Run("By", func(t *testing.T) {
		// Ensure --by summarizes by the grouping since --since, and --json
		// prints the summaries.
		tc, g := newGatewayCLI(t)
		var got custos.UsageFilter
		var gotBy string
		g.summarizeUsage = func(f custos.UsageFilter, by string) ([]*custos.UsageSummary, error) {
			got, gotBy = f, by
			return []*custos.UsageSummary{{Group: "llama3.1", Requests: 3, Errors: 1, TokensIn: 30, TokensOut: 12, Redactions: 4, KnownHits: 1, AvgLatencyMS: 20}}, nil
		}
		out := tc.mustRun(t, "usage", "--by", "model", "--since", "7d")
		if gotBy != "model" || got != (custos.UsageFilter{Since: testNow.Add(-7 * 24 * time.Hour)}) {
			t.Fatalf("sent %+v by %q", got, gotBy)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 ||
			!reflect.DeepEqual(strings.Fields(lines[0]), []string{"GROUP", "REQUESTS", "ERRORS", "IN", "OUT", "REDACTIONS", "KNOWN", "AVG_LATENCY_MS"}) ||
			!reflect.DeepEqual(strings.Fields(lines[1]), []string{"llama3.1", "3", "1", "30", "12", "4", "1", "20.0"}) {
			t.Fatalf("table:\n%s", out)
		}
		for _, by := range []string{"key", "provider", "day"} {
			tc.mustRun(t, "usage", "--by", by)
			if gotBy != by {
				t.Fatalf("by %q sent %q", by, gotBy)
			}
		}
		var sum []custos.UsageSummary
		if err := json.Unmarshal([]byte(tc.mustRun(t, "usage", "--by", "day", "--json")), &sum); err != nil || len(sum) != 1 || sum[0].Requests != 3 {
			t.Fatalf("%v %+v", err, sum)
		}
	})
}
