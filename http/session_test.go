package http_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestSessions(t *testing.T) {
	// Ensure wake, sleep and confirm reach the service.
	t.Run("OK", func(t *testing.T) {
		env := MustServe(t)
		var gotWake custos.WakeInput
		env.Spy.WakeSessionFn = func(ctx context.Context, in custos.WakeInput) (*custos.Session, error) {
			gotWake = in
			return &custos.Session{ID: "ses_0123456789abcdef", DeviceID: testDevID, Tags: in.Tags}, nil
		}
		slept := false
		env.Spy.SleepSessionFn = func(ctx context.Context) error {
			slept = true
			return nil
		}
		var gotConfirm custos.ConfirmInput
		env.Spy.ConfirmFn = func(ctx context.Context, in custos.ConfirmInput) (*custos.Confirmation, error) {
			gotConfirm = in
			return &custos.Confirmation{ID: "cfm_0123456789abcdef", Project: in.Project, Name: in.Name}, nil
		}

		wake := custos.WakeInput{Tags: map[string]string{"env": "prod"}, TTL: custos.Duration(10 * time.Minute)}
		s, err := env.Client.WakeSession(ctx(t), wake)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotWake, wake) || s.DeviceID != testDevID {
			t.Fatalf("wake got %+v, session %+v", gotWake, s)
		}
		if err := env.Client.SleepSession(ctx(t)); err != nil || !slept {
			t.Fatalf("sleep: %v %v", err, slept)
		}
		env.Spy.CurrentSessionFn = func(ctx context.Context) (*custos.Session, error) {
			return &custos.Session{ID: "ses_0123456789abcdef", DeviceID: testDevID}, nil
		}
		if cur, err := env.Client.CurrentSession(ctx(t)); err != nil || cur.ID != "ses_0123456789abcdef" {
			t.Fatalf("current session: %v %v", cur, err)
		}
		c, err := env.Client.Confirm(ctx(t), custos.ConfirmInput{Project: "web-app", Name: "STRIPE_KEY"})
		if err != nil {
			t.Fatal(err)
		}
		if gotConfirm.Project != "web-app" || gotConfirm.Name != "STRIPE_KEY" || c.Name != "STRIPE_KEY" {
			t.Fatalf("confirm got %+v, answer %+v", gotConfirm, c)
		}

		// Wake takes an optional body; confirm answers 201 and defaults the project.
		resp := env.Do(t, Request{Method: "POST", Path: "/v1/session/wake", ContentType: "-"})
		if got, want := resp.Status, http.StatusOK; got != want {
			t.Fatalf("wake status=%d, want %d: %s", got, want, resp.Body)
		}
		resp = env.Do(t, Request{Method: "POST", Path: "/v1/confirmations", Body: `{"name":"X"}`})
		if got, want := resp.Status, http.StatusCreated; got != want {
			t.Fatalf("confirm status=%d, want %d", got, want)
		}
		if got, want := gotConfirm.Project, custos.DefaultProject; got != want {
			t.Fatalf("project=%q, want %q", got, want)
		}
	})

	// Ensure bad tags or names are rejected before the service runs.
	t.Run("Invalid", func(t *testing.T) {
		for _, tt := range []struct{ path, body string }{
			{"/v1/session/wake", `{"tags":{"BAD":"x"}}`},
			{"/v1/session/wake", `{"ttl":"a while"}`},
			{"/v1/confirmations", `{"project":"web-app","name":"no-dashes"}`},
			{"/v1/confirmations", `{"project":"Web App","name":"X"}`},
			{"/v1/confirmations", `{"project":"web-app"}`},
		} {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "POST", Path: tt.path, Body: tt.body})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("%s %s: status=%d, want %d", tt.path, tt.body, got, want)
			}
			env.AssertNoCalls(t)
		}
	})
}
