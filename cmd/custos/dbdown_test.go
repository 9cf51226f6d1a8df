package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// privatePostgres is a PostgreSQL cluster of one test's own, so the test
// may stop and start it without disturbing other tests.
type privatePostgres struct {
	bin, data, port string
	asPostgres      bool
}

func (p *privatePostgres) run(args ...string) *exec.Cmd {
	if p.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...) // #nosec G204 -- test helper
	}
	return exec.Command(args[0], args[1:]...) // #nosec G204 -- test helper
}

func startPrivatePostgres(tb testing.TB) (*privatePostgres, string) {
	tb.Helper()
	requireEnv(tb, "CUSTOS_TEST_POSTGRES_URL") // the same installation the test command provides
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		tb.Fatal("PostgreSQL binaries not found under /usr/lib/postgresql (scripts/services.sh installs them)")
	}
	sort.Strings(bins)
	p := &privatePostgres{bin: filepath.Dir(bins[len(bins)-1]), asPostgres: os.Geteuid() == 0}
	dir, err := os.MkdirTemp("", "custos-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755) // #nosec G302 -- the postgres user must reach its data dir
	p.data = filepath.Join(dir, "data")
	if p.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	if out, err := p.run(filepath.Join(p.bin, "initdb"), "-D", p.data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v: %s", err, out)
	}
	p.start(tb)
	tb.Cleanup(func() { _ = p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-m", "immediate", "stop").Run() })
	return p, fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", p.port)
}

func (p *privatePostgres) start(tb testing.TB) {
	tb.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%s -c unix_socket_directories=%s", p.port, filepath.Dir(p.data))
	if out, err := p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-l", p.data+"/../log", "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		tb.Fatalf("pg_ctl start: %v: %s", err, out)
	}
}

func (p *privatePostgres) stop(tb testing.TB) {
	tb.Helper()
	if out, err := p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		tb.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
}

func TestDatabaseDown(t *testing.T) {
	// Ensure that with PostgreSQL stopped mid-run requests fail with 503 and a
	// clear error, no value is served unaudited, and service resumes by itself
	// when the database is back.
	pg, dbURL := startPrivatePostgres(t)
	data := filepath.Join(t.TempDir(), "custos-data")
	r := startReplica(t, "--data", data, "--database", dbURL, "--rate-key", "off", "--rate-ip", "off")
	b, _ := os.ReadFile(filepath.Join(data, "owner.key"))
	owner := strings.TrimSpace(string(b))
	ctx := context.Background()
	admin := r.client(t, owner, "admin")
	if _, err := admin.SetSecret(ctx, custos.SetSecretInput{Project: "web", Name: "A", Value: "db-down-value"}); err != nil {
		t.Fatal(err)
	}
	reader := r.client(t, owner, "reader")
	if err := reader.SleepSession(ctx); custos.ErrorCode(err) != custos.EDEVICEPENDING {
		t.Fatal(err)
	}
	devs, _ := admin.ListDevices(ctx, custos.DevicePending)
	if _, err := admin.ApproveDevice(ctx, devs[0].ID, custos.LevelRead); err != nil {
		t.Fatal(err)
	}
	served := 0
	read := func() error {
		vals, err := reader.AccessSecrets(ctx, custos.AccessRequest{Project: "web", Names: []string{"A"}, Mode: custos.ModeReveal})
		if err == nil {
			served++
			if vals[0].Value != "db-down-value" {
				t.Fatal("wrong value")
			}
		}
		return err
	}
	for i := 0; i < 5; i++ {
		if err := read(); err != nil {
			t.Fatal(err)
		}
	}

	pg.stop(t)
	for i := 0; i < 5; i++ {
		err := read()
		if got, want := custos.ErrorCode(err), custos.EUNAVAILABLE; got != want {
			t.Fatalf("database down: code=%q (%v), want %q", got, err, want)
		}
		if !strings.Contains(strings.ToLower(custos.ErrorMessage(err)), "unavailable") {
			t.Fatalf("unclear message: %q", custos.ErrorMessage(err))
		}
	}
	if resp, err := httpGet(r.url + "/readyz"); err != nil || resp != 503 {
		t.Fatalf("/readyz while the database is down: %d %v", resp, err)
	}

	pg.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := read(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("service did not resume after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := countActions(t, admin, custos.ActionSecretReveal, custos.OutcomeOK); got != served {
		t.Fatalf("reveal events=%d, values served=%d: something was served unaudited or audited unserved", got, served)
	}
	v, err := admin.VerifyAudit(ctx)
	if err != nil || !v.OK {
		t.Fatalf("chain: %+v %v", v, err)
	}
}

func httpGet(u string) (int, error) {
	resp, err := (&httpClientNoKeepAlive).Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

var httpClientNoKeepAlive = http.Client{Timeout: 10 * time.Second}
