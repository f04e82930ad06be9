package store_test

import (
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

// TestNewHolderSeesNoHistoryFromBeforeItsRegistration: alice holds an SLC
// through conditions, an event and an outage, then releases it; bob
// registers it. Bob's timeline and availability start at his
// registration (an outage still under way is carried over as such);
// alice registering again later keeps nothing of bob's period from her
// and nothing of hers from him.
func TestNewHolderSeesNoHistoryFromBeforeItsRegistration(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		now := day
		s.Now = func() time.Time { return now }
		must(t, s.Register(ctx, f.alice, f.aliceSLC)) // registered again: keeps its time
		r := report(f.aliceSrv, 1, now, "camera_unreachable:cam-7")
		r.Events = []keepwatch.Event{{Kind: "archive_fatal_error", Subject: "alice-archive", Severity: keepwatch.SeverityError, At: now}}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
		now = now.Add(time.Minute)
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, now))
		must(t, err)
		now = now.Add(time.Hour)
		_, ok, err := markOne(s, f.aliceSrv, now.Add(-time.Hour).UnixMilli(), now, time.Minute)
		if err != nil || !ok {
			t.Fatalf("mark unavailable: %v %v", ok, err)
		}
		aliceTL, err := s.Timeline(ctx, f.alice, f.aliceSLC, 100)
		must(t, err)
		if len(aliceTL) < 4 {
			t.Fatalf("alice's own timeline: %+v", aliceTL)
		}

		now = now.Add(time.Hour)
		must(t, s.Release(ctx, f.alice, f.aliceSLC))
		now = now.Add(time.Hour)
		handover := now.Truncate(time.Millisecond)
		must(t, s.Register(ctx, f.bob, f.aliceSLC))
		tl, err := s.Timeline(ctx, f.bob, f.aliceSLC, 100)
		must(t, err)
		if len(tl) != 0 {
			t.Fatalf("bob sees alice's history: %+v", tl)
		}
		flips, err := s.AvailabilityHistory(ctx, f.bob, f.aliceSLC)
		must(t, err)
		if len(flips) != 1 || !flips[0].Unavailable || !flips[0].At.Equal(handover) {
			t.Fatalf("bob's availability history: %+v", flips)
		}
		// What happens on bob's watch is his.
		now = now.Add(time.Minute)
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 3, now, "storage_full:E:"))
		must(t, err)
		tl, err = s.Timeline(ctx, f.bob, f.aliceSLC, 100)
		must(t, err)
		for _, e := range tl {
			if e.At.Before(handover) || e.Subject == "cam-7" || e.Subject == "alice-archive" {
				t.Fatalf("bob's timeline holds %+v from before %v", e, handover)
			}
		}
		if len(tl) == 0 {
			t.Fatal("bob's own history is missing")
		}
		// Bob's period is not alice's either when she gets it back.
		must(t, s.Release(ctx, f.bob, f.aliceSLC))
		now = now.Add(time.Hour)
		must(t, s.Register(ctx, f.alice, f.aliceSLC))
		tl, err = s.Timeline(ctx, f.alice, f.aliceSLC, 100)
		must(t, err)
		for _, e := range tl {
			if e.Subject == "E:" {
				t.Fatalf("alice sees bob's history: %+v", e)
			}
		}
	})
}
