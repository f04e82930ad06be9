package store_test

import (
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/sealed"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// A state incident cannot be resolved by hand while its server still
// reports the condition; an event can, and so can a condition whose
// server no longer reports (consent withdrawn).
func TestResolvingAReportedConditionIsRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		r := report(f.aliceSrv, 1, day, "storage_full:E:")
		r.Events = []keepwatch.Event{{Kind: "archive_move_failed", Subject: "Archive 1", Severity: keepwatch.SeverityError, At: day}}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
		ins, err := s.Incidents(ctx, f.alice, "", 10)
		must(t, err)
		var state, event keepwatch.Incident
		for _, n := range ins {
			if n.Event {
				event = n
			} else {
				state = n
			}
		}
		if rep, err := s.IncidentReported(ctx, f.alice, state.ID); err != nil || !rep {
			t.Fatalf("state incident reported = %v, %v", rep, err)
		}
		if rep, err := s.IncidentReported(ctx, f.alice, event.ID); err != nil || rep {
			t.Fatalf("event reported = %v, %v", rep, err)
		}
		_, err = s.IncidentReported(ctx, f.bob, state.ID)
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = s.ResolveIncident(ctx, f.alice, state.ID, "user:tech@alice", "")
		wantCode(t, err, keepwatch.ECONDITIONACTIVE)
		if n, _ := s.Incident(ctx, f.alice, state.ID); n.State != keepwatch.IncidentOpen {
			t.Fatalf("refused resolve changed the incident: %+v", n)
		}
		_, err = s.ResolveIncident(ctx, f.alice, event.ID, "user:tech@alice", "rerun")
		must(t, err)
		// The customer withdraws consent: nothing is reported any more.
		off := false
		_, err = s.ApplyReport(ctx, keepwatch.Report{ServerID: f.aliceSrv, Seq: 2, ReceivedAt: day.Add(time.Minute), Interval: time.Minute, Consent: &off})
		must(t, err)
		if rep, err := s.IncidentReported(ctx, f.alice, state.ID); err != nil || rep {
			t.Fatalf("after consent withdrawn reported = %v, %v", rep, err)
		}
		_, err = s.ResolveIncident(ctx, f.alice, state.ID, "user:tech@alice", "customer left")
		must(t, err)
	})
}

func TestStopMaintenanceCancelsScheduledAndEndsRunning(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		running, err := s.SetMaintenance(ctx, f.alice, keepwatch.MaintenanceWindow{SLC: f.aliceSLC, Start: now.Add(-time.Hour), End: now.Add(time.Hour), CreatedBy: "user:a"})
		must(t, err)
		later, err := s.SetMaintenance(ctx, f.alice, keepwatch.MaintenanceWindow{SLC: f.aliceSLC, Start: now.Add(3 * time.Hour), End: now.Add(4 * time.Hour), CreatedBy: "user:a"})
		must(t, err)
		up, err := s.UpcomingMaintenance(ctx, f.alice, now)
		must(t, err)
		if w, ok := up[f.aliceSLC]; !ok || w.ID != later.ID {
			t.Fatalf("upcoming: %+v", up)
		}
		if up, _ := s.UpcomingMaintenance(ctx, f.bob, now); len(up) != 0 {
			t.Fatalf("bob sees upcoming windows: %+v", up)
		}
		_, _, err = s.StopMaintenance(ctx, f.bob, f.aliceSLC, later.ID, now)
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, _, err = s.StopMaintenance(ctx, f.bob, f.bobSLC, later.ID, now)
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, cancelled, err := s.StopMaintenance(ctx, f.alice, f.aliceSLC, later.ID, now)
		must(t, err)
		if !cancelled {
			t.Fatal("a scheduled window was not cancelled")
		}
		m, cancelled, err := s.StopMaintenance(ctx, f.alice, f.aliceSLC, running.ID, now)
		must(t, err)
		if cancelled || !m.End.Equal(now) {
			t.Fatalf("running window: %+v cancelled=%v", m, cancelled)
		}
		left, err := s.Maintenance(ctx, f.alice, f.aliceSLC, now.Add(-time.Millisecond))
		must(t, err)
		if len(left) != 1 || !left[0].End.Equal(now) {
			t.Fatalf("windows left: %+v", left)
		}
		_, _, err = s.StopMaintenance(ctx, f.alice, f.aliceSLC, running.ID, now.Add(time.Second))
		wantCode(t, err, keepwatch.ECONFLICT)
	})
}

func TestFlashesAreReadOnceBySessionAndSealed(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			kr, err := sealed.ParseKeys(sealed.NewKey())
			must(t, err)
			s, err := store.OpenWith(ctx, testutil.DSN(t, d), store.Options{Keyring: kr})
			must(t, err)
			t.Cleanup(func() { s.Close() })
			testFlashes(t, s)
		})
	}
}

func testFlashes(t *testing.T, s *store.Store) {
	{
		mine, other := []byte("session-hash-mine-000000000000000"), []byte("session-hash-other-00000000000000")
		must(t, s.PutFlash(ctx, mine, "token", "kw_secret_flash_value", time.Now().Add(time.Minute)))
		if v, err := s.TakeFlash(ctx, other, "token"); err != nil || v != "" {
			t.Fatalf("another session read %q %v", v, err)
		}
		if raw, err := s.StoredFlashForTest(ctx, mine, "token"); err != nil || strings.Contains(raw, "kw_secret_flash_value") || !sealed.IsSealedString(raw) {
			t.Fatalf("flash stored in clear: %q %v", raw, err)
		}
		if v, err := s.TakeFlash(ctx, mine, "token"); err != nil || v != "kw_secret_flash_value" {
			t.Fatalf("take: %q %v", v, err)
		}
		if v, _ := s.TakeFlash(ctx, mine, "token"); v != "" {
			t.Fatalf("read twice: %q", v)
		}
		must(t, s.PutFlash(ctx, mine, "token", "stale", time.Now().Add(-time.Second)))
		if v, _ := s.TakeFlash(ctx, mine, "token"); v != "" {
			t.Fatalf("expired flash read: %q", v)
		}
	}
}

func TestIncidentNotificationsAreScopedByIntegrator(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:"))
		must(t, err)
		ins, err := s.Incidents(ctx, f.alice, "", 10)
		must(t, err)
		ch, err := s.CreateChannel(ctx, f.alice, keepwatch.Channel{Name: "ops", Type: keepwatch.ChannelWebhook, Target: "https://127.0.0.1:9/h", Enabled: true})
		must(t, err)
		_, err = s.Enqueue(ctx, keepwatch.Notification{IntegratorID: f.alice, ChannelID: ch.ID, IncidentID: ins[0].ID, Type: keepwatch.NotifyOpened,
			DedupKey: "k1", State: keepwatch.NotificationPending, NotBefore: day, CreatedAt: day})
		must(t, err)
		got, err := s.IncidentNotifications(ctx, f.alice, ins[0].ID)
		must(t, err)
		if len(got) != 1 || got[0].ChannelID != ch.ID {
			t.Fatalf("alice's: %+v", got)
		}
		_, err = s.IncidentNotifications(ctx, f.bob, ins[0].ID)
		wantCode(t, err, keepwatch.ENOTFOUND)
		reg, err := s.RegisteredAt(ctx, f.alice, f.aliceSLC)
		must(t, err)
		if !reg.Equal(day.Add(-24 * time.Hour)) {
			t.Fatalf("registered at %s", reg)
		}
		_, err = s.RegisteredAt(ctx, f.bob, f.aliceSLC)
		wantCode(t, err, keepwatch.ENOTFOUND)
	})
}
