package store

import (
	"context"

	"keepwatch"
)

// OverwriteReportKeyForTest writes a raw report_key value, as someone with
// write access to the database could.
func (s *Store) OverwriteReportKeyForTest(ctx context.Context, serverID string, v []byte) error {
	_, err := s.write.ExecContext(ctx, s.q(`UPDATE servers SET report_key = ? WHERE id = ?`), v, serverID)
	return err
}

// StoredFlashForTest reads a flash's value as stored.
func (s *Store) StoredFlashForTest(ctx context.Context, sessionHash []byte, name string) (string, error) {
	var v string
	err := s.read.QueryRowContext(ctx, s.q(`SELECT value FROM session_flashes WHERE session_hash = ? AND name = ?`), sessionHash, name).Scan(&v)
	return v, err
}

// EnqueueManyForTest adds notifications in one transaction (seeding a
// large outbox quickly).
func (s *Store) EnqueueManyForTest(ctx context.Context, ns []keepwatch.Notification) error {
	return s.tx(ctx, func(t *Tx) error {
		for _, n := range ns {
			if err := t.enqueue(n); err != nil {
				return err
			}
		}
		return nil
	})
}
