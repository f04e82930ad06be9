package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"keepwatch"
)

// errFlowEnded is the answer to a sign-in step whose flow is unknown,
// used or expired.
var errFlowEnded = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this sign-in took too long or was already completed; please sign in again")

// CreateAuthFlow stores a sign-in in progress under the hash of the value
// the browser holds.
func (s *Store) CreateAuthFlow(ctx context.Context, idHash []byte, f keepwatch.AuthFlow) error {
	now := s.now()
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM auth_flows WHERE expires_at < ?`, now.Add(-time.Hour).UnixMilli()); err != nil {
			return err
		}
		var user any
		if f.UserID != 0 {
			user = f.UserID
		}
		_, err := t.exec(`INSERT INTO auth_flows (id_hash, kind, user_id, integrator_id, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			idHash, f.Kind, user, f.IntegratorID, string(f.Data), now.UnixMilli(), f.ExpiresAt.UnixMilli())
		return err
	})
}

// AuthFlow returns a live sign-in flow of the given kind.
func (s *Store) AuthFlow(ctx context.Context, idHash []byte, kind string) (keepwatch.AuthFlow, error) {
	var f keepwatch.AuthFlow
	var user, integrator sql.NullInt64
	var data string
	var expires int64
	err := s.queryRow(ctx, `SELECT kind, user_id, integrator_id, data, attempts, expires_at FROM auth_flows WHERE id_hash = ? AND kind = ? AND expires_at > ?`,
		idHash, kind, s.now().UnixMilli()).Scan(&f.Kind, &user, &integrator, &data, &f.Attempts, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return f, errFlowEnded
	}
	f.UserID, f.IntegratorID, f.Data, f.ExpiresAt = user.Int64, integrator.Int64, []byte(data), keepwatch.TimeFromMillis(expires)
	return f, dbErr(err)
}

// SetAuthFlowData replaces a live flow's data.
func (s *Store) SetAuthFlowData(ctx context.Context, idHash []byte, data []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		r, err := t.exec(`UPDATE auth_flows SET data = ? WHERE id_hash = ? AND expires_at > ?`, string(data), idHash, s.now().UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errFlowEnded
		}
		return nil
	})
}

// AuthFlowFailed counts a wrong answer within a flow and returns how many
// there were.
func (s *Store) AuthFlowFailed(ctx context.Context, idHash []byte) (int, error) {
	var n int
	err := s.tx(ctx, func(t *Tx) error {
		err := t.queryRow(`UPDATE auth_flows SET attempts = attempts + 1 WHERE id_hash = ? RETURNING attempts`, idHash).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return errFlowEnded
		}
		return dbErr(err)
	})
	return n, err
}

// TakeAuthFlow ends a live flow and returns it: of two requests finishing
// the same sign-in, one gets it.
func (s *Store) TakeAuthFlow(ctx context.Context, idHash []byte, kind string) (keepwatch.AuthFlow, error) {
	var f keepwatch.AuthFlow
	err := s.tx(ctx, func(t *Tx) error {
		var user, integrator sql.NullInt64
		var data string
		var expires int64
		err := t.queryRow(`DELETE FROM auth_flows WHERE id_hash = ? AND kind = ? AND expires_at > ?
			RETURNING kind, user_id, integrator_id, data, attempts, expires_at`, idHash, kind, s.now().UnixMilli()).
			Scan(&f.Kind, &user, &integrator, &data, &f.Attempts, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return errFlowEnded
		}
		f.UserID, f.IntegratorID, f.Data, f.ExpiresAt = user.Int64, integrator.Int64, []byte(data), keepwatch.TimeFromMillis(expires)
		return dbErr(err)
	})
	return f, err
}

// DeleteAuthFlow ends a flow, if it is still there.
func (s *Store) DeleteAuthFlow(ctx context.Context, idHash []byte) error {
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`DELETE FROM auth_flows WHERE id_hash = ?`, idHash)
		return err
	})
}
