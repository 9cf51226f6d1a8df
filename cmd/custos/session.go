package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-dev/custos"
)

const sessionUsage = `Usage: custos session COMMAND [FLAGS]

A session tells the server a human is at this device: policies with the
require_session rule let its secrets through only while one is awake.

Commands:
  wake    start (or replace) this device's session
  sleep   end this device's sessions
  clear   delete the files written by 'custos secret inject'

Example:
  custos session wake --tags env=prod --ttl 1h
  custos session sleep && custos session clear
`

func (c *CLI) runSession(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "session", sessionUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"wake":  (*CLI).sessionWake,
		"sleep": (*CLI).sessionSleep,
		"clear": (*CLI).sessionClear,
	})
}

const sessionWakeUsage = `Usage: custos session wake [--tags k=v]... [--ttl D]

Starts a session for this device (replacing any it has), covering the
secrets tagged with one of --tags, or every secret without --tags. It lasts
--ttl (default 30m, at most 24h). Prints the session id and its expiry.

Example:
  custos session wake --tags env=prod --ttl 1h
`

func (c *CLI) sessionWake(ctx context.Context, args []string) error {
	f := c.newFlags("session wake", sessionWakeUsage)
	tags := tagsValue{}
	f.Var(tags, "tags", "cover secrets tagged `k=v` (repeatable; default: all)")
	f.Var(tags, "tag", "same as --tags")
	ttl := durationValue(custos.DefaultSessionTTL)
	f.Var(&ttl, "ttl", "the session lasts `D` (at most 24h)")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if d := time.Duration(ttl); d <= 0 || d > custos.MaxSessionTTL {
		return f.usageErr("--ttl: must be more than 0 and at most %s", fmtDuration(custos.MaxSessionTTL))
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	s, err := svc.Sessions.WakeSession(ctx, custos.WakeInput{Tags: tags, TTL: custos.Duration(ttl)})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "session %s awake until %s, covering %s\n", s.ID, expiresIn(s.ExpiresAt, c.clock()),
		fmtTags(s.Tags, "every secret"))
	return nil
}

const sessionSleepUsage = `Usage: custos session sleep

Ends this device's sessions: require_session secrets are blocked again.

Example:
  custos session sleep
`

func (c *CLI) sessionSleep(ctx context.Context, args []string) error {
	f := c.newFlags("session sleep", sessionSleepUsage)
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	if err := svc.Sessions.SleepSession(ctx); err != nil {
		return err
	}
	fmt.Fprintln(c.Stdout, "session ended")
	return nil
}

const sessionClearUsage = `Usage: custos session clear

Deletes the files 'custos secret inject' wrote to the session dir
($CUSTOS_HOME/session or ~/.custos/session) and prints how many. It needs
no server.

Example:
  custos session clear
`

func (c *CLI) sessionClear(_ context.Context, args []string) error {
	f := c.newFlags("session clear", sessionClearUsage)
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	dir, err := c.sessionDir()
	if err != nil {
		return err
	}
	n, err := clearSessionDir(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "removed %d injected file%s from %s\n", n, plural(n), dir)
	return nil
}

// clearSessionDir deletes the injected PROJECT.env files in dir, and the
// lock and temp files beside them, and returns how many .env files it
// removed. A missing dir has none.
func clearSessionDir(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		injected := !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".env")
		aux := strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".env.lock") || strings.Contains(name, ".env.tmp-"))
		if !injected && !aux {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if injected {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
