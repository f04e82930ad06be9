package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// RequestReenrollment records a re-enrollment of a known server name that
// came without proof of the server's current report key. The new key is
// kept aside (pending_key) and the server keeps reporting with its old one
// until the integrator approves; a later request replaces an earlier one.
// The request is audited in the integrator's log.
func (s *Store) RequestReenrollment(ctx context.Context, e keepwatch.Enrollment, remote string) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		var revoked sql.NullInt64
		var integ sql.NullInt64
		var slc string
		err = t.queryRow(`SELECT s.revoked_at, i.integrator_id, i.slc FROM servers s JOIN installations i ON i.id = s.installation_id
			WHERE s.id = ? AND s.installation_id = ?`, e.ID, e.InstallationID).Scan(&revoked, &integ, &slc)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "unknown server")
		}
		if err != nil {
			return dbErr(err)
		}
		if revoked.Valid {
			return keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this server was revoked by the operator")
		}
		now := s.now()
		if _, err := t.exec(`UPDATE reenrollments SET state = ?, decided_at = ? WHERE server_id = ? AND state = ?`,
			keepwatch.ReenrollmentSuperseded, now.UnixMilli(), e.ID, keepwatch.ReenrollmentPending); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE servers SET pending_key = ?, rev = ? WHERE id = ?`, s.sealReportKey(e.ID, e.Key), rev, e.ID); err != nil {
			return err
		}
		id, err = t.insert(`INSERT INTO reenrollments (server_id, installation_id, agent_version, remote_addr, requested_at, state) VALUES (?, ?, ?, ?, ?, ?)`,
			e.ID, e.InstallationID, e.AgentVersion, truncate(remote, 64), now.UnixMilli(), keepwatch.ReenrollmentPending)
		if err != nil {
			return err
		}
		if integ.Valid {
			_, err = t.exec(`INSERT INTO audit_log (integrator_id, at, actor, action, target, detail, source, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				integ.Int64, now.UnixMilli(), "agent", "reenrollment.request", truncate(slc+" / "+e.Name, 256),
				"a new enrollment of this server name without its current key waits for approval; the old key keeps working", "ingest", truncate(remote, 64))
		}
		return err
	})
	return id, err
}

const reenrollmentCols = `r.id, r.server_id, s.name, i.slc, r.agent_version, r.remote_addr, r.requested_at, r.state, r.decided_by, r.decided_at`

// Reenrollments lists an integrator's re-enrollment requests, pending
// first, then the most recent decisions (at most limit).
func (s *Store) Reenrollments(ctx context.Context, integratorID int64, limit int) ([]keepwatch.Reenrollment, error) {
	rows, err := s.query(ctx, `SELECT `+reenrollmentCols+` FROM reenrollments r
		JOIN servers s ON s.id = r.server_id JOIN installations i ON i.id = r.installation_id
		WHERE i.integrator_id = ?
		ORDER BY CASE WHEN r.state = 'pending' THEN 0 ELSE 1 END, r.requested_at DESC, r.id DESC LIMIT ?`, integratorID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []keepwatch.Reenrollment{}
	for rows.Next() {
		var r keepwatch.Reenrollment
		var at int64
		var decided sql.NullInt64
		if err := rows.Scan(&r.ID, &r.ServerID, &r.Server, &r.SLC, &r.AgentVersion, &r.RemoteAddr, &at, &r.State, &r.DecidedBy, &decided); err != nil {
			return nil, dbErr(err)
		}
		r.RequestedAt = time.UnixMilli(at).UTC()
		if decided.Valid {
			d := time.UnixMilli(decided.Int64).UTC()
			r.DecidedAt = &d
		}
		out = append(out, r)
	}
	return out, dbErr(rows.Err())
}

// DecideReenrollment approves or rejects a pending re-enrollment of one
// of the integrator's servers. Approval switches the server to the new key
// at once (the old key is refused from then on, sequence numbers restart);
// rejection discards the new key. The caller audits the decision.
func (s *Store) DecideReenrollment(ctx context.Context, integratorID, id int64, approve bool, actor string) (keepwatch.Reenrollment, error) {
	var out keepwatch.Reenrollment
	err := s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		var serverID, name, slc string
		var pending []byte
		err = t.queryRow(`SELECT r.server_id, s.name, i.slc, s.pending_key FROM reenrollments r
			JOIN servers s ON s.id = r.server_id JOIN installations i ON i.id = r.installation_id
			WHERE r.id = ? AND i.integrator_id = ? AND r.state = ? AND s.revoked_at IS NULL`,
			id, integratorID, keepwatch.ReenrollmentPending).Scan(&serverID, &name, &slc, &pending)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no pending re-enrollment %d", id)
		}
		if err != nil {
			return dbErr(err)
		}
		now := s.now()
		state := keepwatch.ReenrollmentRejected
		if approve {
			if len(pending) == 0 {
				return keepwatch.Errorf(keepwatch.ENOTFOUND, "no pending re-enrollment %d", id)
			}
			state = keepwatch.ReenrollmentApproved
			_, err = t.exec(`UPDATE servers SET report_key = pending_key, pending_key = NULL, next_key = NULL, rotate_required = 0, last_seq = 0, status_seq = 0, consent = 1,
				enrolled_at = CASE WHEN enrolled_at < ? THEN ? ELSE enrolled_at + 1 END, rev = ?,
				state = CASE WHEN state = 'consent_withdrawn' THEN 'pending' ELSE state END WHERE id = ?`,
				now.UnixMilli(), now.UnixMilli(), rev, serverID)
		} else {
			_, err = t.exec(`UPDATE servers SET pending_key = NULL, rev = ? WHERE id = ?`, rev, serverID)
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE reenrollments SET state = ?, decided_by = ?, decided_at = ? WHERE id = ?`,
			state, truncate(actor, 128), now.UnixMilli(), id); err != nil {
			return err
		}
		d := now.UTC()
		out = keepwatch.Reenrollment{ID: id, ServerID: serverID, Server: name, SLC: slc, State: state, DecidedBy: actor, DecidedAt: &d}
		return nil
	})
	return out, err
}

// SetIntegratorEnrollmentKey replaces (keyHash) or revokes (nil) the
// enrollment key of an installation registered to the integrator.
func (s *Store) SetIntegratorEnrollmentKey(ctx context.Context, integratorID int64, slc string, keyHash []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		rev, err := t.nextRev()
		if err != nil {
			return err
		}
		var r sql.Result
		if keyHash == nil {
			r, err = t.exec(`UPDATE installations SET enrollment_key_hash = ?, rev = ? WHERE slc = ? AND integrator_id = ?`,
				[]byte{}, rev, slc, integratorID)
		} else {
			r, err = t.exec(`UPDATE installations SET enrollment_key_hash = ?, enrollment_key_issued_at = ?, rev = ? WHERE slc = ? AND integrator_id = ?`,
				keyHash, s.now().UnixMilli(), rev, slc, integratorID)
		}
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such installation in your account")
		}
		return nil
	})
}

// SetNextKey keeps the key of an in-band rotation the server's agent asked
// for; the first envelope sealed under it makes it the report key
// (PromoteNextKey). A later request replaces an earlier one. It returns
// the server row's new revision.
func (s *Store) SetNextKey(ctx context.Context, serverID string, key []byte) (int64, error) {
	return s.serverUpdateRev(ctx, serverID, `UPDATE servers SET next_key = ?, rev = ? WHERE id = ? AND revoked_at IS NULL`, s.sealReportKey(serverID, key))
}

// PromoteNextKey makes the rotated key the server's report key: the old
// key is refused from then on. Sequence numbers carry on. It returns the
// server row's new revision.
func (s *Store) PromoteNextKey(ctx context.Context, serverID string) (int64, error) {
	return s.serverUpdateRev(ctx, serverID, `UPDATE servers SET report_key = next_key, next_key = NULL, rotate_required = 0, rev = ?
		WHERE id = ? AND next_key IS NOT NULL AND revoked_at IS NULL`)
}

// RequireRotation makes keepwatch ask the server's agent to rotate its
// report key (the answer's rotate_key) until it has.
func (s *Store) RequireRotation(ctx context.Context, serverID string) error {
	return s.serverUpdate(ctx, serverID, `UPDATE servers SET rotate_required = 1, rev = ? WHERE id = ? AND revoked_at IS NULL`)
}

// serverUpdate runs one UPDATE of a server row, with the new revision
// before the id (after the leading args), so running nodes pick it up.
func (s *Store) serverUpdate(ctx context.Context, serverID, query string, lead ...any) error {
	_, err := s.serverUpdateRev(ctx, serverID, query, lead...)
	return err
}

// serverUpdateRev is serverUpdate returning the row's new revision.
func (s *Store) serverUpdateRev(ctx context.Context, serverID, query string, lead ...any) (int64, error) {
	var rev int64
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		if rev, err = t.nextRev(); err != nil {
			return err
		}
		r, err := t.exec(query, append(lead, rev, serverID)...)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no active server %s (or nothing to change)", serverID)
		}
		return nil
	})
	return rev, err
}
