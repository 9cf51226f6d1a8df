package main

import (
	"context"
	"flag"
	"fmt"
	"regexp"

	"github.com/custos-dev/custos"
)

const privacyUsage = `Usage: custos privacy COMMAND [ARGS] [FLAGS]

Manages the privacy modes of the model gateway (owner and admin keys).
Modes, from the loosest:
  normal     cloud and local providers
  sensitive  cloud providers only after redaction; embeddings and code
             context (X-Custos-Context: code) to local providers only
  offline    local providers only, enforced when connecting
A rule applies to the org, to a project (requests with the header
X-Custos-Project: NAME) or to one API key. A request runs in the strictest
mode of every rule that applies to it and of the server's --privacy.

Commands:
  set MODE   set the mode of the org, a project or a key
  list       list the rules
  rm         remove a rule

Example:
  custos privacy set sensitive
  custos privacy set offline --project payroll
  custos privacy list
`

func (c *CLI) runPrivacy(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "privacy", privacyUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"set":  (*CLI).privacySet,
		"list": (*CLI).privacyList,
		"ls":   (*CLI).privacyList,
		"rm":   (*CLI).privacyRemove,
	})
}

// privacyProjectRE is the form of a privacy rule's project (the server
// checks it too).
var privacyProjectRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$`)

const privacySetUsage = `Usage: custos privacy set normal|sensitive|offline [--key KEY_ID | --project NAME]

Sets the privacy mode of the org, or with --project of the requests naming
that project (X-Custos-Project), or with --key of one API key. A rule can
only make requests stricter than the server's --privacy.

Example:
  custos privacy set sensitive
  custos privacy set offline --project payroll
  custos privacy set offline --key key_0123456789abcdef
`

func (c *CLI) privacySet(ctx context.Context, args []string) error {
	f := c.newFlags("privacy set", privacySetUsage)
	keyID := f.String("key", "", "the mode of API key `KEY_ID`")
	project := f.String("project", "", "the mode of project `NAME` (requests with X-Custos-Project: NAME)")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	mode := pos[0]
	if custos.PrivacyRank(mode) == 0 {
		return f.usageErr("invalid mode %q: use normal, sensitive or offline", clip(mode, 20))
	}
	scope, target, err := f.privacyScope(*keyID, *project)
	if err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	r, err := svc.SetPrivacy(ctx, custos.PrivacyRule{Scope: scope, Target: target, Mode: mode})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "privacy of %s: %s\n", privacyScopeName(r.Scope, r.Target), r.Mode)
	return nil
}

const privacyListUsage = `Usage: custos privacy list [--json]

Lists the org's privacy rules: SCOPE (org, project or key) TARGET MODE
UPDATED BY.

Example:
  custos privacy list
  custos privacy list --json
`

func (c *CLI) privacyList(ctx context.Context, args []string) error {
	f := c.newFlags("privacy list", privacyListUsage)
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	list, err := svc.ListPrivacy(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	t := newTable(c.Stdout, "SCOPE", "TARGET", "MODE", "UPDATED", "BY")
	for _, r := range list {
		t.row(r.Scope, r.Target, r.Mode, fmtTime(r.UpdatedAt), r.UpdatedBy)
	}
	return t.flush()
}

const privacyRmUsage = `Usage: custos privacy rm [--key KEY_ID | --project NAME]

Removes the org's privacy rule, or with --project or --key that project's
or key's. The server's --privacy still applies.

Example:
  custos privacy rm
  custos privacy rm --project payroll
`

func (c *CLI) privacyRemove(ctx context.Context, args []string) error {
	f := c.newFlags("privacy rm", privacyRmUsage)
	keyID := f.String("key", "", "the rule of API key `KEY_ID`")
	project := f.String("project", "", "the rule of project `NAME`")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	scope, target, err := f.privacyScope(*keyID, *project)
	if err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	if err := svc.RemovePrivacy(ctx, scope, target); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "removed the privacy rule of %s\n", privacyScopeName(scope, target))
	return nil
}

// privacyScope returns the scope and target of --key and --project: the
// org when neither is given.
func (f *cmdFlags) privacyScope(keyID, project string) (scope, target string, err error) {
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	switch {
	case given["key"] && given["project"]:
		return "", "", f.usageErr("give --key or --project, not both")
	case given["key"]:
		if err := custos.ValidateID(custos.PrefixKey, keyID); err != nil {
			return "", "", f.usageErr("--key: %s", custos.ErrorMessage(err))
		}
		return custos.ScopeKey, keyID, nil
	case given["project"]:
		if !privacyProjectRE.MatchString(project) {
			return "", "", f.usageErr("--project: invalid project %q: use 1-128 of A-Z, a-z, 0-9, '.', '_', '/' and '-'", clip(project, 40))
		}
		return custos.ScopeProject, project, nil
	}
	return custos.ScopeOrg, "", nil
}

// privacyScopeName names a rule's scope for messages.
func privacyScopeName(scope, target string) string {
	if scope == custos.ScopeOrg {
		return "the org"
	}
	return scope + " " + cell(target)
}
