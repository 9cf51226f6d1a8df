package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos-dev/custos"
)

const trackerUsage = `Usage: custos tracker COMMAND [ARGS] [FLAGS]

Manages the org's tracker app installs (owner and admin keys). A tracker
app (a Jira, Linear or GitHub Issues connector) holds an install token
(cst_ti_…) with which it mints one-time launch links for tickets; see
custos task launch and docs/TASKS.md.

Commands:
  install --name N   create an install and print its token once
  list               list installs (never tokens)
  rm ID              revoke an install: its token, request keys and unused
                     launch codes stop working

Example:
  custos tracker install --name jira-prod > jira-prod.token
  custos tracker list
  custos tracker rm trk_0123456789abcdef
`

func (c *CLI) runTracker(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "tracker", trackerUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"install": (*CLI).trackerInstall,
		"list":    (*CLI).trackerList,
		"ls":      (*CLI).trackerList,
		"rm":      (*CLI).trackerRemove,
		"revoke":  (*CLI).trackerRemove,
	})
}

// trackerClient returns the tracker install API of the configured server
// (with the API key).
func (c *CLI) trackerClient() (custos.TrackerService, error) {
	svc, err := c.client()
	if err != nil {
		return nil, err
	}
	if svc.Tasks == nil {
		return nil, errors.New("this client cannot manage tracker installs")
	}
	return svc.Tasks, nil
}

// #nosec G101 -- usage text, not a credential
const trackerInstallUsage = `Usage: custos tracker install --name NAME [--json]

Creates a tracker app install in the org and prints its install token
(cst_ti_…) on stdout, alone on its line, so it can go straight into a file
or a secret store. The token is shown only this once; custos keeps its hash.
The tracker app sends it as Authorization: Bearer cst_ti_… to
POST /v1/tracker/request-key (custos task launch does the same for scripts).

Example:
  custos tracker install --name jira-prod > jira-prod.token
  CUSTOS_TRACKER_TOKEN=$(cat jira-prod.token) custos task launch --project PROJ --task PROJ-42
`

func (c *CLI) trackerInstall(ctx context.Context, args []string) error {
	f := c.newFlags("tracker install", trackerInstallUsage)
	name := f.String("name", "", "`NAME` of the install, e.g. jira-prod (required)")
	asJSON := f.Bool("json", false, "print the install and its token as JSON")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *name == "" {
		return f.usageErr("--name is required, e.g. --name jira-prod")
	}
	if err := custos.ValidateLabel("install name", *name); err != nil {
		return f.usageErr("--name: %s", custos.ErrorMessage(err))
	}
	svc, err := c.trackerClient()
	if err != nil {
		return err
	}
	in, tok, err := svc.CreateTrackerInstall(ctx, *name)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSONValue(c.Stdout, map[string]any{"install": in, "token": tok}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(c.Stdout, tok)
	}
	fmt.Fprintf(c.Stderr, "Created tracker install %s (%s). Its token is on stdout: store it now, it is not shown again.\n", in.ID, cell(in.Name))
	return nil
}

const trackerListUsage = `Usage: custos tracker list [--json]

Lists the org's tracker installs: ID NAME CREATED REVOKED. Never shows a
token.

Example:
  custos tracker list
`

func (c *CLI) trackerList(ctx context.Context, args []string) error {
	f := c.newFlags("tracker list", trackerListUsage)
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.trackerClient()
	if err != nil {
		return err
	}
	list, err := svc.ListTrackerInstalls(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	t := newTable(c.Stdout, "ID", "NAME", "CREATED", "REVOKED")
	for _, in := range list {
		t.row(in.ID, in.Name, fmtTime(in.CreatedAt), fmtTimePtr(in.RevokedAt))
	}
	return t.flush()
}

const trackerRmUsage = `Usage: custos tracker rm ID

Revokes tracker install ID (trk_…): its token, its request keys and its
unused launch codes stop working at once. Permits already exchanged live on
until they expire.

Example:
  custos tracker rm trk_0123456789abcdef
`

func (c *CLI) trackerRemove(ctx context.Context, args []string) error {
	f := c.newFlags("tracker rm", trackerRmUsage)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateID(custos.PrefixTrackerInstall, pos[0]); err != nil {
		return err
	}
	svc, err := c.trackerClient()
	if err != nil {
		return err
	}
	if err := svc.RevokeTrackerInstall(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "revoked tracker install %s\n", pos[0])
	return nil
}
