package keepwatch

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// FieldError is the refusal of one field of what a person typed, so that a
// form can show it beside that field. It is an EINVALID *Error for
// everyone else (ErrorCode, ErrorMessage, the API).
type FieldError struct {
	Field string
	Err   *Error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Invalid refuses the named field with a message safe to show.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: Errorf(EINVALID, format, args...)}
}

// FieldOf names the field err refuses, "" if it is not about one field.
func FieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// TimeLayout is how keepwatch writes a moment for people, everywhere: on
// the dashboard, in notes it writes on incidents, in audit details. Always
// UTC, so that a technician and a customer in two zones read the same
// text.
const TimeLayout = "2006-01-02 15:04 UTC"

// FormatTime writes t in TimeLayout; the zero time is "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// ParseTime reads a moment a person typed in UTC: "2026-12-01 22:00",
// with an optional "UTC" or a "T" between date and time.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "UTC"))
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date and time like 2026-12-01 22:00", s)
}

// ActorName names who did something for people: the e-mail of a user
// ("user:sam@example.com" is "sam@example.com"), "API token NAME" for a
// token, "keepwatch" for what keepwatch did by itself.
func ActorName(actor string) string {
	switch kind, name, ok := strings.Cut(actor, ":"); {
	case !ok:
		return actor
	case kind == "user":
		return name
	case kind == "token":
		return "API token " + name
	}
	return actor
}
