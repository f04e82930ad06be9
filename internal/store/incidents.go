package store

import (
	"context"
	"database/sql"
	"errors"

	"keepwatch"
)

const incidentCols = `n.id, i.slc, i.customer, COALESCE(s.name, ''), COALESCE(s.id, ''), n.kind, n.subject, n.severity, n.is_event, n.state, n.opened_at, n.last_at, n.count,
	n.acked_at, n.acked_by, n.ack_note, n.resolved_at, n.resolved_by, n.resolve_note, n.parent_id, n.annotation`

const incidentFrom = ` FROM incidents n JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id LEFT JOIN servers s ON s.id = n.server_id`

// Incidents lists an integrator's incidents in a state ("" for open and
// acknowledged), newest first, at most limit.
func (s *Store) Incidents(ctx context.Context, integratorID int64, state keepwatch.IncidentState, limit int) ([]keepwatch.Incident, error) {
	cond, args := ` AND n.state <> 'resolved'`, []any{integratorID}
	if state != "" {
		cond, args = ` AND n.state = ?`, append(args, string(state))
	}
	args = append(args, limit)
	rows, err := s.query(ctx, `SELECT `+incidentCols+incidentFrom+` WHERE i.integrator_id = ?`+cond+` ORDER BY n.opened_at DESC, n.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scanIncident)
}

type scanner interface{ Scan(...any) error }

func scanIncident(r scanner) (keepwatch.Incident, error) {
	var n keepwatch.Incident
	var sev, state string
	var opened, last int64
	var event bool
	var acked, resolved, parent sql.NullInt64
	err := r.Scan(&n.ID, &n.SLC, &n.Customer, &n.Server, &n.ServerID, &n.Kind, &n.Subject, &sev, &event, &state, &opened, &last, &n.Count,
		&acked, &n.AckedBy, &n.AckNote, &resolved, &n.ResolvedBy, &n.ResolveNote, &parent, &n.Annotation)
	if err != nil {
		return n, err
	}
	n.Severity, n.State, n.Event = keepwatch.Severity(sev), keepwatch.IncidentState(state), event
	n.OpenedAt, n.LastAt = keepwatch.TimeFromMillis(opened), keepwatch.TimeFromMillis(last)
	if acked.Valid {
		t := keepwatch.TimeFromMillis(acked.Int64)
		n.AckedAt = &t
	}
	if parent.Valid {
		n.ParentID = &parent.Int64
	}
	if resolved.Valid {
		t := keepwatch.TimeFromMillis(resolved.Int64)
		n.ResolvedAt = &t
	}
	return n, nil
}

// Incident returns one of an integrator's incidents.
func (s *Store) Incident(ctx context.Context, integratorID, id int64) (keepwatch.Incident, error) {
	n, err := scanIncident(s.queryRow(ctx, `SELECT `+incidentCols+incidentFrom+` WHERE i.integrator_id = ? AND n.id = ?`, integratorID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return n, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
	}
	return n, dbErr(err)
}

// AckIncident acknowledges an open incident.
func (s *Store) AckIncident(ctx context.Context, integratorID, id int64, by, note string) (keepwatch.Incident, error) {
	return s.transitionIncident(ctx, integratorID, id,
		`UPDATE incidents SET state = 'acknowledged', acked_at = ?, acked_by = ?, ack_note = ? WHERE id = ? AND state = 'open'`,
		[]any{s.now().UnixMilli(), by, note, id}, "only an open incident can be acknowledged", keepwatch.TransitionAcknowledged, by, note)
}

// ResolveIncident resolves an open or acknowledged incident by hand.
func (s *Store) ResolveIncident(ctx context.Context, integratorID, id int64, by, note string) (keepwatch.Incident, error) {
	return s.transitionIncident(ctx, integratorID, id,
		`UPDATE incidents SET state = 'resolved', resolved_at = ?, resolved_by = ?, resolve_note = ? WHERE id = ? AND state <> 'resolved'`,
		[]any{s.now().UnixMilli(), by, note, id}, "the incident is already resolved", keepwatch.TransitionResolved, by, note)
}

// transitionIncident checks that the incident belongs to the integrator,
// then applies update compare-and-set on its state.
func (s *Store) transitionIncident(ctx context.Context, integratorID, id int64, update string, args []any, conflict string, typ keepwatch.TransitionType, actor, note string) (keepwatch.Incident, error) {
	var n keepwatch.Incident
	err := s.tx(ctx, func(t *Tx) error {
		var inst int64
		err := t.queryRow(`SELECT n.installation_id FROM incidents n JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
			WHERE n.id = ? AND i.integrator_id = ?`, id, integratorID).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
		}
		if err != nil {
			return dbErr(err)
		}
		r, err := t.exec(update, args...)
		if err != nil {
			return err
		}
		if c, _ := r.RowsAffected(); c == 0 {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "%s", conflict)
		}
		if err := t.transition(id, inst, typ, s.now(), actor, note); err != nil {
			return err
		}
		n, err = scanIncident(t.queryRow(`SELECT `+incidentCols+incidentFrom+` WHERE n.id = ?`, id))
		return dbErr(err)
	})
	return n, err
}
