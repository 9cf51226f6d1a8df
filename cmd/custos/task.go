package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
	"github.com/custos-dev/custos/tasks"
	"github.com/custos-dev/custos/token"
)

const taskUsage = `Usage: custos task COMMAND [ARGS] [FLAGS]

Works on one tracker task with a task permit (cst_pm_…): a launch link
from the tracker is exchanged once for a permit bound to that project and
task, kept in a 0600 file under your config directory; uploads are
encrypted, and purged 48 h after the task completes. See docs/TASKS.md.

Commands:
  launch --project P --task T   play the tracker app: mint a launch link
                                (install token from CUSTOS_TRACKER_TOKEN)
  open LINK|CODE                exchange a launch link for the task's permit
  upload --task T FILE...       upload files as artifacts of a run
  list --task T [--run R]       list a run's artifacts (default: your
                                current run)
  download --task T --run R NAME
                                download an artifact
  complete --task T [--run R]   complete a run, or the task
  purge [--dry-run]             purge expired and replaced artifacts now
                                (offline, like custos admin)

Example:
  export CUSTOS_TRACKER_TOKEN=$(cat jira-prod.token)
  custos task launch --project PROJ --task PROJ-42
  custos task open 'custos://launch?code=cst_lc_…&project=PROJ&task=PROJ-42'
  custos task upload --task PROJ-42 main.go notes.md
  custos task download --task PROJ-42 --run run_… main.go -o -
  custos task complete --task PROJ-42
`

func (c *CLI) runTask(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "task", taskUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"launch":   (*CLI).taskLaunch,
		"open":     (*CLI).taskOpen,
		"upload":   (*CLI).taskUpload,
		"list":     (*CLI).taskList,
		"download": (*CLI).taskDownload,
		"complete": (*CLI).taskComplete,
		"purge":    (*CLI).taskPurge,
	})
}

// validateRef checks a --project or --task value (what names the flag).
func (f *cmdFlags) validateRef(what, v string) error {
	if err := custos.ValidateRef(what, v); err != nil {
		return f.usageErr("--%s: %s", what, custos.ErrorMessage(err))
	}
	return nil
}

// #nosec G101 -- usage text, not a credential
const taskLaunchUsage = `Usage: custos task launch --project P --task T [--ttl D] [--install-token-file FILE] [--json]

Plays the tracker app, for scripts and demos: with a tracker install token
it starts a request key chain (POST /v1/tracker/request-key), spends the
first key on POST /v1/security/launch-link, and prints the one-time launch
code, its custos:// link and its https URL. No API key is needed.

The install token (cst_ti_…, from custos tracker install) comes from
CUSTOS_TRACKER_TOKEN, CUSTOS_TRACKER_TOKEN_FILE or --install-token-file,
never from a flag value. --ttl is how long the code can be exchanged: 1d
to 14d (default 7d).

Example:
  CUSTOS_TRACKER_TOKEN=$(cat jira-prod.token) custos task launch --project PROJ --task PROJ-42
  custos task launch --project PROJ --task PROJ-42 --ttl 2d --install-token-file jira-prod.token
`

func (c *CLI) taskLaunch(ctx context.Context, args []string) error {
	f := c.newFlags("task launch", taskLaunchUsage)
	project := f.String("project", "", "tracker `PROJECT` id (required)")
	task := f.String("task", "", "tracker `TASK` id (required)")
	var ttl durationValue
	f.Var(&ttl, "ttl", "the code can be exchanged for `D`: 1d to 14d (default 7d)")
	tokenFile := f.String("install-token-file", "", "read the install token from `FILE` (default CUSTOS_TRACKER_TOKEN)")
	asJSON := f.Bool("json", false, "print the launch link as JSON")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	switch {
	case *project == "":
		return f.usageErr("--project is required")
	case *task == "":
		return f.usageErr("--task is required")
	}
	if err := f.validateRef("project", *project); err != nil {
		return err
	}
	if err := f.validateRef("task", *task); err != nil {
		return err
	}
	if d := time.Duration(ttl); d != 0 && (d < custos.MinLaunchTTL || d > custos.MaxLaunchTTL) {
		return f.usageErr("--ttl: a launch link lives from 1d to 14d")
	}
	install, err := c.installToken(f, *tokenFile)
	if err != nil {
		return err
	}
	api, _, err := c.taskClient()
	if err != nil {
		return err
	}
	g, err := api.StartTrackerSession(ctx, install)
	if err != nil {
		return err
	}
	link, _, err := api.CreateLaunchLink(ctx, install, g.RequestKey, custos.LaunchLinkInput{ProjectID: *project, TaskID: *task, TTL: custos.Duration(ttl)})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONValue(c.Stdout, link)
	}
	fmt.Fprintf(c.Stdout, "code     %s\n", link.Code)
	fmt.Fprintf(c.Stdout, "link     %s\n", link.Link)
	if link.URL != "" {
		fmt.Fprintf(c.Stdout, "url      %s\n", link.URL)
	}
	fmt.Fprintf(c.Stdout, "expires  %s\n", fmtTime(link.ExpiresAt))
	fmt.Fprintf(c.Stderr, "The code works once, for project %s task %s, and is shown only now. Open it with: custos task open LINK\n", cell(link.ProjectID), cell(link.TaskID))
	return nil
}

// installToken reads the tracker install token from file, else
// CUSTOS_TRACKER_TOKEN, else CUSTOS_TRACKER_TOKEN_FILE, and checks its shape.
func (c *CLI) installToken(f *cmdFlags, file string) (string, error) {
	from := "--install-token-file"
	var tok string
	switch {
	case file != "":
		b, err := readSmallFile(c.abs(file), 4<<10)
		if err != nil {
			return "", f.usageErr("--install-token-file: %v", err)
		}
		tok = string(b)
	case c.getenv("CUSTOS_TRACKER_TOKEN") != "":
		tok, from = c.getenv("CUSTOS_TRACKER_TOKEN"), "CUSTOS_TRACKER_TOKEN"
	case c.getenv("CUSTOS_TRACKER_TOKEN_FILE") != "":
		from = "CUSTOS_TRACKER_TOKEN_FILE"
		b, err := readSmallFile(c.abs(c.getenv("CUSTOS_TRACKER_TOKEN_FILE")), 4<<10)
		if err != nil {
			return "", f.usageErr("CUSTOS_TRACKER_TOKEN_FILE: %v", err)
		}
		tok = string(b)
	default:
		return "", f.usageErr("no tracker install token: set CUSTOS_TRACKER_TOKEN (or CUSTOS_TRACKER_TOKEN_FILE), or give --install-token-file FILE; create one with custos tracker install --name NAME")
	}
	tok = strings.TrimSpace(tok)
	if err := token.Check(tok, token.PrefixTrackerInstall); err != nil {
		return "", f.usageErr("%s: %s", from, custos.ErrorMessage(err))
	}
	return tok, nil
}

// ---- permits on disk ----

// permitFile is a permit as custos task open keeps it: a 0600 JSON file
// per server, project and task.
type permitFile struct {
	Server string `json:"server"`
	custos.PermitGrant
	Run  string `json:"run,omitempty"` // the run custos task upload started
	path string
}

// permitsDir is where permits for server go: under the user's config dir
// ($XDG_CONFIG_HOME, else ~/.config), one directory per server host.
func (c *CLI) permitsDir(server string) (string, error) {
	base := c.getenv("XDG_CONFIG_HOME")
	if base == "" || !filepath.IsAbs(base) {
		if c.Home == "" {
			return "", errors.New("no home directory to keep permits in: set XDG_CONFIG_HOME")
		}
		base = filepath.Join(c.Home, ".config")
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("invalid server URL %q", clip(server, 80))
	}
	host := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(u.Host))
	return filepath.Join(base, "custos", "permits", host), nil
}

// permitPath is the file of project's task's permit for server. Project
// and task are valid refs, so they are safe file names.
func (c *CLI) permitPath(server, project, task string) (string, error) {
	dir, err := c.permitsDir(server)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, project, task+".json"), nil
}

// preparePermitDir creates the directories of path 0700 and refuses a
// symlink where the permit or its directory would be.
func preparePermitDir(p string) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create permit directory: %w", err)
	}
	for _, q := range []string{dir, filepath.Dir(dir)} {
		fi, err := os.Lstat(q)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			return fmt.Errorf("refusing to keep a permit in %s: it is a symlink or not a directory", q)
		}
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("refusing to write the permit to %s: it is a symlink or not a regular file", p)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writePermit writes pf to its path, 0600, atomically.
func writePermit(pf *permitFile) error {
	if err := preparePermitDir(pf.path); err != nil {
		return err
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Dir(pf.path), pf.path, append(b, '\n'))
}

// readPermit reads the permit file at p, refusing a symlink or a file
// others may read.
func readPermit(p string) (*permitFile, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("refusing to read the permit %s: it is a symlink or not a regular file", p)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("the permit %s is accessible by group or others (mode %04o); run: chmod 600 %s", p, perm, p)
	}
	b, err := readSmallFile(p, 64<<10)
	if err != nil {
		return nil, err
	}
	var pf permitFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return nil, fmt.Errorf("the permit %s is damaged: %s; open the launch link again", p, jsonErrorText(b, err))
	}
	if token.Check(pf.Permit, token.PrefixPermit) != nil {
		return nil, fmt.Errorf("the permit %s holds no valid permit; open the launch link again", p)
	}
	pf.path = p
	return &pf, nil
}

// loadPermit finds the permit of task (in project, if given) for the
// configured server and checks that it has not expired.
func (c *CLI) loadPermit(f *cmdFlags, server, project, task string) (*permitFile, error) {
	var p string
	if project != "" {
		var err error
		if p, err = c.permitPath(server, project, task); err != nil {
			return nil, err
		}
	} else {
		dir, err := c.permitsDir(server)
		if err != nil {
			return nil, err
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "*", task+".json"))
		switch len(matches) {
		case 0:
			p = filepath.Join(dir, "?", task+".json")
		case 1:
			p = matches[0]
		default:
			return nil, f.usageErr("several projects have a permit for task %s: give --project", task)
		}
	}
	pf, err := readPermit(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no permit for task %s on %s: open its launch link first (custos task open LINK)", task, server)
	} else if err != nil {
		return nil, err
	}
	if pf.TaskID != task || (project != "" && pf.ProjectID != project) {
		return nil, fmt.Errorf("the permit %s is for another task; open the launch link again", p)
	}
	if !pf.ExpiresAt.IsZero() && !c.clock().Before(pf.ExpiresAt) {
		return nil, fmt.Errorf("the permit for task %s expired at %s: ask the tracker for a new launch link", task, fmtTime(pf.ExpiresAt))
	}
	return pf, nil
}

// ---- custos task open ----

// #nosec G101 -- usage text, not a credential
const taskOpenUsage = `Usage: custos task open LINK|CODE [--project P --task T]

Exchanges a one-time launch code for the task's permit (cst_pm_…, valid
24 h, for that project and task only) and keeps it in a 0600 file:
  $XDG_CONFIG_HOME/custos/permits/SERVER/PROJECT/TASK.json
(~/.config when XDG_CONFIG_HOME is not set; directories 0700). The OS
keyring is not used: none is available on the machines custos supports
yet, so the file is the store.

LINK is custos://launch?code=…&project=…&task=… or the https form
(https://SERVER/launch#code=…). The code is sent to the server in
CUSTOS_URL, never to a server a link names: an https link for another
server is refused. A bare CODE needs --project and --task.

The code is spent by this exchange: a second open of the same link fails.

Example:
  custos task open 'custos://launch?code=cst_lc_…&project=PROJ&task=PROJ-42'
  custos task open cst_lc_… --project PROJ --task PROJ-42
`

func (c *CLI) taskOpen(ctx context.Context, args []string) error {
	f := c.newFlags("task open", taskOpenUsage)
	project := f.String("project", "", "tracker `PROJECT` id (with a bare CODE)")
	task := f.String("task", "", "tracker `TASK` id (with a bare CODE)")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	server, err := c.serverURL()
	if err != nil {
		return err
	}
	in, err := parseLaunchArg(f, pos[0], server)
	if err != nil {
		return err
	}
	switch {
	case in.Code != "" && in.ProjectID == "" && (*project == "" || *task == ""):
		return f.usageErr("a bare launch code needs --project and --task")
	case in.ProjectID != "" && ((*project != "" && *project != in.ProjectID) || (*task != "" && *task != in.TaskID)):
		return f.usageErr("--project/--task do not match the link (project %s, task %s)", in.ProjectID, in.TaskID)
	case in.ProjectID == "":
		if err := f.validateRef("project", *project); err != nil {
			return err
		}
		if err := f.validateRef("task", *task); err != nil {
			return err
		}
		in.ProjectID, in.TaskID = *project, *task
	}
	p, err := c.permitPath(server, in.ProjectID, in.TaskID)
	if err != nil {
		return err
	}
	// Before the code is spent: a permit that cannot be kept is lost.
	if err := preparePermitDir(p); err != nil {
		return err
	}
	api, server, err := c.taskClient()
	if err != nil {
		return err
	}
	g, err := api.ExchangeLaunchCode(ctx, in)
	if err != nil {
		return err
	}
	pf := &permitFile{Server: server, PermitGrant: *g, path: p}
	if err := writePermit(pf); err != nil {
		return fmt.Errorf("keep the permit: %w", err)
	}
	fmt.Fprintf(c.Stdout, "permit %s for project %s task %s saved to %s (mode 0600); it expires %s\n",
		g.ID, cell(g.ProjectID), cell(g.TaskID), p, expiresIn(g.ExpiresAt, c.clock()))
	fmt.Fprintf(c.Stderr, "Next: custos task upload --task %s FILE...\n", cell(g.TaskID))
	return nil
}

// parseLaunchArg reads a custos:// link, an https link of server, or a bare
// code. Messages never repeat the code.
func parseLaunchArg(f *cmdFlags, arg, server string) (custos.LaunchExchangeInput, error) {
	var in custos.LaunchExchangeInput
	lower := strings.ToLower(arg)
	switch {
	case strings.HasPrefix(lower, custos.LaunchScheme+"://"):
		u, err := url.Parse(arg)
		if err != nil || u.Host != "launch" || (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.User != nil {
			return in, f.usageErr("invalid launch link: want custos://launch?code=…&project=…&task=…")
		}
		in, err = tasks.ParseLaunchQuery(u.RawQuery)
		if err != nil {
			return in, f.usageErr("%s", custos.ErrorMessage(err))
		}
		return in, nil
	case strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://"):
		u, err := url.Parse(arg)
		if err != nil || strings.TrimRight(u.Path, "/") != strings.TrimRight(pathOf(server), "/")+custos.LaunchPath || u.RawQuery != "" || u.User != nil {
			return in, f.usageErr("invalid launch link: want https://SERVER%s#code=…&project=…&task=…", custos.LaunchPath)
		}
		in, err = tasks.ParseLaunchQuery(u.EscapedFragment())
		if err != nil {
			return in, f.usageErr("%s", custos.ErrorMessage(err))
		}
		s, _ := url.Parse(server)
		if !strings.EqualFold(u.Host, s.Host) || !strings.EqualFold(u.Scheme, s.Scheme) {
			return custos.LaunchExchangeInput{}, fmt.Errorf("this launch link is for %s://%s, but custos talks to %s: set CUSTOS_URL=%s://%s if you trust that server (the code goes only to CUSTOS_URL)",
				cell(u.Scheme), cell(u.Host), server, cell(u.Scheme), cell(u.Host))
		}
		return in, nil
	}
	if err := token.Check(arg, token.PrefixLaunchCode); err != nil {
		return in, f.usageErr("not a launch link or code: %s", custos.ErrorMessage(err))
	}
	in.Code = arg
	return in, nil
}

// pathOf returns the path of a URL, or "".
func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Path
}

// ---- custos task upload / download / complete ----

const taskUploadUsage = `Usage: custos task upload --task T [--project P] [--run R] [--name N] [--kind K] FILE...

Uploads each FILE as an artifact of a run of task T, with the permit from
custos task open. custos encrypts it before it reaches the blob store; it
is purged 48 h after the task completes. Without --run, the run the last
upload started is used, or a new one is started and remembered.

An artifact is named after FILE's path as given (relative, with /), or its
base name for an absolute path or one outside the current directory;
--name names a single FILE. Putting a name again replaces it. --kind is
source, input, output or diff.

Example:
  custos task upload --task PROJ-42 main.go docs/notes.md
  custos task upload --task PROJ-42 --kind diff --name fix.patch /tmp/x.patch
`

func (c *CLI) taskUpload(ctx context.Context, args []string) error {
	f := c.newFlags("task upload", taskUploadUsage)
	task := f.String("task", "", "tracker `TASK` id (required)")
	project := f.String("project", "", "tracker `PROJECT` id (when several projects have task T)")
	run := f.String("run", "", "upload to run `R` (default: the remembered run, or a new one)")
	name := f.String("name", "", "artifact `NAME` of a single FILE")
	kind := f.String("kind", "", "`KIND` of the artifacts: source, input, output or diff")
	pos, err := f.parse(args, 1, -1)
	if err != nil {
		return err
	}
	if err := c.checkTaskFlags(f, *task, *project, *run); err != nil {
		return err
	}
	if *kind != "" && !slices.Contains(custos.ArtifactKinds, *kind) {
		return f.usageErr("--kind: invalid kind %q: use %s", clip(*kind, 20), strings.Join(custos.ArtifactKinds, ", "))
	}
	if *name != "" && len(pos) > 1 {
		return f.usageErr("--name names a single FILE; %d were given", len(pos))
	}
	type upload struct{ file, name string }
	var ups []upload
	seen := map[string]bool{}
	for _, file := range pos {
		fi, err := os.Stat(c.abs(file))
		if err != nil {
			return f.usageErr("%s: %v", clip(file, 80), errors.Unwrap(err))
		} else if !fi.Mode().IsRegular() {
			return f.usageErr("%s is not a regular file", clip(file, 80))
		}
		n := *name
		if n == "" {
			n = artifactNameOf(file)
		}
		if err := custos.ValidateArtifactName(n); err != nil {
			return f.usageErr("%s", custos.ErrorMessage(err))
		}
		if seen[n] {
			return f.usageErr("two files would be artifact %q: upload them with --name one at a time", clip(n, 80))
		}
		seen[n] = true
		ups = append(ups, upload{file, n})
	}
	api, pf, err := c.taskPermit(f, *project, *task)
	if err != nil {
		return err
	}
	runID := *run
	if runID == "" {
		runID = pf.Run
	}
	if runID == "" {
		r, err := api.CreateRun(ctx, pf.Permit, pf.TaskID)
		if err != nil {
			return err
		}
		runID, pf.Run = r.ID, r.ID
		if err := writePermit(pf); err != nil {
			return fmt.Errorf("remember run %s: %w", r.ID, err)
		}
		fmt.Fprintf(c.Stderr, "started run %s\n", r.ID)
	}
	for _, u := range ups {
		fh, err := os.Open(c.abs(u.file))
		if err != nil {
			return err
		}
		a, err := api.PutArtifact(ctx, pf.Permit, pf.TaskID, runID, u.name, *kind, fh)
		_ = fh.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", u.file, err)
		}
		fmt.Fprintf(c.Stdout, "uploaded %s (%d bytes, sha256 %s) to run %s\n", cell(a.Name), a.Size, a.SHA256, runID)
	}
	return nil
}

// artifactNameOf names an uploaded file: its path as given, cleaned and
// with forward slashes, or its base name when that path is absolute or
// leaves the current directory.
func artifactNameOf(file string) string {
	p := filepath.ToSlash(filepath.Clean(file))
	if filepath.IsAbs(file) || p == ".." || strings.HasPrefix(p, "../") {
		return path.Base(p)
	}
	return p
}

// taskPermit returns the tasks API of the configured server and the
// permit for task (of project, if given) saved for that server.
func (c *CLI) taskPermit(f *cmdFlags, project, task string) (taskAPI, *permitFile, error) {
	api, server, err := c.taskClient()
	if err != nil {
		return nil, nil, err
	}
	pf, err := c.loadPermit(f, server, project, task)
	if err != nil {
		return nil, nil, err
	}
	return api, pf, nil
}

// checkTaskFlags validates --task (required), --project and --run.
func (c *CLI) checkTaskFlags(f *cmdFlags, task, project, run string) error {
	if task == "" {
		return f.usageErr("--task is required")
	}
	if err := f.validateRef("task", task); err != nil {
		return err
	}
	if project != "" {
		if err := f.validateRef("project", project); err != nil {
			return err
		}
	}
	if run != "" {
		if err := custos.ValidateID(custos.PrefixRun, run); err != nil {
			return f.usageErr("--run: %s", custos.ErrorMessage(err))
		}
	}
	return nil
}

const taskListUsage = `Usage: custos task list --task T [--run R] [--project P] [--json]

Lists the live artifacts of run R of task T (default: the run your uploads
went to, remembered with the permit): name, size, SHA-256, kind and expiry.
Expired artifacts are not listed.

Example:
  custos task list --task PROJ-42
  custos task list --task PROJ-42 --run run_0123456789abcdef --json
`

func (c *CLI) taskList(ctx context.Context, args []string) error {
	f := c.newFlags("task list", taskListUsage)
	task := f.String("task", "", "tracker `TASK` id (required)")
	project := f.String("project", "", "tracker `PROJECT` id (when several projects have task T)")
	run := f.String("run", "", "run `R` (default: your current run)")
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if err := c.checkTaskFlags(f, *task, *project, *run); err != nil {
		return err
	}
	api, pf, err := c.taskPermit(f, *project, *task)
	if err != nil {
		return err
	}
	runID := *run
	if runID == "" {
		if runID = pf.Run; runID == "" {
			return fmt.Errorf("no current run for task %s: give --run R (upload prints the run it uses)", cell(pf.TaskID))
		}
	}
	list, err := api.ListArtifacts(ctx, pf.Permit, pf.TaskID, runID)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	t := newTable(c.Stdout, "NAME", "SIZE", "SHA256", "KIND", "EXPIRES")
	for _, a := range list {
		kind := a.Kind
		if kind == "" {
			kind = "-"
		}
		t.row(a.Name, fmt.Sprint(a.Size), a.SHA256, kind, fmtTimePtr(a.ExpiresAt))
	}
	return t.flush()
}

const taskDownloadUsage = `Usage: custos task download --task T --run R NAME [-o FILE] [--force] [--project P]

Downloads artifact NAME of run R of task T with the task's permit and
checks its SHA-256. It is written (0600) to the base name of NAME in the
current directory, or to -o FILE; -o - writes it to stdout. An existing file
is kept unless --force is given.

Example:
  custos task download --task PROJ-42 --run run_0123456789abcdef main.go -o -
  custos task download --task PROJ-42 --run run_0123456789abcdef out/fix.patch -o fix.patch --force
`

func (c *CLI) taskDownload(ctx context.Context, args []string) error {
	f := c.newFlags("task download", taskDownloadUsage)
	task := f.String("task", "", "tracker `TASK` id (required)")
	project := f.String("project", "", "tracker `PROJECT` id (when several projects have task T)")
	run := f.String("run", "", "run `R` of the artifact (required)")
	out := f.String("o", "", "write to `FILE` (- for stdout; default: NAME's base name)")
	f.StringVar(out, "output", "", "same as -o `FILE`")
	force := f.Bool("force", false, "overwrite an existing file")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := c.checkTaskFlags(f, *task, *project, *run); err != nil {
		return err
	}
	if *run == "" {
		return f.usageErr("--run is required")
	}
	name := pos[0]
	if err := custos.ValidateArtifactName(name); err != nil {
		return f.usageErr("%s", custos.ErrorMessage(err))
	}
	dst := *out
	if dst == "" {
		dst = path.Base(name)
	}
	if dst != "-" {
		dst = c.abs(dst)
		if fi, err := os.Lstat(dst); err == nil {
			if !*force {
				return fmt.Errorf("%s exists: give --force to overwrite it, or -o FILE", dst)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("refusing to overwrite %s: not a regular file", dst)
			}
		}
	}
	api, pf, err := c.taskPermit(f, *project, *task)
	if err != nil {
		return err
	}
	a, b, err := api.GetArtifact(ctx, pf.Permit, pf.TaskID, *run, name)
	if err != nil {
		return err
	}
	defer clear(b)
	sum := sha256.Sum256(b)
	if a.SHA256 != "" && a.SHA256 != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("artifact %s arrived damaged (SHA-256 mismatch); nothing written", cell(name))
	}
	if dst == "-" {
		_, err := c.Stdout.Write(b)
		return err
	}
	if err := writeFileAtomic(filepath.Dir(dst), dst, b); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	fmt.Fprintf(c.Stderr, "wrote %s (%d bytes, sha256 %s)\n", dst, len(b), hex.EncodeToString(sum[:]))
	return nil
}

const taskCompleteUsage = `Usage: custos task complete --task T [--run R] [--project P]

With --run, marks run R complete: it takes no more uploads. Without it,
marks the task complete: its runs too, and every artifact then expires
after the retention (48 h by default) and is purged.

Example:
  custos task complete --task PROJ-42 --run run_0123456789abcdef
  custos task complete --task PROJ-42
`

func (c *CLI) taskComplete(ctx context.Context, args []string) error {
	f := c.newFlags("task complete", taskCompleteUsage)
	task := f.String("task", "", "tracker `TASK` id (required)")
	project := f.String("project", "", "tracker `PROJECT` id (when several projects have task T)")
	run := f.String("run", "", "complete run `R` only")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if err := c.checkTaskFlags(f, *task, *project, *run); err != nil {
		return err
	}
	api, pf, err := c.taskPermit(f, *project, *task)
	if err != nil {
		return err
	}
	if *run != "" {
		r, err := api.CompleteRun(ctx, pf.Permit, pf.TaskID, *run)
		if err != nil {
			return err
		}
		if pf.Run == r.ID {
			pf.Run = ""
			if err := writePermit(pf); err != nil {
				return err
			}
		}
		fmt.Fprintf(c.Stdout, "run %s complete at %s\n", r.ID, fmtTimePtr(r.CompletedAt))
		return nil
	}
	t, err := api.CompleteTask(ctx, pf.Permit, pf.TaskID)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "task %s of project %s complete at %s; its artifacts expire after the retention and are then purged\n",
		cell(t.ID), cell(t.ProjectID), fmtTimePtr(t.CompletedAt))
	return nil
}

// ---- custos task purge ----

const taskPurgeUsage = `Usage: custos task purge [--dry-run] [--json] [--data DIR] [--database URL] [--keeper URL] [--blob-url URL]

Runs the artifact purge now, offline, against the data dir or --database
and the blob store, like the purge every server runs each
--purge-interval: artifacts past their expiry (48 h after their task
completed, by default) and replaced ones lose their blob, then their row,
with an artifact.purge audit record. Blobs no row refers to are swept too.
It prints what it removed and the bytes. --dry-run only prints what would
go. Safe while servers run.

Example:
  custos task purge --dry-run
  custos task purge --database postgres://custos:…@db:5432/custos --blob-url s3://custos-artifacts?region=eu-west-1
`

func (c *CLI) taskPurge(ctx context.Context, args []string) error {
	cfg := DefaultConfig()
	var err error
	for _, e := range []struct {
		dst  *string
		name string
	}{{&cfg.DataDir, "CUSTOS_DATA"}, {&cfg.Database, "CUSTOS_DATABASE_URL"}, {&cfg.Keeper, "CUSTOS_KEEPER"}, {&cfg.BlobURL, "CUSTOS_BLOB_URL"}} {
		if *e.dst, err = envOr(c.Getenv, e.name, *e.dst); err != nil {
			return err
		}
	}
	f := c.newFlags("task purge", taskPurgeUsage)
	dry := f.Bool("dry-run", false, "remove nothing; print what would be removed")
	asJSON := f.Bool("json", false, "print the report as JSON")
	f.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data `DIR` (CUSTOS_DATA)")
	f.StringVar(&cfg.Database, "database", cfg.Database, "postgres://… `URL` (CUSTOS_DATABASE_URL; default SQLite in DATA)")
	f.StringVar(&cfg.Keeper, "keeper", cfg.Keeper, "the KEK keeper `URL` (CUSTOS_KEEPER; default as for serve)")
	f.StringVar(&cfg.BlobURL, "blob-url", cfg.BlobURL, "the blob store `URL` (CUSTOS_BLOB_URL; default file://DATA/artifacts)")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if cfg.DataDir == "" {
		return f.usageErr("--data must not be empty")
	}
	if cfg.Database != "" && !strings.HasPrefix(cfg.Database, "postgres://") && !strings.HasPrefix(cfg.Database, "postgresql://") {
		return f.usageErr("--database: use a postgres:// URL, or leave it empty for SQLite in the data dir")
	}
	if cfg.Database == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, dbFile)); err != nil {
			return fmt.Errorf("no custos database in %s: give --data DIR or --database URL", cfg.DataDir)
		}
	}
	kurl, _, err := cfg.keeperURL()
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	keeper, err := envelope.OpenKeeper(ctx, kurl, envelope.OpenOptions{})
	if err != nil {
		return fmt.Errorf("open keeper %s: %w", envelope.Redact(kurl), err)
	}
	defer keeper.Close()
	st, err := cfg.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close()
	bucket, err := tasks.OpenBucket(ctx, cfg.blobURL())
	if err != nil {
		return err
	}
	defer bucket.Close()
	svc, err := tasks.New(tasks.Config{Store: st, Keeper: keeper, Bucket: bucket, Now: c.clock,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	rep, err := svc.Purge(ctx, *dry)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	if *asJSON {
		if rep.Removed == nil {
			rep.Removed = []*custos.PurgeItem{}
		}
		return writeJSONValue(c.Stdout, rep)
	}
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	if len(rep.Removed) > 0 {
		t := newTable(c.Stdout, "ARTIFACT", "TASK", "RUN", "NAME", "SIZE", "REASON", "EXPIRED")
		for _, it := range rep.Removed {
			t.row(it.ArtifactID, it.TaskID, it.RunID, it.Name, fmt.Sprint(it.Size), it.Reason, fmtTime(it.ExpiredAt))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.Stdout, "%s %d artifact(s), %d bytes\n", verb, len(rep.Removed), rep.Bytes)
	return nil
}
