package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/custos-dev/custos"
)

const budgetUsage = `Usage: custos budget COMMAND [FLAGS]

Manages token budgets of the model gateway (owner and admin keys). A budget
caps the tokens (in + out) the org, or one API key, may spend per UTC day
or month. Each request reserves its worst case (its size in bytes plus its
max_tokens) before it is forwarded, so concurrent requests never overshoot;
a request that does not fit is refused with 429, and the reservation is
replaced by the tokens actually used once the answer is in.

Commands:
  set    create or replace a budget
  list   list budgets with the current window's spent and reserved tokens
  rm     remove a budget

Example:
  custos budget set --tokens 5000000 --per day
  custos budget set --tokens 20000000 --per month --key key_0123456789abcdef
  custos budget list
`

func (c *CLI) runBudget(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "budget", budgetUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"set":  (*CLI).budgetSet,
		"list": (*CLI).budgetList,
		"ls":   (*CLI).budgetList,
		"rm":   (*CLI).budgetRemove,
	})
}

const budgetSetUsage = `Usage: custos budget set --tokens N --per day|month [--key KEY_ID]

Creates or replaces the budget of the org (or, with --key, of one API key)
for a UTC day or month: at most N tokens, input and output together. A
request must fit under every budget that applies to it.

Example:
  custos budget set --tokens 5000000 --per day
  custos budget set --tokens 200000 --per day --key key_0123456789abcdef
`

func (c *CLI) budgetSet(ctx context.Context, args []string) error {
	f := c.newFlags("budget set", budgetSetUsage)
	tokensFlag := f.String("tokens", "", "the limit: `N` tokens per period, input and output together (required)")
	per := f.String("per", "", "the `PERIOD`: day or month (required)")
	keyID := f.String("key", "", "the budget of API key `KEY_ID` (default: the whole org)")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *tokensFlag == "" {
		return f.usageErr("--tokens N is required")
	}
	tokens, err := strconv.ParseInt(*tokensFlag, 10, 64)
	if err != nil || tokens < 1 || tokens > 1e13 {
		return f.usageErr("--tokens: want a whole number of tokens from 1 to 10000000000000, not %q", clip(*tokensFlag, 24))
	}
	if err := f.validatePeriod(*per); err != nil {
		return err
	}
	if err := f.validateKeyFlag(*keyID); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	b, err := svc.SetBudget(ctx, custos.Budget{KeyID: *keyID, Period: *per, Limit: tokens})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "budget of %s: %d tokens per %s\n", budgetScope(b.KeyID), b.Limit, b.Period)
	return nil
}

const budgetListUsage = `Usage: custos budget list [--json]

Lists the org's budgets with the current window's counters: SCOPE (org or a
key id) PERIOD LIMIT SPENT RESERVED (held by requests in flight) WINDOW
(its UTC start) RESETS.

Example:
  custos budget list
  custos budget list --json
`

func (c *CLI) budgetList(ctx context.Context, args []string) error {
	f := c.newFlags("budget list", budgetListUsage)
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	list, err := svc.ListBudgets(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	now := c.clock()
	t := newTable(c.Stdout, "SCOPE", "PERIOD", "LIMIT", "SPENT", "RESERVED", "WINDOW", "RESETS")
	for _, b := range list {
		start := custos.WindowStart(b.Period, now)
		next := start.AddDate(0, 0, 1)
		if b.Period == custos.PeriodMonth {
			next = start.AddDate(0, 1, 0)
		}
		t.row(budgetScope(b.KeyID), b.Period, fmt.Sprint(b.Limit), fmt.Sprint(b.Spent), fmt.Sprint(b.Reserved), fmtTime(start), fmtTime(next))
	}
	return t.flush()
}

const budgetRmUsage = `Usage: custos budget rm --per day|month [--key KEY_ID]

Removes the org's budget for the period (or, with --key, that key's).

Example:
  custos budget rm --per day
  custos budget rm --per month --key key_0123456789abcdef
`

func (c *CLI) budgetRemove(ctx context.Context, args []string) error {
	f := c.newFlags("budget rm", budgetRmUsage)
	per := f.String("per", "", "the `PERIOD`: day or month (required)")
	keyID := f.String("key", "", "the budget of API key `KEY_ID` (default: the whole org)")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if err := f.validatePeriod(*per); err != nil {
		return err
	}
	if err := f.validateKeyFlag(*keyID); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	if err := svc.RemoveBudget(ctx, *keyID, *per); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "removed the %s budget of %s\n", *per, budgetScope(*keyID))
	return nil
}

// budgetScope names whose budget it is: "org" or the key id.
func budgetScope(keyID string) string {
	if keyID == "" {
		return "org"
	}
	return keyID
}

// validatePeriod checks a --per flag's value.
func (f *cmdFlags) validatePeriod(p string) error {
	switch p {
	case custos.PeriodDay, custos.PeriodMonth:
		return nil
	case "":
		return f.usageErr("--per is required: day or month")
	}
	return f.usageErr("--per: invalid period %q: use day or month", clip(p, 20))
}

// validateKeyFlag checks a --key KEY_ID flag's value ("" is allowed).
func (f *cmdFlags) validateKeyFlag(id string) error {
	if id == "" {
		return nil
	}
	if err := custos.ValidateID(custos.PrefixKey, id); err != nil {
		return f.usageErr("--key: %s", custos.ErrorMessage(err))
	}
	return nil
}
