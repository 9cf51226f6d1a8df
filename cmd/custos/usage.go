package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
)

const usageUsage = `Usage: custos usage [--by model|key|provider|day] [--since D] [--key KEY_ID] [--limit N] [--json]

Shows the model gateway's usage: metadata only, custos never keeps prompts
or completions. Owner and admin keys see the org's usage, other keys their
own.

Without --by, lists the latest requests, newest first: TIME KEY PROVIDER
MODEL ROUTE (chat, responses, embeddings, messages or count_tokens; +stream when
streamed) IN OUT (tokens) LATENCY_MS OVERHEAD_MS (custos' own share)
STATUS REDACTIONS KNOWN (stored secret values found in the request). With
--by, sums them per model, key, provider or UTC day: GROUP REQUESTS ERRORS
IN OUT REDACTIONS KNOWN AVG_LATENCY_MS.

--since takes a duration back from now (24h, 7d), an RFC 3339 time or a
date (default 30d).

Example:
  custos usage --limit 20
  custos usage --by model --since 7d
  custos usage --by day --key key_0123456789abcdef --json
`

// defaultUsageSince and defaultUsageLimit are the defaults of custos usage.
const (
	defaultUsageSince = 30 * 24 * time.Hour
	defaultUsageLimit = 100
)

func (c *CLI) runUsage(ctx context.Context, args []string) error {
	f := c.newFlags("usage", usageUsage)
	by := f.String("by", "", "sum per `GROUP`: model, key, provider or day")
	sinceFlag := f.String("since", "30d", "usage since `D` ago or since a time")
	keyID := f.String("key", "", "only the usage of API key `KEY_ID`")
	limit := f.Int("limit", defaultUsageLimit, "list at most `N` requests, 1 to 10000 (not with --by)")
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	switch *by {
	case "", custos.UsageByModel, custos.UsageByKey, custos.UsageByProvider, custos.UsageByDay:
	default:
		return f.usageErr("--by: invalid grouping %q: use model, key, provider or day", clip(*by, 20))
	}
	limitGiven := false
	f.Visit(func(fl *flag.Flag) { limitGiven = limitGiven || fl.Name == "limit" })
	switch {
	case *by != "" && limitGiven:
		return f.usageErr("--limit is for the listing; --by sums every request since --since")
	case *limit < 1 || *limit > 10000:
		return f.usageErr("--limit: must be 1 to 10000")
	}
	now := c.clock()
	since, err := parseSince(*sinceFlag, now)
	if err != nil {
		return f.usageErr("%s", err)
	}
	if err := f.validateKeyFlag(*keyID); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	filter := custos.UsageFilter{Since: since, KeyID: *keyID}
	if *by != "" {
		sum, err := svc.SummarizeUsage(ctx, filter, *by)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONList(c.Stdout, sum)
		}
		t := newTable(c.Stdout, "GROUP", "REQUESTS", "ERRORS", "IN", "OUT", "REDACTIONS", "KNOWN", "AVG_LATENCY_MS")
		for _, s := range sum {
			t.row(s.Group, fmt.Sprint(s.Requests), fmt.Sprint(s.Errors), fmt.Sprint(s.TokensIn), fmt.Sprint(s.TokensOut),
				fmt.Sprint(s.Redactions), fmt.Sprint(s.KnownHits), fmtMS(s.AvgLatencyMS))
		}
		return t.flush()
	}
	filter.Limit = *limit
	recs, err := svc.ListUsage(ctx, filter)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, recs)
	}
	t := newTable(c.Stdout, "TIME", "KEY", "PROVIDER", "MODEL", "ROUTE", "IN", "OUT", "LATENCY_MS", "OVERHEAD_MS", "STATUS", "REDACTIONS", "KNOWN")
	for _, r := range recs {
		route := r.Route
		if r.Stream {
			route += "+stream"
		}
		t.row(fmtTime(r.Time), r.KeyID, r.Provider, r.Model, route, fmt.Sprint(r.TokensIn), fmt.Sprint(r.TokensOut),
			fmtMS(r.LatencyMS), fmtMS(r.OverheadMS), fmt.Sprint(r.Status), fmt.Sprint(r.Redactions), fmt.Sprint(r.KnownHits))
	}
	return t.flush()
}

// fmtMS formats milliseconds to a tenth.
func fmtMS(ms float64) string { return fmt.Sprintf("%.1f", ms) }
