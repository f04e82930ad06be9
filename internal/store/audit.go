package store

import (
	"context"

	"keepwatch"
)

// Audit appends an entry to the integrator's audit log.
func (s *Store) Audit(ctx context.Context, e keepwatch.AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	return s.tx(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO audit_log (integrator_id, at, actor, action, target, detail, source, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			e.IntegratorID, e.At.UnixMilli(), e.Actor, e.Action, truncate(e.Target, 256), truncate(e.Detail, keepwatch.MaxMessageLen), e.Source, truncate(e.RemoteAddr, 64))
		return err
	})
}

// AuditLog returns an integrator's most recent audit entries, newest first.
func (s *Store) AuditLog(ctx context.Context, integratorID int64, limit int) ([]keepwatch.AuditEntry, error) {
	rows, err := s.query(ctx, `SELECT id, at, actor, action, target, detail, source, remote_addr FROM audit_log
		WHERE integrator_id = ? ORDER BY at DESC, id DESC LIMIT ?`, integratorID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keepwatch.AuditEntry
	for rows.Next() {
		e := keepwatch.AuditEntry{IntegratorID: integratorID}
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.RemoteAddr); err != nil {
			return nil, dbErr(err)
		}
		e.At = keepwatch.TimeFromMillis(at)
		out = append(out, e)
	}
	return out, dbErr(rows.Err())
}
