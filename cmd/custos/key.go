package main

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
)

const keyUsage = `Usage: custos key COMMAND [ARGS] [FLAGS]

Manages API keys (owner and admin keys only). A token is shown once, when
the key is created or rotated; custos keeps only its hash.

Commands:
  create --name N   create a key and print its token once
  list              list keys (never tokens)
  rotate ID         replace a key; the old one works for a grace period
  revoke ID         stop a key at once

Example:
  custos key create --name laptop-claude --role agent --ttl 30d
  custos key list
`

func (c *CLI) runKey(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "key", keyUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"create": (*CLI).keyCreate,
		"list":   (*CLI).keyList,
		"ls":     (*CLI).keyList,
		"rotate": (*CLI).keyRotate,
		"revoke": (*CLI).keyRevoke,
	})
}

const keyCreateUsage = `Usage: custos key create --name N [--role owner|admin|member|agent] [--ttl D]

Creates an API key and prints its id and its token. The token is shown
only this once: store it now (a password manager, CUSTOS_API_KEY_FILE or a
0600 .custosrc). Roles: owner (everything), admin (everything but owner
keys), member and agent (secrets through approved devices, sessions).

Example:
  custos key create --name ci --role member --ttl 90d
`

func (c *CLI) keyCreate(ctx context.Context, args []string) error {
	f := c.newFlags("key create", keyCreateUsage)
	name := f.String("name", "", "`NAME` of the key (who or what uses it)")
	role := f.String("role", string(custos.RoleMember), "`ROLE`: owner, admin, member or agent")
	var ttl durationValue
	f.Var(&ttl, "ttl", "the key expires after `D`, e.g. 90d (default: never)")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *name == "" {
		return f.usageErr("--name is required")
	}
	if err := custos.ValidateLabel("key name", *name); err != nil {
		return f.usageErr("--name: %s", custos.ErrorMessage(err))
	}
	if !custos.Role(*role).Valid() {
		return f.usageErr("--role: invalid role %q: use owner, admin, member or agent", clip(*role, 20))
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	k, tok, err := svc.Keys.CreateKey(ctx, custos.CreateKeyInput{Name: *name, Role: custos.Role(*role), TTL: custos.Duration(ttl)})
	if err != nil {
		return err
	}
	c.printToken(k, tok)
	return nil
}

// printToken prints a new key's id and token, and a warning to store it.
func (c *CLI) printToken(k *custos.APIKey, tok string) {
	fmt.Fprintf(c.Stdout, "key:     %s (%s, %s)\n", k.ID, cell(k.Name), k.Role)
	if k.ExpiresAt != nil {
		fmt.Fprintf(c.Stdout, "expires: %s\n", fmtTime(*k.ExpiresAt))
	}
	fmt.Fprintf(c.Stdout, "token:   %s\n", tok)
	fmt.Fprintln(c.Stderr, "Store this token now: it is shown only once and custos cannot show it again.")
}

const keyListUsage = `Usage: custos key list [--json]

Lists the org's API keys: ID NAME ROLE STATUS CREATED EXPIRES, where STATUS
is active, rotated (in its grace period), retired, expired or revoked.

Example:
  custos key list
`

func (c *CLI) keyList(ctx context.Context, args []string) error {
	f := c.newFlags("key list", keyListUsage)
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	keys, err := svc.Keys.ListKeys(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, keys)
	}
	now := c.clock()
	t := newTable(c.Stdout, "ID", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES")
	for _, k := range keys {
		t.row(k.ID, k.Name, string(k.Role), k.Status(now), fmtTime(k.CreatedAt), fmtTimePtr(k.ExpiresAt))
	}
	return t.flush()
}

const keyRotateUsage = `Usage: custos key rotate ID [--grace D]

Replaces key ID with a new key that takes over its device approvals, and
prints the new token once. The old key keeps working for --grace
(default 48h) so you can roll the new token out.

Example:
  custos key rotate key_0123456789abcdef --grace 24h
`

func (c *CLI) keyRotate(ctx context.Context, args []string) error {
	f := c.newFlags("key rotate", keyRotateUsage)
	grace := durationValue(custos.DefaultKeyGrace)
	f.Var(&grace, "grace", "the old key keeps working for `D`")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateID(custos.PrefixKey, pos[0]); err != nil {
		return err
	}
	if grace <= 0 {
		return f.usageErr("--grace: must be more than 0")
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	k, tok, err := svc.Keys.RotateKey(ctx, pos[0], time.Duration(grace))
	if err != nil {
		return err
	}
	c.printToken(k, tok)
	fmt.Fprintf(c.Stdout, "the old key %s keeps working for %s\n", pos[0], fmtDuration(time.Duration(grace)))
	return nil
}

const keyRevokeUsage = `Usage: custos key revoke ID

Stops key ID at once.

Example:
  custos key revoke key_0123456789abcdef
`

func (c *CLI) keyRevoke(ctx context.Context, args []string) error {
	f := c.newFlags("key revoke", keyRevokeUsage)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateID(custos.PrefixKey, pos[0]); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	if err := svc.Keys.RevokeKey(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "revoked %s\n", pos[0])
	return nil
}
