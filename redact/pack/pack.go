// Package pack packs the files of one or more trees into a single context
// for a prompt, the way agents and docs generators do: it walks the trees in
// sorted order, honours .gitignore and .custosignore (see redact/ignore),
// skips binaries, special files and symlinks leading out of the tree,
// redacts every file through the caller's redactor, and stops once a token
// or byte budget is reached. Every file left out is listed with its reason.
package pack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"unicode/utf8"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/ignore"
)

// Defaults for Options.
const (
	DefaultBudget   = 120_000 // tokens
	DefaultMaxBytes = 1 << 20 // 1 MB, per file and in total
)

// Reasons recorded in Excluded.Reason; an ignored path has
// IgnoredReason(source) instead.
const (
	ReasonBinary         = "binary"
	ReasonOverBudget     = "over budget" // the token or total byte budget was reached
	ReasonTooLarge       = "too large"   // the file alone exceeds MaxBytes
	ReasonUnreadable     = "unreadable"
	ReasonSymlinkOutside = "symlink outside root"
	ReasonNotRegular     = "not a regular file" // device, socket, FIFO
)

// SymlinkReason is the reason for a symlink to a file or directory inside
// its root: the link is not followed, its target is packed (or excluded)
// under its own path; target is shown like packed paths, a directory with a
// trailing "/", e.g. "symlink to src/main.go".
func SymlinkReason(target string) string {
	return "symlink to " + target
}

// IgnoredReason is the reason for a path excluded by an ignore rule; source
// is the deciding rule as "file:line", e.g. "ignored (.gitignore:3)".
func IgnoredReason(source string) string {
	return "ignored (" + source + ")"
}

// binarySniffLen is how much of a file is searched for a NUL byte, as git.
const binarySniffLen = 8000

// Options configure Pack. The zero value uses the defaults and no
// redaction.
type Options struct {
	// Budget is the token budget (EstimateTokens); 0 means DefaultBudget,
	// a negative value no limit.
	Budget int
	// MaxBytes limits each file (its size on disk) and the total of the
	// packed, redacted content; 0 means DefaultMaxBytes, a negative value
	// no limit.
	MaxBytes int64
	// Redactor redacts one file; path is the path shown in the output.
	// It is called for every packed file. nil packs files unchanged.
	Redactor func(path string, src []byte) (out []byte, findings []redact.Finding)
	// Progress, if set, is called with (0, total) once the trees are
	// walked and then after each candidate file is processed.
	Progress func(done, total int)
}

// File is one packed file.
type File struct {
	Path       string              // slash-separated, joined to the root as given
	Bytes      int                 // len(Content)
	Tokens     int                 // EstimateTokens(Content)
	Redactions map[redact.Kind]int // findings per kind; never nil
	Content    string              // the redacted content
}

// Excluded is a path left out of the context, with the reason. An ignored
// directory is listed once, with a trailing "/".
type Excluded struct {
	Path   string
	Reason string
}

// Result is the packed context.
type Result struct {
	Files    []File
	Excluded []Excluded
	Tokens   int // sum of Files[i].Tokens
	Bytes    int // sum of Files[i].Bytes
}

// candidate is a file found by the walk, to be read and packed.
type candidate struct {
	seq     int      // position in the walk, to order Excluded
	display string   // path shown in the output
	root    *os.Root // the walk root holding it
	name    string   // its name inside root (symlinks inside root are followed by root.Open)
	size    int64
}

// Pack walks roots (files or directories; none means ".") and packs their
// files in order: roots in the order given, each walked in lexical order.
// A file named explicitly is still subject to the ignore rules. Ignore
// files are read from the enclosing git work tree, if any (the nearest
// ancestor holding .git), so rules above a subdirectory root apply; .git
// directories are skipped silently. A file reached twice through
// overlapping roots is packed once. A root given as a symlink is resolved;
// symlinks met in the walk are never followed: one leading out of its root
// is excluded as ReasonSymlinkOutside, one to an ignored path with that
// path's IgnoredReason, any other with SymlinkReason, as its target is
// walked under its own path. Excluded is in walk order. Once the next file
// would take the total tokens past Budget or the total bytes past MaxBytes,
// that file and every later one are excluded as ReasonOverBudget. Pack
// returns an error only when a root cannot be opened; problems with single
// files are recorded in Result.Excluded.
func Pack(roots []string, opts Options) (*Result, error) {
	if opts.Budget == 0 {
		opts.Budget = DefaultBudget
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if len(roots) == 0 {
		roots = []string{"."}
	}
	w := &walker{
		res:      &Result{Files: []File{}, Excluded: []Excluded{}},
		matchers: map[string]*ignore.Matcher{},
		seen:     map[string]bool{},
	}
	defer w.close()
	for _, root := range roots {
		if err := w.walkRoot(root); err != nil {
			return nil, err
		}
	}
	w.pack(opts)
	return w.res, nil
}

type walker struct {
	seq      int   // walk events so far
	exSeq    []int // walk position of each res.Excluded entry
	res      *Result
	matchers map[string]*ignore.Matcher // by repository root
	seen     map[string]bool            // resolved absolute paths already taken
	cands    []candidate
	opened   []*os.Root
}

func (w *walker) close() {
	for _, r := range w.opened {
		_ = r.Close()
	}
}

// exclude records an exclusion found by the walk.
func (w *walker) exclude(p, reason string) {
	w.seq++
	w.excludeAt(w.seq, p, reason)
}

func (w *walker) excludeAt(seq int, p, reason string) {
	w.res.Excluded = append(w.res.Excluded, Excluded{Path: p, Reason: reason})
	w.exSeq = append(w.exSeq, seq)
}

// walkRoot collects the candidates under one root argument.
func (w *walker) walkRoot(arg string) error {
	abs, err := filepath.Abs(arg)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	display := filepath.ToSlash(filepath.Clean(arg))
	dir, single := resolved, ""
	if !fi.IsDir() {
		dir, single = filepath.Dir(resolved), filepath.Base(resolved)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	w.opened = append(w.opened, root)

	repo := repoRoot(dir)
	m := w.matchers[repo]
	if m == nil {
		m = ignore.New(repo)
		w.matchers[repo] = m
	}
	prefix, err := filepath.Rel(repo, dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	prefix = filepath.ToSlash(prefix)
	ignoreRel := func(name string) string { return path.Join(prefix, name) }

	if single != "" {
		if fi.Mode().IsRegular() {
			if ign, src := m.Ignored(ignoreRel(single), false); ign {
				w.exclude(display, IgnoredReason(src))
				return nil
			}
			w.take(candidate{display: display, root: root, name: single, size: fi.Size()}, resolved)
		} else {
			w.exclude(display, ReasonNotRegular)
		}
		return nil
	}

	// The walk callback never returns an error other than SkipDir, so
	// WalkDir's result is always nil.
	_ = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if name == "." {
			if err != nil {
				w.exclude(display, ReasonUnreadable)
			}
			return nil
		}
		shown := path.Join(display, name)
		if err != nil {
			w.exclude(shown, ReasonUnreadable)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() == ".git" { // a repository or a gitlink file: never content
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if ign, src := m.Ignored(ignoreRel(name), true); ign {
				w.exclude(shown+"/", IgnoredReason(src))
				return fs.SkipDir
			}
			return nil
		}
		if ign, src := m.Ignored(ignoreRel(name), false); ign {
			w.exclude(shown, IgnoredReason(src))
			return nil
		}
		full := filepath.Join(dir, filepath.FromSlash(name))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			w.symlink(m, root, repo, dir, display, name, shown, full)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				w.exclude(shown, ReasonUnreadable)
				return nil
			}
			w.take(candidate{display: shown, root: root, name: name, size: info.Size()}, full)
		default:
			w.exclude(shown, ReasonNotRegular)
		}
		return nil
	})
	return nil
}

// symlink records a symlink met in the walk; see Pack.
func (w *walker) symlink(m *ignore.Matcher, root *os.Root, repo, dir, display, name, shown, full string) {
	info, err := root.Stat(filepath.FromSlash(name)) // follows the link, but never out of root
	if err != nil {
		if _, err := os.Stat(full); err == nil {
			w.exclude(shown, ReasonSymlinkOutside)
		} else {
			w.exclude(shown, ReasonUnreadable)
		}
		return
	}
	target, err := filepath.EvalSymlinks(full)
	if err != nil {
		w.exclude(shown, ReasonUnreadable)
		return
	}
	rel, err := filepath.Rel(dir, target)
	if err != nil || !filepath.IsLocal(rel) {
		w.exclude(shown, ReasonSymlinkOutside)
		return
	}
	if repoRel, err := filepath.Rel(repo, target); err == nil {
		if ign, src := m.Ignored(repoRel, info.IsDir()); ign {
			w.exclude(shown, IgnoredReason(src))
			return
		}
	}
	to := path.Join(display, filepath.ToSlash(rel))
	if info.IsDir() {
		to += "/"
	}
	w.exclude(shown, SymlinkReason(to))
}

// take adds a candidate unless the file at resolved (its absolute path
// free of symlinks: walk roots are resolved and the walk follows none) was
// already taken.
func (w *walker) take(c candidate, resolved string) {
	if w.seen[resolved] {
		return
	}
	w.seen[resolved] = true
	w.seq++
	c.seq = w.seq
	w.cands = append(w.cands, c)
}

// repoRoot is the nearest ancestor of dir (or dir) holding .git, or dir.
func repoRoot(dir string) string {
	for d := dir; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}

// pack reads, redacts and budgets the candidates.
func (w *walker) pack(opts Options) {
	total := len(w.cands)
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	full := false
	for i, c := range w.cands {
		if full {
			w.excludeAt(c.seq, c.display, ReasonOverBudget)
		} else if f, reason := readFile(c, opts); reason != "" {
			w.excludeAt(c.seq, c.display, reason)
		} else if (opts.Budget >= 0 && w.res.Tokens+f.Tokens > opts.Budget) ||
			(opts.MaxBytes >= 0 && int64(w.res.Bytes+f.Bytes) > opts.MaxBytes) {
			full = true
			w.excludeAt(c.seq, c.display, ReasonOverBudget)
		} else {
			w.res.Files = append(w.res.Files, f)
			w.res.Tokens += f.Tokens
			w.res.Bytes += f.Bytes
		}
		if opts.Progress != nil {
			opts.Progress(i+1, total)
		}
	}
	sort.Stable(byWalk{w.res.Excluded, w.exSeq})
}

// byWalk sorts exclusions by their position in the walk.
type byWalk struct {
	ex  []Excluded
	seq []int
}

func (b byWalk) Len() int           { return len(b.ex) }
func (b byWalk) Less(i, j int) bool { return b.seq[i] < b.seq[j] }
func (b byWalk) Swap(i, j int) {
	b.ex[i], b.ex[j] = b.ex[j], b.ex[i]
	b.seq[i], b.seq[j] = b.seq[j], b.seq[i]
}

var errTooLarge = errors.New("too large")

// readFile reads, checks and redacts one candidate; reason is set when it
// is excluded.
func readFile(c candidate, opts Options) (File, string) {
	if opts.MaxBytes >= 0 && c.size > opts.MaxBytes {
		return File{}, ReasonTooLarge
	}
	data, err := readAll(c, opts.MaxBytes)
	if errors.Is(err, errTooLarge) {
		return File{}, ReasonTooLarge
	}
	if err != nil {
		return File{}, ReasonUnreadable
	}
	if IsBinary(data) {
		return File{}, ReasonBinary
	}
	f := File{Path: c.display, Redactions: map[redact.Kind]int{}}
	out := data
	if opts.Redactor != nil {
		var findings []redact.Finding
		out, findings = opts.Redactor(c.display, data)
		for _, fd := range findings {
			f.Redactions[fd.Kind]++
		}
	}
	f.Content = string(out)
	f.Bytes = len(out)
	f.Tokens = EstimateTokens(out)
	return f, ""
}

// readAll reads a candidate through its root, so that a file swapped for a
// symlink after the walk still cannot lead out of the root, and never more
// than maxBytes (when not negative).
func readAll(c candidate, maxBytes int64) ([]byte, error) {
	f, err := c.root.Open(filepath.FromSlash(c.name))
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read-only
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	var r io.Reader = f
	if maxBytes >= 0 {
		r = io.LimitReader(f, maxBytes+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if maxBytes >= 0 && int64(len(data)) > maxBytes {
		return nil, errTooLarge
	}
	return data, nil
}

// IsBinary reports whether data looks binary: like git, a NUL byte in the
// first 8000 bytes; in addition, content that is not valid UTF-8 (such
// text cannot be carried unchanged in a prompt or in JSON).
func IsBinary(data []byte) bool {
	if bytes.IndexByte(data[:min(len(data), binarySniffLen)], 0) >= 0 {
		return true
	}
	return !utf8.Valid(data)
}
