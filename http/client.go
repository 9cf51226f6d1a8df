package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/custos-dev/custos"
)

// Client implements the custos services over the HTTP API.
type Client struct {
	baseURL string // without a trailing slash
	opts    ClientOptions
	hc      *http.Client
}

// The client implements every service interface.
var (
	_ custos.KeyService     = (*Client)(nil)
	_ custos.SecretService  = (*Client)(nil)
	_ custos.DeviceService  = (*Client)(nil)
	_ custos.PolicyService  = (*Client)(nil)
	_ custos.SessionService = (*Client)(nil)
	_ custos.AuditService   = (*Client)(nil)
)

// ClientOptions are the credential and identity a Client sends with every
// request. Empty identity fields are left out, and the server's defaults apply.
type ClientOptions struct {
	Token       string       // API key (cst_ak_…)
	Agent       string       // X-Custos-Agent
	Hostname    string       // X-Custos-Hostname
	MachineUser string       // X-Custos-User
	Source      string       // X-Custos-Source: cli, api or mcp
	Model       string       // X-AI-Model
	HTTPClient  *http.Client // nil means a client with a 30 s timeout that does not follow redirects
}

// DefaultClientTimeout is the timeout of the client NewClient makes.
const DefaultClientTimeout = 30 * time.Second

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 64 << 20

// NewClient returns a client of the API at baseURL (http or https, with an
// optional path prefix). It validates the URL and the identity in opts.
func NewClient(baseURL string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		return nil, custos.Errorf(custos.EINVALID, "invalid server URL %q", clip(baseURL, 80))
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, custos.Errorf(custos.EINVALID, "invalid server URL %q: want http:// or https://", clip(baseURL, 80))
	case u.Host == "":
		return nil, custos.Errorf(custos.EINVALID, "invalid server URL %q: no host", clip(baseURL, 80))
	case u.User != nil:
		return nil, custos.Errorf(custos.EINVALID, "invalid server URL: credentials do not belong in the URL; use the API key")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, custos.Errorf(custos.EINVALID, "invalid server URL %q: no query or fragment allowed", clip(baseURL, 80))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""

	if !validToken(opts.Token) {
		return nil, custos.Errorf(custos.EINVALID, "invalid API key: it must be printable ASCII without spaces")
	}
	for _, f := range []struct{ what, v string }{
		{"agent", opts.Agent}, {"hostname", opts.Hostname}, {"machine user", opts.MachineUser},
	} {
		if f.v != "" {
			if err := custos.ValidateLabel(f.what, f.v); err != nil {
				return nil, err
			}
		}
	}
	switch opts.Source {
	case "", custos.SourceAPI, custos.SourceCLI, custos.SourceMCP:
	default:
		return nil, custos.Errorf(custos.EINVALID, "invalid source %q: want cli, api or mcp", clip(opts.Source, 16))
	}
	if err := validateModel(opts.Model); err != nil {
		return nil, err
	}

	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout: DefaultClientTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Client{baseURL: u.String(), opts: opts, hc: hc}, nil
}

// URL returns the base URL of the server.
func (c *Client) URL() string { return c.baseURL }

// validToken reports whether token can travel in a header: printable ASCII
// without spaces. An empty token is allowed (no Authorization header).
func validToken(token string) bool {
	for i := 0; i < len(token); i++ {
		if token[i] <= 0x20 || token[i] > 0x7e {
			return false
		}
	}
	return true
}

// do sends a request with the client's token.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doToken(ctx, c.opts.Token, method, path, in, out)
}

// doToken sends method path (already escaped, with its query) with in as the
// JSON body if not nil, and decodes a successful answer into out if not nil.
// Error answers come back as *custos.Error with the server's code.
func (c *Client) doToken(ctx context.Context, token, method, path string, in, out any) error {
	_, err := c.doJSON(ctx, token, method, path, nil, in, out)
	return err
}

// doJSON is doToken with extra request headers, returning the answer's
// headers.
func (c *Client) doJSON(ctx context.Context, token, method, path string, hdr http.Header, in, out any) (http.Header, error) {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(ctx, token, method, path, hdr, body, ct)
	if err != nil {
		return respHeader(resp), err
	}
	defer drainClose(resp)
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.Header, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		return resp.Header, custos.Errorf(custos.EINTERNAL, "invalid response from the custos server at %s (%s %s)", c.baseURL, method, routeForMessage(path))
	}
	return resp.Header, nil
}

// respHeader returns the headers of resp, or nil.
func respHeader(resp *http.Response) http.Header {
	if resp == nil {
		return nil
	}
	return resp.Header
}

// drainClose reads a little of what is left of resp's body, so the
// connection can be reused, and closes it.
func drainClose(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// send sends method path with token (if not empty), the client's identity
// headers, hdr and body of type contentType (if not empty). A 2xx answer is
// returned open for the caller to read and close. Any other answer comes
// back closed, with its headers, as a *custos.Error with the server's code;
// no answer gives a nil response.
func (c *Client) send(ctx context.Context, token, method, path string, hdr http.Header, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body) // #nosec G704 -- the base URL is the operator's own custos server (CUSTOS_URL)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "custos-client")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range []struct{ name, v string }{
		{HeaderAgent, c.opts.Agent},
		{HeaderHostname, c.opts.Hostname},
		{HeaderMachineUser, c.opts.MachineUser},
		{HeaderSource, c.opts.Source},
		{HeaderModel, c.opts.Model},
	} {
		if h.v != "" {
			req.Header.Set(h.name, h.v)
		}
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}

	resp, err := c.hc.Do(req) // #nosec G704 -- the base URL is the operator's own custos server (CUSTOS_URL)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer drainClose(resp)
		return resp, responseError(resp)
	}
	return resp, nil
}

// routeForMessage is path without its query, for error messages.
func routeForMessage(path string) string {
	p, _, _ := strings.Cut(path, "?")
	return p
}

// transportError explains a request that got no answer. The token is in a
// header, so none of these messages can contain it.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("custos request to %s: %w", c.baseURL, ctxErr)
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	var (
		op  *net.OpError
		dns *net.DNSError
	)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial") {
		return fmt.Errorf("%w: %w", custos.Errorf(custos.EUNAVAILABLE,
			"the custos server at %s is not reachable (%v): is `custos serve` running? Set CUSTOS_URL to the address of your server",
			c.baseURL, inner), inner)
	}
	return fmt.Errorf("%w: %w", custos.Errorf(custos.EUNAVAILABLE,
		"request to the custos server at %s failed: %v", c.baseURL, inner), inner)
}

// responseError turns an error answer into a *custos.Error: the server's code
// and message when the body has the API's error shape, otherwise a code from
// the status and a message naming it.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er errorResponse
	if err := json.Unmarshal(b, &er); err == nil && er.Error.Code != "" {
		if _, known := codes[er.Error.Code]; known {
			return &custos.Error{Code: er.Error.Code, Message: er.Error.Message}
		}
		return &custos.Error{Code: FromErrorStatusCode(resp.StatusCode), Message: er.Error.Message}
	}
	return &custos.Error{
		Code:    FromErrorStatusCode(resp.StatusCode),
		Message: fmt.Sprintf("unexpected answer from the custos server: %s", resp.Status),
	}
}

// Authenticate returns the key that token names, by calling GET /v1/whoami
// with it. Returns EUNAUTHORIZED if the server rejects it.
func (c *Client) Authenticate(ctx context.Context, token string) (*custos.APIKey, error) {
	if !validToken(token) {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "malformed API key")
	}
	var resp whoamiResponse
	if err := c.doToken(ctx, token, http.MethodGet, "/v1/whoami", nil, &resp); err != nil {
		return nil, err
	}
	if resp.Key == nil {
		return nil, custos.Errorf(custos.EINTERNAL, "invalid response from the custos server at %s: no key", c.baseURL)
	}
	return resp.Key, nil
}

// Whoami returns the key of the client's own token and the server's version.
func (c *Client) Whoami(ctx context.Context) (*custos.APIKey, string, error) {
	var resp whoamiResponse
	if err := c.do(ctx, http.MethodGet, "/v1/whoami", nil, &resp); err != nil {
		return nil, "", err
	}
	if resp.Key == nil {
		return nil, "", custos.Errorf(custos.EINTERNAL, "invalid response from the custos server at %s: no key", c.baseURL)
	}
	return resp.Key, resp.Version, nil
}
