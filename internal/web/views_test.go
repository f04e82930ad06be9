package web

import (
	"strings"
	"testing"
	"time"

	"keepwatch"
)

func TestUptimeBarColoursDaysAndNamesOutages(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	since := now.Add(-3 * 24 * time.Hour)
	outages := []keepwatch.Outage{{From: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)}}
	bar := newUptimeBar(keepwatch.Daily(outages, since, now, 5), keepwatch.AvailabilityOver(outages, since, now, 5*24*time.Hour))
	if len(bar.Days) != 5 {
		t.Fatalf("%d cells", len(bar.Days))
	}
	var levels []string
	for _, d := range bar.Days {
		levels = append(levels, d.Level)
	}
	// 11-21 and most of 11-22 unwatched; 11-24 down 4 h of 24 (83 %).
	if got := strings.Join(levels, " "); got != "none ok ok down ok" {
		t.Fatalf("levels: %s", got)
	}
	if !strings.Contains(bar.Days[3].Title, "2026-11-24: 83.33 %") || !strings.Contains(bar.Days[3].Title, "unavailable 10:00–14:00 UTC") {
		t.Fatalf("tooltip: %q", bar.Days[3].Title)
	}
	if !strings.Contains(bar.Days[4].Title, "of 12 h monitored") || !strings.Contains(bar.Days[0].Title, "not monitored") {
		t.Fatalf("partial and unwatched days: %q / %q", bar.Days[4].Title, bar.Days[0].Title)
	}
}

func TestCountsAreExplained(t *testing.T) {
	for _, c := range []struct {
		n    keepwatch.Incident
		want string
	}{
		{keepwatch.Incident{Kind: keepwatch.KindSiteUnreachable, Count: 3}, "3 servers silent together"},
		{keepwatch.Incident{Kind: keepwatch.KindArchiveMoveFailed, Event: true, Count: 4}, "happened 4 times"},
		{keepwatch.Incident{Kind: keepwatch.KindStorageFull, Count: 2}, "came back once"},
		{keepwatch.Incident{Kind: keepwatch.KindStorageFull, Count: 1}, ""},
	} {
		if got := countLabel(c.n); got != c.want {
			t.Errorf("%+v: %q, want %q", c.n, got, c.want)
		}
	}
}
