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

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateChannel adds a channel to an integrator.
func (s *Store) CreateChannel(ctx context.Context, integratorID int64, c keepwatch.Channel) (keepwatch.Channel, error) {
	c.CreatedAt = s.now().UTC()
	err := s.tx(ctx, func(t *Tx) error {
		id, err := t.insert(`INSERT INTO channels (integrator_id, name, type, target, secret, endpoint, signature, digest, enabled, created_at) VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?)`,
			integratorID, c.Name, c.Type, c.Target, c.Endpoint, c.Signature, b2i(c.Digest), b2i(c.Enabled), c.CreatedAt.UnixMilli())
		if err != nil {
			return err
		}
		c.ID = id
		// Sealed once the row has its id, which the sealed value is bound to.
		_, err = t.exec(`UPDATE channels SET secret = ? WHERE id = ?`, s.sealSecret(id, c.Secret), id)
		return err
	})
	c.SecretHint = c.KeyHint()
	return c, err
}

const channelCols = `id, name, type, target, secret, endpoint, signature, digest, enabled, created_at`

func (s *Store) scanChannel(r scanner) (keepwatch.Channel, error) {
	var c keepwatch.Channel
	var digest, enabled int
	var created int64
	err := r.Scan(&c.ID, &c.Name, &c.Type, &c.Target, &c.Secret, &c.Endpoint, &c.Signature, &digest, &enabled, &created)
	c.Digest, c.Enabled, c.CreatedAt = digest == 1, enabled == 1, keepwatch.TimeFromMillis(created)
	if err == nil {
		if c.Secret, err = s.openSecret(c.ID, c.Secret); err != nil {
			err = fmt.Errorf("secret of channel %d: %w", c.ID, err)
		}
		c.SecretHint = c.KeyHint()
	}
	return c, err
}

// Channels lists an integrator's channels.
func (s *Store) Channels(ctx context.Context, integratorID int64) ([]keepwatch.Channel, error) {
	rows, err := s.query(ctx, `SELECT `+channelCols+` FROM channels WHERE integrator_id = ? ORDER BY id`, integratorID)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, s.scanChannel)
}

// keepwatch.Channel returns one of an integrator's channels.
func (s *Store) Channel(ctx context.Context, integratorID, id int64) (keepwatch.Channel, error) {
	c, err := s.scanChannel(s.queryRow(ctx, `SELECT `+channelCols+` FROM channels WHERE integrator_id = ? AND id = ?`, integratorID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such channel in your account")
	}
	return c, dbErr(err)
}

// DeleteChannel removes a channel and the rules that use it; notifications
// still pending for it are cancelled.
func (s *Store) DeleteChannel(ctx context.Context, integratorID, id int64) error {
	return s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE channels SET enabled = 0 WHERE integrator_id = ? AND id = ?`, integratorID, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such channel in your account")
		}
		if _, err := t.exec(`UPDATE notifications SET state = 'cancelled' WHERE channel_id = ? AND state = 'pending'`, id); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM rules WHERE channel_id = ? AND integrator_id = ?`, id, integratorID); err != nil {
			return err
		}
		// Delivered history keeps pointing at the channel row, so it stays,
		// disabled and renamed out of the way.
		_, err = t.exec(`UPDATE channels SET name = name || ' (deleted)' WHERE id = ?`, id)
		return err
	})
}

// CreateRule adds a rule; its channel must belong to the same integrator.
func (s *Store) CreateRule(ctx context.Context, integratorID int64, r keepwatch.Rule) (keepwatch.Rule, error) {
	r.CreatedAt = s.now().UTC()
	err := s.tx(ctx, func(t *Tx) error {
		var ok int
		if err := t.queryRow(`SELECT COUNT(*) FROM channels WHERE id = ? AND integrator_id = ? AND enabled = 1`, r.ChannelID, integratorID).Scan(&ok); err != nil {
			return dbErr(err)
		}
		if ok == 0 {
			return keepwatch.Errorf(keepwatch.EINVALID, "channel_id does not name one of your channels")
		}
		id, err := t.insert(`INSERT INTO rules (integrator_id, name, channel_id, kinds, min_severity, slcs, min_duration_ms, repeat_ms, unacked_only, enabled, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			integratorID, r.Name, r.ChannelID, strings.Join(r.Kinds, ","), string(r.MinSeverity), strings.Join(r.SLCs, ","),
			time.Duration(r.MinDuration).Milliseconds(), time.Duration(r.Repeat).Milliseconds(), b2i(r.UnackedOnly), b2i(r.Enabled), r.CreatedAt.UnixMilli())
		r.ID = id
		return err
	})
	return r, err
}

// Rules lists an integrator's rules.
func (s *Store) Rules(ctx context.Context, integratorID int64) ([]keepwatch.Rule, error) {
	rows, err := s.query(ctx, `SELECT id, name, channel_id, kinds, min_severity, slcs, min_duration_ms, repeat_ms, unacked_only, enabled, created_at
		FROM rules WHERE integrator_id = ? ORDER BY id`, integratorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []keepwatch.Rule{}
	for rows.Next() {
		var r keepwatch.Rule
		var kinds, sev, slcs string
		var minDur, repeat, created int64
		var unacked, enabled int
		if err := rows.Scan(&r.ID, &r.Name, &r.ChannelID, &kinds, &sev, &slcs, &minDur, &repeat, &unacked, &enabled, &created); err != nil {
			return nil, dbErr(err)
		}
		r.Kinds, r.MinSeverity, r.SLCs = splitList(kinds), keepwatch.Severity(sev), splitList(slcs)
		r.MinDuration, r.Repeat = keepwatch.Duration(minDur*1e6), keepwatch.Duration(repeat*1e6)
		r.UnackedOnly, r.Enabled, r.CreatedAt = unacked == 1, enabled == 1, keepwatch.TimeFromMillis(created)
		out = append(out, r)
	}
	return out, dbErr(rows.Err())
}

// DeleteRule removes a rule.
func (s *Store) DeleteRule(ctx context.Context, integratorID, id int64) error {
	return s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`DELETE FROM rules WHERE integrator_id = ? AND id = ?`, integratorID, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such rule in your account")
		}
		return nil
	})
}

// Enqueue adds a notification unless one with the same dedup key exists;
// it reports whether it added one.
func (s *Store) Enqueue(ctx context.Context, n keepwatch.Notification) (bool, error) {
	added := false
	err := s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`INSERT INTO notifications (integrator_id, channel_id, rule_id, incident_id, installation_id, type, dedup_key, state, not_before, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (dedup_key) DO NOTHING`,
			n.IntegratorID, n.ChannelID, nullable(n.RuleID), nullable(n.IncidentID), nullable(n.InstallationID), n.Type, n.DedupKey,
			n.NotBefore.UnixMilli(), s.now().UnixMilli())
		if err != nil {
			return err
		}
		c, _ := r.RowsAffected()
		added = c > 0
		return nil
	})
	return added, err
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

const notificationCols = `id, integrator_id, channel_id, COALESCE(rule_id, 0), COALESCE(incident_id, 0), COALESCE(installation_id, 0), type, dedup_key, state, not_before, attempts, last_error, created_at, COALESCE(sent_at, 0), lease_until`

func scanNotification(r scanner) (keepwatch.Notification, error) {
	var n keepwatch.Notification
	var nb, created, sent, lease int64
	err := r.Scan(&n.ID, &n.IntegratorID, &n.ChannelID, &n.RuleID, &n.IncidentID, &n.InstallationID, &n.Type, &n.DedupKey, &n.State, &nb, &n.Attempts, &n.LastError, &created, &sent, &lease)
	n.NotBefore, n.CreatedAt, n.SentAt = keepwatch.TimeFromMillis(nb), keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(sent)
	n.LeaseUntil = keepwatch.TimeFromMillis(lease)
	return n, err
}

// NotificationsFor returns the notifications of one incident (for
// deciding whether a resolution is worth a message).
func (s *Store) NotificationsFor(ctx context.Context, incidentID int64) ([]keepwatch.Notification, error) {
	rows, err := s.query(ctx, `SELECT `+notificationCols+` FROM notifications WHERE incident_id = ? ORDER BY id`, incidentID)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scanNotification)
}

// Notifications lists an integrator's recent notifications, newest first.
func (s *Store) Notifications(ctx context.Context, integratorID int64, limit int) ([]keepwatch.Notification, error) {
	rows, err := s.query(ctx, `SELECT `+notificationCols+` FROM notifications WHERE integrator_id = ? ORDER BY id DESC LIMIT ?`, integratorID, limit)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scanNotification)
}

// IncidentForNotify loads an incident with its tenant (operator-level).
func (s *Store) IncidentForNotify(ctx context.Context, id int64) (keepwatch.IncidentContext, error) {
	var ic keepwatch.IncidentContext
	// The incident's own integrator: the one that held the installation
	// when it happened (0 if nobody did, or it was later given away).
	err := s.queryRow(ctx, `SELECT CASE WHEN n.integrator_id = i.integrator_id THEN n.integrator_id ELSE 0 END, n.installation_id
		FROM incidents n JOIN installations i ON i.id = n.installation_id WHERE n.id = ?`, id).
		Scan(&ic.IntegratorID, &ic.InstallationID)
	if errors.Is(err, sql.ErrNoRows) {
		return ic, keepwatch.Errorf(keepwatch.ENOTFOUND, "no incident %d", id)
	}
	if err != nil {
		return ic, dbErr(err)
	}
	if ic.IntegratorID == 0 {
		return ic, nil // nobody registered the installation: nobody to tell
	}
	ic.Incident, err = s.Incident(ctx, ic.IntegratorID, id)
	return ic, err
}

// OpenIncidents lists an integrator's unresolved incidents (digests,
// reminders).
func (s *Store) OpenIncidents(ctx context.Context, integratorID int64) ([]keepwatch.Incident, error) {
	return s.Incidents(ctx, integratorID, "", 5000)
}

// IntegratorIDs lists every tenant (operator-level).
func (s *Store) IntegratorIDs(ctx context.Context) ([]int64, error) {
	rows, err := s.query(ctx, `SELECT id FROM integrators ORDER BY id`)
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

// CarePlusEnding lists an integrator's registered installations whose Care
// Plus ends between from and to (inclusive).
func (s *Store) CarePlusEnding(ctx context.Context, integratorID int64, from, to keepwatch.Date) ([]keepwatch.Installation, error) {
	rows, err := s.query(ctx, `SELECT id, slc, customer, product, cameras, care_plus_until FROM installations
		WHERE integrator_id = ? AND care_plus_until >= ? AND care_plus_until <= ? ORDER BY care_plus_until, slc`, integratorID, from.String(), to.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keepwatch.Installation
	for rows.Next() {
		var in keepwatch.Installation
		var until string
		if err := rows.Scan(&in.ID, &in.SLC, &in.Customer, &in.Product, &in.Cameras, &until); err != nil {
			return nil, dbErr(err)
		}
		in.CarePlusUntil, _ = keepwatch.ParseDate(until)
		in.IntegratorID = integratorID
		out = append(out, in)
	}
	return out, dbErr(rows.Err())
}

// InstallationByID returns one of an integrator's installations.
func (s *Store) InstallationByID(ctx context.Context, integratorID, id int64) (keepwatch.Installation, error) {
	var in keepwatch.Installation
	var until string
	err := s.queryRow(ctx, `SELECT id, slc, customer, product, cameras, care_plus_until FROM installations WHERE integrator_id = ? AND id = ?`, integratorID, id).
		Scan(&in.ID, &in.SLC, &in.Customer, &in.Product, &in.Cameras, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return in, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such installation in your account")
	}
	in.CarePlusUntil, _ = keepwatch.ParseDate(until)
	in.IntegratorID = integratorID
	return in, dbErr(err)
}

// NotificationCounts counts the outbox by state (for metrics).
func (s *Store) NotificationCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT state, COUNT(*) FROM notifications GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, dbErr(err)
		}
		out[st] = n
	}
	return out, dbErr(rows.Err())
}
