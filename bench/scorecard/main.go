// Command scorecard measures the redaction engine against the labelled
// corpus in redact/testdata/corpus and prints a markdown table per kind:
// planted values, how many a finding of the right kind covers entirely
// (recall), false positives (findings that overlap no planted value) and
// collateral bytes (bytes redacted that were not part of a planted value),
// with the secret recall of gitleaks v8 (default rules) next to it.
//
//	go run ./bench/scorecard                        # print the table
//	go run ./bench/scorecard -v                     # also list misses and false positives
//	go run ./bench/scorecard -out docs/REDACTION.md # write it into the doc
//	go run ./bench/scorecard -generate              # rewrite the corpus (fixed seed)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/custos-dev/custos/bench/scorecard/corpus"
)

// Markers around the generated table in docs/REDACTION.md.
const (
	beginMarker = "<!-- scorecard:begin -->"
	endMarker   = "<!-- scorecard:end -->"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scorecard:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dir      = flag.String("corpus", corpus.DefaultDir(), "corpus directory")
		gen      = flag.Bool("generate", false, "regenerate the corpus and labels.json from the fixed seed, then exit")
		out      = flag.String("out", "", "write the table into this markdown file between "+beginMarker+" and "+endMarker)
		verbose  = flag.Bool("v", false, "list misses and false positives (prints the fake planted values)")
		gitleaks = flag.Bool("gitleaks", true, "add the secret recall of gitleaks")
	)
	flag.Parse()
	if *gen {
		return generate(*dir)
	}
	c, err := corpus.Load(*dir)
	if err != nil {
		return err
	}
	results, err := scoreCustos(c)
	if err != nil {
		return err
	}
	var gl *corpus.GitleaksResult
	if *gitleaks {
		if gl, err = corpus.ScoreGitleaks(c); err != nil {
			return fmt.Errorf("gitleaks: %w", err)
		}
	}
	table := corpus.Markdown(results, gl)
	counts := map[string]int{}
	for _, l := range c.Labels {
		counts[l.Kind]++
	}
	summary := fmt.Sprintf("Corpus: %d files, %d bytes, %d planted values (%s).", len(c.Names), c.Size(), len(c.Labels), kindCounts(counts))
	if gl != nil {
		summary += fmt.Sprintf(" gitleaks %s (default rules): %d findings, %d overlapping no planted value.", corpus.GitleaksVersion, gl.Findings, gl.FP)
	}
	fmt.Println(summary)
	fmt.Println()
	fmt.Print(table)
	if *verbose {
		printDetails(results, gl)
	}
	if *out != "" {
		body := summary + "\n\n" + table
		if err := corpus.WriteBetween(filepath.Clean(*out), beginMarker, endMarker, body); err != nil {
			return err
		}
		fmt.Println("\nwrote", *out)
	}
	return nil
}

func kindCounts(counts map[string]int) string {
	var parts []string
	for _, k := range corpus.Kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

func printDetails(results []*corpus.Result, gl *corpus.GitleaksResult) {
	for _, r := range results {
		if r.Kind == "total" {
			continue
		}
		for _, m := range r.Misses {
			fmt.Printf("MISS %-6s %-22s %q", m.Kind, m.File, short(m.Value))
			if m.Partial != "" {
				fmt.Printf("  (%s)", m.Partial)
			}
			fmt.Println()
		}
		for _, fp := range r.FPs {
			fmt.Printf("FP   %-6s %-22s %-28s %q\n", fp.Kind, fp.File, fp.RuleID, short(fp.Text))
		}
	}
	if gl != nil {
		for _, m := range gl.Misses {
			fmt.Printf("GITLEAKS MISS %-22s %q\n", m.File, short(m.Value))
		}
	}
}

func short(s string) string {
	if len(s) > 70 {
		return s[:67] + "…"
	}
	return s
}
