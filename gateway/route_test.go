package gateway_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/gateway"
	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/redact"
)

// Ensure embeddings (string and []string input) reach the provider with
// placeholders only, the caller gets the vectors, and the usage record
// carries prompt_tokens on the embeddings route.
func TestEmbeddingsRedactedWithUsage(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{up.openAI(openaiKey, "text-embedding-*")},
		Engine:    newEngine(t, nil, nil),
		Egress:    loopbackCloud,
	})
	tok, email := planted(t)
	c := g.openai()
	for _, tc := range []struct {
		name  string
		input openai.EmbeddingNewParamsInputUnion
		n     int
	}{
		{"String", openai.EmbeddingNewParamsInputUnion{OfString: openai.String("deploy with " + tok + " then mail " + email)}, 1},
		{"Strings", openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"token " + tok, "mail " + email, "plain text"}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Input: tc.input, Model: "text-embedding-3-small"})
			if err != nil {
				t.Fatal(err)
			}
			body, hdr := up.last(t)
			mustNotContain(t, "provider request", body+strings.Join(hdr.Values("Authorization"), " "), tok, email, custosKey)
			if !secretRE.MatchString(body) || !emailRE.MatchString(body) {
				t.Errorf("provider body lacks placeholders: %s", body)
			}
			if got, want := hdr.Get("Authorization"), "Bearer "+openaiKey; got != want {
				t.Errorf("provider Authorization = %q, want %q", got, want)
			}
			if got, want := len(resp.Data), tc.n; got != want {
				t.Fatalf("got %d vectors, want %d", got, want)
			}
			for i, d := range resp.Data {
				if !slices.Equal(d.Embedding, fakeVector(i)) || d.Index != int64(i) {
					t.Errorf("vector %d = %v (index %d), want %v", i, d.Embedding, d.Index, fakeVector(i))
				}
			}
			if got, want := resp.Usage.PromptTokens, int64(embedTokensPerInput*tc.n); got != want {
				t.Errorf("caller's prompt_tokens = %d, want %d", got, want)
			}
			u := g.lastUsage()
			if u.Route != "embeddings" || u.TokensIn != int64(embedTokensPerInput*tc.n) || u.TokensOut != 0 ||
				u.Status != 200 || u.Provider != "openai" || u.Model != "text-embedding-3-small" || u.Redactions < 2 || u.Stream {
				t.Errorf("usage %+v", u)
			}
		})
	}
}

// Ensure offline mode refuses a cloud provider's model with 403 in both
// wire formats without calling the provider.
func TestOfflineRefusesCloudProviders(t *testing.T) {
	oa, an := newFakeUp(t, "openai", nil), newFakeUp(t, "anthropic", nil)
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{oa.openAI(openaiKey, "gpt-4o"), an.anthropic(anthropicKey, "claude-*")},
		Engine:    newEngine(t, nil, nil),
		Egress:    loopbackCloud,
		Mode:      custos.PrivacyOffline,
	})
	ctx := context.Background()
	_, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hello"))
	if st, e := openaiStatus(err); st != 403 || e.Type != "permission_error" || !strings.Contains(e.Message, "offline") {
		t.Errorf("openai: %v, want a 403 permission_error naming offline mode", err)
	}
	_, err = g.anthropic().Messages.New(ctx, messageParams("claude-sonnet-4-5", "hello"))
	if st, e := anthropicStatus(err); st != 403 || e.Type() != "permission_error" {
		t.Errorf("anthropic: %v, want a 403 permission_error", err)
	}
	if n := oa.hits.Load() + an.hits.Load(); n != 0 {
		t.Errorf("cloud providers received %d requests in offline mode", n)
	}
	// Each refusal is on record for the admins, with no provider.
	us := g.usages()
	if len(us) != 2 {
		t.Fatalf("%d usage records, want 2: %+v", len(us), us)
	}
	for _, u := range us {
		if u.Status != 403 || u.Provider != "" || u.Mode != custos.PrivacyOffline || u.TokensIn != 0 {
			t.Errorf("refusal record %+v", u)
		}
	}
}

// Ensure offline mode serves a model from a local provider on loopback,
// and prefers it over a cloud provider of the same model.
func TestOfflineAllowsLocalProvider(t *testing.T) {
	cloud, local := newFakeUp(t, "cloud", nil), newFakeUp(t, "ollama", nil)
	lp := local.openAI("", "gpt-4o", "llama*")
	lp.Local = true
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{cloud.openAI(openaiKey, "gpt-4o"), lp},
		Engine:    newEngine(t, nil, nil),
		Mode:      custos.PrivacyOffline,
	})
	for _, model := range []string{"llama3.2", "gpt-4o"} {
		resp, err := g.openai().Chat.Completions.New(context.Background(), chatParams(model, "hello"))
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if !strings.HasPrefix(resp.Choices[0].Message.Content, "from ollama: ") {
			t.Errorf("%s answered by %q", model, resp.Choices[0].Message.Content)
		}
		if u := g.lastUsage(); u.Provider != "ollama" || u.Mode != custos.PrivacyOffline || u.Status != 200 {
			t.Errorf("usage %+v", u)
		}
	}
	if got, want := local.hits.Load(), int64(2); got != want {
		t.Errorf("local provider hits = %d, want %d", got, want)
	}
	if n := cloud.hits.Load(); n != 0 {
		t.Errorf("cloud provider received %d requests", n)
	}
}

// Ensure a provider marked Local whose base URL is a public address is
// refused by the egress policy (never dialled), in offline and normal mode.
func TestLocalProviderAtPublicAddressRefused(t *testing.T) {
	for _, mode := range []string{custos.PrivacyOffline, custos.PrivacyNormal} {
		for _, base := range []string{"https://8.8.8.8/v1", "http://8.8.8.8/v1", "https://[2001:4860:4860::8888]/v1", "https://[::ffff:8.8.8.8]/v1"} {
			t.Run(mode+"/"+base, func(t *testing.T) {
				g := newGW(t, gateway.Config{
					Providers: []gateway.Provider{{Name: "fake-local", Kind: gateway.KindOpenAI, BaseURL: base, APIKey: "k", Models: []string{"llama*"}, Local: true}},
					Engine:    newEngine(t, nil, nil),
					Mode:      mode,
				})
				r := g.post("/v1/chat/completions", `{"model":"llama3","messages":[{"role":"user","content":"hi"}]}`, authHeader("/v1/chat/completions"))
				msg := checkWireError(t, "/v1/chat/completions", r, 502)
				if !strings.Contains(msg, "egress policy") {
					t.Errorf("message %q does not name the egress policy", msg)
				}
			})
		}
	}
}

// Ensure the caller's X-Custos-Privacy header only makes a request
// stricter: offline refuses the cloud, normal under a sensitive floor
// stays sensitive, and an unknown value is a 400.
func TestPrivacyHeaderOnlyStricter(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	providers := []gateway.Provider{up.openAI(openaiKey, "gpt-4o", "text-embedding-*")}
	ctx := context.Background()

	normal := newGW(t, gateway.Config{Providers: providers, Engine: newEngine(t, nil, nil), Egress: loopbackCloud})
	_, err := normal.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"), ooption.WithHeader(gateway.HeaderPrivacy, "offline"))
	if st, _ := openaiStatus(err); st != 403 {
		t.Errorf("offline asked: %v, want 403", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("provider called %d times for an offline request", n)
	}
	r := normal.post("/v1/messages", `{"model":"claude-x","messages":[]}`, map[string]string{"x-api-key": custosKey, gateway.HeaderPrivacy: "paranoid"})
	checkWireError(t, "/v1/messages", r, 400)
	_, err = normal.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"), ooption.WithHeader(gateway.HeaderPrivacy, "lax"))
	if st, e := openaiStatus(err); st != 400 || !strings.Contains(e.Message, gateway.HeaderPrivacy) {
		t.Errorf("bogus mode: %v, want 400 naming the header", err)
	}

	sensitive := newGW(t, gateway.Config{Providers: providers, Engine: newEngine(t, nil, nil), Egress: loopbackCloud, Mode: custos.PrivacySensitive})
	_, err = sensitive.openai().Embeddings.New(ctx, openai.EmbeddingNewParams{Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}, Model: "text-embedding-3-small"},
		ooption.WithHeader(gateway.HeaderPrivacy, "normal"))
	if st, _ := openaiStatus(err); st != 403 {
		t.Errorf("normal asked under sensitive: embeddings %v, want 403", err)
	}
	if _, err := sensitive.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"), ooption.WithHeader(gateway.HeaderPrivacy, "normal")); err != nil {
		t.Fatal(err)
	}
	if u := sensitive.lastUsage(); u.Mode != custos.PrivacySensitive {
		t.Errorf("mode %q, want sensitive", u.Mode)
	}
	if got, want := up.hits.Load(), int64(1); got != want {
		t.Errorf("provider hits = %d, want %d", got, want)
	}
}

// Ensure sensitive mode sends redacted chat to a cloud provider, refuses
// embeddings and code context for the cloud while routing code context to
// a local provider of the same model, and refuses the cloud when redaction
// is off.
func TestSensitiveMode(t *testing.T) {
	cloud, local := newFakeUp(t, "cloud", nil), newFakeUp(t, "local", nil)
	lp := local.openAI("", "gpt-4o")
	lp.Local = true
	providers := []gateway.Provider{cloud.openAI(openaiKey, "gpt-4o", "gpt-cloud-only", "text-embedding-*"), lp}
	g := newGW(t, gateway.Config{Providers: providers, Engine: newEngine(t, nil, nil), Egress: loopbackCloud, Mode: custos.PrivacySensitive})
	tok, email := planted(t)
	ctx := context.Background()

	t.Run("ChatRedacted", func(t *testing.T) {
		resp, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "use "+tok+" for "+email))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := cloud.last(t)
		mustNotContain(t, "cloud request", body, tok, email)
		if !secretRE.MatchString(body) || !emailRE.MatchString(body) {
			t.Errorf("cloud body lacks placeholders: %s", body)
		}
		if c := resp.Choices[0].Message.Content; !strings.HasPrefix(c, "from cloud: ") || !strings.Contains(c, tok) || !strings.Contains(c, email) {
			t.Errorf("answer not restored: %q", c)
		}
		if u := g.lastUsage(); u.Mode != custos.PrivacySensitive || u.Provider != "cloud" {
			t.Errorf("usage %+v", u)
		}
	})
	t.Run("EmbeddingsRefused", func(t *testing.T) {
		before := cloud.hits.Load()
		_, err := g.openai().Embeddings.New(ctx, openai.EmbeddingNewParams{Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}, Model: "text-embedding-3-small"})
		if st, e := openaiStatus(err); st != 403 || !strings.Contains(e.Message, "embeddings") {
			t.Errorf("embeddings: %v, want 403", err)
		}
		if cloud.hits.Load() != before {
			t.Error("cloud provider called for embeddings")
		}
	})
	t.Run("CodeContextGoesLocal", func(t *testing.T) {
		cb, lb := cloud.hits.Load(), local.hits.Load()
		code := ooption.WithHeader(gateway.HeaderContext, "code")
		_, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-cloud-only", "func main() {}"), code)
		if st, e := openaiStatus(err); st != 403 || !strings.Contains(e.Message, "code context") {
			t.Errorf("code context to cloud-only model: %v, want 403", err)
		}
		resp, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "func main() {}"), code)
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.Choices[0].Message.Content; !strings.HasPrefix(c, "from local: ") {
			t.Errorf("code context answered by %q", c)
		}
		if got, want := local.hits.Load()-lb, int64(1); got != want {
			t.Errorf("local hits = %d, want %d", got, want)
		}
		if cloud.hits.Load() != cb {
			t.Error("cloud provider called with code context")
		}
		if u := g.lastUsage(); u.Provider != "local" {
			t.Errorf("usage %+v", u)
		}
	})
	t.Run("NoEngineRefused", func(t *testing.T) {
		plain := newGW(t, gateway.Config{Providers: providers, Egress: loopbackCloud, Mode: custos.PrivacySensitive})
		before := cloud.hits.Load()
		_, err := plain.openai().Chat.Completions.New(ctx, chatParams("gpt-cloud-only", "use "+tok))
		if st, e := openaiStatus(err); st != 403 || !strings.Contains(e.Message, "redaction") {
			t.Errorf("no engine: %v, want 403", err)
		}
		_, err = plain.anthropic().Messages.New(ctx, messageParams("gpt-cloud-only", "x"))
		if st, _ := anthropicStatus(err); st != 400 { // an OpenAI-kind model on the Anthropic endpoint
			t.Errorf("anthropic endpoint: %v, want 400", err)
		}
		if cloud.hits.Load() != before {
			t.Error("cloud provider called without redaction in sensitive mode")
		}
	})
}

// Ensure privacy rules from Config.Resolve apply: the org's rule to every
// request, a project's rule to requests naming the project, a key's rule
// to that key only.
func TestPrivacyRulesFromResolve(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	eng := newEngine(t, nil, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		rule    custos.PrivacyRule
		project string
		want    int
	}{
		{"OrgOffline", custos.PrivacyRule{Scope: custos.ScopeOrg, Mode: custos.PrivacyOffline}, "", 403},
		{"OrgNormal", custos.PrivacyRule{Scope: custos.ScopeOrg, Mode: custos.PrivacyNormal}, "", 200},
		{"ProjectNamed", custos.PrivacyRule{Scope: custos.ScopeProject, Target: "payroll", Mode: custos.PrivacyOffline}, "payroll", 403},
		{"ProjectOther", custos.PrivacyRule{Scope: custos.ScopeProject, Target: "payroll", Mode: custos.PrivacyOffline}, "website", 200},
		{"ProjectNotNamed", custos.PrivacyRule{Scope: custos.ScopeProject, Target: "payroll", Mode: custos.PrivacyOffline}, "", 200},
		{"KeyOwn", custos.PrivacyRule{Scope: custos.ScopeKey, Target: "key_1", Mode: custos.PrivacyOffline}, "", 403},
		{"KeyOther", custos.PrivacyRule{Scope: custos.ScopeKey, Target: "key_2", Mode: custos.PrivacyOffline}, "", 200},
		{"KeySensitiveEmbeddings", custos.PrivacyRule{Scope: custos.ScopeKey, Target: "key_1", Mode: custos.PrivacySensitive}, "", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := tc.rule
			rule.OrgID = "org_1"
			var resolved *custos.APIKey
			g := newGW(t, gateway.Config{
				Resolve: func(_ context.Context, key *custos.APIKey) (*gateway.Setup, error) {
					resolved = key
					return &gateway.Setup{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o", "text-embedding-*")}, Engine: eng, Privacy: []*custos.PrivacyRule{&rule}}, nil
				},
				Egress: loopbackCloud,
			})
			before := up.hits.Load()
			var opts []ooption.RequestOption
			if tc.project != "" {
				opts = append(opts, ooption.WithHeader(gateway.HeaderProject, tc.project))
			}
			var err error
			if strings.HasSuffix(tc.name, "Embeddings") {
				_, err = g.openai(opts...).Embeddings.New(ctx, openai.EmbeddingNewParams{Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}, Model: "text-embedding-3-small"})
			} else {
				_, err = g.openai(opts...).Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
			}
			status := 200
			if err != nil {
				if status, _ = openaiStatus(err); status == 0 {
					t.Fatal(err)
				}
			}
			if status != tc.want {
				t.Errorf("status %d, want %d (%v)", status, tc.want, err)
			}
			if resolved == nil || resolved.ID != "key_1" {
				t.Errorf("Resolve got key %+v", resolved)
			}
			wantHits := int64(0)
			if tc.want == 200 {
				wantHits = 1
			}
			if got := up.hits.Load() - before; got != wantHits {
				t.Errorf("provider hits = %d, want %d", got, wantHits)
			}
		})
	}
}

// Ensure a stored secret's value found raw and base64-encoded is replaced
// before the provider, reported by name through OnKnown and KnownHits, and
// restored in the answer.
func TestKnownValuesRedactedAndReported(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	value := "Tr0ub4dor-" + randAlnum(t, 14)
	b64 := base64.StdEncoding.EncodeToString([]byte(value))
	eng := knownEngine(t, value)
	g := newGW(t, gateway.Config{
		Resolve: func(context.Context, *custos.APIKey) (*gateway.Setup, error) {
			return &gateway.Setup{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o")}, Engine: eng}, nil
		},
		Egress: loopbackCloud,
	})
	resp, err := g.openai().Chat.Completions.New(context.Background(), chatParams("gpt-4o", "the password is "+value, "encoded: "+b64))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := up.last(t)
	mustNotContain(t, "provider request", body, value, b64)
	if c := resp.Choices[0].Message.Content; !strings.Contains(c, "the password is "+value) || !strings.Contains(c, "encoded: "+b64) {
		t.Errorf("answer not restored: %q", c)
	}
	hits := g.knownHits()
	if len(hits) != 1 || !slices.Equal(hits[0].Names, []string{"DB_PASSWORD"}) || hits[0].Blocked ||
		hits[0].Key == nil || hits[0].Key.ID != "key_1" || hits[0].Model != "gpt-4o" || hits[0].Provider != "openai" || hits[0].IP == "" {
		t.Errorf("OnKnown got %+v", hits)
	}
	if u := g.lastUsage(); u.KnownHits != 1 || u.Status != 200 || u.Redactions < 2 {
		t.Errorf("usage %+v", u)
	}
}

// Ensure OnSecret "block" refuses a request holding a stored secret's
// value with 403 naming the secret, not its value, and never calls the
// provider.
func TestKnownValuesBlocked(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	value := "Tr0ub4dor-" + randAlnum(t, 14)
	b64 := base64.StdEncoding.EncodeToString([]byte(value))
	eng := knownEngine(t, value)
	g := newGW(t, gateway.Config{
		Resolve: func(context.Context, *custos.APIKey) (*gateway.Setup, error) {
			return &gateway.Setup{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o"), up.anthropic(anthropicKey, "claude-*")},
				Engine: eng}, nil
		},
		Egress:   loopbackCloud,
		OnSecret: gateway.OnSecretBlock,
	})
	ctx := context.Background()
	_, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "the password is "+value))
	st, oe := openaiStatus(err)
	if st != 403 {
		t.Fatalf("openai: %v, want 403", err)
	}
	if !strings.Contains(oe.Message, "DB_PASSWORD") {
		t.Errorf("message %q does not name the secret", oe.Message)
	}
	mustNotContain(t, "error answer", oe.RawJSON(), value, b64)
	_, err = g.anthropic().Messages.New(ctx, messageParams("claude-sonnet-4-5", "encoded: "+b64))
	st, ae := anthropicStatus(err)
	if st != 403 || ae.Type() != "permission_error" || !strings.Contains(ae.RawJSON(), "DB_PASSWORD") {
		t.Fatalf("anthropic: %v, want 403 naming DB_PASSWORD", err)
	}
	mustNotContain(t, "error answer", ae.RawJSON(), value, b64)
	if n := up.hits.Load(); n != 0 {
		t.Errorf("provider called %d times", n)
	}
	hits := g.knownHits()
	if len(hits) != 2 {
		t.Fatalf("OnKnown called %d times, want 2", len(hits))
	}
	for _, h := range hits {
		if !h.Blocked || !slices.Equal(h.Names, []string{"DB_PASSWORD"}) {
			t.Errorf("OnKnown got %+v", h)
		}
	}
	for _, u := range g.usages() {
		if u.Status != 403 || u.KnownHits != 1 || u.TokensIn != 0 {
			t.Errorf("usage %+v", u)
		}
	}
}

// Ensure the per-key limit answers 429 with Retry-After in the caller's
// wire format once exceeded, without calling the provider.
func TestRateLimitPerKey(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o"), up.anthropic(anthropicKey, "claude-*")},
		Egress:    loopbackCloud,
		Limiter:   ratelimit.New(nil, ratelimit.Config{PerKey: ratelimit.Limit{N: 2, Window: time.Minute}, Namespace: "ai:"}, nil),
	})
	ctx := context.Background()
	for i := range 2 {
		if _, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hi")); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	_, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
	st, oe := openaiStatus(err)
	if st != 429 || oe.Type != "rate_limit_error" || oe.Code != "rate_limit_exceeded" {
		t.Fatalf("third request: %v, want 429 rate_limit_error", err)
	}
	if ra := oe.Response.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	_, err = g.anthropic().Messages.New(ctx, messageParams("claude-sonnet-4-5", "hi"))
	st, ae := anthropicStatus(err)
	if st != 429 || ae.Type() != "rate_limit_error" || ae.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("anthropic after the limit: %v, want 429 rate_limit_error with Retry-After", err)
	}
	if got, want := up.hits.Load(), int64(2); got != want {
		t.Errorf("provider hits = %d, want %d", got, want)
	}
}

// Ensure bad keys count as failed authentications per IP, after which even
// the good key is refused with 429 before it is checked.
func TestRateLimitAuthFailures(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-4o"), up.anthropic(anthropicKey, "claude-*")},
		Egress:    loopbackCloud,
		Limiter:   ratelimit.New(nil, ratelimit.Config{AuthFailuresPerIP: ratelimit.Limit{N: 3, Window: 10 * time.Minute}, Namespace: "ai:"}, nil),
	})
	ctx := context.Background()
	for i := range 3 {
		_, err := g.openai(ooption.WithAPIKey(fmt.Sprint("cst_ak_guess", i))).Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
		if st, _ := openaiStatus(err); st != 401 {
			t.Fatalf("bad key %d: %v, want 401", i+1, err)
		}
	}
	_, err := g.openai().Chat.Completions.New(ctx, chatParams("gpt-4o", "hi"))
	st, oe := openaiStatus(err)
	if st != 429 || oe.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("good key after failures: %v, want 429 with Retry-After", err)
	}
	_, err = g.anthropic().Messages.New(ctx, messageParams("claude-sonnet-4-5", "hi"))
	if st, ae := anthropicStatus(err); st != 429 || ae.Type() != "rate_limit_error" {
		t.Fatalf("anthropic good key after failures: %v, want 429 rate_limit_error", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("provider called %d times", n)
	}
}

// Ensure malformed and oversized requests get the right status in the
// caller's wire format, with no provider call and no usage with tokens.
func TestHostileRequestBodies(t *testing.T) {
	up := newFakeUp(t, "openai", nil)
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-*"), up.anthropic(anthropicKey, "claude-*")},
		Egress:    loopbackCloud,
		Engine:    newEngine(t, nil, nil),
		MaxBody:   4096,
	})
	bodies := []struct {
		name, body string
		status     int
	}{
		{"NotJSON", `not json`, 400},
		{"Empty", ``, 400},
		{"Null", `null`, 400},
		{"String", `"gpt-4o"`, 400},
		{"Array", `[{"model":"claude-x","messages":[]}]`, 400},
		{"TrailingWord", `{"model":"claude-x","messages":[]} x`, 400},
		{"TrailingObject", `{"model":"claude-x","messages":[]}{"model":"claude-x"}`, 400},
		{"TrailingBrace", `{"model":"claude-x","messages":[]}}`, 400},
		{"TrailingBracket", `{"model":"claude-x","messages":[]}]`, 400},
		{"Truncated", `{"model":"claude-x","messages":[`, 400},
		{"MissingModel", `{"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"EmptyModel", `{"model":"","messages":[]}`, 400},
		{"NumberModel", `{"model":42,"messages":[]}`, 400},
		{"UnknownModel", `{"model":"nobody-serves-this","messages":[]}`, 404},
		{"TooLarge", `{"model":"claude-x","messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`, 413},
	}
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		for _, tc := range bodies {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				r := g.post(path, tc.body, authHeader(path))
				checkWireError(t, path, r, tc.status)
			})
		}
	}
	t.Run("HugeHeaders", func(t *testing.T) {
		hdr := authHeader("/v1/chat/completions")
		hdr["X-Padding"] = strings.Repeat("a", 1<<20+16<<10)
		r := g.post("/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, hdr)
		if r.status != 431 {
			t.Errorf("status %d, want 431", r.status)
		}
	})
	if n := up.hits.Load(); n != 0 {
		t.Errorf("provider called %d times", n)
	}
	for _, u := range g.usages() {
		if u.TokensIn != 0 || u.TokensOut != 0 {
			t.Errorf("usage with tokens: %+v", u)
		}
	}
}

// knownEngine is the engine of an org with one stored secret, DB_PASSWORD,
// whose value is value.
func knownEngine(t *testing.T, value string) *redact.Engine {
	t.Helper()
	e, err := redact.New(redact.Config{Secrets: true, Known: []string{value}, KnownLabels: []string{"DB_PASSWORD"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
