package keepwatch

import (
	"math"
	"testing"
	"time"
)

func TestUptimeCountsOnlyTheWatchedPartOfEachWindow(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	srv := Server{ID: "a", State: ServerOK, EnrolledAt: now.Add(-100 * 24 * time.Hour), LastSeen: now}
	flips := []Flip{
		{ServerID: "a", Unavailable: true, At: now.Add(-40 * 24 * time.Hour)}, // 1 day down, outside 30 d
		{ServerID: "a", Unavailable: false, At: now.Add(-39 * 24 * time.Hour)},
		{ServerID: "b", Unavailable: true, At: now.Add(-2 * time.Hour)},  // another server
		{ServerID: "a", Unavailable: true, At: now.Add(-25 * time.Hour)}, // 2 h down, 1 h of it in the last 24 h
		{ServerID: "a", Unavailable: false, At: now.Add(-23 * time.Hour)},
	}
	outages := Outages(flips, "a")
	if len(outages) != 2 {
		t.Fatalf("outages: %+v", outages)
	}
	since := MonitoredSince(srv, time.Time{})
	for _, c := range []struct {
		window  time.Duration
		want    float64
		covered time.Duration
	}{
		{24 * time.Hour, 100 * (1 - 1.0/24), 24 * time.Hour},
		{30 * 24 * time.Hour, 100 * (1 - 2.0/(30*24)), 30 * 24 * time.Hour},
		// Only 100 days were watched of the 365: one day and two hours down.
		{365 * 24 * time.Hour, 100 * (1 - 26.0/(100*24)), 100 * 24 * time.Hour},
	} {
		a := AvailabilityOver(outages, since, now, c.window)
		if math.Abs(a.Percent()-c.want) > 1e-9 || a.Covered() != c.covered {
			t.Errorf("window %s: %.4f over %s, want %.4f over %s", c.window, a.Percent(), a.Covered(), c.want, c.covered)
		}
		if a.Partial() != (c.covered < c.window) {
			t.Errorf("window %s: partial %v", c.window, a.Partial())
		}
	}
	// Down right now: the open outage counts up to now and is still open.
	down := append(flips, Flip{ServerID: "a", Unavailable: true, At: now.Add(-6 * time.Hour)})
	a := AvailabilityOver(Outages(down, "a"), since, now, 24*time.Hour)
	if math.Abs(a.Percent()-100*(1-7.0/24)) > 1e-9 || len(a.Outages) != 2 || !a.Outages[1].To.IsZero() {
		t.Errorf("ongoing outage: %.4f %+v", a.Percent(), a.Outages)
	}
	// A server that never reported has no uptime.
	if a := AvailabilityOver(nil, MonitoredSince(Server{ID: "c", State: ServerPending}, time.Time{}), now, time.Hour); a.Known() {
		t.Error("a pending server has an uptime")
	}
}

// Five minutes after registration, every window covers five minutes: the
// year's uptime is not 5 minutes out of 365 days.
func TestUptimeStartsAtRegistration(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	srv := Server{ID: "a", State: ServerOK, EnrolledAt: now.Add(-400 * 24 * time.Hour), LastSeen: now}
	registered := now.Add(-5 * time.Minute)
	// An outage before the registration is the previous holder's history.
	flips := []Flip{{ServerID: "a", Unavailable: true, At: now.Add(-3 * time.Minute)}, {ServerID: "a", Unavailable: false, At: now.Add(-2 * time.Minute)}}
	since := MonitoredSince(srv, registered)
	for _, w := range []time.Duration{24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour} {
		a := AvailabilityOver(Outages(flips, "a"), since, now, w)
		if a.Covered() != 5*time.Minute || !a.Partial() || math.Abs(a.Percent()-80) > 1e-9 {
			t.Errorf("window %s: %.2f over %s", w, a.Percent(), a.Covered())
		}
	}
}

func TestDailyAvailabilityCellsSplitOutagesAtMidnight(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	since := now.Add(-3 * 24 * time.Hour) // watched from 2026-11-22 06:00
	outages := []Outage{{From: time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)}}
	days := Daily(outages, since, now, 5)
	if len(days) != 5 {
		t.Fatalf("%d days", len(days))
	}
	want := []struct {
		covered, down time.Duration
	}{
		{0, 0},                      // 11-21: not watched
		{18 * time.Hour, 0},         // 11-22 from 06:00
		{24 * time.Hour, time.Hour}, // 11-23 23:00–24:00
		{24 * time.Hour, time.Hour}, // 11-24 00:00–01:00
		{6 * time.Hour, 0},          // today so far
	}
	for i, w := range want {
		d := days[i]
		if d.Covered() != w.covered || d.Down != w.down {
			t.Errorf("day %d (%s): covered %s down %s, want %s %s", i, d.From, d.Covered(), d.Down, w.covered, w.down)
		}
	}
	if days[0].Known() || !days[4].Partial() || days[3].Partial() {
		t.Error("known/partial days")
	}
}

func TestUptimeHasOneFormat(t *testing.T) {
	for p, want := range map[float64]string{100: "100.00 %", 99.999: "99.99 %", 93.4: "93.40 %", 0: "0.00 %"} {
		if got := FormatPercent(p); got != want {
			t.Errorf("%v: %q, want %q", p, got, want)
		}
	}
}
