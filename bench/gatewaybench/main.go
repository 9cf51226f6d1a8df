// Command gatewaybench measures the latency the custos model gateway adds
// to a model request, next to a bare reverse proxy, in one run on loopback.
//
//	go run ./bench/gatewaybench                              # print the table
//	go run ./bench/gatewaybench -duration 8s -rate 2000      # longer phases
//	go run ./bench/gatewaybench -out docs/GATEWAY-BENCH.md   # also write it to a file
//	go run ./bench/gatewaybench -cpuprofile cpu.out          # see below
//
// The command is the load generator. It starts three servers, each in a
// process of its own (its own executable again, see serveRole) on a
// loopback listener, as they would run in production: a mock upstream
// speaking the OpenAI chat completions format (a precomputed JSON answer, or
// an SSE stream of chunks ending with a usage chunk and [DONE]); a bare
// httputil.ReverseProxy to it; and custos — the real API handler (package
// http, in an http.Server with the custos server's timeouts) with the real
// model gateway mounted, redacting secrets and personal data with the real
// engine, forwarding through the egress client, authenticating the caller's
// API key against the vault service on SQLite. No two share a Go scheduler
// or garbage collector; they share the machine's CPUs. -cpuprofile FILE
// profiles the measured phases: custos's process in FILE, the others in
// FILE.reverse-proxy, FILE.upstream and FILE.load-generator:
//
//	go tool pprof -top cpu.out
//
// -layout one runs all three servers in the load generator's process
// instead (the layout of earlier measurements; one profile in FILE): the
// servers then share one Go runtime with each other and with the load.
//
// -baseline EXE measures a second custos, served by EXE, as a fourth target
// in the same phases, so a change is compared with what it changes in one
// run instead of across runs (which differ more on a busy machine than
// most changes do). EXE is another build of this command, or "self" for
// this one (an A/A run: the difference two identical servers show is the
// noise). -baseline-rules=false serves it without redaction rules, which
// shows what the redaction pass costs:
//
//	git stash && go build -o /tmp/base ./bench/gatewaybench && git stash pop
//	go run ./bench/gatewaybench -baseline /tmp/base
//
// -custos-env and -baseline-env add settings to those processes'
// environments, so a runtime setting is compared in one run too
// (-baseline self -baseline-env GOGC=1600), or traced (-custos-env
// GODEBUG=gctrace=1). -latencies FILE writes every request of the
// fixed-rate phases with its scheduled send time, to see when the slow
// ones came — together after a stall, or one by one. -pace exact sends
// the fixed-rate requests evenly spaced (nanosleep, Linux) instead of on
// Go's timers, which let them leave in bursts of two or three.
//
// The client sends an 8 KB chat request (a system prompt and a user message
// with code, holding planted fake secrets) to each of the three targets —
// direct to the upstream, through the reverse proxy, through custos — non
// streaming and streaming, and measures: latency one request at a time
// (interleaved over the targets), latency at a fixed open-loop rate (-rate,
// measured from each request's scheduled time, so a slow target cannot hide
// its queueing), and throughput with -conc concurrent clients. The rate and
// throughput phases are split into -rounds rounds that rotate the targets.
// Added latency is a target's percentile minus the direct one of the same
// phase. Before measuring, it checks once that the upstream never sees a
// planted value and that the caller gets every one back restored; a broken
// setup exits 1, a missed target never does.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

// The targets of the issue.
const (
	targetP50     = 250 * time.Microsecond // added p50 at -rate
	targetP99     = 2 * time.Millisecond   // added p99 at -rate
	targetRatio   = 0.6                    // custos req/s ÷ reverse proxy req/s
	promptSize    = 8 << 10                // bytes of the request body
	benchModel    = "gpt-bench"
	echoModel     = "gpt-bench-echo" // routed to the echo upstream used by the check
	providerToken = "sk-bench-provider-key-0000000000000000"
)

// Published anchors: added latency in an independent localhost benchmark.
const anchors = "Bifrost 0.44 ms, Portkey 2.37 ms, LiteLLM 4.34 ms"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		if err := serveRole(role); err != nil {
			fmt.Fprintf(os.Stderr, "gatewaybench %s: %v\n", role, err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration   time.Duration
	rate       float64
	seqN       int
	conc       int
	rounds     int
	out        string
	cpuprofile string
	layout     string
	memprofile string
	baseline   string // the executable serving the baseline custos, or ""
	baseRules  bool   // the baseline redacts with custos's rules
	custosEnv  string // KEY=VALUE ... added to custos's environment
	baseEnv    string // and to the baseline's
	latencies  string // a CSV file of every request of the fixed-rate phases
	pace       string // paceTimer or paceExact
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "how long each target runs in each rate and throughput phase")
	flag.Float64Var(&o.rate, "rate", 2000, "open-loop request rate (requests/s)")
	flag.IntVar(&o.seqN, "seq", 1000, "requests per target in each sequential phase")
	flag.IntVar(&o.conc, "conc", 32, "concurrent clients in the throughput phase")
	flag.IntVar(&o.rounds, "rounds", 4, "rounds the rate and throughput phases are split into, rotating the targets")
	flag.StringVar(&o.out, "out", "", "also write the table (markdown) to this `FILE`")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured phases to `FILE`")
	flag.StringVar(&o.layout, "layout", layoutProcesses, "where the servers run: "+layoutProcesses+" (each in its own) or "+layoutOne+" (all in this one)")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile to `FILE` at the end")
	flag.StringVar(&o.baseline, "baseline", "", "also measure a second custos served by `EXE`, another build of this command (\"self\": this one), in the same run")
	flag.BoolVar(&o.baseRules, "baseline-rules", true, "the baseline custos redacts with the default rules (false: none, so it still parses the body but finds nothing)")
	flag.StringVar(&o.custosEnv, "custos-env", "", "add these space-separated `KEY=VALUE` settings to custos's environment (e.g. GOGC=800 GODEBUG=gctrace=1; processes layout)")
	flag.StringVar(&o.baseEnv, "baseline-env", "", "the same for the baseline custos, e.g. to compare a runtime setting with -baseline self")
	flag.StringVar(&o.latencies, "latencies", "", "write every request of the fixed-rate phases to `FILE` (CSV: mode, target, scheduled send time in Unix ns, latency in ns, error)")
	flag.StringVar(&o.pace, "pace", paceTimer, "how the fixed-rate sender waits: "+paceTimer+" (Go's timers: bursts of two or three a millisecond) or "+paceExact+" (nanosleep: evenly spaced; Linux)")
	flag.Parse()
	if o.pace != paceTimer && (o.pace != paceExact || !exactPacing) {
		return fmt.Errorf("-pace %q: want %s or (on Linux) %s", o.pace, paceTimer, paceExact)
	}
	if o.duration <= 0 || o.rate <= 0 || o.seqN <= 0 || o.conc <= 0 || o.rounds <= 0 {
		return errors.New("-duration, -rate, -seq, -conc and -rounds must be positive")
	}
	custosEnv, err := envList(o.custosEnv)
	if err != nil {
		return fmt.Errorf("-custos-env: %w", err)
	}
	baseEnv, err := envList(o.baseEnv)
	if err != nil {
		return fmt.Errorf("-baseline-env: %w", err)
	}
	gogc := setGC() // as `custos serve` does; each server process too

	tmp, err := os.MkdirTemp("", "custos-gatewaybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fx, err := setup(tmp, o.layout, custosEnv, baseline{exe: o.baseline, noRules: !o.baseRules, env: baseEnv})
	if err != nil {
		return err
	}
	defer fx.close() // before the directory is removed

	p, err := newPrompt()
	if err != nil {
		return err
	}
	if err := fx.check(p); err != nil {
		return fmt.Errorf("redaction check: %w", err)
	}
	fmt.Fprintf(os.Stderr, "check passed: the upstream saw %d placeholders and no planted value; the caller got every value back\n", fx.placeholders)

	modes := []mode{
		{"non-streaming", false, p.plain, bytes.Index(p.plain, []byte(nonceSlot))},
		{"streaming", true, p.stream, bytes.Index(p.stream, []byte(nonceSlot))},
	}
	for _, m := range modes {
		for _, t := range fx.targets {
			if s := t.do(m, time.Now()); !s.ok {
				return fmt.Errorf("%s, %s: first request failed: %s", t.name, m.name, s.err)
			}
		}
	}

	if o.cpuprofile != "" {
		name := o.cpuprofile
		if o.layout == layoutProcesses {
			name += ".load-generator"
		}
		f, err := os.Create(name) // #nosec G304 -- a profile named on the command line
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
		if err := fx.each("profile", o.cpuprofile); err != nil {
			return err
		}
	}

	var lat []latRow
	var tput []tputRow
	var rateSamples []phaseSamples // for -latencies
	var overhead [2][]float64      // custos non-streaming: sequential, at -rate
	for _, m := range modes {
		fmt.Fprintf(os.Stderr, "%s: warm-up and sequential\n", m.name)
		sequential(fx.targets, m, o.seqN/5) // warm-up, discarded
		seq := sequential(fx.targets, m, o.seqN)
		lat = append(lat, latRows(m, "sequential", fx.targets, seq)...)
		fmt.Fprintf(os.Stderr, "%s: %.0f req/s open loop\n", m.name, o.rate)
		ol := rotate(fx.targets, o.rounds, func(t *target) []sample { return openLoop(t, m, o.rate, o.duration/time.Duration(o.rounds), o.pace) })
		lat = append(lat, latRows(m, fmt.Sprintf("%.0f req/s", o.rate), fx.targets, ol)...)
		rateSamples = append(rateSamples, phaseSamples{m, ol})
		if !m.stream {
			overhead[0], overhead[1] = overheads(seq[custosTarget]), overheads(ol[custosTarget])
		}
		fmt.Fprintf(os.Stderr, "%s: throughput, %d clients\n", m.name, o.conc)
		tp := rotate(fx.targets, o.rounds, func(t *target) []sample { return closedLoop(fx, t, m, o.conc, o.duration/time.Duration(o.rounds)) })
		tput = append(tput, tputRows(m, fx.targets, tp)...)
	}

	// The agent loop: the same prompt resent, as an agent resends its
	// history every turn. custos finds its secrets once and then looks
	// the findings up by a keyed digest (not a target; shown for comparison).
	fmt.Fprintf(os.Stderr, "non-streaming, same prompt resent: sequential\n")
	same := mode{"non-streaming", false, p.plain, -1}
	sequential(fx.targets, same, o.seqN/5)
	lat = append(lat, latRows(same, "sequential, same prompt resent", fx.targets, sequential(fx.targets, same, o.seqN))...)

	if o.cpuprofile != "" {
		if err := fx.each("stop", ""); err != nil {
			return err
		}
	}
	if o.memprofile != "" {
		if err := fx.each("allocs", o.memprofile); err != nil {
			return err
		}
		if err := writeAllocs(o.memprofile + ".load-generator"); err != nil {
			return err
		}
	}

	if o.latencies != "" {
		if err := writeLatencies(o.latencies, fx.targets, rateSamples); err != nil {
			return err
		}
	}

	var b strings.Builder
	baseFlags := "" // the flags that change what is measured, beyond the table's
	if o.pace != paceTimer {
		baseFlags += " -pace " + o.pace
	}
	if len(custosEnv) > 0 {
		baseFlags += fmt.Sprintf(" -custos-env '%s'", strings.Join(custosEnv, " "))
	}
	if o.baseline != "" {
		baseFlags += fmt.Sprintf(" -baseline %s -baseline-rules=%v", o.baseline, o.baseRules)
		if len(baseEnv) > 0 {
			baseFlags += fmt.Sprintf(" -baseline-env '%s'", strings.Join(baseEnv, " "))
		}
	}
	fmt.Fprintf(&b, "Measured %s on %s/%s, %d CPUs, %s, GOGC=%s; command: `go run ./bench/gatewaybench -layout %s -duration %s -rate %.0f -seq %d -conc %d -rounds %d%s`\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), gogc,
		o.layout, o.duration, o.rate, o.seqN, o.conc, o.rounds, baseFlags)
	where := "each in a process of its own"
	if o.layout == layoutOne {
		where = "all in one process"
	}
	fmt.Fprintf(&b, "On loopback, %s: mock OpenAI upstream, bare `httputil.ReverseProxy`, custos configured as `custos serve` runs it (API handler + model gateway; key, providers, budgets and the org's setup from the vault on SQLite; redaction of secrets, PII and the org's stored values; AI rate limits; usage recorded; egress client), load generator. "+
		"Request: %d-byte chat completion (%d bytes streaming; system + user message with code), %d placeholders per request after custos redacts it (3 planted values: GitHub token, AWS key id, email). "+
		"Latency is to the end of the answer (the end of the stream when streaming); at the fixed rate it counts from each request's scheduled send time. Added = target − direct in the same phase.\n\n",
		where, len(p.plain), len(p.stream), fx.placeholders)
	if o.baseline != "" {
		rules := "with the same redaction rules"
		if !o.baseRules {
			rules = "without redaction rules (it parses the body and finds nothing)"
		}
		fmt.Fprintf(&b, "The baseline rows are a second custos, served by `%s`, %s, in a process and data directory of its own, measured in the same phases.\n\n", o.baseline, rules)
	}
	fmt.Fprintln(&b, "| mode | load | target | requests | errors | p50 | p99 | added p50 | added p99 | first byte p50 | first byte p99 |")
	fmt.Fprintln(&b, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range lat {
		added50, added99, fb50, fb99 := "—", "—", "—", "—"
		if r.target != "direct" {
			added50, added99 = ms(r.added50), ms(r.added99)
		}
		if r.stream {
			fb50, fb99 = ms(r.fb50), ms(r.fb99)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s |\n",
			r.mode, r.load, r.target, r.n, r.errors, ms(r.p50), ms(r.p99), added50, added99, fb50, fb99)
	}
	rateLoad := fmt.Sprintf("%.0f req/s", o.rate)
	d := findLat(lat, "non-streaming", rateLoad, "direct")
	if o.pace == paceExact {
		fmt.Fprintf(&b, "\nAt %s the load generator itself sends p50 %s, p99 %s after the scheduled time (-pace exact: a sender thread in nanosleep, requests evenly spaced).\n",
			rateLoad, ms(d.late50), ms(d.late99))
	} else {
		fmt.Fprintf(&b, "\nAt %s the load generator itself sends p50 %s, p99 %s after the scheduled time: Go's timers wake its sender to the millisecond, so requests leave in bursts of two or three. That lag is in every row of the phase, direct included; the bursts are not neutral: on the 2-CPU VM of docs/PERFORMANCE.md the proxied rows' added latency is lower with them than with evenly spaced requests (-pace exact).\n",
			rateLoad, ms(d.late50), ms(d.late99))
	}
	fmt.Fprintf(&b, "\nThroughput, %d concurrent clients:\n\n", o.conc)
	fmt.Fprintln(&b, "| mode | target | requests | errors | req/s | vs reverse proxy | CPU µs/request | of which the target |")
	fmt.Fprintln(&b, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, r := range tput {
		own := "—"
		if r.target != "direct" {
			own = fmt.Sprintf("%.0f", float64(r.own)/1e3)
			if o.layout == layoutOne {
				own = fmt.Sprintf("%.0f", float64(r.cpu-findTput(tput, r.mode, "direct").cpu)/1e3)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.0f | %.2f× | %.0f | %s |\n", r.mode, r.target, r.n, r.errors, r.rps, r.ratio, float64(r.cpu)/1e3, own)
	}
	fmt.Fprintln(&b, "\nCPU µs/request is the CPU time of all the bench's processes (load generator, upstream, both proxies) in the phase over its requests;")
	if o.layout == layoutOne {
		fmt.Fprintln(&b, "\"of which the target\" subtracts the direct row's, leaving what the proxy in between costs per request.")
	} else {
		fmt.Fprintln(&b, "\"of which the target\" is the reverse proxy's or custos's own process alone.")
	}
	fmt.Fprintln(&b, "\nTargets (custos):")
	fmt.Fprintln(&b, "\n| mode | target | measured | result | the bare reverse proxy, same phase |")
	fmt.Fprintln(&b, "|---|---|--:|---|--:|")
	for _, m := range modes {
		c, rp := findLat(lat, m.name, rateLoad, "custos"), findLat(lat, m.name, rateLoad, "reverse proxy")
		fmt.Fprintf(&b, "| %s | added p50 at %s ≤ %s | %s | %s | %s |\n", m.name, rateLoad, ms(targetP50), ms(c.added50), latVerdict(c.errors, c.added50, targetP50), ms(rp.added50))
		fmt.Fprintf(&b, "| %s | added p99 at %s ≤ %s | %s | %s | %s |\n", m.name, rateLoad, ms(targetP99), ms(c.added99), latVerdict(c.errors, c.added99, targetP99), ms(rp.added99))
		tr := findTput(tput, m.name, "custos")
		fmt.Fprintf(&b, "| %s | throughput ≥ %.1f× reverse proxy | %.2f× | %s | 1.00× |\n", m.name, targetRatio, tr.ratio, verdict(tr.errors == 0 && tr.ratio >= targetRatio))
	}
	var errs []string
	for _, r := range lat {
		if r.errors > 0 {
			errs = append(errs, fmt.Sprintf("- %s, %s, %s: %d failed; first: %s", r.mode, r.load, r.target, r.errors, r.firstErr))
		}
	}
	for _, r := range tput {
		if r.errors > 0 {
			errs = append(errs, fmt.Sprintf("- %s, throughput, %s: %d failed; first: %s", r.mode, r.target, r.errors, r.firstErr))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "\nFailed requests:\n\n%s\n", strings.Join(errs, "\n"))
	}
	seqC := findLat(lat, "non-streaming", "sequential", "custos")
	rateC := findLat(lat, "non-streaming", rateLoad, "custos")
	fmt.Fprintf(&b, "\ncustos' own `X-Custos-Overhead-Ms` (non-streaming): sequential p50 %s, p99 %s; at %s p50 %s, p99 %s.\n",
		msf(fpct(overhead[0], 50)), msf(fpct(overhead[0], 99)), rateLoad, msf(fpct(overhead[1], 50)), msf(fpct(overhead[1], 99)))
	fmt.Fprintf(&b, "\nPublished anchors (added latency, independent localhost benchmark): %s. custos, non-streaming: added p50 %s sequential, %s at %s.\n",
		anchors, ms(seqC.added50), ms(rateC.added50), rateLoad)

	fmt.Print(b.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.String()), 0o600)
	}
	return nil
}

// noResult is the verdict on an added latency below zero: the direct row's
// own percentile was the higher one (a stall of the machine in that
// phase), so the difference says nothing about the target.
const noResult = "NO RESULT (direct's own percentile was higher: noise; run again)"

// latVerdict judges an added latency against its target; any failed
// request is a miss, since percentiles of the rest mean little.
func latVerdict(errors int, added, target time.Duration) string {
	switch {
	case errors > 0:
		return verdict(false)
	case added < 0:
		return noResult
	}
	return verdict(added <= target)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func msf(v float64) string { return fmt.Sprintf("%.3f ms", v) }
