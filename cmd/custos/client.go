package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/custos-dev/custos"
	custoshttp "github.com/custos-dev/custos/http"
)

// Services are the custos APIs the commands call. The CLI gets them from the
// HTTP client; tests put spies in their place.
type Services struct {
	Keys     custos.KeyService
	Secrets  custos.SecretService
	Devices  custos.DeviceService
	Policies custos.PolicyService
	Sessions custos.SessionService
	Audit    custos.AuditService
	Gateway  gatewayAPI // providers, budgets, privacy rules and usage
	Tasks    taskAPI    // tracker installs, launch links and the permit routes
}

// client returns the services of the server the CLI is configured for
// (see loadConfig). It is the only place that knows package http.
func (c *CLI) client() (*Services, error) {
	if c.services != nil {
		return c.services, nil
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	cl, err := custoshttp.NewClient(cfg.URL, custoshttp.ClientOptions{
		Token:       cfg.Key,
		Agent:       c.agent,
		Hostname:    c.Hostname,
		MachineUser: c.MachineUser,
		Source:      custos.SourceCLI,
		Model:       c.getenv("CUSTOS_AI_MODEL"),
	})
	if err != nil {
		return nil, err
	}
	return &Services{Keys: cl, Secrets: cl, Devices: cl, Policies: cl, Sessions: cl, Audit: cl, Gateway: cl, Tasks: cl}, nil
}

// taskAPI is the tasks capability as the CLI calls it: tracker installs
// (with the API key), the tracker app's calls (with an install token), the
// exchange (with a launch code) and the permit routes (with a permit). The
// HTTP client implements it.
type taskAPI interface {
	custos.TrackerService
	StartTrackerSession(ctx context.Context, installToken string) (*custos.RequestKeyGrant, error)
	CreateLaunchLink(ctx context.Context, installToken, requestKey string, in custos.LaunchLinkInput) (*custos.LaunchLink, string, error)
	ExchangeLaunchCode(ctx context.Context, in custos.LaunchExchangeInput) (*custos.PermitGrant, error)
	CreateRun(ctx context.Context, permit, taskID string) (*custos.Run, error)
	PutArtifact(ctx context.Context, permit, taskID, runID, name, kind string, body io.Reader) (*custos.Artifact, error)
	GetArtifact(ctx context.Context, permit, taskID, runID, name string) (*custos.Artifact, []byte, error)
	ListArtifacts(ctx context.Context, permit, taskID, runID string) ([]*custos.Artifact, error)
	CompleteRun(ctx context.Context, permit, taskID, runID string) (*custos.Run, error)
	CompleteTask(ctx context.Context, permit, taskID string) (*custos.Task, error)
}

// taskClient returns the tasks API of the server the CLI is configured
// for, without an API key: its calls carry their own credential.
func (c *CLI) taskClient() (taskAPI, string, error) {
	base, err := c.serverURL()
	if err != nil {
		return nil, "", err
	}
	if c.services != nil && c.services.Tasks != nil {
		return c.services.Tasks, base, nil
	}
	cl, err := custoshttp.NewClient(base, custoshttp.ClientOptions{
		Agent:       c.agent,
		Hostname:    c.Hostname,
		MachineUser: c.MachineUser,
		Source:      custos.SourceCLI,
	})
	if err != nil {
		return nil, "", err
	}
	return cl, cl.URL(), nil
}

// serverURL is the server the CLI talks to when no API key is needed:
// CUSTOS_URL, else the URL of the file an API key would come from, else
// defaultURL.
func (c *CLI) serverURL() (string, error) {
	u := c.getenv("CUSTOS_URL")
	if u == "" {
		if cfg, err := c.findKey(); err == nil && cfg.URL != "" {
			u = cfg.URL
		}
	}
	if u == "" {
		u = defaultURL
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
		return "", fmt.Errorf("invalid server URL %q: want http://HOST:PORT or https://HOST", clip(u, 80))
	}
	return strings.TrimRight(u, "/"), nil
}
