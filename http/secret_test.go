package http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

func TestSecrets(t *testing.T) {
	// Ensure a secret set through the client reaches the service with the
	// project and name from the path and the fields of the body.
	t.Run("SetSecret", func(t *testing.T) {
		env := MustServe(t)
		var got custos.SetSecretInput
		env.Spy.SetSecretFn = func(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
			got = in
			return &custos.Secret{ID: "sec_0123456789abcdef", Project: in.Project, Name: in.Name, Tags: in.Tags, Version: 3}, nil
		}
		in := custos.SetSecretInput{Project: "web-app", Name: "STRIPE_KEY", Value: testSecret,
			Tags: map[string]string{"env": "prod"}, TTL: custos.Duration(72 * time.Hour), Description: "payments"}
		s, err := env.Client.SetSecret(ctx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("service got %+v, want %+v", got, in)
		}
		if got, want := s.Version, 3; got != want {
			t.Fatalf("Version=%d, want %d", got, want)
		}
		if got, want := s.Tags["env"], "prod"; got != want {
			t.Fatalf("tag env=%q, want %q", got, want)
		}
	})

	// Ensure an empty value is sent and accepted by the HTTP layer (the
	// service decides whether it is allowed).
	t.Run("SetSecretEmptyValue", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.SetSecretFn = func(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
			return &custos.Secret{Project: in.Project, Name: in.Name}, nil
		}
		if _, err := env.Client.SetSecret(ctx(t), custos.SetSecretInput{Project: "p", Name: "EMPTY"}); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure a listing passes the project and tags as the filter.
	t.Run("ListSecrets", func(t *testing.T) {
		env := MustServe(t)
		var got custos.SecretFilter
		env.Spy.ListSecretsFn = func(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error) {
			got = f
			return []*custos.Secret{{Name: "A"}, {Name: "B"}}, nil
		}
		f := custos.SecretFilter{Project: "web-app", Tags: map[string]string{"env": "prod", "team": "pay"}}
		list, err := env.Client.ListSecrets(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("filter=%+v, want %+v", got, f)
		}
		if got, want := len(list), 2; got != want {
			t.Fatalf("len=%d, want %d", got, want)
		}
	})

	// Ensure an empty listing is an empty JSON array, not null.
	t.Run("ListSecretsEmpty", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.ListSecretsFn = func(ctx context.Context, f custos.SecretFilter) ([]*custos.Secret, error) {
			if f.Project != "" || f.Tags != nil {
				t.Errorf("filter=%+v, want empty", f)
			}
			return nil, nil
		}
		resp := env.Do(t, Request{Method: "GET", Path: "/v1/secrets"})
		if got, want := strings.TrimSpace(string(resp.Body)), `{"secrets":[]}`; got != want {
			t.Fatalf("body=%s, want %s", got, want)
		}
	})

	// Ensure the versions of a secret come back.
	t.Run("SecretHistory", func(t *testing.T) {
		env := MustServe(t)
		env.Spy.SecretHistoryFn = func(ctx context.Context, project, name string) ([]*custos.SecretVersion, error) {
			if project != "web-app" || name != "STRIPE_KEY" {
				t.Errorf("got %s/%s", project, name)
			}
			return []*custos.SecretVersion{{Version: 2, CreatedBy: testKeyID}, {Version: 1}}, nil
		}
		vs, err := env.Client.SecretHistory(ctx(t), "web-app", "STRIPE_KEY")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(vs), 2; got != want {
			t.Fatalf("len=%d, want %d", got, want)
		}
		if got, want := vs[0].CreatedBy, testKeyID; got != want {
			t.Fatalf("CreatedBy=%q, want %q", got, want)
		}
	})

	// Ensure a delete answers 204 and reaches the service.
	t.Run("DeleteSecret", func(t *testing.T) {
		env := MustServe(t)
		var got string
		env.Spy.DeleteSecretFn = func(ctx context.Context, project, name string) error {
			got = project + "/" + name
			return nil
		}
		if err := env.Client.DeleteSecret(ctx(t), "web-app", "STRIPE_KEY"); err != nil {
			t.Fatal(err)
		}
		if want := "web-app/STRIPE_KEY"; got != want {
			t.Fatalf("deleted %q, want %q", got, want)
		}
		env.Spy.Reset()
		resp := env.Do(t, Request{Method: "DELETE", Path: "/v1/secrets/web-app/STRIPE_KEY"})
		if got, want := resp.Status, http.StatusNoContent; got != want {
			t.Fatalf("status=%d, want %d", got, want)
		}
	})

	// Ensure an access request delivers values, with no-store caching.
	t.Run("AccessSecrets", func(t *testing.T) {
		env := MustServe(t)
		var got custos.AccessRequest
		env.Spy.AccessSecretsFn = func(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
			got = req
			return []*custos.SecretValue{{Project: req.Project, Name: "A", Version: 1, Value: testSecret}}, nil
		}
		req := custos.AccessRequest{Project: "web-app", Names: []string{"A", "B_2"}, Mode: custos.ModeInject}
		vals, err := env.Client.AccessSecrets(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("request=%+v, want %+v", got, req)
		}
		if got, want := vals[0].Value, testSecret; got != want {
			t.Fatalf("value=%q, want %q", got, want)
		}

		resp := env.Do(t, Request{Method: "POST", Path: "/v1/secrets/access", Body: `{"project":"web-app","names":["A"],"mode":"reveal"}`})
		if got, want := resp.Header.Get("Cache-Control"), "no-store"; got != want {
			t.Fatalf("Cache-Control=%q, want %q", got, want)
		}
	})

	// Ensure mode run may leave the names out and an empty project means
	// the default project.
	t.Run("AccessSecretsRunDefaultProject", func(t *testing.T) {
		env := MustServe(t)
		var got custos.AccessRequest
		env.Spy.AccessSecretsFn = func(ctx context.Context, req custos.AccessRequest) ([]*custos.SecretValue, error) {
			got = req
			return nil, nil
		}
		vals, err := env.Client.AccessSecrets(ctx(t), custos.AccessRequest{Mode: custos.ModeRun})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := got.Project, custos.DefaultProject; got != want {
			t.Fatalf("project=%q, want %q", got, want)
		}
		if vals == nil || len(vals) != 0 {
			t.Fatalf("values=%v, want empty", vals)
		}
	})

	// Ensure the client checks project and name before it sends anything.
	t.Run("ClientValidates", func(t *testing.T) {
		env := MustServe(t)
		if _, err := env.Client.SetSecret(ctx(t), custos.SetSecretInput{Project: "p", Name: "../x", Value: "v"}); custos.ErrorCode(err) != custos.EINVALID {
			t.Fatalf("err=%v, want invalid", err)
		}
		if err := env.Client.DeleteSecret(ctx(t), "UPPER", "X"); custos.ErrorCode(err) != custos.EINVALID {
			t.Fatalf("err=%v, want invalid", err)
		}
		env.AssertNoCalls(t)
	})
}

func TestSecrets_BadQuery(t *testing.T) {
	for _, q := range []string{
		"?project=Bad_Project",
		"?project=a&project=b",
		"?tag=novalue",
		"?tag=Env=prod",
		"?tag=env=pr%20od",
		"?tag=env=a&tag=env=b",
		"?tags=env=prod",
		"?limit=5",
		"?tag=" + strings.Repeat("k", 70) + "=v",
	} {
		// Ensure a bad listing query is rejected before the service runs.
		t.Run(q, func(t *testing.T) {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "GET", Path: "/v1/secrets" + q})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
			}
			if code, _ := resp.Err(t); code != custos.EINVALID {
				t.Fatalf("code=%q, want invalid", code)
			}
			env.AssertNoCalls(t)
		})
	}
}

func TestAccessSecrets_BadBody(t *testing.T) {
	many := `"A"` + strings.Repeat(`,"A"`, custos.MaxNamesPerRequest)
	for _, tt := range []struct{ name, body string }{
		{"NoMode", `{"project":"p","names":["A"]}`},
		{"BadMode", `{"project":"p","names":["A"],"mode":"steal"}`},
		{"NoNamesInject", `{"project":"p","mode":"inject"}`},
		{"EmptyNamesReveal", `{"project":"p","names":[],"mode":"reveal"}`},
		{"BadName", `{"project":"p","names":["A","b-c"],"mode":"inject"}`},
		{"BadProject", `{"project":"P","names":["A"],"mode":"inject"}`},
		{"TooManyNames", `{"project":"p","names":[` + many + `],"mode":"inject"}`},
		{"NamesNotArray", `{"project":"p","names":"A","mode":"inject"}`},
	} {
		// Ensure a bad access request never reaches the service.
		t.Run(tt.name, func(t *testing.T) {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "POST", Path: "/v1/secrets/access", Body: tt.body})
			if got, want := resp.Status, http.StatusBadRequest; got != want {
				t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
			}
			env.AssertNoCalls(t)
		})
	}
}

func TestSetSecret_BadBody(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
	}{
		{"NoValue", `{"tags":{"env":"prod"}}`, 400},
		{"NullValue", `{"value":null}`, 400},
		{"ValueNotString", `{"value":42}`, 400},
		{"ProjectInBody", `{"value":"v","project":"other"}`, 400},
		{"BadTag", `{"value":"v","tags":{"Bad Key":"x"}}`, 400},
		{"BadTTL", `{"value":"v","ttl":"soon"}`, 400},
		{"NegativeTTL", `{"value":"v","ttl":"-5m"}`, 400},
		{"TTLNumber", `{"value":"v","ttl":5}`, 400},
		{"LongDescription", `{"value":"v","description":"` + strings.Repeat("d", custos.MaxDescriptionBytes+1) + `"}`, 400},
		{"ValueTooLarge", `{"value":"` + strings.Repeat("v", custos.MaxValueBytes+1) + `"}`, 413},
		{"CaseVariant", `{"VALUE":"v"}`, 400},
		{"CaseVariantExtra", `{"value":"v","Tags":{"env":"prod"}}`, 400},
		{"DuplicateKey", `{"value":"a","value":"b"}`, 400},
		{"InvalidUTF8", "{\"value\":\"\xff\xfe\"}", 400},
		{"Array", `[{"value":"v"}]`, 400},
		{"Null", `null`, 400},
		{"String", `"v"`, 400},
	} {
		// Ensure a body the HTTP layer can reject never reaches the service.
		t.Run(tt.name, func(t *testing.T) {
			env := MustServe(t)
			resp := env.Do(t, Request{Method: "PUT", Path: "/v1/secrets/web-app/KEY", Body: tt.body})
			if got, want := resp.Status, tt.status; got != want {
				t.Fatalf("status=%d, want %d: %s", got, want, resp.Body)
			}
			if code, msg := resp.Err(t); code == custos.EINTERNAL || strings.Contains(msg, "vvvvvvvv") {
				t.Fatalf("code=%q message=%q", code, msg)
			}
			env.AssertNoCalls(t)
		})
	}
}

// FuzzDecodeSetSecret sends arbitrary bodies to PUT /v1/secrets/{project}/{name}:
// the server must never panic or answer 500, and the service runs only for
// answers of 200.
func FuzzDecodeSetSecret(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"value":"v"}`, `{"value":"v","tags":{"env":"prod"},"ttl":"7d","description":"d"}`,
		`{"value":"v"}{}`, `{"value":"v"} x`, `{"value":`, `{"value":"\ud800"}`, `{"value":1e999}`,
		`{"tags":{"a":1}}`, `{"ttl":"99999999999h"}`, `{"value":"v","value":"w"}`, `[]`, `null`,
		`{"value":"v","unknown":true}`, "\xff\xfe", `{"ttl":"3651d"}`, `{"value":"v","tags":null}`,
	} {
		f.Add(seed)
	}
	spy := &Spy{}
	spy.SetSecretFn = func(ctx context.Context, in custos.SetSecretInput) (*custos.Secret, error) {
		return &custos.Secret{Project: in.Project, Name: in.Name, Version: 1}, nil
	}
	h := custoshttp.NewHandler(custoshttp.Config{
		Services: custoshttp.Services{Keys: spy, Secrets: spy},
		Logger:   discardLogger(),
	})
	f.Fuzz(func(t *testing.T, body string) {
		spy.Reset()
		req := httptest.NewRequest("PUT", "/v1/secrets/web-app/KEY", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("500 for body %q: %s", body, rec.Body)
		}
		if called := len(spy.Calls()) > 0; called != (rec.Code == http.StatusOK) {
			t.Fatalf("status %d but service called=%v for body %q", rec.Code, called, body)
		}
	})
}
