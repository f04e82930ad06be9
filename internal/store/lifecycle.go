package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"keepwatch"
)

// DefaultReopenWindow is how soon after its resolution a recurring
// condition reopens its incident instead of opening a new one.
const DefaultReopenWindow = time.Hour

func (s *Store) reopenWindow() time.Duration {
	if s.ReopenWindow > 0 {
		return s.ReopenWindow
	}
	return DefaultReopenWindow
}

// transition writes one incident history row.
func (t *Tx) transition(incidentID, installationID int64, typ keepwatch.TransitionType, at time.Time, actor, note string) error {
	_, err := t.exec(`INSERT INTO incident_events (incident_id, installation_id, type, at, actor, note) VALUES (?, ?, ?, ?, ?, ?)`,
		incidentID, installationID, string(typ), at.UnixMilli(), actor, note)
	return err
}

// openIncident opens an incident for (server, kind, subject). An event
// that recurs while its incident is open counts on it; a condition that
// comes back soon after its incident was resolved reopens it.
func (t *Tx) openIncident(info serverInfo, kind, subject string, sev keepwatch.Severity, event bool, at time.Time) (int64, error) {
	ms := at.UnixMilli()
	var id int64
	err := t.queryRow(`UPDATE incidents SET count = count + 1, last_at = CASE WHEN last_at < ? THEN ? ELSE last_at END
		WHERE server_id = ? AND kind = ? AND subject = ? AND state <> 'resolved' RETURNING id`, ms, ms, info.id, kind, subject).Scan(&id)
	if err == nil {
		return id, t.transition(id, info.installationID, keepwatch.TransitionRecurred, at, "", "")
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, dbErr(err)
	}
	since := at.Add(-t.s.reopenWindow()).UnixMilli()
	err = t.queryRow(`UPDATE incidents SET state = 'open', count = count + 1, last_at = ?, resolved_at = NULL, resolved_by = '', resolve_note = '',
			acked_at = NULL, acked_by = '', ack_note = '', parent_id = NULL
		WHERE id = (SELECT id FROM incidents WHERE server_id = ? AND kind = ? AND subject = ? AND state = 'resolved' AND resolved_at >= ?
			AND COALESCE(integrator_id, 0) = ? ORDER BY resolved_at DESC LIMIT 1) RETURNING id`, ms, info.id, kind, subject, since, info.integratorID).Scan(&id)
	if err == nil {
		return id, t.transition(id, info.installationID, keepwatch.TransitionReopened, at, "", "")
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, dbErr(err)
	}
	ev := 0
	if event {
		ev = 1
	}
	id, err = t.insert(`INSERT INTO incidents (installation_id, integrator_id, server_id, kind, subject, severity, is_event, state, opened_at, last_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)`, info.installationID, nullable(info.integratorID), info.id, kind, subject, string(sev), ev, ms, ms)
	if err != nil {
		return 0, err
	}
	return id, t.transition(id, info.installationID, keepwatch.TransitionOpened, at, "", "")
}

// resolveIncident resolves the open incident of a cleared condition.
func (t *Tx) resolveIncident(info serverInfo, kind, subject string, at time.Time) error {
	var id int64
	err := t.queryRow(`UPDATE incidents SET state = 'resolved', resolved_at = ?, resolved_by = 'keepwatch'
		WHERE server_id = ? AND kind = ? AND subject = ? AND state <> 'resolved' RETURNING id`, at.UnixMilli(), info.id, kind, subject).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return dbErr(err)
	}
	return t.transition(id, info.installationID, keepwatch.TransitionResolved, at, "keepwatch", "")
}

// groupSite checks, after a server went unavailable, whether every
// monitored server of its installation went unavailable within window. If
// so (and there are at least two), one site_unreachable incident speaks
// for them: the servers' own incidents point to it and are not notified.
func (t *Tx) groupSite(info serverInfo, at time.Time, window time.Duration) error {
	var total, down int
	var first sql.NullInt64
	err := t.queryRow(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'unavailable' THEN 1 ELSE 0 END), 0),
			MIN(CASE WHEN state = 'unavailable' THEN state_since END)
		FROM servers WHERE installation_id = ? AND revoked_at IS NULL AND state IN ('ok', 'unavailable')`, info.installationID).Scan(&total, &down, &first)
	if err != nil {
		return dbErr(err)
	}
	if total < 2 || down < total || at.UnixMilli()-first.Int64 > window.Milliseconds() {
		return nil
	}
	var site int64
	err = t.queryRow(`SELECT id FROM incidents WHERE installation_id = ? AND kind = ? AND state <> 'resolved'`, info.installationID, keepwatch.KindSiteUnreachable).Scan(&site)
	if errors.Is(err, sql.ErrNoRows) {
		opened := time.UnixMilli(first.Int64)
		site, err = t.insert(`INSERT INTO incidents (installation_id, integrator_id, server_id, kind, subject, severity, is_event, state, opened_at, last_at, count)
			VALUES (?, ?, NULL, ?, '', 'error', 0, 'open', ?, ?, ?)`, info.installationID, nullable(info.integratorID), keepwatch.KindSiteUnreachable, first.Int64, at.UnixMilli(), total)
		if err != nil {
			return err
		}
		note := fmt.Sprintf("all %d servers stopped reporting within %s: the site's Internet link, or its power, is the likely cause", total, window)
		if err := t.transition(site, info.installationID, keepwatch.TransitionOpened, opened, "keepwatch", note); err != nil {
			return err
		}
	} else if err != nil {
		return dbErr(err)
	}
	_, err = t.exec(`UPDATE incidents SET parent_id = ? WHERE installation_id = ? AND kind = ? AND state <> 'resolved' AND parent_id IS NULL`,
		site, info.installationID, keepwatch.KindServerUnavailable)
	return err
}

// serverBack records a server that reports again after it was declared
// unavailable: its incident resolves; if the report sat in the agent's
// spool (recorded at least an interval before it arrived), the server was
// running and the outage is annotated as a lost connection; the site
// incident resolves once none of its servers is still unavailable.
func (t *Tx) serverBack(info serverInfo, r keepwatch.Report, at time.Time) error {
	var site sql.NullInt64
	err := t.queryRow(`SELECT id FROM incidents WHERE installation_id = ? AND kind = ? AND state <> 'resolved'`, info.installationID, keepwatch.KindSiteUnreachable).Scan(&site)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return dbErr(err)
	}
	if !r.RecordedAt.IsZero() && r.RecordedAt.Before(at.Add(-r.Interval)) {
		note := fmt.Sprintf("server was running; connection lost from %s to %s",
			time.UnixMilli(info.lastSeen).UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		target := site.Int64
		if !site.Valid {
			if err := t.queryRow(`SELECT id FROM incidents WHERE server_id = ? AND kind = ? AND state <> 'resolved'`,
				info.id, keepwatch.KindServerUnavailable).Scan(&target); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return dbErr(err)
			}
		}
		if target != 0 {
			r, err := t.exec(`UPDATE incidents SET annotation = ? WHERE id = ? AND annotation = ''`, note, target)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n > 0 {
				if err := t.transition(target, info.installationID, keepwatch.TransitionAnnotated, at, "keepwatch", note); err != nil {
					return err
				}
			}
		}
	}
	if err := t.resolveIncident(info, keepwatch.KindServerUnavailable, "", at); err != nil {
		return err
	}
	if !site.Valid {
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
	if _, err := t.exec(`UPDATE incidents SET state = 'resolved', resolved_at = ?, resolved_by = 'keepwatch' WHERE id = ?`, at.UnixMilli(), site.Int64); err != nil {
		return err
	}
	return t.transition(site.Int64, info.installationID, keepwatch.TransitionResolved, at, "keepwatch", "")
}

// ResolveQuietEvents resolves event incidents that have not recurred for
// quiet, and returns how many.
func (s *Store) ResolveQuietEvents(ctx context.Context, quiet time.Duration, now time.Time) (int, error) {
	n := 0
	err := s.tx(ctx, func(t *Tx) error {
		n = 0
		rows, err := t.query(`UPDATE incidents SET state = 'resolved', resolved_at = ?, resolved_by = 'keepwatch', resolve_note = ?
			WHERE is_event = 1 AND state <> 'resolved' AND last_at < ? RETURNING id, installation_id`,
			now.UnixMilli(), quietNote(quiet), now.Add(-quiet).UnixMilli())
		if err != nil {
			return err
		}
		type pair struct{ id, inst int64 }
		var done []pair
		for rows.Next() {
			var p pair
			if err := rows.Scan(&p.id, &p.inst); err != nil {
				rows.Close()
				return dbErr(err)
			}
			done = append(done, p)
		}
		if err := rows.Close(); err != nil {
			return dbErr(err)
		}
		for _, p := range done {
			if err := t.transition(p.id, p.inst, keepwatch.TransitionResolved, now, "keepwatch", quietNote(quiet)); err != nil {
				return err
			}
		}
		n = len(done)
		return nil
	})
	return n, err
}

// TransitionsAfter returns up to limit transitions with id > after, in id
// order (the notifier's feed; operator-level, not tenant-scoped).
func (s *Store) TransitionsAfter(ctx context.Context, after int64, limit int) ([]keepwatch.Transition, error) {
	rows, err := s.query(ctx, `SELECT id, incident_id, installation_id, type, at, actor, note FROM incident_events WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	return scanTransitions(rows)
}

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

// quietNote says why an event incident resolved by itself ("no recurrence
// for 24h").
func quietNote(quiet time.Duration) string {
	d := quiet.Round(time.Minute).String()
	d = strings.TrimSuffix(d, "0s")
	d = strings.TrimSuffix(d, "0m")
	return "no recurrence for " + d
}
