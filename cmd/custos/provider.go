package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/custos-dev/custos"
)

// gatewayAPI is the management API of the model gateway: providers,
// budgets, privacy rules and usage. The HTTP client implements it, and so
// do the tests' spies.
type gatewayAPI interface {
	custos.ProviderService
	custos.BudgetService
	custos.PrivacyService
	custos.UsageService
}

// gatewayClient returns the model gateway's management API of the server
// the CLI is configured for.
func (c *CLI) gatewayClient() (gatewayAPI, error) {
	svc, err := c.client()
	if err != nil {
		return nil, err
	}
	if svc.Gateway == nil {
		return nil, errors.New("this client cannot manage the model gateway")
	}
	return svc.Gateway, nil
}

const providerUsage = `Usage: custos provider COMMAND [ARGS] [FLAGS]

Manages the model providers the gateway forwards to, with the team's own
provider keys (owner and admin keys). Agents then use custos as their
provider: OPENAI_BASE_URL=http://HOST:PORT/v1 (or ANTHROPIC_BASE_URL=
http://HOST:PORT) with a custos API key as the provider API key.

Commands:
  add NAME    add a provider (its API key from stdin)
  list        list providers in routing order (never keys)
  rm NAME     remove a provider

Example:
  printf %s "$OPENAI_API_KEY" | custos provider add openai --kind openai --model 'gpt-*'
  custos provider add ollama --kind local --base-url http://127.0.0.1:11434/v1 --model llama3.1 --no-key
  custos provider list
`

func (c *CLI) runProvider(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "provider", providerUsage, args, map[string]func(*CLI, context.Context, []string) error{
		"add":  (*CLI).providerAdd,
		"list": (*CLI).providerList,
		"ls":   (*CLI).providerList,
		"rm":   (*CLI).providerRemove,
	})
}

// providerKinds are the kinds of provider, as custos.ModelProvider has them.
var providerKinds = []string{custos.ProviderOpenAI, custos.ProviderAnthropic, custos.ProviderGoogle, custos.ProviderLocal, custos.ProviderLocalAnthropic}

// providerNameRE is the form of a provider name (the server checks it too).
var providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// #nosec G101 -- usage text, not a credential
const providerAddUsage = `Usage: custos provider add NAME --kind KIND --model M [--model M2]... [--base-url URL] [--priority N] [--no-key] [--json]

Adds a model provider. KIND is openai, anthropic, google (Gemini's
OpenAI-compatible API), local (an OpenAI-compatible server on this
machine or network: Ollama, vLLM, llama.cpp) or local-anthropic (an
Anthropic-compatible one, such as a LiteLLM proxy). --model names the models it
serves: exact names or prefixes ending in '*', repeated or comma-separated.
Requests for a model go to the matching provider with the lowest
--priority; the others are fallbacks.

The provider's API key is read from stdin: typed without echo at a
terminal, otherwise all of stdin with one trailing newline removed. There
is no flag for it, so it never shows in your shell history or the process
list. custos stores it encrypted and never shows it again. A local
provider may have no key (--no-key).

--base-url defaults to the kind's public API (an anthropic URL has no /v1).
Cloud kinds are reached over HTTPS at public addresses only; a local
provider needs --base-url, at a private or loopback address (for
local-anthropic without /v1, as for anthropic).

Example:
  printf %s "$OPENAI_API_KEY" | custos provider add openai --kind openai --model 'gpt-*,o3*'
  custos provider add claude --kind anthropic --model 'claude-*' < anthropic.key
  custos provider add ollama --kind local --base-url http://127.0.0.1:11434/v1 --model llama3.1 --model 'qwen*' --no-key
`

func (c *CLI) providerAdd(ctx context.Context, args []string) error {
	f := c.newFlags("provider add", providerAddUsage)
	kind := f.String("kind", "", "provider `KIND`: openai, anthropic, google, local or local-anthropic (required)")
	var models modelsValue
	f.Var(&models, "model", "a model `M` it serves, or a prefix ending in '*' (repeatable, or comma-separated; required)")
	baseURL := f.String("base-url", "", "the API's base `URL` (default: the kind's public API)")
	priority := f.Int("priority", 0, "routing priority `N`, 0 to 1000: lower is tried first")
	noKey := f.Bool("no-key", false, "a local provider without an API key: read nothing from stdin")
	asJSON := f.Bool("json", false, "print the stored provider as JSON")
	pos, err := parseArgs(f.FlagSet, args)
	if err != nil {
		return f.flagError(err)
	}
	if len(pos) > 1 {
		return f.usageErr("provider add takes one NAME; the API key is read from stdin, never from the command line")
	}
	if err := f.check(pos, 1, 1); err != nil {
		return err
	}
	in := custos.AddProviderInput{Name: pos[0], Kind: *kind, BaseURL: *baseURL, Models: models, Priority: *priority}
	if err := f.validateProviderName(in.Name); err != nil {
		return err
	}
	switch {
	case in.Kind == "":
		return f.usageErr("--kind is required: openai, anthropic, google, local or local-anthropic")
	case !slices.Contains(providerKinds, in.Kind):
		return f.usageErr("--kind: invalid kind %q: use openai, anthropic, google, local or local-anthropic", clip(in.Kind, 20))
	case len(in.Models) == 0:
		return f.usageErr("--model is required: the models it serves, e.g. --model gpt-4o or --model 'gpt-*'")
	case in.Priority < 0 || in.Priority > 1000:
		return f.usageErr("--priority: must be 0 to 1000")
	case *noKey && in.Kind != custos.ProviderLocal && in.Kind != custos.ProviderLocalAnthropic:
		return f.usageErr("--no-key is only for --kind local or local-anthropic: a %s provider needs its API key on stdin", in.Kind)
	case in.BaseURL == "" && (in.Kind == custos.ProviderLocal || in.Kind == custos.ProviderLocalAnthropic):
		return f.usageErr("--base-url is required for a local provider, e.g. http://127.0.0.1:11434/v1 for Ollama")
	}
	if in.BaseURL != "" {
		if u, err := url.Parse(in.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return f.usageErr("--base-url: want an absolute http(s) URL without credentials, query or fragment")
		}
	}
	svc, err := c.gatewayClient() // before the prompt: no key, no typing
	if err != nil {
		return err
	}
	if !*noKey {
		if in.APIKey, err = c.readValue(ctx, fmt.Sprintf("API key for provider %s (not echoed): ", in.Name),
			`empty API key: give it on stdin, e.g. printf %s "$OPENAI_API_KEY" | custos provider add NAME …; a local provider without a key takes --no-key`); err != nil {
			return err
		}
	}
	p, err := svc.AddProvider(ctx, in)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSONValue(c.Stdout, p); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.Stdout, "added provider %s (%s) at %s, priority %d, models %s\n", cell(p.Name), p.Kind, cell(p.BaseURL), p.Priority, cell(strings.Join(p.Models, ",")))
	}
	if p.HasKey {
		fmt.Fprintln(c.Stderr, "The API key is stored encrypted: custos will never show it again.")
	}
	return nil
}

const providerListUsage = `Usage: custos provider list [--json]

Lists the org's providers in routing order: NAME KIND BASE_URL MODELS
PRIORITY HAS_KEY. Never shows a key.

Example:
  custos provider list
  custos provider list --json
`

func (c *CLI) providerList(ctx context.Context, args []string) error {
	f := c.newFlags("provider list", providerListUsage)
	asJSON := f.Bool("json", false, "print a JSON array")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	list, err := svc.ListProviders(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(c.Stdout, list)
	}
	t := newTable(c.Stdout, "NAME", "KIND", "BASE_URL", "MODELS", "PRIORITY", "HAS_KEY")
	for _, p := range list {
		hasKey := "no"
		if p.HasKey {
			hasKey = "yes"
		}
		t.row(p.Name, p.Kind, p.BaseURL, strings.Join(p.Models, ","), fmt.Sprint(p.Priority), hasKey)
	}
	return t.flush()
}

const providerRmUsage = `Usage: custos provider rm NAME

Removes provider NAME and its stored key. Requests for its models go to the
next matching provider, or fail with 404.

Example:
  custos provider rm ollama
`

func (c *CLI) providerRemove(ctx context.Context, args []string) error {
	f := c.newFlags("provider rm", providerRmUsage)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.validateProviderName(pos[0]); err != nil {
		return err
	}
	svc, err := c.gatewayClient()
	if err != nil {
		return err
	}
	if err := svc.RemoveProvider(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "removed provider %s\n", pos[0])
	return nil
}

// validateProviderName checks a provider NAME argument.
func (f *cmdFlags) validateProviderName(n string) error {
	if !providerNameRE.MatchString(n) {
		return f.usageErr("invalid provider name %q: use 1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", clip(n, 40))
	}
	return nil
}

// modelsValue is a repeatable --model flag that also takes comma-separated
// lists.
type modelsValue []string

// String implements flag.Value.
func (m *modelsValue) String() string { return strings.Join(*m, ",") }

// Set implements flag.Value: it adds each model of a comma-separated list.
func (m *modelsValue) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			return fmt.Errorf("empty model name in %q", clip(s, 60))
		case len(name) > 128 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Errorf("invalid model name %q: at most 128 bytes, no spaces or control characters", clip(name, 40))
		case slices.Contains(*m, name):
			continue
		case len(*m) >= 100:
			return errors.New("too many models (at most 100)")
		}
		*m = append(*m, name)
	}
	return nil
}

// writeJSONValue writes v as indented JSON.
func writeJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
