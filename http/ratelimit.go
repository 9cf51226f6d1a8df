package http

import (
	"net/http"
	"strconv"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/ratelimit"
)

// limitIP counts the request against its client IP's limit. Over it, the
// request is refused before its token is looked at.
func (h *handler) limitIP(w http.ResponseWriter, r *http.Request) error {
	if h.limiter == nil {
		return nil
	}
	if retry, ok := h.limiter.AllowIP(r.Context(), clientIP(r)); !ok {
		return h.rateLimit(w, "ip", retry, "too many requests from this address")
	}
	return nil
}

// limitAuthFailures refuses a request from an IP that has failed
// authentication too often, before its token is checked, so a valid key
// found by guessing is no use until the window ends.
func (h *handler) limitAuthFailures(w http.ResponseWriter, r *http.Request) error {
	if h.limiter == nil {
		return nil
	}
	if retry, blocked := h.limiter.AuthBlocked(r.Context(), clientIP(r)); blocked {
		return h.rateLimit(w, "auth_failures", retry, "too many failed authentications from this address")
	}
	return nil
}

// limitKey counts an authenticated request against its API key's limit.
func (h *handler) limitKey(w http.ResponseWriter, r *http.Request) error {
	if h.limiter == nil {
		return nil
	}
	c := custos.CallerFromContext(r.Context())
	if c == nil || c.Key == nil {
		return nil
	}
	if retry, ok := h.limiter.AllowKey(r.Context(), c.Key.ID); !ok {
		return h.rateLimit(w, "key", retry, "too many requests for this API key")
	}
	return nil
}

// rateLimit sets Retry-After, counts the refusal under limit and returns the
// ERATELIMITED error that answers it with 429.
func (h *handler) rateLimit(w http.ResponseWriter, limit string, retry time.Duration, what string) error {
	secs := ratelimit.RetryAfterSeconds(retry)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	h.rateLimited.WithLabelValues(limit).Inc()
	return custos.Errorf(custos.ERATELIMITED, "rate limit exceeded: %s; retry in %d s", what, secs)
}
