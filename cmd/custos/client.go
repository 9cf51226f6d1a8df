package main

import (
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
	return &Services{Keys: cl, Secrets: cl, Devices: cl, Policies: cl, Sessions: cl, Audit: cl, Gateway: cl}, nil
}
