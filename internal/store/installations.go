package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"keepwatch"
)

// CreateInstallation records a licence (operator use). keyHash is the
// SHA-256 of the installation's enrollment key.
func (s *Store) CreateInstallation(ctx context.Context, in keepwatch.Installation, keyHash []byte) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		id, err = t.insert(`INSERT INTO installations (slc, customer, product, cameras, care_plus_until, enrollment_key_hash, enrollment_key_issued_at, created_at, rev)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			in.SLC, in.Customer, in.Product, in.Cameras, in.CarePlusUntil.String(), keyHash, s.now().UnixMilli(), s.now().UnixMilli(), rev)
		if isUniqueViolation(err) {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "a licence for SLC %s exists", in.SLC)
		}
		return err
	})
	return id, err
}

// updateInstallation runs an operator change on one installation and bumps
// its revision so running nodes pick it up.
func (s *Store) updateInstallation(ctx context.Context, slc, set string, arg any) error {
	return s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		r, err := t.exec(`UPDATE installations SET `+set+` = ?, rev = ? WHERE slc = ?`, arg, rev, slc)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no licence for SLC %s", slc)
		}
		return nil
	})
}

// SetCarePlus changes the end date of an installation's Care Plus.
func (s *Store) SetCarePlus(ctx context.Context, slc string, until keepwatch.Date) error {
	return s.updateInstallation(ctx, slc, "care_plus_until", until.String())
}

// SetEnrollmentKey replaces an installation's enrollment key hash. Servers
// already enrolled keep their own keys.
func (s *Store) SetEnrollmentKey(ctx context.Context, slc string, keyHash []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		r, err := t.exec(`UPDATE installations SET enrollment_key_hash = ?, enrollment_key_issued_at = ?, rev = ? WHERE slc = ?`,
			keyHash, s.now().UnixMilli(), rev, slc)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no licence for SLC %s", slc)
		}
		return nil
	})
}

// RevokeEnrollmentKey leaves an installation without an enrollment key:
// nothing enrolls until a new key is issued. Servers already enrolled keep
// reporting with their own keys.
func (s *Store) RevokeEnrollmentKey(ctx context.Context, slc string) error {
	return s.updateInstallation(ctx, slc, "enrollment_key_hash", []byte{})
}

// EnrollmentInfo returns what enrollment checks: the installation and the
// hash of its current enrollment key. Unknown SLCs are unauthorized, like a
// wrong key, so enrollment does not reveal which SLCs exist.
func (s *Store) EnrollmentInfo(ctx context.Context, slc string) (keepwatch.Installation, []byte, error) {
	var in keepwatch.Installation
	var until string
	var hash []byte
	var integ sql.NullInt64
	var issued int64
	err := s.queryRow(ctx, `SELECT id, slc, customer, product, cameras, care_plus_until, enrollment_key_hash, integrator_id, enrollment_key_issued_at
		FROM installations WHERE slc = ?`, slc).
		Scan(&in.ID, &in.SLC, &in.Customer, &in.Product, &in.Cameras, &until, &hash, &integ, &issued)
	if errors.Is(err, sql.ErrNoRows) {
		return in, nil, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "unknown SLC or wrong enrollment key")
	}
	if err != nil {
		return in, nil, dbErr(err)
	}
	in.CarePlusUntil, _ = keepwatch.ParseDate(until)
	in.IntegratorID = integ.Int64
	in.EnrollmentKeyIssued = time.UnixMilli(issued).UTC()
	return in, hash, nil
}

// errNotRegistrable is the one answer to every registration that cannot
// succeed, whether the SLC is unknown or held by someone else: it must not
// tell the two apart.
var errNotRegistrable = keepwatch.Errorf(keepwatch.ECONFLICT,
	"this SLC cannot be registered to your account; check it, or contact support if it belongs to your customer")

// Register gives an SLC to an integrator: the first integrator wins.
// Registering an SLC one already holds succeeds again.
func (s *Store) Register(ctx context.Context, integratorID int64, slc string) error {
	return s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		// Registering again keeps the registration time: the holder's
		// history starts when it first registered the installation.
		r, err := t.exec(`UPDATE installations SET integrator_id = ?, rev = ?,
				registered_at = CASE WHEN integrator_id IS NULL OR registered_at IS NULL THEN ? ELSE registered_at END
			WHERE slc = ? AND (integrator_id IS NULL OR integrator_id = ?)`,
			integratorID, rev, s.now().UnixMilli(), slc, integratorID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errNotRegistrable
		}
		// Problems still open become the new holder's, without the notes of
		// whoever held the installation before; resolved history stays with
		// the integrator it happened to.
		rows, err := t.query(`UPDATE incidents SET integrator_id = ?, state = CASE WHEN state = 'acknowledged' THEN 'open' ELSE state END,
				acked_at = NULL, acked_by = '', ack_note = ''
			WHERE installation_id = (SELECT id FROM installations WHERE slc = ?) AND state <> 'resolved'
				AND COALESCE(integrator_id, 0) <> ? RETURNING id, installation_id`, integratorID, slc, integratorID)
		if err != nil {
			return err
		}
		var moved [][2]int64
		for rows.Next() {
			var m [2]int64
			if err := rows.Scan(&m[0], &m[1]); err != nil {
				rows.Close()
				return dbErr(err)
			}
			moved = append(moved, m)
		}
		if err := rows.Close(); err != nil {
			return dbErr(err)
		}
		for _, m := range moved {
			if _, err := t.exec(`DELETE FROM incident_assignments WHERE incident_id = ?`, m[0]); err != nil {
				return err
			}
			// The history before this row belongs to the previous holder.
			if err := t.transition(m[0], m[1], keepwatch.TransitionTransferred, s.now(), "keepwatch", "the installation was registered to a new integrator"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Release gives up an integrator's registration of an SLC.
func (s *Store) Release(ctx context.Context, integratorID int64, slc string) error {
	return s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		r, err := t.exec(`UPDATE installations SET integrator_id = NULL, registered_at = NULL, rev = ?
			WHERE slc = ? AND integrator_id = ?`, rev, slc, integratorID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return notFound(slc)
		}
		return nil
	})
}

// notFound is the same answer for an SLC that does not exist and one that
// belongs to someone else.
func notFound(string) error {
	return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such installation in your account")
}

// Installations returns the views of all installations registered to an
// integrator, computed as of today, sorted by severity then age.
func (s *Store) Installations(ctx context.Context, integratorID int64, now time.Time) ([]keepwatch.InstallationView, error) {
	return s.Overview(ctx, integratorID, now) // one ordered join: fast for thousands
}

// Installation returns one installation's view, not_found unless the
// integrator holds its SLC.
func (s *Store) Installation(ctx context.Context, integratorID int64, slc string, now time.Time) (keepwatch.InstallationView, error) {
	vs, err := s.installationViews(ctx, integratorID, slc, now)
	if err != nil {
		return keepwatch.InstallationView{}, err
	}
	if len(vs) == 0 {
		return keepwatch.InstallationView{}, notFound(slc)
	}
	return vs[0], nil
}

func (s *Store) installationViews(ctx context.Context, integratorID int64, slc string, now time.Time) ([]keepwatch.InstallationView, error) {
	filter, args := "", []any{integratorID}
	if slc != "" {
		filter, args = " AND i.slc = ?", append(args, slc)
	}
	rows, err := s.query(ctx, `SELECT i.id, i.slc, i.customer, i.product, i.cameras, i.care_plus_until
		FROM installations i WHERE i.integrator_id = ?`+filter, args...)
	if err != nil {
		return nil, err
	}
	var ins []keepwatch.Installation
	byID := map[int64]int{}
	for rows.Next() {
		var in keepwatch.Installation
		var until string
		if err := rows.Scan(&in.ID, &in.SLC, &in.Customer, &in.Product, &in.Cameras, &until); err != nil {
			rows.Close()
			return nil, dbErr(err)
		}
		in.CarePlusUntil, _ = keepwatch.ParseDate(until)
		in.IntegratorID = integratorID
		byID[in.ID] = len(ins)
		ins = append(ins, in)
	}
	if err := rows.Close(); err != nil {
		return nil, dbErr(err)
	}
	servers, err := s.serversOf(ctx, integratorID, filter, args)
	if err != nil {
		return nil, err
	}
	grouped := make([][]keepwatch.Server, len(ins))
	for _, sv := range servers {
		if i, ok := byID[sv.InstallationID]; ok {
			grouped[i] = append(grouped[i], sv)
		}
	}
	return s.summarize(ctx, integratorID, slc, ins, grouped, now)
}

// summarize computes the views of an integrator's installations (all, or
// the one with slc) from their servers, adding what else decides the
// status: maintenance windows and open site outages.
func (s *Store) summarize(ctx context.Context, integratorID int64, slc string, ins []keepwatch.Installation, servers [][]keepwatch.Server, now time.Time) ([]keepwatch.InstallationView, error) {
	filter, args := "", []any{integratorID, integratorID, now.UnixMilli()}
	if slc != "" {
		filter, args = " AND i.slc = ?", append(args, slc)
	}
	rows, err := s.query(ctx, `SELECT m.installation_id, `+maintenanceCols+` FROM maintenance_windows m JOIN installations i ON i.id = m.installation_id
		WHERE m.integrator_id = ? AND i.integrator_id = ? AND m.ends_at > ?`+filter+` ORDER BY m.starts_at`, args...)
	if err != nil {
		return nil, err
	}
	windows := map[int64][]keepwatch.MaintenanceWindow{}
	if _, err := scanAll(rows, func(r scanner) (keepwatch.MaintenanceWindow, error) {
		var inst int64
		m, err := scanMaintenanceWith(r, &inst)
		windows[inst] = append(windows[inst], m)
		return m, err
	}); err != nil {
		return nil, err
	}
	args = []any{integratorID, keepwatch.KindSiteUnreachable}
	if slc != "" {
		args = append(args, slc)
	}
	rows, err = s.query(ctx, `SELECT n.installation_id FROM incidents n JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
		WHERE i.integrator_id = ? AND n.kind = ? AND n.state <> 'resolved'`+filter, args...)
	if err != nil {
		return nil, err
	}
	sites, err := scanAll(rows, func(r scanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, err
	}
	views := make([]keepwatch.InstallationView, len(ins))
	for i, in := range ins {
		views[i] = keepwatch.Summarize(keepwatch.InstallationFacts{
			Installation: in, Servers: servers[i], Maintenance: windows[in.ID], SiteOutage: slices.Contains(sites, in.ID),
		}, now)
	}
	keepwatch.SortViews(views)
	return views, nil
}

// Servers returns the recording servers of one installation with their
// active conditions.
func (s *Store) Servers(ctx context.Context, integratorID int64, slc string) ([]keepwatch.Server, error) {
	var exists int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM installations WHERE integrator_id = ? AND slc = ?`, integratorID, slc).Scan(&exists)
	if err != nil {
		return nil, dbErr(err)
	}
	if exists == 0 {
		return nil, notFound(slc)
	}
	return s.serversOf(ctx, integratorID, " AND i.slc = ?", []any{integratorID, slc})
}

// serversOf loads the non-revoked servers, and their active conditions, of
// the integrator's installations matching filter.
func (s *Store) serversOf(ctx context.Context, integratorID int64, filter string, args []any) ([]keepwatch.Server, error) {
	rows, err := s.query(ctx, `SELECT s.id, s.installation_id, s.name, s.state, s.state_since, s.interval_ms, s.last_seen, s.agent_version, s.enrolled_at, s.clock_offset_ms, s.last_seq
		FROM servers s JOIN installations i ON i.id = s.installation_id
		WHERE i.integrator_id = ? AND s.revoked_at IS NULL`+filter+` ORDER BY s.installation_id, s.name`, args...)
	if err != nil {
		return nil, err
	}
	var out []keepwatch.Server
	byID := map[string]int{}
	for rows.Next() {
		var sv keepwatch.Server
		var state string
		var since, interval, seen, enrolled, offset, seq int64
		if err := rows.Scan(&sv.ID, &sv.InstallationID, &sv.Name, &state, &since, &interval, &seen, &sv.AgentVersion, &enrolled, &offset, &seq); err != nil {
			rows.Close()
			return nil, dbErr(err)
		}
		s.withUnfolded(sv.ID, enrolled, &seq, &seen, &interval)
		sv.State = keepwatch.ServerState(state)
		sv.StateSince, sv.LastSeen, sv.EnrolledAt = keepwatch.TimeFromMillis(since), keepwatch.TimeFromMillis(seen), keepwatch.TimeFromMillis(enrolled)
		sv.Interval = keepwatch.Duration(interval * 1e6)
		sv.ClockOffset = keepwatch.Duration(offset * 1e6)
		sv.Conditions = []keepwatch.Condition{}
		byID[sv.ID] = len(out)
		out = append(out, sv)
	}
	if err := rows.Close(); err != nil {
		return nil, dbErr(err)
	}
	// Active conditions, and open event incidents: an event stays a problem
	// of its installation until its incident is resolved.
	crows, err := s.query(ctx, `SELECT c.server_id, c.kind, c.subject, c.severity, c.since, c.message, 0
		FROM conditions c JOIN servers s ON s.id = c.server_id JOIN installations i ON i.id = s.installation_id
		WHERE i.integrator_id = ? AND s.revoked_at IS NULL`+filter+`
		UNION ALL
		SELECT n.server_id, n.kind, n.subject, n.severity, n.opened_at, '', 1
		FROM incidents n JOIN servers s ON s.id = n.server_id JOIN installations i ON i.id = n.installation_id AND i.integrator_id = n.integrator_id
		WHERE i.integrator_id = ? AND s.revoked_at IS NULL AND n.is_event = 1 AND n.state <> 'resolved'`+filter+`
		ORDER BY 5`, append(append([]any{}, args...), args...)...)
	if err != nil {
		return nil, err
	}
	err = scanConditions(crows, func(id string, c keepwatch.Condition) {
		if i, ok := byID[id]; ok {
			c.Server = out[i].Name
			out[i].Conditions = append(out[i].Conditions, c)
		}
	})
	return out, err
}

// scanConditions reads rows of (server id, kind, subject, severity,
// since, message, is an event) and hands each condition to add.
func scanConditions(rows *sql.Rows, add func(serverID string, c keepwatch.Condition)) error {
	defer rows.Close()
	for rows.Next() {
		var id, sev string
		var c keepwatch.Condition
		var since, event int64
		if err := rows.Scan(&id, &c.Kind, &c.Subject, &sev, &since, &c.Message, &event); err != nil {
			return dbErr(err)
		}
		c.Event = event == 1
		c.Severity, c.Since = keepwatch.Severity(sev), keepwatch.TimeFromMillis(since)
		add(id, c)
	}
	return dbErr(rows.Err())
}
