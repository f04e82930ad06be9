package monitor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/monitor"
	"keepwatch/internal/protocol"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

var ctx = context.Background()

const interval = 10 * time.Second

// fleet enrolls n servers in one installation and reports each once at t0.
func fleet(t testing.TB, s *store.Store, n int, t0 time.Time) []protocol.ServerID {
	t.Helper()
	until, _ := keepwatch.ParseDate("2099-01-01")
	instID, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: "MON-0001", Customer: "c", Product: "p", CarePlusUntil: until}, secret.Hash("k"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []protocol.ServerID
	for i := 0; i < n; i++ {
		id := protocol.NewServerID()
		if _, err := s.Enroll(ctx, keepwatch.Enrollment{InstallationID: instID, ID: id.String(), Name: fmt.Sprintf("RS-%d", i), Key: make([]byte, 32), Interval: interval}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApplyReport(ctx, keepwatch.Report{ServerID: id.String(), Seq: 1, ReceivedAt: t0, Interval: interval}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func newMonitor(s *store.Store, clock *testutil.Clock, changes *[]keepwatch.Change) *monitor.Monitor {
	return monitor.New(monitor.Config{Store: s, Interval: interval, Now: clock.Now,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Publish: func(cs []keepwatch.Change) { *changes = append(*changes, cs...) }})
}

// heartbeat records a heartbeat as ingest does: committed, then seen.
func heartbeat(t *testing.T, s *store.Store, m *monitor.Monitor, id protocol.ServerID, seq uint64, at time.Time) {
	t.Helper()
	out, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{{ID: id.String(), Seq: seq, At: at, IntervalMS: interval.Milliseconds()}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != keepwatch.BeatAccepted {
		t.Fatalf("heartbeat #%d of %s: outcome %d", seq, id, out[0])
	}
	m.Seen(id.String(), at)
}

// tick sweeps every 100 ms of simulated time from the clock's now to end.
func tick(m *monitor.Monitor, clock *testutil.Clock, d time.Duration) {
	for step := time.Duration(0); step < d; step += 100 * time.Millisecond {
		clock.Advance(100 * time.Millisecond)
		m.Sweep(ctx)
	}
}

func TestHeartbeatThirdMissMarksUnavailable(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			s := testutil.Open(t, d)
			t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			clock := testutil.NewClock(t0)
			ids := fleet(t, s, 2, t0)
			var changes []keepwatch.Change
			m := newMonitor(s, clock, &changes)
			if err := m.Load(ctx); err != nil {
				t.Fatal(err)
			}
			// Server 0 beats every interval; server 1 goes silent after t0.
			for i := 1; i <= 3; i++ {
				tick(m, clock, interval)
				heartbeat(t, s, m, ids[0], uint64(i+1), clock.Now())
			}
			// 30 s: server 1 missed three heartbeats but the 10 % grace holds.
			if len(changes) != 0 {
				t.Fatalf("changes before the deadline: %+v", changes)
			}
			tick(m, clock, time.Second+100*time.Millisecond)
			if len(changes) != 1 || changes[0].ServerID != ids[1].String() || changes[0].Kind != keepwatch.KindServerUnavailable {
				t.Fatalf("changes = %+v", changes)
			}
			if late := clock.Now().Sub(t0.Add(31 * time.Second)); late > 200*time.Millisecond {
				t.Fatalf("declared %s after the deadline", late)
			}
			// Sweeping again does not fire again.
			tick(m, clock, time.Minute)
			if n := len(changes); n != 2 { // server 0 stopped beating in this minute too
				t.Fatalf("changes after another minute = %+v", changes)
			}
			r, err := s.ServerRecord(ctx, ids[0].String())
			if err != nil {
				t.Fatal(err)
			}
			if r.LastSeq != 4 || r.State != keepwatch.ServerUnavailable {
				t.Fatalf("stored record %+v", r)
			}
		})
	}
}

func TestRestartAfterDowntimeGivesThreeIntervals(t *testing.T) {
	s := testutil.Open(t, store.SQLite)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ids := fleet(t, s, 50, t0)
	// keepwatch was down for ten minutes: every deadline passed meanwhile.
	restart := t0.Add(10 * time.Minute)
	clock := testutil.NewClock(restart)
	var changes []keepwatch.Change
	m := newMonitor(s, clock, &changes)
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	m.Sweep(ctx)
	// 49 servers come back within three intervals; one never does.
	for _, id := range ids[:49] {
		clock.Advance(400 * time.Millisecond)
		m.Sweep(ctx)
		heartbeat(t, s, m, id, 2, clock.Now())
	}
	if len(changes) != 0 {
		t.Fatalf("%d alarms for servers that reported within three intervals of the restart", len(changes))
	}
	tick(m, clock, restart.Add(31*time.Second+200*time.Millisecond).Sub(clock.Now()))
	if len(changes) != 1 || changes[0].ServerID != ids[49].String() {
		t.Fatalf("changes = %+v", changes)
	}
}

func TestStalledSweeperDoesNotRaiseFalseAlarms(t *testing.T) {
	s := testutil.Open(t, store.SQLite)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ids := fleet(t, s, 3, t0)
	clock := testutil.NewClock(t0)
	var changes []keepwatch.Change
	m := newMonitor(s, clock, &changes)
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// The process is frozen for five minutes (no sweeps, no ingest).
	clock.Advance(5 * time.Minute)
	m.Sweep(ctx)
	for _, id := range ids {
		heartbeat(t, s, m, id, 2, clock.Now().Add(time.Second))
	}
	tick(m, clock, 2*time.Second)
	if len(changes) != 0 {
		t.Fatalf("alarms after a stall: %+v", changes)
	}
}

func TestPausedServerIsNeverUnavailable(t *testing.T) {
	s := testutil.Open(t, store.SQLite)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	fleet(t, s, 1, t0)
	past, _ := keepwatch.ParseDate("2026-11-01")
	if err := s.SetCarePlus(ctx, "MON-0001", past); err != nil {
		t.Fatal(err)
	}
	clock := testutil.NewClock(t0)
	var changes []keepwatch.Change
	m := newMonitor(s, clock, &changes)
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	tick(m, clock, 2*time.Minute)
	if len(changes) != 0 {
		t.Fatalf("paused installation raised %+v", changes)
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	s := testutil.Open(b, store.SQLite)
	t0 := time.Now()
	clock := testutil.NewClock(t0)
	ids := fleet(b, s, 1000, t0)
	var changes []keepwatch.Change
	m := newMonitor(s, clock, &changes)
	if err := m.Load(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Seen(ids[i%len(ids)].String(), t0.Add(time.Duration(i)))
	}
}

// TestConcurrentUseIsRaceFree drives every entry point at once — what
// ingest, the sweeper, the lease rounds, the server changes and the
// metrics do on a busy node — under -race.
func TestConcurrentUseIsRaceFree(t *testing.T) {
	s := testutil.Open(t, store.SQLite)
	t0 := time.Now()
	ids := fleet(t, s, 200, t0)
	m := monitor.New(monitor.Config{Store: s, Interval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.ChangedServers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				fn(i)
			}
		}()
	}
	for w := range 4 {
		run(func(i int) { m.Seen(ids[(i*4+w)%len(ids)].String(), time.Now()) })
	}
	run(func(int) { m.Sweep(ctx); time.Sleep(time.Millisecond) })
	run(func(int) { m.RenewLeases(ctx); time.Sleep(5 * time.Millisecond) })
	run(func(i int) { m.Apply(recs[i%len(recs)]) })
	run(func(int) { m.Stats() })
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if st := m.Stats(); st.Tracked != len(ids) || st.Parts != keepwatch.Partitions {
		t.Fatalf("stats %+v", st)
	}
}
