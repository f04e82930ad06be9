package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// errResetInvalid is the one answer to an unknown, used or expired reset
// link.
var errResetInvalid = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this reset link is not valid any more: links work once, for a short while. Ask for a new one")

// CreatePasswordReset stores a reset link's token hash.
func (s *Store) CreatePasswordReset(ctx context.Context, r keepwatch.PasswordReset) error {
	return s.tx(ctx, func(t *Tx) error {
		// Links long dead are of no use to anyone.
		if _, err := t.exec(`DELETE FROM password_resets WHERE expires_at < ?`, r.CreatedAt.Add(-7*24*time.Hour).UnixMilli()); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO password_resets (token_hash, user_id, integrator_id, created_at, expires_at, remote_addr) VALUES (?, ?, ?, ?, ?, ?)`,
			r.TokenHash, r.UserID, r.IntegratorID, r.CreatedAt.UnixMilli(), r.ExpiresAt.UnixMilli(), truncate(r.RemoteAddr, 64))
		return err
	})
}

// PasswordResetsSince counts the reset links made for a user since since,
// used or not: the per-account limit, shared by every node.
func (s *Store) PasswordResetsSince(ctx context.Context, userID int64, since time.Time) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM password_resets WHERE user_id = ? AND created_at >= ?`, userID, since.UnixMilli()).Scan(&n)
	return n, dbErr(err)
}

// PasswordReset returns the user a live reset link belongs to.
func (s *Store) PasswordReset(ctx context.Context, tokenHash []byte, now time.Time) (keepwatch.LoginUser, error) {
	var u keepwatch.LoginUser
	var role string
	err := s.queryRow(ctx, `SELECT u.id, u.integrator_id, u.email, u.role FROM password_resets r
		JOIN users u ON u.id = r.user_id AND u.integrator_id = r.integrator_id
		WHERE r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > ?`, tokenHash, now.UnixMilli()).Scan(&u.ID, &u.IntegratorID, &u.Email, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return u, errResetInvalid
	}
	u.Role = keepwatch.Role(role)
	return u, dbErr(err)
}

// UsePasswordReset spends a reset link: it sets the user's new password
// hash, voids the user's other links and ends all of the user's sessions,
// in one transaction. A link works once, however many try at once.
func (s *Store) UsePasswordReset(ctx context.Context, tokenHash []byte, now time.Time, passwordHash string) (keepwatch.LoginUser, error) {
	var u keepwatch.LoginUser
	err := s.tx(ctx, func(t *Tx) error {
		var role string
		err := t.queryRow(`SELECT u.id, u.integrator_id, u.email, u.role FROM password_resets r
			JOIN users u ON u.id = r.user_id AND u.integrator_id = r.integrator_id
			WHERE r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > ?`, tokenHash, now.UnixMilli()).Scan(&u.ID, &u.IntegratorID, &u.Email, &role)
		if errors.Is(err, sql.ErrNoRows) {
			return errResetInvalid
		}
		if err != nil {
			return dbErr(err)
		}
		u.Role = keepwatch.Role(role)
		r, err := t.exec(`UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`, now.UnixMilli(), tokenHash)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return errResetInvalid
		}
		if _, err := t.exec(`UPDATE users SET password_hash = ? WHERE integrator_id = ? AND id = ?`, passwordHash, u.IntegratorID, u.ID); err != nil {
			return err
		}
		_, err = t.endPasswordState(u.IntegratorID, u.ID, nil, now)
		return err
	})
	return u, err
}
