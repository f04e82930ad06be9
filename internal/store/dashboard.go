package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"time"

	"keepwatch"
	"keepwatch/internal/sealed"
)

// What the dashboard and the API read beyond the overview: whether an
// incident's condition is still reported, an incident's notifications,
// how far an integrator's history of an installation reaches, scheduled
// maintenance, and the one-time flashes of the dashboard's forms.

type rowQuerier func(query string, args ...any) *sql.Row

// reported tells whether an unresolved incident's condition is still
// reported: a state condition its server still has (a server whose
// customer withdrew consent, or a removed one, reports nothing), a
// server still unavailable, a site whose servers are still silent.
// Events are never "reported": a person resolves them.
func reported(q rowQuerier, installationID int64, serverID, kind, subject string, event bool) (bool, error) {
	if event {
		return false, nil
	}
	var n int
	var err error
	switch kind {
	case keepwatch.KindSiteUnreachable:
		err = q(`SELECT COUNT(*) FROM servers WHERE installation_id = ? AND revoked_at IS NULL AND state = 'unavailable'`, installationID).Scan(&n)
	case keepwatch.KindServerUnavailable:
		err = q(`SELECT COUNT(*) FROM servers WHERE id = ? AND revoked_at IS NULL AND state = 'unavailable'`, serverID).Scan(&n)
	default:
		err = q(`SELECT COUNT(*) FROM conditions c JOIN servers s ON s.id = c.server_id
			WHERE c.server_id = ? AND c.kind = ? AND c.subject = ? AND s.revoked_at IS NULL AND s.state <> 'consent_withdrawn'`,
			serverID, kind, subject).Scan(&n)
	}
	return n > 0, dbErr(err)
}

// stillReported is reported for an incident read in this transaction.
func (t *Tx) stillReported(installationID int64, n *keepwatch.Incident) (bool, error) {
	return reported(t.queryRow, installationID, n.ServerID, n.Kind, n.Subject, n.Event)
}

// IncidentReported tells whether one of the integrator's incidents is
// unresolved and its condition still reported: then only keepwatch
// resolves it, when the condition clears.
func (s *Store) IncidentReported(ctx context.Context, integratorID, id int64) (bool, error) {
	var inst int64
	var server, kind, subject, state string
	var event bool
	err := s.queryRow(ctx, `SELECT n.installation_id, COALESCE(n.server_id, ''), n.kind, n.subject, n.is_event, n.state
		FROM incidents n JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
		WHERE i.integrator_id = ? AND n.id = ?`, integratorID, id).Scan(&inst, &server, &kind, &subject, &event, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return false, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
	}
	if err != nil || state == string(keepwatch.IncidentResolved) {
		return false, dbErr(err)
	}
	return reported(func(q string, args ...any) *sql.Row { return s.queryRow(ctx, q, args...) }, inst, server, kind, subject, event)
}

// IncidentNotifications returns the notifications about one of the
// integrator's incidents, oldest first; not_found for anyone else's.
func (s *Store) IncidentNotifications(ctx context.Context, integratorID, incidentID int64) ([]keepwatch.Notification, error) {
	if _, err := s.Incident(ctx, integratorID, incidentID); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT `+notificationCols+` FROM notifications WHERE integrator_id = ? AND incident_id = ? ORDER BY id`, integratorID, incidentID)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scanNotification)
}

// RegisteredAt is when the integrator registered one of its
// installations: its history of it, and its uptime, start there.
func (s *Store) RegisteredAt(ctx context.Context, integratorID int64, slc string) (time.Time, error) {
	var at sql.NullInt64
	err := s.queryRow(ctx, `SELECT registered_at FROM installations WHERE integrator_id = ? AND slc = ?`, integratorID, slc).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, notFound(slc)
	}
	return keepwatch.TimeFromMillis(at.Int64), dbErr(err)
}

// UpcomingMaintenance returns, by SLC, the next maintenance window of
// each of the integrator's installations that starts after at.
func (s *Store) UpcomingMaintenance(ctx context.Context, integratorID int64, at time.Time) (map[string]keepwatch.MaintenanceWindow, error) {
	rows, err := s.query(ctx, `SELECT `+maintenanceCols+` FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
		WHERE m.integrator_id = ? AND i.integrator_id = ? AND m.starts_at > ? ORDER BY m.starts_at`, integratorID, integratorID, at.UnixMilli())
	if err != nil {
		return nil, err
	}
	ms, err := scanMaintenance(rows)
	if err != nil {
		return nil, err
	}
	out := map[string]keepwatch.MaintenanceWindow{}
	for _, m := range ms {
		if _, ok := out[m.SLC]; !ok {
			out[m.SLC] = m
		}
	}
	return out, nil
}

// StopMaintenance stops one maintenance window of one of the integrator's
// installations at at, as keepwatch.MaintenanceWindow.Stop decides: a
// scheduled window is cancelled (deleted), a running one ends at at.
func (s *Store) StopMaintenance(ctx context.Context, integratorID int64, slc string, id int64, at time.Time) (m keepwatch.MaintenanceWindow, cancelled bool, err error) {
	err = s.tx(ctx, func(t *Tx) error {
		inst, err := t.installationID(integratorID, slc)
		if err != nil {
			return err
		}
		cur, err := scanMaintenanceWith(t.queryRow(`SELECT `+maintenanceCols+` FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
			WHERE m.id = ? AND m.integrator_id = ? AND m.installation_id = ?`+t.s.forUpdate(), id, integratorID, inst))
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such maintenance window")
		}
		if err != nil {
			return dbErr(err)
		}
		if m, cancelled, err = cur.Stop(at); err != nil {
			return err
		}
		if cancelled {
			_, err = t.exec(`DELETE FROM maintenance_windows WHERE id = ? AND starts_at = ?`, id, cur.Start.UnixMilli())
		} else {
			if _, err = t.exec(`UPDATE maintenance_windows SET ends_at = ? WHERE id = ? AND ends_at = ?`, m.End.UnixMilli(), id, cur.End.UnixMilli()); err == nil {
				err = t.releaseHeld(inst, m.End)
			}
		}
		return err
	})
	return m, cancelled, err
}

func flashAD(sessionHash []byte, name string) string {
	return "session_flashes.value:" + hex.EncodeToString(sessionHash) + ":" + name
}

// PutFlash keeps a value for the session to read once, until expires.
// Expired flashes of every session are removed on the way.
func (s *Store) PutFlash(ctx context.Context, sessionHash []byte, name, value string, expires time.Time) error {
	if s.keys != nil {
		value = s.keys.SealString(value, flashAD(sessionHash, name))
	}
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM session_flashes WHERE expires_at <= ?`, s.now().UnixMilli()); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO session_flashes (session_hash, name, value, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (session_hash, name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
			sessionHash, name, value, expires.UnixMilli())
		return err
	})
}

// TakeFlash returns and deletes the session's flash of that name; "" if
// there is none or it expired.
func (s *Store) TakeFlash(ctx context.Context, sessionHash []byte, name string) (string, error) {
	var value string
	var expires int64
	err := s.tx(ctx, func(t *Tx) error {
		err := t.queryRow(`DELETE FROM session_flashes WHERE session_hash = ? AND name = ? RETURNING value, expires_at`, sessionHash, name).
			Scan(&value, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return dbErr(err)
	})
	if err != nil || value == "" || expires <= s.now().UnixMilli() {
		return "", err
	}
	if sealed.IsSealedString(value) {
		if s.keys == nil {
			return "", errNoKeyring
		}
		return s.keys.OpenString(value, flashAD(sessionHash, name))
	}
	return value, nil
}
