package store

import (
	"context"
	"database/sql"
	"errors"

	"keepwatch"
)

// CreateIntegrator adds a tenant. Names are unique.
func (s *Store) CreateIntegrator(ctx context.Context, name string) (keepwatch.Integrator, error) {
	in := keepwatch.Integrator{Name: name, CreatedAt: s.now().UTC()}
	err := s.tx(ctx, func(t *Tx) error {
		id, err := t.insert(`INSERT INTO integrators (name, created_at) VALUES (?, ?)`, name, keepwatch.Millis(in.CreatedAt))
		if isUniqueViolation(err) {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "an integrator named %q exists", name)
		}
		in.ID = id
		return err
	})
	return in, err
}

// IntegratorByName finds an integrator (operator use only).
func (s *Store) IntegratorByName(ctx context.Context, name string) (keepwatch.Integrator, error) {
	var in keepwatch.Integrator
	var created int64
	err := s.queryRow(ctx, `SELECT id, name, created_at FROM integrators WHERE name = ?`, name).Scan(&in.ID, &in.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return in, keepwatch.Errorf(keepwatch.ENOTFOUND, "no integrator named %q", name)
	}
	in.CreatedAt = keepwatch.TimeFromMillis(created)
	return in, dbErr(err)
}

// CreateUser adds a user to an integrator. passwordHash is an encoded
// argon2id hash; the password itself is never stored.
func (s *Store) CreateUser(ctx context.Context, integratorID int64, email, passwordHash string, role keepwatch.Role) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		id, err = t.insert(`INSERT INTO users (integrator_id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)`,
			integratorID, email, passwordHash, string(role), s.now().UnixMilli())
		if isUniqueViolation(err) {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "this integrator has a user with e-mail %q", email)
		}
		return err
	})
	return id, err
}

// CreateToken stores an API token's hash.
func (s *Store) CreateToken(ctx context.Context, integratorID int64, name string, role keepwatch.Role, hash []byte) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		id, err = t.insert(`INSERT INTO api_tokens (integrator_id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			integratorID, name, string(role), hash, s.now().UnixMilli())
		return err
	})
	return id, err
}

// PrincipalByTokenHash authenticates an API token by the SHA-256 of its
// value. Unknown and revoked tokens are unauthorized.
func (s *Store) PrincipalByTokenHash(ctx context.Context, hash []byte) (keepwatch.Principal, error) {
	var p keepwatch.Principal
	var name, role string
	err := s.queryRow(ctx, `SELECT integrator_id, name, role FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL`, hash).
		Scan(&p.IntegratorID, &name, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return p, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "invalid or revoked token")
	}
	if err != nil {
		return p, dbErr(err)
	}
	p.Role, p.Actor = keepwatch.Role(role), "token:"+name
	return p, nil
}

// UserPasswordHash returns a user's integrator, role and password hash for
// login.
func (s *Store) UserPasswordHash(ctx context.Context, email string) (p keepwatch.Principal, hash string, err error) {
	var role string
	err = s.queryRow(ctx, `SELECT integrator_id, role, password_hash FROM users WHERE email = ?`, email).Scan(&p.IntegratorID, &role, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return p, "", keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "wrong e-mail or password")
	}
	p.Role, p.Actor = keepwatch.Role(role), "user:"+email
	return p, hash, dbErr(err)
}

// SetPassword replaces the password hash of an integrator's user
// (operator use).
func (s *Store) SetPassword(ctx context.Context, integratorID int64, email, passwordHash string) error {
	return s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE users SET password_hash = ? WHERE integrator_id = ? AND email = ?`, passwordHash, integratorID, email)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no user %q", email)
		}
		return nil
	})
}
