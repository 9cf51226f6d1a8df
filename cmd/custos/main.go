// Command custos is the custos trust gateway: the server (custos serve) and
// the command line that talks to it (secrets, devices, policies, audit, …).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/custos-dev/custos"
)

func main() {
	// SIGINT and SIGTERM cancel ctx instead of killing the process, so a
	// command can finish cleanly; `custos run` forwards them to its child.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := NewCLI().Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// CLI is the custos command line; main() and tests drive it the same way.
type CLI struct {
	Stdin                 io.Reader
	Stdout, Stderr        io.Writer
	Getenv                func(string) string
	Dir                   string // working directory (for .custosrc / .mcp.json discovery)
	Home                  string // home directory
	Hostname, MachineUser string // device identity sent with every call

	agent    string           // --agent, CUSTOS_AGENT or "cli"
	now      func() time.Time // nil means time.Now
	services *Services        // tests: used instead of connecting to a server
}

// NewCLI returns a CLI on the process's real environment: standard streams,
// working and home directories, hostname and OS user.
func NewCLI() *CLI {
	dir, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	host, _ := os.Hostname()
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return &CLI{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Dir: dir, Home: home,
		Hostname: sanitizeLabel(host), MachineUser: sanitizeLabel(name),
	}
}

// sanitizeLabel makes s acceptable to custos.ValidateLabel, so an unusual
// hostname or user name (a long FQDN, DOMAIN\user) does not lock the CLI
// out: other characters become '-', and it is cut to 64 bytes.
func sanitizeLabel(s string) string {
	b := []byte(s)
	for i, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			i > 0 && strings.IndexByte(" ._@+-", ch) >= 0
		if !ok {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) > 0 && b[0] == '-' {
		b[0] = 'x'
	}
	return string(b)
}

// defaultAgent is the agent name when neither --agent nor CUSTOS_AGENT is set.
const defaultAgent = "cli"

const mainUsage = `custos — a self-hosted trust gateway for AI coding agents

Usage:
  custos [--agent NAME] COMMAND [ARGS] [FLAGS]

Commands:
  serve     run the custos server
  admin     offline administration of a data dir
  secret    set, list, inject, reveal and remove secrets
  run       run a command with secrets in its environment
  mcp       serve custos's tools to a coding agent over MCP
  redact    remove secrets and personal data from text (a filter; offline)
  context   pack files for a prompt: ignore files, budget, redaction
  session   wake or end a session; clear injected files
  confirm   acknowledge a secret guarded by a require_confirmation policy
  key       create, list, rotate and revoke API keys
  device    list, approve, deny and revoke devices
  policy    add, list and remove policies
  audit     list, verify and export the audit log
  provider  add, list and remove the model gateway's providers
  budget    set, list and remove token budgets
  privacy   set, list and remove privacy modes
  usage     show the model gateway's usage (metadata only)
  tracker   create, list and revoke tracker app installs
  task      launch links, task permits, artifacts of runs, purge
  version   print the version
  help      show help for a command

Global flags (also accepted after the command):
  --agent NAME   agent name sent with every call (CUSTOS_AGENT; default cli)

Environment:
  CUSTOS_URL           server URL (default http://127.0.0.1:8080)
  CUSTOS_API_KEY       API key; or CUSTOS_API_KEY_FILE (a file holding it),
                       .custosrc (mode 0600) or .mcp.json in the current
                       directory, then in your home directory
  CUSTOS_AGENT         agent name (default cli)
  CUSTOS_AI_MODEL      the model on whose behalf the call is made
  CUSTOS_HOME          where injected files go (default ~/.custos)

Example:
  custos serve &
  export CUSTOS_API_KEY=$(cat custos-data/owner.key)
  printf %s "$GITHUB_TOKEN" | custos secret set GITHUB_TOKEN --tag env=prod
  custos run -- npm test

Run 'custos help COMMAND' (or 'custos COMMAND --help') for details.
`

// commands maps each top-level command to its handler.
var commands = map[string]func(*CLI, context.Context, []string) error{
	"serve":    (*CLI).runServe,
	"admin":    (*CLI).runAdmin,
	"secret":   (*CLI).runSecret,
	"run":      (*CLI).runRun,
	"mcp":      (*CLI).runMCP,
	"redact":   (*CLI).runRedact,
	"context":  (*CLI).runContext,
	"session":  (*CLI).runSession,
	"confirm":  (*CLI).runConfirm,
	"key":      (*CLI).runKey,
	"device":   (*CLI).runDevice,
	"policy":   (*CLI).runPolicy,
	"audit":    (*CLI).runAudit,
	"provider": (*CLI).runProvider,
	"budget":   (*CLI).runBudget,
	"privacy":  (*CLI).runPrivacy,
	"usage":    (*CLI).runUsage,
	"tracker":  (*CLI).runTracker,
	"task":     (*CLI).runTask,
	"version":  (*CLI).runVersion,
}

// Run runs the command in args (without the program name) and returns the
// exit code: 0 ok, 1 error, 2 usage error; `custos run` returns its child's.
func (c *CLI) Run(ctx context.Context, args []string) int {
	return c.exit(ctx, c.run(ctx, args))
}

func (c *CLI) run(ctx context.Context, args []string) error {
	c.agent = defaultAgent
	if a := c.getenv("CUSTOS_AGENT"); a != "" {
		c.agent = a
	}
	fs := flag.NewFlagSet("custos", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.agent, "agent", c.agent, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{mainUsage}
		}
		return &usageError{err.Error(), mainUsage}
	}
	args = fs.Args()
	if len(args) == 0 {
		return &usageError{"no command given", mainUsage}
	}
	name, args := args[0], args[1:]
	if name == "help" {
		if len(args) == 0 {
			return &helpRequest{mainUsage}
		}
		// custos help X Y is custos X Y --help.
		name, args = args[0], append(args[1:len(args):len(args)], "--help")
	}
	cmd, ok := commands[name]
	if !ok {
		return &usageError{fmt.Sprintf("unknown command %q", name), mainUsage}
	}
	return cmd(c, ctx, args)
}

// dispatch runs the subcommand of group named by args[0].
func (c *CLI) dispatch(ctx context.Context, group, usage string, args []string, subs map[string]func(*CLI, context.Context, []string) error) error {
	if len(args) == 0 {
		return &usageError{"custos " + group + ": missing command", usage}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		return &helpRequest{usage}
	}
	sub, ok := subs[args[0]]
	if !ok {
		return &usageError{fmt.Sprintf("unknown command %q for custos %s", clip(args[0], 40), group), usage}
	}
	return sub(c, ctx, args[1:])
}

// helpRequest is returned when the user asks for help: the text goes to
// stdout and the exit code is 0.
type helpRequest struct{ usage string }

func (h *helpRequest) Error() string { return "help requested" }

// usageError is a command-line mistake: the message and the usage go to
// stderr and the exit code is 2.
type usageError struct{ msg, usage string }

func (e *usageError) Error() string { return e.msg }

// exitCode ends the program with the given code and no message (for
// example the exit code of the child of `custos run`).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit reports err and returns the exit code for it.
func (c *CLI) exit(ctx context.Context, err error) int {
	var (
		help  *helpRequest
		usage *usageError
		code  exitCode
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		fmt.Fprint(c.Stdout, help.usage)
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(c.Stderr, "custos: %s\n\n%s", usage.msg, usage.usage)
		return 2
	case errors.As(err, &code):
		return int(code)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(c.Stderr, "custos: interrupted")
		return 130
	}
	fmt.Fprintf(c.Stderr, "custos: %s\n", errorText(err))
	return 1
}

// errorText is the message for err: a *custos.Error's message with its code
// in brackets, or the error's text.
func errorText(err error) string {
	var e *custos.Error
	if errors.As(err, &e) {
		return e.Message + " [" + e.Code + "]"
	}
	return err.Error()
}

func (c *CLI) getenv(name string) string {
	if c.Getenv == nil {
		return ""
	}
	return c.Getenv(name)
}

func (c *CLI) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

const versionUsage = `Usage: custos version

Prints the version of this custos binary.

Example:
  custos version
`

func (c *CLI) runVersion(_ context.Context, args []string) error {
	f := c.newFlags("version", versionUsage)
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "custos %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
