package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"keepwatch"
	"keepwatch/internal/protocol"
)

// Report kinds in the spool. They decide what the bound may drop.
const (
	KindHeartbeat = "heartbeat" // no conditions, no events: droppable
	KindStatus    = "status"    // full set of conditions, maybe events
	KindEvents    = "events"    // events only
	KindConsent   = "consent"   // a change of consent
)

// ErrSpoolFull refuses new events when the spool holds nothing but
// undelivered events: they are never dropped, so the caller must be told.
var ErrSpoolFull = keepwatch.Errorf(keepwatch.EUNAVAILABLE, "the spool is full of undelivered events; keepwatch has been unreachable for too long")

// spoolSchema is version 1 of the spool. Times are Unix milliseconds.
const spoolSchema = `
CREATE TABLE IF NOT EXISTS reports (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    payload     BLOB NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS reports_kind ON reports (kind, seq);
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value
);
PRAGMA user_version = 1;
`

// Spool is the agent's durable queue of reports. Every report is written
// here, with its sequence number, before it is sent, and deleted only when
// keepwatch has acknowledged it. Commits are synchronous (WAL,
// synchronous=FULL), so a report the spool accepted survives kill -9 and
// power loss, and a sequence number once handed out is never handed out
// again.
type Spool struct {
	db  *sql.DB
	max int
	mu  sync.Mutex
}

// Entry is one spooled report.
type Entry struct {
	Seq        uint64
	Kind       string
	RecordedAt time.Time
	Events     int
	Payload    []byte // the plaintext payload; empty for a bare heartbeat
	Attempts   int    // sends started before this one
}

// SpoolStats is what `agent status` shows about the spool and delivery.
type SpoolStats struct {
	Depth             int       `json:"depth"`
	PendingEvents     int       `json:"pending_events"`
	Oldest            time.Time `json:"oldest,omitzero"`
	MaxReports        int       `json:"max_reports"`
	DroppedHeartbeats int64     `json:"dropped_heartbeats"`
	DroppedStatus     int64     `json:"dropped_status_reports"`
	Discarded         int64     `json:"discarded_at_consent_withdrawal"`
	Refused           int64     `json:"refused_by_keepwatch"`
	LastSeq           uint64    `json:"last_seq"`
	LastAckedSeq      uint64    `json:"last_acked_seq"`
	LastAck           time.Time `json:"last_ack,omitzero"`
	LastAckState      string    `json:"last_ack_state,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	LastErrorAt       time.Time `json:"last_error_at,omitzero"`
}

// OpenSpool opens (creating if needed) the spool of the state directory
// dir. The caller must hold the directory's lock. The sequence counter
// never goes below st.Seq, the counter of reports sent without a spool.
// Reports spooled for another server identity (the directory was enrolled
// again under a new name) are discarded: they describe another server.
func OpenSpool(dir string, st *State, maxReports int) (*Spool, error) {
	if maxReports <= 0 {
		maxReports = DefaultMaxReports
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, SpoolFile)
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One connection: the spool has one writer, and the mutex orders it.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	s := &Spool{db: db, max: maxReports}
	if err := s.init(st); err != nil {
		db.Close()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	return s, nil
}

func (s *Spool) init(st *State) error {
	ctx := context.Background()
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version > 1 {
		return fmt.Errorf("written by a newer agent (schema %d)", version)
	}
	if _, err := s.db.ExecContext(ctx, spoolSchema); err != nil {
		return err
	}
	return s.tx(func(tx *sql.Tx) error {
		var owner string
		err := tx.QueryRow(`SELECT value FROM kv WHERE key = 'server_id'`).Scan(&owner)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if owner != st.ServerID {
			n, err := deleteCount(tx, `DELETE FROM reports`)
			if err != nil {
				return err
			}
			if err := addInt(tx, "discarded", n); err != nil {
				return err
			}
			if err := setKV(tx, "server_id", st.ServerID); err != nil {
				return err
			}
		}
		last, err := getInt(tx, "last_seq")
		if err != nil {
			return err
		}
		var maxSeq int64
		if err := tx.QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM reports`).Scan(&maxSeq); err != nil {
			return err
		}
		floor := max(last, maxSeq, int64(st.Seq))
		return setKV(tx, "last_seq", floor)
	})
}

// Close closes the spool's database.
func (s *Spool) Close() error { return s.db.Close() }

func (s *Spool) tx(fn func(*sql.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Record assigns the next sequence number to a report and stores it
// durably, then enforces the bound. p nil is a bare heartbeat. It returns
// the sequence number.
func (s *Spool) Record(kind string, recordedAt time.Time, p *protocol.Payload) (uint64, error) {
	payload := []byte{}
	events := 0
	if p != nil {
		var err error
		if payload, err = json.Marshal(p); err != nil {
			return 0, err
		}
		events = len(p.Events)
	}
	if len(payload)+protocol.MinEnvelope > protocol.MaxEnvelope {
		return 0, keepwatch.Errorf(keepwatch.ETOOLARGE, "the report would exceed %d bytes; send fewer or shorter events", protocol.MaxEnvelope)
	}
	var seq uint64
	err := s.tx(func(tx *sql.Tx) error {
		last, err := getInt(tx, "last_seq")
		if err != nil {
			return err
		}
		seq = uint64(last) + 1
		if _, err := tx.Exec(`INSERT INTO reports (seq, kind, recorded_at, events, payload) VALUES (?, ?, ?, ?, ?)`,
			int64(seq), kind, recordedAt.UnixMilli(), events, payload); err != nil {
			return err
		}
		if err := setKV(tx, "last_seq", int64(seq)); err != nil {
			return err
		}
		if kind == KindStatus && p != nil && p.Conditions != nil {
			b, _ := json.Marshal(*p.Conditions)
			if err := setKV(tx, "last_conditions", string(b)); err != nil {
				return err
			}
		}
		return s.bound(tx, events > 0)
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// bound drops reports beyond the limit: the oldest heartbeats first, then
// status reports that a later one supersedes (the latest always stays).
// Reports with events are never dropped; if only they remain, a new one
// is refused.
func (s *Spool) bound(tx *sql.Tx, newHasEvents bool) error {
	var n int64
	if err := tx.QueryRow(`SELECT COUNT(*) FROM reports`).Scan(&n); err != nil {
		return err
	}
	over := n - int64(s.max)
	if over <= 0 {
		return nil
	}
	d, err := deleteCount(tx, `DELETE FROM reports WHERE seq IN (SELECT seq FROM reports WHERE kind = 'heartbeat' ORDER BY seq LIMIT ?)`, over)
	if err != nil {
		return err
	}
	if err := addInt(tx, "dropped_heartbeats", d); err != nil {
		return err
	}
	if over -= d; over <= 0 {
		return nil
	}
	d, err = deleteCount(tx, `DELETE FROM reports WHERE seq IN (SELECT seq FROM reports WHERE kind = 'status' AND events = 0
		AND seq < (SELECT MAX(seq) FROM reports WHERE kind = 'status') ORDER BY seq LIMIT ?)`, over)
	if err != nil {
		return err
	}
	if err := addInt(tx, "dropped_status", d); err != nil {
		return err
	}
	if over-d > 0 && newHasEvents {
		return ErrSpoolFull
	}
	return nil
}

// Head returns the oldest report, the next to send.
func (s *Spool) Head() (Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e Entry
	var seq, at int64
	err := s.db.QueryRow(`SELECT seq, kind, recorded_at, events, payload, attempts FROM reports ORDER BY seq LIMIT 1`).
		Scan(&seq, &e.Kind, &at, &e.Events, &e.Payload, &e.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, err
	}
	e.Seq, e.RecordedAt = uint64(seq), time.UnixMilli(at).UTC()
	return e, true, nil
}

// Claim returns the oldest report, the next to send, and durably notes
// that it is about to be sent, in one transaction. A later `replayed`
// answer for a report that was sent before means an earlier attempt was
// accepted and only its answer was lost. Entry.Attempts counts the
// attempts before this one.
func (s *Spool) Claim() (Entry, bool, error) {
	var e Entry
	var found bool
	err := s.tx(func(tx *sql.Tx) error {
		var seq, at int64
		err := tx.QueryRow(`UPDATE reports SET attempts = attempts + 1 WHERE seq = (SELECT MIN(seq) FROM reports)
			RETURNING seq, kind, recorded_at, events, payload, attempts - 1`).Scan(&seq, &e.Kind, &at, &e.Events, &e.Payload, &e.Attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		e.Seq, e.RecordedAt, found = uint64(seq), time.UnixMilli(at).UTC(), true
		return nil
	})
	return e, found, err
}

// Delivered removes an acknowledged report and notes the acknowledgement.
func (s *Spool) Delivered(seq uint64, at time.Time, state string) error {
	return s.tx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM reports WHERE seq = ?`, int64(seq)); err != nil {
			return err
		}
		last, err := getInt(tx, "last_acked_seq")
		if err != nil {
			return err
		}
		if err := setKV(tx, "last_acked_seq", max(last, int64(seq))); err != nil {
			return err
		}
		if err := setKV(tx, "last_ack_at", at.UnixMilli()); err != nil {
			return err
		}
		if state != "" {
			if err := setKV(tx, "last_ack_state", state); err != nil {
				return err
			}
		}
		_, err = tx.Exec(`DELETE FROM kv WHERE key IN ('last_error', 'last_error_at')`)
		return err
	})
}

// Refused removes a report keepwatch refused as malformed: resending it
// unchanged cannot succeed, and it must not block the reports behind it.
func (s *Spool) Refused(seq uint64) error {
	return s.tx(func(tx *sql.Tx) error {
		n, err := deleteCount(tx, `DELETE FROM reports WHERE seq = ?`, int64(seq))
		if err != nil {
			return err
		}
		return addInt(tx, "refused", n)
	})
}

// Renumber moves every pending report above the counter plus step,
// keeping their order. It answers `replayed` for a report never sent
// before: the counter went backwards (a state directory restored from a
// backup), so keepwatch has seen higher numbers than ours.
func (s *Spool) Renumber(step uint64) error {
	return s.tx(func(tx *sql.Tx) error {
		last, err := getInt(tx, "last_seq")
		if err != nil {
			return err
		}
		var minSeq int64
		if err := tx.QueryRow(`SELECT COALESCE(MIN(seq), 0) FROM reports`).Scan(&minSeq); err != nil {
			return err
		}
		// Every new number is above every old one, so the update never
		// collides with a row not yet moved.
		delta := int64(step)
		if minSeq > 0 {
			delta += last - minSeq + 1
		}
		if _, err := tx.Exec(`UPDATE reports SET seq = seq + ?, attempts = 0`, delta); err != nil {
			return err
		}
		// The status report being sent keeps its status number.
		if _, err := tx.Exec(`UPDATE kv SET value = value + ? WHERE key = 'status_seq_of' AND value >= ?`, delta, minSeq); err != nil {
			return err
		}
		var maxSeq int64
		if err := tx.QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM reports`).Scan(&maxSeq); err != nil {
			return err
		}
		return setKV(tx, "last_seq", max(maxSeq, last+int64(step)))
	})
}

// StatusNumber returns the status_seq to send with report seq: for a
// status report its own number, assigned at its first attempt and kept for
// its retries; for any other report the number of the last status report
// sent. Status reports dropped from the spool before they were ever sent
// get no number, so keepwatch sees a gap only for one lost on the way.
func (s *Spool) StatusNumber(seq uint64, status bool) (uint64, error) {
	var n int64
	err := s.tx(func(tx *sql.Tx) error {
		var err error
		if n, err = getInt(tx, "status_seq"); err != nil || !status {
			return err
		}
		of, err := getInt(tx, "status_seq_of")
		if err != nil || of == int64(seq) {
			return err
		}
		n++
		if err := setKV(tx, "status_seq", n); err != nil {
			return err
		}
		return setKV(tx, "status_seq_of", int64(seq))
	})
	return uint64(n), err
}

// DiscardAll empties the spool (consent was withdrawn: nothing recorded
// before may leave the machine) and counts what was discarded.
func (s *Spool) DiscardAll() (int64, error) {
	var n int64
	err := s.tx(func(tx *sql.Tx) error {
		var err error
		if n, err = deleteCount(tx, `DELETE FROM reports`); err != nil {
			return err
		}
		return addInt(tx, "discarded", n)
	})
	return n, err
}

// SetError notes why the last delivery attempt failed.
func (s *Spool) SetError(msg string, at time.Time) error {
	return s.tx(func(tx *sql.Tx) error {
		if err := setKV(tx, "last_error", msg); err != nil {
			return err
		}
		return setKV(tx, "last_error_at", at.UnixMilli())
	})
}

// SetVMSConditions keeps the conditions the VMS reported last, so that a
// restarted agent goes on reporting them instead of clearing them.
func (s *Spool) SetVMSConditions(conds []protocol.PayloadCondition) error {
	b, err := json.Marshal(conds)
	if err != nil {
		return err
	}
	return s.tx(func(tx *sql.Tx) error { return setKV(tx, "vms_conditions", string(b)) })
}

// VMSConditions returns what SetVMSConditions kept.
func (s *Spool) VMSConditions() ([]protocol.PayloadCondition, error) {
	return s.jsonConditions("vms_conditions")
}

// LastConditions returns the conditions of the last recorded status report.
func (s *Spool) LastConditions() ([]protocol.PayloadCondition, error) {
	return s.jsonConditions("last_conditions")
}

func (s *Spool) jsonConditions(key string) ([]protocol.PayloadCondition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b sql.NullString
	err := s.db.QueryRow(`SELECT value FROM kv WHERE key = ?`, key).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []protocol.PayloadCondition
	if err := json.Unmarshal([]byte(b.String), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Stats returns the spool's depth and delivery counters.
func (s *Spool) Stats() (SpoolStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{MaxReports: s.max}
	var oldest sql.NullInt64
	if err := s.db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(events), 0), MIN(recorded_at) FROM reports`).Scan(&st.Depth, &st.PendingEvents, &oldest); err != nil {
		return st, err
	}
	if oldest.Valid {
		st.Oldest = time.UnixMilli(oldest.Int64).UTC()
	}
	rows, err := s.db.Query(`SELECT key, value FROM kv`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v any
		if err := rows.Scan(&k, &v); err != nil {
			return st, err
		}
		n, _ := v.(int64)
		str, _ := v.(string)
		switch k {
		case "dropped_heartbeats":
			st.DroppedHeartbeats = n
		case "dropped_status":
			st.DroppedStatus = n
		case "discarded":
			st.Discarded = n
		case "refused":
			st.Refused = n
		case "last_seq":
			st.LastSeq = uint64(n)
		case "last_acked_seq":
			st.LastAckedSeq = uint64(n)
		case "last_ack_at":
			st.LastAck = time.UnixMilli(n).UTC()
		case "last_ack_state":
			st.LastAckState = str
		case "last_error":
			st.LastError = str
		case "last_error_at":
			st.LastErrorAt = time.UnixMilli(n).UTC()
		}
	}
	return st, rows.Err()
}

func getInt(tx *sql.Tx, key string) (int64, error) {
	var v int64
	err := tx.QueryRow(`SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

func setKV(tx *sql.Tx, key string, v any) error {
	_, err := tx.Exec(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, v)
	return err
}

func addInt(tx *sql.Tx, key string, n int64) error {
	if n == 0 {
		return nil
	}
	_, err := tx.Exec(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value`, key, n)
	return err
}

func deleteCount(tx *sql.Tx, query string, args ...any) (int64, error) {
	r, err := tx.Exec(query, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}
