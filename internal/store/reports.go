package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"keepwatch"
)

// ApplyReport stores a report durably in one transaction: liveness,
// condition changes (with history rows and incidents), events and consent.
// It refuses a sequence number that is not above the last stored one.
func (s *Store) ApplyReport(ctx context.Context, r keepwatch.Report) (keepwatch.Applied, error) {
	var out keepwatch.Applied
	err := s.tx(ctx, func(t *Tx) error {
		out = keepwatch.Applied{}
		info, err := t.serverInfo(r.ServerID)
		if err != nil {
			return err
		}
		if info.revoked {
			return keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this server was revoked")
		}
		if r.Seq <= info.lastSeq {
			return keepwatch.Errorf(keepwatch.EREPLAYED, "sequence number %d already seen", r.Seq)
		}
		at := r.ReceivedAt
		if r.Delayed {
			// Recorded, but no sign of life: neither last_seen nor the
			// state moves.
			if _, err := t.exec(`UPDATE servers SET last_seq = ? WHERE id = ?`, int64(r.Seq), r.ServerID); err != nil {
				return err
			}
			if err := t.applyRaises(info, keepwatch.Report{Events: r.Events, HeldEvents: r.HeldEvents}, at, &out); err != nil {
				return err
			}
			out.State = info.state
			return nil
		}
		if r.Status && r.StatusSeq > 0 {
			if _, err := t.exec(`UPDATE servers SET status_seq = ? WHERE id = ?`, int64(r.StatusSeq), r.ServerID); err != nil {
				return err
			}
		}
		state := info.state
		if r.Consent != nil && !*r.Consent {
			state = keepwatch.ServerConsentWithdrawn
		} else if state != keepwatch.ServerOK {
			state = keepwatch.ServerOK
		}
		consent := 1
		if state == keepwatch.ServerConsentWithdrawn {
			consent = 0
		}
		stateSince := "state_since"
		args := []any{at.UnixMilli(), at.UnixMilli(), int64(r.Seq), r.AgentVersion, r.Interval.Milliseconds(), string(state), consent}
		if state != info.state {
			stateSince = "?"
			args = append(args, at.UnixMilli())
		}
		args = append(args, r.ServerID)
		if r.ClockOffset != nil {
			if _, err := t.exec(`UPDATE servers SET clock_offset_ms = ? WHERE id = ?`, r.ClockOffset.Milliseconds(), r.ServerID); err != nil {
				return err
			}
		}
		if _, err := t.exec(`UPDATE servers SET last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END, last_seq = ?, agent_version = COALESCE(NULLIF(?, ''), agent_version),
			interval_ms = ?, state = ?, consent = ?, state_since = `+stateSince+` WHERE id = ?`, args...); err != nil {
			return err
		}
		if state != info.state {
			// Other nodes take a server's state from the store: let them
			// see the change on their next reload.
			if err := t.bumpServerRev(info.id); err != nil {
				return err
			}
		}
		if info.state == keepwatch.ServerUnavailable && state != keepwatch.ServerUnavailable {
			out.Changes = append(out.Changes, info.change(keepwatch.KindServerUnavailable, "", false, at))
			if err := t.recordChange(info, keepwatch.KindServerUnavailable, "", keepwatch.SeverityError, false, at); err != nil {
				return err
			}
			if err := t.serverBack(info, r, at); err != nil {
				return err
			}
		}
		// A report that withdraws consent applies nothing but the
		// withdrawal: neither its conditions nor its events.
		if state == keepwatch.ServerOK {
			if err := t.applyRaises(info, r, at, &out); err != nil {
				return err
			}
		}
		if len(r.Drives) > 0 && state == keepwatch.ServerOK {
			if err := t.storeDrives(info, r.Drives); err != nil {
				return err
			}
		}
		if state != info.state && state == keepwatch.ServerConsentWithdrawn {
			out.Changes = append(out.Changes, info.change("consent_withdrawn", "", true, at))
		}
		out.State = state
		return nil
	})
	return out, err
}

// applyRaises applies what a report raises: the status report's
// conditions replace those the server's agent reported before, and its
// events are recorded and counted on incidents, within the server's flood
// caps; then the server's flood warning is raised or cleared.
func (t *Tx) applyRaises(info serverInfo, r keepwatch.Report, at time.Time, out *keepwatch.Applied) error {
	var gate *keepwatch.FloodGate
	if r.Status || len(r.Events) > 0 || len(r.HeldEvents) > 0 {
		open, err := t.openIncidents(info.id)
		if err != nil {
			return err
		}
		gate = t.s.Flood.Gate(open, len(r.HeldEvents))
	}
	if r.Status {
		if err := t.replaceConditions(info, originAgent, nil, r.Conditions, at, out, gate); err != nil {
			return err
		}
	}
	record := func(e keepwatch.Event) error {
		_, err := t.exec(`INSERT INTO events (installation_id, server_id, kind, subject, severity, message, occurred_at, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, info.installationID, info.id, e.Kind, e.Subject, string(e.Severity), e.Message, e.At.UnixMilli(), at.UnixMilli())
		return err
	}
	for _, e := range r.Events {
		if err := record(e); err != nil {
			return err
		}
		id, err := t.raise(info, e.Kind, e.Subject, e.Severity, true, e.At, gate)
		if err != nil {
			return err
		}
		if id != 0 {
			out.Changes = append(out.Changes, info.change(e.Kind, e.Subject, true, e.At))
		}
	}
	for _, e := range r.HeldEvents {
		if err := record(e); err != nil {
			return err
		}
	}
	return t.flood(info, gate, at, out)
}

// Condition origins: what the agent reports, and what keepwatch decides.
const (
	originAgent     = "agent"
	originKeepwatch = "keepwatch"
)

// replaceConditions replaces the server's active conditions of one origin
// (and, when kinds is given, of those kinds only) by the set given,
// recording what was raised and cleared, opening and resolving incidents
// (those to open within gate, when given). A condition in both keeps its
// start and takes the new message and severity.
func (t *Tx) replaceConditions(info serverInfo, origin string, kinds []string, reported []keepwatch.Condition, at time.Time, out *keepwatch.Applied, gate *keepwatch.FloodGate) error {
	rows, err := t.query(`SELECT kind, subject, severity, message FROM conditions WHERE server_id = ? AND origin = ?`, info.id, origin)
	if err != nil {
		return err
	}
	active, err := scanAll(rows, func(r scanner) (keepwatch.Condition, error) {
		var c keepwatch.Condition
		var sev string
		err := r.Scan(&c.Kind, &c.Subject, &sev, &c.Message)
		c.Severity = keepwatch.Severity(sev)
		return c, err
	})
	if err != nil {
		return err
	}
	if kinds != nil {
		active = slices.DeleteFunc(active, func(c keepwatch.Condition) bool { return !slices.Contains(kinds, c.Kind) })
	}
	raised, cleared := keepwatch.Diff(active, reported)
	for _, c := range cleared {
		if _, err := t.exec(`DELETE FROM conditions WHERE server_id = ? AND kind = ? AND subject = ?`, info.id, c.Kind, c.Subject); err != nil {
			return err
		}
		if err := t.recordChange(info, c.Kind, c.Subject, c.Severity, false, at); err != nil {
			return err
		}
		if err := t.clear(info, c.Kind, c.Subject, at); err != nil {
			return err
		}
		out.Changes = append(out.Changes, info.change(c.Kind, c.Subject, false, at))
	}
	was := make(map[string]keepwatch.Condition, len(active))
	for _, c := range active {
		was[c.Key()] = c
	}
	for _, c := range reported {
		if old, ok := was[c.Key()]; ok && (old.Message != c.Message || old.Severity != c.Severity) {
			if _, err := t.exec(`UPDATE conditions SET message = ?, severity = ? WHERE server_id = ? AND kind = ? AND subject = ?`,
				c.Message, string(c.Severity), info.id, c.Kind, c.Subject); err != nil {
				return err
			}
			was[c.Key()] = c
		}
	}
	for _, c := range raised {
		since := c.Since
		if since.IsZero() || since.After(at) {
			since = at
		}
		if _, err := t.exec(`INSERT INTO conditions (server_id, kind, subject, severity, since, message, origin) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			info.id, c.Kind, c.Subject, string(c.Severity), since.UnixMilli(), c.Message, origin); err != nil {
			return err
		}
		if err := t.recordChange(info, c.Kind, c.Subject, c.Severity, true, since); err != nil {
			return err
		}
		if _, err := t.raise(info, c.Kind, c.Subject, c.Severity, false, since, gate); err != nil {
			return err
		}
		out.Changes = append(out.Changes, info.change(c.Kind, c.Subject, true, since))
	}
	return nil
}

// SetKeepwatchConditions replaces the conditions keepwatch itself decides
// on a server, of the given kinds (a drive's forecast and retention, a
// flood), by conds: raised and cleared like an agent's, with their
// history and incidents, but never cleared by the agent's status reports.
// It returns the changes, once committed.
func (s *Store) SetKeepwatchConditions(ctx context.Context, serverID string, kinds []string, conds []keepwatch.Condition, at time.Time) ([]keepwatch.Change, error) {
	for _, c := range conds {
		if !slices.Contains(kinds, c.Kind) {
			return nil, fmt.Errorf("condition %s is not of the kinds %v", c.Kind, kinds)
		}
	}
	var out keepwatch.Applied
	err := s.tx(ctx, func(t *Tx) error {
		out = keepwatch.Applied{}
		info, err := t.serverInfo(serverID)
		if err != nil {
			return err
		}
		return t.replaceConditions(info, originKeepwatch, kinds, conds, at, &out, nil)
	})
	return out.Changes, err
}

// recordChange writes a history row.
func (t *Tx) recordChange(info serverInfo, kind, subject string, sev keepwatch.Severity, active bool, at time.Time) error {
	a := 0
	if active {
		a = 1
	}
	_, err := t.exec(`INSERT INTO state_changes (installation_id, server_id, kind, subject, severity, active, at, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, info.installationID, info.id, kind, subject, string(sev), a, at.UnixMilli(), t.s.now().UnixMilli())
	return err
}
