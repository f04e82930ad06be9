//go:build linux

package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/testutil"
)

// realDrive mounts a tmpfs of the given size ("2m") at a new directory: a
// real file system whose statfs the sampler reads. Without permission to
// mount the test is skipped, and fails under KEEPWATCH_REQUIRE_ALL=1.
func realDrive(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if testutil.RequireAll() {
			t.Fatalf("mounting a %s tmpfs is required (KEEPWATCH_REQUIRE_ALL=1): %v", size, err)
		}
		t.Skipf("needs a real small file system and may not mount a tmpfs here (%v); run as root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func sampleOf(t *testing.T, pd protocol.PayloadDrive) keepwatch.DriveSample {
	t.Helper()
	s := keepwatch.DriveSample{At: *pd.At, Capacity: pd.Capacity, Free: pd.Free}
	if pd.OldestRecordingAt != nil {
		s.OldestRecording = *pd.OldestRecordingAt
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("sample %+v: %v", pd, err)
	}
	return s
}

func writeFile(t *testing.T, path string, n int, at time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func samplerFor(t *testing.T, d Drive) *driveSampler {
	t.Helper()
	cfg := Config{Drives: []Drive{d}}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	s := newDriveSampler(cfg, Probes{}.withDefaults())
	if f, ok := s.finders[d.Path].(*datedFolders); ok {
		f.loc = time.UTC
	}
	return s
}

func TestARealDriveFilledStepByStepIsForecastFull(t *testing.T) {
	drive := realDrive(t, "2m")
	rec := filepath.Join(drive, "Recordings")
	s := samplerFor(t, Drive{Path: drive, Role: "recording", Recordings: rec, Layout: LayoutDatedFolders})
	ctx := context.Background()

	// Four days on an injected clock, a 16 KiB recording every 2 hours
	// into the day's folder, a sample after each.
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var hist []keepwatch.DriveSample
	for step := 0; step < 48; step++ {
		writeFile(t, filepath.Join(rec, now.Format("2006-01-02"), fmt.Sprintf("%03d.mkv", step)), 16<<10, now)
		got, err := s.sample(ctx, now)
		if err != nil || len(got) != 1 || got[0].Path != drive || got[0].Role != "recording" {
			t.Fatalf("step %d: %+v %v", step, got, err)
		}
		hist = append(hist, sampleOf(t, got[0]))
		now = now.Add(2 * time.Hour)
	}
	first, last := hist[0], hist[len(hist)-1]
	if first.Capacity != 2<<20 || last.Used() <= first.Used() {
		t.Fatalf("the tmpfs did not fill: first %+v, last %+v", first, last)
	}
	span := last.At.Sub(first.At).Hours() / 24
	rate := float64(last.Used()-first.Used()) / span
	wantDays := float64(last.Free) / rate

	settings := keepwatch.DriveSettings{RequiredRetentionDays: 30}
	st := settings.Status(keepwatch.DriveHistory{Server: "RS-01", Path: drive, Role: keepwatch.DriveRecording, Samples: hist}, last.At)
	if st.Trend != keepwatch.TrendFilling || st.DaysUntilFull == nil || abs(*st.DaysUntilFull-wantDays) > 0.1*wantDays {
		t.Fatalf("status %+v; want full in %.1f days (%.0f B/day, %d B free)", st, wantDays, rate, last.Free)
	}
	t.Logf("a 2 MiB tmpfs filled by %.0f KiB a day: %d KiB free, full in %.1f days (measured rate: %.1f)", rate/1024, last.Free>>10, *st.DaysUntilFull, wantDays)
	if st.OldestRecordingAt == nil || !st.OldestRecordingAt.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("oldest recording %v, want the first day's folder", st.OldestRecordingAt)
	}
	conds := settings.Conditions([]keepwatch.DriveStatus{st}, last.At)
	if len(conds) != 2 || conds[1].Kind != keepwatch.KindStorageForecast || conds[1].Subject != drive || conds[1].Severity != keepwatch.SeverityWarning {
		t.Fatalf("conditions %+v", conds)
	}
	if conds[0].Kind != keepwatch.KindRetentionShort || conds[0].Severity != keepwatch.SeverityError || conds[0].Message != "footage kept 3 days, 30 required" {
		t.Fatalf("retention: %+v", conds[0])
	}
	t.Logf("conditions: %s %q; %s %s %q", conds[1].Kind, conds[1].Message, conds[0].Kind, conds[0].Severity, conds[0].Message)
}

func TestARealDriveHeldAt95PercentNeverWarns(t *testing.T) {
	drive := realDrive(t, "2m")
	rec := filepath.Join(drive, "Recordings")
	s := samplerFor(t, Drive{Path: drive, Role: "recording", Recordings: rec}) // oldest-file
	ctx := context.Background()
	statfs := func() DiskUsage {
		u, err := statfs(drive)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	usedPct := func() float64 { u := statfs(); return float64(u.Total-u.Free) / float64(u.Total) }

	// The recorder wrote for weeks before: the drive is at its 95 %
	// limit, footage from 30 days back.
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var files []string
	record := func(at time.Time, i int) {
		p := filepath.Join(rec, at.Format("2006-01-02"), fmt.Sprintf("%06d.mkv", i))
		writeFile(t, p, 16<<10, at)
		files = append(files, p)
	}
	// It deletes the oldest recordings whenever it passes 95 %.
	retain := func() {
		for usedPct() >= 0.95 {
			if err := os.Remove(files[0]); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Dir(files[0])) // fails while the day's folder holds files
			files = files[1:]
		}
	}
	for i := 0; usedPct() < 0.94; i++ {
		record(start.Add(-30*24*time.Hour+time.Duration(i)*4*time.Hour), i)
	}
	sort.Strings(files)

	// Four days, a recording every 30 minutes, a sample every 30 minutes:
	// never a storage_forecast, and the verdict is retention_managed.
	settings := keepwatch.DriveSettings{}
	var hist []keepwatch.DriveSample
	now := start
	for step := 0; step < 4*48; step++ {
		record(now, 1_000_000+step)
		retain()
		got, err := s.sample(ctx, now)
		if err != nil || len(got) != 1 {
			t.Fatalf("step %d: %+v %v", step, got, err)
		}
		hist = append(hist, sampleOf(t, got[0]))
		st := settings.Status(keepwatch.DriveHistory{Path: drive, Role: keepwatch.DriveRecording, Samples: hist}, now)
		if c := settings.Conditions([]keepwatch.DriveStatus{st}, now); len(c) != 0 {
			t.Fatalf("step %d (%s, %.1f %% used): %+v", step, now, usedPct()*100, c)
		}
		now = now.Add(30 * time.Minute)
	}
	last := hist[len(hist)-1]
	st := settings.Status(keepwatch.DriveHistory{Path: drive, Role: keepwatch.DriveRecording, Samples: hist}, last.At)
	if st.Trend != keepwatch.TrendRetentionManaged || st.DaysUntilFull != nil {
		t.Fatalf("held at 95 %%: %+v", st)
	}
	// 16 KiB every 30 minutes, ~1.9 MiB kept: about 2.5 days of footage,
	// measured without walking the tree at every sample.
	if st.RetentionDays == nil || *st.RetentionDays < 2 || *st.RetentionDays > 3 {
		t.Fatalf("retention %v days", st.RetentionDays)
	}
	f := s.finders[drive].(*oldestFile)
	t.Logf("held at 95 %%: trend %s, %.1f days of footage kept; %d full walks in %d samples", st.Trend, *st.RetentionDays, f.walks, len(hist))
	// The recorder deletes eight days of the older, sparser footage a
	// day at first, crossing a day's folder every three hours: a walk
	// each time (at most one an hour), then about one a day.
	if f.walks > 16 {
		t.Fatalf("%d full walks in %d samples", f.walks, len(hist))
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
