package store

import (
	"context"
	"database/sql"
	"errors"

	"keepwatch"
)

// Users lists an integrator's users by e-mail.
func (s *Store) Users(ctx context.Context, integratorID int64) ([]keepwatch.User, error) {
	rows, err := s.query(ctx, `SELECT u.id, u.email, u.role, u.created_at,
			COALESCE((SELECT MAX(x.created_at) FROM sessions x WHERE x.user_id = u.id AND x.integrator_id = u.integrator_id), 0)
		FROM users u WHERE u.integrator_id = ? ORDER BY u.email`, integratorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keepwatch.User
	for rows.Next() {
		var u keepwatch.User
		var role string
		var created, last int64
		if err := rows.Scan(&u.ID, &u.Email, &role, &created, &last); err != nil {
			return nil, dbErr(err)
		}
		u.Role, u.CreatedAt, u.LastLogin = keepwatch.Role(role), keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(last)
		out = append(out, u)
	}
	return out, dbErr(rows.Err())
}

// keepwatch.User returns one of an integrator's users.
func (s *Store) User(ctx context.Context, integratorID, userID int64) (keepwatch.User, error) {
	var u keepwatch.User
	var role string
	var created int64
	err := s.queryRow(ctx, `SELECT id, email, role, created_at FROM users WHERE integrator_id = ? AND id = ?`, integratorID, userID).
		Scan(&u.ID, &u.Email, &role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such user in your account")
	}
	u.Role, u.CreatedAt = keepwatch.Role(role), keepwatch.TimeFromMillis(created)
	return u, dbErr(err)
}

// errLastOwner keeps an integrator from locking itself out.
var errLastOwner = keepwatch.Errorf(keepwatch.ECONFLICT, "an account needs at least one owner")

// lockUser checks that the user belongs to the integrator and, when the
// change takes an owner away, that another owner remains.
func (t *Tx) lockUser(integratorID, userID int64, losesOwner bool) error {
	var role string
	err := t.queryRow(`SELECT role FROM users WHERE integrator_id = ? AND id = ?`, integratorID, userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such user in your account")
	}
	if err != nil {
		return dbErr(err)
	}
	if keepwatch.Role(role) == keepwatch.RoleOwner && losesOwner {
		var owners int
		if err := t.queryRow(`SELECT COUNT(*) FROM users WHERE integrator_id = ? AND role = 'owner'`, integratorID).Scan(&owners); err != nil {
			return dbErr(err)
		}
		if owners <= 1 {
			return errLastOwner
		}
	}
	return nil
}

// SetUserRole changes the role of one of an integrator's users. The last
// owner cannot be demoted.
func (s *Store) SetUserRole(ctx context.Context, integratorID, userID int64, role keepwatch.Role) error {
	return s.tx(ctx, func(t *Tx) error {
		if err := t.lockUser(integratorID, userID, role != keepwatch.RoleOwner); err != nil {
			return err
		}
		_, err := t.exec(`UPDATE users SET role = ? WHERE integrator_id = ? AND id = ?`, string(role), integratorID, userID)
		return err
	})
}

// DeleteUser removes one of an integrator's users with its sessions and
// assignments. The last owner cannot be removed. The audit log keeps the
// user's e-mail as it was.
func (s *Store) DeleteUser(ctx context.Context, integratorID, userID int64) error {
	return s.tx(ctx, func(t *Tx) error {
		if err := t.lockUser(integratorID, userID, true); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM sessions WHERE integrator_id = ? AND user_id = ?`,
			`DELETE FROM incident_assignments WHERE user_id IN (SELECT id FROM users WHERE integrator_id = ? AND id = ?)`,
			`DELETE FROM users WHERE integrator_id = ? AND id = ?`,
		} {
			if _, err := t.exec(q, integratorID, userID); err != nil {
				return err
			}
		}
		return nil
	})
}

// Tokens lists an integrator's API tokens, newest first.
func (s *Store) Tokens(ctx context.Context, integratorID int64) ([]keepwatch.Token, error) {
	rows, err := s.query(ctx, `SELECT id, name, role, created_at, COALESCE(revoked_at, 0), COALESCE(last_used_at, 0) FROM api_tokens
		WHERE integrator_id = ? ORDER BY revoked_at IS NOT NULL, created_at DESC, id DESC`, integratorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keepwatch.Token
	for rows.Next() {
		var tk keepwatch.Token
		var role string
		var created, revoked, used int64
		if err := rows.Scan(&tk.ID, &tk.Name, &role, &created, &revoked, &used); err != nil {
			return nil, dbErr(err)
		}
		tk.Role, tk.CreatedAt, tk.RevokedAt = keepwatch.Role(role), keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(revoked)
		tk.LastUsedAt = keepwatch.TimeFromMillis(used)
		out = append(out, tk)
	}
	return out, dbErr(rows.Err())
}

// RevokeToken makes one of an integrator's API tokens stop working. It
// returns the token's name.
func (s *Store) RevokeToken(ctx context.Context, integratorID, tokenID int64) (string, error) {
	var name string
	err := s.tx(ctx, func(t *Tx) error {
		err := t.queryRow(`SELECT name FROM api_tokens WHERE integrator_id = ? AND id = ?`, integratorID, tokenID).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such token in your account")
		}
		if err != nil {
			return dbErr(err)
		}
		r, err := t.exec(`UPDATE api_tokens SET revoked_at = ? WHERE integrator_id = ? AND id = ? AND revoked_at IS NULL`,
			s.now().UnixMilli(), integratorID, tokenID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "the token is already revoked")
		}
		return nil
	})
	return name, err
}
