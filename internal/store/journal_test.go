package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

// openSQLiteAt opens (or reopens) the SQLite store of dir.
func openSQLiteAt(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(ctx, dir)
	must(t, err)
	return s
}

func beatOf(id string, seq uint64, at time.Time) keepwatch.Beat {
	return keepwatch.Beat{ID: id, Seq: seq, At: at, IntervalMS: 30000}
}

// TestJournaledHeartbeatsAreSpentAcrossARestart: heartbeats appended to
// the journal and never folded (the process stopped before) are spent when
// the store is opened again, and the rows then say so.
func TestJournaledHeartbeatsAreSpentAcrossARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openSQLiteAt(t, dir)
	s.SetJournalPauseForTest(time.Hour) // no fold before the restart
	f := newFixture(t, s)
	_, err := s.ApplyReport(ctx, report(f.aliceSrv, 10, day))
	must(t, err)
	for seq := uint64(11); seq <= 15; seq++ {
		out, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{beatOf(f.aliceSrv, seq, day.Add(time.Duration(seq)*time.Second))})
		must(t, err)
		if out[0] != keepwatch.BeatAccepted {
			t.Fatalf("seq %d: %v", seq, out)
		}
	}
	// The row is behind; every read that judges numbers or liveness is not.
	if seq, _, err := s.HeartbeatRowForTest(ctx, f.aliceSrv); err != nil || seq != 10 {
		t.Fatalf("row before a fold: seq %d, %v", seq, err)
	}
	r, err := s.ServerRecord(ctx, f.aliceSrv)
	must(t, err)
	if r.LastSeq != 15 || r.LastSeen != day.Add(15*time.Second).UnixMilli() || r.IntervalMS != 30000 {
		t.Fatalf("record before a fold: %+v", r)
	}
	if _, err := s.ApplyReport(ctx, report(f.aliceSrv, 14, day.Add(time.Minute))); keepwatch.ErrorCode(err) != keepwatch.EREPLAYED {
		t.Fatalf("a status report under a journaled number: %v", err)
	}
	must(t, s.Close())

	s = openSQLiteAt(t, dir)
	defer s.Close()
	if n, err := s.JournalRowsForTest(ctx); err != nil || n != 0 {
		t.Fatalf("journal after start-up: %d rows, %v", n, err)
	}
	seq, seen, err := s.HeartbeatRowForTest(ctx, f.aliceSrv)
	must(t, err)
	if seq != 15 || seen != day.Add(15*time.Second).UnixMilli() {
		t.Fatalf("row after start-up: seq %d, seen %d", seq, seen)
	}
	out, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{beatOf(f.aliceSrv, 15, day.Add(time.Minute))})
	must(t, err)
	if out[0] != keepwatch.BeatReplayed {
		t.Fatalf("replay after a restart: %v", out)
	}
}

// TestJournalFoldsIntoTheRowsAndEmpties: with folds allowed at any time,
// the journal is folded into the servers' rows and deleted as heartbeats
// keep coming, and the rows end with each server's last heartbeat.
func TestJournalFoldsIntoTheRowsAndEmpties(t *testing.T) {
	s := openSQLiteAt(t, filepath.Join(t.TempDir(), "data"))
	defer s.Close()
	s.SetJournalPauseForTest(0)
	f := newFixture(t, s)
	for _, id := range []string{f.aliceSrv, f.bobSrv} {
		_, err := s.ApplyReport(ctx, report(id, 1, day))
		must(t, err)
	}
	last := uint64(0)
	for seq := uint64(2); seq < 200; seq++ {
		at := day.Add(time.Duration(seq) * time.Second)
		out, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{beatOf(f.aliceSrv, seq, at), beatOf(f.bobSrv, seq, at)})
		must(t, err)
		if out[0] != keepwatch.BeatAccepted || out[1] != keepwatch.BeatAccepted {
			t.Fatalf("seq %d: %v", seq, out)
		}
		last = seq
	}
	// A few quiet commits (an unknown server's) let the fold finish.
	for range 4 {
		_, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{beatOf("00000000000000000000000000000000", 1, day)})
		must(t, err)
	}
	if n, err := s.JournalRowsForTest(ctx); err != nil || n > 2 {
		t.Fatalf("journal not emptied: %d rows, %v", n, err)
	}
	for _, id := range []string{f.aliceSrv, f.bobSrv} {
		seq, seen, err := s.HeartbeatRowForTest(ctx, id)
		must(t, err)
		if uint64(seq) != last || seen != day.Add(time.Duration(last)*time.Second).UnixMilli() {
			t.Fatalf("%s row: seq %d seen %d, want %d", id, seq, seen, last)
		}
	}
}

// TestEnrollingAgainIsNotUndoneByTheJournal: heartbeats journaled under
// the old enrollment neither refuse the new enrollment's numbers nor come
// back when the journal is folded, even when the new enrollment comes in
// the same millisecond.
func TestEnrollingAgainIsNotUndoneByTheJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openSQLiteAt(t, dir)
	s.SetJournalPauseForTest(time.Hour)
	f := newFixture(t, s)
	_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day))
	must(t, err)
	out, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{beatOf(f.aliceSrv, 500, day.Add(time.Second))})
	must(t, err)
	if out[0] != keepwatch.BeatAccepted {
		t.Fatalf("old enrollment's heartbeat: %v", out)
	}
	frozen := time.Now()
	s.Now = func() time.Time { return frozen }
	if got := f.enroll(t, f.aliceSLC, "RS-01"); got != f.aliceSrv {
		t.Fatalf("enrolled again as %s", got)
	}
	if got := f.enroll(t, f.aliceSLC, "RS-01"); got != f.aliceSrv { // the same millisecond
		t.Fatalf("enrolled again as %s", got)
	}
	s.Now = nil
	r, err := s.ServerRecord(ctx, f.aliceSrv)
	must(t, err)
	if r.LastSeq != 0 {
		t.Fatalf("after enrolling again: last seq %d", r.LastSeq)
	}
	out, err = s.CommitHeartbeats(ctx, []keepwatch.Beat{beatOf(f.aliceSrv, 2, day.Add(2*time.Second))})
	must(t, err)
	if out[0] != keepwatch.BeatAccepted {
		t.Fatalf("new enrollment's heartbeat: %v", out)
	}
	must(t, s.Close())
	s = openSQLiteAt(t, dir) // folds what is left
	defer s.Close()
	if seq, _, err := s.HeartbeatRowForTest(ctx, f.aliceSrv); err != nil || seq != 2 {
		t.Fatalf("row after the fold: seq %d, %v", seq, err)
	}
}
