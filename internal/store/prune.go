package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// History pruning: keepwatch keeps its history (state changes, events,
// resolved incidents with their transitions and notifications) for a
// period, and its audit log for another; older rows are deleted in small
// batches, each a short transaction of its own, so that reports never
// wait behind a large delete. Open incidents are never deleted, nor a
// notification still to be sent.

// HistoryTables are the kinds of history PruneHistory deletes, in the
// order the pruning loop visits them.
var HistoryTables = []string{"state_changes", "events", "notifications", "incidents", "audit_log"}

// prunedByID are the tables whose rows are written at their time, so
// that their ids ascend with it: the oldest rows are the first by id.
var prunedByID = map[string]struct{ col, also string }{
	"state_changes": {"recorded_at", ""},
	"events":        {"received_at", ""},
	"notifications": {"created_at", " AND state <> 'pending'"},
	"audit_log":     {"at", ""},
}

// PruneHistory deletes at most batch rows of one kind of history (one of
// HistoryTables) older than before, and returns how many it deleted; a
// resolved incident goes with its transitions, assignment and
// notifications.
func (s *Store) PruneHistory(ctx context.Context, table string, before time.Time, batch int) (int, error) {
	cutoff := before.UnixMilli()
	if table == "incidents" {
		return s.pruneIncidents(ctx, cutoff, batch)
	}
	p, ok := prunedByID[table]
	if !ok {
		return 0, fmt.Errorf("prune: unknown history %q", table)
	}
	// The oldest rows by id, up to the first that is not old enough.
	rows, err := s.query(ctx, `SELECT id, `+p.col+` FROM `+table+` ORDER BY id LIMIT ?`, batch)
	if err != nil {
		return 0, err
	}
	type row struct{ id, at int64 }
	rs, err := scanAll(rows, func(r scanner) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.at)
	})
	if err != nil {
		return 0, err
	}
	last := int64(-1)
	for _, r := range rs {
		if r.at >= cutoff {
			break
		}
		last = r.id
	}
	if last < 0 {
		return 0, nil
	}
	var n int64
	err = s.tx(ctx, func(t *Tx) error {
		res, err := t.exec(`DELETE FROM `+table+` WHERE id <= ? AND `+p.col+` < ?`+p.also, last, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return dbErr(err)
	})
	return int(n), err
}

func (s *Store) pruneIncidents(ctx context.Context, cutoff int64, batch int) (int, error) {
	rows, err := s.query(ctx, `SELECT id FROM incidents WHERE state = 'resolved' AND resolved_at < ? ORDER BY resolved_at LIMIT ?`, cutoff, batch)
	if err != nil {
		return 0, err
	}
	ids, err := scanAll(rows, func(r scanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	var n int64
	err = s.tx(ctx, func(t *Tx) error {
		// Still resolved, under lock: an incident reopened meanwhile
		// stays with its history.
		rows, err := t.query(`SELECT id FROM incidents WHERE state = 'resolved' AND resolved_at < ? AND id IN `+inList(len(ids))+s.forUpdate(),
			append([]any{cutoff}, anys(ids)...)...)
		if err != nil {
			return err
		}
		if ids, err = scanAll(rows, func(r scanner) (int64, error) {
			var id int64
			return id, r.Scan(&id)
		}); err != nil || len(ids) == 0 {
			return err
		}
		in, args := inList(len(ids)), anys(ids)
		for _, q := range []string{
			`DELETE FROM incident_events WHERE incident_id IN ` + in,
			`DELETE FROM incident_assignments WHERE incident_id IN ` + in,
			`DELETE FROM notifications WHERE incident_id IN ` + in,
		} {
			if _, err := t.exec(q, args...); err != nil {
				return err
			}
		}
		res, err := t.exec(`DELETE FROM incidents WHERE id IN `+in, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return dbErr(err)
	})
	return int(n), err
}

// Size is the database's size in bytes: SQLite's pages in use, or
// PostgreSQL's database.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var n int64
	q := `SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`
	if s.dialect == Postgres {
		q = `SELECT pg_database_size(current_database())`
	}
	err := s.queryRow(ctx, q).Scan(&n)
	return n, dbErr(err)
}

// inList is "(?, ?, …)" for n values.
func inList(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
}

func anys(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
