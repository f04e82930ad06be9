package keepwatch

import "time"

// Report is an authenticated report from a recording server, ready to be
// applied: a heartbeat, a status report, events, or a consent change.
type Report struct {
	ServerID     string
	Seq          uint64
	ReceivedAt   time.Time
	AgentVersion string
	Interval     time.Duration // the interval the answer tells the agent
	// RecordedAt is when the agent recorded the report (its sent_at). A
	// report recorded well before it arrived sat in the agent's spool: the
	// server was running while keepwatch could not hear it.
	RecordedAt time.Time
	// ClockOffset is how far the agent's clock is ahead of keepwatch's
	// (negative: behind), when the report says; nil keeps the stored one.
	ClockOffset *time.Duration
	// Status is true for a status report: Conditions is then the full set
	// of active state conditions. False for a heartbeat.
	Status     bool
	Conditions []Condition
	Events     []Event
	// HeldEvents are events over the server's events-per-minute cap
	// (FloodPolicy): recorded in its history, counted on no incident.
	HeldEvents []Event
	// Consent is set when the report changes the customer's consent.
	Consent *bool
	// Drives are the drive samples the report carries, stored with it;
	// they change no agent condition (keepwatch judges them afterwards,
	// JudgeDrives).
	Drives []DriveReading
	// TransmittedAt is the agent's clock when it sent this attempt (zero:
	// not said).
	TransmittedAt time.Time
	// StatusSeq is a status report's own number, or for a heartbeat the
	// number of the last status report the agent sent (0: not numbered);
	// the store keeps the last one accepted to tell a lost status report.
	StatusSeq uint64
	// RotateKey is the agent's new X25519 public key when the report asks
	// to rotate the report key in-band.
	RotateKey []byte
	// Delayed: the report was held back on the way (its transmitted_at is
	// far behind). It is recorded, with its events, but proves nothing
	// about the server being alive now.
	Delayed bool
}

// Applied is the outcome of a stored report.
type Applied struct {
	State   ServerState
	Changes []Change
}

// Enrollment is a new recording server, or a re-enrollment of one with the
// same name in the same installation (a reinstalled agent), which gives it
// a new key and restarts its sequence numbers.
type Enrollment struct {
	InstallationID int64
	ID             string // from ServerIDByName for a known name, else new
	Name           string
	Key            []byte
	Interval       time.Duration
	AgentVersion   string
}
