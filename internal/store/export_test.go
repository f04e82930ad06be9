package store

import "context"

// OverwriteReportKeyForTest writes a raw report_key value, as someone with
// write access to the database could.
func (s *Store) OverwriteReportKeyForTest(ctx context.Context, serverID string, v []byte) error {
	_, err := s.write.ExecContext(ctx, s.q(`UPDATE servers SET report_key = ? WHERE id = ?`), v, serverID)
	return err
}
