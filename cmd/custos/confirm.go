package main

import (
	"context"
	"fmt"

	"github.com/custos-dev/custos"
)

const confirmUsage = `Usage: custos confirm NAME [--project P]

Acknowledges that this device is about to read secret NAME, as policies
with the require_confirmation rule ask. The acknowledgement is good for one
read within 5 minutes.

Example:
  custos confirm PROD_DB_PASSWORD --project api && custos secret reveal PROD_DB_PASSWORD --project api
`

func (c *CLI) runConfirm(ctx context.Context, args []string) error {
	f := c.newFlags("confirm", confirmUsage)
	project := f.String("project", custos.DefaultProject, "`PROJECT` of the secret")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateName(pos[0]); err != nil {
		return err
	}
	if err := f.validateProject(*project); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	cf, err := svc.Sessions.Confirm(ctx, custos.ConfirmInput{Project: *project, Name: pos[0]})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "confirmed %s/%s for one read until %s\n", cf.Project, cf.Name, expiresIn(cf.ExpiresAt, c.clock()))
	return nil
}
