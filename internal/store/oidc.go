package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"keepwatch"
)

// errNoOIDC is the one answer for an integrator that does not exist and one
// that has no identity provider.
var errNoOIDC = keepwatch.Errorf(keepwatch.ENOTFOUND, "company sign-in is not set up for this account")

// SetOIDCProvider stores an integrator's identity provider. sealedSecret
// nil keeps the client secret stored before.
func (s *Store) SetOIDCProvider(ctx context.Context, p keepwatch.OIDCProvider, sealedSecret []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		args := []any{p.Issuer, p.ClientID, strings.Join(p.Domains, ","), p.RoleClaim, keepwatch.FormatRoleMap(p.RoleMap),
			string(p.DefaultRole), s.now().UnixMilli(), p.UpdatedBy}
		if sealedSecret == nil {
			r, err := t.exec(`UPDATE oidc_providers SET issuer = ?, client_id = ?, domains = ?, role_claim = ?, role_map = ?, default_role = ?,
				updated_at = ?, updated_by = ? WHERE integrator_id = ?`, append(args, p.IntegratorID)...)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == 0 {
				return keepwatch.Errorf(keepwatch.EINVALID, "enter the client secret the identity provider gave keepwatch")
			}
			return nil
		}
		if _, err := t.exec(`DELETE FROM oidc_providers WHERE integrator_id = ?`, p.IntegratorID); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO oidc_providers (issuer, client_id, domains, role_claim, role_map, default_role, updated_at, updated_by,
			integrator_id, client_secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, append(args, p.IntegratorID, sealedSecret)...)
		return err
	})
}

// OIDCProvider returns an integrator's identity provider and its sealed
// client secret.
func (s *Store) OIDCProvider(ctx context.Context, integratorID int64) (keepwatch.OIDCProvider, []byte, error) {
	var p keepwatch.OIDCProvider
	var sealed []byte
	var domains, roleMap, role string
	var updated int64
	err := s.queryRow(ctx, `SELECT integrator_id, issuer, client_id, client_secret, domains, role_claim, role_map, default_role, updated_at, updated_by
		FROM oidc_providers WHERE integrator_id = ?`, integratorID).
		Scan(&p.IntegratorID, &p.Issuer, &p.ClientID, &sealed, &domains, &p.RoleClaim, &roleMap, &role, &updated, &p.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil, errNoOIDC
	}
	if err != nil {
		return p, nil, dbErr(err)
	}
	if domains != "" {
		p.Domains = strings.Split(domains, ",")
	}
	p.RoleMap, _ = keepwatch.ParseRoleMap(roleMap)
	p.DefaultRole, p.UpdatedAt = keepwatch.Role(role), keepwatch.TimeFromMillis(updated)
	return p, sealed, nil
}

// OIDCProviderByName returns the identity provider of the integrator
// named name.
func (s *Store) OIDCProviderByName(ctx context.Context, name string) (keepwatch.OIDCProvider, []byte, error) {
	var id int64
	err := s.queryRow(ctx, `SELECT id FROM integrators WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return keepwatch.OIDCProvider{}, nil, errNoOIDC
	}
	if err != nil {
		return keepwatch.OIDCProvider{}, nil, dbErr(err)
	}
	return s.OIDCProvider(ctx, id)
}

// DeleteOIDCProvider removes an integrator's identity provider; the links
// of its subjects to users go with it.
func (s *Store) DeleteOIDCProvider(ctx context.Context, integratorID int64) error {
	return s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`DELETE FROM oidc_providers WHERE integrator_id = ?`, integratorID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errNoOIDC
		}
		_, err = t.exec(`DELETE FROM oidc_identities WHERE integrator_id = ?`, integratorID)
		return err
	})
}

// OIDCUser returns the user an identity provider's subject was linked to.
func (s *Store) OIDCUser(ctx context.Context, integratorID int64, issuer, subject string) (keepwatch.LoginUser, error) {
	var u keepwatch.LoginUser
	var role string
	err := s.queryRow(ctx, `SELECT u.id, u.integrator_id, u.email, u.role, u.password_hash FROM oidc_identities i
		JOIN users u ON u.id = i.user_id AND u.integrator_id = i.integrator_id
		WHERE i.integrator_id = ? AND i.issuer = ? AND i.subject = ?`, integratorID, issuer, subject).
		Scan(&u.ID, &u.IntegratorID, &u.Email, &role, &u.PasswordHash)
	if errors.Is(err, sql.ErrNoRows) {
		return u, keepwatch.Errorf(keepwatch.ENOTFOUND, "no user for this identity")
	}
	u.Role = keepwatch.Role(role)
	return u, dbErr(err)
}

// LinkOIDCUser links an identity provider's subject to a user.
func (s *Store) LinkOIDCUser(ctx context.Context, integratorID int64, issuer, subject string, userID int64) error {
	return s.tx(ctx, func(t *Tx) error {
		if err := t.userExists(integratorID, userID); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO oidc_identities (integrator_id, issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?, ?)`,
			integratorID, issuer, subject, userID, s.now().UnixMilli())
		if isUniqueViolation(err) {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "this identity is linked to another user")
		}
		return err
	})
}

// IntegratorName returns an integrator's name.
func (s *Store) IntegratorName(ctx context.Context, integratorID int64) (string, error) {
	var name string
	err := s.queryRow(ctx, `SELECT name FROM integrators WHERE id = ?`, integratorID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", keepwatch.Errorf(keepwatch.ENOTFOUND, "no such account")
	}
	return name, dbErr(err)
}
