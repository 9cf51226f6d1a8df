// Command bench measures the vault's value read path against a real custos
// server on loopback and prints a table.
//
//	go run ./bench                 # or: make bench
//	go run ./bench -duration 10s -clients 32 -out docs/PERFORMANCE.md
//
// It builds the custos binary, starts `custos serve` on SQLite in a temp
// dir, creates a secret and an approved member device, then drives
// POST /v1/secrets/access (API key → device → policy → decrypt → audit
// committed) and GET /healthz (the floor) with one sequential client and with
// N concurrent clients. It repeats with --sync full (fsync per commit), kills
// the server with SIGKILL and checks that every acknowledged read has its
// audit event after restart, and times `custos run -- true`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration time.Duration
	seqN     int
	clients  int
	runN     int
	out      string
	database string
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long each concurrent phase runs")
	flag.IntVar(&o.seqN, "seq", 3000, "requests in each sequential phase")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients")
	flag.IntVar(&o.runN, "runs", 30, "`custos run -- true` repetitions")
	flag.StringVar(&o.out, "out", "", "also write the table (markdown) to this file")
	flag.StringVar(&o.database, "database", "", "also measure on PostgreSQL: an admin postgres:// URL (the bench creates and drops its own databases)")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "custos-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "custos")
	fmt.Fprintln(os.Stderr, "building custos…")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/custos") // #nosec G204 -- fixed arguments
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	var rows []row
	var runTimes []time.Duration
	var durability string
	for _, sync := range []string{"normal", "full"} {
		fmt.Fprintf(os.Stderr, "phase: --sync %s\n", sync)
		srv, err := startServer(bin, filepath.Join(tmp, "data-"+sync), sync)
		if err != nil {
			return err
		}
		fx, err := setup(srv)
		if err != nil {
			srv.kill()
			return err
		}
		read := fx.readRequest()
		floor := func() (*http.Request, error) { return http.NewRequest(http.MethodGet, srv.url+"/healthz", nil) }
		label := "sync=" + sync
		rows = append(rows,
			measureSeq(label+", floor GET /healthz, 1 client", floor, o.seqN),
			measureSeq(label+", value read, 1 client", read, o.seqN),
			measureConc(label+fmt.Sprintf(", floor GET /healthz, %d clients", o.clients), floor, o.clients, o.duration),
			measureConc(label+fmt.Sprintf(", value read, %d clients", o.clients), read, o.clients, o.duration),
		)
		if sync == "normal" {
			runTimes, err = timeRun(bin, fx, o.runN)
			if err != nil {
				srv.kill()
				return err
			}
			durability, err = checkDurability(bin, srv, fx, rows)
			if err != nil {
				return err
			}
		} else {
			srv.stop()
		}
	}

	if o.database != "" {
		for _, n := range []int{1, 3} {
			fmt.Fprintf(os.Stderr, "phase: PostgreSQL, %d replica(s)\n", n)
			r, err := measurePostgres(bin, tmp, o, n)
			if err != nil {
				return err
			}
			rows = append(rows, r...)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s/%s, %d CPUs, %s; command: `go run ./bench -duration %s -seq %d -clients %d -runs %d%s`\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), o.duration, o.seqN, o.clients, o.runN, map[bool]string{true: " -database postgres://…", false: ""}[o.database != ""])
	fmt.Fprintln(&b, "| phase | requests | errors | reads/s | p50 | p99 | reads/s vs floor |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|---:|")
	for i, r := range rows {
		ratio := "—"
		if i%2 == 1 { // value row follows its floor row
			ratio = fmt.Sprintf("%.2f", r.rps/rows[i-1].rps)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %s | %s | %s |\n", r.name, r.n, r.errors, r.rps, ms(r.p50), ms(r.p99), ratio)
	}
	sort.Slice(runTimes, func(i, j int) bool { return runTimes[i] < runTimes[j] })
	fmt.Fprintf(&b, "\n`custos run -- true` (fetch all project secrets, exec, wait), %d runs: p50 %s, p90 %s, min %s\n",
		len(runTimes), ms(pct(runTimes, 50)), ms(pct(runTimes, 90)), ms(runTimes[0]))
	fmt.Fprintf(&b, "\nDurability: %s\n", durability)
	fmt.Print(b.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.String()), 0o600)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// server is a running `custos serve` process.
type server struct {
	cmd   *exec.Cmd
	url   string
	data  string
	sync  string
	extra []string
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// benchLimits keeps the rate limiter on the path but never refusing.
var benchLimits = []string{"--rate-key", "1000000000/1m", "--rate-ip", "1000000000/1m"}

func startServer(bin, data, sync string, extra ...string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--addr", addr, "--data", data, "--sync", sync, "--log-level", "error"}, benchLimits...)
	cmd := exec.Command(bin, append(args, extra...)...) // #nosec G204 -- our own binary
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr, data: data, sync: sync, extra: extra}
	for i := 0; i < 200; i++ {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.kill()
	return nil, errors.New("server did not become ready")
}

func (s *server) stop() { _ = s.cmd.Process.Signal(syscall.SIGTERM); _ = s.cmd.Wait() }
func (s *server) kill() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() }

// fixture is a secret and an approved member device.
type fixture struct {
	srv         *server
	urls        []string // replicas to spread reads over (default: srv)
	next        atomic.Uint64
	ownerToken  string
	memberToken string
	body        []byte
}

func (f *fixture) readRequest() func() (*http.Request, error) {
	return func() (*http.Request, error) {
		u := f.srv.url
		if len(f.urls) > 0 {
			u = f.urls[f.next.Add(1)%uint64(len(f.urls))]
		}
		req, err := http.NewRequest(http.MethodPost, u+"/v1/secrets/access", bytes.NewReader(f.body))
		if err != nil {
			return nil, err
		}
		setIdentity(req, f.memberToken)
		return req, nil
	}
}

func setIdentity(req *http.Request, tok string) {
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Custos-Agent", "bench")
	req.Header.Set("X-Custos-Hostname", "bench-host")
	req.Header.Set("X-Custos-User", "bench")
}

func setup(srv *server) (*fixture, error) {
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join(srv.data, "owner.key"))
	if err != nil {
		return nil, err
	}
	f := &fixture{srv: srv, ownerToken: strings.TrimSpace(string(b))}
	owner, err := custoshttp.NewClient(srv.url, custoshttp.ClientOptions{Token: f.ownerToken, Agent: "bench-admin", Hostname: "bench-host", MachineUser: "bench"})
	if err != nil {
		return nil, err
	}
	if _, err := owner.SetSecret(ctx, custos.SetSecretInput{Project: "bench", Name: "DB_PASSWORD", Value: "correct-horse-battery-staple", Tags: map[string]string{"env": "dev"}}); err != nil {
		return nil, fmt.Errorf("set secret: %w", err)
	}
	// A notify-free policy on another tag, so the policy step has work to do.
	if _, err := owner.AddPolicy(ctx, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleBlockAlways}); err != nil {
		return nil, fmt.Errorf("add policy: %w", err)
	}
	_, f.memberToken, err = owner.CreateKey(ctx, custos.CreateKeyInput{Name: "bench", Role: custos.RoleMember})
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	f.body, _ = json.Marshal(custos.AccessRequest{Project: "bench", Names: []string{"DB_PASSWORD"}, Mode: custos.ModeReveal})
	req, _ := f.readRequest()()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		return nil, fmt.Errorf("first read: status %d, want 403 device_pending", resp.StatusCode)
	}
	devs, err := owner.ListDevices(ctx, custos.DevicePending)
	if err != nil || len(devs) != 1 {
		return nil, fmt.Errorf("pending devices: %v %v", devs, err)
	}
	if _, err := owner.ApproveDevice(ctx, devs[0].ID, custos.LevelRead); err != nil {
		return nil, err
	}
	return f, nil
}

// row is one measured phase.
type row struct {
	name      string
	n, errors int
	rps       float64
	p50, p99  time.Duration
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns * 2}}
}

func do(c *http.Client, mk func() (*http.Request, error)) bool {
	req, err := mk()
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == 200
}

func measureSeq(name string, mk func() (*http.Request, error), n int) row {
	c := newClient(1)
	for i := 0; i < n/10; i++ { // warm up
		do(c, mk)
	}
	lat := make([]time.Duration, 0, n)
	errs := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		t := time.Now()
		if !do(c, mk) {
			errs++
		}
		lat = append(lat, time.Since(t))
	}
	el := time.Since(start)
	return summarize(name, lat, errs, el)
}

func measureConc(name string, mk func() (*http.Request, error), clients int, d time.Duration) row {
	c := newClient(clients)
	var mu sync.Mutex
	var all []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				t := time.Now()
				if !do(c, mk) {
					errs.Add(1)
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize(name, all, int(errs.Load()), time.Since(start))
}

func summarize(name string, lat []time.Duration, errs int, el time.Duration) row {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return row{name: name, n: len(lat), errors: errs, rps: float64(len(lat)-errs) / el.Seconds(), p50: pct(lat, 50), p99: pct(lat, 99)}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	if i >= len(d) {
		i = len(d) - 1
	} else if i > 0 {
		i--
	}
	return d[i]
}

// timeRun times `custos run -- true` as the member key. The CLI's device
// (this machine's hostname and user) is approved after its first, pending try.
func timeRun(bin string, fx *fixture, n int) ([]time.Duration, error) {
	env := append(os.Environ(), "CUSTOS_URL="+fx.srv.url, "CUSTOS_API_KEY="+fx.memberToken, "CUSTOS_AGENT=bench-cli")
	first := exec.Command(bin, "run", "--project", "bench", "--", "true") // #nosec G204 -- our own binary
	first.Env = env
	if err := first.Run(); err == nil {
		return nil, errors.New("custos run from a new device succeeded before approval")
	}
	owner, err := custoshttp.NewClient(fx.srv.url, custoshttp.ClientOptions{Token: fx.ownerToken, Agent: "bench-admin", Hostname: "bench-host", MachineUser: "bench"})
	if err != nil {
		return nil, err
	}
	devs, err := owner.ListDevices(context.Background(), custos.DevicePending)
	if err != nil || len(devs) != 1 {
		return nil, fmt.Errorf("pending cli device: %v %v", devs, err)
	}
	if _, err := owner.ApproveDevice(context.Background(), devs[0].ID, custos.LevelRead); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := 0; i < n+2; i++ {
		cmd := exec.Command(bin, "run", "--project", "bench", "--", "true") // #nosec G204 -- our own binary
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t := time.Now()
		err := cmd.Run()
		d := time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("custos run -- true: %v: %s", err, stderr.String())
		}
		if i >= 2 { // first runs warm the page cache
			out = append(out, d)
		}
	}
	return out, nil
}

// checkDurability kills the server with SIGKILL right after the load and
// checks, after a restart, that the audit log holds at least one reveal
// event per acknowledged read and that the chain verifies.
func checkDurability(bin string, srv *server, fx *fixture, rows []row) (string, error) {
	owner, err := custoshttp.NewClient(srv.url, custoshttp.ClientOptions{Token: fx.ownerToken, Agent: "bench-admin", Hostname: "bench-host", MachineUser: "bench"})
	if err != nil {
		return "", err
	}
	before, err := countReveals(owner)
	if err != nil {
		return "", err
	}
	// A burst of reads, then kill -9 at once.
	c := newClient(8)
	var acked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if do(c, fx.readRequest()) {
					acked.Add(1)
				}
			}
		}()
	}
	time.Sleep(1 * time.Second)
	_ = srv.cmd.Process.Signal(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	_ = srv.cmd.Wait()

	srv2, err := startServer(bin, srv.data, srv.sync, srv.extra...)
	if err != nil {
		return "", err
	}
	defer srv2.stop()
	owner2, _ := custoshttp.NewClient(srv2.url, custoshttp.ClientOptions{Token: fx.ownerToken, Agent: "bench-admin", Hostname: "bench-host", MachineUser: "bench"})
	after, err := countReveals(owner2)
	if err != nil {
		return "", err
	}
	v, err := owner2.VerifyAudit(context.Background())
	if err != nil {
		return "", err
	}
	got := after - before
	verdict := "PASS"
	if got < acked.Load() || !v.OK {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%s — SIGKILL during a read burst: %d reads acknowledged, %d reveal events durable after restart (≥ acknowledged required; events may exceed acks for reads in flight), chain verifies: %v (%d events).",
		verdict, acked.Load(), got, v.OK, v.Events), nil
}

func countReveals(c *custoshttp.Client) (int64, error) {
	var n int64
	var after int64
	for {
		evs, err := c.ListAudit(context.Background(), custos.AuditFilter{AfterSeq: after, Limit: 10000})
		if err != nil {
			return 0, err
		}
		for _, e := range evs {
			if e.Action == custos.ActionSecretReveal {
				n++
			}
		}
		if len(evs) < 10000 {
			return n, nil
		}
		after = evs[len(evs)-1].Seq
	}
}

// measurePostgres starts n replicas on a fresh PostgreSQL database (one
// shared data dir for the KEK) and measures the floor and the value read,
// with reads spread round-robin over the replicas.
func measurePostgres(bin, tmp string, o options, n int) ([]row, error) {
	ctx := context.Background()
	db, drop, err := freshDatabase(ctx, o.database)
	if err != nil {
		return nil, err
	}
	defer drop()
	data := filepath.Join(tmp, fmt.Sprintf("data-pg-%d", n))
	var srvs []*server
	defer func() {
		for _, s := range srvs {
			s.stop()
		}
	}()
	for i := 0; i < n; i++ {
		s, err := startServer(bin, data, "normal", "--database", db)
		if err != nil {
			return nil, err
		}
		srvs = append(srvs, s)
	}
	fx, err := setup(srvs[0])
	if err != nil {
		return nil, err
	}
	for _, s := range srvs {
		fx.urls = append(fx.urls, s.url)
	}
	var next atomic.Uint64
	floor := func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, srvs[next.Add(1)%uint64(len(srvs))].url+"/healthz", nil)
	}
	label := fmt.Sprintf("PostgreSQL, %d replica(s)", n)
	return []row{
		measureSeq(label+", floor GET /healthz, 1 client", floor, o.seqN),
		measureSeq(label+", value read, 1 client", fx.readRequest(), o.seqN),
		measureConc(label+fmt.Sprintf(", floor GET /healthz, %d clients", o.clients), floor, o.clients, o.duration),
		measureConc(label+fmt.Sprintf(", value read, %d clients", o.clients), fx.readRequest(), o.clients, o.duration),
	}, nil
}

// freshDatabase creates an empty database on the server of admin and
// returns its URL and a function that drops it.
func freshDatabase(ctx context.Context, admin string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", redact(admin), err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("custos_bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		if c, err := pgx.Connect(context.Background(), admin); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	}, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(URL)"
	}
	return p.Redacted()
}
