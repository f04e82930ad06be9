package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// The incident lifecycle's rules live in the root package
// (keepwatch.IncidentPolicy and the Incident methods); this file reads the
// rows they decide on and writes their decisions, each incident write
// compare-and-set on its state, in the caller's transaction.

// transition writes one incident history row.
func (t *Tx) transition(incidentID, installationID int64, typ keepwatch.TransitionType, at time.Time, actor, note string) error {
	_, err := t.exec(`INSERT INTO incident_events (incident_id, installation_id, type, at, actor, note) VALUES (?, ?, ?, ?, ?, ?)`,
		incidentID, installationID, string(typ), at.UnixMilli(), actor, note)
	t.outbox = true
	return err
}

// incidentRowCols reads an incident row without its joins (what the
// lifecycle needs), in the column order scanIncident expects.
const incidentRowCols = `n.id, '', '', '', COALESCE(n.server_id, ''), n.kind, n.subject, n.severity, n.is_event, n.state, n.opened_at, n.last_at, n.count,
	n.acked_at, n.acked_by, n.ack_note, n.resolved_at, n.resolved_by, n.resolve_note, n.parent_id, n.annotation`

// findIncident returns the incident matching where (and its order/limit
// clause), locked for this transaction on PostgreSQL; nil if none.
func (t *Tx) findIncident(where string, args ...any) (*keepwatch.Incident, error) {
	n, err := scanIncident(t.queryRow(`SELECT `+incidentRowCols+` FROM incidents n WHERE `+where+t.s.forUpdate(), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr(err)
	}
	return &n, nil
}

// saveIncident writes an incident the lifecycle changed, compare-and-set
// on the state it was read in: a concurrent change makes it a conflict.
func (t *Tx) saveIncident(before keepwatch.IncidentState, n keepwatch.Incident) error {
	r, err := t.exec(`UPDATE incidents SET state = ?, last_at = ?, count = ?, acked_at = ?, acked_by = ?, ack_note = ?,
			resolved_at = ?, resolved_by = ?, resolve_note = ?, parent_id = ?, annotation = ?
		WHERE id = ? AND state = ?`,
		string(n.State), n.LastAt.UnixMilli(), n.Count, millisOrNull(n.AckedAt), n.AckedBy, n.AckNote,
		millisOrNull(n.ResolvedAt), n.ResolvedBy, n.ResolveNote, idOrNull(n.ParentID), n.Annotation, n.ID, string(before))
	if err != nil {
		return err
	}
	if c, _ := r.RowsAffected(); c == 0 {
		return keepwatch.Errorf(keepwatch.ECONFLICT, "the incident changed meanwhile; reload and try again")
	}
	return nil
}

func millisOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func idOrNull(id *int64) any {
	if id == nil {
		return nil
	}
	return *id
}

// raise applies a condition or event raised at at on a server: it counts
// on the unresolved incident, reopens the one resolved recently, or opens
// a new one, as the policy decides. A gate (the agent's raises; nil for
// keepwatch's own) may hold back an incident to open or reopen: raise
// then changes nothing and returns 0.
func (t *Tx) raise(info serverInfo, kind, subject string, sev keepwatch.Severity, event bool, at time.Time, gate *keepwatch.FloodGate) (int64, error) {
	open, err := t.findIncident(`n.server_id = ? AND n.kind = ? AND n.subject = ? AND n.state <> 'resolved'`, info.id, kind, subject)
	if err != nil {
		return 0, err
	}
	var last *keepwatch.Incident
	if open == nil {
		last, err = t.findIncident(`n.server_id = ? AND n.kind = ? AND n.subject = ? AND n.state = 'resolved' AND COALESCE(n.integrator_id, 0) = ?
			ORDER BY n.resolved_at DESC LIMIT 1`, info.id, kind, subject, info.integratorID)
		if err != nil {
			return 0, err
		}
	}
	action := t.s.Policy.Raise(open, last, at)
	if action != keepwatch.RaiseRecur && gate != nil && !gate.Open() {
		return 0, nil
	}
	switch action {
	case keepwatch.RaiseRecur:
		before := open.State
		open.Recur(at)
		if err := t.saveIncident(before, *open); err != nil {
			return 0, err
		}
		return open.ID, t.transition(open.ID, info.installationID, keepwatch.TransitionRecurred, at, "", "")
	case keepwatch.RaiseReopen:
		last.Reopen(at)
		if err := t.saveIncident(keepwatch.IncidentResolved, *last); err != nil {
			return 0, err
		}
		return last.ID, t.transition(last.ID, info.installationID, keepwatch.TransitionReopened, at, "", "")
	}
	id, err := t.insert(`INSERT INTO incidents (installation_id, integrator_id, server_id, kind, subject, severity, is_event, state, opened_at, last_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)`, info.installationID, nullable(info.integratorID), info.id, kind, subject, string(sev), b2i(event),
		at.UnixMilli(), at.UnixMilli())
	if err != nil {
		return 0, err
	}
	return id, t.transition(id, info.installationID, keepwatch.TransitionOpened, at, "", "")
}

// clear resolves the unresolved incident of a condition that cleared.
func (t *Tx) clear(info serverInfo, kind, subject string, at time.Time) error {
	n, err := t.findIncident(`n.server_id = ? AND n.kind = ? AND n.subject = ? AND n.state <> 'resolved'`, info.id, kind, subject)
	if err != nil || n == nil {
		return err
	}
	return t.clearIncident(*n, info.installationID, at, "")
}

// clearIncident resolves n as keepwatch, with a note.
func (t *Tx) clearIncident(n keepwatch.Incident, installationID int64, at time.Time, note string) error {
	before := n.State
	if !n.Clear(at, note) {
		return nil
	}
	if err := t.saveIncident(before, n); err != nil {
		return err
	}
	return t.transition(n.ID, installationID, keepwatch.TransitionResolved, at, keepwatch.ActorKeepwatch, note)
}

// lockInstallation serializes, on PostgreSQL, the decisions that look at
// all servers of an installation (site outages) across nodes.
func (t *Tx) lockInstallation(id int64) error {
	if t.s.dialect != Postgres {
		return nil // one writer
	}
	_, err := t.exec(`SELECT id FROM installations WHERE id = ? FOR UPDATE`, id)
	return err
}

// groupSite checks, after a server went unavailable, whether the servers
// of its installation went silent together; if so one site_unreachable
// incident speaks for them: the servers' own incidents point to it and
// are not notified.
func (t *Tx) groupSite(info serverInfo, at time.Time, window time.Duration) error {
	var site keepwatch.SiteServers
	var first sql.NullInt64
	err := t.queryRow(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'unavailable' THEN 1 ELSE 0 END), 0),
			MIN(CASE WHEN state = 'unavailable' THEN state_since END)
		FROM servers WHERE installation_id = ? AND revoked_at IS NULL AND state IN ('ok', 'unavailable')`, info.installationID).Scan(&site.Total, &site.Down, &first)
	if err != nil {
		return dbErr(err)
	}
	site.FirstDown = keepwatch.TimeFromMillis(first.Int64)
	if !keepwatch.SiteOutage(site, at, window) {
		return nil
	}
	n, err := t.findIncident(`n.installation_id = ? AND n.kind = ? AND n.state <> 'resolved'`, info.installationID, keepwatch.KindSiteUnreachable)
	if err != nil {
		return err
	}
	var id int64
	if n != nil {
		id = n.ID
	} else {
		id, err = t.insert(`INSERT INTO incidents (installation_id, integrator_id, server_id, kind, subject, severity, is_event, state, opened_at, last_at, count)
			VALUES (?, ?, NULL, ?, '', 'error', 0, 'open', ?, ?, ?)`, info.installationID, nullable(info.integratorID), keepwatch.KindSiteUnreachable,
			first.Int64, at.UnixMilli(), site.Total)
		if err != nil {
			return err
		}
		if err := t.transition(id, info.installationID, keepwatch.TransitionOpened, site.FirstDown, keepwatch.ActorKeepwatch,
			keepwatch.SiteOutageNote(site.Total, window)); err != nil {
			return err
		}
	}
	_, err = t.exec(`UPDATE incidents SET parent_id = ? WHERE installation_id = ? AND kind = ? AND state <> 'resolved' AND parent_id IS NULL`,
		id, info.installationID, keepwatch.KindServerUnavailable)
	return err
}

// serverBack records a server that reports again after it was declared
// unavailable: its incident resolves; if its report shows it was running
// all along, the outage is annotated as a lost connection; the site
// incident resolves once none of its servers is still unavailable.
func (t *Tx) serverBack(info serverInfo, r keepwatch.Report, at time.Time) error {
	site, err := t.findIncident(`n.installation_id = ? AND n.kind = ? AND n.state <> 'resolved'`, info.installationID, keepwatch.KindSiteUnreachable)
	if err != nil {
		return err
	}
	own, err := t.findIncident(`n.server_id = ? AND n.kind = ? AND n.subject = '' AND n.state <> 'resolved'`, info.id, keepwatch.KindServerUnavailable)
	if err != nil {
		return err
	}
	if note, lost := keepwatch.ConnectionLost(keepwatch.TimeFromMillis(info.lastSeen), at, r.RecordedAt, r.Interval); lost {
		target := site
		if target == nil {
			target = own
		}
		if target != nil && target.Annotation == "" {
			target.Annotation = note
			if err := t.saveIncident(target.State, *target); err != nil {
				return err
			}
			if err := t.transition(target.ID, info.installationID, keepwatch.TransitionAnnotated, at, keepwatch.ActorKeepwatch, note); err != nil {
				return err
			}
		}
	}
	if own != nil {
		if err := t.clearIncident(*own, info.installationID, at, ""); err != nil {
			return err
		}
	}
	if site == nil {
		return nil
	}
	var stillDown int
	if err := t.queryRow(`SELECT COUNT(*) FROM servers WHERE installation_id = ? AND revoked_at IS NULL AND state = 'unavailable' AND id <> ?`,
		info.installationID, info.id).Scan(&stillDown); err != nil {
		return dbErr(err)
	}
	if stillDown > 0 {
		return nil
	}
	return t.clearIncident(*site, info.installationID, at, "")
}

// ResolveQuietEvents resolves event incidents that have not recurred for
// quiet, and clears the floods of servers that calmed down (which resolves
// their incidents); it returns how many incidents it resolved.
func (s *Store) ResolveQuietEvents(ctx context.Context, quiet time.Duration, now time.Time) (int, error) {
	n, err := s.resolveQuietEvents(ctx, quiet, now)
	if err != nil {
		return n, err
	}
	floods, err := s.clearCalmFloods(ctx, now)
	return n + floods, err
}

func (s *Store) resolveQuietEvents(ctx context.Context, quiet time.Duration, now time.Time) (int, error) {
	policy := keepwatch.IncidentPolicy{QuietPeriod: quiet}
	n := 0
	err := s.tx(ctx, func(t *Tx) error {
		rows, err := t.query(`SELECT `+incidentRowCols+`, n.installation_id FROM incidents n
			WHERE n.is_event = 1 AND n.state <> 'resolved' AND n.last_at < ?`+s.forUpdate(), policy.QuietSince(now).UnixMilli())
		if err != nil {
			return err
		}
		type quietIncident struct {
			keepwatch.Incident
			inst int64
		}
		quiet, err := scanAll(rows, func(r scanner) (quietIncident, error) {
			var q quietIncident
			var err error
			q.Incident, err = scanIncident(extraScanner{r, &q.inst})
			return q, err
		})
		if err != nil {
			return err
		}
		for _, q := range quiet {
			if err := t.clearIncident(q.Incident, q.inst, now, policy.QuietNote()); err != nil {
				return err
			}
		}
		n = len(quiet)
		return nil
	})
	return n, err
}

// extraScanner scans a row into a scanner's destinations followed by
// extra ones (columns appended after a shared column list).
type extraScanner struct {
	r     scanner
	extra any
}

func (e extraScanner) Scan(dest ...any) error { return e.r.Scan(append(dest, e.extra)...) }

func scanTransitions(rows *sql.Rows) ([]keepwatch.Transition, error) {
	defer rows.Close()
	out := []keepwatch.Transition{}
	for rows.Next() {
		var tr keepwatch.Transition
		var at int64
		if err := rows.Scan(&tr.ID, &tr.IncidentID, &tr.InstallationID, &tr.Type, &at, &tr.Actor, &tr.Note); err != nil {
			return nil, dbErr(err)
		}
		tr.At = keepwatch.TimeFromMillis(at)
		out = append(out, tr)
	}
	return out, dbErr(rows.Err())
}

// IncidentHistory returns an integrator's incident's transitions.
func (s *Store) IncidentHistory(ctx context.Context, integratorID, id int64) ([]keepwatch.Transition, error) {
	if _, err := s.Incident(ctx, integratorID, id); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT id, incident_id, installation_id, type, at, actor, note FROM incident_events
		WHERE incident_id = ? AND id >= COALESCE((SELECT MAX(id) FROM incident_events WHERE incident_id = ? AND type = ?), 0) ORDER BY id`,
		id, id, keepwatch.TransitionTransferred)
	if err != nil {
		return nil, err
	}
	return scanTransitions(rows)
}
