package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/custos-dev/custos"
)

const runUsage = `Usage: custos run [--project P] [--only NAME]... [--env-file FILE] -- CMD [ARGS...]

Runs CMD with your environment plus secrets (which override variables of
the same name). Nothing is written to disk. Stdin, stdout and stderr are
CMD's; SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on
to it, and custos exits with CMD's exit code (128+N if signal N killed it).

Which secrets (mode run):
  without --env-file   every secret of --project, or only the --only names
  --env-file FILE      a .env template: KEY=custos://PROJECT/NAME lines get
                       that secret's value, other KEY=value lines are passed
                       as they are; --project's secrets are added only if
                       --project or --only is given as well

Example:
  custos run --project api -- npm test
  custos run --only DATABASE_URL -- ./migrate up
  custos run --env-file .env.custos -- docker compose up
`

// forwardedSignals are passed on to the child of `custos run`.
var forwardedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
}

// refPrefix starts a secret reference in an env-file template.
const refPrefix = "custos://"

// envRef is a template line KEY=custos://PROJECT/NAME.
type envRef struct{ project, name string }

func (c *CLI) runRun(ctx context.Context, args []string) error {
	f := c.newFlags("run", runUsage)
	project := f.String("project", custos.DefaultProject, "fetch the secrets of `PROJECT`")
	var only namesValue
	f.Var(&only, "only", "fetch only secret `NAME` (repeatable)")
	envFile := f.String("env-file", "", "resolve the .env template `FILE`")
	// Flags end at CMD: what follows it is CMD's.
	if err := f.Parse(args); err != nil {
		return f.flagError(err)
	}
	argv := f.Args()
	if err := f.check(argv, 0, -1); err != nil {
		return err
	}
	if len(argv) == 0 {
		return f.usageErr("missing command: custos run [flags] -- CMD [ARGS...]")
	}
	if err := f.validateProject(*project); err != nil {
		return err
	}
	projectGiven := false
	f.Visit(func(fl *flag.Flag) { projectGiven = projectGiven || fl.Name == "project" })

	var tmpl []EnvLine
	refs := map[int]envRef{} // by index in tmpl
	if *envFile != "" {
		var err error
		if tmpl, refs, err = c.readTemplate(*envFile); err != nil {
			return err
		}
	}
	svc, err := c.client()
	if err != nil {
		return err
	}

	secrets := map[string]string{}
	if *envFile == "" || projectGiven || len(only) > 0 {
		values, err := svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: *project, Names: only, Mode: custos.ModeRun})
		if err != nil {
			return err
		}
		for _, v := range values {
			secrets[v.Name] = v.Value
		}
		for _, n := range only {
			if _, ok := secrets[n]; !ok {
				return custos.Errorf(custos.ENOTFOUND, "secret %s/%s was not delivered", *project, n)
			}
		}
	}
	resolved, err := resolveRefs(ctx, svc, refs)
	if err != nil {
		return err
	}
	for i, l := range tmpl { // the template overrides --project's secrets
		if r, ok := refs[i]; ok {
			secrets[l.Key] = resolved[r]
		} else {
			secrets[l.Key] = l.Value
		}
	}
	return c.execChild(argv, mergeEnv(os.Environ(), secrets))
}

// readTemplate parses an env-file template and validates its references.
func (c *CLI) readTemplate(path string) ([]EnvLine, map[int]envRef, error) {
	fh, err := os.Open(c.abs(path)) // #nosec G304 -- the user names the file
	if err != nil {
		return nil, nil, fmt.Errorf("--env-file: %w", err)
	}
	defer fh.Close()
	lines, err := ParseEnv(fh)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	refs := map[int]envRef{}
	for i, l := range lines {
		if !strings.HasPrefix(l.Value, refPrefix) {
			continue
		}
		p, n, ok := strings.Cut(l.Value[len(refPrefix):], "/")
		var msg string
		switch {
		case !ok:
			msg = "want custos://PROJECT/NAME"
		case custos.ValidateProject(p) != nil:
			msg = custos.ErrorMessage(custos.ValidateProject(p))
		case custos.ValidateName(n) != nil:
			msg = custos.ErrorMessage(custos.ValidateName(n))
		}
		if msg != "" {
			return nil, nil, fmt.Errorf("%s: line %d: invalid reference %q: %s", path, l.Line, clip(l.Value, 80), msg)
		}
		refs[i] = envRef{p, n}
	}
	return lines, refs, nil
}

// resolveRefs fetches the referenced secrets with one access call per
// project (mode run).
func resolveRefs(ctx context.Context, svc *Services, refs map[int]envRef) (map[envRef]string, error) {
	byProject := map[string][]string{}
	seen := map[envRef]bool{}
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			byProject[r.project] = append(byProject[r.project], r.name)
		}
	}
	projects := make([]string, 0, len(byProject))
	for p := range byProject {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	out := make(map[envRef]string, len(seen))
	for _, p := range projects {
		names := byProject[p]
		sort.Strings(names)
		if len(names) > custos.MaxNamesPerRequest {
			return nil, fmt.Errorf("the template references %d secrets of project %s (at most %d)", len(names), p, custos.MaxNamesPerRequest)
		}
		values, err := svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: p, Names: names, Mode: custos.ModeRun})
		if err != nil {
			return nil, err
		}
		for _, v := range values {
			out[envRef{p, v.Name}] = v.Value
		}
		for _, n := range names {
			if _, ok := out[envRef{p, n}]; !ok {
				return nil, custos.Errorf(custos.ENOTFOUND, "secret %s/%s was not delivered", p, n)
			}
		}
	}
	return out, nil
}

// mergeEnv returns base with the variables of over set (replacing any of
// the same name).
func mergeEnv(base []string, over map[string]string) []string {
	env := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := over[k]; !ok {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+over[k])
	}
	return env
}

// execChild runs argv with env, forwarding signals, and returns its exit
// code as an exitCode (nil for 0).
func (c *CLI) execChild(argv, env []string) error {
	cmd := exec.Command(argv[0], argv[1:]...) // #nosec G204 -- running the user's command is the point
	cmd.Env = env
	cmd.Dir = c.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, c.Stdout, c.Stderr

	// Take the signals before the child exists, so none is lost or kills us.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		fmt.Fprintf(c.Stderr, "custos: run: %v\n", err)
		return exitCode(code)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("run: %w", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitCode(128 + int(ws.Signal()))
	}
	return exitCode(ee.ExitCode())
}
