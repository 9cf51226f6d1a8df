package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestE2E_NotifyEgress(t *testing.T) {
	// Ensure a notify webhook cannot point at loopback, link-local (cloud
	// metadata) or private addresses, or use plain http to a public host,
	// unless the operator allows that destination.
	e := MustStartE2E(t)
	before := e.Snapshot(t)
	for _, u := range []string{
		"http://127.0.0.1:9/hook",
		"https://169.254.169.254/latest/meta-data/",
		"https://[::ffff:127.0.0.1]/hook",
		"https://10.0.0.5/hook",
		"http://hooks.example.com/plain",
		"https://user:pw@hooks.example.com/x",
	} {
		r := e.CLI(t, e.Owner, "cli", "", "policy", "add", "--tag", "env=prod", "--rule", "notify", "--notify-url", u)
		if r.Code == 0 || !strings.Contains(r.Err, "invalid") {
			t.Fatalf("notify to %s accepted: exit %d %s", u, r.Code, r.Err)
		}
	}
	if after := e.Snapshot(t); after != before {
		t.Fatal("a refused policy changed state")
	}
	e.MustCLI(t, e.Owner, "cli", "", "policy", "add", "--tag", "env=prod", "--rule", "notify", "--notify-url", "https://hooks.example.com/services/T0/B0/secret-path")
}

func TestE2E_NotifyDelivered(t *testing.T) {
	// Ensure with the receiver's address allowed, a read of a tagged secret
	// is notified with metadata only, and agents do not see the webhook URL.
	got := make(chan string, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- string(b):
		default:
		}
	}))
	defer hook.Close()
	e := MustStartE2E(t, "--egress-allow-private", "127.0.0.1/32")
	e.MustCLI(t, e.Owner, "cli", "notify-e2e-value\n", "secret", "set", "A", "--tag", "env=prod")
	e.Remember("notify-e2e-value")
	e.MustCLI(t, e.Owner, "cli", "", "policy", "add", "--tag", "env=prod", "--rule", "notify", "--notify-url", hook.URL+"/hook-path-secret")
	alice := e.MustMemberKey(t, "alice")
	e.MustApprove(t, alice, "cli", "read")
	e.MustCLI(t, alice, "cli", "", "secret", "reveal", "A")
	select {
	case body := <-got:
		if strings.Contains(body, "notify-e2e-value") || !strings.Contains(body, `"secret":"A"`) {
			t.Fatalf("webhook body: %s", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("webhook not delivered")
	}
	out := e.MustCLI(t, alice, "cli", "", "policy", "list", "--json")
	var ps []custos.Policy
	if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 1 {
		t.Fatalf("policy list as a member: %v %s", err, out)
	}
	if ps[0].NotifyURL != "" || strings.Contains(out, "hook-path-secret") {
		t.Fatal("a member sees the webhook URL")
	}
	if !strings.Contains(e.MustCLI(t, e.Owner, "cli", "", "policy", "list", "--json"), "hook-path-secret") {
		t.Fatal("the owner does not see the webhook URL")
	}
}
