package http_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

func TestKeys(t *testing.T) {
	// Ensure a key is created with 201 and its token comes back once.
	t.Run("CreateKey", func(t *testing.T) {
		env := MustServe(t)
		var got custos.CreateKeyInput
		env.Spy.CreateKeyFn = func(ctx context.Context, in custos.CreateKeyInput) (*custos.APIKey, string, error) {
			got = in
			return &custos.APIKey{ID: "key_aaaaaaaaaaaaaaaa", Name: in.Name, Role: in.Role}, "cst_ak_newtoken", nil
		}
		in := custos.CreateKeyInput{Name: "claude laptop", Role: custos.RoleAgent, TTL: custos.Duration(24 * time.Hour)}
		k, token, err := env.Client.CreateKey(ctx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		if got != in {
			t.Fatalf("service got %+v, want %+v", got, in)
		}
		if got, want := token, "cst_ak_newtoken"; got != want {
			t.Fatalf("token=%q, want %q", got, want)
		}
		if got, want := k.Role, custos.RoleAgent; got != want {
			t.Fatalf("role=%q, want %q", got, want)
		}
		env.Spy.Reset()
		resp := env.Do(t, Request{Method: "POST", Path: "/v1/keys", Body: `{"name":"ci","role":"member"}`})
		if got, want := resp.Status, http.StatusCreated; got != want {
			t.Fatalf("status=%d, want %d", got, want)
		}
	})

	// Ensure a bad name or role is rejected before the service runs.
	t.Run("CreateKeyInvalid", func(t *testing.T) {
		for _, body := range []string{
			`{"name":"","role":"agent"}`,
			`{"name":"-x","role":"agent"}`,
			`{"name":"ci","role":"root"}`,
			`{"name":"ci"}`,
			`{"name":"ci","role":"agent","ttl":"forever"}`,
		} {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/keys", Body: body})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("%s: status=%d, want %d", body, got, want)
			}
			env.AssertNoCalls(t)
		}
	})

	// Ensure keys are listed, without tokens or hashes.
	t.Run("ListKeys", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.ListKeysFn = func(ctx context.Context) ([]*custos.APIKey, error) {
			return []*custos.APIKey{{ID: testKeyID, Name: "ci", Hash: "deadbeefhash"}}, nil
		}
		keys, err := env.Client.ListKeys(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(keys), 1; got != want {
			t.Fatalf("len=%d, want %d", got, want)
		}
		resp := env.Do(t, Request{Method: "GET", Path: "/v1/keys"})
		if strings.Contains(string(resp.Body), "deadbeefhash") {
			t.Fatalf("hash leaked: %s", resp.Body)
		}
	})

	// Ensure a rotation passes the grace, and no body means grace 0.
	t.Run("RotateKey", func(t *testing.T) {
		env := MustServe(t)
		var gotID string
		var gotGrace time.Duration
		env.Spy.RotateKeyFn = func(ctx context.Context, id string, grace time.Duration) (*custos.APIKey, string, error) {
			gotID, gotGrace = id, grace
			return &custos.APIKey{ID: "key_bbbbbbbbbbbbbbbb"}, "cst_ak_rotated", nil
		}
		k, token, err := env.Client.RotateKey(ctx(t), testKeyID, 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if gotID != testKeyID || gotGrace != 2*time.Hour {
			t.Fatalf("service got %s %v", gotID, gotGrace)
		}
		if k.ID != "key_bbbbbbbbbbbbbbbb" || token != "cst_ak_rotated" {
			t.Fatalf("got %s %s", k.ID, token)
		}
		if _, _, err := env.Client.RotateKey(ctx(t), testKeyID, 0); err != nil {
			t.Fatal(err)
		}
		if gotGrace != 0 {
			t.Fatalf("grace=%v, want 0", gotGrace)
		}
		// An empty body needs no content type.
		resp := env.Do(t, Request{Method: "POST", Path: "/v1/keys/" + testKeyID + "/rotate", ContentType: "-"})
		if got, want := resp.Status, http.StatusOK; got != want {
			t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
		}
		resp = env.Do(t, Request{Method: "POST", Path: "/v1/keys/" + testKeyID + "/rotate", Body: `{"grace":"7d"}`})
		if got, want := resp.Status, http.StatusOK; got != want || gotGrace != 7*24*time.Hour {
			t.Fatalf("status=%d, want %d; grace=%v", got, want, gotGrace)
		}
	})

	// Ensure a revocation answers 204.
	t.Run("RevokeKey", func(t *testing.T) {
		env := MustServe(t)
		var got string
		env.Spy.RevokeKeyFn = func(ctx context.Context, id string) error {
			got = id
			return nil
		}
		if err := env.Client.RevokeKey(ctx(t), testKeyID); err != nil {
			t.Fatal(err)
		}
		if got != testKeyID {
			t.Fatalf("revoked %q", got)
		}
	})

	// Ensure Authenticate sends the given token to /v1/whoami.
	t.Run("Authenticate", func(t *testing.T) {
		env := MustServe(t)
		c := MustClient(t, env.Server.URL, clientOpts(""))
		k, err := c.Authenticate(ctx(t), testToken)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := k.ID, testKeyID; got != want {
			t.Fatalf("key=%q, want %q", got, want)
		}
		_, err = c.Authenticate(ctx(t), "cst_ak_wrong")
		if got, want := custos.ErrorCode(err), custos.EUNAUTHORIZED; got != want {
			t.Fatalf("code=%q, want %q", got, want)
		}
		if strings.Contains(err.Error(), "cst_ak_wrong") {
			t.Fatalf("token in error: %v", err)
		}
		k, version, err := env.Client.Whoami(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if k.ID != testKeyID || version != "v0.0.0-test" {
			t.Fatalf("whoami=%s %s", k.ID, version)
		}
	})
}
