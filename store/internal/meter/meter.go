// Package meter holds what the SQL backends share about the gateway's token
// budgets and usage records: the checks of a budget before it is stored,
// the end of a budget window, how an exhausted budget is explained, the
// usage groupings and filters, so both backends accept, refuse, group and
// word the same things.
package meter

import (
	"time"

	"github.com/custos-dev/custos"
)

// Check returns EINVALID if b cannot be stored: an unknown period or a
// negative limit.
func Check(b *custos.Budget) error {
	switch {
	case b.Period != custos.PeriodDay && b.Period != custos.PeriodMonth:
		return custos.Errorf(custos.EINVALID, "invalid budget period %q: want %q or %q", b.Period, custos.PeriodDay, custos.PeriodMonth)
	case b.Limit < 0:
		return custos.Errorf(custos.EINVALID, "invalid budget limit %d: want 0 or more tokens", b.Limit)
	}
	return nil
}

// End returns the end of the window of period that starts at start.
func End(period string, start time.Time) time.Time {
	if period == custos.PeriodMonth {
		return start.UTC().AddDate(0, 1, 0)
	}
	return start.UTC().AddDate(0, 0, 1)
}

// Name names the budget of (keyID, period) for a user: "the org's daily
// token budget", "key key_…'s monthly token budget".
func Name(keyID, period string) string {
	adj := "daily"
	if period == custos.PeriodMonth {
		adj = "monthly"
	}
	if keyID == "" {
		return "the org's " + adj + " token budget"
	}
	return "key " + keyID + "'s " + adj + " token budget"
}

// Exhausted returns the ERATELIMITED error of a reservation of tokens that
// the budget of (keyID, period), with limit, cannot take: its window
// starting at start has used tokens spent or reserved already.
func Exhausted(keyID, period string, limit, used, tokens int64, start time.Time) *custos.Error {
	resets := End(period, start).Format(time.RFC3339)
	if left := limit - used; left > 0 {
		return custos.Errorf(custos.ERATELIMITED, "%s (%d tokens) has %d tokens left, fewer than this request may use (%d); it resets at %s",
			Name(keyID, period), limit, left, tokens, resets)
	}
	return custos.Errorf(custos.ERATELIMITED, "%s (%d tokens) is spent; it resets at %s", Name(keyID, period), limit, resets)
}

// NotFound returns the ENOTFOUND error of a missing budget.
func NotFound(keyID, period string) *custos.Error {
	if keyID == "" {
		return custos.Errorf(custos.ENOTFOUND, "the org has no %s budget", period)
	}
	return custos.Errorf(custos.ENOTFOUND, "key %q has no %s budget", keyID, period)
}

// CheckTokens returns EINVALID unless tokens is positive.
func CheckTokens(tokens int64) error {
	if tokens <= 0 {
		return custos.Errorf(custos.EINVALID, "invalid token count %d: a reservation holds at least one token", tokens)
	}
	return nil
}

// GroupColumn returns the usage_records column that the grouping by (one
// of custos.UsageByModel, UsageByKey, UsageByProvider, UsageByDay) groups
// on. Returns EINVALID for another.
func GroupColumn(by string) (string, error) {
	switch by {
	case custos.UsageByModel:
		return "model", nil
	case custos.UsageByKey:
		return "key_id", nil
	case custos.UsageByProvider:
		return "provider", nil
	case custos.UsageByDay:
		return "day", nil
	}
	return "", custos.Errorf(custos.EINVALID, "invalid usage grouping %q: want %q, %q, %q or %q",
		by, custos.UsageByModel, custos.UsageByKey, custos.UsageByProvider, custos.UsageByDay)
}

// Day returns the UTC date of t as the usage_records day column holds it.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Bounds returns f's time range as unix microseconds [since, until): a zero
// Since is the earliest time, a zero Until the latest.
func Bounds(f custos.UsageFilter) (since, until int64) {
	since, until = minMicros, maxMicros
	if !f.Since.IsZero() {
		since = f.Since.UnixMicro()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixMicro()
	}
	return since, until
}

const (
	minMicros = -1 << 63
	maxMicros = 1<<63 - 1
)

// Usage listing limits.
const (
	DefaultUsageLimit = 1000  // records per listing when UsageFilter.Limit is 0
	MaxUsageLimit     = 10000 // larger limits are capped to this
)

// Limit returns the number of records a listing of f returns at most.
func Limit(f custos.UsageFilter) int {
	switch {
	case f.Limit <= 0:
		return DefaultUsageLimit
	case f.Limit > MaxUsageLimit:
		return MaxUsageLimit
	}
	return f.Limit
}
