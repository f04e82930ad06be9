package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// LoginUserByID returns one of an integrator's users as a sign-in sees it.
func (s *Store) LoginUserByID(ctx context.Context, integratorID, userID int64) (keepwatch.LoginUser, error) {
	var u keepwatch.LoginUser
	var role string
	err := s.queryRow(ctx, `SELECT id, integrator_id, email, role, password_hash FROM users WHERE integrator_id = ? AND id = ?`, integratorID, userID).
		Scan(&u.ID, &u.IntegratorID, &u.Email, &role, &u.PasswordHash)
	if errors.Is(err, sql.ErrNoRows) {
		return u, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such user in your account")
	}
	u.Role = keepwatch.Role(role)
	return u, dbErr(err)
}

// SetUserPassword replaces a user's password hash, voids the user's
// outstanding reset links and ends every session of the user but keep
// (nil: all of them).
func (s *Store) SetUserPassword(ctx context.Context, integratorID, userID int64, hash string, keep []byte) (ended int, err error) {
	err = s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE users SET password_hash = ? WHERE integrator_id = ? AND id = ?`, hash, integratorID, userID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such user in your account")
		}
		ended, err = t.endPasswordState(integratorID, userID, keep, s.now())
		return err
	})
	return ended, err
}

// endPasswordState voids reset links and ends sessions (but keep) after a
// password changed.
func (t *Tx) endPasswordState(integratorID, userID int64, keep []byte, now time.Time) (int, error) {
	if _, err := t.exec(`UPDATE password_resets SET used_at = ? WHERE integrator_id = ? AND user_id = ? AND used_at IS NULL`,
		now.UnixMilli(), integratorID, userID); err != nil {
		return 0, err
	}
	if keep == nil {
		keep = []byte{}
	}
	r, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE integrator_id = ? AND user_id = ? AND revoked_at IS NULL AND id_hash <> ?`,
		now.UnixMilli(), integratorID, userID, keep)
	if err != nil {
		return 0, err
	}
	n, _ := r.RowsAffected()
	return int(n), nil
}

// UserSessions lists a user's live sessions, most recently used first.
func (s *Store) UserSessions(ctx context.Context, integratorID, userID int64, idleSince time.Time) ([]keepwatch.SessionInfo, error) {
	rows, err := s.query(ctx, `SELECT id_hash, created_at, last_seen_at, expires_at, remote_addr, user_agent, method FROM sessions
		WHERE integrator_id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?
		ORDER BY last_seen_at DESC, created_at DESC`, integratorID, userID, s.now().UnixMilli(), idleSince.UnixMilli())
	if err != nil {
		return nil, err
	}
	return scanAll(rows, func(r scanner) (keepwatch.SessionInfo, error) {
		var si keepwatch.SessionInfo
		var created, seen, expires int64
		err := r.Scan(&si.IDHash, &created, &seen, &expires, &si.RemoteAddr, &si.UserAgent, &si.Method)
		si.CreatedAt, si.LastSeen, si.ExpiresAt = keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(seen), keepwatch.TimeFromMillis(expires)
		return si, err
	})
}

// EndUserSession ends one of a user's sessions.
func (s *Store) EndUserSession(ctx context.Context, integratorID, userID int64, idHash []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE integrator_id = ? AND user_id = ? AND id_hash = ? AND revoked_at IS NULL`,
			s.now().UnixMilli(), integratorID, userID, idHash)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "that session has already ended")
		}
		return nil
	})
}

// EndOtherSessions ends every session of a user but keep, and returns how
// many it ended.
func (s *Store) EndOtherSessions(ctx context.Context, integratorID, userID int64, keep []byte) (int, error) {
	var n int64
	err := s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE integrator_id = ? AND user_id = ? AND revoked_at IS NULL AND id_hash <> ?`,
			s.now().UnixMilli(), integratorID, userID, keep)
		if err != nil {
			return err
		}
		n, _ = r.RowsAffected()
		return nil
	})
	return int(n), err
}

// SecondFactorRequired reports whether the integrator requires a second
// factor of everyone.
func (s *Store) SecondFactorRequired(ctx context.Context, integratorID int64) (bool, error) {
	var on int
	err := s.queryRow(ctx, `SELECT require_second_factor FROM integrators WHERE id = ?`, integratorID).Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return false, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such account")
	}
	return on == 1, dbErr(err)
}

// SetSecondFactorRequired turns the requirement on or off. Turning it on
// ends every session of the integrator's that signed in with a password
// alone, of users who have no second factor; it returns how many.
func (s *Store) SetSecondFactorRequired(ctx context.Context, integratorID int64, on bool) (ended int, err error) {
	err = s.tx(ctx, func(t *Tx) error {
		v := 0
		if on {
			v = 1
		}
		if _, err := t.exec(`UPDATE integrators SET require_second_factor = ? WHERE id = ?`, v, integratorID); err != nil {
			return err
		}
		if !on {
			return nil
		}
		r, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE integrator_id = ? AND revoked_at IS NULL AND method IN ('', ?)
			AND user_id NOT IN (SELECT user_id FROM user_factors WHERE integrator_id = ?)`,
			s.now().UnixMilli(), integratorID, keepwatch.MethodPassword, integratorID)
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		ended = int(n)
		return nil
	})
	return ended, err
}

// TouchToken records that an API token was used at at, unless a later use
// is recorded already.
func (s *Store) TouchToken(ctx context.Context, hash []byte, at time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
			at.UnixMilli(), hash, at.UnixMilli())
		return err
	})
}
