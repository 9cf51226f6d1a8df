package mcp

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/custos-dev/custos"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

func ptr[T any](v T) *T { return &v }

// Annotations, named for what they claim.
var (
	readOnly    = &sdkmcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}
	additive    = &sdkmcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)}
	idempotent  = &sdkmcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)}
	destructive = &sdkmcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)}
	runsCommand = &sdkmcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(true)}
)

// add registers a tool and records its name.
func add[In, Out any](s *server, srv *sdkmcp.Server, t *sdkmcp.Tool, h func(context.Context, *sdkmcp.CallToolRequest, In) (Out, error)) {
	s.tools[t.Name] = true
	sdkmcp.AddTool(srv, t, func(ctx context.Context, req *sdkmcp.CallToolRequest, in In) (*sdkmcp.CallToolResult, Out, error) {
		out, err := h(ctx, req, in)
		return nil, out, asToolError(err)
	})
}

func (s *server) register(srv *sdkmcp.Server) {
	add(s, srv, &sdkmcp.Tool{Name: ToolListSecrets, Title: "List secrets", Annotations: readOnly,
		Description: "Lists secrets: name, project, tags, version, expiry. Never returns values; no argument makes it return values."},
		s.listSecrets)
	add(s, srv, &sdkmcp.Tool{Name: ToolInjectSecret, Title: "Inject secrets into the session env file", Annotations: idempotent,
		Description: "Writes the named secrets' values to this user's private session env file (directory mode 0700, file mode 0600) and returns only the file's path and the variable names, never the values. Source it in a shell: set -a; . PATH; set +a. Removed by sleep_session."},
		s.injectSecret)
	if s.cfg.AllowRun {
		add(s, srv, &sdkmcp.Tool{Name: ToolRunWithSecrets, Title: "Run a command with secrets", Annotations: runsCommand,
			Description: "Runs command with args (no shell, no stdin) with the project's secrets (or only the named ones) in its environment, and returns its exit code and output (at most 64 KiB of each stream) with every injected value, and its base64, hex and URL-encoded forms, masked. Enabled by the operator (custos mcp --allow-run)."},
			s.runWithSecrets)
	}
	if s.cfg.AllowReveal {
		add(s, srv, &sdkmcp.Tool{Name: ToolRevealSecret, Title: "Reveal a secret value", Annotations: readOnly,
			Description: "Returns a secret's VALUE in the result, so it enters the conversation. Enabled only by the operator (custos mcp --allow-reveal); the device must be approved at level full; every reveal is audited. Prefer inject_secret or run_with_secrets."},
			s.revealSecret)
	}
	add(s, srv, &sdkmcp.Tool{Name: ToolWakeSession, Title: "Wake a session", Annotations: idempotent,
		Description: "Starts (or replaces) this device's session, which require_session policies need: covering secrets with one of tags (all secrets without tags), for ttl (default 30m, at most 24h)."},
		s.wakeSession)
	add(s, srv, &sdkmcp.Tool{Name: ToolSleepSession, Title: "End the session", Annotations: destructive,
		Description: "Ends this device's sessions and deletes the env files inject_secret wrote."},
		s.sleepSession)
	add(s, srv, &sdkmcp.Tool{Name: ToolSessionStatus, Title: "Session status", Annotations: readOnly,
		Description: "Tells whether this device has a live session, until when, and which tags it covers."},
		s.sessionStatus)
	add(s, srv, &sdkmcp.Tool{Name: ToolAcknowledgeRule, Title: "Acknowledge a require_confirmation rule", Annotations: additive,
		Description: "Records this device's acknowledgement that it is about to read secret name, which require_confirmation policies ask for: valid 5 minutes, for one read."},
		s.acknowledgeRule)
	add(s, srv, &sdkmcp.Tool{Name: ToolGetActiveRules, Title: "Active policy rules", Annotations: readOnly,
		Description: "Lists the policies in force: which rule applies to secrets with which tag, in evaluation order."},
		s.getActiveRules)
	add(s, srv, &sdkmcp.Tool{Name: ToolImportEnv, Title: "Import a .env file", Annotations: readOnly,
		Description: "Never accepts file content: returns the URL of the web import page where the user imports a .env file themselves, and says whether that page exists yet."},
		s.importEnv)
	add(s, srv, &sdkmcp.Tool{Name: ToolCreateSecret, Title: "Create a secret (the user types the value)", Annotations: readOnly,
		Description: "Takes no value: checks the name is free and returns the command the user runs in their own terminal, which reads the value without echo. Give the command to the user; do not run it with a value."},
		s.createSecret)
	add(s, srv, &sdkmcp.Tool{Name: ToolUpdateSecret, Title: "Update a secret (the user types the value)", Annotations: readOnly,
		Description: "Takes no value: checks the secret exists and returns the command the user runs in their own terminal to set its new value, read without echo. Give the command to the user; do not run it with a value."},
		s.updateSecret)
}

// project returns p, or the default project, validated.
func project(p string) (string, error) {
	if p == "" {
		return custos.DefaultProject, nil
	}
	return p, custos.ValidateProject(p)
}

// validNames validates and deduplicates names (at least one).
func validNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errorf(custos.EINVALID, "names: give at least one secret name")
	}
	if len(names) > custos.MaxNamesPerRequest {
		return nil, errorf(custos.EINVALID, "names: at most %d names", custos.MaxNamesPerRequest)
	}
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if err := custos.ValidateName(n); err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// ---- list_secrets

// ListSecretsInput narrows list_secrets.
type ListSecretsInput struct {
	Project string            `json:"project,omitempty" jsonschema:"only this project (default: every project)"`
	Tags    map[string]string `json:"tags,omitempty" jsonschema:"only secrets with every one of these tags"`
}

// SecretInfo is a secret's metadata, never its value.
type SecretInfo struct {
	Name        string            `json:"name"`
	Project     string            `json:"project"`
	Tags        map[string]string `json:"tags,omitempty"`
	Description string            `json:"description,omitempty"`
	Version     int               `json:"version"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	Expired     bool              `json:"expired"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// ListSecretsOutput is the result of list_secrets.
type ListSecretsOutput struct {
	Secrets []SecretInfo `json:"secrets"`
}

func (s *server) listSecrets(ctx context.Context, req *sdkmcp.CallToolRequest, in ListSecretsInput) (ListSecretsOutput, error) {
	if in.Project != "" {
		if err := custos.ValidateProject(in.Project); err != nil {
			return ListSecretsOutput{}, err
		}
	}
	if err := custos.ValidateTags(in.Tags); err != nil {
		return ListSecretsOutput{}, err
	}
	var list []*custos.Secret
	err := s.call(req, func(svc *Services) (err error) {
		list, err = svc.Secrets.ListSecrets(ctx, custos.SecretFilter{Project: in.Project, Tags: in.Tags})
		return err
	})
	if err != nil {
		return ListSecretsOutput{}, err
	}
	now := s.now()
	out := ListSecretsOutput{Secrets: make([]SecretInfo, 0, len(list))}
	for _, sec := range list {
		out.Secrets = append(out.Secrets, SecretInfo{
			Name: sec.Name, Project: sec.Project, Tags: sec.Tags, Description: sec.Description,
			Version: sec.Version, ExpiresAt: sec.ExpiresAt, Expired: sec.Expired(now), UpdatedAt: sec.UpdatedAt,
		})
	}
	return out, nil
}

// ---- inject_secret

// InjectSecretInput names the secrets to inject.
type InjectSecretInput struct {
	Names   []string `json:"names" jsonschema:"the secret names, which become the variable names"`
	Project string   `json:"project,omitempty" jsonschema:"the project of the secrets (default: default)"`
}

// InjectSecretOutput says where the values went, never what they are.
type InjectSecretOutput struct {
	Path    string   `json:"path"`
	Project string   `json:"project"`
	Names   []string `json:"names"`
	Usage   string   `json:"usage"`
}

func (s *server) injectSecret(ctx context.Context, req *sdkmcp.CallToolRequest, in InjectSecretInput) (InjectSecretOutput, error) {
	p, err := project(in.Project)
	if err != nil {
		return InjectSecretOutput{}, err
	}
	names, err := validNames(in.Names)
	if err != nil {
		return InjectSecretOutput{}, err
	}
	if s.cfg.Inject == nil {
		return InjectSecretOutput{}, errorf(custos.EUNAVAILABLE, "inject_secret is not available in this server")
	}
	var values []*custos.SecretValue
	err = s.call(req, func(svc *Services) (err error) {
		values, err = svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: p, Names: names, Mode: custos.ModeInject})
		return err
	})
	if err != nil {
		return InjectSecretOutput{}, err
	}
	if err := delivered(p, names, values); err != nil {
		return InjectSecretOutput{}, err
	}
	path, err := s.cfg.Inject(p, values)
	if err != nil {
		return InjectSecretOutput{}, err
	}
	return InjectSecretOutput{Path: path, Project: p, Names: names,
		Usage: "set -a; . " + shellQuote(path) + "; set +a"}, nil
}

// delivered checks that every name came back.
func delivered(project string, names []string, values []*custos.SecretValue) error {
	got := make(map[string]bool, len(values))
	for _, v := range values {
		got[v.Name] = true
	}
	for _, n := range names {
		if !got[n] {
			return errorf(custos.ENOTFOUND, "secret %s/%s was not delivered", project, n)
		}
	}
	return nil
}

// ---- run_with_secrets

// RunWithSecretsInput is the command to run.
type RunWithSecretsInput struct {
	Command string   `json:"command" jsonschema:"the program to run (looked up in PATH; no shell)"`
	Args    []string `json:"args,omitempty" jsonschema:"its arguments"`
	Project string   `json:"project,omitempty" jsonschema:"the project whose secrets go into the environment (default: default)"`
	Only    []string `json:"only,omitempty" jsonschema:"only these secrets of the project (default: all)"`
}

// RunWithSecretsOutput is the command's exit code and masked output.
type RunWithSecretsOutput struct {
	ExitCode        int      `json:"exit_code"`
	Stdout          string   `json:"stdout"`
	Stderr          string   `json:"stderr"`
	StdoutTruncated bool     `json:"stdout_truncated"`
	StderrTruncated bool     `json:"stderr_truncated"`
	Injected        []string `json:"injected"`
	Masked          int      `json:"masked"`
}

func (s *server) runWithSecrets(ctx context.Context, req *sdkmcp.CallToolRequest, in RunWithSecretsInput) (RunWithSecretsOutput, error) {
	var zero RunWithSecretsOutput
	if !s.cfg.AllowRun || s.cfg.Run == nil {
		return zero, s.reject(ToolRunWithSecrets, 0)
	}
	if in.Command == "" || len(in.Command) > maxArgLength || strings.ContainsRune(in.Command, 0) {
		return zero, errorf(custos.EINVALID, "command: give a program name or path (at most %d bytes)", maxArgLength)
	}
	if len(in.Args) > maxArgs {
		return zero, errorf(custos.EINVALID, "args: at most %d arguments", maxArgs)
	}
	for _, a := range in.Args {
		if len(a) > maxArgLength || strings.ContainsRune(a, 0) {
			return zero, errorf(custos.EINVALID, "args: each argument at most %d bytes, without NUL", maxArgLength)
		}
	}
	p, err := project(in.Project)
	if err != nil {
		return zero, err
	}
	var only []string
	if len(in.Only) > 0 {
		if only, err = validNames(in.Only); err != nil {
			return zero, err
		}
	}
	var values []*custos.SecretValue
	err = s.call(req, func(svc *Services) (err error) {
		values, err = svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: p, Names: only, Mode: custos.ModeRun})
		return err
	})
	if err != nil {
		return zero, err
	}
	if err := delivered(p, only, values); err != nil {
		return zero, err
	}
	env := make(map[string]string, len(values))
	injected := make([]string, 0, len(values))
	for _, v := range values {
		env[v.Name] = v.Value
		injected = append(injected, v.Name)
	}
	sort.Strings(injected)
	m := NewMasker(values)
	code, stdout, stderr, err := s.cfg.Run(ctx, in.Command, in.Args, env)
	if err != nil {
		return zero, err
	}
	out := RunWithSecretsOutput{ExitCode: code, Injected: injected}
	var n1, n2 int
	out.Stdout, out.StdoutTruncated, n1 = m.MaskOutput(stdout)
	out.Stderr, out.StderrTruncated, n2 = m.MaskOutput(stderr)
	out.Masked = n1 + n2
	return out, nil
}

// ---- reveal_secret

// RevealSecretInput names the secret to reveal.
type RevealSecretInput struct {
	Name    string `json:"name" jsonschema:"the secret's name"`
	Project string `json:"project,omitempty" jsonschema:"its project (default: default)"`
}

// RevealSecretOutput carries a secret value: the only result that does.
type RevealSecretOutput struct {
	Project string `json:"project"`
	Name    string `json:"name"`
	Version int    `json:"version"`
	Value   string `json:"value"`
}

func (s *server) revealSecret(ctx context.Context, req *sdkmcp.CallToolRequest, in RevealSecretInput) (RevealSecretOutput, error) {
	if !s.cfg.AllowReveal {
		return RevealSecretOutput{}, s.reject(ToolRevealSecret, 0)
	}
	p, err := project(in.Project)
	if err != nil {
		return RevealSecretOutput{}, err
	}
	if err := custos.ValidateName(in.Name); err != nil {
		return RevealSecretOutput{}, err
	}
	var values []*custos.SecretValue
	err = s.call(req, func(svc *Services) (err error) {
		values, err = svc.Secrets.AccessSecrets(ctx, custos.AccessRequest{Project: p, Names: []string{in.Name}, Mode: custos.ModeReveal})
		return err
	})
	if err != nil {
		return RevealSecretOutput{}, err
	}
	for _, v := range values {
		if v.Name == in.Name {
			return RevealSecretOutput{Project: p, Name: v.Name, Version: v.Version, Value: v.Value}, nil
		}
	}
	return RevealSecretOutput{}, errorf(custos.ENOTFOUND, "secret %s/%s was not delivered", p, in.Name)
}

// ---- sessions

// WakeSessionInput is the session to wake.
type WakeSessionInput struct {
	Tags map[string]string `json:"tags,omitempty" jsonschema:"cover only secrets with one of these tags (default: every secret)"`
	TTL  string            `json:"ttl,omitempty" jsonschema:"how long the session lasts, e.g. 30m or 2h (default 30m, at most 24h)"`
}

// SessionOutput describes a session.
type SessionOutput struct {
	Active    bool              `json:"active"`
	ID        string            `json:"id,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
	Covers    string            `json:"covers,omitempty"`
}

func sessionOutput(ss *custos.Session) SessionOutput {
	covers := "every secret"
	if len(ss.Tags) > 0 {
		var parts []string
		for k, v := range ss.Tags {
			parts = append(parts, k+"="+v)
		}
		sort.Strings(parts)
		covers = "secrets tagged " + strings.Join(parts, " or ")
	}
	exp := ss.ExpiresAt
	return SessionOutput{Active: true, ID: ss.ID, Tags: ss.Tags, ExpiresAt: &exp, Covers: covers}
}

func (s *server) wakeSession(ctx context.Context, req *sdkmcp.CallToolRequest, in WakeSessionInput) (SessionOutput, error) {
	if err := custos.ValidateTags(in.Tags); err != nil {
		return SessionOutput{}, err
	}
	ttl := custos.DefaultSessionTTL
	if in.TTL != "" {
		d, err := custos.ParseDuration(in.TTL)
		if err != nil {
			return SessionOutput{}, err
		}
		ttl = d
	}
	if ttl <= 0 || ttl > custos.MaxSessionTTL {
		return SessionOutput{}, errorf(custos.EINVALID, "ttl: must be more than 0 and at most 24h")
	}
	var ss *custos.Session
	err := s.call(req, func(svc *Services) (err error) {
		ss, err = svc.Sessions.WakeSession(ctx, custos.WakeInput{Tags: in.Tags, TTL: custos.Duration(ttl)})
		return err
	})
	if err != nil {
		return SessionOutput{}, err
	}
	return sessionOutput(ss), nil
}

// SleepSessionInput takes nothing.
type SleepSessionInput struct{}

// SleepSessionOutput says what sleep_session ended and deleted.
type SleepSessionOutput struct {
	Ended        bool `json:"ended"`
	FilesRemoved int  `json:"files_removed"`
}

func (s *server) sleepSession(ctx context.Context, req *sdkmcp.CallToolRequest, _ SleepSessionInput) (SleepSessionOutput, error) {
	// The files go first: they hold values, and need no server.
	n := 0
	if s.cfg.ClearSession != nil {
		var err error
		if n, err = s.cfg.ClearSession(); err != nil {
			return SleepSessionOutput{}, err
		}
	}
	err := s.call(req, func(svc *Services) error { return svc.Sessions.SleepSession(ctx) })
	if err != nil {
		return SleepSessionOutput{}, err
	}
	return SleepSessionOutput{Ended: true, FilesRemoved: n}, nil
}

// SessionStatusInput takes nothing.
type SessionStatusInput struct{}

func (s *server) sessionStatus(ctx context.Context, req *sdkmcp.CallToolRequest, _ SessionStatusInput) (SessionOutput, error) {
	var ss *custos.Session
	err := s.call(req, func(svc *Services) (err error) {
		ss, err = svc.Sessions.CurrentSession(ctx)
		return err
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return SessionOutput{Active: false}, nil
	} else if err != nil {
		return SessionOutput{}, err
	}
	return sessionOutput(ss), nil
}

// ---- acknowledge_rule

// AcknowledgeRuleInput names the secret about to be read.
type AcknowledgeRuleInput struct {
	Name    string `json:"name" jsonschema:"the secret a require_confirmation policy guards"`
	Project string `json:"project,omitempty" jsonschema:"its project (default: default)"`
}

// AcknowledgeRuleOutput is the recorded acknowledgement.
type AcknowledgeRuleOutput struct {
	ID        string    `json:"id"`
	Project   string    `json:"project"`
	Name      string    `json:"name"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *server) acknowledgeRule(ctx context.Context, req *sdkmcp.CallToolRequest, in AcknowledgeRuleInput) (AcknowledgeRuleOutput, error) {
	p, err := project(in.Project)
	if err != nil {
		return AcknowledgeRuleOutput{}, err
	}
	if err := custos.ValidateName(in.Name); err != nil {
		return AcknowledgeRuleOutput{}, err
	}
	var c *custos.Confirmation
	err = s.call(req, func(svc *Services) (err error) {
		c, err = svc.Sessions.Confirm(ctx, custos.ConfirmInput{Project: p, Name: in.Name})
		return err
	})
	if err != nil {
		return AcknowledgeRuleOutput{}, err
	}
	return AcknowledgeRuleOutput{ID: c.ID, Project: c.Project, Name: c.Name, ExpiresAt: c.ExpiresAt}, nil
}

// ---- get_active_rules

// GetActiveRulesInput takes nothing.
type GetActiveRulesInput struct{}

// RuleInfo is one policy in force.
type RuleInfo struct {
	ID        string     `json:"id"`
	Tag       string     `json:"tag"`
	Rule      string     `json:"rule"`
	Meaning   string     `json:"meaning"`
	Models    []string   `json:"models,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// GetActiveRulesOutput lists the policies in force, in evaluation order.
type GetActiveRulesOutput struct {
	Rules []RuleInfo `json:"rules"`
}

var ruleMeaning = map[custos.Rule]string{
	custos.RuleBlockAlways:         "no access through the API, the CLI or MCP",
	custos.RuleRequireSession:      "delivered only while this device has a session covering the tag (wake_session)",
	custos.RuleBlockModels:         "refused to the listed models",
	custos.RuleRequireConfirmation: "each read needs an acknowledgement from this device within 5 minutes (acknowledge_rule)",
	custos.RuleNotify:              "never blocks; a webhook is told of each access",
}

func (s *server) getActiveRules(ctx context.Context, req *sdkmcp.CallToolRequest, _ GetActiveRulesInput) (GetActiveRulesOutput, error) {
	var list []*custos.Policy
	err := s.call(req, func(svc *Services) (err error) {
		list, err = svc.Policies.ListPolicies(ctx)
		return err
	})
	if err != nil {
		return GetActiveRulesOutput{}, err
	}
	now := s.now()
	out := GetActiveRulesOutput{Rules: []RuleInfo{}}
	for _, p := range list {
		if !p.Active(now) {
			continue
		}
		// NotifyURL stays out: a webhook URL may carry a credential.
		out.Rules = append(out.Rules, RuleInfo{ID: p.ID, Tag: p.TagKey + "=" + p.TagValue, Rule: string(p.Rule),
			Meaning: ruleMeaning[p.Rule], Models: p.Models, ExpiresAt: p.ExpiresAt})
	}
	sort.SliceStable(out.Rules, func(i, j int) bool {
		return custos.Rule(out.Rules[i].Rule).Rank() < custos.Rule(out.Rules[j].Rule).Rank()
	})
	return out, nil
}

// ---- import_env

// ImportEnvInput takes nothing: file content is never accepted.
type ImportEnvInput struct{}

// ImportEnvOutput points the user at the web import page.
type ImportEnvOutput struct {
	URL       string `json:"url"`
	Available bool   `json:"available"`
	Message   string `json:"message"`
}

func (s *server) importEnv(_ context.Context, _ *sdkmcp.CallToolRequest, _ ImportEnvInput) (ImportEnvOutput, error) {
	base := strings.TrimRight(s.cfg.WebURL, "/")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	return ImportEnvOutput{
		URL:       base + "/import",
		Available: false,
		Message: "custos never takes .env content through MCP. The web import page at this URL comes with the dashboard and is not built yet; " +
			"until then the user stores each value in their own terminal with: custos secret set NAME --project PROJECT (the value is read without echo).",
	}, nil
}

// ---- create_secret / update_secret

// CreateSecretInput describes the secret to create: there is no value field.
type CreateSecretInput struct {
	Name        string            `json:"name" jsonschema:"the new secret's name"`
	Project     string            `json:"project,omitempty" jsonschema:"its project (default: default)"`
	Tags        map[string]string `json:"tags,omitempty" jsonschema:"its tags"`
	TTL         string            `json:"ttl,omitempty" jsonschema:"it expires after this, e.g. 72h or 30d"`
	Description string            `json:"description,omitempty" jsonschema:"what it is for"`
}

// UpdateSecretInput names the secret to update: there is no value field.
type UpdateSecretInput struct {
	Name    string `json:"name" jsonschema:"the secret's name"`
	Project string `json:"project,omitempty" jsonschema:"its project (default: default)"`
}

// SecretCommandOutput is what the user does to enter a value.
type SecretCommandOutput struct {
	Command      string `json:"command"`
	Instructions string `json:"instructions"`
}

const enterValue = "Ask the user to run this command in their own terminal: it prompts for the value without echo " +
	"(or reads it from stdin), so the value never passes through the agent. custos has no one-time entry URL yet."

func (s *server) createSecret(ctx context.Context, req *sdkmcp.CallToolRequest, in CreateSecretInput) (SecretCommandOutput, error) {
	p, err := project(in.Project)
	if err != nil {
		return SecretCommandOutput{}, err
	}
	if err := custos.ValidateName(in.Name); err != nil {
		return SecretCommandOutput{}, err
	}
	if err := custos.ValidateTags(in.Tags); err != nil {
		return SecretCommandOutput{}, err
	}
	if in.TTL != "" {
		if d, err := custos.ParseDuration(in.TTL); err != nil {
			return SecretCommandOutput{}, err
		} else if d <= 0 {
			return SecretCommandOutput{}, errorf(custos.EINVALID, "ttl: must be more than 0")
		}
	}
	if len(in.Description) > custos.MaxDescriptionBytes || strings.ContainsFunc(in.Description, isControl) {
		return SecretCommandOutput{}, errorf(custos.EINVALID, "description: at most %d bytes, on one line", custos.MaxDescriptionBytes)
	}
	exists, err := s.secretExists(ctx, req, p, in.Name)
	if err != nil {
		return SecretCommandOutput{}, err
	} else if exists {
		return SecretCommandOutput{}, errorf(custos.ECONFLICT, "secret %s/%s exists; use update_secret to set a new value", p, in.Name)
	}
	cmd := []string{"custos", "secret", "set", in.Name, "--project", p}
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd = append(cmd, "--tag", shellQuote(k+"="+in.Tags[k]))
	}
	if in.TTL != "" {
		cmd = append(cmd, "--ttl", shellQuote(in.TTL))
	}
	if in.Description != "" {
		cmd = append(cmd, "--description", shellQuote(in.Description))
	}
	return SecretCommandOutput{Command: strings.Join(cmd, " "), Instructions: enterValue}, nil
}

func (s *server) updateSecret(ctx context.Context, req *sdkmcp.CallToolRequest, in UpdateSecretInput) (SecretCommandOutput, error) {
	p, err := project(in.Project)
	if err != nil {
		return SecretCommandOutput{}, err
	}
	if err := custos.ValidateName(in.Name); err != nil {
		return SecretCommandOutput{}, err
	}
	exists, err := s.secretExists(ctx, req, p, in.Name)
	if err != nil {
		return SecretCommandOutput{}, err
	} else if !exists {
		return SecretCommandOutput{}, errorf(custos.ENOTFOUND, "secret %s/%s does not exist; use create_secret", p, in.Name)
	}
	return SecretCommandOutput{Command: "custos secret set " + in.Name + " --project " + p, Instructions: enterValue +
		" Tags and expiry stay as they are unless the user adds --tag or --ttl."}, nil
}

// secretExists reports whether project/name exists (metadata only).
func (s *server) secretExists(ctx context.Context, req *sdkmcp.CallToolRequest, project, name string) (bool, error) {
	var list []*custos.Secret
	err := s.call(req, func(svc *Services) (err error) {
		list, err = svc.Secrets.ListSecrets(ctx, custos.SecretFilter{Project: project})
		return err
	})
	if err != nil {
		return false, err
	}
	for _, sec := range list {
		if sec.Name == name {
			return true, nil
		}
	}
	return false, nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/=:@+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// escapeForms are the URL-escaped forms of v.
func escapeForms(v string) []string {
	return []string{url.QueryEscape(v), url.PathEscape(v)}
}
