package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"keepwatch"
)

// Enroll stores a server's key and returns its id.
func (s *Store) Enroll(ctx context.Context, e keepwatch.Enrollment) (string, error) {
	id := e.ID
	err := s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		now := s.now().UnixMilli()
		var existing string
		var revoked sql.NullInt64
		err = t.queryRow(`SELECT id, revoked_at FROM servers WHERE installation_id = ? AND name = ?`, e.InstallationID, e.Name).Scan(&existing, &revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = t.exec(`INSERT INTO servers (id, installation_id, name, report_key, state, state_since, consent, interval_ms, agent_version, enrolled_at, rev)
				VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
				id, e.InstallationID, e.Name, s.sealReportKey(id, e.Key), string(keepwatch.ServerPending), now, e.Interval.Milliseconds(), e.AgentVersion, now, rev)
			return err
		case err != nil:
			return dbErr(err)
		case revoked.Valid:
			return keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this server was revoked by the operator")
		}
		if existing != e.ID {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "server %q is being enrolled concurrently, retry", e.Name)
		}
		// Enrolling again requires consent, so a server that had withdrawn
		// it starts over as pending (monitored from its first report). The
		// sequence starts over under a new enrolled_at, even within the
		// same millisecond: the heartbeat journal tells enrollments apart
		// by it.
		_, err = t.exec(`UPDATE servers SET report_key = ?, pending_key = NULL, next_key = NULL, rotate_required = 0, last_seq = 0, status_seq = 0, consent = 1, agent_version = ?,
			enrolled_at = CASE WHEN enrolled_at < ? THEN ? ELSE enrolled_at + 1 END, rev = ?,
			state = CASE WHEN state = 'consent_withdrawn' THEN 'pending' ELSE state END WHERE id = ?`,
			s.sealReportKey(id, e.Key), e.AgentVersion, now, now, rev, id)
		return err
	})
	return id, err
}

// ServerIDByName returns the id of an installation's server with that name,
// or "" if there is none, so that a re-enrolling agent keeps its identity.
func (s *Store) ServerIDByName(ctx context.Context, installationID int64, name string) (string, error) {
	var id string
	err := s.queryRow(ctx, `SELECT id FROM servers WHERE installation_id = ? AND name = ?`, installationID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, dbErr(err)
}

// RevokeServer stops a server from reporting; its reports are then refused.
func (s *Store) RevokeServer(ctx context.Context, id string) error {
	return s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		r, err := t.exec(`UPDATE servers SET revoked_at = ?, rev = ? WHERE id = ? AND revoked_at IS NULL`, s.now().UnixMilli(), rev, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no active server %s", id)
		}
		return nil
	})
}

const serverRecordCols = `s.id, s.installation_id, COALESCE(i.integrator_id, 0), i.slc, s.name, s.report_key, s.state, s.last_seen, s.last_seq, s.interval_ms, s.revoked_at IS NOT NULL, i.care_plus_until, s.clock_offset_ms, s.pending_key, s.status_seq, s.next_key, s.rotate_required, s.rev, s.enrolled_at`

func (s *Store) scanServerRecords(rows *sql.Rows) ([]keepwatch.ServerRecord, error) {
	defer rows.Close()
	var out []keepwatch.ServerRecord
	for rows.Next() {
		var r keepwatch.ServerRecord
		var state, until string
		var seq, statusSeq int64
		var pending, next []byte
		var rotate, enrolled int64
		if err := rows.Scan(&r.ID, &r.InstallationID, &r.IntegratorID, &r.SLC, &r.Name, &r.Key, &state, &r.LastSeen, &seq, &r.IntervalMS, &r.Revoked, &until, &r.ClockOffsetMS, &pending, &statusSeq, &next, &rotate, &r.Rev, &enrolled); err != nil {
			return nil, dbErr(err)
		}
		s.withUnfolded(r.ID, enrolled, &seq, &r.LastSeen, &r.IntervalMS)
		r.State, r.LastSeq, r.StatusSeq = keepwatch.ServerState(state), uint64(seq), uint64(statusSeq)
		if len(pending) > 0 {
			// A pending key that no longer opens (sealed under a retired
			// secret key) is as good as none: the server keeps reporting
			// with its current key and the request cannot be approved.
			if pk, err := s.openReportKey(r.ID, pending); err == nil {
				r.PendingKey = pk
			}
		}
		if len(next) > 0 {
			if nk, err := s.openReportKey(r.ID, next); err == nil {
				r.NextKey = nk
			}
		}
		r.RotateRequired = rotate != 0
		r.CarePlusUntil, _ = keepwatch.ParseDate(until)
		key, err := s.openReportKey(r.ID, r.Key)
		if err != nil {
			return nil, fmt.Errorf("report key of server %s: %w", r.ID, err)
		}
		r.Key = key
		out = append(out, r)
	}
	return out, dbErr(rows.Err())
}

// keepwatch.ServerRecord loads one server for ingest; not_found if unknown.
func (s *Store) ServerRecord(ctx context.Context, id string) (keepwatch.ServerRecord, error) {
	rows, err := s.query(ctx, `SELECT `+serverRecordCols+` FROM servers s JOIN installations i ON i.id = s.installation_id WHERE s.id = ?`, id)
	if err != nil {
		return keepwatch.ServerRecord{}, err
	}
	rs, err := s.scanServerRecords(rows)
	if err != nil {
		return keepwatch.ServerRecord{}, err
	}
	if len(rs) == 0 {
		return keepwatch.ServerRecord{}, keepwatch.Errorf(keepwatch.ENOTFOUND, "unknown server")
	}
	return rs[0], nil
}

// ChangedServers returns the servers whose row or installation changed
// after revision since (all servers for 0), and the current revision.
func (s *Store) ChangedServers(ctx context.Context, since int64) ([]keepwatch.ServerRecord, int64, error) {
	var rev int64
	if err := s.queryRow(ctx, `SELECT value FROM meta WHERE key = 'rev'`).Scan(&rev); err != nil {
		return nil, 0, dbErr(err)
	}
	if rev == since {
		return nil, rev, nil
	}
	rows, err := s.query(ctx, `SELECT `+serverRecordCols+` FROM servers s JOIN installations i ON i.id = s.installation_id
		WHERE s.rev > ? OR i.rev > ?`, since, since)
	if err != nil {
		return nil, 0, err
	}
	rs, err := s.scanServerRecords(rows)
	return rs, rev, err
}

// serverInfo is what a transaction needs to know to record a change.
type serverInfo struct {
	id             string
	name           string
	installationID int64
	integratorID   int64
	slc            string
	state          keepwatch.ServerState
	lastSeq        uint64
	lastSeen       int64
	revoked        bool
}

func (i serverInfo) change(kind, subject string, active bool, at time.Time) keepwatch.Change {
	return keepwatch.Change{IntegratorID: i.integratorID, SLC: i.slc, ServerID: i.id, Server: i.name,
		Kind: kind, Subject: subject, Active: active, At: at.UTC()}
}

// serverInfo reads a server for a transaction that changes it. On
// PostgreSQL it locks the server's installation, then the server: every
// writer takes them in that order, so concurrent reports, sweeps and site
// decisions on several nodes serialize instead of deadlocking.
func (t *Tx) serverInfo(id string) (serverInfo, error) {
	var i serverInfo
	var state string
	var seq int64
	lock := ""
	if t.s.dialect == Postgres {
		var inst int64
		err := t.queryRow(`SELECT installation_id FROM servers WHERE id = ?`, id).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return i, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "unknown server")
		}
		if err != nil {
			return i, dbErr(err)
		}
		if err := t.lockInstallation(inst); err != nil {
			return i, err
		}
		lock = " FOR UPDATE OF s"
	}
	var enrolled int64
	err := t.queryRow(`SELECT s.id, s.name, s.installation_id, COALESCE(i.integrator_id, 0), i.slc, s.state, s.last_seq, s.last_seen, s.revoked_at IS NOT NULL, s.enrolled_at
		FROM servers s JOIN installations i ON i.id = s.installation_id WHERE s.id = ?`+lock, id).
		Scan(&i.id, &i.name, &i.installationID, &i.integratorID, &i.slc, &state, &seq, &i.lastSeen, &i.revoked, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return i, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "unknown server")
	}
	t.s.withUnfolded(id, enrolled, &seq, &i.lastSeen, nil)
	i.state, i.lastSeq = keepwatch.ServerState(state), uint64(seq)
	return i, dbErr(err)
}

// ImportedServer is a server created in bulk with a key agreed elsewhere.
type ImportedServer struct {
	ID, Name string
	Key      []byte
}

// ImportServers creates many servers of one installation in batches, as
// reporting ("ok") since lastSeen. It exists for benchmarks and for moving
// fleets from another system; regular servers enroll.
func (s *Store) ImportServers(ctx context.Context, installationID int64, servers []ImportedServer, interval time.Duration, lastSeen time.Time) error {
	const batch = 5000
	for start := 0; start < len(servers); start += batch {
		end := min(start+batch, len(servers))
		err := s.tx(ctx, func(t *Tx) error {
			rev, err := t.nextRev()
			if err != nil {
				return err
			}
			stmt, err := t.tx.PrepareContext(ctx, s.q(`INSERT INTO servers (id, installation_id, name, report_key, state, state_since, consent, interval_ms, last_seen, agent_version, enrolled_at, rev)
				VALUES (?, ?, ?, ?, 'ok', ?, 1, ?, ?, 'import', ?, ?)`))
			if err != nil {
				return dbErr(err)
			}
			defer stmt.Close()
			ms := lastSeen.UnixMilli()
			for _, sv := range servers[start:end] {
				if _, err := stmt.ExecContext(ctx, sv.ID, installationID, sv.Name, s.sealReportKey(sv.ID, sv.Key), ms, interval.Milliseconds(), ms, ms, rev); err != nil {
					return dbErr(err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if s.dialect == Postgres {
		// The planner must know the table grew before autovacuum gets to
		// it: every heartbeat's lookup depends on it.
		if _, err := s.write.ExecContext(ctx, `ANALYZE servers`); err != nil {
			return dbErr(err)
		}
	}
	return nil
}

// UnavailableMarks returns, for every server declared unavailable at or
// after since, when that happened (Unix ms; operator-level, for
// measurements).
func (s *Store) UnavailableMarks(ctx context.Context, since time.Time) (map[string]int64, error) {
	rows, err := s.query(ctx, `SELECT server_id, MAX(at) FROM state_changes WHERE kind = ? AND active = 1 AND at >= ? GROUP BY server_id`,
		keepwatch.KindServerUnavailable, since.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, dbErr(err)
		}
		out[id] = at
	}
	return out, dbErr(rows.Err())
}

// bumpServerRev marks a server changed for the nodes that poll revisions.
func (t *Tx) bumpServerRev(id string) error {
	rev, err := t.nextRev()
	if err != nil {
		return err
	}
	_, err = t.exec(`UPDATE servers SET rev = ? WHERE id = ?`, rev, id)
	return err
}

// EventSubjects returns the subjects of every stored event of a kind
// (operator-level, for verification).
func (s *Store) EventSubjects(ctx context.Context, kind string) (map[string]bool, error) {
	rows, err := s.query(ctx, `SELECT subject FROM events WHERE kind = ?`, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var subject string
		if err := rows.Scan(&subject); err != nil {
			return nil, dbErr(err)
		}
		out[subject] = true
	}
	return out, dbErr(rows.Err())
}

// EventTimes returns when each stored event of a kind happened, by subject
// (operator-level, for verification).
func (s *Store) EventTimes(ctx context.Context, kind string) (map[string]time.Time, error) {
	rows, err := s.query(ctx, `SELECT subject, occurred_at FROM events WHERE kind = ?`, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var subject string
		var at int64
		if err := rows.Scan(&subject, &at); err != nil {
			return nil, dbErr(err)
		}
		out[subject] = keepwatch.TimeFromMillis(at)
	}
	return out, dbErr(rows.Err())
}

// Revision is the store-wide revision counter: rows that nodes cache
// (installations, servers) carry the revision of their last change.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.queryRow(ctx, `SELECT value FROM meta WHERE key = 'rev'`).Scan(&rev)
	return rev, dbErr(err)
}

// ServerCounts counts the fleet's non-revoked servers by state
// (operator-level, for metrics).
func (s *Store) ServerCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT state, COUNT(*) FROM servers WHERE revoked_at IS NULL GROUP BY state`)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	_, err = scanAll(rows, func(r scanner) (string, error) {
		var st string
		var n int
		err := r.Scan(&st, &n)
		out[st] = n
		return st, err
	})
	return out, err
}
