// Package redact finds secrets and personal data in text and replaces them
// with typed, numbered placeholders that a Session can restore, also on a
// stream. Bytes outside a finding are never changed.
//
// The secret rules come from the gitleaks default rule set (MIT; see
// rules/NOTICE), run behind a keyword prefilter so most rules never run;
// detectors for personal data live in redact/pii and plug in through
// Detector.
package redact

// Kind is the type of a finding; it names the placeholder ([[SECRET_1]]).
type Kind string

// Kinds of findings.
const (
	KindSecret Kind = "SECRET" // a credential found by a rule
	KindKnown  Kind = "KNOWN"  // one of Config.Known, or its base64/hex/URL-encoded form
	KindEmail  Kind = "EMAIL"
	KindPhone  Kind = "PHONE"
	KindCard   Kind = "CARD" // payment card number passing Luhn
	KindIBAN   Kind = "IBAN" // IBAN passing its checksum
	KindSSN    Kind = "SSN"  // US social security number
	KindIP     Kind = "IP"   // IPv4/IPv6 address (public ranges unless configured)
)

// Finding is one match in the input: bytes [Start, End). It never holds the
// matched value, so findings can be printed and logged.
type Finding struct {
	Kind        Kind   `json:"kind"`
	RuleID      string `json:"rule_id"`
	Start       int    `json:"start"`
	End         int    `json:"end"`
	Placeholder string `json:"placeholder,omitempty"` // set by Session.Redact
	// Label names the known value (Config.KnownLabels) found in this span,
	// in any encoding, even when another rule's finding covers it.
	Label string `json:"label,omitempty"`
}

// Detector finds one family of matches (for example personal data). It
// calls emit for each, with Start/End relative to src. It must be safe for
// concurrent use and must not keep src.
type Detector interface {
	Detect(src []byte, emit func(Finding))
}
