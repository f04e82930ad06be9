package store

import (
	"context"
	"fmt"
	"time"

	"keepwatch"
)

// The notifier's stages as rows: transitions marked processed, the outbox
// claimed per channel by lease, and one reminder timer per incident and
// repeating rule. Every claim is a row lock skipped by other claimers on
// PostgreSQL (SQLite has one writer) or a lease compare-and-set, so any
// number of nodes share the work and none does a step twice.

// ProcessTransitions takes up to limit transitions no notifier has
// processed yet, in id order, and for each writes what evaluate asks of
// the outbox and marks it processed, all in one transaction: a crash
// leaves a transition unprocessed, and a second node skips the rows this
// one holds. evaluate may read the store but must not write it. It
// returns how many transitions it processed.
func (s *Store) ProcessTransitions(ctx context.Context, limit int, evaluate func(keepwatch.Transition) (keepwatch.Evaluation, error)) (int, error) {
	n := 0
	err := s.tx(ctx, func(t *Tx) error {
		n = 0
		rows, err := t.query(`SELECT id, incident_id, installation_id, type, at, actor, note FROM incident_events
			WHERE processed_at IS NULL ORDER BY id LIMIT ?`+s.skipLocked(), limit)
		if err != nil {
			return err
		}
		trs, err := scanTransitions(rows)
		if err != nil {
			return err
		}
		now := s.now().UnixMilli()
		for _, tr := range trs {
			ev, err := evaluate(tr)
			if err != nil {
				return fmt.Errorf("transition %d: %w", tr.ID, err)
			}
			for _, c := range ev.Cancel {
				// A notification being delivered right now is left to finish.
				if _, err := t.exec(`UPDATE notifications SET state = 'suppressed', last_error = ?
					WHERE incident_id = ? AND type = ? AND state = 'pending' AND lease_until < ?`, c.Why, c.IncidentID, c.Type, now); err != nil {
					return err
				}
			}
			for _, e := range ev.Enqueue {
				if err := t.enqueue(e); err != nil {
					return err
				}
			}
			if _, err := t.exec(`UPDATE incident_events SET processed_at = ? WHERE id = ?`, now, tr.ID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func (t *Tx) enqueue(n keepwatch.Notification) error {
	_, err := t.exec(`INSERT INTO notifications (integrator_id, channel_id, rule_id, incident_id, installation_id, type, dedup_key, state, not_before, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (dedup_key) DO NOTHING`,
		n.IntegratorID, n.ChannelID, nullable(n.RuleID), nullable(n.IncidentID), nullable(n.InstallationID), n.Type, n.DedupKey,
		n.NotBefore.UnixMilli(), t.s.now().UnixMilli())
	return err
}

// DueChannels lists the channels that have a notification due at now
// that nobody holds.
func (s *Store) DueChannels(ctx context.Context, now time.Time) ([]int64, error) {
	rows, err := s.query(ctx, `SELECT DISTINCT channel_id FROM notifications WHERE state = 'pending' AND not_before <= ? AND lease_until < ?`,
		now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, dbErr(err)
		}
		out = append(out, id)
	}
	return out, dbErr(rows.Err())
}

// ClaimDue leases up to limit of a channel's pending notifications whose
// time has come, oldest first, until now+lease: no other claimer gets
// them until the lease ends, and only the lease's holder records their
// outcome (RecordDelivery).
func (s *Store) ClaimDue(ctx context.Context, channelID int64, now time.Time, lease time.Duration, limit int) ([]keepwatch.Notification, error) {
	var out []keepwatch.Notification
	err := s.tx(ctx, func(t *Tx) error {
		out = nil
		rows, err := t.query(`UPDATE notifications SET lease_until = ?
			WHERE id IN (SELECT id FROM notifications WHERE channel_id = ? AND state = 'pending' AND not_before <= ? AND lease_until < ?
				ORDER BY not_before, id LIMIT ?`+s.skipLocked()+`)
			AND state = 'pending' AND lease_until < ?
			RETURNING `+notificationCols, now.Add(lease).UnixMilli(), channelID, now.UnixMilli(), now.UnixMilli(), limit, now.UnixMilli())
		if err != nil {
			return err
		}
		if out, err = scanAll(rows, scanNotification); err != nil {
			return dbErr(err)
		}
		return nil
	})
	return out, err
}

// ReleaseClaim gives a claimed notification back untouched (its channel
// had to wait for its rate limit).
func (s *Store) ReleaseClaim(ctx context.Context, n keepwatch.Notification) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE notifications SET lease_until = 0 WHERE id = ? AND lease_until = ? AND state = 'pending'`, n.ID, n.LeaseUntil.UnixMilli())
		return err
	})
}

// RecordDelivery records the outcome of a claimed notification if the
// claim (n.LeaseUntil) still holds; it reports whether it did. A sent
// opening whose rule repeats starts (or restarts) the incident's reminder
// timer for that rule, counted from now.
func (s *Store) RecordDelivery(ctx context.Context, n keepwatch.Notification, o keepwatch.Outcome) (bool, error) {
	ok := false
	err := s.tx(ctx, func(t *Tx) error {
		var sent any
		if o.State == keepwatch.NotificationSent {
			sent = o.At.UnixMilli()
		}
		notBefore := o.At
		if o.State == keepwatch.NotificationPending {
			notBefore = o.RetryAt
		}
		r, err := t.exec(`UPDATE notifications SET state = ?, attempts = attempts + ?, last_error = ?, not_before = ?, lease_until = 0, sent_at = ?, held = ?
			WHERE id = ? AND lease_until = ? AND state = 'pending'`,
			string(o.State), b2i(o.Attempted), o.LastError, notBefore.UnixMilli(), sent, b2i(o.Held), n.ID, n.LeaseUntil.UnixMilli())
		if err != nil {
			return err
		}
		if c, _ := r.RowsAffected(); c == 0 {
			return nil
		}
		ok = true
		if o.State != keepwatch.NotificationSent || n.Type != keepwatch.NotifyOpened || n.RuleID == 0 || n.IncidentID == 0 {
			return nil
		}
		at := o.At.UnixMilli()
		_, err = t.exec(`INSERT INTO reminders (incident_id, rule_id, opening_id, sent_at, repeat_ms, k, next_at)
			SELECT ?, r.id, ?, ?, r.repeat_ms, 1, ? + r.repeat_ms FROM rules r WHERE r.id = ? AND r.repeat_ms > 0
			ON CONFLICT (incident_id, rule_id) DO UPDATE SET opening_id = excluded.opening_id, sent_at = excluded.sent_at,
				repeat_ms = excluded.repeat_ms, k = 1, next_at = excluded.next_at`,
			n.IncidentID, n.ID, at, at, n.RuleID)
		return err
	})
	return ok, err
}

// FireReminders turns the reminder timers due at now (up to limit) into
// reminder notifications, each due at its exact time, and sets each timer
// to its next time. A timer whose incident is no longer open (resolved,
// acknowledged) or whose rule was removed is dropped. After a pause, one
// reminder catches up, not every missed one. It returns how many timers
// it fired or dropped.
func (s *Store) FireReminders(ctx context.Context, now time.Time, limit int) (int, error) {
	type timer struct {
		incident, rule, opening, sent, repeat, k int64
		integrator, channel, installation        int64
		state                                    string
		parent, ruleLive                         int64
	}
	n := 0
	err := s.tx(ctx, func(t *Tx) error {
		rows, err := t.query(`SELECT r.incident_id, r.rule_id, r.opening_id, r.sent_at, r.repeat_ms, r.k,
				o.integrator_id, o.channel_id, COALESCE(o.installation_id, 0), COALESCE(i.state, ''), COALESCE(i.parent_id, 0), COALESCE(u.id, 0)
			FROM reminders r JOIN notifications o ON o.id = r.opening_id
			LEFT JOIN incidents i ON i.id = r.incident_id LEFT JOIN rules u ON u.id = r.rule_id
			WHERE r.next_at <= ? ORDER BY r.next_at LIMIT ?`+s.skipLockedOf("r"), now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		var due []timer
		for rows.Next() {
			var x timer
			if err := rows.Scan(&x.incident, &x.rule, &x.opening, &x.sent, &x.repeat, &x.k, &x.integrator, &x.channel, &x.installation, &x.state, &x.parent, &x.ruleLive); err != nil {
				rows.Close()
				return dbErr(err)
			}
			due = append(due, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr(err)
		}
		n = len(due)
		for _, x := range due {
			if x.state != string(keepwatch.IncidentOpen) || x.parent != 0 || x.ruleLive == 0 || x.repeat <= 0 {
				if _, err := t.exec(`DELETE FROM reminders WHERE incident_id = ? AND rule_id = ?`, x.incident, x.rule); err != nil {
					return err
				}
				continue
			}
			sent, repeat := keepwatch.TimeFromMillis(x.sent), time.Duration(x.repeat)*time.Millisecond
			k := int(x.k)
			if behind := int(now.Sub(sent) / repeat); behind > k {
				k = behind
			}
			if err := t.enqueue(keepwatch.Notification{IntegratorID: x.integrator, ChannelID: x.channel, RuleID: x.rule, IncidentID: x.incident,
				InstallationID: x.installation, Type: keepwatch.NotifyReminder, DedupKey: fmt.Sprintf("rem:n%d:%d", x.opening, k),
				NotBefore: keepwatch.ReminderAt(sent, repeat, k)}); err != nil {
				return err
			}
			if _, err := t.exec(`UPDATE reminders SET k = ?, next_at = ? WHERE incident_id = ? AND rule_id = ?`,
				k+1, keepwatch.ReminderAt(sent, repeat, k+1).UnixMilli(), x.incident, x.rule); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// NextDue is the earliest time after which the notifier has something to
// do: a pending notification's time (or the end of another claimer's
// lease on it) or a reminder timer. Zero if nothing waits.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	var a, b int64
	err := s.queryRow(ctx, `SELECT COALESCE(MIN(CASE WHEN lease_until > not_before THEN lease_until ELSE not_before END), 0)
		FROM notifications WHERE state = 'pending'`).Scan(&a)
	if err != nil {
		return time.Time{}, dbErr(err)
	}
	if err := s.queryRow(ctx, `SELECT COALESCE(MIN(next_at), 0) FROM reminders`).Scan(&b); err != nil {
		return time.Time{}, dbErr(err)
	}
	if a == 0 || (b != 0 && b < a) {
		a = b
	}
	return keepwatch.TimeFromMillis(a), nil
}

// MaintenanceEnd returns when the maintenance window an installation is
// in at at ends (the latest, if windows overlap); zero if it is in none.
// It is for the notifier (operator-level, not tenant-scoped).
func (s *Store) MaintenanceEnd(ctx context.Context, installationID int64, at time.Time) (time.Time, error) {
	var end int64
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(m.ends_at), 0) FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
		WHERE m.installation_id = ? AND i.integrator_id = m.integrator_id AND m.starts_at <= ? AND m.ends_at > ?`,
		installationID, at.UnixMilli(), at.UnixMilli()).Scan(&end)
	return keepwatch.TimeFromMillis(end), dbErr(err)
}

// releaseHeld makes an installation's notifications held for its
// maintenance window due at at: the window ended early.
func (t *Tx) releaseHeld(installationID int64, at time.Time) error {
	r, err := t.exec(`UPDATE notifications SET not_before = ? WHERE installation_id = ? AND state = 'pending' AND held = 1 AND not_before > ?`,
		at.UnixMilli(), installationID, at.UnixMilli())
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n > 0 {
		t.outbox = true
	}
	return nil
}
