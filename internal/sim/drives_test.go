package sim

import (
	"math/rand/v2"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// history samples d every 5 minutes for the 14 days before now, as
// keepwatch would hold them.
func history(t *testing.T, d SimDrive, now time.Time) []keepwatch.DriveSample {
	t.Helper()
	var out []keepwatch.DriveSample
	for at := now.Add(-14 * 24 * time.Hour); !at.After(now); at = at.Add(SampleEvery) {
		p := d.Sample(at)
		s := keepwatch.DriveSample{At: *p.At, Capacity: p.Capacity, Free: p.Free}
		if p.OldestRecordingAt != nil {
			s.OldestRecording = *p.OldestRecordingAt
		}
		r := keepwatch.DriveReading{Path: p.Path, Role: keepwatch.DriveRole(p.Role), DriveSample: s}
		if err := keepwatch.ValidateDriveReadings([]keepwatch.DriveReading{r}, now); err != nil {
			t.Fatalf("%s at %s: %v", d, at, err)
		}
		out = append(out, s)
	}
	return out
}

func TestSimulatedDrivesLookToKeepwatchAsTheyBehave(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const tib = 1 << 40
	settings := keepwatch.DriveSettings{RequiredRetentionDays: 30}
	for _, c := range []struct {
		d         SimDrive
		trend     keepwatch.Trend
		lo, hi    float64 // days until full
		retention string
	}{
		{SimDrive{Path: `E:\Recordings`, Role: "recording", Capacity: 8 * tib, Behavior: DriveRetained, Start: now.Add(-60 * 24 * time.Hour), RetentionDays: 21, Seed: 1},
			keepwatch.TrendRetentionManaged, 0, 0, "footage kept 21 days, 30 required"},
		{SimDrive{Path: `E:\Recordings`, Role: "recording", Capacity: 8 * tib, Behavior: DriveRetained, Start: now.Add(-60 * 24 * time.Hour), RetentionDays: 35, Seed: 2},
			keepwatch.TrendRetentionManaged, 0, 0, ""},
		{SimDrive{Path: `E:\Recordings`, Role: "recording", Capacity: 8 * tib, Behavior: DriveFilling, Start: now.Add(-20 * 24 * time.Hour), StartUsed: 0.3, FullAfter: 30 * 24 * time.Hour, Seed: 3},
			keepwatch.TrendFilling, 9, 11, "footage kept 20 days, 30 required"},
		{SimDrive{Path: `F:\Archive`, Role: "archive", Capacity: 16 * tib, Behavior: DriveFilling, Start: now.Add(-200 * 24 * time.Hour), StartUsed: 0.05, FullAfter: 500 * 24 * time.Hour, Seed: 4},
			keepwatch.TrendFilling, 280, 320, ""},
		{SimDrive{Path: `E:\Recordings`, Role: "recording", Capacity: 4 * tib, Behavior: DriveRunaway, Start: now.Add(-30 * time.Hour), StartUsed: 0.6, FullAfter: 40 * time.Hour, Seed: 5, RetentionDays: 40},
			keepwatch.TrendFilling, 0.3, 0.5, ""},
	} {
		st := settings.Status(keepwatch.DriveHistory{Path: c.d.Path, Role: keepwatch.DriveRole(c.d.Role), Samples: history(t, c.d, now)}, now)
		if st.Trend != c.trend {
			t.Errorf("%s: %s, want %s (%+v)", c.d, st.Trend, c.trend, st)
			continue
		}
		if c.trend == keepwatch.TrendFilling && (st.DaysUntilFull == nil || *st.DaysUntilFull < c.lo || *st.DaysUntilFull > c.hi) {
			t.Errorf("%s: full in %v days, want %g to %g", c.d, st.DaysUntilFull, c.lo, c.hi)
		}
		var msg string
		for _, cd := range settings.Conditions([]keepwatch.DriveStatus{st}, now) {
			if cd.Kind == keepwatch.KindRetentionShort {
				msg = cd.Message
			}
		}
		if msg != c.retention {
			t.Errorf("%s: retention %q, want %q", c.d, msg, c.retention)
		}
	}
}

func TestDrivesForAFleetAndTheirCadence(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	n := map[DriveBehavior]int{}
	for i := 0; i < 1000; i++ {
		for _, d := range DrivesFor(rnd, now) {
			n[d.Behavior]++
			p := d.Sample(now)
			if p.Capacity == 0 || p.Free > p.Capacity {
				t.Fatalf("%s: %+v", d, p)
			}
		}
	}
	if n[DriveRetained] < 800 || n[DriveFilling] < 100 || n[DriveRunaway] == 0 {
		t.Fatalf("behaviors of 1000 servers: %v", n)
	}
	s := &driveSet{drives: DrivesFor(rnd, now)}
	var got [][]protocol.PayloadDrive
	for at := now; at.Before(now.Add(20 * time.Minute)); at = at.Add(time.Minute) {
		if d := s.due(at); d != nil {
			got = append(got, d)
		}
	}
	if len(got) != 4 {
		t.Fatalf("%d rounds of samples in 20 minutes, want 4", len(got))
	}
}
