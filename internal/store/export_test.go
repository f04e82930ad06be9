package store

import "context"

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

// InsertOldChannelForTest adds a webhook channel the way releases before
// vendor channels did (their schema has no endpoint or signature).
func (s *Store) InsertOldChannelForTest(ctx context.Context, integratorID int64, name, target string) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		id, err = t.insert(`INSERT INTO channels (integrator_id, name, type, target, secret, digest, enabled, created_at) VALUES (?, ?, 'webhook', ?, '', 0, 1, 0)`,
			integratorID, name, target)
		return err
	})
	return id, err
}
