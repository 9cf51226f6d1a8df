// Command redactbench measures how fast the redaction engine scans text,
// next to the gitleaks v8 detector used as a library, in the same run on the
// same input, on one goroutine.
//
//	go run ./bench/redactbench                          # print the table
//	go run ./bench/redactbench -time 5s                 # longer runs
//	go run ./bench/redactbench -out docs/REDACTION.md   # write it into the doc
//
// Input: the Go files of this repository (outside testdata), concatenated in
// path order and cut into 8 KB fragments, plus the labelled corpus
// (redact/testdata/corpus) cut the same way. Each engine gets one warm-up
// pass (which also counts its findings), then whole passes until -time has
// elapsed. gitleaks is a dependency of this command only, never of the
// custos binary.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/custos-dev/custos/bench/scorecard/corpus"
)

// fragmentSize is the size of one "prompt".
const fragmentSize = 8 << 10

// Markers around the generated table in docs/REDACTION.md.
const (
	beginMarker = "<!-- redactbench:begin -->"
	endMarker   = "<!-- redactbench:end -->"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "redactbench:", err)
		os.Exit(1)
	}
}

// engine is one detector under test: scan returns its number of findings.
type engine struct {
	name string
	scan func([]byte) int
}

type result struct {
	name                  string
	mbps, usPerFragment   float64
	findingsGo, findingsC int
	passes                int
}

func run() error {
	var (
		minTime = flag.Duration("time", 2*time.Second, "minimum measured time per engine")
		dir     = flag.String("corpus", corpus.DefaultDir(), "corpus directory")
		out     = flag.String("out", "", "write the table into this markdown file between "+beginMarker+" and "+endMarker)
	)
	flag.Parse()
	root, err := corpus.ModuleRoot()
	if err != nil {
		return err
	}
	goSrc, nGo, err := goSources(root)
	if err != nil {
		return err
	}
	c, err := corpus.Load(*dir)
	if err != nil {
		return err
	}
	var cb bytes.Buffer
	for _, name := range c.Names {
		cb.Write(c.Files[name])
		cb.WriteByte('\n')
	}
	goFrags := cut(goSrc, false)
	corpusFrags := cut(cb.Bytes(), true)

	var engines []engine
	for _, v := range []struct {
		name              string
		secrets, personal bool
	}{
		{"custos (secrets + PII)", true, true},
		{"custos (secrets only)", true, false},
		{"custos (PII only)", false, true},
	} {
		e, err := corpus.NewCustos(v.secrets, v.personal)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		engines = append(engines, engine{v.name, func(b []byte) int { return len(e.Find(b)) }})
	}
	gl, err := corpus.NewGitleaks()
	if err != nil {
		return fmt.Errorf("gitleaks: %w", err)
	}
	engines = append(engines, engine{"gitleaks " + corpus.GitleaksVersion + " (DetectBytes)", func(b []byte) int { return len(gl.DetectBytes(b)) }})

	frags := append(append([][]byte(nil), goFrags...), corpusFrags...)
	total := 0
	for _, f := range frags {
		total += len(f)
	}
	var results []result
	for _, e := range engines {
		results = append(results, measure(e, goFrags, corpusFrags, frags, total, *minTime))
	}
	glScore, err := corpus.ScoreGitleaks(c)
	if err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Input: %d fragments of 8 KB of Go source (%d files of this repository, %.1f MB) and %d of the corpus (%d files, %d bytes). ",
		len(goFrags), nGo, float64(len(goSrc))/1e6, len(corpusFrags), len(c.Names), c.Size())
	fmt.Fprintf(&b, "One goroutine, warm-up pass, then at least %s per engine. %s, %s/%s, GOMAXPROCS=%d, %s.\n\n",
		*minTime, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cpuModel())
	b.WriteString("| engine | MB/s | µs per 8 KB | findings (Go source) | findings (corpus) |\n|---|--:|--:|--:|--:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %d | %d |\n", r.name, r.mbps, r.usPerFragment, r.findingsGo, r.findingsC)
	}
	fmt.Fprintf(&b, "\ngitleaks %s secret recall on the corpus: %d of %d (%.0f%%).\n", corpus.GitleaksVersion, glScore.Found, glScore.Planted, 100*glScore.Recall())
	fmt.Print(b.String())
	if *out != "" {
		if err := corpus.WriteBetween(filepath.Clean(*out), beginMarker, endMarker, b.String()); err != nil {
			return err
		}
		fmt.Println("\nwrote", *out)
	}
	return nil
}

// measure runs e over frags: one warm-up pass, then whole passes until
// minTime has elapsed, all on the calling goroutine.
func measure(e engine, goFrags, corpusFrags, frags [][]byte, total int, minTime time.Duration) result {
	r := result{name: e.name}
	for _, f := range goFrags {
		r.findingsGo += e.scan(f)
	}
	for _, f := range corpusFrags {
		r.findingsC += e.scan(f)
	}
	runtime.GC()
	start := time.Now()
	var elapsed time.Duration
	for elapsed < minTime {
		for _, f := range frags {
			e.scan(f)
		}
		r.passes++
		elapsed = time.Since(start)
	}
	bytesDone := float64(total) * float64(r.passes)
	r.mbps = bytesDone / 1e6 / elapsed.Seconds()
	r.usPerFragment = float64(elapsed.Microseconds()) / (bytesDone / fragmentSize)
	fmt.Fprintf(os.Stderr, "%-34s %3d passes in %s\n", e.name, r.passes, elapsed.Round(time.Millisecond))
	return r
}

// cut splits b into fragments of fragmentSize; the short tail is kept only
// when keepTail is set.
func cut(b []byte, keepTail bool) [][]byte {
	var out [][]byte
	for len(b) >= fragmentSize {
		out = append(out, b[:fragmentSize:fragmentSize])
		b = b[fragmentSize:]
	}
	if keepTail && len(b) > 0 {
		out = append(out, b)
	}
	return out
}

// goSources concatenates the .go files under root in path order, skipping
// testdata, vendor and hidden directories.
func goSources(root string) ([]byte, int, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	for _, p := range paths {
		b, err := os.ReadFile(p) // #nosec G304 -- walking this repository's own source
		if err != nil {
			return nil, 0, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), len(paths), nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "cpu unknown"
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu unknown"
}
