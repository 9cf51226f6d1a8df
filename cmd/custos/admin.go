package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
)

const adminUsage = `Usage: custos admin COMMAND [flags]

Administration of a data dir or database. rotate-kek is offline: stop every
server first (it takes the data dir's lock and, with --database, an advisory
lock that every running replica holds shared, so it refuses while any serves).

Commands:
  rotate-kek --to KEEPER_URL   re-wrap every data key (DEK) with a new KEK;
                               the ciphertext of the values is not touched
  migrate [--status]           apply pending schema migrations (servers also do
                               this at start, under a lock); --status only shows
                               where the database stands. Safe while servers run.

Flags:
  --data DIR       data dir (CUSTOS_DATA; default ./custos-data)
  --keeper URL     the current keeper (CUSTOS_KEEPER; default as for serve)
  --to URL         the new keeper; file://PATH is created (0600) if missing
  --database URL   postgres://… (CUSTOS_DATABASE_URL); default SQLite in DATA

Example:
  custos admin rotate-kek --to file://custos-data/kek-2026.key
  custos admin migrate --status --database postgres://custos:…@db:5432/custos
`

// runAdmin runs the offline admin commands.
func (c *CLI) runAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{"name an admin command", adminUsage}
	} else if isHelp(args[:1]) {
		return &helpRequest{adminUsage}
	}
	switch args[0] {
	case "rotate-kek":
		if isHelp(args[1:]) {
			return &helpRequest{adminUsage}
		}
		return c.rotateKEK(ctx, args[1:])
	case "migrate":
		if isHelp(args[1:]) {
			return &helpRequest{adminUsage}
		}
		return c.migrate(ctx, args[1:])
	default:
		return &usageError{fmt.Sprintf("unknown admin command %q", clip(args[0], 40)), adminUsage}
	}
}

func (c *CLI) rotateKEK(ctx context.Context, args []string) error {
	cfg := DefaultConfig()
	var err error
	if cfg.DataDir, err = envOr(c.Getenv, "CUSTOS_DATA", cfg.DataDir); err != nil {
		return err
	}
	if cfg.Keeper, err = envOr(c.Getenv, "CUSTOS_KEEPER", ""); err != nil {
		return err
	}
	if cfg.Database, err = envOr(c.Getenv, "CUSTOS_DATABASE_URL", ""); err != nil {
		return err
	}
	var to string
	fs := flag.NewFlagSet("custos admin rotate-kek", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "")
	fs.StringVar(&cfg.Keeper, "keeper", cfg.Keeper, "")
	fs.StringVar(&to, "to", "", "")
	fs.StringVar(&cfg.Database, "database", cfg.Database, "")
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error(), adminUsage}
	} else if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0)), adminUsage}
	} else if to == "" {
		return &usageError{"--to KEEPER_URL is required", adminUsage}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, dbFile)); err != nil && cfg.Database == "" {
		return fmt.Errorf("no custos database in %s: %w", cfg.DataDir, err)
	}
	lock, err := lockDataDir(cfg.DataDir, true)
	if err != nil {
		return err
	}
	defer lock.Close()

	fromURL, _, err := cfg.keeperURL()
	if err != nil {
		return err
	}
	from, err := envelope.OpenKeeper(ctx, fromURL, envelope.OpenOptions{})
	if err != nil {
		return fmt.Errorf("open current keeper %s: %w", envelope.Redact(fromURL), err)
	}
	defer from.Close()
	dst, err := envelope.OpenKeeper(ctx, to, envelope.OpenOptions{Create: strings.HasPrefix(to, "file://")})
	if err != nil {
		return fmt.Errorf("open new keeper %s: %w", envelope.Redact(to), err)
	}
	defer dst.Close()

	store, err := cfg.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer store.Close()
	if l, ok := store.(serverLocker); ok {
		release, err := l.TryLockExclusive(ctx)
		if err != nil {
			return err
		}
		defer release()
	}

	canary, err := store.GetMeta(ctx, "kek_canary")
	if err != nil {
		return fmt.Errorf("read canary: %w", err)
	}
	// A crash between the rewrap and the canary update leaves the canary with
	// the old keeper; a second run resumes, skipping what is already rewrapped.
	if err := envelope.CheckCanary(ctx, from, canary); err != nil {
		if envelope.CheckCanary(ctx, dst, canary) == nil {
			fmt.Fprintln(c.Stdout, "the database is already on the new KEK")
			return c.recordKeeper(cfg.DataDir, to)
		}
		return err
	}
	n, err := store.RewrapDEKs(ctx, func(wrapped []byte, keeperID string) ([]byte, string, error) {
		if keeperID == dst.ID() {
			return wrapped, keeperID, nil
		}
		w, err := envelope.Rewrap(ctx, from, dst, wrapped)
		return w, dst.ID(), err
	})
	if err != nil {
		return fmt.Errorf("rewrap: %w (nothing was changed)", err)
	}
	newCanary, err := envelope.NewCanary(ctx, dst)
	if err != nil {
		return err
	}
	if err := store.PutMeta(ctx, "kek_canary", newCanary); err != nil {
		return fmt.Errorf("update canary: %w (run the same command again to finish)", err)
	}
	fmt.Fprintf(c.Stdout, "re-wrapped %d data keys with keeper %s; ciphertext untouched\n", n, envelope.Redact(to))
	return c.recordKeeper(cfg.DataDir, to)
}

// recordKeeper remembers the new keeper URL in the data dir when it holds no
// key material, so a plain `custos serve` uses it; otherwise it tells the
// operator to pass it.
func (c *CLI) recordKeeper(dataDir, to string) error {
	if strings.HasPrefix(to, "base64key://") {
		fmt.Fprintln(c.Stdout, "start the server with --keeper set to the new keeper URL (or CUSTOS_KEEPER_FILE); it is not stored because it holds the key")
		return nil
	}
	if err := writeFileAtomic(dataDir, filepath.Join(dataDir, keeperFile), []byte(to+"\n")); err != nil {
		return fmt.Errorf("record keeper url: %w", err)
	}
	fmt.Fprintf(c.Stdout, "recorded in %s: `custos serve` now uses it; keep the old key file until you have a backup taken after this rotation\n", filepath.Join(dataDir, keeperFile))
	return nil
}

// migrator is a store that reports its schema migrations.
type migrator interface {
	Migrations(ctx context.Context) ([]custos.MigrationState, error)
}

// migrate applies pending migrations, or with --status only lists them.
func (c *CLI) migrate(ctx context.Context, args []string) error {
	cfg := DefaultConfig()
	var err error
	if cfg.DataDir, err = envOr(c.Getenv, "CUSTOS_DATA", cfg.DataDir); err != nil {
		return err
	}
	if cfg.Database, err = envOr(c.Getenv, "CUSTOS_DATABASE_URL", ""); err != nil {
		return err
	}
	var status, asJSON bool
	fs := flag.NewFlagSet("custos admin migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "")
	fs.StringVar(&cfg.Database, "database", cfg.Database, "")
	fs.BoolVar(&status, "status", false, "")
	fs.BoolVar(&asJSON, "json", false, "")
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error(), adminUsage}
	} else if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0)), adminUsage}
	}
	if cfg.Database == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, dbFile)); err != nil && status {
			return fmt.Errorf("no custos database in %s: %w", cfg.DataDir, err)
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return err
		}
	}
	st, err := cfg.openStore(ctx, status)
	if err != nil {
		return err
	}
	defer st.Close()
	m, ok := st.(migrator)
	if !ok {
		return fmt.Errorf("this store cannot report migrations")
	}
	ms, err := m.Migrations(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONList(c.Stdout, ms)
	}
	pending := 0
	t := newTable(c.Stdout, "VERSION", "NAME", "APPLIED")
	for _, s := range ms {
		applied := "pending"
		if s.AppliedAt != nil {
			applied = s.AppliedAt.UTC().Format(time.RFC3339)
		} else {
			pending++
		}
		t.row(fmt.Sprint(s.Version), s.Name, applied)
	}
	if err := t.flush(); err != nil {
		return err
	}
	switch {
	case pending > 0:
		fmt.Fprintf(c.Stdout, "%d migration(s) pending: run custos admin migrate (or start a server)\n", pending)
	case status:
		fmt.Fprintln(c.Stdout, "schema up to date")
	default:
		fmt.Fprintln(c.Stdout, "migrations applied; schema up to date")
	}
	return nil
}
