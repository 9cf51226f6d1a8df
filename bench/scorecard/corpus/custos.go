package corpus

import (
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

// NewCustos returns the engine the scorecard and the speed bench measure:
// no known values, the secret rules when secrets is set, and the default PII
// detectors when personal is set.
func NewCustos(secrets, personal bool) (*redact.Engine, error) {
	cfg := redact.DefaultConfig()
	cfg.Secrets = secrets
	cfg.Known = nil
	cfg.Detectors = nil
	if personal {
		cfg.Detectors = pii.Detectors(pii.DefaultConfig())
	}
	return redact.New(cfg)
}

// CustosSpans adapts the engine's findings for Score; KNOWN counts as
// SECRET.
func CustosSpans(e *redact.Engine) func(string, []byte) []Span {
	return func(_ string, src []byte) []Span {
		var spans []Span
		for _, f := range e.Find(src) {
			kind := string(f.Kind)
			if f.Kind == redact.KindKnown {
				kind = Secret
			}
			spans = append(spans, Span{Kind: kind, Start: f.Start, End: f.End, RuleID: f.RuleID})
		}
		return spans
	}
}
