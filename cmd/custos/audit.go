package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
)

const auditUsage = `Usage: custos audit COMMAND [FLAGS]

Reads the org's hash-chained audit log (owner and admin keys).

Commands:
  list     list events
  verify   check the chain end to end
  export   write every event as JSON lines

Example:
  custos audit list --since 24h
  custos audit verify
  custos audit export --format jsonl > audit.jsonl
`

func (c *CLI) runAudit(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "audit", auditUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"list":   (*CLI).auditList,
		"ls":     (*CLI).auditList,
		"verify": (*CLI).auditVerify,
		"export": (*CLI).auditExport,
	})
}

// auditPageSize is how many events the CLI asks for per request.
const auditPageSize = 1000

// forEachAuditEvent calls fn for every event at or after since (zero: all),
// in seq order, fetching pages with after=<last seq> until one is empty.
func forEachAuditEvent(ctx context.Context, svc custos.AuditService, since time.Time, fn func(*custos.AuditEvent) error) error {
	var after int64
	for {
		page, err := svc.ListAudit(ctx, custos.AuditFilter{Since: since, AfterSeq: after, Limit: auditPageSize})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			if e.Seq <= after {
				return fmt.Errorf("the server returned audit event %d after event %d: out of order", e.Seq, after)
			}
			after = e.Seq
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// parseSince reads --since: a duration back from now (24h, 7d), an RFC 3339
// time, or a date (2006-01-02, UTC).
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := custos.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid --since %q: give a duration (24h, 7d), an RFC 3339 time or a date (2006-01-02)", clip(s, 40))
}

const auditListUsage = `Usage: custos audit list [--since D] [--json]

Lists audit events, oldest first: SEQ TIME ACTION OUTCOME KEY AGENT
HOSTNAME SECRET MODE REASON. --since takes a duration back from now (24h,
7d), an RFC 3339 time or a date.

Example:
  custos audit list --since 24h
  custos audit list --since 2026-01-01T00:00:00Z --json
`

func (c *CLI) auditList(ctx context.Context, args []string) error {
	f := c.newFlags("audit list", auditListUsage)
	sinceFlag := f.String("since", "", "events since `D` ago or since a time")
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	var since time.Time
	if *sinceFlag != "" {
		var err error
		if since, err = parseSince(*sinceFlag, c.clock()); err != nil {
			return f.usageErr("%s", err)
		}
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	var events []*custos.AuditEvent
	if err := forEachAuditEvent(ctx, svc.Audit, since, func(e *custos.AuditEvent) error {
		events = append(events, e)
		return nil
	}); err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, events)
	}
	t := newTable(c.Stdout, "SEQ", "TIME", "ACTION", "OUTCOME", "KEY", "AGENT", "HOSTNAME", "SECRET", "MODE", "REASON")
	for _, e := range events {
		secret := ""
		if e.Secret != "" {
			secret = e.Project + "/" + e.Secret
		} else if e.Target != "" {
			secret = e.Target
		}
		t.row(fmt.Sprint(e.Seq), fmtTime(e.Time), e.Action, e.Outcome, e.KeyID, e.Agent, e.Hostname, secret, e.Mode, clip(e.Reason, 80))
	}
	return t.flush()
}

const auditVerifyUsage = `Usage: custos audit verify

Asks the server to check the audit chain end to end: every event in
sequence, linked to the one before, its hash matching its content. Prints
"audit chain OK: N events, last hash H" (exit 0) or "audit chain BROKEN at
event N: REASON" (exit 1).

Example:
  custos audit verify
`

func (c *CLI) auditVerify(ctx context.Context, args []string) error {
	f := c.newFlags("audit verify", auditVerifyUsage)
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	v, err := svc.Audit.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if !v.OK {
		fmt.Fprintf(c.Stdout, "audit chain BROKEN at event %d: %s\n", v.BrokenAt, cell(v.Reason))
		return exitCode(1)
	}
	fmt.Fprintf(c.Stdout, "audit chain OK: %d events, last hash %s\n", v.Events, cell(v.LastHash))
	return nil
}

const auditExportUsage = `Usage: custos audit export [--format jsonl]

Writes every audit event, oldest first, as one JSON object per line.

Example:
  custos audit export --format jsonl > audit-$(date +%F).jsonl
`

func (c *CLI) auditExport(ctx context.Context, args []string) error {
	f := c.newFlags("audit export", auditExportUsage)
	format := f.String("format", "jsonl", "output `FORMAT`: jsonl")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *format != "jsonl" {
		return f.usageErr("--format: unsupported format %q: use jsonl", clip(*format, 20))
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.Stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := forEachAuditEvent(ctx, svc.Audit, time.Time{}, func(e *custos.AuditEvent) error { return enc.Encode(e) }); err != nil { // #nosec G117 -- "secret" here is a secret's name; values never enter this struct
		_ = w.Flush()
		return err
	}
	return w.Flush()
}
