package keepwatch

import "time"

// EnrollmentKeyLifetime is how long an installation's enrollment key
// enrolls servers after it was issued, unless configured otherwise.
const EnrollmentKeyLifetime = 30 * 24 * time.Hour

// Reenrollment is a request to enroll a server name that is already
// enrolled, by an agent that could not prove it holds the server's current
// report key (a reinstalled machine, or someone else holding the
// installation's enrollment key). The old key keeps working until the
// integrator approves; approval switches the server to the new key.
type Reenrollment struct {
	ID           int64     `json:"id"`
	ServerID     string    `json:"server_id"`
	Server       string    `json:"server"`
	SLC          string    `json:"slc"`
	AgentVersion string    `json:"agent_version"`
	RemoteAddr   string    `json:"remote_addr"`
	RequestedAt  time.Time `json:"requested_at"`
	// State is pending, approved, rejected or superseded (a later request
	// for the same server replaced it).
	State     string     `json:"state"`
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
}

// States of a re-enrollment request.
const (
	ReenrollmentPending    = "pending"
	ReenrollmentApproved   = "approved"
	ReenrollmentRejected   = "rejected"
	ReenrollmentSuperseded = "superseded"
)
