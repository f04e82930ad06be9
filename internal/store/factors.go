package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// Factors lists a user's second factors, oldest first.
func (s *Store) Factors(ctx context.Context, integratorID, userID int64) ([]keepwatch.Factor, error) {
	rows, err := s.query(ctx, `SELECT id, kind, name, created_at, COALESCE(last_used_at, 0) FROM user_factors
		WHERE integrator_id = ? AND user_id = ? ORDER BY created_at, id`, integratorID, userID)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, func(r scanner) (keepwatch.Factor, error) {
		var f keepwatch.Factor
		var kind string
		var created, used int64
		err := r.Scan(&f.ID, &kind, &f.Name, &created, &used)
		f.Kind, f.CreatedAt, f.LastUsedAt = keepwatch.FactorKind(kind), keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(used)
		return f, err
	})
}

// AddTOTP stores a user's authenticator-app seed (sealed). step is the
// time step of the code that confirmed it, which cannot be used again. A
// user has at most one.
func (s *Store) AddTOTP(ctx context.Context, integratorID, userID int64, name string, sealed []byte, step int64) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		if err := t.userExists(integratorID, userID); err != nil {
			return err
		}
		var err error
		id, err = t.insert(`INSERT INTO user_factors (integrator_id, user_id, kind, name, secret, last_step, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			integratorID, userID, string(keepwatch.FactorTOTP), name, sealed, step, s.now().UnixMilli())
		if isUniqueViolation(err) {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "you already have an authenticator app; remove it first to set up another")
		}
		return err
	})
	return id, err
}

// TOTP returns a user's authenticator-app factor id and sealed seed.
func (s *Store) TOTP(ctx context.Context, integratorID, userID int64) (int64, []byte, error) {
	var id int64
	var sealed []byte
	err := s.queryRow(ctx, `SELECT id, secret FROM user_factors WHERE integrator_id = ? AND user_id = ? AND kind = ?`,
		integratorID, userID, string(keepwatch.FactorTOTP)).Scan(&id, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, keepwatch.Errorf(keepwatch.ENOTFOUND, "no authenticator app is set up")
	}
	return id, sealed, dbErr(err)
}

// UseTOTPStep records that the code of time step step was accepted. It
// reports false if that step or a later one was used already: a code
// works once.
func (s *Store) UseTOTPStep(ctx context.Context, integratorID, factorID, step int64, at time.Time) (bool, error) {
	var ok bool
	err := s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE user_factors SET last_step = ?, last_used_at = ? WHERE integrator_id = ? AND id = ? AND last_step < ?`,
			step, at.UnixMilli(), integratorID, factorID, step)
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		ok = n == 1
		return nil
	})
	return ok, err
}

// AddPasskey stores a WebAuthn credential.
func (s *Store) AddPasskey(ctx context.Context, p keepwatch.Passkey) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		if err := t.userExists(p.IntegratorID, p.UserID); err != nil {
			return err
		}
		var err error
		id, err = t.insert(`INSERT INTO user_factors (integrator_id, user_id, kind, name, credential_id, user_handle, credential, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.IntegratorID, p.UserID, string(keepwatch.FactorPasskey), p.Name, p.CredentialID, p.Handle, string(p.Credential), s.now().UnixMilli())
		if isUniqueViolation(err) {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "this passkey is registered already")
		}
		return err
	})
	return id, err
}

// userExists checks that a user belongs to the integrator.
func (t *Tx) userExists(integratorID, userID int64) error {
	var one int
	err := t.queryRow(`SELECT 1 FROM users WHERE integrator_id = ? AND id = ?`, integratorID, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such user in your account")
	}
	return dbErr(err)
}

const passkeyColumns = `id, user_id, integrator_id, name, credential_id, user_handle, credential, created_at, COALESCE(last_used_at, 0)`

func scanPasskey(r scanner) (keepwatch.Passkey, error) {
	var p keepwatch.Passkey
	var cred string
	var created, used int64
	err := r.Scan(&p.ID, &p.UserID, &p.IntegratorID, &p.Name, &p.CredentialID, &p.Handle, &cred, &created, &used)
	p.Credential, p.CreatedAt, p.LastUsedAt = []byte(cred), keepwatch.TimeFromMillis(created), keepwatch.TimeFromMillis(used)
	return p, err
}

// Passkeys returns a user's passkeys.
func (s *Store) Passkeys(ctx context.Context, integratorID, userID int64) ([]keepwatch.Passkey, error) {
	rows, err := s.query(ctx, `SELECT `+passkeyColumns+` FROM user_factors WHERE integrator_id = ? AND user_id = ? AND kind = ? ORDER BY id`,
		integratorID, userID, string(keepwatch.FactorPasskey))
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scanPasskey)
}

// PasskeysByHandle returns the passkeys registered under a WebAuthn user
// handle (one user's), for a sign-in where the authenticator names the
// user. Unknown handles are unauthorized.
func (s *Store) PasskeysByHandle(ctx context.Context, handle []byte) ([]keepwatch.Passkey, error) {
	rows, err := s.query(ctx, `SELECT `+passkeyColumns+` FROM user_factors WHERE user_handle = ? AND kind = ? ORDER BY id`,
		handle, string(keepwatch.FactorPasskey))
	if err != nil {
		return nil, err
	}
	ps, err := scanAll(rows, scanPasskey)
	if err == nil && len(ps) == 0 {
		err = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this passkey is not registered with keepwatch")
	}
	return ps, err
}

// UsePasskey stores a passkey's state after a sign-in (its signature
// counter) and when it was used.
func (s *Store) UsePasskey(ctx context.Context, integratorID, id int64, credential []byte, at time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE user_factors SET credential = ?, last_used_at = ? WHERE integrator_id = ? AND id = ?`,
			string(credential), at.UnixMilli(), integratorID, id)
		return err
	})
}

// RemoveFactor removes one of a user's second factors and returns it.
// When the integrator requires a second factor, the last one cannot be
// removed. Removing the last one also removes the recovery codes.
func (s *Store) RemoveFactor(ctx context.Context, integratorID, userID, factorID int64) (keepwatch.Factor, error) {
	var f keepwatch.Factor
	err := s.tx(ctx, func(t *Tx) error {
		var kind string
		err := t.queryRow(`SELECT id, kind, name FROM user_factors WHERE integrator_id = ? AND user_id = ? AND id = ?`,
			integratorID, userID, factorID).Scan(&f.ID, &kind, &f.Name)
		if errors.Is(err, sql.ErrNoRows) {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such second factor on your account")
		}
		if err != nil {
			return dbErr(err)
		}
		f.Kind = keepwatch.FactorKind(kind)
		var others, required int
		if err := t.queryRow(`SELECT COUNT(*) FROM user_factors WHERE integrator_id = ? AND user_id = ? AND id <> ?`,
			integratorID, userID, factorID).Scan(&others); err != nil {
			return dbErr(err)
		}
		if err := t.queryRow(`SELECT require_second_factor FROM integrators WHERE id = ?`, integratorID).Scan(&required); err != nil {
			return dbErr(err)
		}
		if others == 0 && required == 1 {
			return keepwatch.Errorf(keepwatch.ECONFLICT, "your account requires a second factor: add another before removing this one")
		}
		if _, err := t.exec(`DELETE FROM user_factors WHERE integrator_id = ? AND user_id = ? AND id = ?`, integratorID, userID, factorID); err != nil {
			return err
		}
		if others == 0 {
			_, err = t.exec(`DELETE FROM recovery_codes WHERE integrator_id = ? AND user_id = ?`, integratorID, userID)
		}
		return err
	})
	return f, err
}

// ReplaceRecoveryCodes stores a user's new recovery codes (their hashes);
// the old ones stop working.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, integratorID, userID int64, hashes [][]byte) error {
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM recovery_codes WHERE integrator_id = ? AND user_id = ?`, integratorID, userID); err != nil {
			return err
		}
		now := s.now().UnixMilli()
		for _, h := range hashes {
			if _, err := t.exec(`INSERT INTO recovery_codes (user_id, code_hash, integrator_id, created_at) VALUES (?, ?, ?, ?)`,
				userID, h, integratorID, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// UseRecoveryCode spends one of a user's recovery codes and returns how
// many are left. A used or unknown code is unauthorized.
func (s *Store) UseRecoveryCode(ctx context.Context, integratorID, userID int64, hash []byte, at time.Time) (left int, err error) {
	err = s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE recovery_codes SET used_at = ? WHERE integrator_id = ? AND user_id = ? AND code_hash = ? AND used_at IS NULL`,
			at.UnixMilli(), integratorID, userID, hash)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "that recovery code is not valid (each works once)")
		}
		return dbErr(t.queryRow(`SELECT COUNT(*) FROM recovery_codes WHERE integrator_id = ? AND user_id = ? AND used_at IS NULL`,
			integratorID, userID).Scan(&left))
	})
	return left, err
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, integratorID, userID int64) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE integrator_id = ? AND user_id = ? AND used_at IS NULL`,
		integratorID, userID).Scan(&n)
	return n, dbErr(err)
}
