package store

import (
	"context"
	"time"

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

// FinishNotificationForTest records an outcome without a claim, on a
// schema of any version (upgrade tests).
func (s *Store) FinishNotificationForTest(ctx context.Context, id int64, state string, attempted bool, lastError string, retryAt time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		inc := b2i(attempted)
		var sent any
		if state == "sent" {
			sent = s.now().UnixMilli()
		}
		_, err := t.exec(`UPDATE notifications SET state = ?, attempts = attempts + ?, last_error = ?, not_before = ?, lease_until = 0, sent_at = ? WHERE id = ?`,
			state, inc, lastError, retryAt.UnixMilli(), sent, id)
		return err
	})
}

// HeartbeatRowForTest reads a server's last_seq and last_seen as its row
// holds them, without the heartbeat journal.
func (s *Store) HeartbeatRowForTest(ctx context.Context, id string) (seq, seen int64, err error) {
	err = s.read.QueryRowContext(ctx, s.q(`SELECT last_seq, last_seen FROM servers WHERE id = ?`), id).Scan(&seq, &seen)
	return seq, seen, err
}

// JournalRowsForTest counts the heartbeat journal's rows (SQLite).
func (s *Store) JournalRowsForTest(ctx context.Context) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM beat_journal`).Scan(&n)
	return n, err
}

// SetJournalPauseForTest sets the least time between two folds of the
// heartbeat journal.
func (s *Store) SetJournalPauseForTest(d time.Duration) {
	s.journal.gate.Lock()
	s.journal.pause, s.journal.lastCycle = d, time.Now()
	s.journal.gate.Unlock()
}
