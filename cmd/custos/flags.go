package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/custos-dev/custos"
)

// parseArgs parses args with fs, allowing flags before and after positional
// arguments (custos secret set NAME --tag env=prod). "--" ends flag parsing:
// everything after it is positional. It returns the positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos := []string{}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if endsWithTerminator(fs, args[:len(args)-len(rest)]) {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// endsWithTerminator reports whether the arguments fs.Parse consumed end
// with a "--" that stopped parsing, rather than a "--" given as a flag's
// value (--description --).
func endsWithTerminator(fs *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		a := consumed[i]
		if a == "--" {
			return true
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++ // the next argument is this flag's value
			}
		}
	}
	return false
}

// cmdFlags is the flag set of one command with its help text.
type cmdFlags struct {
	*flag.FlagSet
	cli   *CLI
	usage string // usage line, description and examples; the flags are appended
}

// newFlags returns the flag set of command name ("secret set"), with the
// global --agent flag registered.
func (c *CLI) newFlags(name, usage string) *cmdFlags {
	fs := flag.NewFlagSet("custos "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.agent, "agent", c.agent, "agent `NAME` sent with every call (CUSTOS_AGENT)")
	return &cmdFlags{FlagSet: fs, cli: c, usage: usage}
}

// help returns the command's full help: its usage text and its flags.
func (f *cmdFlags) help() string {
	var b strings.Builder
	b.WriteString(f.usage)
	b.WriteString("\nFlags:\n")
	f.VisitAll(func(fl *flag.Flag) {
		name, usage := flag.UnquoteUsage(fl)
		left := "  --" + fl.Name
		if name != "" {
			left += " " + name
		}
		if fl.Name == "agent" {
			usage = "agent name sent with every call (CUSTOS_AGENT; default cli)"
		} else if fl.DefValue != "" && fl.DefValue != "false" {
			usage += " (default " + fl.DefValue + ")"
		}
		if len(left) < 24 {
			fmt.Fprintf(&b, "%-24s %s\n", left, usage)
		} else {
			fmt.Fprintf(&b, "%s\n%24s %s\n", left, "", usage)
		}
	})
	return b.String()
}

// usageErr returns a usage error for this command.
func (f *cmdFlags) usageErr(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...), f.help()}
}

// parse parses args (flags anywhere, see parseArgs) and checks that there
// are between min and max positional arguments (max < 0: no limit).
func (f *cmdFlags) parse(args []string, min, max int) ([]string, error) {
	pos, err := parseArgs(f.FlagSet, args)
	if err != nil {
		return nil, f.flagError(err)
	}
	return pos, f.check(pos, min, max)
}

// flagError maps an error of fs.Parse to a help request or a usage error.
func (f *cmdFlags) flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return &helpRequest{f.help()}
	}
	return f.usageErr("%s", strings.Replace(err.Error(), " -", " --", 1))
}

// check validates the global flags and the number of positional arguments.
func (f *cmdFlags) check(pos []string, min, max int) error {
	if err := custos.ValidateLabel("agent", f.cli.agent); err != nil {
		return f.usageErr("--agent: %s", custos.ErrorMessage(err))
	}
	switch {
	case len(pos) < min:
		return f.usageErr("missing argument")
	case max >= 0 && len(pos) > max:
		return f.usageErr("unexpected argument %q", clip(pos[max], 40))
	}
	return nil
}

// clip shortens s for a message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// tagsValue is a repeatable --tag k=v flag.
type tagsValue map[string]string

// String implements flag.Value.
func (t tagsValue) String() string { return fmtTags(t, "") }

// Set implements flag.Value: it adds one k=v tag.
func (t tagsValue) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want key=value, e.g. env=prod")
	}
	if err := custos.ValidateTag(k, v); err != nil {
		return errors.New(custos.ErrorMessage(err))
	}
	if old, dup := t[k]; dup && old != v {
		return fmt.Errorf("tag %q given twice", k)
	}
	if len(t) >= custos.MaxTags {
		return fmt.Errorf("too many tags (at most %d)", custos.MaxTags)
	}
	t[k] = v
	return nil
}

// fmtTags formats tags as sorted k=v pairs joined by commas, or empty.
func fmtTags(tags map[string]string, empty string) string {
	if len(tags) == 0 {
		return empty
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + tags[k]
	}
	return strings.Join(keys, ",")
}

// namesValue is a repeatable flag of secret names (--only NAME).
type namesValue []string

// String implements flag.Value.
func (n *namesValue) String() string { return strings.Join(*n, ",") }

// Set implements flag.Value: it adds one valid secret name.
func (n *namesValue) Set(s string) error {
	if err := custos.ValidateName(s); err != nil {
		return errors.New(custos.ErrorMessage(err))
	}
	for _, have := range *n {
		if have == s {
			return nil
		}
	}
	if len(*n) >= custos.MaxNamesPerRequest {
		return fmt.Errorf("too many names (at most %d)", custos.MaxNamesPerRequest)
	}
	*n = append(*n, s)
	return nil
}

// durationValue is a duration flag that also accepts days ("7d").
type durationValue time.Duration

// String implements flag.Value.
func (d *durationValue) String() string { return fmtDuration(time.Duration(*d)) }

// Set implements flag.Value.
func (d *durationValue) Set(s string) error {
	v, err := custos.ParseDuration(s)
	if err != nil {
		return errors.New(custos.ErrorMessage(err))
	}
	*d = durationValue(v)
	return nil
}

// fmtDuration formats d without trailing zero units ("48h", "30m", "1h30m"),
// or "" for zero.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// validateProject checks a --project flag's value.
func (f *cmdFlags) validateProject(p string) error {
	if err := custos.ValidateProject(p); err != nil {
		return f.usageErr("--project: %s", custos.ErrorMessage(err))
	}
	return nil
}

// validateName checks a NAME argument.
func (f *cmdFlags) validateName(n string) error {
	if err := custos.ValidateName(n); err != nil {
		return f.usageErr("%s", custos.ErrorMessage(err))
	}
	return nil
}

// validateID checks an ID argument with the given prefix (key, dev, pol).
func (f *cmdFlags) validateID(prefix, id string) error {
	if err := custos.ValidateID(prefix, id); err != nil {
		return f.usageErr("%s", custos.ErrorMessage(err))
	}
	return nil
}
