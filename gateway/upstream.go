package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/sony/gobreaker/v2"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/egress"
)

// client returns the outbound client for p in mode. Cloud providers share
// the egress client of Config.Egress (public HTTPS only). A local provider
// gets a client that reaches only its own host, only at non-public
// addresses. In offline mode every client refuses public addresses at
// connect time, whatever the provider's configuration says.
func (h *Handler) client(p *Provider, mode string) (*http.Client, error) {
	offline := mode == custos.PrivacyOffline
	if !p.Local && !offline {
		return h.cloud, nil
	}
	host := ""
	if p.Local {
		u, err := url.Parse(p.BaseURL)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("provider %q has an invalid base URL", p.Name)
		}
		host = u.Hostname()
		// An address literal would be listed as its own CIDR, which admits
		// link-local addresses (cloud metadata); no provider lives there.
		if c, never := NeverProvider(host); never {
			return nil, &egress.BlockedError{Host: host, Reason: "address " + host + " is " + c.String() + " and never a provider"}
		}
	}
	h.mu.RLock()
	c, ok := h.locals[host]
	h.mu.RUnlock()
	if ok {
		return c, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.locals[host]; ok {
		return c, nil
	}
	ec := egress.Config{
		Offline:          true,
		ConnectTimeout:   h.cfg.Egress.ConnectTimeout,
		Timeout:          h.cfg.TotalTimeout,
		HeaderTimeout:    h.cfg.FirstByteTimeout,
		IdleConnsPerHost: 256,
	}
	if host != "" {
		ec.AllowPrivate = []string{host}
	}
	c, err := egress.NewClient(ec)
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", p.Name, err)
	}
	c = withoutTimeout(c)
	h.locals[host] = c
	return c, nil
}

// withoutTimeout returns c without its total timeout: the gateway bounds
// each request with a context deadline (Config.TotalTimeout) instead,
// which the transport honours without the timer goroutine http.Client
// starts per request for a wrapped transport.
func withoutTimeout(c *http.Client) *http.Client {
	return &http.Client{Transport: c.Transport, CheckRedirect: c.CheckRedirect, Jar: c.Jar}
}

// NeverProvider reports whether host is an address literal no provider
// may have, whatever its configuration: link-local (where cloud metadata
// lives), reserved, or never dialled. It also returns its class.
func NeverProvider(host string) (egress.Class, bool) {
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return egress.ClassPublic, false
	}
	switch c := egress.Classify(a.WithZone("").Unmap()); c {
	case egress.ClassLinkLocal, egress.ClassReserved, egress.ClassUnspecified, egress.ClassThisNetwork, egress.ClassMulticast, egress.ClassBroadcast:
		return c, true
	default:
		return c, false
	}
}

// breaker is the circuit breaker of one provider.
type breaker = gobreaker.CircuitBreaker[*http.Response]

// errUpstream5xx marks a provider's 5xx answer as a failure to the breaker.
var errUpstream5xx = errors.New("gateway: provider answered 5xx")

// breakerFor returns p's circuit breaker, keyed by name and base URL so a
// re-pointed provider starts closed.
func (h *Handler) breakerFor(p *Provider) *breaker {
	id := p.Name + "\x00" + p.BaseURL
	h.mu.RLock()
	b, ok := h.breakers[id]
	h.mu.RUnlock()
	if ok {
		return b
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.breakers[id]; ok {
		return b
	}
	failures := h.cfg.BreakerFailures
	b = gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
		Name:        p.Name,
		MaxRequests: 1,
		Timeout:     h.cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// The caller going away, or the egress policy refusing the
		// destination, says nothing about the provider's health.
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, egress.ErrBlocked)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			h.log.Warn("gateway: provider circuit changed state", "provider", name, "from", from.String(), "to", to.String())
		},
	})
	h.breakers[id] = b
	return b
}

// attemptError is why one provider could not serve a request before its
// first byte reached the caller.
type attemptError struct {
	status int
	msg    string
	resp   *http.Response // a provider's error answer, body unread
}

// send forwards body to p through its breaker. A nil error means a 2xx
// response whose body the caller must close.
func (rq *request) send(ctx context.Context, p *Provider, body []byte, hdr http.Header) (*http.Response, *attemptError) {
	client, err := rq.h.client(p, rq.mode)
	if err != nil {
		if errors.Is(err, egress.ErrBlocked) {
			return nil, rq.blocked(p, err)
		}
		return nil, &attemptError{status: http.StatusBadGateway, msg: err.Error()}
	}
	u := trimSlash(p.BaseURL) + rq.rt.path()
	if p.Kind == KindAnthropic {
		u += rq.query
	}
	up, err := http.NewRequestWithContext(rq.fwd.trace(ctx), http.MethodPost, u, rq.fwd.reader(body))
	if err != nil {
		return nil, &attemptError{status: http.StatusBadGateway, msg: fmt.Sprintf("Provider %q has an invalid base URL.", p.Name)}
	}
	up.ContentLength = int64(len(body))
	up.GetBody = rq.fwd.getBody(body)
	for k, v := range hdr {
		up.Header[k] = v
	}
	p.authorize(up.Header)
	b := rq.h.breakerFor(p)
	resp, err := b.Execute(func() (*http.Response, error) {
		resp, err := client.Do(up) // #nosec G704 -- the URL is the org's configured provider, sent through the egress client
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 500 {
			return resp, errUpstream5xx
		}
		return resp, nil
	})
	switch {
	case err == nil:
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return resp, nil
		}
		return nil, &attemptError{status: resp.StatusCode, resp: resp}
	case errors.Is(err, errUpstream5xx):
		return nil, &attemptError{status: resp.StatusCode, resp: resp}
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, &attemptError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("Provider %q is failing; custos stopped sending it requests for a while (circuit open).", p.Name)}
	case errors.Is(err, egress.ErrBlocked):
		return nil, rq.blocked(p, err)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		rq.h.log.Warn("gateway: provider timed out", "provider", p.Name, "err", err)
		return nil, &attemptError{status: http.StatusGatewayTimeout, msg: fmt.Sprintf("Provider %q timed out.", p.Name)}
	}
	rq.h.log.Warn("gateway: provider unreachable", "provider", p.Name, "err", err)
	return nil, &attemptError{status: http.StatusBadGateway, msg: fmt.Sprintf("Provider %q is unreachable.", p.Name)}
}

// authorize sets p's own key on a request to p, in its wire format, and
// the Anthropic API version when the request names none.
func (p *Provider) authorize(h http.Header) {
	if p.Kind == KindAnthropic {
		h.Set("x-api-key", p.APIKey)
		if h.Get("anthropic-version") == "" {
			h.Set("anthropic-version", "2023-06-01")
		}
	} else if p.APIKey != "" {
		h.Set("Authorization", "Bearer "+p.APIKey)
	}
}

// blocked is the attempt error for p's address refused by the egress
// policy (err wraps egress.ErrBlocked).
func (rq *request) blocked(p *Provider, err error) *attemptError {
	rq.h.log.Warn("gateway: egress refused the provider's address", "provider", p.Name, "err", err)
	var be *egress.BlockedError
	reason := "its address is not allowed"
	if errors.As(err, &be) {
		reason = be.Reason
	}
	return &attemptError{status: http.StatusBadGateway, msg: fmt.Sprintf("Provider %q refused by the egress policy: %s.", p.Name, reason)}
}

// retryable reports whether the next provider should be tried after e:
// the provider failed or is overloaded, and nothing reached the caller.
func (e *attemptError) retryable() bool {
	return e.status >= 500 || e.status == http.StatusTooManyRequests || e.status == http.StatusRequestTimeout
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
