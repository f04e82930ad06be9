// Package keepwatch is the vocabulary of the keepwatch monitoring service:
// integrators and their installations, recording servers, conditions and
// incidents, and the rules that turn them into a status. It does no I/O;
// the internal packages store, ingest, monitor and serve these types.
package keepwatch

import (
	"time"
)

// Version is the build version, set with -ldflags at release time.
var Version = "0.1.0-dev"

// Role is what a user or API token may do within its integrator.
type Role string

// Roles, weakest first.
const (
	RoleViewer     Role = "viewer"
	RoleTechnician Role = "technician"
	RoleOwner      Role = "owner"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleTechnician, RoleOwner:
		return r, nil
	}
	return "", Errorf(EINVALID, "role must be owner, technician or viewer")
}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleTechnician:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// Allows reports whether r grants at least the rights of min.
func (r Role) Allows(min Role) bool { return r.rank() >= min.rank() && r.rank() > 0 }

// Integrator is a tenant: a company that services installations.
type Integrator struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// Principal is who is making a request: a user or an API token, always
// within exactly one integrator.
type Principal struct {
	IntegratorID int64
	Role         Role
	Actor        string // "user:alice@example.com" or "token:ci-export"
	// Credential names what authenticated the request (a session or a
	// token, by hash), so that a long request such as an event stream
	// can check that it still works.
	Credential string
}

// TimeFromMillis converts a stored Unix-millisecond value; 0 is the zero time.
func TimeFromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Millis converts t to Unix milliseconds; the zero time is 0.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
