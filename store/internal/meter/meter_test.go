package meter_test

import (
	"testing"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/meter"
)

func TestEnd(t *testing.T) {
	// Ensure a window ends at the next UTC day or month, across month and
	// year ends.
	for _, c := range []struct {
		period string
		start  time.Time
		want   time.Time
	}{
		{custos.PeriodDay, time.Date(2025, 2, 28, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)},
		{custos.PeriodMonth, time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{custos.PeriodMonth, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if got := meter.End(c.period, c.start); !got.Equal(c.want) {
			t.Fatalf("End(%s, %v)=%v, want %v", c.period, c.start, got, c.want)
		}
	}
}

func TestExhausted(t *testing.T) {
	// Ensure the message names the budget, what is left and when it resets.
	start := time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
	err := meter.Exhausted("", custos.PeriodDay, 1000, 1000, 5, start)
	if got, want := err.Message, "the org's daily token budget (1000 tokens) is spent; it resets at 2025-03-05T00:00:00Z"; got != want {
		t.Fatalf("message=%q, want %q", got, want)
	} else if got, want := err.Code, custos.ERATELIMITED; got != want {
		t.Fatalf("code=%q, want %q", got, want)
	}
	err = meter.Exhausted("key_0000000000000001", custos.PeriodMonth, 100, 80, 30, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if got, want := err.Message, "key key_0000000000000001's monthly token budget (100 tokens) has 20 tokens left, fewer than this request may use (30); it resets at 2025-04-01T00:00:00Z"; got != want {
		t.Fatalf("message=%q, want %q", got, want)
	}
}

func TestGroupColumn(t *testing.T) {
	// Ensure every grouping maps to its column and anything else is invalid.
	for by, want := range map[string]string{custos.UsageByModel: "model", custos.UsageByKey: "key_id",
		custos.UsageByProvider: "provider", custos.UsageByDay: "day"} {
		if got, err := meter.GroupColumn(by); err != nil || got != want {
			t.Fatalf("GroupColumn(%q)=%q, %v; want %q", by, got, err, want)
		}
	}
	if _, err := meter.GroupColumn("model; --"); custos.ErrorCode(err) != custos.EINVALID {
		t.Fatalf("err=%v, want invalid", err)
	}
}

func TestBoundsLimit(t *testing.T) {
	// Ensure zero bounds are open and limits default and cap.
	since, until := meter.Bounds(custos.UsageFilter{})
	if since >= 0 || until <= time.Now().UnixMicro() {
		t.Fatalf("open bounds=[%d, %d)", since, until)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC)
	if since, until = meter.Bounds(custos.UsageFilter{Since: at, Until: at.Add(time.Second)}); since != at.UnixMicro() || until != at.UnixMicro()+1e6 {
		t.Fatalf("bounds=[%d, %d)", since, until)
	}
	for limit, want := range map[int]int{0: meter.DefaultUsageLimit, -1: meter.DefaultUsageLimit, 5: 5, 1e6: meter.MaxUsageLimit} {
		if got := meter.Limit(custos.UsageFilter{Limit: limit}); got != want {
			t.Fatalf("Limit(%d)=%d, want %d", limit, got, want)
		}
	}
	if got, want := meter.Day(at.In(time.FixedZone("X", -6*3600))), "2025-03-04"; got != want {
		t.Fatalf("Day=%q, want %q", got, want)
	}
}
