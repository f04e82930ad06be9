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
}

// Seen is a server's latest liveness, persisted write-behind.
type Seen struct {
	ID         string
	LastSeen   int64
	LastSeq    uint64
	IntervalMS int64
}

// Expiry is a server whose deadline passed, as the sweeper saw it.
type Expiry struct {
	ID       string
	LastSeen int64 // the newest report the sweeper knows of (Unix ms)
	// Window is one heartbeat interval: when every server of an
	// installation went unavailable within it, the outage is a site outage
	// and one site_unreachable incident speaks for all of them.
	Window time.Duration
}

// Marked is the outcome of one expiry: OK is false when another writer got
// there first (a newer report, or another node).
type Marked struct {
	Change Change
	OK     bool
}
