package store_test

import (
	"fmt"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

// openOf counts a server's unresolved incidents by kind.
func openOf(t *testing.T, s *store.Store, integratorID int64) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, st := range []keepwatch.IncidentState{keepwatch.IncidentOpen, keepwatch.IncidentAcknowledged} {
		ins, err := s.Incidents(ctx, integratorID, st, 5000)
		must(t, err)
		for _, n := range ins {
			out[n.Kind]++
		}
	}
	return out
}

func TestFloodHoldsIncidentsPastTheCapAndClearsWhenCalm(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		s.Flood = keepwatch.FloodPolicy{MaxOpenIncidents: 10, Calm: 10 * time.Minute}
		f := newFixture(t, s)
		var conds []string
		for i := range 30 {
			conds = append(conds, fmt.Sprintf("camera_unreachable:cam-%02d", i))
		}
		r := report(f.aliceSrv, 1, day, conds...)
		for i := range 30 {
			r.Events = append(r.Events, keepwatch.Event{Kind: "archive_move_failed", Subject: fmt.Sprintf("A%02d", i), Severity: keepwatch.SeverityError, At: day})
		}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
		open := openOf(t, s, f.alice)
		if open["camera_unreachable"]+open["archive_move_failed"] != 10 || open[keepwatch.KindFlood] != 1 {
			t.Fatalf("open incidents after 60 raises with a cap of 10: %v", open)
		}
		// Every condition is still shown, with one flood warning.
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		flood := 0
		for _, c := range v.Conditions {
			if c.Kind == keepwatch.KindFlood {
				flood++
				if c.Severity != keepwatch.SeverityWarning || c.Message == "" {
					t.Fatalf("flood condition %+v", c)
				}
			}
		}
		if flood != 1 || len(v.Conditions) < 31 {
			t.Fatalf("%d conditions, %d floods", len(v.Conditions), flood)
		}
		// Another excess counts on the same flood incident.
		r = report(f.aliceSrv, 2, day.Add(time.Minute), append(conds, "camera_unreachable:cam-99")...)
		_, err = s.ApplyReport(ctx, r)
		must(t, err)
		if open := openOf(t, s, f.alice); open[keepwatch.KindFlood] != 1 || open["camera_unreachable"] > 10 {
			t.Fatalf("after a second excess: %v", open)
		}
		// All clear: the cameras' incidents resolve; the flood stays until
		// the server was calm for the calm period.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 3, day.Add(2*time.Minute)))
		must(t, err)
		if open := openOf(t, s, f.alice); open["camera_unreachable"] != 0 || open[keepwatch.KindFlood] != 1 {
			t.Fatalf("after all clear: %v", open)
		}
		if _, err := s.ResolveQuietEvents(ctx, 24*time.Hour, day.Add(5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if open := openOf(t, s, f.alice); open[keepwatch.KindFlood] != 1 {
			t.Fatalf("flood cleared before the calm period: %v", open)
		}
		// Quiet events still open hold nothing back but count toward the
		// cap: resolve them, then the sweep clears the calm flood.
		n, err := s.ResolveQuietEvents(ctx, time.Minute, day.Add(12*time.Minute))
		must(t, err)
		if open := openOf(t, s, f.alice); len(open) != 0 || n == 0 {
			t.Fatalf("after the calm period (%d resolved): %v", n, open)
		}
		v, err = s.Installation(ctx, f.alice, f.aliceSLC, day.Add(12*time.Minute))
		must(t, err)
		if len(v.Conditions) != 0 || v.Status != keepwatch.StatusOK {
			t.Fatalf("after the flood: %s %+v", v.Status, v.Conditions)
		}
		// Bob's server, under its caps, never saw a flood.
		if open := openOf(t, s, f.bob); len(open) != 0 {
			t.Fatalf("bob: %v", open)
		}
	})
}

func TestEventsOverTheRateAreRecordedButOpenNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		r := keepwatch.Report{ServerID: f.aliceSrv, Seq: 1, ReceivedAt: day, Interval: time.Minute}
		for i := range 5 {
			r.HeldEvents = append(r.HeldEvents, keepwatch.Event{Kind: "archive_move_failed", Subject: fmt.Sprintf("A%d", i), Severity: keepwatch.SeverityError, At: day})
		}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
		if open := openOf(t, s, f.alice); len(open) != 1 || open[keepwatch.KindFlood] != 1 {
			t.Fatalf("open incidents: %v", open)
		}
		times, err := s.EventTimes(ctx, "archive_move_failed")
		must(t, err)
		if len(times) != 5 {
			t.Fatalf("%d events recorded, want 5", len(times))
		}
		// A report within the calm period keeps the flood; one after it,
		// holding nothing back, clears it by itself.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, day.Add(5*time.Minute)))
		must(t, err)
		if open := openOf(t, s, f.alice); open[keepwatch.KindFlood] != 1 {
			t.Fatalf("flood cleared within the calm period: %v", open)
		}
		ch, err := s.ApplyReport(ctx, report(f.aliceSrv, 3, day.Add(keepwatch.DefaultFloodCalm+time.Minute)))
		must(t, err)
		if open := openOf(t, s, f.alice); len(open) != 0 {
			t.Fatalf("flood after a calm report: %v", open)
		}
		cleared := false
		for _, c := range ch.Changes {
			cleared = cleared || c.Kind == keepwatch.KindFlood && !c.Active
		}
		if !cleared {
			t.Fatalf("the clearing is not among the report's changes: %+v", ch.Changes)
		}
	})
}
