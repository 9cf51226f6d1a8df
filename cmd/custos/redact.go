package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pack"
	"github.com/custos-dev/custos/redact/pii"
)

const redactUsage = `Usage: custos redact [FILE...] [--format text|json] [--fail-on-find]

Writes each FILE (standard input when none) to standard output with secrets
and personal data replaced by placeholders such as [[SECRET_1]] and
[[EMAIL_1]]. Every other byte is left as it is. Works offline: no server, no
key.

With --format json it prints the findings instead: file, kind, rule id, byte
offsets and placeholder — never the matched value. The exit code is 0
whatever was found (a filter); --fail-on-find exits 1 when anything was
found, for pre-commit hooks.

Example:
  git diff --cached | custos redact --fail-on-find --format json
  custos redact app.log > app.redacted.log
`

const contextUsage = `Usage: custos context [PATHS...] [--budget TOKENS] [--max-bytes N] [--format text|json]

Packs files for a prompt: walks PATHS (default .), honours .custosignore and
.gitignore (gitignore syntax, nested files, negation), skips binaries,
enforces a token budget and a per-file and total size limit, redacts every
file, and prints the packed context. A report on standard error lists what
was excluded and why, and the redactions per file.

Example:
  custos context src/ docs/ --budget 60000 > context.txt
  custos context --format json | jq '.excluded'
`

// redactFlags are the detection switches shared by redact and context.
type redactFlags struct {
	pii        *string
	privateIPs *bool
}

func addRedactFlags(f *cmdFlags) redactFlags {
	return redactFlags{
		pii:        f.String("pii", "all", "personal data `KINDS` to find: all, none, or a list of email,phone,card,iban,ssn,ip"),
		privateIPs: f.Bool("private-ips", false, "also redact private, loopback and link-local IP addresses"),
	}
}

// engine builds the redaction engine the flags ask for.
func (r redactFlags) engine(f *cmdFlags) (*redact.Engine, error) {
	pc := pii.DefaultConfig()
	pc.PrivateIPs = *r.privateIPs
	switch v := strings.ToLower(strings.TrimSpace(*r.pii)); v {
	case "all":
	case "none", "":
		pc = pii.Config{PhoneRegion: pc.PhoneRegion}
	default:
		pc = pii.Config{PrivateIPs: pc.PrivateIPs, PhoneRegion: pc.PhoneRegion}
		for _, k := range strings.Split(v, ",") {
			switch strings.TrimSpace(k) {
			case "email":
				pc.Email = true
			case "phone":
				pc.Phone = true
			case "card":
				pc.Card = true
			case "iban":
				pc.IBAN = true
			case "ssn":
				pc.SSN = true
			case "ip":
				pc.IP = true
			default:
				return nil, f.usageErr("--pii: unknown kind %q (use email, phone, card, iban, ssn, ip, all or none)", clip(k, 20))
			}
		}
	}
	cfg := redact.DefaultConfig()
	cfg.Detectors = pii.Detectors(pc)
	return redact.New(cfg)
}

func (c *CLI) runRedact(ctx context.Context, args []string) error {
	f := c.newFlags("redact", redactUsage)
	format := f.String("format", "text", "output `FORMAT`: text (the redacted input) or json (the findings)")
	failOnFind := f.Bool("fail-on-find", false, "exit 1 when anything was found")
	rf := addRedactFlags(f)
	files, err := f.parse(args, 0, -1)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return f.usageErr("--format: use text or json")
	}
	eng, err := rf.engine(f)
	if err != nil {
		return err
	}
	type fileFindings struct {
		File     string           `json:"file"`
		Findings []redact.Finding `json:"findings"`
	}
	var report []fileFindings
	found := 0
	do := func(name string, src []byte) error {
		ses := eng.NewSession()
		out, fs := ses.Redact(src)
		found += len(fs)
		if *format == "json" {
			if fs == nil {
				fs = []redact.Finding{}
			}
			report = append(report, fileFindings{File: name, Findings: fs})
			return nil
		}
		_, err := c.Stdout.Write(out)
		return err
	}
	if len(files) == 0 {
		src, err := io.ReadAll(io.LimitReader(c.Stdin, maxRedactInput+1))
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		} else if len(src) > maxRedactInput {
			return fmt.Errorf("standard input is larger than %d MB", maxRedactInput>>20)
		}
		if err := do("-", src); err != nil {
			return err
		}
	}
	for _, name := range files {
		src, err := readLimited(name, maxRedactInput)
		if err != nil {
			return err
		}
		if err := do(name, src); err != nil {
			return err
		}
	}
	if *format == "json" {
		if report == nil {
			report = []fileFindings{}
		}
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	}
	if *failOnFind && found > 0 {
		fmt.Fprintf(c.Stderr, "custos: %d finding(s)\n", found)
		return exitCode(1)
	}
	return nil
}

// maxRedactInput bounds what custos redact reads from one file or stdin.
const maxRedactInput = 256 << 20

// readLimited reads the file at name, refusing more than limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	fh, err := os.Open(name) // #nosec G304 -- the user names the file to redact
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	} else if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d MB", name, limit>>20)
	}
	return b, nil
}

func (c *CLI) runContext(ctx context.Context, args []string) error {
	f := c.newFlags("context", contextUsage)
	budget := f.Int("budget", 120000, "token `BUDGET` of the packed context")
	maxBytes := f.Int64("max-bytes", 1<<20, "size limit in `BYTES`, per file and in total")
	format := f.String("format", "text", "output `FORMAT`: text or json")
	rf := addRedactFlags(f)
	paths, err := f.parse(args, 0, -1)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return f.usageErr("--format: use text or json")
	} else if *budget <= 0 {
		return f.usageErr("--budget: must be positive")
	} else if *maxBytes <= 0 {
		return f.usageErr("--max-bytes: must be positive")
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	eng, err := rf.engine(f)
	if err != nil {
		return err
	}
	opts := pack.Options{Budget: *budget, MaxBytes: *maxBytes,
		Redactor: func(_ string, src []byte) ([]byte, []redact.Finding) { return eng.NewSession().Redact(src) }}
	if fd, ok := c.Stderr.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(fd.Fd())) { // #nosec G115 -- file descriptors fit in int
		opts.Progress = func(done, total int) { drawProgress(c.Stderr, done, total) }
	}
	res, err := pack.Pack(paths, opts)
	if opts.Progress != nil {
		fmt.Fprint(c.Stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if *format == "json" {
		err = pack.WriteJSON(c.Stdout, res)
	} else {
		err = pack.WriteText(c.Stdout, res)
	}
	if err != nil {
		return err
	}
	return pack.WriteReport(c.Stderr, res)
}

// drawProgress draws a one-line progress bar on a terminal.
func drawProgress(w io.Writer, done, total int) {
	if total <= 0 {
		return
	}
	const width = 30
	n := done * width / total
	fmt.Fprintf(w, "\r[%s%s] %d/%d files", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}
