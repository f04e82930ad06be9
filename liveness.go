package keepwatch

import "time"

// ServerRecord is what keepwatch keeps in memory for a server: its
// credentials for ingest and its liveness for the monitor.
type ServerRecord struct {
	ID             string
	InstallationID int64
	IntegratorID   int64 // 0 if the SLC is not registered
	SLC            string
	Name           string
	Key            []byte
	State          ServerState
	LastSeen       int64 // Unix ms, 0 if never
	LastSeq        uint64
	IntervalMS     int64
	Revoked        bool
	CarePlusUntil  Date
	ClockOffsetMS  int64
	// PendingKey is the report key of a re-enrollment waiting for the
	// integrator's approval (nil if none): reports under it are answered
	// reenrollment_pending.
	PendingKey []byte
	// StatusSeq is the number of the last status report accepted under
	// the current key.
	StatusSeq uint64
	// NextKey is the key of an in-band rotation the agent asked for (nil
	// if none): its first use replaces Key.
	NextKey []byte
	// RotateRequired: keepwatch asks the agent to rotate its key.
	RotateRequired bool
	// Rev is the revision of the server's row when it was read: of two
	// records of one server, the higher is the newer.
	Rev int64
}

// Watched reports whether the monitor keeps a deadline for the server: it
// reports (ok) and was not revoked.
func (r ServerRecord) Watched() bool { return r.State == ServerOK && !r.Revoked }

// Partitions is how many parts the fleet is divided into for watching;
// each part is leased to one node. The servers of one installation are in
// the same part, so one node judges whether a whole site went silent.
const Partitions = 64

// PartitionOf is the part an installation's servers are watched in.
func PartitionOf(installationID int64) int { return int(installationID % Partitions) }

// Leases is the outcome of a node's lease round: the parts it holds, and
// of those newly taken, which need the own-outage guard (their previous
// holder died, or nobody held them: keepwatch may have been down).
type Leases struct {
	Held    []int
	Guarded map[int]bool
}

// MaxSeq is the highest sequence number keepwatch accepts (it is stored
// signed), and MaxSeqJump the largest step over the last accepted one. A
// sender may number from a clock (microseconds: a jump of 2^42 is 51 days
// of silence), but a bigger jump is a corrupt or hostile sender that must
// not burn the number space and lock the real agent out.
const (
	MaxSeq     = 1<<62 - 1
	MaxSeqJump = 1 << 42
)

// Beat is a heartbeat to commit: the compare-and-set of its sequence
// number, with the time it was heard.
type Beat struct {
	ID         string
	Seq        uint64
	At         time.Time
	IntervalMS int64
}

// BeatOutcome is what committing a heartbeat did.
type BeatOutcome int

const (
	// BeatAccepted: its sequence number was above the last and is spent.
	BeatAccepted BeatOutcome = iota
	// BeatReplayed: its sequence number was not above the stored one.
	BeatReplayed
	// BeatNeedsReport: the server is not simply reporting (unavailable,
	// never reported, consent withdrawn, revoked): the heartbeat must be
	// applied as a full report, which changes its state.
	BeatNeedsReport
)

// Expiry is a server whose deadline passed, as the sweeper saw it.
type Expiry struct {
	ID       string
	LastSeen int64 // the newest report the sweeper knows of (Unix ms)
	// Window is one heartbeat interval: when every server of an
	// installation went unavailable within it, the outage is a site outage
	// and one site_unreachable incident speaks for all of them.
	Window time.Duration
}

// Marked is the outcome of one expiry. OK: the server was declared
// unavailable (Change says so). Otherwise another writer got there first:
// LastSeen is the newest report the store has (a heartbeat another node
// took), and Watched whether the server still needs a deadline.
type Marked struct {
	Change   Change
	OK       bool
	LastSeen int64
	Watched  bool
}
