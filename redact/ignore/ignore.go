// Package ignore decides which paths of a tree are excluded by .gitignore
// and .custosignore files, with git's semantics: nested files apply to their
// own subtree, later and deeper rules win, "!" re-includes, and a path under
// an excluded directory stays excluded. It imports only the standard library.
//
// Patterns follow gitignore(5) and git's wildmatch: "*", "?", "[…]" (ranges,
// "!"/"^" negation, POSIX classes), "**" in leading, trailing and middle
// position, a leading or middle "/" anchoring the pattern to the directory of
// its file, a trailing "/" matching directories only, "\" escapes, "#"
// comments, and trailing spaces trimmed unless escaped.
package ignore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ignoreFiles are the per-directory ignore files, in increasing precedence: in one
// directory a .custosignore rule wins over a .gitignore rule.
var ignoreFiles = []string{".gitignore", ".custosignore"}

// GitDirSource is the source reported for a path inside a .git directory,
// which is always ignored.
const GitDirSource = ".git"

// maxFileSize bounds an ignore file; larger ones are skipped, as git does.
const maxFileSize = 100 << 20

// rule is one parsed pattern line.
type rule struct {
	pattern  string // wildmatch pattern: no "!", no trailing "/", no leading "/"
	negate   bool   // "!pattern": re-include
	dirOnly  bool   // "pattern/": directories only
	basename bool   // no "/" in pattern: match the last path element at any depth
	base     string // directory of the ignore file, relative to the root ("" = root)
	source   string // "dir/.gitignore:3"
}

type decision struct {
	ignored bool
	source  string
}

// Matcher answers whether a path under its root is ignored. It reads the
// ignore files of a directory the first time a path under that directory is
// asked about. It is safe for concurrent use.
type Matcher struct {
	root string

	mu    sync.Mutex
	lists map[string][]rule   // directory (relative, "" = root) → its rules, in file order
	dirs  map[string]decision // cached decisions for directories
}

// New returns a Matcher for the tree at root. Ignore files are read lazily;
// a missing, unreadable, oversized or symlinked ignore file counts as empty
// (git does not follow symlinked .gitignore files either).
func New(root string) *Matcher {
	return &Matcher{root: root, lists: map[string][]rule{}, dirs: map[string]decision{}}
}

// Ignored reports whether relPath (relative to the root, "/" or OS
// separators) is ignored, and names the deciding rule as "file:line" with
// the file relative to the root, or GitDirSource for anything in a .git
// directory. A path is ignored when its last matching rule is not a
// negation, or when one of its parent directories is ignored (a negation
// cannot re-include it, as in git). When a negation decides, ignored is
// false and source names it; when no rule matches, source is "". isDir
// says whether relPath is a directory, for patterns ending in "/". Paths
// outside the root ("..", absolute) are never ignored.
func (m *Matcher) Ignored(relPath string, isDir bool) (ignored bool, source string) {
	p, ok := clean(relPath)
	if !ok || p == "" {
		return false, ""
	}
	parts := strings.Split(p, "/")
	for _, part := range parts {
		if part == ".git" {
			return true, GitDirSource
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 1; i < len(parts); i++ {
		if d := m.dirDecision(strings.Join(parts[:i], "/")); d.ignored {
			return true, d.source
		}
	}
	if isDir {
		d := m.dirDecision(p)
		return d.ignored, d.source
	}
	d := m.decide(p, false)
	return d.ignored, d.source
}

// clean turns relPath into a clean slash path relative to the root; ok is
// false for a path leaving the root.
func clean(relPath string) (string, bool) {
	p := filepath.ToSlash(relPath)
	if strings.HasPrefix(p, "/") || filepath.IsAbs(relPath) {
		return "", false
	}
	p = path.Clean(p)
	if p == "." {
		return "", true
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

// dirDecision is decide for a directory, cached. m.mu is held.
func (m *Matcher) dirDecision(dir string) decision {
	if d, ok := m.dirs[dir]; ok {
		return d
	}
	d := m.decide(dir, true)
	m.dirs[dir] = d
	return d
}

// decide finds the last rule matching p among the ignore files of p's
// ancestors, deepest file first. m.mu is held.
func (m *Matcher) decide(p string, isDir bool) decision {
	dir := parentDir(p)
	for {
		rules := m.rulesFor(dir)
		for i := len(rules) - 1; i >= 0; i-- {
			if rules[i].match(p, isDir) {
				return decision{ignored: !rules[i].negate, source: rules[i].source}
			}
		}
		if dir == "" {
			return decision{}
		}
		dir = parentDir(dir)
	}
}

func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// rulesFor returns the rules of the ignore files in dir, reading them the
// first time. m.mu is held.
func (m *Matcher) rulesFor(dir string) []rule {
	if rules, ok := m.lists[dir]; ok {
		return rules
	}
	var rules []rule
	for _, name := range ignoreFiles {
		rel := name
		if dir != "" {
			rel = dir + "/" + name
		}
		data, err := readIgnoreFile(m.root, rel)
		if err != nil {
			continue
		}
		rules = append(rules, parse(data, dir, rel)...)
	}
	m.lists[dir] = rules
	return rules
}

var errSkip = errors.New("ignore: not a regular file")

// readIgnoreFile reads root/rel without following symlinks out of root (or
// at all for the file itself).
func readIgnoreFile(root, rel string) ([]byte, error) {
	full := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxFileSize {
		return nil, errSkip
	}
	f, err := os.OpenInRoot(root, filepath.FromSlash(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read-only
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, errSkip
	}
	return data, nil
}

// parse parses the contents of one ignore file located in directory base
// (relative to the root, "/"-separated, "" for the root); source names the
// file in the reported "source:line". Line numbers count every line, as git.
func parse(data []byte, base, source string) []rule {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM, as git
	var rules []rule
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		r, ok := parseLine(string(trimTrailingSpaces(line)))
		if !ok {
			continue
		}
		r.base = base
		r.source = source + ":" + strconv.Itoa(lineNo)
		rules = append(rules, r)
	}
	return rules
}

// trimTrailingSpaces removes unescaped trailing spaces (not tabs), as git.
func trimTrailingSpaces(b []byte) []byte {
	lastSpace := -1
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ' ':
			if lastSpace < 0 {
				lastSpace = i
			}
		case '\\':
			i++
			if i >= len(b) {
				return b
			}
			lastSpace = -1
		default:
			lastSpace = -1
		}
	}
	if lastSpace >= 0 {
		return b[:lastSpace]
	}
	return b
}

// parseLine parses one non-comment line; ok is false for a pattern that can
// match nothing (empty after "!" and "/" are removed).
func parseLine(s string) (r rule, ok bool) {
	if strings.HasPrefix(s, "!") {
		r.negate = true
		s = s[1:]
	}
	if strings.HasSuffix(s, "/") {
		r.dirOnly = true
		s = s[:len(s)-1]
	}
	r.basename = !strings.Contains(s, "/")
	s = strings.TrimPrefix(s, "/")
	r.pattern = s
	return r, s != ""
}

// match reports whether r matches p (relative to the root), which lies
// under r.base.
func (r *rule) match(p string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	if r.basename {
		return wildmatch(r.pattern, p[strings.LastIndexByte(p, '/')+1:])
	}
	name := p
	if r.base != "" {
		if !strings.HasPrefix(p, r.base+"/") {
			return false
		}
		name = p[len(r.base)+1:]
	}
	// Like git, compare the literal prefix first and wildmatch the rest;
	// this makes "**" right after the prefix ("foo**/bar") count as a
	// leading "**", as it does in git.
	pat := r.pattern
	n := simpleLength(pat)
	if n > 0 {
		if !strings.HasPrefix(name, pat[:n]) {
			return false
		}
		pat, name = pat[n:], name[n:]
		if pat == "" && name == "" {
			return true
		}
	}
	return wildmatch(pat, name)
}

// simpleLength is the length of the leading part of pat free of glob
// special characters.
func simpleLength(pat string) int {
	for i := 0; i < len(pat); i++ {
		if isGlobSpecial(pat[i]) {
			return i
		}
	}
	return len(pat)
}
