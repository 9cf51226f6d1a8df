package main

import (
	"strings"
	"testing"

	"github.com/custos-dev/custos"
)

func TestConfirm(t *testing.T) {
	// Ensure confirm names the secret and prints until when it holds.
	tc := newTestCLI(t)
	var got custos.ConfirmInput
	tc.spy.confirm = func(in custos.ConfirmInput) (*custos.Confirmation, error) {
		got = in
		return &custos.Confirmation{Project: in.Project, Name: in.Name, ExpiresAt: testNow.Add(custos.ConfirmationTTL)}, nil
	}
	out := tc.mustRun(t, "confirm", "PROD_DB", "--project", "api")
	if got != (custos.ConfirmInput{Project: "api", Name: "PROD_DB"}) {
		t.Fatalf("sent %+v", got)
	}
	if out != "confirmed api/PROD_DB for one read until 2026-03-01T12:05:00Z (in 5m)\n" {
		t.Fatalf("printed %q", out)
	}
	tc.spy.confirm = func(custos.ConfirmInput) (*custos.Confirmation, error) {
		return nil, custos.Errorf(custos.ENOTFOUND, "secret default/NOPE not found")
	}
	if code := tc.run("confirm", "NOPE"); code != 1 || !strings.Contains(tc.err.String(), "[not_found]") {
		t.Fatalf("exit %d: %s", code, tc.err.String())
	}
}
