package pack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/custos-dev/custos/redact"
)

// WriteText writes the packed context: for each file a header line
// "=== path ===", then its content, ending in a newline (one is added when
// the file lacks it), with a blank line between files. Contents are written
// byte for byte.
func WriteText(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	for i, f := range r.Files {
		if i > 0 {
			fmt.Fprint(bw, "\n")
		}
		fmt.Fprint(bw, "=== "+f.Path+" ===\n")
		fmt.Fprint(bw, f.Content)
		if f.Content != "" && !strings.HasSuffix(f.Content, "\n") {
			fmt.Fprint(bw, "\n")
		}
	}
	return bw.Flush()
}

type jsonFile struct {
	Path       string              `json:"path"`
	Bytes      int                 `json:"bytes"`
	Tokens     int                 `json:"tokens"`
	Redactions map[redact.Kind]int `json:"redactions"`
	Content    string              `json:"content"`
}

type jsonExcluded struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

type jsonResult struct {
	Files    []jsonFile     `json:"files"`
	Excluded []jsonExcluded `json:"excluded"`
	Tokens   int            `json:"tokens"`
	Bytes    int            `json:"bytes"`
}

// WriteJSON writes r as one line of JSON with a stable shape and order:
// {"files":[{"path","bytes","tokens","redactions":{KIND:n},"content"}],
// "excluded":[{"path","reason"}],"tokens":n,"bytes":n}. Lists are never
// null and redaction kinds are sorted; HTML characters are not escaped.
func WriteJSON(w io.Writer, r *Result) error {
	out := jsonResult{Files: []jsonFile{}, Excluded: []jsonExcluded{}, Tokens: r.Tokens, Bytes: r.Bytes}
	for _, f := range r.Files {
		red := f.Redactions
		if red == nil {
			red = map[redact.Kind]int{}
		}
		out.Files = append(out.Files, jsonFile{Path: f.Path, Bytes: f.Bytes, Tokens: f.Tokens, Redactions: red, Content: f.Content})
	}
	for _, e := range r.Excluded {
		out.Excluded = append(out.Excluded, jsonExcluded(e))
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// reportListLimit caps how many over-budget paths the report names; a big
// tree past the budget would otherwise bury the rest of the report.
const reportListLimit = 20

// WriteReport writes the human report meant for stderr: what was packed,
// every excluded path with its reason (over-budget paths beyond the first
// 20 are counted, not named), the redactions per file, and totals.
func WriteReport(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "packed %d %s: %d tokens, %d bytes\n", len(r.Files), plural(len(r.Files), "file"), r.Tokens, r.Bytes)
	if len(r.Excluded) > 0 {
		fmt.Fprintf(bw, "excluded %d:\n", len(r.Excluded))
		over := 0
		for _, e := range r.Excluded {
			if e.Reason == ReasonOverBudget {
				over++
				if over > reportListLimit {
					continue
				}
			}
			fmt.Fprintf(bw, "  %s: %s\n", e.Path, e.Reason)
		}
		if over > reportListLimit {
			fmt.Fprintf(bw, "  … and %d more over budget\n", over-reportListLimit)
		}
	}
	total := 0
	for _, f := range r.Files {
		n := 0
		for _, c := range f.Redactions {
			n += c
		}
		if n == 0 {
			continue
		}
		if total == 0 {
			fmt.Fprint(bw, "redactions:\n")
		}
		total += n
		fmt.Fprintf(bw, "  %s: %s\n", f.Path, formatKinds(f.Redactions))
	}
	fmt.Fprintf(bw, "redacted %d %s\n", total, plural(total, "value"))
	return bw.Flush()
}

// formatKinds renders counts as "EMAIL 1, SECRET 2", sorted by kind.
func formatKinds(m map[redact.Kind]int) string {
	kinds := make([]string, 0, len(m))
	for k, n := range m {
		if n > 0 {
			kinds = append(kinds, string(k))
		}
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		kinds[i] = fmt.Sprintf("%s %d", k, m[redact.Kind(k)])
	}
	return strings.Join(kinds, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
