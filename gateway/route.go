package gateway

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/custos-dev/custos"
)

// route is the kind of request, which decides its path at the provider and
// where sensitive mode may send it.
type route int

const (
	routeChat route = iota
	routeEmbeddings
	routeMessages
	routeCountTokens
	routeResponses
)

// String names the route in usage records.
func (r route) String() string {
	switch r {
	case routeEmbeddings:
		return "embeddings"
	case routeMessages:
		return "messages"
	case routeCountTokens:
		return "count_tokens"
	case routeResponses:
		return "responses"
	}
	return "chat"
}

// path is the route's path below the provider's base URL.
func (r route) path() string {
	switch r {
	case routeEmbeddings:
		return "/embeddings"
	case routeMessages:
		return "/v1/messages"
	case routeCountTokens:
		return "/v1/messages/count_tokens"
	case routeResponses:
		return "/responses"
	}
	return "/chat/completions"
}

// Request headers a caller may send to custos (never forwarded).
const (
	// HeaderProject names the project a request works on, for the
	// project's privacy rule.
	HeaderProject = "X-Custos-Project"
	// HeaderPrivacy asks for a privacy mode; it can only make a request
	// stricter than its rules.
	HeaderPrivacy = "X-Custos-Privacy"
	// HeaderContext set to "code" marks a request carrying code context
	// (completions, indexing): in sensitive mode it goes to local
	// providers only.
	HeaderContext = "X-Custos-Context"
)

// HeaderOverhead is the response header with custos' own share of the
// latency, in milliseconds.
const HeaderOverhead = "X-Custos-Overhead-Ms"

// mode returns the strictest privacy mode that applies to the request: the
// server's floor, the org's, the project's, the key's rules and the
// caller's own request.
func (h *Handler) mode(s *Setup, key *custos.APIKey, r *http.Request) (string, error) {
	mode := h.cfg.Mode
	stricter := func(m string) {
		if custos.PrivacyRank(m) > custos.PrivacyRank(mode) {
			mode = m
		}
	}
	project := r.Header.Get(HeaderProject)
	for _, rule := range s.Privacy {
		switch {
		case rule.Scope == custos.ScopeOrg,
			rule.Scope == custos.ScopeKey && rule.Target == key.ID,
			rule.Scope == custos.ScopeProject && project != "" && rule.Target == project:
			stricter(rule.Mode)
		}
	}
	if asked := r.Header.Get(HeaderPrivacy); asked != "" {
		if custos.PrivacyRank(asked) == 0 {
			return "", fmt.Errorf("%s must be normal, sensitive or offline, not %q", HeaderPrivacy, clip(asked, 32))
		}
		stricter(asked)
	}
	return mode, nil
}

// routeError is a routing refusal: its status and message.
type routeError struct {
	status int
	msg    string
}

// candidates returns the providers that may serve model for this request,
// in order: the first is tried first, the others are fallbacks.
func candidates(s *Setup, model string, f wire, rt route, mode string, codeContext bool) ([]*Provider, *routeError) {
	var matched, compatible, allowed []*Provider
	for i := range s.Providers {
		p := &s.Providers[i]
		if !p.serves(model) {
			continue
		}
		matched = append(matched, p)
		if (f == wireAnthropic) != (p.Kind == KindAnthropic) {
			continue
		}
		compatible = append(compatible, p)
		switch {
		case p.Local:
		case mode == custos.PrivacyOffline:
			continue
		case mode == custos.PrivacySensitive && (rt == routeEmbeddings || codeContext || s.Engine == nil):
			continue
		}
		allowed = append(allowed, p)
	}
	switch {
	case len(matched) == 0:
		return nil, &routeError{http.StatusNotFound, fmt.Sprintf("The model %q is not configured in custos.", model)}
	case len(compatible) == 0:
		p := matched[0]
		return nil, &routeError{http.StatusBadRequest, fmt.Sprintf("The model %q is served by provider %q, which speaks the %s format; use its endpoint.", model, p.Name, p.Kind)}
	case len(allowed) == 0:
		why := "offline mode allows local providers only"
		if mode == custos.PrivacySensitive {
			switch {
			case rt == routeEmbeddings:
				why = "sensitive mode sends embeddings (code context) to local providers only"
			case codeContext:
				why = "sensitive mode sends code context to local providers only"
			default:
				why = "sensitive mode sends requests to cloud providers only after redaction, which is off"
			}
		}
		return nil, &routeError{http.StatusForbidden, fmt.Sprintf("The model %q is served only by cloud providers, and %s.", model, why)}
	}
	return allowed, nil
}

// serves reports whether p routes model.
func (p *Provider) serves(model string) bool {
	for _, m := range p.Models {
		if m == model || (strings.HasSuffix(m, "*") && strings.HasPrefix(model, strings.TrimSuffix(m, "*"))) {
			return true
		}
	}
	return false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
