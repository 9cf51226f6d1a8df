package custos

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in package http and back again in
// its client, so a CLI user sees the same code the server decided.
const (
	EINVALID       = "invalid"        // malformed or unacceptable input
	EUNAUTHORIZED  = "unauthorized"   // no, unknown, revoked or expired credential
	EFORBIDDEN     = "forbidden"      // authenticated, but not allowed
	ENOTFOUND      = "not_found"      // the named object does not exist
	ECONFLICT      = "conflict"       // the object exists or changed underneath
	EEXPIRED       = "expired"        // a TTL secret past its expiry
	ETOOLARGE      = "too_large"      // a body or value over its limit
	EDEVICEPENDING = "device_pending" // the device waits for an admin's approval
	EPOLICY        = "policy_denied"  // a policy on the secret's tags denied access
	ERATELIMITED   = "rate_limited"   // too many requests; retry after the time the answer names
	EUNAVAILABLE   = "unavailable"    // a dependency (e.g. the audit log) failed; nothing was delivered
	EINTERNAL      = "internal"       // anything else; details are logged, never sent
)

// Error is the one application error. Code is machine-readable; Message is
// meant for the user and must never contain a secret value or a token.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("custos error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the root *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the *Error's message,
// or "Internal error." for anything else, so internal details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
