package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

// requireEnv returns the environment variable name, skipping the test when
// it is absent, unless CUSTOS_REQUIRE_SERVICES=1 (the test command sets it),
// where an absent server is a failure.
func requireEnv(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CUSTOS_REQUIRE_SERVICES") == "1" {
			tb.Fatalf("%s is not set but CUSTOS_REQUIRE_SERVICES=1", name)
		}
		tb.Skipf("%s not set: start the servers with scripts/services.sh", name)
	}
	return v
}

// freshDatabase creates an empty PostgreSQL database for one test on the
// server at CUSTOS_TEST_POSTGRES_URL and returns its URL.
func freshDatabase(tb testing.TB) string {
	tb.Helper()
	admin := requireEnv(tb, "CUSTOS_TEST_POSTGRES_URL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "custos_e2e_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

// replica is one `custos serve` process (the test binary in custos mode).
type replica struct {
	cmd    *exec.Cmd
	url    string
	args   []string
	stdout *syncBuffer
	stderr *syncBuffer
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startReplica starts `custos serve` with args plus a free loopback address
// and waits until it is ready.
func startReplica(tb testing.TB, args ...string) *replica {
	tb.Helper()
	r := &replica{args: args}
	r.start(tb)
	tb.Cleanup(r.kill)
	return r
}

func (r *replica) start(tb testing.TB) {
	tb.Helper()
	addr := freeAddr(tb)
	r.stdout, r.stderr = &syncBuffer{}, &syncBuffer{}
	r.cmd = exec.Command(os.Args[0], append([]string{"serve", "--addr", addr, "--log-level", "warn"}, r.args...)...) // #nosec G204 -- the test binary
	r.cmd.Env = append(os.Environ(), "CUSTOS_TEST_CHILD=custos")
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	if err := r.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	r.url = "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(r.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if r.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.kill()
	tb.Fatalf("replica did not become ready: %s %s", r.stdout.String(), r.stderr.String())
}

func (r *replica) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// client returns an API client for r with tok, from a fixed device.
func (r *replica) client(tb testing.TB, tok, agent string) *custoshttp.Client {
	tb.Helper()
	c, err := custoshttp.NewClient(r.url, custoshttp.ClientOptions{Token: tok, Agent: agent, Hostname: "laptop", MachineUser: "alice",
		HTTPClient: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// cluster is three replicas on one PostgreSQL and one Redis, sharing one
// data dir (the KEK file, the owner key).
type cluster struct {
	replicas []*replica
	data     string
	owner    string
}

func startCluster(tb testing.TB, n int, extra ...string) *cluster {
	tb.Helper()
	db := freshDatabase(tb)
	redis := requireEnv(tb, "CUSTOS_TEST_REDIS_URL")
	c := &cluster{data: filepath.Join(tb.TempDir(), "custos-data")}
	args := append([]string{"--data", c.data, "--database", db, "--redis", redis}, extra...)
	// Start them together: migrations and bootstrap must not race.
	rs := make([]*replica, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails []string
	for i := range rs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &replica{args: args}
			t := &captureTB{TB: tb}
			func() {
				defer func() { _ = recover() }()
				r.start(t)
			}()
			if t.failed != "" {
				mu.Lock()
				fails = append(fails, t.failed)
				mu.Unlock()
				return
			}
			rs[i] = r
		}(i)
	}
	wg.Wait()
	for _, r := range rs {
		if r != nil {
			tb.Cleanup(r.kill)
		}
	}
	if len(fails) > 0 {
		tb.Fatalf("replicas failed to start: %v", fails)
	}
	c.replicas = rs
	firsts := 0
	for _, r := range rs {
		if strings.Contains(r.stdout.String(), "first start") {
			firsts++
		}
	}
	if firsts != 1 {
		tb.Fatalf("%d replicas bootstrapped the org, want exactly 1", firsts)
	}
	b, err := os.ReadFile(filepath.Join(c.data, "owner.key"))
	if err != nil {
		tb.Fatal(err)
	}
	c.owner = strings.TrimSpace(string(b))
	return c
}

// captureTB records a Fatal instead of ending the goroutine's test.
type captureTB struct {
	testing.TB
	failed string
}

func (c *captureTB) Helper() {}
func (c *captureTB) Fatalf(f string, args ...any) {
	c.failed = fmt.Sprintf(f, args...)
	panic(c.failed)
}
func (c *captureTB) Fatal(args ...any) { c.failed = fmt.Sprint(args...); panic(c.failed) }

// approve makes tok's device (agent) known via replica r and approves it.
func (c *cluster) approve(tb testing.TB, tok, agent string, r int) string {
	tb.Helper()
	ctx := context.Background()
	cl := c.replicas[r].client(tb, tok, agent)
	err := cl.SleepSession(ctx)
	if custos.ErrorCode(err) != custos.EDEVICEPENDING {
		tb.Fatalf("first call from a new device: %v", err)
	}
	owner := c.replicas[(r+1)%len(c.replicas)].client(tb, c.owner, "admin")
	devs, err := owner.ListDevices(ctx, custos.DevicePending)
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range devs {
		if d.Agent == agent {
			if _, err := owner.ApproveDevice(ctx, d.ID, custos.LevelFull); err != nil {
				tb.Fatal(err)
			}
			return d.ID
		}
	}
	tb.Fatalf("no pending device for agent %s", agent)
	return ""
}

func (c *cluster) mustKey(tb testing.TB, name string) string {
	tb.Helper()
	_, tok, err := c.replicas[0].client(tb, c.owner, "admin").CreateKey(context.Background(), custos.CreateKeyInput{Name: name, Role: custos.RoleMember})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func (c *cluster) verify(tb testing.TB) *custos.AuditVerification {
	tb.Helper()
	v, err := c.replicas[len(c.replicas)-1].client(tb, c.owner, "admin").VerifyAudit(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if !v.OK {
		tb.Fatalf("audit chain broken: %+v", v)
	}
	return v
}

func countActions(tb testing.TB, cl *custoshttp.Client, action, outcome string) int {
	tb.Helper()
	n := 0
	var after int64
	for {
		evs, err := cl.ListAudit(context.Background(), custos.AuditFilter{AfterSeq: after, Limit: 10000})
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range evs {
			if e.Action == action && e.Outcome == outcome {
				n++
			}
		}
		if len(evs) < 10000 {
			return n
		}
		after = evs[len(evs)-1].Seq
	}
}

func TestReplicas(t *testing.T) {
	c := startCluster(t, 3, "--rate-key", "off", "--rate-ip", "off")
	ctx := context.Background()
	admin := c.replicas[0].client(t, c.owner, "admin")
	if _, err := admin.SetSecret(ctx, custos.SetSecretInput{Project: "web", Name: "DB", Value: "replica-value-1", Tags: map[string]string{"env": "dev"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetSecret(ctx, custos.SetSecretInput{Project: "web", Name: "PROD", Value: "replica-value-2", Tags: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	reveal := func(cl *custoshttp.Client, name string) error {
		vals, err := cl.AccessSecrets(ctx, custos.AccessRequest{Project: "web", Names: []string{name}, Mode: custos.ModeReveal})
		if err == nil && (len(vals) != 1 || !strings.HasPrefix(vals[0].Value, "replica-value-")) {
			return errors.New("wrong value")
		}
		return err
	}

	// Ensure a key rotated on one replica while 200 requests use it on all
	// three loses none of them, and the new key works everywhere at once.
	t.Run("RotateUnderLoad", func(t *testing.T) {
		alice := c.mustKey(t, "alice")
		c.approve(t, alice, "cli", 0)
		keys, _ := admin.ListKeys(ctx)
		var id string
		for _, k := range keys {
			if k.Name == "alice" {
				id = k.ID
			}
		}
		var ok, failed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				if err := reveal(c.replicas[i%3].client(t, alice, "cli"), "DB"); err != nil {
					failed.Add(1)
					t.Log(err)
				} else {
					ok.Add(1)
				}
			}(i)
		}
		close(start)
		_, newTok, err := c.replicas[1].client(t, c.owner, "admin").RotateKey(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if ok.Load() != 200 || failed.Load() != 0 {
			t.Fatalf("ok=%d failed=%d, want 200/0", ok.Load(), failed.Load())
		}
		for i, r := range c.replicas {
			if err := reveal(r.client(t, newTok, "cli"), "DB"); err != nil {
				t.Fatalf("new key on replica %d: %v", i, err)
			}
		}
	})

	// Ensure a device approved on one replica is served by another at once,
	// and refused by it until then.
	t.Run("ApproveAcrossReplicas", func(t *testing.T) {
		bob := c.mustKey(t, "bob")
		served := c.replicas[2].client(t, bob, "cli")
		if err := reveal(served, "DB"); custos.ErrorCode(err) != custos.EDEVICEPENDING {
			t.Fatalf("before approval: %v", err)
		}
		stop := make(chan struct{})
		var wrong atomic.Int32
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // keep the serving replica busy (and its cache warm) meanwhile
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := reveal(served, "DB"); err != nil && custos.ErrorCode(err) != custos.EDEVICEPENDING {
					wrong.Add(1)
				}
			}
		}()
		owner := c.replicas[0].client(t, c.owner, "admin")
		devs, err := owner.ListDevices(ctx, custos.DevicePending)
		if err != nil || len(devs) != 1 {
			t.Fatalf("pending: %v %v", devs, err)
		}
		if _, err := owner.ApproveDevice(ctx, devs[0].ID, custos.LevelRead); err != nil {
			t.Fatal(err)
		}
		if err := reveal(served, "DB"); err != nil {
			t.Fatalf("first read after approval on another replica: %v", err)
		}
		close(stop)
		wg.Wait()
		if wrong.Load() != 0 {
			t.Fatalf("%d reads failed with an unexpected error", wrong.Load())
		}
	})

	// Ensure 1,000 confirmations acknowledged concurrently on three replicas
	// allow exactly 1,000 reads, no more.
	t.Run("ConfirmationsExact", func(t *testing.T) {
		carol := c.mustKey(t, "carol")
		c.approve(t, carol, "cli", 1)
		p, err := admin.AddPolicy(ctx, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleRequireConfirmation})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = admin.RemovePolicy(ctx, p.ID) }()
		clients := []*custoshttp.Client{c.replicas[0].client(t, carol, "cli"), c.replicas[1].client(t, carol, "cli"), c.replicas[2].client(t, carol, "cli")}
		run := func(n int, fn func(i int) error) (ok, denied, other int32) {
			var o, d, x atomic.Int32
			var wg sync.WaitGroup
			sem := make(chan struct{}, 48)
			for i := 0; i < n; i++ {
				wg.Add(1)
				sem <- struct{}{}
				go func(i int) {
					defer wg.Done()
					defer func() { <-sem }()
					switch err := fn(i); custos.ErrorCode(err) {
					case "":
						o.Add(1)
					case custos.EPOLICY:
						d.Add(1)
					default:
						x.Add(1)
						t.Log(err)
					}
				}(i)
			}
			wg.Wait()
			return o.Load(), d.Load(), x.Load()
		}
		ok, _, other := run(1000, func(i int) error {
			_, err := clients[i%3].Confirm(ctx, custos.ConfirmInput{Project: "web", Name: "PROD"})
			return err
		})
		if ok != 1000 || other != 0 {
			t.Fatalf("acks: ok=%d other=%d", ok, other)
		}
		ok, denied, other := run(1100, func(i int) error { return reveal(clients[i%3], "PROD") })
		if ok != 1000 || denied != 100 || other != 0 {
			t.Fatalf("reads: ok=%d denied=%d other=%d, want 1000/100/0", ok, denied, other)
		}
	})

	// Ensure 1,000 concurrent session wakes on three replicas all succeed and
	// leave the device with a live session that require_session accepts.
	t.Run("SessionWakes", func(t *testing.T) {
		dave := c.mustKey(t, "dave")
		c.approve(t, dave, "cli", 2)
		p, err := admin.AddPolicy(ctx, custos.AddPolicyInput{TagKey: "env", TagValue: "prod", Rule: custos.RuleRequireSession})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = admin.RemovePolicy(ctx, p.ID) }()
		cl := c.replicas[0].client(t, dave, "cli")
		if err := reveal(cl, "PROD"); custos.ErrorCode(err) != custos.EPOLICY {
			t.Fatalf("without a session: %v", err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		sem := make(chan struct{}, 48)
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				if _, err := c.replicas[i%3].client(t, dave, "cli").WakeSession(ctx, custos.WakeInput{TTL: custos.Duration(10 * time.Minute)}); err == nil {
					ok.Add(1)
				} else {
					t.Log(err)
				}
			}(i)
		}
		wg.Wait()
		if ok.Load() != 1000 {
			t.Fatalf("wakes ok=%d, want 1000", ok.Load())
		}
		for i, r := range c.replicas {
			if err := reveal(r.client(t, dave, "cli"), "PROD"); err != nil {
				t.Fatalf("replica %d with a session: %v", i, err)
			}
		}
		if err := cl.SleepSession(ctx); err != nil {
			t.Fatal(err)
		}
		for i, r := range c.replicas {
			if err := reveal(r.client(t, dave, "cli"), "PROD"); custos.ErrorCode(err) != custos.EPOLICY {
				t.Fatalf("replica %d after sleep: %v", i, err)
			}
		}
	})

	// Ensure the audit log of everything above is one chain that verifies,
	// with exactly one event per delivered value.
	v := c.verify(t)
	if v.Events < 2200 {
		t.Fatalf("audit events=%d, want ≥ 2200", v.Events)
	}
	if got := countActions(t, admin, custos.ActionSecretReveal, custos.OutcomeOK); got < 200+1000+3+1 {
		t.Fatalf("reveal events=%d", got)
	}
}

func TestReplicas_SharedRateLimit(t *testing.T) {
	// Ensure a per-key limit is shared by the replicas through Redis: of 15
	// requests spread over three replicas exactly 10 pass.
	c := startCluster(t, 3, "--rate-key", "10/1m", "--rate-ip", "off")
	tok := c.mustKey(t, "erin")
	var ok, limited int
	for i := 0; i < 15; i++ {
		_, err := c.replicas[i%3].client(t, tok, "cli").ListSecrets(context.Background(), custos.SecretFilter{})
		switch custos.ErrorCode(err) {
		case custos.ERATELIMITED:
			limited++
		case "", custos.EDEVICEPENDING:
			ok++
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if ok != 10 || limited != 5 {
		t.Fatalf("ok=%d limited=%d, want 10/5", ok, limited)
	}
}

// writeLoad sets distinct secrets through clients until stop, recording
// every write the server acknowledged.
func writeLoad(clients []*custoshttp.Client, stop <-chan struct{}) (acked func() map[string]string) {
	var mu sync.Mutex
	done := map[string]string{}
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := seq.Add(1)
				name := fmt.Sprintf("S_%d", n)
				val := fmt.Sprintf("crash-value-%d-%d", n, w)
				_, err := clients[int(n)%len(clients)].SetSecret(context.Background(), custos.SetSecretInput{Project: "crash", Name: name, Value: val})
				if err == nil {
					mu.Lock()
					done[name] = val
					mu.Unlock()
				}
			}
		}(w)
	}
	return func() map[string]string { wg.Wait(); return done }
}

// checkAcked reads every acknowledged secret back through cl.
func checkAcked(t *testing.T, cl *custoshttp.Client, acked map[string]string) {
	t.Helper()
	names := make([]string, 0, len(acked))
	for n := range acked {
		names = append(names, n)
	}
	for i := 0; i < len(names); i += custos.MaxNamesPerRequest {
		j := min(i+custos.MaxNamesPerRequest, len(names))
		vals, err := cl.AccessSecrets(context.Background(), custos.AccessRequest{Project: "crash", Names: names[i:j], Mode: custos.ModeReveal})
		if err != nil {
			t.Fatalf("acknowledged writes lost: %v", err)
		}
		for _, v := range vals {
			if acked[v.Name] != v.Value {
				t.Fatalf("%s: got another value than acknowledged", v.Name)
			}
		}
	}
}

func TestReplicas_CrashPostgres(t *testing.T) {
	// Ensure kill -9 of a replica in the middle of a write load loses no
	// acknowledged write: all are present and decrypt, the chain verifies.
	c := startCluster(t, 2, "--rate-key", "off", "--rate-ip", "off")
	c.approve(t, c.owner, "checker", 1)
	stop := make(chan struct{})
	acked := writeLoad([]*custoshttp.Client{c.replicas[0].client(t, c.owner, "admin"), c.replicas[1].client(t, c.owner, "admin")}, stop)
	time.Sleep(1500 * time.Millisecond)
	_ = c.replicas[0].cmd.Process.Signal(syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	got := acked()
	c.replicas[0].kill()
	c.replicas[0].start(t)
	if len(got) == 0 {
		t.Fatal("no write was acknowledged")
	}
	checkAcked(t, c.replicas[0].client(t, c.owner, "checker"), got)
	c.verify(t)
}

func TestCrash_SQLite(t *testing.T) {
	// Ensure kill -9 of the SQLite server during a write load loses no
	// acknowledged write, and the chain verifies after restart.
	data := filepath.Join(t.TempDir(), "custos-data")
	r := startReplica(t, "--data", data, "--rate-key", "off", "--rate-ip", "off")
	b, _ := os.ReadFile(filepath.Join(data, "owner.key"))
	owner := strings.TrimSpace(string(b))
	stop := make(chan struct{})
	acked := writeLoad([]*custoshttp.Client{r.client(t, owner, "admin")}, stop)
	time.Sleep(1500 * time.Millisecond)
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	close(stop)
	got := acked()
	r.kill()
	r.start(t)
	if len(got) == 0 {
		t.Fatal("no write was acknowledged")
	}
	cl := r.client(t, owner, "checker")
	if err := cl.SleepSession(context.Background()); custos.ErrorCode(err) != custos.EDEVICEPENDING {
		t.Fatal(err)
	}
	devs, _ := r.client(t, owner, "admin").ListDevices(context.Background(), custos.DevicePending)
	if _, err := r.client(t, owner, "admin").ApproveDevice(context.Background(), devs[0].ID, custos.LevelRead); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, cl, got)
	v, err := r.client(t, owner, "admin").VerifyAudit(context.Background())
	if err != nil || !v.OK {
		t.Fatalf("chain after crash: %+v %v", v, err)
	}
}
