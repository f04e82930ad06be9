package store_test

import (
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

const tib = uint64(1) << 40

// reading is a sample of E:\Recordings, capacity 8 TiB, used used bytes,
// footage kept for kept.
func reading(at time.Time, used uint64, kept time.Duration) keepwatch.DriveReading {
	r := keepwatch.DriveReading{Path: `E:\Recordings`, Role: keepwatch.DriveRecording,
		DriveSample: keepwatch.DriveSample{At: at, Capacity: 8 * tib, Free: 8*tib - used}}
	if kept > 0 {
		r.OldestRecording = at.Add(-kept)
	}
	return r
}

// A year of samples, compacted as the server compacts them (hourly, by
// day here), stays within keepwatch.SeriesMaxPoints rows and the bytes
// per drive docs/operations.md states; the chart of a year has a point a
// day, and the last samples are kept as they came.
func TestDriveSeriesStayBoundedOverAYear(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated year")
	}
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		start := day.Add(-365 * 24 * time.Hour)
		var peak int64
		used := uint64(2 * tib)
		add := func(from time.Time, n int, step time.Duration) time.Time {
			rs := make([]keepwatch.DriveReading, 0, n)
			for i := 0; i < n; i++ {
				used += 1 << 30 / 12 // ~1 GiB an hour
				rs = append(rs, reading(from, used, 30*24*time.Hour))
				from = from.Add(step)
			}
			must(t, s.AddDriveSamples(ctx, f.aliceSrv, rs))
			return from
		}
		at := start
		for d := 0; d < 363; d++ {
			at = add(at, 24, time.Hour)
			_, err := s.CompactDrives(ctx, at, 10)
			must(t, err)
			rows, _, err := s.DriveSeriesSize(ctx)
			must(t, err)
			peak = max(peak, rows)
		}
		// The last two days as a sender sends them, every 5 minutes,
		// compacted every hour.
		for h := 0; h < 48; h++ {
			at = add(at, 12, 5*time.Minute)
			_, err := s.CompactDrives(ctx, at, 10)
			must(t, err)
			rows, _, err := s.DriveSeriesSize(ctx)
			must(t, err)
			peak = max(peak, rows)
		}
		_, raw, err := s.DriveSeriesSize(ctx)
		must(t, err)
		must(t, s.VacuumForTest(ctx))
		rows, bytes, err := s.DriveSeriesSize(ctx)
		must(t, err)
		t.Logf("%s: before vacuum %d bytes", s.Dialect(), raw)
		t.Logf("%s: after a year %d rows, %d bytes (peak %d rows)", s.Dialect(), rows, bytes, peak)
		if peak > keepwatch.SeriesMaxPoints {
			t.Fatalf("a drive held %d points, bound %d", peak, keepwatch.SeriesMaxPoints)
		}
		limit := int64(80 << 10)
		if s.Dialect() == store.Postgres {
			limit = 240 << 10
		}
		if bytes > limit {
			t.Fatalf("a drive's series takes %d bytes, stated at most %d", bytes, limit)
		}
		// Compacting again at the same time changes nothing.
		n, err := s.CompactDrives(ctx, at.Add(time.Hour), 10)
		must(t, err)
		again, _, err := s.DriveSeriesSize(ctx)
		must(t, err)
		if n != 1 || again > rows {
			t.Fatalf("second compaction: %d drives, %d rows (was %d)", n, again, rows)
		}
		points, err := s.DriveSeries(ctx, f.alice, f.aliceSLC, "", `E:\Recordings`, at.Add(-365*24*time.Hour))
		must(t, err)
		year := keepwatch.SeriesRange(points, at.Add(-365*24*time.Hour), at)
		if len(year) < 360 || len(year) > 367 {
			t.Fatalf("a year's chart has %d points, want one a day", len(year))
		}
		last := year[len(year)-1]
		if last.Capacity != 8*tib || 8*tib-last.Free != used {
			t.Fatalf("last point %+v, want used %d", last, used)
		}
		// Another integrator sees none of it.
		if _, err := s.DriveSeries(ctx, f.bob, f.aliceSLC, "", `E:\Recordings`, at.Add(-24*time.Hour)); keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
			t.Fatalf("bob reads alice's drive: %v", err)
		}
	})
}

// A sender faster than the raw slot keeps one point per drive per 5
// minutes: the latest.
func TestDriveSamplesOnePerSlot(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		at := day.Truncate(time.Hour)
		for i := 0; i < 10; i++ {
			must(t, s.AddDriveSamples(ctx, f.aliceSrv, []keepwatch.DriveReading{reading(at.Add(time.Duration(i)*20*time.Second), uint64(i+1)<<30, 0)}))
		}
		// A late sample of the same slot, older than the kept one.
		must(t, s.AddDriveSamples(ctx, f.aliceSrv, []keepwatch.DriveReading{reading(at.Add(10*time.Second), 99<<30, 0)}))
		rows, _, err := s.DriveSeriesSize(ctx)
		must(t, err)
		if rows != 1 {
			t.Fatalf("%d raw points in one slot, want 1", rows)
		}
		_, hs, err := s.InstallationDrives(ctx, f.alice, f.aliceSLC, at.Add(time.Hour))
		must(t, err)
		if len(hs) != 1 || len(hs[0].Samples) != 1 || hs[0].Samples[0].Used() != 10<<30 || hs[0].Server != "RS-01" {
			t.Fatalf("drives %+v, want one sample of 10 GiB used", hs)
		}
		if _, _, err := s.InstallationDrives(ctx, f.bob, f.aliceSLC, at); keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
			t.Fatalf("bob lists alice's drives: %v", err)
		}
	})
}

// keepwatch raises storage_forecast on a filling drive and
// retention_short on one keeping too little footage, the required
// retention set for the installation; a drive no longer measured clears
// them once it is stale.
func TestDriveVerdictsRaiseAndClear(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.SetDriveSettings(ctx, f.alice, f.aliceSLC, keepwatch.DriveSettings{RequiredRetentionDays: 30})
		must(t, err)
		if _, err := s.SetDriveSettings(ctx, f.bob, f.aliceSLC, keepwatch.DriveSettings{RequiredRetentionDays: 1}); keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
			t.Fatalf("bob sets alice's settings: %v", err)
		}
		// Three days, hourly, filling 100 GiB a day from 7 TiB: full in
		// ~10 days; footage kept 19 days.
		at := day.Add(-72 * time.Hour)
		used := 7 * tib
		var rs []keepwatch.DriveReading
		for i := 0; i < 72; i++ {
			used += 100 << 30 / 24
			rs = append(rs, reading(at, used, 19*24*time.Hour))
			at = at.Add(time.Hour)
		}
		must(t, s.AddDriveSamples(ctx, f.aliceSrv, rs))
		changes, err := keepwatch.JudgeDrives(ctx, s, f.aliceSrv, at)
		must(t, err)
		if len(changes) != 2 {
			t.Fatalf("changes %+v, want storage_forecast and retention_short raised", changes)
		}
		srv, err := s.Servers(ctx, f.alice, f.aliceSLC)
		must(t, err)
		got := map[string]keepwatch.Condition{}
		for _, c := range srv[0].Conditions {
			got[c.Kind] = c
		}
		if c := got[keepwatch.KindStorageForecast]; c.Severity != keepwatch.SeverityWarning || c.Subject != `E:\Recordings` {
			t.Fatalf("storage_forecast %+v", c)
		}
		if c := got[keepwatch.KindRetentionShort]; c.Severity != keepwatch.SeverityWarning || c.Message != "footage kept 19 days, 30 required" {
			t.Fatalf("retention_short %+v", c)
		}
		// An agent's status report does not clear keepwatch's verdicts.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 1, at))
		must(t, err)
		if ids, err := s.ServersToJudge(ctx, at.Add(-keepwatch.ForecastStaleAfter)); err != nil || len(ids) != 0 {
			t.Fatalf("fresh drives to judge again: %v %v", ids, err)
		}
		later := at.Add(keepwatch.ForecastStaleAfter + time.Hour)
		ids, err := s.ServersToJudge(ctx, later.Add(-keepwatch.ForecastStaleAfter))
		must(t, err)
		if len(ids) != 1 || ids[0] != f.aliceSrv {
			t.Fatalf("servers to judge %v", ids)
		}
		changes, err = keepwatch.JudgeDrives(ctx, s, f.aliceSrv, later)
		must(t, err)
		if len(changes) != 2 || changes[0].Active || changes[1].Active {
			t.Fatalf("changes %+v, want both cleared", changes)
		}
	})
}
