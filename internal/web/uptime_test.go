package web

import (
	"math"
	"testing"
	"time"

	"keepwatch"
)

func TestUptimeCountsOnlyUnavailableTimeInsideTheWindow(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	srv := keepwatch.Server{ID: "a", State: keepwatch.ServerOK, EnrolledAt: now.Add(-100 * 24 * time.Hour), LastSeen: now}
	flips := []keepwatch.Flip{
		{ServerID: "a", Unavailable: true, At: now.Add(-40 * 24 * time.Hour)}, // 1 day down, outside 30 d
		{ServerID: "a", Unavailable: false, At: now.Add(-39 * 24 * time.Hour)},
		{ServerID: "b", Unavailable: true, At: now.Add(-2 * time.Hour)},  // another server
		{ServerID: "a", Unavailable: true, At: now.Add(-25 * time.Hour)}, // 2 h down, 1 h of it in the last 24 h
		{ServerID: "a", Unavailable: false, At: now.Add(-23 * time.Hour)},
	}
	for _, c := range []struct {
		window time.Duration
		want   float64
	}{
		{24 * time.Hour, 100 * (1 - 1.0/24)},
		{30 * 24 * time.Hour, 100 * (1 - 2.0/(30*24))},
		// Only 100 days existed of the 365: one day and two hours down.
		{365 * 24 * time.Hour, 100 * (1 - 26.0/(100*24))},
	} {
		got, known := uptimeOf(flips, srv, now, c.window)
		if !known || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("window %s: %.4f (known %v), want %.4f", c.window, got, known, c.want)
		}
	}
	// Down right now: the open outage counts up to now.
	down := append(flips, keepwatch.Flip{ServerID: "a", Unavailable: true, At: now.Add(-6 * time.Hour)})
	if got, _ := uptimeOf(down, srv, now, 24*time.Hour); math.Abs(got-100*(1-7.0/24)) > 1e-9 {
		t.Errorf("ongoing outage: %.4f", got)
	}
	// A server that never reported has no uptime.
	if _, known := uptimeOf(nil, keepwatch.Server{ID: "c", State: keepwatch.ServerPending}, now, time.Hour); known {
		t.Error("a pending server has an uptime")
	}
}

func TestKindLabelsNameKindsForPeople(t *testing.T) {
	if kindLabel("thermal_alarm") != "Thermal alarm" || kindLabel(keepwatch.KindStorageFull) != "Storage full" {
		t.Error("kind labels")
	}
}
