package store_test

import (
	"fmt"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

// A year of a busy server's history — every day a drive runs low and
// recovers (two state changes, an incident opened and resolved, with its
// notifications sent), three events, two audit entries — measured, then
// pruned: only what is older than the period goes, batch by batch, and
// an incident open all year stays with its history.
func TestPruneHistoryKeepsThePeriodAndOpenIncidents(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated year")
	}
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		ch, err := s.CreateChannel(ctx, f.alice, keepwatch.Channel{Name: "ops", Type: keepwatch.ChannelWebhook, Target: "https://127.0.0.1:9/hook", Enabled: true})
		must(t, err)
		start := day.Add(-365 * 24 * time.Hour)
		now := start
		s.Now = func() time.Time { return now }
		defer func() { s.Now = nil }()
		seq := uint64(0)
		apply := func(r keepwatch.Report) {
			t.Helper()
			seq++
			r.Seq = seq
			_, err := s.ApplyReport(ctx, r)
			must(t, err)
		}
		// A camera down from the first day to the last: its incident stays
		// open.
		apply(report(f.aliceSrv, 0, now, "camera_unreachable:cam-9"))
		size0, err := s.Size(ctx)
		must(t, err)
		for d := 0; d < 365; d++ {
			now = start.Add(time.Duration(d)*24*time.Hour + time.Hour)
			apply(report(f.aliceSrv, 0, now, "camera_unreachable:cam-9", "storage_low:E:"))
			now = now.Add(2 * time.Hour)
			r := report(f.aliceSrv, 0, now, "camera_unreachable:cam-9")
			for i := 0; i < 3; i++ {
				r.Events = append(r.Events, keepwatch.Event{Kind: keepwatch.KindFileDeleteFailed, Subject: fmt.Sprintf("file-%d", i),
					Severity: keepwatch.SeverityError, At: now, Message: "could not delete a file"})
			}
			apply(r)
			ins, err := s.Incidents(ctx, f.alice, keepwatch.IncidentResolved, 1)
			must(t, err)
			for _, typ := range []keepwatch.NotificationType{keepwatch.NotifyOpened, keepwatch.NotifyResolved} {
				_, err := s.Enqueue(ctx, keepwatch.Notification{IntegratorID: f.alice, ChannelID: ch.ID, IncidentID: ins[0].ID,
					Type: typ, DedupKey: fmt.Sprintf("%d-%s-%d", ins[0].ID, typ, d), NotBefore: now})
				must(t, err)
			}
			due, err := s.ClaimDue(ctx, ch.ID, now, time.Minute, 10)
			must(t, err)
			for _, n := range due {
				must(t, s.FinishNotificationForTest(ctx, n.ID, "sent", true, "", now))
			}
			for i := 0; i < 2; i++ {
				must(t, s.Audit(ctx, keepwatch.AuditEntry{IntegratorID: f.alice, At: now, Actor: "user:ops@alice.example", Action: "incident.ack", Target: "incident 1", Source: "web"}))
			}
		}
		size1, err := s.Size(ctx)
		must(t, err)
		t.Logf("%s: a year of one server's history: %d bytes", s.Dialect(), size1-size0)

		count := func(q string, args ...any) int {
			t.Helper()
			n, err := s.CountForTest(ctx, q, args...)
			must(t, err)
			return n
		}
		open, err := s.Incidents(ctx, f.alice, keepwatch.IncidentOpen, 10)
		must(t, err)
		// The camera, and the three recurring events' incidents.
		if len(open) != 4 {
			t.Fatalf("open incidents %+v", open)
		}
		openEvents := count(`SELECT COUNT(*) FROM incident_events e JOIN incidents i ON i.id = e.incident_id WHERE i.state <> 'resolved'`)
		before := now.Add(-100 * 24 * time.Hour)
		keep := map[string]int{
			"state_changes": count(`SELECT COUNT(*) FROM state_changes WHERE recorded_at >= ?`, before.UnixMilli()),
			"events":        count(`SELECT COUNT(*) FROM events WHERE received_at >= ?`, before.UnixMilli()),
			"notifications": count(`SELECT COUNT(*) FROM notifications WHERE created_at >= ?`, before.UnixMilli()),
			"incidents":     count(`SELECT COUNT(*) FROM incidents WHERE state <> 'resolved' OR resolved_at >= ?`, before.UnixMilli()),
			"audit_log":     count(`SELECT COUNT(*) FROM audit_log WHERE at >= ?`, before.UnixMilli()),
		}
		for _, table := range store.HistoryTables {
			batches := 0
			for {
				n, err := s.PruneHistory(ctx, table, before, 100)
				must(t, err)
				if n == 0 {
					break
				}
				if n > 100 {
					t.Fatalf("%s: a batch of %d rows", table, n)
				}
				batches++
			}
			if batches < 2 {
				t.Fatalf("%s: pruned in %d batches", table, batches)
			}
			if got := count(`SELECT COUNT(*) FROM ` + table); got != keep[table] {
				t.Fatalf("%s: %d rows left, want the %d of the last 100 days", table, got, keep[table])
			}
		}
		if got := count(`SELECT COUNT(*) FROM incident_events e JOIN incidents i ON i.id = e.incident_id WHERE i.state <> 'resolved'`); got != openEvents || got == 0 {
			t.Fatalf("the open incidents have %d transitions, had %d", got, openEvents)
		}
		if got, err := s.Incidents(ctx, f.alice, keepwatch.IncidentOpen, 10); err != nil || len(got) != 4 {
			t.Fatalf("open incidents after pruning %d %v", len(got), err)
		}
		if got := count(`SELECT COUNT(*) FROM incident_events e LEFT JOIN incidents i ON i.id = e.incident_id WHERE i.id IS NULL`); got != 0 {
			t.Fatalf("%d transitions of deleted incidents", got)
		}
		if _, err := s.Incident(ctx, f.alice, open[0].ID); err != nil {
			t.Fatalf("open incident: %v", err)
		}
	})
}
