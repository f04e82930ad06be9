package keepwatch

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the public contract: clients switch on them.
const (
	EINVALID          = "invalid_request"
	EUNAUTHORIZED     = "unauthorized"
	EFORBIDDEN        = "forbidden"
	ENOTFOUND         = "not_found"
	ECONFLICT         = "conflict"
	ECAREPLUSINACTIVE = "care_plus_inactive"
	ECONSENTREQUIRED  = "consent_required"
	EREPLAYED         = "replayed"
	ETOOLARGE         = "too_large"
	ERATELIMITED      = "rate_limited"
	EUNAVAILABLE      = "unavailable"
	EINTERNAL         = "internal"
	// ECONDITIONACTIVE refuses to resolve by hand a state incident whose
	// condition is still reported: it resolves by itself when it clears.
	ECONDITIONACTIVE = "condition_active"
	// EKEYEXPIRED refuses an enrollment under an enrollment key past its
	// expiry: the operator or integrator issues a new one.
	EKEYEXPIRED = "enrollment_key_expired"
	// EREENROLLPENDING answers reports under a key whose re-enrollment
	// waits for the integrator's approval.
	EREENROLLPENDING = "reenrollment_pending"
)

// Error is an error with a code and a message that is safe to show to the
// caller. Anything else that reaches a handler is reported as EINTERNAL
// with a generic message, so internal details never leak.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EINTERNAL for errors without one and ""
// for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
