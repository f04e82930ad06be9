package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// UsersForLogin returns the users with that e-mail for a sign-in attempt:
// one per integrator the address has an account with (at most 10, oldest
// first); none is an empty list.
func (s *Store) UsersForLogin(ctx context.Context, email string) ([]keepwatch.LoginUser, error) {
	rows, err := s.query(ctx, `SELECT id, integrator_id, email, role, password_hash FROM users WHERE email = ? ORDER BY id LIMIT 10`, email)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, func(r scanner) (keepwatch.LoginUser, error) {
		var u keepwatch.LoginUser
		var role string
		err := r.Scan(&u.ID, &u.IntegratorID, &u.Email, &role, &u.PasswordHash)
		u.Role = keepwatch.Role(role)
		return u, err
	})
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, n keepwatch.NewSession) error {
	now := s.now().UnixMilli()
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO sessions (id_hash, user_id, integrator_id, csrf_token, created_at, last_seen_at, expires_at, remote_addr, user_agent, method)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.IDHash, n.UserID, n.IntegratorID, n.CSRF, now, now, n.ExpiresAt.UnixMilli(), n.RemoteAddr, truncate(n.UserAgent, 256), n.Method)
		return err
	})
}

// SessionByHash returns the live session whose cookie hashes to idHash: not
// revoked, not past its absolute expiry, and used after idleSince. Anything
// else is unauthorized.
func (s *Store) SessionByHash(ctx context.Context, idHash []byte, idleSince time.Time) (keepwatch.Session, error) {
	var ss keepwatch.Session
	var role string
	var created, seen, expires int64
	err := s.queryRow(ctx, `SELECT s.user_id, s.integrator_id, u.email, u.role, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id AND u.integrator_id = s.integrator_id
		WHERE s.id_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND s.last_seen_at > ?`,
		idHash, s.now().UnixMilli(), idleSince.UnixMilli()).
		Scan(&ss.UserID, &ss.IntegratorID, &ss.Email, &role, &ss.CSRF, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return ss, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "your session has ended, sign in again")
	}
	if err != nil {
		return ss, dbErr(err)
	}
	ss.Role = keepwatch.Role(role)
	ss.CreatedAt, ss.LastSeen, ss.ExpiresAt = keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(seen), keepwatch.TimeFromMillis(expires)
	return ss, nil
}

// TouchSession records that a session was used at at, which keeps it from
// expiring idle.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND revoked_at IS NULL AND last_seen_at < ?`,
			at.UnixMilli(), idHash, at.UnixMilli())
		return err
	})
}

// RevokeSession ends one session (sign out).
func (s *Store) RevokeSession(ctx context.Context, idHash []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL`, s.now().UnixMilli(), idHash)
		return err
	})
}

// RevokeUserSessions ends every session of one of an integrator's users.
func (s *Store) RevokeUserSessions(ctx context.Context, integratorID, userID int64) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE integrator_id = ? AND user_id = ? AND revoked_at IS NULL`,
			s.now().UnixMilli(), integratorID, userID)
		return err
	})
}

// DeleteEndedSessions removes sessions that expired or were revoked before
// before; they can never be used again.
func (s *Store) DeleteEndedSessions(ctx context.Context, before time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?`, before.UnixMilli(), before.UnixMilli())
		return err
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
