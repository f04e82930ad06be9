package keepwatch

import "time"

// IncidentState is where an incident is in its lifecycle.
type IncidentState string

const (
	IncidentOpen         IncidentState = "open"
	IncidentAcknowledged IncidentState = "acknowledged"
	IncidentResolved     IncidentState = "resolved"
)

// ParseIncidentState validates a state filter; "" means open and
// acknowledged (everything not yet resolved).
func ParseIncidentState(s string) (IncidentState, error) {
	switch st := IncidentState(s); st {
	case "", IncidentOpen, IncidentAcknowledged, IncidentResolved:
		return st, nil
	}
	return "", Errorf(EINVALID, "state must be open, acknowledged or resolved")
}

// Incident is what an integrator acts on. A state condition opens one and
// resolves it when it clears; an event opens one that a person resolves.
type Incident struct {
	ID          int64         `json:"id"`
	SLC         string        `json:"slc"`
	Customer    string        `json:"customer"`
	Server      string        `json:"server"`
	ServerID    string        `json:"server_id"`
	Kind        string        `json:"kind"`
	Subject     string        `json:"subject"`
	Severity    Severity      `json:"severity"`
	Event       bool          `json:"event"`
	State       IncidentState `json:"state"`
	OpenedAt    time.Time     `json:"opened_at"`
	LastAt      time.Time     `json:"last_at"`
	Count       int           `json:"count"`
	AckedAt     *time.Time    `json:"acked_at,omitempty"`
	AckedBy     string        `json:"acked_by,omitempty"`
	AckNote     string        `json:"ack_note,omitempty"`
	ResolvedAt  *time.Time    `json:"resolved_at,omitempty"`
	ResolvedBy  string        `json:"resolved_by,omitempty"`
	ResolveNote string        `json:"resolve_note,omitempty"`
	// ParentID is the site_unreachable incident this server outage is part
	// of; Annotation explains an outage after the fact ("connection lost").
	ParentID   *int64 `json:"parent_id,omitempty"`
	Annotation string `json:"annotation,omitempty"`
}

// IncidentContext is an incident with its tenant, as notifications need
// it. IntegratorID is the integrator that held the installation when the
// incident happened, 0 if nobody did or it was given away since.
type IncidentContext struct {
	Incident
	IntegratorID   int64
	InstallationID int64
}

// Change is a state change of a server or condition, as published to live
// dashboards and written to history.
type Change struct {
	IntegratorID int64     `json:"-"`
	SLC          string    `json:"slc"`
	ServerID     string    `json:"server_id"`
	Server       string    `json:"server"`
	Kind         string    `json:"kind"`
	Subject      string    `json:"subject,omitempty"`
	Active       bool      `json:"active"` // raised (true) or cleared (false)
	At           time.Time `json:"at"`
}
