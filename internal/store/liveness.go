package store

import (
	"context"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"keepwatch"
)

// CommitHeartbeats spends the sequence numbers of a batch of heartbeats in
// one transaction (group commit): each is a compare-and-set (last_seq <
// seq) on a server that is simply reporting, which also moves its
// last_seen forward. The outcome of each says whether it may be
// acknowledged. Nothing is answered before this commit, so a heartbeat
// acknowledged by one node is refused as replayed by every other, and
// after a crash.
func (s *Store) CommitHeartbeats(ctx context.Context, beats []keepwatch.Beat) ([]keepwatch.BeatOutcome, error) {
	out := make([]keepwatch.BeatOutcome, len(beats))
	if len(beats) == 0 {
		return out, nil
	}
	// One beat per server goes to the compare-and-set, the highest; the
	// others of the batch are then judged against it. Sorted by id: a
	// sequential B-tree walk, and one lock order for concurrent batches on
	// several nodes.
	top := map[string]int{}
	for i, b := range beats {
		if j, ok := top[b.ID]; !ok || b.Seq > beats[j].Seq {
			top[b.ID] = i
		}
	}
	order := make([]int, 0, len(top))
	for _, i := range top {
		order = append(order, i)
	}
	sort.Slice(order, func(a, b int) bool { return beats[order[a]].ID < beats[order[b]].ID })
	if s.dialect == SQLite {
		return s.journalBeats(ctx, beats, top, order)
	}
	err := s.retryDeadlock(ctx, func() error {
		return s.beatTx(ctx, func(t *Tx) error {
			accepted, err := t.commitBeats(ctx, beats, order)
			if err != nil {
				return err
			}
			var missed []int
			for i, b := range beats {
				if accepted[b.ID] && top[b.ID] == i {
					out[i] = keepwatch.BeatAccepted
				} else {
					missed = append(missed, i)
				}
			}
			if len(missed) == 0 {
				return nil
			}
			// Why was it refused: an old number, or a server whose state
			// the heartbeat must change?
			ids := make([]string, len(missed))
			for k, i := range missed {
				ids[k] = beats[i].ID
			}
			type cur struct {
				seq    uint64
				normal bool
			}
			now := map[string]cur{}
			err = t.eachIn(`SELECT id, last_seq, state = 'ok' AND revoked_at IS NULL FROM servers WHERE id IN `, ids, func(r scanner) error {
				var id string
				var seq int64
				var normal bool
				if err := r.Scan(&id, &seq, &normal); err != nil {
					return err
				}
				now[id] = cur{uint64(seq), normal}
				return nil
			})
			if err != nil {
				return err
			}
			for _, i := range missed {
				c, ok := now[beats[i].ID]
				switch {
				case ok && c.normal && beats[i].Seq <= c.seq:
					out[i] = keepwatch.BeatReplayed
				default:
					out[i] = keepwatch.BeatNeedsReport
				}
			}
			return nil
		})
	})
	return out, err
}

// commitBeats runs the batch's compare-and-set on PostgreSQL and returns
// the ids it updated (SQLite appends to its journal instead: journal.go).
func (t *Tx) commitBeats(ctx context.Context, beats []keepwatch.Beat, order []int) (map[string]bool, error) {
	accepted := make(map[string]bool, len(beats))
	ids := make([]string, len(order))
	seq, seen, interval := make([]int64, len(order)), make([]int64, len(order)), make([]int64, len(order))
	for k, i := range order {
		b := beats[i]
		ids[k], seq[k], seen[k], interval[k] = b.ID, int64(b.Seq), b.At.UnixMilli(), b.IntervalMS
	}
	// One index lookup per heartbeat whatever the planner believes of
	// the table: statistics that lag behind a fleet's growth must not
	// turn a group commit into a scan of a million rows.
	if _, err := t.tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		return nil, dbErr(err)
	}
	rows, err := t.tx.QueryContext(ctx, `UPDATE servers SET last_seq = u.seq, last_seen = GREATEST(servers.last_seen, u.seen), interval_ms = u.interval
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(id, seq, seen, interval)
		WHERE servers.id = u.id AND servers.last_seq < u.seq AND servers.state = 'ok' AND servers.revoked_at IS NULL
		RETURNING servers.id`, ids, seq, seen, interval)
	if err != nil {
		return nil, dbErr(err)
	}
	_, err = scanAll(rows, func(r scanner) (string, error) {
		var id string
		err := r.Scan(&id)
		accepted[id] = true
		return id, err
	})
	return accepted, err
}

// eachIn runs query (ending in "IN ") over ids in chunks and hands every
// row to fn.
func (t *Tx) eachIn(query string, ids []string, fn func(scanner) error) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := t.query(query+`(?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := fn(rows); err != nil {
				rows.Close()
				return dbErr(err)
			}
		}
		if err := rows.Close(); err != nil {
			return dbErr(err)
		}
	}
	return nil
}

// retryDeadlock runs fn again when PostgreSQL broke a deadlock between
// concurrent batches by aborting this one (rare: batches take their rows
// in id order).
func (s *Store) retryDeadlock(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt == 3 || !isRetryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

// isRetryable reports a PostgreSQL deadlock or serialization failure.
func isRetryable(err error) bool {
	m := err.Error()
	return strings.Contains(m, "SQLSTATE 40P01") || strings.Contains(m, "SQLSTATE 40001")
}

// MarkUnavailable declares silent servers unavailable, a few hundred per
// transaction (one commit for a whole site going dark), taken in id order:
// the order the heartbeats' group commit takes them in, so the two never
// wait on each other in a cycle (a sweep in deadline order did, and
// PostgreSQL broke the cycle only after a second). Each is compare-and-set:
// only a server still reporting with nothing newer than the sweeper knew
// of is declared; it gets its state-change row and its incident, and a
// site whose servers all went silent gets one site_unreachable incident.
// For the others the outcome says what the store has instead (a heartbeat
// another node took, or a state that needs no deadline). After a failure
// the outcomes of the transactions already committed stand.
func (s *Store) MarkUnavailable(ctx context.Context, at time.Time, batch []keepwatch.Expiry) ([]keepwatch.Marked, error) {
	out := make([]keepwatch.Marked, len(batch))
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return batch[order[a]].ID < batch[order[b]].ID })
	const perTx = 64
	for start := 0; start < len(order); start += perTx {
		part := order[start:min(len(order), start+perTx)]
		marks := make([]keepwatch.Marked, len(part))
		err := s.retryDeadlock(ctx, func() error {
			return s.tx(ctx, func(t *Tx) error {
				for k, i := range part {
					m, err := t.markUnavailable(batch[i], at)
					if err != nil {
						return err
					}
					marks[k] = m
				}
				return nil
			})
		})
		if err != nil {
			return out, err
		}
		for k, i := range part {
			out[i] = marks[k]
		}
	}
	return out, nil
}

func (t *Tx) markUnavailable(x keepwatch.Expiry, at time.Time) (keepwatch.Marked, error) {
	info, err := t.serverInfo(x.ID)
	if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
		return keepwatch.Marked{}, nil // deleted meanwhile
	}
	if err != nil {
		return keepwatch.Marked{}, err
	}
	if info.state != keepwatch.ServerOK || info.revoked || info.lastSeen > x.LastSeen {
		return keepwatch.Marked{LastSeen: info.lastSeen, Watched: info.state == keepwatch.ServerOK && !info.revoked}, nil
	}
	if _, err := t.exec(`UPDATE servers SET state = ?, state_since = ? WHERE id = ?`,
		string(keepwatch.ServerUnavailable), at.UnixMilli(), x.ID); err != nil {
		return keepwatch.Marked{}, err
	}
	if err := t.bumpServerRev(x.ID); err != nil {
		return keepwatch.Marked{}, err
	}
	if err := t.recordChange(info, keepwatch.KindServerUnavailable, "", keepwatch.SeverityError, true, at); err != nil {
		return keepwatch.Marked{}, err
	}
	if _, err := t.raise(info, keepwatch.KindServerUnavailable, "", keepwatch.SeverityError, false, at, nil); err != nil {
		return keepwatch.Marked{}, err
	}
	if err := t.groupSite(info, at, x.Window); err != nil {
		return keepwatch.Marked{}, err
	}
	return keepwatch.Marked{Change: info.change(keepwatch.KindServerUnavailable, "", true, at), OK: true, LastSeen: info.lastSeen}, nil
}

// Leases runs one lease round of node at now: it records the node as
// alive, renews the parts it holds, hands back parts beyond its fair share
// of the live nodes (so a new node gets some), and takes free or expired
// parts up to its share. A lease lasts ttl; a node that stops renewing
// loses its parts when it runs out.
func (s *Store) Leases(ctx context.Context, node string, now time.Time, ttl time.Duration) (keepwatch.Leases, error) {
	out := keepwatch.Leases{Guarded: map[int]bool{}}
	ms, until := now.UnixMilli(), now.Add(ttl).UnixMilli()
	err := s.retryDeadlock(ctx, func() error {
		return s.tx(ctx, func(t *Tx) error {
			out = keepwatch.Leases{Guarded: map[int]bool{}}
			if _, err := t.exec(`INSERT INTO monitor_nodes (node, seen_at) VALUES (?, ?) ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at`, node, ms); err != nil {
				return err
			}
			var live int
			if err := t.queryRow(`SELECT COUNT(*) FROM monitor_nodes WHERE seen_at > ?`, ms-ttl.Milliseconds()).Scan(&live); err != nil {
				return dbErr(err)
			}
			fair := int(math.Ceil(float64(keepwatch.Partitions) / float64(max(live, 1))))
			if _, err := t.exec(`UPDATE monitor_leases SET expires_at = ? WHERE node = ? AND expires_at > ? AND released = 0`, until, node, ms); err != nil {
				return err
			}
			rows, err := t.query(`SELECT part FROM monitor_leases WHERE node = ? AND expires_at > ? AND released = 0 ORDER BY part`, node, ms)
			if err != nil {
				return err
			}
			held, err := scanAll(rows, func(r scanner) (int, error) {
				var p int
				return p, r.Scan(&p)
			})
			if err != nil {
				return err
			}
			if extra := len(held) - fair; extra > 0 {
				// Hand back the highest parts; the next holder needs no
				// guard, this node watched them until now.
				for _, p := range held[len(held)-extra:] {
					if _, err := t.exec(`UPDATE monitor_leases SET released = 1, expires_at = ? WHERE part = ? AND node = ?`, ms, p, node); err != nil {
						return err
					}
				}
				held = held[:len(held)-extra]
			}
			if want := fair - len(held); want > 0 {
				rows, err := t.query(`SELECT part, node, released, expires_at FROM monitor_leases
					WHERE expires_at <= ? OR released = 1 ORDER BY part LIMIT ?`+s.skipLocked(), ms, want)
				if err != nil {
					return err
				}
				type free struct {
					part     int
					node     string
					released bool
					at       int64
				}
				frees, err := scanAll(rows, func(r scanner) (free, error) {
					var f free
					return f, r.Scan(&f.part, &f.node, &f.released, &f.at)
				})
				if err != nil {
					return err
				}
				for _, f := range frees {
					r, err := t.exec(`UPDATE monitor_leases SET node = ?, expires_at = ?, released = 0 WHERE part = ? AND (expires_at <= ? OR released = 1)`,
						node, until, f.part, ms)
					if err != nil {
						return err
					}
					if n, _ := r.RowsAffected(); n == 1 {
						held = append(held, f.part)
						// A part handed back moments ago was watched until
						// then, and so was one this node held itself (its
						// sweeper guards its own stalls); any other may
						// have gone unwatched.
						out.Guarded[f.part] = f.node != node && !(f.released && f.at > ms-ttl.Milliseconds())
					}
				}
			}
			slices.Sort(held)
			out.Held = held
			_, err = t.exec(`DELETE FROM monitor_nodes WHERE seen_at < ?`, ms-10*ttl.Milliseconds())
			return err
		})
	})
	return out, err
}

// skipLocked lets concurrent lease rounds on PostgreSQL pass over parts
// another node is taking.
func (s *Store) skipLocked() string {
	if s.dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// ReleaseLeases hands back every part node holds (a clean shutdown): the
// next holders take them without the own-outage guard.
func (s *Store) ReleaseLeases(ctx context.Context, node string, now time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(`UPDATE monitor_leases SET released = 1, expires_at = ? WHERE node = ? AND released = 0`, now.UnixMilli(), node); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM monitor_nodes WHERE node = ?`, node)
		return err
	})
}

// PartitionServers returns the servers of the given parts. The part is
// installation_id % 64 (keepwatch.Partitions), the expression the
// servers_part index is built on.
func (s *Store) PartitionServers(ctx context.Context, parts []int) ([]keepwatch.ServerRecord, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	list := make([]string, len(parts))
	for i, p := range parts {
		list[i] = strconv.Itoa(p)
	}
	rows, err := s.query(ctx, `SELECT `+serverRecordCols+` FROM servers s JOIN installations i ON i.id = s.installation_id
		WHERE (s.installation_id % 64) IN (`+strings.Join(list, ", ")+`)`)
	if err != nil {
		return nil, err
	}
	return s.scanServerRecords(rows)
}

// LeaseHolders returns which node holds each part (for operators and
// tests).
func (s *Store) LeaseHolders(ctx context.Context, now time.Time) (map[int]string, error) {
	rows, err := s.query(ctx, `SELECT part, node FROM monitor_leases WHERE expires_at > ? AND released = 0`, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	_, err = scanAll(rows, func(r scanner) (int, error) {
		var p int
		var node string
		err := r.Scan(&p, &node)
		out[p] = node
		return p, err
	})
	return out, err
}

// LastSeen reads the stored liveness of servers (Unix ms) from the read
// pool: a sweeper re-checks what other nodes heard without a write.
// Unknown servers are absent.
func (s *Store) LastSeen(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.query(ctx, `SELECT id, last_seen FROM servers WHERE id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		_, err = scanAll(rows, func(r scanner) (string, error) {
			var id string
			var at int64
			err := r.Scan(&id, &at)
			out[id] = at
			return id, err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
