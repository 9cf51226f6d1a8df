package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// phaseSamples is one fixed-rate phase's samples, per target.
type phaseSamples struct {
	m       mode
	samples [][]sample
}

// writeLatencies writes every request of the phases to a CSV file, one row
// each: the mode, the target, when it was to be sent (Unix ns) and its
// latency (ns), and its error if it failed. The table shows percentiles;
// the rows show when the slow requests came (together, after a stall, or
// spread out), which percentiles cannot.
func writeLatencies(name string, ts []*target, phases []phaseSamples) error {
	f, err := os.Create(name) // #nosec G304 -- a file named on the command line
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	w := csv.NewWriter(bw)
	_ = w.Write([]string{"mode", "target", "scheduled_unix_ns", "latency_ns", "error"})
	for _, ph := range phases {
		for k, ss := range ph.samples {
			for _, s := range ss {
				_ = w.Write([]string{ph.m.name, ts[k].name, strconv.FormatInt(s.at.UnixNano(), 10), strconv.FormatInt(int64(s.lat), 10), s.err})
			}
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		_ = f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// envList parses -custos-env's space-separated KEY=VALUE settings.
func envList(s string) ([]string, error) {
	var env []string
	for _, kv := range strings.Fields(s) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		env = append(env, kv)
	}
	return env, nil
}
