package custos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Audit outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
)

// Audit actions.
const (
	ActionBootstrap      = "org.bootstrap"
	ActionSecretSet      = "secret.set"
	ActionSecretDelete   = "secret.delete"
	ActionSecretInject   = "secret.inject"
	ActionSecretReveal   = "secret.reveal"
	ActionSecretRun      = "secret.run"
	ActionSecretAccess   = "secret.access" // a denied access, any mode
	ActionKeyCreate      = "key.create"
	ActionKeyRotate      = "key.rotate"
	ActionKeyRevoke      = "key.revoke"
	ActionDeviceNew      = "device.new"
	ActionDeviceApprove  = "device.approve"
	ActionDeviceDeny     = "device.deny"
	ActionDeviceRevoke   = "device.revoke"
	ActionPolicyAdd      = "policy.add"
	ActionPolicyRemove   = "policy.remove"
	ActionSessionWake    = "session.wake"
	ActionSessionSleep   = "session.sleep"
	ActionConfirm        = "secret.confirm"
	ActionAuthFailed     = "auth.failed"
	ActionManagementDeny = "access.denied"
	ActionProviderAdd    = "provider.add"
	ActionProviderRemove = "provider.remove"
	ActionBudgetSet      = "budget.set"
	ActionBudgetRemove   = "budget.remove"
	ActionPrivacySet     = "privacy.set"
	ActionPrivacyRemove  = "privacy.remove"
	ActionGatewaySecret  = "gateway.secret_detected" // a stored secret's value was found in a model request
)

// GenesisHash is the PrevHash of an org's first audit event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// AuditEvent is one entry of an org's hash-chained audit log: who (key,
// device, agent, machine user), what (action, secret), how (source, mode),
// when, where (IP) and the model. It never holds a secret value or a token.
type AuditEvent struct {
	Seq         int64     `json:"seq"` // 1, 2, … per org
	OrgID       string    `json:"org_id"`
	Time        time.Time `json:"time"` // UTC, microsecond precision
	Action      string    `json:"action"`
	Outcome     string    `json:"outcome"`
	Reason      string    `json:"reason,omitempty"`
	KeyID       string    `json:"key_id,omitempty"`
	User        string    `json:"user,omitempty"` // the key's name
	DeviceID    string    `json:"device_id,omitempty"`
	Agent       string    `json:"agent,omitempty"`
	Hostname    string    `json:"hostname,omitempty"`
	MachineUser string    `json:"machine_user,omitempty"`
	IP          string    `json:"ip,omitempty"`
	Source      string    `json:"source,omitempty"`
	Mode        string    `json:"mode,omitempty"`
	Model       string    `json:"model,omitempty"`
	Project     string    `json:"project,omitempty"`
	Secret      string    `json:"secret,omitempty"`
	Version     int       `json:"version,omitempty"`
	Target      string    `json:"target,omitempty"` // id of the managed object
	PrevHash    string    `json:"prev_hash"`
	Hash        string    `json:"hash"`
}

// ComputeHash returns the hex SHA-256 of e's canonical encoding (its JSON
// with Hash empty), which covers PrevHash and so chains the log.
func (e *AuditEvent) ComputeHash() string {
	c := *e
	c.Hash = ""
	c.Time = c.Time.UTC()
	b, err := json.Marshal(&c) // #nosec G117 -- "secret" here is a secret's name; values never enter this struct
	if err != nil {
		panic("custos: audit event does not encode: " + err.Error()) // plain struct; cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Seal sets e's Seq and PrevHash and computes its Hash. Stores call it when
// they append e after the event with seq-1 and hash prev.
func (e *AuditEvent) Seal(seq int64, prev string) {
	e.Seq, e.PrevHash = seq, prev
	e.Hash = e.ComputeHash()
}

// AuditFilter narrows an audit listing.
type AuditFilter struct {
	Since    time.Time // events at or after; zero means all
	AfterSeq int64     // events with a greater seq
	Limit    int       // 0 means the store's default (1000)
}

// AuditVerification is the result of checking an org's chain end to end.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	Events   int64  `json:"events"`              // events checked
	LastHash string `json:"last_hash,omitempty"` // hash of the last good event
	BrokenAt int64  `json:"broken_at,omitempty"` // seq of the first bad event
	Reason   string `json:"reason,omitempty"`
}

// VerifyChain checks that events are consecutive (seq from 1), each links to
// the one before, and each hash matches its content. It stops at the first
// break. Call it with successive pages, passing the previous result back.
func VerifyChain(prev *AuditVerification, events []*AuditEvent) *AuditVerification {
	v := &AuditVerification{OK: true}
	if prev != nil {
		*v = *prev
	}
	if !v.OK {
		return v
	}
	for _, e := range events {
		wantPrev := GenesisHash
		if v.Events > 0 {
			wantPrev = v.LastHash
		}
		switch {
		case e.Seq != v.Events+1:
			v.OK, v.BrokenAt, v.Reason = false, e.Seq, "sequence gap: expected event "+itoa(v.Events+1)
		case e.PrevHash != wantPrev:
			v.OK, v.BrokenAt, v.Reason = false, e.Seq, "prev_hash does not match the hash of the event before"
		case e.ComputeHash() != e.Hash:
			v.OK, v.BrokenAt, v.Reason = false, e.Seq, "hash does not match the event's content (modified)"
		}
		if !v.OK {
			return v
		}
		v.Events, v.LastHash = e.Seq, e.Hash
	}
	return v
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// AuditService reads the audit log (owner and admin keys).
type AuditService interface {
	// ListAudit lists the org's events in seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
	// VerifyAudit checks the org's whole chain and says where it breaks.
	VerifyAudit(ctx context.Context) (*AuditVerification, error)
}

// AuditStore persists audit events. Appends are durable when they return.
type AuditStore interface {
	// AppendAudit appends evs (sealing each) and msgs in one transaction.
	// Stores may group concurrent appends into one commit; each call returns
	// only once its own events are durable.
	AppendAudit(ctx context.Context, evs []*AuditEvent, msgs []*OutboxMessage) error
	// ListAudit returns the org's events in seq order.
	ListAudit(ctx context.Context, orgID string, f AuditFilter) ([]*AuditEvent, error)
}

// OutboxMessage is a notification waiting to be delivered to a webhook.
// Its payload is event metadata, never a value.
type OutboxMessage struct {
	ID            string     `json:"id"`
	OrgID         string     `json:"org_id"`
	URL           string     `json:"url"`
	Payload       []byte     `json:"payload"`
	Attempts      int        `json:"attempts"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	FailedAt      *time.Time `json:"failed_at,omitempty"` // gave up
	LastError     string     `json:"last_error,omitempty"`
}

// OutboxStore hands notifications to the deliverer.
type OutboxStore interface {
	// ClaimOutbox returns up to limit undelivered, not given-up messages due
	// at now, and pushes their NextAttemptAt to now+lease so another worker
	// does not take them meanwhile; Attempts is incremented.
	ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*OutboxMessage, error)
	// CompleteOutbox marks message id delivered at now.
	CompleteOutbox(ctx context.Context, id string, now time.Time) error
	// RetryOutbox records lastErr and schedules message id at next; a nil
	// next gives up on it (FailedAt=now).
	RetryOutbox(ctx context.Context, id string, now time.Time, next *time.Time, lastErr string) error
}
