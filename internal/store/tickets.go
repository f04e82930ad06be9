package store

import (
	"context"
	"database/sql"
	"errors"

	"keepwatch"
)

// IncidentTicket returns the ticket a channel of the integrator opened for
// an incident, or a not_found error.
func (s *Store) IncidentTicket(ctx context.Context, integratorID, channelID, incidentID int64) (string, error) {
	var id string
	err := s.queryRow(ctx, `SELECT t.ticket_id FROM incident_tickets t JOIN channels c ON c.id = t.channel_id
		WHERE c.integrator_id = ? AND t.channel_id = ? AND t.incident_id = ?`, integratorID, channelID, incidentID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", keepwatch.Errorf(keepwatch.ENOTFOUND, "no ticket for this incident")
	}
	return id, err
}

// SetIncidentTicket keeps the ticket a channel opened for an incident
// (replacing an earlier one: a reopened incident gets a new ticket).
func (s *Store) SetIncidentTicket(ctx context.Context, integratorID, channelID, incidentID int64, ticketID string) error {
	return s.tx(ctx, func(t *Tx) error {
		var n int
		if err := t.queryRow(`SELECT COUNT(*) FROM channels WHERE id = ? AND integrator_id = ?`, channelID, integratorID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such channel in your account")
		}
		_, err := t.exec(`INSERT INTO incident_tickets (channel_id, incident_id, ticket_id, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (channel_id, incident_id) DO UPDATE SET ticket_id = excluded.ticket_id, created_at = excluded.created_at`,
			channelID, incidentID, ticketID, s.now().UnixMilli())
		return err
	})
}
