package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// A server's flood (keepwatch.FloodPolicy) is kept in what it produces:
// its flood condition (origin keepwatch) says a flood is active and since
// when; its flood incident's last_at, moved by every report that had
// raises held back, says when the caps were last exceeded.

var floodKinds = []string{keepwatch.KindFlood}

// openIncidents counts a server's unresolved incidents, its flood's own
// aside.
func (t *Tx) openIncidents(serverID string) (int, error) {
	var n int
	err := t.queryRow(`SELECT COUNT(*) FROM incidents WHERE server_id = ? AND state <> 'resolved' AND kind <> ?`, serverID, keepwatch.KindFlood).Scan(&n)
	return n, dbErr(err)
}

// floodLast reports whether a server's flood is active and when its caps
// were last exceeded.
func (t *Tx) floodLast(info serverInfo) (bool, time.Time, error) {
	var since int64
	err := t.queryRow(`SELECT since FROM conditions WHERE server_id = ? AND kind = ? AND subject = ''`, info.id, keepwatch.KindFlood).Scan(&since)
	if errors.Is(err, sql.ErrNoRows) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, dbErr(err)
	}
	last := keepwatch.TimeFromMillis(since)
	n, err := t.findIncident(`n.server_id = ? AND n.kind = ? AND n.subject = '' AND n.state <> 'resolved'`, info.id, keepwatch.KindFlood)
	if err != nil {
		return false, time.Time{}, err
	}
	if n != nil && n.LastAt.After(last) {
		last = n.LastAt
	}
	return true, last, nil
}

// flood raises a server's one flood warning when a report had raises held
// back (or counts the excess on it when it is active), and clears it once
// the server stayed under its caps for the calm period.
func (t *Tx) flood(info serverInfo, gate *keepwatch.FloodGate, at time.Time, out *keepwatch.Applied) error {
	active, last, err := t.floodLast(info)
	if err != nil {
		return err
	}
	if gate != nil && gate.Held > 0 {
		cond := t.s.Flood.FloodCondition(gate.Held, at)
		if err := t.replaceConditions(info, originKeepwatch, floodKinds, []keepwatch.Condition{cond}, at, out, nil); err != nil {
			return err
		}
		if active {
			_, err := t.raise(info, keepwatch.KindFlood, "", keepwatch.SeverityWarning, false, at, nil)
			return err
		}
		return nil
	}
	if !active {
		return nil
	}
	return t.clearCalmFlood(info, last, at, out)
}

// clearCalmFlood clears a server's active flood whose caps were last
// exceeded at last, if it calmed down by now.
func (t *Tx) clearCalmFlood(info serverInfo, last, now time.Time, out *keepwatch.Applied) error {
	open, err := t.openIncidents(info.id)
	if err != nil {
		return err
	}
	if !t.s.Flood.Calmed(last, open, now) {
		return nil
	}
	return t.replaceConditions(info, originKeepwatch, floodKinds, nil, now, out, nil)
}

// clearCalmFloods clears the floods of servers that stayed under their
// caps for the calm period without reporting since (a report clears its
// server's own). Each server in a transaction of its own, locked as a
// report locks it.
func (s *Store) clearCalmFloods(ctx context.Context, now time.Time) (int, error) {
	rows, err := s.query(ctx, `SELECT n.server_id FROM incidents n
		WHERE n.state <> 'resolved' AND n.is_event = 0 AND n.kind = ? AND n.last_at < ?`,
		keepwatch.KindFlood, now.Add(-s.Flood.CalmPeriod()).UnixMilli())
	if err != nil {
		return 0, err
	}
	ids, err := scanAll(rows, func(r scanner) (string, error) {
		var id sql.NullString
		err := r.Scan(&id)
		return id.String, err
	})
	if err != nil {
		return 0, err
	}
	cleared := 0
	for _, id := range ids {
		if id == "" {
			continue
		}
		err := s.tx(ctx, func(t *Tx) error {
			info, err := t.serverInfo(id)
			if err != nil {
				return err
			}
			active, last, err := t.floodLast(info)
			if err != nil || !active {
				return err
			}
			var out keepwatch.Applied
			if err := t.clearCalmFlood(info, last, now, &out); err != nil {
				return err
			}
			if len(out.Changes) > 0 {
				cleared++
			}
			return nil
		})
		if err != nil {
			return cleared, err
		}
	}
	return cleared, nil
}
