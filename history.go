package keepwatch

import "time"

// TransitionType is one step in an incident's history.
type TransitionType string

// Incident transitions, as written to an incident's history.
const (
	TransitionOpened       TransitionType = "opened"
	TransitionReopened     TransitionType = "reopened"
	TransitionRecurred     TransitionType = "recurred"
	TransitionAcknowledged TransitionType = "acknowledged"
	TransitionAnnotated    TransitionType = "annotated"
	TransitionAssigned     TransitionType = "assigned"
	// TransitionTransferred marks an open incident passing to a new holder
	// of its installation; the history before it is not shown to them.
	TransitionTransferred TransitionType = "transferred"
	TransitionResolved    TransitionType = "resolved"
)

// Notifies reports whether a transition of this type may notify someone
// (the others ride on other messages). Acknowledgements notify only
// channels that track incidents (ChannelType.Tracks).
func (t TransitionType) Notifies() bool {
	return t == TransitionOpened || t == TransitionReopened || t == TransitionResolved || t == TransitionAcknowledged
}

// Transition is one row of an incident's history.
type Transition struct {
	ID             int64          `json:"id"`
	IncidentID     int64          `json:"incident_id"`
	InstallationID int64          `json:"-"`
	Type           TransitionType `json:"type"`
	At             time.Time      `json:"at"`
	Actor          string         `json:"actor,omitempty"`
	Note           string         `json:"note,omitempty"`
}

// Assignee is the user an incident is assigned to.
type Assignee struct {
	UserID int64     `json:"user_id"`
	Email  string    `json:"email"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// TimelineEntry is one thing that happened to an installation.
type TimelineEntry struct {
	At       time.Time `json:"at"`
	Type     string    `json:"type"` // raised, cleared, event, acknowledged, resolved
	Server   string    `json:"server,omitempty"`
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject,omitempty"`
	Severity Severity  `json:"severity"`
	By       string    `json:"by,omitempty"`
	Note     string    `json:"note,omitempty"`
}

// Flip is a change of one server's availability.
type Flip struct {
	ServerID    string
	Unavailable bool
	At          time.Time
}
