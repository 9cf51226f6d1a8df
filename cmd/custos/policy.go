package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/custos-dev/custos"
)

const policyUsage = `Usage: custos policy COMMAND [ARGS] [FLAGS]

A policy applies a rule to every secret with a tag. Rules, strongest first:
  block_always          no access through the API, CLI or MCP at all
  require_session       only while the device has woken a session
  block_models          not on behalf of the models matching --models
  require_confirmation  only after 'custos confirm' (one read, 5 minutes)
  notify                never blocks; --notify-url is told of each access

Commands:
  add       add a policy
  list      list policies in evaluation order
  rm ID     remove a policy

Example:
  custos policy add --tag env=prod --rule require_session
  custos policy list
`

func (c *CLI) runPolicy(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "policy", policyUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"add":  (*CLI).policyAdd,
		"list": (*CLI).policyList,
		"ls":   (*CLI).policyList,
		"rm":   (*CLI).policyRemove,
	})
}

const policyAddUsage = `Usage: custos policy add --tag k=v --rule RULE [--models a,b] [--ttl D] [--notify-url URL]

Adds a policy applying RULE to the secrets tagged k=v. RULE is block_always,
require_session, block_models (with --models: model name patterns such as
gpt-* or claude-3-*), require_confirmation or notify (with --notify-url).
With --ttl the policy lapses after that long.

Example:
  custos policy add --tag env=prod --rule block_models --models 'gpt-*,gemini-*'
  custos policy add --tag team=payments --rule notify --notify-url https://hooks.example.com/custos
  custos policy add --tag env=prod --rule block_always --ttl 2h
`

func (c *CLI) policyAdd(ctx context.Context, args []string) error {
	f := c.newFlags("policy add", policyAddUsage)
	tag := tagsValue{}
	f.Var(tag, "tag", "the secrets tagged `k=v` (required)")
	rule := f.String("rule", "", "`RULE` (required)")
	models := f.String("models", "", "block_models: comma-separated model `PATTERNS`")
	var ttl durationValue
	f.Var(&ttl, "ttl", "the policy lapses after `D` (default: never)")
	notifyURL := f.String("notify-url", "", "notify: the webhook `URL` to tell")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	in := custos.AddPolicyInput{Rule: custos.Rule(*rule), TTL: custos.Duration(ttl), NotifyURL: *notifyURL}
	switch len(tag) {
	case 0:
		return f.usageErr("--tag k=v is required")
	case 1:
		for k, v := range tag {
			in.TagKey, in.TagValue = k, v
		}
	default:
		return f.usageErr("--tag: a policy matches one tag; add one policy per tag")
	}
	switch {
	case *rule == "":
		return f.usageErr("--rule is required: block_always, require_session, block_models, require_confirmation or notify")
	case in.Rule.Rank() == 0:
		return f.usageErr("--rule: invalid rule %q: use block_always, require_session, block_models, require_confirmation or notify", clip(*rule, 30))
	}
	if *models != "" {
		if in.Rule != custos.RuleBlockModels {
			return f.usageErr("--models is only for --rule block_models")
		}
		for _, m := range strings.Split(*models, ",") {
			if m = strings.TrimSpace(m); m == "" {
				return f.usageErr("--models: empty model pattern in %q", clip(*models, 60))
			}
			in.Models = append(in.Models, m)
		}
	} else if in.Rule == custos.RuleBlockModels {
		return f.usageErr("--rule block_models needs --models, e.g. --models 'gpt-*'")
	}
	if *notifyURL != "" {
		if in.Rule != custos.RuleNotify {
			return f.usageErr("--notify-url is only for --rule notify")
		}
		if u, err := url.Parse(*notifyURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return f.usageErr("--notify-url: want an absolute https:// URL")
		}
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	p, err := svc.Policies.AddPolicy(ctx, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "added policy %s: %s on %s=%s", p.ID, p.Rule, p.TagKey, p.TagValue)
	if p.ExpiresAt != nil {
		fmt.Fprintf(c.Stdout, " until %s", fmtTime(*p.ExpiresAt))
	}
	fmt.Fprintln(c.Stdout)
	return nil
}

const policyListUsage = `Usage: custos policy list [--json]

Lists policies in evaluation order: ID TAG RULE MODELS NOTIFY EXPIRES.

Example:
  custos policy list --json
`

func (c *CLI) policyList(ctx context.Context, args []string) error {
	f := c.newFlags("policy list", policyListUsage)
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	list, err := svc.Policies.ListPolicies(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	now := c.clock()
	t := newTable(c.Stdout, "ID", "TAG", "RULE", "MODELS", "NOTIFY", "EXPIRES")
	for _, p := range list {
		t.row(p.ID, p.TagKey+"="+p.TagValue, string(p.Rule), strings.Join(p.Models, ","), p.NotifyURL, policyExpiry(p, now))
	}
	return t.flush()
}

// policyExpiry is "-", the expiry time, or "expired".
func policyExpiry(p *custos.Policy, now time.Time) string {
	if !p.Active(now) {
		return "expired"
	}
	return fmtTimePtr(p.ExpiresAt)
}

const policyRmUsage = `Usage: custos policy rm ID

Removes policy ID.

Example:
  custos policy rm pol_0123456789abcdef
`

func (c *CLI) policyRemove(ctx context.Context, args []string) error {
	f := c.newFlags("policy rm", policyRmUsage)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateID(custos.PrefixPolicy, pos[0]); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	if err := svc.Policies.RemovePolicy(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "removed policy %s\n", pos[0])
	return nil
}
