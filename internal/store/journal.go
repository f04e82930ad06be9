package store

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"keepwatch"
)

// The heartbeat journal (SQLite).
//
// A heartbeat's sequence number must be spent in the database before its
// answer. On SQLite, updating the server's row for every heartbeat dirties
// one page of the servers table per heartbeat (a fleet's rows lie on
// thousands of pages), and every dirty page is written to the WAL and again
// at the checkpoint. Instead, a heartbeat is appended to beat_journal (a
// few heartbeats a page, written once) and the journal is folded into the
// servers' rows later, in id order, a whole part of the fleet at a time:
// each page of servers is then written once per fold, whatever the number
// of heartbeats its servers sent in between.
//
// Until it is folded, what the journal holds is kept in memory too
// (journal.spent), and every read that judges a sequence number or a
// server's last sign of life takes it into account (serverInfo, the
// server records ingest loads, the servers views). SQLite serves one
// process, so this memory is the journal as committed. A journal entry
// belongs to one enrollment (enrolled_at): enrolling again, which starts
// the sequence over, leaves the old enrollment's entries without effect.
// At start-up, anything a crash left in the journal is folded first.
//
// PostgreSQL needs none of this: its rows are updated in place by the
// group commit (liveness.go), and several nodes share them.

// journal is the in-memory side of beat_journal.
type journal struct {
	// gate lets one heartbeat commit (and the fold that rides on it) run
	// at a time.
	gate sync.Mutex
	// mu guards spent; held briefly, by readers inside and outside
	// transactions.
	mu    sync.Mutex
	spent map[string]spentBeat

	// The fold in progress: the ids still to fold, ascending, and the
	// journal's last rowid when it began (rows up to it are deleted once
	// every id is folded). Touched under gate only.
	cycle      []string
	upTo       int64
	deleteFrom int64
	lastCycle  time.Time
	// pause is the least time between the starts of two folds of the
	// journal: the longer, the more heartbeats of one server a fold
	// writes as one.
	pause time.Duration
}

// spentBeat is the last heartbeat a server spent that its row does not
// show yet.
type spentBeat struct {
	seq, seen, intervalMS, enrolledAt int64
}

const (
	// journalPause: a fold of the whole journal starts at most this often.
	journalPause = 20 * time.Second
	// journalDeleteChunk rows of a folded journal are deleted per commit.
	journalDeleteChunk = 20000
	// journalReadRows servers' rows are read by one prepared query.
	journalReadRows = 128
	// journalInsertRows rows are appended by one INSERT (SQLite allows
	// 32,766 parameters a statement).
	journalInsertRows = 1000
)

// unfolded returns the heartbeat server id spent under the enrollment
// enrolledAt that its row does not show yet.
func (s *Store) unfolded(id string, enrolledAt int64) (spentBeat, bool) {
	if s.dialect != SQLite {
		return spentBeat{}, false
	}
	j := &s.journal
	j.mu.Lock()
	b, ok := j.spent[id]
	j.mu.Unlock()
	return b, ok && b.enrolledAt == enrolledAt
}

// withUnfolded brings what a server's row says of its last heartbeat (its
// sequence number, last sign of life and interval; interval may be nil) up
// to what the journal holds for it.
func (s *Store) withUnfolded(id string, enrolledAt int64, seq, seen, interval *int64) {
	b, ok := s.unfolded(id, enrolledAt)
	if !ok {
		return
	}
	if b.seq > *seq && interval != nil {
		*interval = b.intervalMS
	}
	*seq, *seen = max(*seq, b.seq), max(*seen, b.seen)
}

// journalStatements are the heartbeats' statements on SQLite's writer,
// prepared once (preparing them for every group commit cost as much CPU as
// running them for every row of a small group).
type journalStatements struct {
	read, fold *sql.Stmt
}

func (s *Store) journalStatements(ctx context.Context) (journalStatements, error) {
	s.beatMu.Lock()
	defer s.beatMu.Unlock()
	if s.beatStmts.fold != nil {
		return s.beatStmts, nil
	}
	var st journalStatements
	for _, p := range []struct {
		into  **sql.Stmt
		query string
	}{
		{&st.read, `SELECT id, last_seq, enrolled_at, state = 'ok' AND revoked_at IS NULL FROM servers WHERE id IN (?` +
			strings.Repeat(`, ?`, journalReadRows-1) + `)`},
		{&st.fold, `UPDATE servers SET interval_ms = CASE WHEN last_seq < ?1 THEN ?3 ELSE interval_ms END,
			last_seq = MAX(last_seq, ?1), last_seen = MAX(last_seen, ?2) WHERE id = ?4 AND enrolled_at = ?5`},
	} {
		stmt, err := s.write.PrepareContext(ctx, p.query)
		if err != nil {
			st.close()
			return st, dbErr(err)
		}
		*p.into = stmt
	}
	s.beatStmts = st
	return st, nil
}

func (st journalStatements) close() error {
	var err error
	for _, stmt := range []*sql.Stmt{st.read, st.fold} {
		if stmt != nil {
			err = errors.Join(err, stmt.Close())
		}
	}
	return err
}

// journalBeats is CommitHeartbeats on SQLite: in one transaction, each
// heartbeat that goes to the compare-and-set (order: one per server, the
// highest, by id) is judged against its server's row and the journal, and
// appended to the journal when its number is above the last; a part of the
// fold in progress rides on the same commit.
func (s *Store) journalBeats(ctx context.Context, beats []keepwatch.Beat, top map[string]int, order []int) ([]keepwatch.BeatOutcome, error) {
	st, err := s.journalStatements(ctx)
	if err != nil {
		return nil, err
	}
	j := &s.journal
	j.gate.Lock()
	defer j.gate.Unlock()
	out := make([]keepwatch.BeatOutcome, len(beats))
	fresh := make(map[string]spentBeat, len(order))
	var step foldResult
	err = s.beatTx(ctx, func(t *Tx) error {
		clear(fresh)
		// The fold first: a fold that begins takes the journal as
		// committed, before this group's rows.
		var err error
		if step, err = t.foldStep(st, max(len(order), 64)); err != nil {
			return err
		}
		// The rows of the group's servers in one query, the journal's new
		// rows in one statement: per statement, database/sql and the
		// driver cost more than SQLite's work for a row.
		type row struct {
			seq, enrolled int64
			normal        bool
		}
		rows := make(map[string]row, len(order))
		ids := make([]string, len(order))
		for k, i := range order {
			ids[k] = beats[i].ID
		}
		read := t.tx.StmtContext(ctx, st.read)
		defer read.Close()
		for start := 0; start < len(ids); start += journalReadRows {
			part := ids[start:min(len(ids), start+journalReadRows)]
			args := make([]any, journalReadRows)
			for k := range args {
				args[k] = part[min(k, len(part)-1)] // padded with the last: IN takes each once
			}
			rs, err := read.QueryContext(ctx, args...)
			if err != nil {
				return dbErr(err)
			}
			for rs.Next() {
				var id string
				var x row
				if err := rs.Scan(&id, &x.seq, &x.enrolled, &x.normal); err != nil {
					rs.Close()
					return dbErr(err)
				}
				rows[id] = x
			}
			if err := rs.Close(); err != nil {
				return dbErr(err)
			}
		}
		// Each row's last number becomes what is spent now: the row's,
		// the journal's, or this group's.
		args := make([]any, 0, 5*len(order))
		for _, i := range order {
			b := beats[i]
			x, ok := rows[b.ID]
			if !ok {
				continue // unknown: it needs a report, which is refused
			}
			if u, ok := s.unfolded(b.ID, x.enrolled); ok {
				x.seq = max(x.seq, u.seq)
			}
			if x.normal && int64(b.Seq) > x.seq {
				args = append(args, b.ID, int64(b.Seq), b.At.UnixMilli(), b.IntervalMS, x.enrolled)
				fresh[b.ID] = spentBeat{int64(b.Seq), b.At.UnixMilli(), b.IntervalMS, x.enrolled}
				x.seq = int64(b.Seq)
			}
			rows[b.ID] = x
		}
		for len(args) > 0 {
			part := args[:min(len(args), 5*journalInsertRows)]
			args = args[len(part):]
			if _, err := t.exec(`INSERT INTO beat_journal (server_id, seq, seen, interval_ms, enrolled_at) VALUES (?, ?, ?, ?, ?)`+
				strings.Repeat(`, (?, ?, ?, ?, ?)`, len(part)/5-1), part...); err != nil {
				return err
			}
		}
		for i, b := range beats {
			c, ok := rows[b.ID]
			_, spent := fresh[b.ID]
			switch {
			case spent && top[b.ID] == i:
				out[i] = keepwatch.BeatAccepted
			case ok && c.normal && int64(b.Seq) <= c.seq:
				out[i] = keepwatch.BeatReplayed
			default:
				out[i] = keepwatch.BeatNeedsReport
			}
		}
		// Before the commit: should it fail, the journal in memory says
		// more was spent than was, which refuses, never accepts, a number.
		j.mu.Lock()
		for id, b := range fresh {
			j.spent[id] = b
		}
		j.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	j.apply(step)
	return out, nil
}

// foldResult is what one fold step did, applied once its transaction is
// committed (journal.apply).
type foldResult struct {
	folded    map[string]spentBeat // servers folded into their rows
	advance   int                  // ids of the fold passed
	deletedTo int64                // journal rows deleted up to this rowid
}

// foldStep folds up to n servers of the fold in progress into their rows
// (starting a fold when none runs and the last began a pause ago), or
// deletes a chunk of the journal a finished fold left. Called with the gate
// held.
func (t *Tx) foldStep(st journalStatements, n int) (foldResult, error) {
	j := &t.s.journal
	if len(j.cycle) == 0 && j.upTo > 0 {
		to := min(j.deleteFrom+journalDeleteChunk, j.upTo)
		if _, err := t.exec(`DELETE FROM beat_journal WHERE rowid <= ?`, to); err != nil {
			return foldResult{}, err
		}
		return foldResult{deletedTo: to}, nil
	}
	if len(j.cycle) == 0 {
		if time.Since(j.lastCycle) < j.pause {
			return foldResult{}, nil
		}
		// Every row committed so far belongs to a server in spent (with
		// this or a later heartbeat), or was folded already.
		var upTo int64
		if err := t.queryRow(`SELECT COALESCE(MAX(rowid), 0) FROM beat_journal`).Scan(&upTo); err != nil {
			return foldResult{}, dbErr(err)
		}
		j.mu.Lock()
		ids := make([]string, 0, len(j.spent))
		for id := range j.spent {
			ids = append(ids, id)
		}
		j.mu.Unlock()
		if len(ids) == 0 && upTo == 0 {
			return foldResult{}, nil
		}
		sort.Strings(ids)
		j.cycle, j.upTo, j.deleteFrom, j.lastCycle = ids, upTo, 0, time.Now()
		if len(ids) == 0 {
			return foldResult{}, nil
		}
	}
	chunk := j.cycle[:min(n, len(j.cycle))]
	fold := t.tx.StmtContext(t.ctx, st.fold)
	defer fold.Close()
	r := foldResult{folded: make(map[string]spentBeat, len(chunk)), advance: len(chunk)}
	for _, id := range chunk {
		j.mu.Lock()
		b, ok := j.spent[id]
		j.mu.Unlock()
		if !ok {
			continue
		}
		if _, err := fold.ExecContext(t.ctx, b.seq, b.seen, b.intervalMS, id, b.enrolledAt); err != nil {
			return foldResult{}, dbErr(err)
		}
		r.folded[id] = b
	}
	return r, nil
}

// apply applies a committed fold step: the servers folded leave the
// journal in memory unless a newer heartbeat came meanwhile, and the fold
// moves on. Called with the gate held.
func (j *journal) apply(r foldResult) {
	if r.deletedTo > 0 {
		j.deleteFrom = r.deletedTo
		if r.deletedTo >= j.upTo {
			j.upTo, j.deleteFrom = 0, 0
		}
		return
	}
	j.mu.Lock()
	for id, b := range r.folded {
		if j.spent[id] == b {
			delete(j.spent, id)
		}
	}
	j.mu.Unlock()
	j.cycle = j.cycle[r.advance:]
}

// foldJournal folds the whole journal into the servers' rows and empties
// it: at start-up, for what a crash left there.
func (s *Store) foldJournal(ctx context.Context) error {
	if s.dialect != SQLite {
		return nil
	}
	return s.tx(ctx, func(t *Tx) error {
		// With one MAX() SQLite takes the other columns from the row
		// holding the maximum: the last heartbeat of each enrollment.
		if _, err := t.exec(`UPDATE servers SET last_seq = j.seq, last_seen = MAX(servers.last_seen, j.seen), interval_ms = j.interval_ms
			FROM (SELECT server_id, enrolled_at, MAX(seq) AS seq, seen, interval_ms FROM beat_journal GROUP BY server_id, enrolled_at) AS j
			WHERE servers.id = j.server_id AND servers.enrolled_at = j.enrolled_at AND servers.last_seq < j.seq`); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM beat_journal`)
		return err
	})
}
