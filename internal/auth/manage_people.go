package auth

import (
	"context"

	"keepwatch"
	"keepwatch/internal/secret"
)

// AccountStore is what adding people and tokens writes.
type AccountStore interface {
	CreateUser(ctx context.Context, integratorID int64, email, passwordHash string, role keepwatch.Role) (int64, error)
	CreateToken(ctx context.Context, integratorID int64, name string, role keepwatch.Role, hash []byte) (int64, error)
}

// NewUser adds a user with role to p's integrator, with a generated
// password that is returned once (the user changes it, or resets it by
// e-mail). The dashboard and the API both add people through it.
func NewUser(ctx context.Context, st AccountStore, p keepwatch.Principal, email, role string) (keepwatch.User, string, error) {
	e, err := keepwatch.NormalizeEmail(email)
	if err != nil {
		return keepwatch.User{}, "", err
	}
	r, err := keepwatch.ParseRole(role)
	if err != nil {
		return keepwatch.User{}, "", err
	}
	password := secret.New("")[:20]
	id, err := st.CreateUser(ctx, p.IntegratorID, e, secret.HashPassword(password), r)
	if keepwatch.ErrorCode(err) == keepwatch.ECONFLICT {
		err = keepwatch.Errorf(keepwatch.ECONFLICT, "your account already has a user with this e-mail address")
	}
	if err != nil {
		return keepwatch.User{}, "", err
	}
	return keepwatch.User{ID: id, Email: e, Role: r}, password, nil
}

// NewToken creates an API token with role for p's integrator and returns
// its value, once: only its hash is stored.
func NewToken(ctx context.Context, st AccountStore, p keepwatch.Principal, name, role string) (keepwatch.Token, string, error) {
	n, err := keepwatch.ValidTokenName(name)
	if err != nil {
		return keepwatch.Token{}, "", err
	}
	r, err := keepwatch.ParseRole(role)
	if err != nil {
		return keepwatch.Token{}, "", err
	}
	value := secret.New("kw_")
	id, err := st.CreateToken(ctx, p.IntegratorID, n, r, secret.Hash(value))
	if err != nil {
		return keepwatch.Token{}, "", err
	}
	return keepwatch.Token{ID: id, Name: n, Role: r}, value, nil
}
