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

// MigrationVersionsForTest lists the migrations' numbers, in order.
func MigrationVersionsForTest(dialect string) []int {
	ms, err := migrations(dialect)
	if err != nil {
		panic(err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.version)
	}
	return vs
}

// VacuumForTest rewrites drive_points on PostgreSQL without its dead rows
// (autovacuum's work, done at once), so its size is its live rows'.
func (s *Store) VacuumForTest(ctx context.Context) error {
	if s.dialect != Postgres {
		return nil
	}
	_, err := s.write.ExecContext(ctx, `VACUUM FULL drive_points`)
	return err
}

// CountForTest runs a COUNT query.
func (s *Store) CountForTest(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, s.q(q), args...).Scan(&n)
	return n, err
}
