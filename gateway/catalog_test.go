package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	ooption "github.com/openai/openai-go/v3/option"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/gateway"
)

// listingUp is a provider whose GET /models (OpenAI) or GET /v1/models
// (Anthropic) answers listing, and counts how often it was asked.
type listingUp struct {
	*fakeUp
	asked   atomic.Int64
	listing func(w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	auth []string // the credential headers of each listing request
}

func newListingUp(t *testing.T, name string, listing func(w http.ResponseWriter, r *http.Request)) *listingUp {
	l := &listingUp{listing: listing}
	l.fakeUp = newFakeUp(t, name, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method != http.MethodGet || (r.URL.Path != "/v1/models") {
			http.NotFound(w, r)
			return
		}
		l.asked.Add(1)
		l.mu.Lock()
		l.auth = append(l.auth, r.Header.Get("Authorization")+"|"+r.Header.Get("x-api-key")+"|"+r.Header.Get("anthropic-version")+"|"+r.URL.RawQuery)
		l.mu.Unlock()
		l.listing(w, r)
	})
	return l
}

func jsonListing(body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
}

func listedIDs(t *testing.T, g *gwEnv) []string {
	t.Helper()
	page, err := g.openai().Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestModelsListPatternMatches(t *testing.T) {
	// Ensure GET /v1/models lists a provider's exact names and the models of its own listing its patterns match — hostile names dropped, once per TTL, asked with the provider's key — in both wire formats.
	oa := newListingUp(t, "openai", jsonListing(`{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"gpt-4o-mini"},
		{"id":"dall-e-3"},{"id":"o3"},{"id":"gpt-4o"},{"id":"gpt-evil\n"},{"id":"gpt-`+strings.Repeat("x", 200)+`"},{"id":5},
		{"id":"gpt-<script>"},{"id":"models/gpt-google"},{"id":""},{"nope":"gpt-5"}]}`))
	an := newListingUp(t, "anthropic", jsonListing(`{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5"},
		{"type":"model","id":"claude-haiku-4-5"},{"type":"model","id":"other-model"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"other-model"}`))
	g := newGW(t, gateway.Config{
		Providers: []gateway.Provider{
			oa.openAI(openaiKey, "gpt-*", "o3*", "text-embedding-3-small"),
			an.anthropic(anthropicKey, "claude-*", "claude-opus-4"),
		},
		Egress: loopbackCloud,
	})
	want := []string{"text-embedding-3-small", "gpt-4o", "gpt-4o-mini", "o3", "gpt-google"}
	for range 3 {
		if got := listedIDs(t, g); !slices.Equal(got, want) {
			t.Fatalf("listed %q, want %q", got, want)
		}
	}
	page, err := g.anthropic().Models.List(context.Background(), anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if want := []string{"claude-opus-4", "claude-sonnet-4-5", "claude-haiku-4-5"}; !slices.Equal(ids, want) || page.FirstID != want[0] || page.LastID != want[2] {
		t.Fatalf("Anthropic listing %q (first %q, last %q), want %q", ids, page.FirstID, page.LastID, want)
	}
	if oa.asked.Load() != 1 || an.asked.Load() != 1 {
		t.Fatalf("providers asked %d and %d times, want once each within the TTL", oa.asked.Load(), an.asked.Load())
	}
	if got := oa.auth[0]; got != "Bearer "+openaiKey+"|||" {
		t.Errorf("OpenAI listing sent %q", got)
	}
	if got := an.auth[0]; got != "|"+anthropicKey+"|2023-06-01|limit=1000" {
		t.Errorf("Anthropic listing sent %q", got)
	}
}

func TestModelsListingFailures(t *testing.T) {
	// Ensure a provider whose listing fails, is hostile or is gone leaves its exact names listed, 200, and is not asked again at once.
	huge := `{"data":[` + strings.Repeat(`{"id":"gpt-x"},`, 100000) + `{"id":"gpt-y"}]}`
	for name, listing := range map[string]func(w http.ResponseWriter, r *http.Request){
		"500": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":{"message":"down"}}`, http.StatusInternalServerError)
		},
		"401": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
		},
		"not JSON":  jsonListing(`<html>gpt-4o</html>`),
		"no data":   jsonListing(`{"object":"list","models":["gpt-4o"]}`),
		"data null": jsonListing(`{"data":null}`),
		"a string":  jsonListing(`"gpt-4o"`),
		"cut off":   jsonListing(`{"data":[{"id":"gpt-4o"}`),
		"over 1 MB": jsonListing(huge),
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest", http.StatusFound)
		},
	} {
		t.Run(name, func(t *testing.T) {
			up := newListingUp(t, "openai", listing)
			g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-*", "gpt-exact")}, Egress: loopbackCloud})
			for range 2 {
				if got := listedIDs(t, g); !slices.Equal(got, []string{"gpt-exact"}) {
					t.Fatalf("listed %q", got)
				}
			}
			if up.asked.Load() != 1 {
				t.Fatalf("asked %d times", up.asked.Load())
			}
		})
	}
	t.Run("gone", func(t *testing.T) {
		up := newListingUp(t, "openai", jsonListing(`{"data":[{"id":"gpt-4o"}]}`))
		up.srv.Close()
		g := newGW(t, gateway.Config{Providers: []gateway.Provider{up.openAI(openaiKey, "gpt-*", "gpt-exact")}, Egress: loopbackCloud})
		if got := listedIDs(t, g); !slices.Equal(got, []string{"gpt-exact"}) {
			t.Fatalf("listed %q", got)
		}
	})
}

func TestModelsListingOfflineAsksLocalOnly(t *testing.T) {
	// Ensure in offline mode a cloud provider is not asked for its listing (and its patterns list nothing) while a local one is.
	cloud := newListingUp(t, "cloud", jsonListing(`{"data":[{"id":"gpt-4o"}]}`))
	local := newListingUp(t, "ollama", jsonListing(`{"object":"list","data":[{"id":"llama3:latest"},{"id":"qwen2.5-coder:7b"},{"id":"mistral"}]}`))
	lp := local.openAI("", "llama3*", "qwen*")
	lp.Local = true
	var log syncBuffer
	g := newGW(t, gateway.Config{Providers: []gateway.Provider{cloud.openAI(openaiKey, "gpt-*"), lp}, Egress: loopbackCloud,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	page, err := g.openai().Models.List(context.Background(), ooption.WithHeader(gateway.HeaderPrivacy, custos.PrivacyOffline))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if want := []string{"llama3:latest", "qwen2.5-coder:7b"}; !slices.Equal(ids, want) {
		t.Fatalf("offline listing %q, want %q", ids, want)
	}
	// Not even tried (the egress client would refuse it anyway).
	if cloud.asked.Load() != 0 || local.asked.Load() != 1 || strings.Contains(log.String(), "could not list") {
		t.Fatalf("cloud asked %d, local %d times; log: %s", cloud.asked.Load(), local.asked.Load(), log.String())
	}
	if got := local.auth[0]; got != "|||" {
		t.Errorf("a provider without a key was sent %q", got)
	}
	// A bad privacy header is refused as on every route.
	r := g.get("/v1/models", map[string]string{"Authorization": "Bearer " + custosKey, gateway.HeaderPrivacy: "paranoid"})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "X-Custos-Privacy") {
		t.Fatalf("bad privacy header: %d %s", r.status, r.body)
	}
}

// orgKeys accepts one key for each of two orgs.
type orgKeys struct{ custos.KeyService }

func (orgKeys) Authenticate(_ context.Context, tok string) (*custos.APIKey, error) {
	switch tok {
	case custosKey:
		return &custos.APIKey{ID: "key_1", OrgID: "org_1", Role: custos.RoleAgent}, nil
	case custosKey + "2":
		return &custos.APIKey{ID: "key_2", OrgID: "org_2", Role: custos.RoleAgent}, nil
	}
	return nil, custos.Errorf(custos.EUNAUTHORIZED, "bad key")
}

func TestModelsListingPerOrgAndKey(t *testing.T) {
	// Ensure one org's listing is never served to another, even with the same provider key, and a provider's new key is asked afresh.
	up := newListingUp(t, "openai", nil)
	up.listing = func(w http.ResponseWriter, r *http.Request) {
		// Each answer is new: a listing served from another org's cache would show.
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{map[string]any{"id": fmt.Sprintf("gpt-%s-%d", key, up.asked.Load())}}})
	}
	var provKey atomic.Value
	provKey.Store("k1")
	g := newGW(t, gateway.Config{
		Keys:   orgKeys{},
		Egress: loopbackCloud,
		Resolve: func(_ context.Context, key *custos.APIKey) (*gateway.Setup, error) {
			return &gateway.Setup{Providers: []gateway.Provider{up.openAI(provKey.Load().(string), "gpt-*")}}, nil
		},
	})
	list := func(tok string) string {
		t.Helper()
		r := g.get("/v1/models", map[string]string{"Authorization": "Bearer " + tok})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var l struct{ Data []struct{ ID string } }
		if err := json.Unmarshal([]byte(r.body), &l); err != nil || len(l.Data) != 1 {
			t.Fatalf("listing %s: %v", r.body, err)
		}
		return l.Data[0].ID
	}
	for _, step := range []struct{ tok, key, want string }{
		{custosKey, "k1", "gpt-k1-1"},
		{custosKey + "2", "k1", "gpt-k1-2"}, // the other org, the same provider key: asked itself
		{custosKey, "k1", "gpt-k1-1"},       // cached
		{custosKey, "k2", "gpt-k2-3"},       // a new provider key
		{custosKey + "2", "k1", "gpt-k1-2"},
	} {
		provKey.Store(step.key)
		if got := list(step.tok); got != step.want {
			t.Fatalf("%+v: listed %s", step, got)
		}
	}
	if strings.Contains(fmt.Sprint(up.auth), custosKey) {
		t.Fatalf("listing credentials %q", up.auth)
	}
}
