// Package corpus loads the labelled redaction corpus (redact/testdata/corpus)
// and scores a detector against it. It is shared by bench/scorecard and
// bench/redactbench and is not part of the custos binary.
package corpus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LabelsFile is the name of the label list inside the corpus directory.
const LabelsFile = "labels.json"

// Label kinds; they match redact.Kind values.
const (
	Secret = "SECRET"
	Email  = "EMAIL"
	Phone  = "PHONE"
	Card   = "CARD"
	IBAN   = "IBAN"
	SSN    = "SSN"
	IP     = "IP"
)

// Kinds lists the label kinds in table order.
var Kinds = []string{Secret, Email, Phone, Card, IBAN, SSN, IP}

// Label is one planted value: the exact string as it occurs in File.
type Label struct {
	File  string `json:"file"`
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Corpus is the loaded corpus: file contents by slash-separated name
// relative to Dir, and the labels.
type Corpus struct {
	Dir    string
	Names  []string
	Files  map[string][]byte
	Labels []Label
}

// Size is the total number of bytes over all files.
func (c *Corpus) Size() int {
	n := 0
	for _, b := range c.Files {
		n += len(b)
	}
	return n
}

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// DefaultDir is redact/testdata/corpus under the module root.
func DefaultDir() string {
	root, err := ModuleRoot()
	if err != nil {
		return filepath.Join("redact", "testdata", "corpus")
	}
	return filepath.Join(root, "redact", "testdata", "corpus")
}

// Load reads every file under dir and labels.json.
func Load(dir string) (*Corpus, error) {
	c := &Corpus{Dir: dir, Files: map[string][]byte{}}
	raw, err := os.ReadFile(filepath.Join(dir, LabelsFile)) // #nosec G304 -- the corpus directory is chosen by the operator running the bench
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &c.Labels); err != nil {
		return nil, fmt.Errorf("%s: %w", LabelsFile, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == LabelsFile {
			return nil
		}
		b, err := root.ReadFile(filepath.FromSlash(rel))
		if err != nil {
			return err
		}
		c.Files[rel] = b
		c.Names = append(c.Names, rel)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(c.Names)
	for _, l := range c.Labels {
		if _, ok := c.Files[l.File]; !ok {
			return nil, fmt.Errorf("label for missing file %s", l.File)
		}
		if !strings.Contains(string(c.Files[l.File]), l.Value) {
			return nil, fmt.Errorf("%s: planted %s value not found in the file", l.File, l.Kind)
		}
	}
	return c, nil
}

// Span is one finding of a detector under test, by kind and byte range.
type Span struct {
	Kind       string
	Start, End int
	RuleID     string
}

// Miss is a planted value no finding of its kind covers.
type Miss struct {
	Label
	Partial string // "" or a note on what did overlap it
}

// FalsePositive is a finding that overlaps no planted value.
type FalsePositive struct {
	File   string
	Kind   string
	RuleID string
	Text   string
}

// Result is the score of one kind.
type Result struct {
	Kind       string
	Planted    int
	Found      int
	OtherKind  int // planted values not found but covered by a finding of another kind
	Findings   int
	FP         int
	Collateral int // bytes inside findings of this kind outside every planted value
	Misses     []Miss
	FPs        []FalsePositive
}

// Recall is Found/Planted.
func (r *Result) Recall() float64 {
	if r.Planted == 0 {
		return 0
	}
	return float64(r.Found) / float64(r.Planted)
}

// FPRate is FP/Findings.
func (r *Result) FPRate() float64 {
	if r.Findings == 0 {
		return 0
	}
	return float64(r.FP) / float64(r.Findings)
}

type rng struct{ start, end int }

// occurrences returns the byte ranges of every occurrence of v in s.
func occurrences(s, v string) []rng {
	var out []rng
	for off := 0; ; {
		i := strings.Index(s[off:], v)
		if i < 0 {
			return out
		}
		out = append(out, rng{off + i, off + i + len(v)})
		off += i + 1
	}
}

// Score runs find over every file and scores it per kind. A planted value
// counts as found when a single finding of its kind covers every one of its
// occurrences entirely. The last result is the total over all kinds.
func Score(c *Corpus, find func(name string, src []byte) []Span) []*Result {
	byKind := map[string]*Result{}
	for _, k := range Kinds {
		byKind[k] = &Result{Kind: k}
	}
	get := func(k string) *Result {
		r, ok := byKind[k]
		if !ok {
			r = &Result{Kind: k}
			byKind[k] = r
		}
		return r
	}
	for _, name := range c.Names {
		src := c.Files[name]
		spans := find(name, src)
		var planted []rng
		for _, l := range c.Labels {
			if l.File != name {
				continue
			}
			r := get(l.Kind)
			r.Planted++
			occ := occurrences(string(src), l.Value)
			planted = append(planted, occ...)
			covered := 0
			var partial []string
			for _, o := range occ {
				hit := false
				for _, s := range spans {
					if s.Kind == l.Kind && s.Start <= o.start && s.End >= o.end {
						hit = true
						break
					}
				}
				if hit {
					covered++
					continue
				}
				for _, s := range spans {
					if s.Start < o.end && s.End > o.start {
						partial = append(partial, fmt.Sprintf("%s/%s covers [%d,%d) of [%d,%d)", s.Kind, s.RuleID, max(s.Start, o.start)-o.start, min(s.End, o.end)-o.start, 0, o.end-o.start))
					}
				}
			}
			if covered == len(occ) {
				r.Found++
			} else {
				if coveredByAny(spans, occ) {
					r.OtherKind++
				}
				r.Misses = append(r.Misses, Miss{Label: l, Partial: strings.Join(partial, "; ")})
			}
		}
		// Per kind: findings, false positives and collateral bytes.
		perKind := map[string][]rng{}
		for _, s := range spans {
			r := get(s.Kind)
			r.Findings++
			perKind[s.Kind] = append(perKind[s.Kind], rng{s.Start, s.End})
			overlaps := false
			for _, p := range planted {
				if s.Start < p.end && s.End > p.start {
					overlaps = true
					break
				}
			}
			if !overlaps {
				r.FP++
				r.FPs = append(r.FPs, FalsePositive{File: name, Kind: s.Kind, RuleID: s.RuleID, Text: string(src[s.Start:s.End])})
			}
		}
		for k, rs := range perKind {
			get(k).Collateral += outside(len(src), rs, planted)
		}
	}
	var out []*Result
	total := &Result{Kind: "total"}
	keys := append([]string(nil), Kinds...)
	for k := range byKind {
		if !contains(Kinds, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		r := byKind[k]
		out = append(out, r)
		total.Planted += r.Planted
		total.Found += r.Found
		total.OtherKind += r.OtherKind
		total.Findings += r.Findings
		total.FP += r.FP
		total.Collateral += r.Collateral
	}
	return append(out, total)
}

// coveredByAny reports whether every occurrence is covered entirely by a
// single finding of any kind.
func coveredByAny(spans []Span, occ []rng) bool {
	for _, o := range occ {
		hit := false
		for _, s := range spans {
			if s.Start <= o.start && s.End >= o.end {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// outside counts the bytes covered by the union of spans that no planted
// range covers.
func outside(n int, spans, planted []rng) int {
	in := make([]int8, n+1)
	for _, s := range spans {
		for i := max(s.start, 0); i < min(s.end, n); i++ {
			in[i] = 1
		}
	}
	for _, p := range planted {
		for i := p.start; i < p.end; i++ {
			in[i] = 0
		}
	}
	c := 0
	for _, v := range in {
		c += int(v)
	}
	return c
}

// Markdown renders the results as a table. gitleaks, when not nil, adds the
// secret recall of gitleaks to the SECRET row.
func Markdown(results []*Result, gitleaks *GitleaksResult) string {
	var b strings.Builder
	b.WriteString("| kind | planted | found | recall | as other kind | findings | false positives | FP rate | collateral bytes |")
	if gitleaks != nil {
		b.WriteString(" gitleaks found | gitleaks recall |")
	}
	b.WriteString("\n|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	if gitleaks != nil {
		b.WriteString("--:|--:|")
	}
	b.WriteString("\n")
	for _, r := range results {
		name := r.Kind
		if name == "total" {
			name = "**total**"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f%% | %d | %d | %d | %.0f%% | %d |", name, r.Planted, r.Found, 100*r.Recall(), r.OtherKind, r.Findings, r.FP, 100*r.FPRate(), r.Collateral)
		if gitleaks != nil {
			if r.Kind == Secret {
				fmt.Fprintf(&b, " %d | %.0f%% |", gitleaks.Found, 100*gitleaks.Recall())
			} else {
				b.WriteString(" — | — |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Between replaces the text between the marker lines begin and end in doc
// with body. Both markers must be present.
func Between(doc, begin, end, body string) (string, error) {
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q … %q not found", begin, end)
	}
	return doc[:i+len(begin)] + "\n" + body + doc[j:], nil
}

// WriteBetween rewrites path with body between the markers.
func WriteBetween(path, begin, end, body string) error {
	doc, err := os.ReadFile(path) // #nosec G304 -- output path given by the operator
	if err != nil {
		return err
	}
	out, err := Between(string(doc), begin, end, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o600) // #nosec G703 -- output path given by the operator
}
