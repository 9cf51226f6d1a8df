package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/vault"
	"golang.org/x/term"
)

// #nosec G101 -- usage text, not a credential
const secretUsage = `Usage: custos secret COMMAND [ARGS] [FLAGS]

Manages secrets. Values are read from stdin only, never from the command
line, and are never printed except by 'reveal'.

Commands:
  set NAME       store a new version of a secret (value from stdin)
  list           list secrets (names, tags, versions; never values)
  inject NAME…   write values to a private file for your session
  reveal NAME    print a value
  rm NAME        delete a secret and all its versions
  history NAME   list the versions of a secret

Example:
  printf %s "$STRIPE_KEY" | custos secret set STRIPE_KEY --project shop --tag env=prod
  custos secret list --project shop
`

func (c *CLI) runSecret(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "secret", secretUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"set":     (*CLI).secretSet,
		"list":    (*CLI).secretList,
		"ls":      (*CLI).secretList,
		"inject":  (*CLI).secretInject,
		"reveal":  (*CLI).secretReveal,
		"rm":      (*CLI).secretRemove,
		"history": (*CLI).secretHistory,
	})
}

// #nosec G101 -- usage text, not a credential
const secretSetUsage = `Usage: custos secret set NAME [--project P] [--tag k=v]... [--ttl D] [--description TEXT]

Stores a new version of secret NAME, creating it if needed. The value is
read from stdin: typed without echo at a terminal, otherwise all of stdin
(at most 64 KiB) with one trailing newline removed. An empty value is the error empty. There is no flag for
the value, so it never shows in your shell history or the process list.
Prints "set PROJECT/NAME version N".

Example:
  printf %s "$GITHUB_TOKEN" | custos secret set GITHUB_TOKEN --tag env=prod --ttl 30d
  custos secret set DB_PASSWORD --project api < password.txt
`

func (c *CLI) secretSet(ctx context.Context, args []string) error {
	f := c.newFlags("secret set", secretSetUsage)
	project := f.String("project", custos.DefaultProject, "`PROJECT` of the secret")
	tags := tagsValue{}
	f.Var(tags, "tag", "add tag `k=v` (repeatable)")
	var ttl durationValue
	f.Var(&ttl, "ttl", "the secret expires after `D`, e.g. 72h or 30d")
	desc := f.String("description", "", "a `TEXT` describing the secret")
	pos, err := parseArgs(f.FlagSet, args)
	if err != nil {
		return f.flagError(err)
	}
	if len(pos) > 1 {
		return f.usageErr("secret set takes one NAME; the value is read from stdin, never from the command line")
	}
	if err := f.check(pos, 1, 1); err != nil {
		return err
	}
	name := pos[0]
	if err := f.validateName(name); err != nil {
		return err
	}
	if err := f.validateProject(*project); err != nil {
		return err
	}
	if len(*desc) > custos.MaxDescriptionBytes {
		return f.usageErr("--description: at most %d bytes", custos.MaxDescriptionBytes)
	}
	svc, err := c.client() // before the prompt: no key, no typing
	if err != nil {
		return err
	}
	value, err := c.readValue(ctx, fmt.Sprintf("Value for %s/%s (not echoed): ", *project, name),
		`empty value: give the value on stdin, e.g. printf %s "$VALUE" | custos secret set NAME`)
	if err != nil {
		return err
	}
	s, err := svc.Secrets.SetSecret(ctx, custos.SetSecretInput{
		Project: *project, Name: name, Value: value, Tags: tags,
		TTL: custos.Duration(ttl), Description: *desc,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "set %s/%s version %d\n", s.Project, s.Name, s.Version)
	if len(value) < vault.MinKnownValue {
		fmt.Fprintf(c.Stderr, "note: the model gateway's known-value guard watches for stored values of %d bytes or more; "+
			"this one is shorter, so prompts are not searched for it (its pattern may still be found by the redaction rules)\n", vault.MinKnownValue)
	}
	return nil
}

// readValue reads a secret value from stdin: without echo from a terminal
// (Ctrl-C gives up, restoring the terminal), else all of it with one
// trailing newline removed. An empty value is the error empty.
func (c *CLI) readValue(ctx context.Context, prompt, empty string) (string, error) {
	var b []byte
	if f, ok := c.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) { // #nosec G115 -- file descriptors fit in int
		fd := int(f.Fd()) // #nosec G115
		state, err := term.GetState(fd)
		if err != nil {
			return "", fmt.Errorf("read value: %w", err)
		}
		fmt.Fprint(c.Stderr, prompt)
		type result struct {
			b   []byte
			err error
		}
		ch := make(chan result, 1)
		go func() {
			v, err := term.ReadPassword(fd)
			ch <- result{v, err}
		}()
		select {
		case r := <-ch:
			fmt.Fprintln(c.Stderr)
			if r.err != nil {
				return "", fmt.Errorf("read value: %w", r.err)
			}
			b = r.b
		case <-ctx.Done():
			_ = term.Restore(fd, state)
			fmt.Fprintln(c.Stderr)
			return "", ctx.Err()
		}
	} else if c.Stdin != nil {
		// Room for a 64 KiB value and its "\r\n": more than that is too large.
		v, err := io.ReadAll(io.LimitReader(c.Stdin, custos.MaxValueBytes+2))
		if err != nil {
			return "", fmt.Errorf("read value from stdin: %w", err)
		}
		if n := len(v); n > 0 && v[n-1] == '\n' {
			v = v[:n-1]
			if n > 1 && v[n-2] == '\r' {
				v = v[:n-2]
			}
		}
		b = v
	}
	if len(b) > custos.MaxValueBytes {
		return "", custos.Errorf(custos.ETOOLARGE, "the value is larger than %d KiB", custos.MaxValueBytes>>10)
	}
	if len(b) == 0 {
		return "", errors.New(empty)
	}
	return string(b), nil
}

// #nosec G101 -- usage text, not a credential
const secretListUsage = `Usage: custos secret list [--project P] [--tag k=v]... [--json]

Lists secrets: NAME PROJECT VERSION TAGS EXPIRES ("expired" once past).
Without --project, every project. Never shows values.

Example:
  custos secret list --project shop --tag env=prod
  custos secret list --json
`

func (c *CLI) secretList(ctx context.Context, args []string) error {
	f := c.newFlags("secret list", secretListUsage)
	project := f.String("project", "", "only `PROJECT`")
	tags := tagsValue{}
	f.Var(tags, "tag", "only secrets tagged `k=v` (repeatable; all must match)")
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *project != "" {
		if err := f.validateProject(*project); err != nil {
			return err
		}
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	list, err := svc.Secrets.ListSecrets(ctx, custos.SecretFilter{Project: *project, Tags: tags})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	now := c.clock()
	t := newTable(c.Stdout, "NAME", "PROJECT", "VERSION", "TAGS", "EXPIRES")
	for _, s := range list {
		expires := fmtTimePtr(s.ExpiresAt)
		if s.Expired(now) {
			expires = "expired"
		}
		t.row(s.Name, s.Project, fmt.Sprint(s.Version), fmtTags(s.Tags, "-"), expires)
	}
	return t.flush()
}

// #nosec G101 -- usage text, not a credential
const secretInjectUsage = `Usage: custos secret inject NAME... [--project P]

Fetches the values (mode inject) and writes NAME=value lines to
SESSION_DIR/PROJECT.env (mode 0600; written atomically and merged with the
names already there), where SESSION_DIR is $CUSTOS_HOME/session or
~/.custos/session (mode 0700). Prints only the file's path, so it can be
sourced. Remove the files with 'custos session clear'.

Example:
  set -a; . "$(custos secret inject DATABASE_URL REDIS_URL --project api)"; set +a
`

func (c *CLI) secretInject(ctx context.Context, args []string) error {
	f := c.newFlags("secret inject", secretInjectUsage)
	project := f.String("project", custos.DefaultProject, "`PROJECT` of the secrets")
	pos, err := f.parse(args, 1, custos.MaxNamesPerRequest)
	if err != nil {
		return err
	}
	if err := f.validateProject(*project); err != nil {
		return err
	}
	var names namesValue
	for _, n := range pos {
		if err := f.validateName(n); err != nil {
			return err
		}
		_ = names.Set(n) // valid, and deduplicated
	}
	dir, err := c.sessionDir()
	if err != nil {
		return err
	}
	svc, err := c.client()
	if err != nil {
		return err
	}
	values, err := svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: *project, Names: names, Mode: custos.ModeInject})
	if err != nil {
		return err
	}
	got := make(map[string]string, len(values))
	for _, v := range values {
		got[v.Name] = v.Value
	}
	lines := make([]EnvLine, 0, len(names))
	for _, n := range names {
		v, ok := got[n]
		if !ok {
			return custos.Errorf(custos.ENOTFOUND, "secret %s/%s was not delivered", *project, n)
		}
		lines = append(lines, EnvLine{Key: n, Value: v})
	}
	path, err := writeInjected(dir, *project, lines)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.Stdout, path)
	return nil
}

// sessionDir returns the directory of injected files, $CUSTOS_HOME/session
// or ~/.custos/session.
func (c *CLI) sessionDir() (string, error) {
	if h := c.getenv("CUSTOS_HOME"); h != "" {
		return filepath.Join(c.abs(h), "session"), nil
	}
	if c.Home == "" {
		return "", errors.New("no home directory: set CUSTOS_HOME to a directory for custos's session files")
	}
	return filepath.Join(c.Home, ".custos", "session"), nil
}

// ensurePrivateDir creates dir (mode 0700) if needed and tightens its mode
// to 0700 if it is looser. It refuses a symlink or a non-directory.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create session dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("session dir %s is not a directory (a symlink?); remove it", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil { // #nosec G302 -- a directory needs its x bit; 0700 is owner-only
			return fmt.Errorf("session dir %s: %w", dir, err)
		}
	}
	return nil
}

// injectHeader starts every injected file.
const injectHeader = "# written by custos secret inject; delete with: custos session clear\n"

// writeInjected merges lines into dir/PROJECT.env: names already in the file
// keep their place and get the new value, new names are appended. The file
// is replaced atomically (a temp file in dir, then rename) with mode 0600,
// under an exclusive lock so concurrent injects do not lose each other's
// names. It returns the file's path.
func writeInjected(dir, project string, lines []EnvLine) (string, error) {
	if err := ensurePrivateDir(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, project+".env")
	lock, err := os.OpenFile(filepath.Join(dir, "."+project+".env.lock"), os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- project is validated
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", path, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil { // #nosec G115 -- file descriptors fit in int
		return "", fmt.Errorf("lock %s: %w", path, err)
	}

	var merged []EnvLine
	if old, err := os.Open(path); err == nil { // #nosec G304 -- project is validated
		merged, err = ParseEnv(old)
		_ = old.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w (delete it with: custos session clear)", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	index := make(map[string]int, len(merged))
	out := merged[:0]
	for _, l := range merged { // a repeated name keeps its first place and last value
		if i, ok := index[l.Key]; ok {
			out[i].Value = l.Value
			continue
		}
		index[l.Key] = len(out)
		out = append(out, l)
	}
	for _, l := range lines {
		if i, ok := index[l.Key]; ok {
			out[i].Value = l.Value
			continue
		}
		index[l.Key] = len(out)
		out = append(out, l)
	}

	var b strings.Builder
	b.WriteString(injectHeader)
	if err := FormatEnv(&b, out); err != nil {
		return "", err
	}
	if err := writeFileAtomic(dir, path, []byte(b.String())); err != nil {
		return "", err
	}
	return path, nil
}

// writeFileAtomic writes b to path through a 0600 temp file in dir and a
// rename, so readers see the old file or the new one, never a part.
func writeFileAtomic(dir, path string, b []byte) error {
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// #nosec G101 -- usage text, not a credential
const secretRevealUsage = `Usage: custos secret reveal NAME [--project P]

Prints the value of secret NAME and a newline (mode reveal; audited).

Example:
  custos secret reveal GITHUB_TOKEN | gh auth login --with-token
`

func (c *CLI) secretReveal(ctx context.Context, args []string) error {
	f := c.newFlags("secret reveal", secretRevealUsage)
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
	values, err := svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: *project, Names: pos, Mode: custos.ModeReveal})
	if err != nil {
		return err
	}
	for _, v := range values {
		if v.Name == pos[0] {
			_, err := io.WriteString(c.Stdout, v.Value+"\n")
			return err
		}
	}
	return custos.Errorf(custos.ENOTFOUND, "secret %s/%s was not delivered", *project, pos[0])
}

// #nosec G101 -- usage text, not a credential
const secretRmUsage = `Usage: custos secret rm NAME [--project P]

Deletes secret NAME and every version of it. Prints "deleted PROJECT/NAME".

Example:
  custos secret rm OLD_TOKEN --project shop
`

func (c *CLI) secretRemove(ctx context.Context, args []string) error {
	f := c.newFlags("secret rm", secretRmUsage)
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
	if err := svc.Secrets.DeleteSecret(ctx, *project, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "deleted %s/%s\n", *project, pos[0])
	return nil
}

// #nosec G101 -- usage text, not a credential
const secretHistoryUsage = `Usage: custos secret history NAME [--project P] [--json]

Lists the versions of secret NAME, newest first: VERSION CREATED BY EXPIRES
(BY is the id of the key that set it). Never shows values.

Example:
  custos secret history GITHUB_TOKEN
`

func (c *CLI) secretHistory(ctx context.Context, args []string) error {
	f := c.newFlags("secret history", secretHistoryUsage)
	project := f.String("project", custos.DefaultProject, "`PROJECT` of the secret")
	asJSON := f.Bool("json", false, "print a JSON array")
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
	versions, err := svc.Secrets.SecretHistory(ctx, *project, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, versions)
	}
	t := newTable(c.Stdout, "VERSION", "CREATED", "BY", "EXPIRES")
	for _, v := range versions {
		t.row(fmt.Sprint(v.Version), fmtTime(v.CreatedAt), v.CreatedBy, fmtTimePtr(v.ExpiresAt))
	}
	return t.flush()
}
