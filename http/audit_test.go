package http_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestAudit(t *testing.T) {
	// Ensure the filter travels as since/after/limit and comes back intact.
	t.Run("ListAudit", func(t *testing.T) {
		env := MustServe(t)
		var got custos.AuditFilter
		env.Spy.ListAuditFn = func(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
			got = f
			return []*custos.AuditEvent{{Seq: 6, Action: custos.ActionSecretInject}}, nil
		}
		since := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
		evs, err := env.Client.ListAudit(ctx(t), custos.AuditFilter{Since: since, AfterSeq: 5, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Since.Equal(since) || got.AfterSeq != 5 || got.Limit != 100 {
			t.Fatalf("filter=%+v", got)
		}
		if len(evs) != 1 || evs[0].Seq != 6 {
			t.Fatalf("events=%+v", evs)
		}
		if _, err := env.Client.ListAudit(ctx(t), custos.AuditFilter{}); err != nil {
			t.Fatal(err)
		}
		if !got.Since.IsZero() || got.AfterSeq != 0 || got.Limit != 0 {
			t.Fatalf("filter=%+v, want zero", got)
		}
	})

	// Ensure verification results come back.
	t.Run("VerifyAudit", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.VerifyAuditFn = func(ctx context.Context) (*custos.AuditVerification, error) {
			return &custos.AuditVerification{OK: false, Events: 9, BrokenAt: 10, Reason: "modified"}, nil
		}
		v, err := env.Client.VerifyAudit(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if v.OK || v.Events != 9 || v.BrokenAt != 10 || v.Reason != "modified" {
			t.Fatalf("verification=%+v", v)
		}
	})

	// Ensure bad query parameters are rejected before the service runs.
	t.Run("BadQuery", func(t *testing.T) {
		for _, q := range []string{
			"?since=yesterday", "?since=2025-01-01", "?since=", "?after=-1", "?after=x", "?after=1.5",
			"?limit=0", "?limit=10001", "?limit=abc", "?limit=-3", "?limit=1&limit=2", "?until=now",
		} {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "GET", Path: "/v1/audit" + q})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("%s: status=%d, want %d", q, got, want)
			}
			env.AssertNoCalls(t)
		}
	})

	// Ensure the limits of the query parameters are accepted.
	t.Run("QueryBounds", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.ListAuditFn = func(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) { return nil, nil }
		for _, q := range []string{"?limit=1", "?limit=10000", "?after=0", "?since=2025-01-01T00:00:00%2B02:00"} {
			resp := env.Do(t, Request{Method: "GET", Path: "/v1/audit" + q})
			if got, want := resp.Status, http.StatusOK; got != want {
				t.Fatalf("%s: status=%d, want %d: %s", q, got, want, resp.Body)
			}
		}
	})
}
