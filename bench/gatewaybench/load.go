package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ---- the load generator ----

// mode is non-streaming or streaming, with its request body.
type mode struct {
	name   string
	stream bool
	body   []byte
	nonce  int // offset of the nonce slot in body; -1: send body unchanged
}

// nonceSlot is replaced in every request by a number of its own, so no two
// requests carry the same text and custos's cache of findings cannot make
// the cold path look faster than it is.
const nonceSlot = "NONCE-0000000000"

var nonces atomic.Uint64

// payload returns the body of one request: a copy of m.body with a fresh
// nonce, or m.body itself.
func (m mode) payload() []byte {
	if m.nonce < 0 {
		return m.body
	}
	b := bytes.Clone(m.body)
	copy(b[m.nonce+len("NONCE-"):m.nonce+len(nonceSlot)], fmt.Sprintf("%010d", nonces.Add(1)%1e10))
	return b
}

// target is one endpoint under test with its own connection pool.
type target struct {
	name   string
	url    string
	token  string
	proc   *proc // the server process in between; nil for direct
	client *http.Client
	bufs   sync.Pool
}

func newTarget(name, u, token string, p *proc) *target {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	return &target{name: name, url: u, token: token, proc: p,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		bufs:   sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

func (t *target) request(body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// sample is one request's outcome. Times count from the time given to do.
type sample struct {
	ok        bool
	err       string
	lat, ttfb time.Duration
	at        time.Time     // when it was to be sent (from)
	late      time.Duration // sent this long after from
	overhead  float64       // X-Custos-Overhead-Ms; -1 when absent
}

// firstByte notes when the first body byte arrives.
type firstByte struct {
	r  io.Reader
	at time.Time
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}

var doneEvent = []byte("data: [DONE]")

// do sends one request and reads the whole answer; from is when it was due.
func (t *target) do(m mode, from time.Time) sample {
	s := sample{overhead: -1, at: from, late: time.Since(from)}
	req, err := t.request(m.payload())
	if err != nil {
		s.err = err.Error()
		return s
	}
	resp, err := t.client.Do(req)
	if err != nil {
		s.lat, s.err = time.Since(from), err.Error()
		return s
	}
	fb := &firstByte{r: resp.Body}
	buf := t.bufs.Get().(*bytes.Buffer)
	defer t.bufs.Put(buf)
	buf.Reset()
	_, err = buf.ReadFrom(fb)
	_ = resp.Body.Close()
	end := time.Now()
	s.lat, s.ttfb = end.Sub(from), fb.at.Sub(from)
	switch b := bytes.TrimSpace(buf.Bytes()); {
	case err != nil:
		s.err = err.Error()
	case resp.StatusCode != http.StatusOK:
		s.err = fmt.Sprintf("status %d: %s", resp.StatusCode, clip(b))
	case m.stream && !bytes.HasSuffix(b, doneEvent):
		s.err = "stream did not end with [DONE]"
	case !m.stream && (len(b) == 0 || b[0] != '{' || !bytes.Contains(b, []byte(`"usage"`))):
		s.err = "not a chat completion: " + clip(b)
	default:
		s.ok = true
	}
	if v := resp.Header.Get("X-Custos-Overhead-Ms"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			s.overhead = f
		}
	}
	return s
}

// sequential sends n requests to each target one at a time, interleaving
// the targets (rotating who goes first), and returns each target's samples.
func sequential(ts []*target, m mode, n int) [][]sample {
	out := make([][]sample, len(ts))
	for i := 0; i < n; i++ {
		for j := range ts {
			k := (i + j) % len(ts)
			out[k] = append(out[k], ts[k].do(m, time.Now()))
		}
	}
	return out
}

// rotate runs phase on every target in each of rounds rounds, rotating
// the order, and returns each target's samples of all rounds.
func rotate(ts []*target, rounds int, phase func(*target) []sample) [][]sample {
	out := make([][]sample, len(ts))
	for r := 0; r < rounds; r++ {
		for j := range ts {
			k := (r + j) % len(ts)
			runtime.GC() // start each target from the same load generator heap
			out[k] = append(out[k], phase(ts[k])...)
		}
	}
	return out
}

// The pacing of the open loop (-pace).
const (
	// paceTimer sleeps on Go's timers, which wake a sleeping goroutine on
	// an idle processor to the millisecond (the runtime's netpoll waits in
	// whole milliseconds): at 2,000 req/s requests leave in bursts of two
	// or three. Every measurement up to the ninth pass of issue 6.
	paceTimer = "timer"
	// paceExact sleeps in nanosleep on a thread of its own (Linux):
	// requests leave evenly spaced, within microseconds of their time.
	paceExact = "exact"
)

// timerSleep sleeps until at on Go's timers.
func timerSleep(at time.Time) {
	if w := time.Until(at); w > 0 {
		time.Sleep(w)
	}
}

// openLoop sends at rate req/s for d, each request on schedule whatever
// the previous ones do; latencies count from the scheduled time.
func openLoop(t *target, m mode, rate float64, d time.Duration, pace string) []sample {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	out := make([]sample, n)
	var wg sync.WaitGroup
	sent := make(chan struct{})
	go func() { // a goroutine of its own: exactSleeper ends its thread with it
		defer close(sent)
		sleep := timerSleep
		if pace == paceExact {
			sleep = exactSleeper()
		}
		t0 := time.Now().Add(time.Millisecond)
		for i := 0; i < n; i++ {
			at := t0.Add(time.Duration(i) * interval)
			sleep(at)
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = t.do(m, at)
			}()
		}
	}()
	<-sent
	wg.Wait()
	return out
}

// closedLoop runs conc clients back to back for d. Its last samples are
// not requests but markers (see below) of the phase's wall time and CPU.
func closedLoop(fx *fixture, t *target, m mode, conc int, d time.Duration) []sample {
	var mu sync.Mutex
	var all []sample
	var wg sync.WaitGroup
	var stop atomic.Bool
	start := time.Now()
	cpu0, own0, err := fx.cpu(t)
	if err != nil {
		return []sample{{err: err.Error()}}
	}
	time.AfterFunc(d, func() { stop.Store(true) })
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []sample
			for !stop.Load() {
				t0 := time.Now()
				mine = append(mine, t.do(m, t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, own1, err := fx.cpu(t)
	if err != nil {
		return append(all, sample{err: err.Error()})
	}
	return append(all, sample{err: elapsedMarker, lat: elapsed}, sample{err: cpuMarker, lat: cpu1 - cpu0}, sample{err: ownMarker, lat: own1 - own0})
}

// Markers among a closed loop's samples: the phase's wall time, the CPU
// time of all processes, and that of the target's own process.
const (
	elapsedMarker = "\x00elapsed"
	cpuMarker     = "\x00cpu"
	ownMarker     = "\x00own"
)

// processCPU returns the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
