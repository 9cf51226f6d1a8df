package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve a role, as the command's own
// executable does when the bench starts its server processes.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := serveRole(role); err != nil {
			fmt.Fprintf(os.Stderr, "gatewaybench %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSetup proves, in both layouts, that the bench's servers start, that
// the redaction check passes (the upstream sees placeholders and no
// planted value; the caller gets every value back), that every target
// answers both modes, that CPU is read from each server process, and that
// closing stops the processes.
func TestSetup(t *testing.T) {
	p, err := newPrompt()
	if err != nil {
		t.Fatal(err)
	}
	for _, layout := range []string{layoutProcesses, layoutOne} {
		t.Run(layout, func(t *testing.T) {
			fx, err := setup(t.TempDir(), layout, nil, baseline{})
			if err != nil {
				t.Fatal(err)
			}
			defer fx.close()
			if err := fx.check(p); err != nil {
				t.Fatal(err)
			}
			if fx.placeholders < len(p.planted) {
				t.Fatalf("the check counted %d placeholders, want at least %d", fx.placeholders, len(p.planted))
			}
			for _, m := range []mode{
				{"non-streaming", false, p.plain, bytes.Index(p.plain, []byte(nonceSlot))},
				{"streaming", true, p.stream, bytes.Index(p.stream, []byte(nonceSlot))},
			} {
				for _, tg := range fx.targets {
					if s := tg.do(m, time.Now()); !s.ok {
						t.Errorf("%s, %s: %s", tg.name, m.name, s.err)
					} else if (tg.proc != nil && tg.proc.rules != "" || layout == layoutOne && tg.name == "custos") != (s.overhead >= 0) {
						t.Errorf("%s, %s: X-Custos-Overhead-Ms %v", tg.name, m.name, s.overhead)
					}
				}
			}
			_, own, err := fx.cpu(fx.targets[custosTarget])
			if err != nil {
				t.Fatal(err)
			}
			if (layout == layoutProcesses) != (own > 0) {
				t.Errorf("custos's own CPU = %v in layout %s", own, layout)
			}
			fx.close()
			for _, pr := range fx.procs() {
				if pr.cmd.ProcessState == nil || !pr.cmd.ProcessState.Exited() {
					t.Errorf("%s still runs after close", pr.role)
				}
			}
		})
	}
}

// TestSetupBaseline proves -baseline: a second custos from the bench's own
// executable, without redaction rules, is the fourth target, answers both
// modes and forwards a planted value as it came (it finds nothing); its
// profile is named for it; one layout refuses a baseline.
func TestSetupBaseline(t *testing.T) {
	p, err := newPrompt()
	if err != nil {
		t.Fatal(err)
	}
	fx, err := setup(t.TempDir(), layoutProcesses, nil, baseline{exe: "self", noRules: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fx.close()
	if len(fx.targets) != 4 || fx.targets[baselineTarget].name != "baseline" || fx.base.rules != rulesNone || fx.custos.rules != rulesDefault {
		t.Fatalf("targets %d, baseline rules %q, custos rules %q", len(fx.targets), fx.base.rules, fx.custos.rules)
	}
	bt := fx.targets[baselineTarget]
	for _, m := range []mode{{"non-streaming", false, p.plain, -1}, {"streaming", true, p.stream, -1}} {
		if s := bt.do(m, time.Now()); !s.ok || s.overhead < 0 {
			t.Errorf("baseline, %s: %s (overhead %v)", m.name, s.err, s.overhead)
		}
	}
	body := bytes.Replace(p.plain, []byte(`"model":"`+benchModel+`"`), []byte(`"model":"`+echoModel+`"`), 1)
	req, err := bt.request(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bt.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	got, err := lastEchoed(fx.upURL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !bytes.Contains(got, []byte(p.planted[0])) {
		t.Errorf("status %d; the rule-less baseline did not forward the planted value as it came", resp.StatusCode)
	}
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	if err := fx.each("profile", prof); err != nil {
		t.Fatal(err)
	}
	if err := fx.each("stop", ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{prof, prof + "." + roleBaseline} {
		if fi, err := os.Stat(name); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
	if fx, err := setup(t.TempDir(), layoutOne, nil, baseline{exe: "self"}); err == nil {
		fx.close()
		t.Error("one layout started a baseline")
	}
}

// TestStartProcRefusesUnknownRole proves a child that cannot serve its
// role reports why instead of leaving the bench waiting.
func TestStartProcRefusesUnknownRole(t *testing.T) {
	p, err := startProc("no-such-role")
	if err == nil {
		p.close()
		t.Fatal("an unknown role started")
	}
}

// TestLatVerdict proves an added latency below zero is no pass: it only
// says the direct row stalled more than the target did.
func TestLatVerdict(t *testing.T) {
	for _, c := range []struct {
		errors        int
		added, target time.Duration
		want          string
	}{
		{0, time.Millisecond, 2 * time.Millisecond, "PASS"},
		{0, 2 * time.Millisecond, 2 * time.Millisecond, "PASS"},
		{0, 3 * time.Millisecond, 2 * time.Millisecond, "MISS"},
		{1, time.Millisecond, 2 * time.Millisecond, "MISS"},
		{0, -35 * time.Millisecond, 2 * time.Millisecond, noResult},
		{2, -35 * time.Millisecond, 2 * time.Millisecond, "MISS"},
	} {
		if got := latVerdict(c.errors, c.added, c.target); got != c.want {
			t.Errorf("latVerdict(%d, %v, %v) = %q, want %q", c.errors, c.added, c.target, got, c.want)
		}
	}
}

func TestEnvList(t *testing.T) {
	got, err := envList("  GOGC=1600 GODEBUG=gctrace=1,madvdontneed=1 X= ")
	if err != nil || strings.Join(got, "|") != "GOGC=1600|GODEBUG=gctrace=1,madvdontneed=1|X=" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"GOGC", "=1", "A=1 B"} {
		if _, err := envList(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestWriteLatencies(t *testing.T) {
	name := filepath.Join(t.TempDir(), "lat.csv")
	ts := []*target{{name: "direct"}, {name: "custos"}}
	at := time.Unix(0, 1_700_000_000_000_000_000)
	phases := []phaseSamples{{mode{name: "streaming"}, [][]sample{
		{{ok: true, at: at, lat: 1500 * time.Microsecond}},
		{{ok: true, at: at.Add(time.Millisecond), lat: 2 * time.Millisecond}, {at: at, err: "EOF, \"quoted\""}},
	}}}
	if err := writeLatencies(name, ts, phases); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	want := "mode,target,scheduled_unix_ns,latency_ns,error\n" +
		"streaming,direct,1700000000000000000,1500000,\n" +
		"streaming,custos,1700000000001000000,2000000,\n" +
		"streaming,custos,1700000000000000000,0,\"EOF, \"\"quoted\"\"\"\n"
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}

// TestOpenLoop proves that both pacings send every request of the phase,
// each on a schedule of its own (the rate's interval apart), and that each
// is answered: the pacing changes when requests leave, never which.
func TestOpenLoop(t *testing.T) {
	srv := httptest.NewServer(newUpstream())
	defer srv.Close()
	paces := []string{paceTimer}
	if exactPacing {
		paces = append(paces, paceExact)
	}
	for _, pace := range paces {
		t.Run(pace, func(t *testing.T) {
			tg := newTarget("direct", srv.URL, "", nil)
			m := mode{name: "non-streaming", body: []byte(`{"model":"m","messages":[]}`), nonce: -1}
			got := openLoop(tg, m, 1000, 50*time.Millisecond, pace)
			if len(got) != 50 {
				t.Fatalf("%d samples, want 50", len(got))
			}
			for i, s := range got {
				if !s.ok {
					t.Fatalf("request %d: %s", i, s.err)
				}
				if d := s.at.Sub(got[0].at); d != time.Duration(i)*time.Millisecond {
					t.Fatalf("request %d scheduled %v after the first, want %v", i, d, time.Duration(i)*time.Millisecond)
				}
			}
		})
	}
}
