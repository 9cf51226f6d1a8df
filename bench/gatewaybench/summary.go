package main

import (
	"sort"
	"time"
)

// ---- summaries ----

type latRow struct {
	mode, load, target string
	stream             bool
	n, errors          int
	p50, p99           time.Duration
	fb50, fb99         time.Duration
	late50, late99     time.Duration
	firstErr           string
	added50, added99   time.Duration
}

// latRows summarizes one phase; samples are in the order of ts, direct
// first.
func latRows(m mode, load string, ts []*target, samples [][]sample) []latRow {
	var rows []latRow
	for i, ss := range samples {
		var lat, fb, late []time.Duration
		errs, firstErr := 0, ""
		for _, s := range ss {
			late = append(late, s.late)
			if !s.ok {
				if errs == 0 {
					firstErr = s.err
				}
				errs++
				continue
			}
			lat, fb = append(lat, s.lat), append(fb, s.ttfb)
		}
		r := latRow{mode: m.name, load: load, target: ts[i].name, stream: m.stream, n: len(ss), errors: errs,
			p50: pct(lat, 50), p99: pct(lat, 99), fb50: pct(fb, 50), fb99: pct(fb, 99), late50: pct(late, 50), late99: pct(late, 99), firstErr: firstErr}
		if i > 0 {
			r.added50, r.added99 = r.p50-rows[directTarget].p50, r.p99-rows[directTarget].p99
		}
		rows = append(rows, r)
	}
	return rows
}

type tputRow struct {
	mode, target string
	firstErr     string
	n, errors    int
	rps, ratio   float64
	cpu          time.Duration // CPU per request, all processes
	own          time.Duration // CPU per request, the target's own process
}

func tputRows(m mode, ts []*target, samples [][]sample) []tputRow {
	var rows []tputRow
	for i, ss := range samples {
		var el, cpu, own time.Duration
		r := tputRow{mode: m.name, target: ts[i].name}
		for _, s := range ss {
			switch {
			case s.err == elapsedMarker:
				el += s.lat
			case s.err == cpuMarker:
				cpu += s.lat
			case s.err == ownMarker:
				own += s.lat
			case s.ok:
				r.n++
			default:
				if r.errors == 0 {
					r.firstErr = s.err
				}
				r.n++
				r.errors++
			}
		}
		r.rps = float64(r.n-r.errors) / el.Seconds()
		if r.n > 0 {
			r.cpu, r.own = cpu/time.Duration(r.n), own/time.Duration(r.n)
		}
		rows = append(rows, r)
	}
	for i := range rows {
		rows[i].ratio = rows[i].rps / rows[proxyTarget].rps
	}
	return rows
}

func findLat(rows []latRow, m, load, target string) latRow {
	for _, r := range rows {
		if r.mode == m && r.load == load && r.target == target {
			return r
		}
	}
	return latRow{}
}

func findTput(rows []tputRow, m, target string) tputRow {
	for _, r := range rows {
		if r.mode == m && r.target == target {
			return r
		}
	}
	return tputRow{}
}

// overheads returns the X-Custos-Overhead-Ms values of ss.
func overheads(ss []sample) []float64 {
	var out []float64
	for _, s := range ss {
		if s.ok && s.overhead >= 0 {
			out = append(out, s.overhead)
		}
	}
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[pctIndex(len(d), p)]
}

func fpct(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[pctIndex(len(v), p)]
}

// pctIndex is the nearest-rank index of percentile p among n values.
func pctIndex(n, p int) int {
	i := (n*p + 99) / 100
	if i >= n {
		return n - 1
	} else if i > 0 {
		i--
	}
	return i
}
