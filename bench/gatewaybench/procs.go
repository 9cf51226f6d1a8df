package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ---- the server processes, seen from the load generator ----

// proc is a server the bench started as a child process of its own.
type proc struct {
	role  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	url   string // its base URL
	token string // custos: the caller's API key
	rules string // custos: the redaction rules it serves with (rulesDefault, rulesNone)

	mu sync.Mutex // one command at a time
}

// startProc starts the bench's own executable as a server of role, with
// env added to its environment, and waits for its hello.
func startProc(role string, env ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startExe(exe, role, env...)
}

// startExe is startProc with the executable named: the bench's own, or
// another build of it (-baseline).
func startExe(exe, role string, env ...string) (*proc, error) {
	cmd := exec.Command(exe) // #nosec G204 -- the bench's own executable, or one named on its command line
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	p := &proc{role: role, cmd: cmd, in: in, out: bufio.NewReader(out)}
	var h hello
	line, err := p.out.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &h)
	}
	if err == nil && h.Error != "" {
		err = errors.New(h.Error)
	}
	if err != nil {
		p.close()
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	p.url, p.token, p.rules = h.URL, h.Token, h.Rules
	return p, nil
}

// call sends one command (see commands) and returns its answer.
func (p *proc) call(cmd string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.in, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%s: %w", p.role, err)
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.role, err)
	}
	line = strings.TrimSpace(line)
	if reason, ok := strings.CutPrefix(line, "error: "); ok {
		return "", fmt.Errorf("%s: %s", p.role, reason)
	}
	return line, nil
}

// cpu returns the CPU time the process has used so far.
func (p *proc) cpu() (time.Duration, error) {
	s, err := p.call("cpu")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: cpu: %w", p.role, err)
	}
	return time.Duration(n), nil
}

// close ends the process: its stdin closes, it shuts its server down and
// exits; one that does not within 10 s is killed.
func (p *proc) close() {
	_ = p.in.Close()
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// Layouts of the servers (-layout).
const (
	layoutProcesses = "processes" // each server in a process of its own
	layoutOne       = "one"       // all servers in the load generator's process
)

// The targets' places in fixture.targets.
const (
	directTarget = iota
	proxyTarget
	custosTarget
	baselineTarget // with -baseline
)

// baseline is a second custos to measure in the same run (-baseline).
type baseline struct {
	exe     string   // the executable serving it ("self": the bench's own); "": none
	noRules bool     // serve it without redaction rules
	env     []string // added to its environment (-baseline-env)
}

// fixture is the run's servers and the targets that reach them.
type fixture struct {
	layout                  string
	upstream, proxy, custos *proc          // layoutProcesses
	base                    *proc          // layoutProcesses, with -baseline
	servers                 []*http.Server // layoutOne
	cleanup                 func()         // layoutOne: closes custos
	upURL, custosURL        string
	token                   string    // the caller's custos API key
	targets                 []*target // direct, reverse proxy, custos, and the baseline
	placeholders            int       // in a request after custos redacts it (see check)
}

// setup starts the upstream, the reverse proxy and custos (with its data
// in dir, custosEnv added to its environment): each in a process of its
// own, or all in this one; and the baseline custos if one is named
// (processes only).
func setup(dir, layout string, custosEnv []string, base baseline) (_ *fixture, err error) {
	f := &fixture{layout: layout}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	var proxyURL string
	switch layout {
	case layoutProcesses:
		if f.upstream, err = startProc(roleUpstream); err != nil {
			return nil, err
		}
		up := upstreamEnv + "=" + f.upstream.url
		if f.proxy, err = startProc(roleProxy, up); err != nil {
			return nil, err
		}
		if f.custos, err = startProc(roleCustos, append([]string{up, dirEnv + "=" + dir}, custosEnv...)...); err != nil {
			return nil, err
		}
		f.upURL, proxyURL, f.custosURL, f.token = f.upstream.url, f.proxy.url, f.custos.url, f.custos.token
		if base.exe != "" {
			if f.base, err = startBaseline(base, up, filepath.Join(dir, "baseline")); err != nil {
				return nil, err
			}
		}
	case layoutOne:
		if base.exe != "" || len(custosEnv) > 0 {
			return nil, fmt.Errorf("-baseline and -custos-env need -layout %s", layoutProcesses)
		}
		if f.upURL, err = f.serve(newUpstreamMux()); err != nil {
			return nil, err
		}
		rp, err := newReverseProxy(f.upURL)
		if err != nil {
			return nil, err
		}
		if proxyURL, err = f.serve(rp); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		h, token, cleanup, err := newCustos(ctx, dir, f.upURL, rulesDefault)
		f.cleanup = func() { cancel(); cleanup() }
		if err != nil {
			return nil, err
		}
		if f.custosURL, err = f.serve(h); err != nil {
			return nil, err
		}
		f.token = token
	default:
		return nil, fmt.Errorf("-layout %q: want %s or %s", layout, layoutProcesses, layoutOne)
	}
	const path = "/v1/chat/completions"
	f.targets = []*target{
		newTarget("direct", f.upURL+path, f.token, nil),
		newTarget("reverse proxy", proxyURL+path, f.token, f.proxy),
		newTarget("custos", f.custosURL+path, f.token, f.custos),
	}
	if f.base != nil {
		f.targets = append(f.targets, newTarget("baseline", f.base.url+path, f.base.token, f.base))
	}
	return f, nil
}

// startBaseline starts the baseline custos with its data in dir.
func startBaseline(base baseline, up, dir string) (*proc, error) {
	exe := base.exe
	if exe == "self" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	env := []string{up, dirEnv + "=" + dir}
	if base.noRules {
		env = append(env, rulesEnv+"=none")
	}
	env = append(env, base.env...)
	p, err := startExe(exe, roleCustos, env...)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	p.role = roleBaseline
	if base.noRules && p.rules != rulesNone {
		p.close()
		return nil, fmt.Errorf("baseline: %s serves with redaction rules (a build from before -baseline-rules)", exe)
	}
	return p, nil
}

// serve serves h in this process (layoutOne).
func (f *fixture) serve(h http.Handler) (string, error) {
	s, u, err := serve(h)
	if err != nil {
		return "", err
	}
	f.servers = append(f.servers, s)
	return u, nil
}

// procs returns the processes started.
func (f *fixture) procs() []*proc {
	var ps []*proc
	for _, p := range []*proc{f.upstream, f.proxy, f.custos, f.base} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// close stops the servers; it may be called again.
func (f *fixture) close() {
	for _, p := range f.procs() {
		p.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range f.servers {
		_ = s.Shutdown(ctx)
	}
	f.servers = nil
	if f.cleanup != nil {
		f.cleanup()
		f.cleanup = nil
	}
}

// cpu returns the CPU time used so far by all the bench's processes (the
// load generator, the upstream and both proxies) and by t's own server
// process (0 for direct, and in layoutOne).
func (f *fixture) cpu(t *target) (all, own time.Duration, err error) {
	all = processCPU()
	for _, p := range f.procs() {
		d, err := p.cpu()
		if err != nil {
			return 0, 0, err
		}
		all += d
		if p == t.proc {
			own = d
		}
	}
	return all, own, nil
}

// each sends cmd to every server process, naming FILE after the role:
// custos's in base, the others' in base.ROLE.
func (f *fixture) each(cmd, base string) error {
	for _, p := range f.procs() {
		name := base
		if p.role != roleCustos {
			name += "." + p.role
		}
		c := cmd
		if base != "" {
			c += " " + name
		}
		if _, err := p.call(c); err != nil {
			return err
		}
	}
	return nil
}
