package store

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strings"
	"time"

	"keepwatch"
)

// installationID returns the id of an installation the integrator holds;
// not_found otherwise (the same answer whether it exists or not).
func (t *Tx) installationID(integratorID int64, slc string) (int64, error) {
	var id int64
	err := t.queryRow(`SELECT id FROM installations WHERE integrator_id = ? AND slc = ?`, integratorID, slc).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound(slc)
	}
	return id, dbErr(err)
}

// AssignIncident assigns one of the integrator's incidents to one of its
// users; userID 0 removes the assignment. It returns the assignee's e-mail
// ("" when unassigned).
func (s *Store) AssignIncident(ctx context.Context, integratorID, incidentID, userID int64, by string) (string, error) {
	var email string
	err := s.tx(ctx, func(t *Tx) error {
		var inst int64
		err := t.queryRow(`SELECT n.installation_id FROM incidents n JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
			WHERE n.id = ? AND i.integrator_id = ?`, incidentID, integratorID).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
		}
		if err != nil {
			return dbErr(err)
		}
		if _, err := t.exec(`DELETE FROM incident_assignments WHERE incident_id = ?`, incidentID); err != nil {
			return err
		}
		if userID == 0 {
			return t.transition(incidentID, inst, keepwatch.TransitionAssigned, s.now(), by, "unassigned")
		}
		err = t.queryRow(`SELECT email FROM users WHERE integrator_id = ? AND id = ?`, integratorID, userID).Scan(&email)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.EINVALID, "no such user in your account")
		}
		if err != nil {
			return dbErr(err)
		}
		if _, err = t.exec(`INSERT INTO incident_assignments (incident_id, user_id, assigned_by, assigned_at) VALUES (?, ?, ?, ?)`,
			incidentID, userID, by, s.now().UnixMilli()); err != nil {
			return err
		}
		return t.transition(incidentID, inst, keepwatch.TransitionAssigned, s.now(), by, "assigned to "+email)
	})
	return email, err
}

// Assignees returns who the integrator's incidents are assigned to, by
// incident id. Incidents without an assignee are absent.
func (s *Store) Assignees(ctx context.Context, integratorID int64, incidentIDs []int64) (map[int64]keepwatch.Assignee, error) {
	out := map[int64]keepwatch.Assignee{}
	for len(incidentIDs) > 0 {
		chunk := incidentIDs[:min(len(incidentIDs), 500)]
		incidentIDs = incidentIDs[len(chunk):]
		args := []any{integratorID}
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.query(ctx, `SELECT a.incident_id, a.user_id, u.email, a.assigned_by, a.assigned_at
			FROM incident_assignments a JOIN users u ON u.id = a.user_id
			JOIN incidents n ON n.id = a.incident_id JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
			WHERE i.integrator_id = ? AND a.incident_id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, at int64
			var a keepwatch.Assignee
			if err := rows.Scan(&id, &a.UserID, &a.Email, &a.By, &at); err != nil {
				rows.Close()
				return nil, dbErr(err)
			}
			a.At = keepwatch.TimeFromMillis(at)
			out[id] = a
		}
		if err := rows.Close(); err != nil {
			return nil, dbErr(err)
		}
	}
	return out, nil
}

// SetMaintenance stores a maintenance window for one of the integrator's
// installations (validated by keepwatch.NewMaintenance).
func (s *Store) SetMaintenance(ctx context.Context, integratorID int64, m keepwatch.MaintenanceWindow) (keepwatch.MaintenanceWindow, error) {
	err := s.tx(ctx, func(t *Tx) error {
		inst, err := t.installationID(integratorID, m.SLC)
		if err != nil {
			return err
		}
		m.ID, err = t.insert(`INSERT INTO maintenance_windows (integrator_id, installation_id, starts_at, ends_at, reason, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, integratorID, inst, m.Start.UnixMilli(), m.End.UnixMilli(), m.Reason, m.CreatedBy, s.now().UnixMilli())
		return err
	})
	return m, err
}

// EndMaintenance ends the running maintenance of an installation at at and
// cancels those scheduled later. It returns how many windows it changed.
func (s *Store) EndMaintenance(ctx context.Context, integratorID int64, slc string, at time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(t *Tx) error {
		inst, err := t.installationID(integratorID, slc)
		if err != nil {
			return err
		}
		r, err := t.exec(`DELETE FROM maintenance_windows WHERE integrator_id = ? AND installation_id = ? AND starts_at > ?`, integratorID, inst, at.UnixMilli())
		if err != nil {
			return err
		}
		n, _ = r.RowsAffected()
		r, err = t.exec(`UPDATE maintenance_windows SET ends_at = ? WHERE integrator_id = ? AND installation_id = ? AND starts_at <= ? AND ends_at > ?`,
			at.UnixMilli(), integratorID, inst, at.UnixMilli(), at.UnixMilli())
		if err != nil {
			return err
		}
		m, _ := r.RowsAffected()
		n += m
		return t.releaseHeld(inst, at)
	})
	return int(n), err
}

const maintenanceCols = `m.id, i.slc, m.starts_at, m.ends_at, m.reason, m.created_by`

func scanMaintenance(rows *sql.Rows) ([]keepwatch.MaintenanceWindow, error) {
	return scanAll(rows, func(r scanner) (keepwatch.MaintenanceWindow, error) { return scanMaintenanceWith(r) })
}

// scanMaintenanceWith reads maintenanceCols after the extra leading
// columns given.
func scanMaintenanceWith(r scanner, extra ...any) (keepwatch.MaintenanceWindow, error) {
	var m keepwatch.MaintenanceWindow
	var start, end int64
	err := r.Scan(append(extra, &m.ID, &m.SLC, &start, &end, &m.Reason, &m.CreatedBy)...)
	m.Start, m.End = keepwatch.TimeFromMillis(start), keepwatch.TimeFromMillis(end)
	return m, err
}

// Maintenance returns an installation's maintenance windows that have not
// ended by at, soonest first.
func (s *Store) Maintenance(ctx context.Context, integratorID int64, slc string, at time.Time) ([]keepwatch.MaintenanceWindow, error) {
	rows, err := s.query(ctx, `SELECT `+maintenanceCols+` FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
		WHERE m.integrator_id = ? AND i.integrator_id = ? AND i.slc = ? AND m.ends_at > ? ORDER BY m.starts_at`,
		integratorID, integratorID, slc, at.UnixMilli())
	if err != nil {
		return nil, err
	}
	return scanMaintenance(rows)
}

// ActiveMaintenance returns the integrator's installations in maintenance at
// at, by SLC (the window that ends last when several overlap).
func (s *Store) ActiveMaintenance(ctx context.Context, integratorID int64, at time.Time) (map[string]keepwatch.MaintenanceWindow, error) {
	rows, err := s.query(ctx, `SELECT `+maintenanceCols+` FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
		WHERE m.integrator_id = ? AND i.integrator_id = ? AND m.starts_at <= ? AND m.ends_at > ?`,
		integratorID, integratorID, at.UnixMilli(), at.UnixMilli())
	if err != nil {
		return nil, err
	}
	ms, err := scanMaintenance(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[string]keepwatch.MaintenanceWindow, len(ms))
	for _, m := range ms {
		if cur, ok := out[m.SLC]; !ok || m.End.After(cur.End) {
			out[m.SLC] = m
		}
	}
	return out, nil
}

// InMaintenance reports whether an installation is muted at at. It is for
// keepwatch's own notification delivery, which works by installation id
// after the integrator was already resolved; a window only counts while the
// integrator that set it still holds the installation.
func (s *Store) InMaintenance(ctx context.Context, installationID int64, at time.Time) (bool, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
		WHERE m.installation_id = ? AND i.integrator_id = m.integrator_id AND m.starts_at <= ? AND m.ends_at > ?`,
		installationID, at.UnixMilli(), at.UnixMilli()).Scan(&n)
	return n > 0, dbErr(err)
}

// Timeline returns the most recent history of one of the integrator's
// installations, newest first: conditions raised and cleared (with server
// availability), events, and incidents acknowledged or resolved by people.
// Only what happened while the integrator held the installation (since
// registered_at) is shown: a new holder of an SLC does not learn its
// earlier holder's history.
func (s *Store) Timeline(ctx context.Context, integratorID int64, slc string, limit int) ([]keepwatch.TimelineEntry, error) {
	var out []keepwatch.TimelineEntry
	read := func(q string, scan func(*sql.Rows) (keepwatch.TimelineEntry, error)) error {
		rows, err := s.query(ctx, q, integratorID, slc, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scan(rows)
			if err != nil {
				return dbErr(err)
			}
			out = append(out, e)
		}
		return dbErr(rows.Err())
	}
	err := read(`SELECT c.at, c.active, s.name, c.kind, c.subject, c.severity
		FROM state_changes c JOIN servers s ON s.id = c.server_id JOIN installations i ON i.id = c.installation_id
		WHERE i.integrator_id = ? AND i.slc = ? AND c.at >= COALESCE(i.registered_at, 0) ORDER BY c.at DESC, c.id DESC LIMIT ?`, func(r *sql.Rows) (keepwatch.TimelineEntry, error) {
		var e keepwatch.TimelineEntry
		var at int64
		var active bool
		var sev string
		err := r.Scan(&at, &active, &e.Server, &e.Kind, &e.Subject, &sev)
		e.At, e.Severity, e.Type = keepwatch.TimeFromMillis(at), keepwatch.Severity(sev), "cleared"
		if active {
			e.Type = "raised"
		}
		return e, err
	})
	if err == nil {
		err = read(`SELECT e.occurred_at, s.name, e.kind, e.subject, e.severity, e.message
			FROM events e JOIN servers s ON s.id = e.server_id JOIN installations i ON i.id = e.installation_id
			WHERE i.integrator_id = ? AND i.slc = ? AND e.occurred_at >= COALESCE(i.registered_at, 0) ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?`, func(r *sql.Rows) (keepwatch.TimelineEntry, error) {
			var e keepwatch.TimelineEntry
			var at int64
			var sev string
			err := r.Scan(&at, &e.Server, &e.Kind, &e.Subject, &sev, &e.Note)
			e.At, e.Severity, e.Type = keepwatch.TimeFromMillis(at), keepwatch.Severity(sev), "event"
			return e, err
		})
	}
	if err == nil {
		err = read(`SELECT n.acked_at, n.acked_by, n.ack_note, n.resolved_at, n.resolved_by, n.resolve_note, COALESCE(s.name, ''), n.kind, n.subject, n.severity
			FROM incidents n LEFT JOIN servers s ON s.id = n.server_id JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
			WHERE i.integrator_id = ? AND i.slc = ? AND (n.acked_at IS NOT NULL OR (n.resolved_at IS NOT NULL AND n.resolved_by <> 'keepwatch'))
			ORDER BY COALESCE(n.resolved_at, n.acked_at) DESC LIMIT ?`, func(r *sql.Rows) (keepwatch.TimelineEntry, error) {
			var e keepwatch.TimelineEntry
			var acked, resolved sql.NullInt64
			var ackBy, ackNote, resBy, resNote, sev string
			err := r.Scan(&acked, &ackBy, &ackNote, &resolved, &resBy, &resNote, &e.Server, &e.Kind, &e.Subject, &sev)
			e.Severity = keepwatch.Severity(sev)
			if acked.Valid {
				a := e
				a.At, a.Type, a.By, a.Note = keepwatch.TimeFromMillis(acked.Int64), "acknowledged", ackBy, ackNote
				if resolved.Valid && resBy != "keepwatch" {
					out = append(out, a)
				} else {
					return a, err
				}
			}
			e.At, e.Type, e.By, e.Note = keepwatch.TimeFromMillis(resolved.Int64), "resolved", resBy, resNote
			return e, err
		})
	}
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AvailabilityHistory returns the availability changes of the servers of
// one of the integrator's installations since it registered the
// installation, oldest first; uptime is computed from it. A server that
// was unavailable when the integrator registered the installation starts
// with a change at the registration; nothing earlier is returned.
func (s *Store) AvailabilityHistory(ctx context.Context, integratorID int64, slc string) ([]keepwatch.Flip, error) {
	rows, err := s.query(ctx, `SELECT c.server_id, c.active, c.at, COALESCE(i.registered_at, 0) FROM state_changes c JOIN installations i ON i.id = c.installation_id
		WHERE i.integrator_id = ? AND i.slc = ? AND c.kind = ? ORDER BY c.at, c.id`, integratorID, slc, keepwatch.KindServerUnavailable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keepwatch.Flip
	before := map[string]bool{} // state at registration, from earlier changes
	var order []string
	var since time.Time
	for rows.Next() {
		var f keepwatch.Flip
		var at, registered int64
		if err := rows.Scan(&f.ServerID, &f.Unavailable, &at, &registered); err != nil {
			return nil, dbErr(err)
		}
		f.At, since = keepwatch.TimeFromMillis(at), keepwatch.TimeFromMillis(registered)
		if at < registered {
			if _, ok := before[f.ServerID]; !ok {
				order = append(order, f.ServerID)
			}
			before[f.ServerID] = f.Unavailable
			continue
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	var carried []keepwatch.Flip
	for _, id := range order {
		if before[id] {
			carried = append(carried, keepwatch.Flip{ServerID: id, Unavailable: true, At: since})
		}
	}
	return append(carried, out...), nil
}

// ConsentWithdrawn counts, per SLC of the integrator's installations, the
// servers whose customer withdrew consent. Installations where every
// server consents are absent.
func (s *Store) ConsentWithdrawn(ctx context.Context, integratorID int64) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT i.slc, COUNT(*) FROM servers s JOIN installations i ON i.id = s.installation_id
		WHERE i.integrator_id = ? AND s.revoked_at IS NULL AND s.consent = 0 GROUP BY i.slc`, integratorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var slc string
		var n int
		if err := rows.Scan(&slc, &n); err != nil {
			return nil, dbErr(err)
		}
		out[slc] = n
	}
	return out, dbErr(rows.Err())
}

// Overview returns the views of all installations registered to an
// integrator, like Installations, for the dashboard's overview. It reads
// installations and their servers in one ordered join instead of two
// scans, which matters for integrators with thousands of installations.
func (s *Store) Overview(ctx context.Context, integratorID int64, now time.Time) ([]keepwatch.InstallationView, error) {
	rows, err := s.query(ctx, `SELECT i.id, i.slc, i.customer, i.product, i.cameras, i.care_plus_until,
			COALESCE(s.id, ''), COALESCE(s.name, ''), COALESCE(s.state, ''), COALESCE(s.state_since, 0), COALESCE(s.last_seen, 0), COALESCE(s.enrolled_at, 0)
		FROM installations i LEFT JOIN servers s ON s.installation_id = i.id AND s.revoked_at IS NULL
		WHERE i.integrator_id = ? ORDER BY i.id, s.name`, integratorID)
	if err != nil {
		return nil, err
	}
	var ins []keepwatch.Installation
	var servers [][]keepwatch.Server
	byServer := map[string][2]int{}
	for rows.Next() {
		var in keepwatch.Installation
		var until, id, name, state string
		var since, seen, enrolled, seq int64
		if err := rows.Scan(&in.ID, &in.SLC, &in.Customer, &in.Product, &in.Cameras, &until, &id, &name, &state, &since, &seen, &enrolled); err != nil {
			rows.Close()
			return nil, dbErr(err)
		}
		if n := len(ins); n == 0 || ins[n-1].ID != in.ID {
			in.CarePlusUntil, _ = keepwatch.ParseDate(until)
			in.IntegratorID = integratorID
			ins = append(ins, in)
			servers = append(servers, nil)
		}
		if id == "" {
			continue
		}
		s.withUnfolded(id, enrolled, &seq, &seen, nil)
		i := len(ins) - 1
		byServer[id] = [2]int{i, len(servers[i])}
		servers[i] = append(servers[i], keepwatch.Server{ID: id, InstallationID: in.ID, Name: name, State: keepwatch.ServerState(state),
			StateSince: keepwatch.TimeFromMillis(since), LastSeen: keepwatch.TimeFromMillis(seen)})
	}
	if err := rows.Close(); err != nil {
		return nil, dbErr(err)
	}
	// Active conditions, and open event incidents, which stay a problem of
	// their installation until resolved.
	crows, err := s.query(ctx, `SELECT c.server_id, c.kind, c.subject, c.severity, c.since, c.message, 0
		FROM conditions c JOIN servers s ON s.id = c.server_id JOIN installations i ON i.id = s.installation_id
		WHERE i.integrator_id = ? AND s.revoked_at IS NULL
		UNION ALL
		SELECT n.server_id, n.kind, n.subject, n.severity, n.opened_at, '', 1
		FROM incidents n JOIN servers s ON s.id = n.server_id JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
		WHERE i.integrator_id = ? AND s.revoked_at IS NULL AND n.is_event = 1 AND n.state <> 'resolved'
		ORDER BY 5`, integratorID, integratorID)
	if err != nil {
		return nil, err
	}
	if err := scanConditions(crows, func(id string, c keepwatch.Condition) {
		if at, ok := byServer[id]; ok {
			sv := &servers[at[0]][at[1]]
			c.Server = sv.Name
			sv.Conditions = append(sv.Conditions, c)
		}
	}); err != nil {
		return nil, err
	}
	return s.summarize(ctx, integratorID, "", ins, servers, now)
}
