package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

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
	return s.changeIncident(ctx, integratorID, id, keepwatch.TransitionAcknowledged, by, note, func(_ *Tx, _ int64, n *keepwatch.Incident, at time.Time) error {
		return n.Acknowledge(by, note, at)
	})
}

// ResolveIncident resolves an open or acknowledged incident by hand; a
// state incident whose condition is still reported is refused
// (keepwatch.Incident.Resolve).
func (s *Store) ResolveIncident(ctx context.Context, integratorID, id int64, by, note string) (keepwatch.Incident, error) {
	return s.changeIncident(ctx, integratorID, id, keepwatch.TransitionResolved, by, note, func(t *Tx, inst int64, n *keepwatch.Incident, at time.Time) error {
		reported, err := t.stillReported(inst, n)
		if err != nil {
			return err
		}
		return n.Resolve(by, note, at, reported)
	})
}

// changeIncident applies a person's change to one of the integrator's
// incidents: it reads the incident, lets change decide, and writes it
// compare-and-set on its state with its history row.
func (s *Store) changeIncident(ctx context.Context, integratorID, id int64, typ keepwatch.TransitionType, actor, note string,
	change func(t *Tx, installationID int64, n *keepwatch.Incident, at time.Time) error) (keepwatch.Incident, error) {
	var out keepwatch.Incident
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
		n, err := t.findIncident(`n.id = ?`, id)
		if err != nil {
			return err
		}
		before, at := n.State, s.now()
		if err := change(t, inst, n, at); err != nil {
			return err
		}
		if err := t.saveIncident(before, *n); err != nil {
			return err
		}
		if err := t.transition(id, inst, typ, at, actor, note); err != nil {
			return err
		}
		out, err = scanIncident(t.queryRow(`SELECT `+incidentCols+incidentFrom+` WHERE n.id = ?`, id))
		return dbErr(err)
	})
	return out, err
}
