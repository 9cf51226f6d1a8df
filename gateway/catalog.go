package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The model catalog: GET /v1/models lists a provider's exact model names
// as configured, and for its name patterns ("gpt-*") the provider's own
// models that match them, as the provider lists them (GET /models in the
// OpenAI format, GET /v1/models in Anthropic's). Agents and editors fill
// their model pickers from that listing; with patterns alone it would be
// empty. The provider's answer is untrusted: bounded in size and count,
// and only names that look like model names and match a pattern are
// listed. A provider that cannot be asked leaves its exact names only.
const (
	// catalogTTL is how long a provider's listing is reused.
	catalogTTL = 10 * time.Minute
	// catalogRetry is how long a failed listing is remembered, so that a
	// provider that is down does not slow every listing.
	catalogRetry = time.Minute
	// catalogTimeout bounds one listing request to a provider.
	catalogTimeout = 5 * time.Second
	// maxCatalogBody bounds a provider's listing answer.
	maxCatalogBody = 1 << 20
	// maxCatalogModels bounds the names taken from one listing.
	maxCatalogModels = 2000
	// maxCatalogEntries bounds the providers remembered; when full the
	// catalog is emptied and refilled.
	maxCatalogEntries = 1024
)

// catalog remembers providers' model listings, per org and provider
// identity (name, base URL and a digest of its key, so that a re-pointed
// provider or a new key is asked again). Callers that want a listing being
// fetched wait for that one fetch.
type catalog struct {
	mu sync.Mutex
	m  map[string]*catalogEntry
}

type catalogEntry struct {
	done    chan struct{} // closed when ids and err are set
	ids     []string
	err     error
	expires time.Time
}

// providerModels returns the models p lists, fetched at most once per
// catalogTTL (catalogRetry after a failure) for org.
func (h *Handler) providerModels(ctx context.Context, org string, p *Provider, mode string) ([]string, error) {
	sum := sha256.Sum256([]byte(p.APIKey))
	id := org + "\x00" + p.Name + "\x00" + p.BaseURL + "\x00" + string(sum[:16])
	c := &h.catalog
	c.mu.Lock()
	e, ok := c.m[id]
	if ok {
		select {
		case <-e.done:
			if time.Now().After(e.expires) {
				ok = false
			}
		default: // being fetched
		}
	}
	if !ok {
		if c.m == nil || len(c.m) >= maxCatalogEntries {
			c.m = map[string]*catalogEntry{}
		}
		e = &catalogEntry{done: make(chan struct{})}
		c.m[id] = e
		c.mu.Unlock()
		// Detached from the caller: others may be waiting for this fetch.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catalogTimeout)
		e.ids, e.err = h.fetchModels(fctx, p, mode)
		cancel()
		e.expires = time.Now().Add(catalogTTL)
		if e.err != nil {
			e.expires = time.Now().Add(catalogRetry)
			h.log.Warn("gateway: could not list a provider's models; listing its exact model names only", "provider", p.Name, "err", e.err)
		}
		close(e.done)
		return e.ids, e.err
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.ids, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errCatalog is the error of a provider's listing answer that is not one.
var errCatalog = errors.New("gateway: the provider's model listing is not a list of models")

// fetchModels asks p for its models.
func (h *Handler) fetchModels(ctx context.Context, p *Provider, mode string) ([]string, error) {
	client, err := h.client(p, mode)
	if err != nil {
		return nil, err
	}
	u := trimSlash(p.BaseURL) + "/models"
	if p.Kind == KindAnthropic {
		u = trimSlash(p.BaseURL) + "/v1/models?limit=1000"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("provider %q has an invalid base URL", p.Name)
	}
	p.authorize(req.Header)
	resp, err := client.Do(req) // #nosec G704 -- the URL is the org's configured provider, sent through the egress client
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("provider %q answered the model listing with status %d", p.Name, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCatalogBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCatalogBody {
		return nil, fmt.Errorf("%w: more than %d bytes", errCatalog, maxCatalogBody)
	}
	return parseModels(b)
}

// parseModels returns the model names of a listing in either wire format
// ({"data": [{"id": …}, …]}), in its order, without duplicates: those that
// look like model names (modelName), at most maxCatalogModels. Google's
// "models/" prefix is dropped: callers send the bare name.
func parseModels(b []byte) ([]string, error) {
	var l struct {
		Data []struct {
			ID any `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &l); err != nil || l.Data == nil {
		return nil, errCatalog
	}
	seen := map[string]bool{}
	var ids []string
	for _, m := range l.Data {
		id, _ := m.ID.(string)
		id = strings.TrimPrefix(id, "models/")
		if !modelName(id) || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
		if len(ids) == maxCatalogModels {
			break
		}
	}
	return ids, nil
}

// modelName reports whether s can be listed as a model name: 1 to 128
// bytes of letters, digits and . _ - : / @ +.
func modelName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._-:/@+", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// patterned reports whether p routes any model by a name pattern.
func (p *Provider) patterned() bool {
	for _, m := range p.Models {
		if strings.HasSuffix(m, "*") {
			return true
		}
	}
	return false
}
