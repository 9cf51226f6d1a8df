// Package egress is the one outbound HTTP client of custos.
//
// Every outbound call (model providers, webhooks, vault back ends) goes
// through a client built by NewClient. The client enforces, before a request
// is sent and again on every redirect, that the URL is absolute, uses HTTPS
// (plain HTTP only to destinations listed in Config.AllowPrivate), carries no
// userinfo and names an allowed host. At connect time a net.Dialer Control
// hook checks the address actually being connected to, so host names that
// resolve to loopback, private, link-local (cloud metadata) or otherwise
// non-public addresses — including via DNS rebinding, IPv4-mapped IPv6 and
// NAT64 forms — are refused before any packet is sent. Proxies from the
// environment are never used.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by every refusal of this package. Test with
// errors.Is; errors.As with *BlockedError gives the host and reason.
var ErrBlocked = errors.New("egress: destination not allowed")

// MaxRedirects is the number of redirects a client follows before refusing.
const MaxRedirects = 5

// Default timeouts applied when the Config leaves them zero.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// Config is the egress policy of a client. The zero Config allows HTTPS to
// any public host.
type Config struct {
	// AllowHosts lists host names (exact, or "*.example.com" for any
	// subdomain of example.com, not example.com itself) the client may
	// reach. Empty means any public host. Hosts named in AllowPrivate are
	// always allowed too.
	AllowHosts []string
	// AllowPrivate lists CIDRs ("10.0.0.0/8"), single addresses
	// ("127.0.0.1") or host names (exact or "*.internal") that may resolve
	// to non-public addresses — a configured local provider or an internal
	// webhook receiver. Plain http is allowed only to these destinations.
	// A host name entry admits every non-public class except link-local
	// (169.254/16, fe80::/10 — where cloud metadata lives), which needs an
	// explicit CIDR. Unspecified, 0.0.0.0/8, multicast and broadcast
	// addresses are refused whatever this says.
	AllowPrivate []string
	// Offline restricts the client to destinations listed in AllowPrivate:
	// host names must be listed by name, addresses must fall in a listed
	// CIDR, and every public address is refused at connect time whatever
	// AllowHosts says.
	Offline bool
	// Timeout bounds each request in total, including redirects and reading
	// the body (http.Client.Timeout). Zero means DefaultTimeout.
	Timeout time.Duration
	// ConnectTimeout bounds establishing one TCP connection. Zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for the response headers after the
	// request is written (the first byte). Zero means Timeout.
	HeaderTimeout time.Duration
	// IdleConnsPerHost is how many idle keep-alive connections are kept per
	// host. Zero means 10.
	IdleConnsPerHost int
}

// BlockedError is the error for a refused destination. It never contains a
// URL's userinfo, path or query.
type BlockedError struct {
	// Host is the host name or address that was refused ("" if the URL
	// could not be parsed).
	Host string
	// Reason names the rule that refused it.
	Reason string
}

// Error implements error.
func (e *BlockedError) Error() string {
	if e.Host == "" {
		return ErrBlocked.Error() + ": " + e.Reason
	}
	return fmt.Sprintf("%s: host %q: %s", ErrBlocked.Error(), e.Host, e.Reason)
}

// Unwrap returns ErrBlocked.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

func blocked(host, format string, args ...any) error {
	return &BlockedError{Host: host, Reason: fmt.Sprintf(format, args...)}
}

// hostPattern is an exact host (lower case, no trailing dot) or, with
// wildcard set, a suffix ".example.com".
type hostPattern struct {
	name     string
	wildcard bool
}

func (p hostPattern) match(host string) bool {
	if p.wildcard {
		return len(host) > len(p.name) && strings.HasSuffix(host, p.name)
	}
	return host == p.name
}

// policy is a validated Config.
type policy struct {
	allowHosts     []hostPattern
	privateHosts   []hostPattern
	privateNets    []netip.Prefix
	offline        bool
	timeout        time.Duration
	connectTimeout time.Duration
	headerTimeout  time.Duration
	idlePerHost    int
}

func compile(cfg Config) (*policy, error) {
	p := &policy{
		offline:        cfg.Offline,
		timeout:        cfg.Timeout,
		connectTimeout: cfg.ConnectTimeout,
		headerTimeout:  cfg.HeaderTimeout,
		idlePerHost:    cfg.IdleConnsPerHost,
	}
	if p.timeout < 0 || p.connectTimeout < 0 || p.headerTimeout < 0 || p.idlePerHost < 0 {
		return nil, errors.New("egress: negative timeout")
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.connectTimeout == 0 {
		p.connectTimeout = DefaultConnectTimeout
	}
	if p.headerTimeout == 0 {
		p.headerTimeout = p.timeout
	}
	if p.idlePerHost == 0 {
		p.idlePerHost = 10
	}
	for _, h := range cfg.AllowHosts {
		hp, err := parseHostPattern(h)
		if err != nil {
			return nil, fmt.Errorf("egress: allow_hosts entry %q: %w", h, err)
		}
		p.allowHosts = append(p.allowHosts, hp)
	}
	for _, e := range cfg.AllowPrivate {
		e = strings.TrimSpace(e)
		if strings.Contains(e, "/") {
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("egress: allow_private entry %q: bad CIDR: %w", e, err)
			}
			p.privateNets = append(p.privateNets, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")); err == nil {
			a = a.WithZone("").Unmap()
			p.privateNets = append(p.privateNets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		hp, err := parseHostPattern(e)
		if err != nil {
			return nil, fmt.Errorf("egress: allow_private entry %q: %w", e, err)
		}
		p.privateHosts = append(p.privateHosts, hp)
	}
	return p, nil
}

func parseHostPattern(s string) (hostPattern, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return hostPattern{name: a.WithZone("").Unmap().String()}, nil
	}
	s = normalizeName(s)
	wildcard := false
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		wildcard, s = true, rest
	}
	if !validHostName(s) {
		return hostPattern{}, errors.New("not a host name or *.domain pattern")
	}
	if wildcard {
		return hostPattern{name: "." + s, wildcard: true}, nil
	}
	return hostPattern{name: s}, nil
}

func normalizeName(s string) string {
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

// validHostName accepts LDH labels (plus '_', seen in internal names).
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}

// target is a URL's host, normalized.
type target struct {
	host string     // lower case, no trailing dot, no brackets
	addr netip.Addr // valid when host is an IP literal (unmapped, no zone)
}

func (p *policy) privateName(host string) bool {
	for _, hp := range p.privateHosts {
		if hp.match(host) {
			return true
		}
	}
	return false
}

func (p *policy) inPrivateNets(a netip.Addr) bool {
	for _, pfx := range p.privateNets {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// listedPrivate reports whether the URL host itself is listed in AllowPrivate.
func (p *policy) listedPrivate(t target) bool {
	if t.addr.IsValid() {
		return p.inPrivateNets(t.addr)
	}
	return p.privateName(t.host)
}

func (p *policy) hostAllowed(t target) bool {
	if len(p.allowHosts) == 0 || p.listedPrivate(t) {
		return true
	}
	for _, hp := range p.allowHosts {
		if hp.match(t.host) {
			return true
		}
	}
	return false
}

// checkAddr decides whether ip may be connected to for host. plaintext is
// true for an http:// request.
func (p *policy) checkAddr(host string, ip netip.Addr, plaintext bool) error {
	ip = ip.WithZone("").Unmap()
	c := Classify(ip)
	inNets := p.inPrivateNets(ip)
	switch {
	case c.neverDial():
		return blocked(host, "address %s is %s and never allowed", ip, c)
	case c.IsPublic():
		if p.offline {
			return blocked(host, "address %s is public and offline mode allows only allow_private destinations", ip)
		}
		if plaintext && !inNets {
			return blocked(host, "plain http to public address %s (https required outside allow_private)", ip)
		}
		return nil
	case inNets:
		return nil
	case p.privateName(host) && c != ClassLinkLocal:
		return nil
	case c == ClassLinkLocal && p.privateName(host):
		return blocked(host, "address %s is link-local; allow_private host names do not cover link-local, list its CIDR", ip)
	default:
		return blocked(host, "address %s is %s and not listed in allow_private", ip, c)
	}
}

// checkURL is the static check shared by CheckURL, the RoundTripper and
// CheckRedirect.
func (p *policy) checkURL(u *url.URL) error {
	if u == nil {
		return blocked("", "nil URL")
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return blocked("", "URL is not absolute")
	}
	hostname := u.Hostname()
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return blocked(hostname, "invalid port")
		}
	}
	t, err := parseTarget(hostname)
	if err != nil {
		return err
	}
	if u.User != nil {
		return blocked(t.host, "URL carries userinfo (credentials belong in headers)")
	}
	plaintext := false
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !p.listedPrivate(t) {
			return blocked(t.host, "plain http is allowed only to allow_private destinations; use https")
		}
		plaintext = true
	default:
		return blocked(t.host, "scheme %q not allowed (https only)", u.Scheme)
	}
	if p.offline && !p.listedPrivate(t) {
		return blocked(t.host, "offline mode allows only destinations listed in allow_private")
	}
	if !p.hostAllowed(t) {
		return blocked(t.host, "not in allow_hosts")
	}
	if t.addr.IsValid() {
		return p.checkAddr(t.host, t.addr, plaintext)
	}
	return nil
}

func parseTarget(hostname string) (target, error) {
	if hostname == "" {
		return target{}, blocked("", "URL has no host")
	}
	if a, err := netip.ParseAddr(hostname); err == nil {
		a = a.WithZone("").Unmap()
		return target{host: a.String(), addr: a}, nil
	}
	h := normalizeName(hostname)
	if !validHostName(h) {
		return target{}, blocked("", "invalid host name")
	}
	return target{host: h}, nil
}

// CheckURL statically checks raw against cfg, for validating configured
// URLs (provider base URLs, webhook targets) at load time: raw must be an
// absolute URL with scheme https (http only for a host listed in
// AllowPrivate), without userinfo, naming an allowed host. IP literals are
// also checked against the address rules. Host names are not resolved; the
// client re-checks resolved addresses at connect time. Refusals wrap
// ErrBlocked; an invalid cfg returns a configuration error that does not.
func CheckURL(cfg Config, raw string) error {
	p, err := compile(cfg)
	if err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return blocked("", "malformed URL")
	}
	return p.checkURL(u)
}

type ctxKey struct{}

// reqInfo travels from RoundTrip to the dialer in the request context.
type reqInfo struct{ plaintext bool }

func (p *policy) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, blocked("", "bad dial address")
	}
	t, err := parseTarget(host)
	if err != nil {
		return nil, err
	}
	info, _ := ctx.Value(ctxKey{}).(reqInfo)
	d := &net.Dialer{
		Timeout:   p.connectTimeout,
		KeepAlive: 30 * time.Second,
		ControlContext: func(_ context.Context, _, addr string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return blocked(t.host, "unparseable connect address")
			}
			return p.checkAddr(t.host, ap.Addr(), info.plaintext)
		},
	}
	return d.DialContext(ctx, network, address)
}

// transport checks every request (including each redirect hop) before
// handing it to the underlying http.Transport.
type transport struct {
	p  *policy
	rt *http.Transport
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.p.checkURL(req.URL); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	plaintext := strings.EqualFold(req.URL.Scheme, "http")
	ctx := context.WithValue(req.Context(), ctxKey{}, reqInfo{plaintext: plaintext})
	return t.rt.RoundTrip(req.WithContext(ctx))
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// underlying transport.
func (t *transport) CloseIdleConnections() { t.rt.CloseIdleConnections() }

// NewClient returns an *http.Client enforcing cfg. It fails if cfg is
// invalid (a bad CIDR or host pattern, a negative timeout or count).
func NewClient(cfg Config) (*http.Client, error) {
	p, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	rt := &http.Transport{
		Proxy:                  nil, // never from the environment: a proxy would bypass the dial checks
		DialContext:            p.dialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           max(100, p.idlePerHost),
		MaxIdleConnsPerHost:    p.idlePerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  p.headerTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		// Prompts are tens of kilobytes: headers and body leave in one
		// write instead of a 4 KiB write plus the rest.
		WriteBufferSize: 32 << 10,
	}
	return &http.Client{
		Transport: &transport{p: p, rt: rt},
		Timeout:   p.timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				host := ""
				if req.URL != nil {
					host = req.URL.Hostname()
				}
				return blocked(host, "stopped after %d redirects", MaxRedirects)
			}
			return p.checkURL(req.URL)
		},
	}, nil
}
