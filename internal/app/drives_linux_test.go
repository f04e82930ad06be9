//go:build linux

package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
	"keepwatch/internal/testutil"
)

// clock is a time both keepwatch and the agent read, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// tmpfs mounts a small real file system at a new directory, unmounted at
// the end of the test. Without permission to mount the test is skipped,
// and fails under KEEPWATCH_REQUIRE_ALL=1.
func tmpfs(t *testing.T, size string) string {
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

// driveSite is keepwatch with an installation whose one server's agent
// samples a real drive, both on the test's clock.
type driveSite struct {
	a      *app.App
	clk    *clock
	drive  string
	rec    string
	d      *agent.Daemon
	id     string
	integr int64
}

const driveSLC = "DRIVE-0001"

func newDriveSite(t *testing.T) *driveSite {
	t.Helper()
	ds := &driveSite{clk: &clock{t: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}, drive: tmpfs(t, "64m")}
	ds.rec = filepath.Join(ds.drive, "Recordings")
	// An hour's heartbeat interval (the longest an agent accepts): the
	// agent reports at every step of the clock, so no step makes the
	// server look silent.
	a := start(t, app.Config{DataDir: t.TempDir(), SelfSigned: true, Interval: time.Hour, Now: ds.clk.now})
	t.Cleanup(func() { a.Shutdown(ctx) })
	ds.a = a
	in, err := a.Store.CreateIntegrator(ctx, "Alice Security")
	must(t, err)
	ds.integr = in.ID
	until, _ := keepwatch.ParseDate("2099-01-01")
	_, err = a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: driveSLC, Customer: "Harbor Logistics", Product: "XProtect", Cameras: 8, CarePlusUntil: until}, secret.Hash("enroll-key"))
	must(t, err)
	must(t, a.Store.Register(ctx, in.ID, driveSLC))
	dir := t.TempDir()
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: a.URL(), CAFile: a.CertFile, SLC: driveSLC, Key: "enroll-key", Name: "RS-01", Consent: true})
	must(t, err)
	must(t, st.Save(dir))
	ds.id = st.ServerID
	cfg, err := agent.ParseConfig(strings.NewReader(fmt.Sprintf(`{"drives": [{"path": %q, "role": "recording", "recordings": %q}], "local_api": "127.0.0.1:0"}`, ds.drive, ds.rec)))
	must(t, err)
	// Faster than a configuration may ask: a round of samples as soon as
	// the test moves the clock.
	cfg.Checks.DriveSamples.Every = agent.Duration(200 * time.Millisecond)
	cfg.Checks.Drives.Every = agent.Duration(time.Hour)
	ds.d = &agent.Daemon{Dir: dir, Config: cfg, Logger: quiet(), Now: ds.clk.now}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ds.d.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	select {
	case <-ds.d.Ready():
	case err := <-done:
		t.Fatalf("agent ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready")
	}
	return ds
}

// record writes n bytes of footage stamped now.
func (ds *driveSite) record(t *testing.T, name string, n int) {
	t.Helper()
	must(t, os.MkdirAll(ds.rec, 0o755))
	p := filepath.Join(ds.rec, name)
	must(t, os.WriteFile(p, make([]byte, n), 0o644))
	now := ds.clk.now()
	must(t, os.Chtimes(p, now, now))
}

// measured waits until keepwatch holds a sample of the drive taken at the
// clock's time, and returns the drive's status.
func (ds *driveSite) measured(t *testing.T) keepwatch.DriveStatus {
	t.Helper()
	want := ds.clk.now()
	deadline := time.Now().Add(60 * time.Second)
	for {
		set, hs, err := ds.a.Store.InstallationDrives(ctx, ds.integr, driveSLC, want)
		must(t, err)
		if len(hs) == 1 {
			st := set.Status(hs[0], want)
			if st.MeasuredAt.Equal(want) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample of %s at %s reached keepwatch", ds.drive, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (ds *driveSite) keepwatchConditions(t *testing.T) map[string]keepwatch.Condition {
	t.Helper()
	srv, err := ds.a.Store.Servers(ctx, ds.integr, driveSLC)
	must(t, err)
	out := map[string]keepwatch.Condition{}
	for _, c := range srv[0].Conditions {
		if keepwatch.SetByKeepwatch(c.Kind) {
			out[c.Kind] = c
		}
	}
	return out
}

// A real drive filled step by step, an hour of the clock per step: the
// agent samples it, keepwatch fits the trend, forecasts the full date and
// raises storage_forecast; emptied, the warning clears by itself.
func TestRealDriveFillingRaisesStorageForecast(t *testing.T) {
	ds := newDriveSite(t)
	const chunk = 1 << 20 // a MiB an hour: 24 MiB a day on 64 MiB
	var st keepwatch.DriveStatus
	for h := 0; h < 30; h++ {
		ds.record(t, fmt.Sprintf("clip-%03d.mkv", h), chunk)
		ds.clk.advance(time.Hour)
		st = ds.measured(t)
		if h < 10 && st.DaysUntilFull != nil {
			t.Fatalf("after %d hours, a forecast from too few samples: %+v", h, st)
		}
	}
	if st.Trend != keepwatch.TrendFilling || st.DaysUntilFull == nil || *st.DaysUntilFull > 2 || *st.DaysUntilFull < 0.5 {
		t.Fatalf("after 30 hours: %+v", st)
	}
	// About 24 MiB a day measured on the real file system.
	if g := st.GrowthBytesPerDay / (1 << 20); g < 20 || g > 28 {
		t.Fatalf("growth %.1f MiB a day, want ~24", g)
	}
	c, ok := ds.keepwatchConditions(t)[keepwatch.KindStorageForecast]
	if !ok || c.Subject != ds.drive || c.Severity != keepwatch.SeverityWarning {
		t.Fatalf("storage_forecast: %+v", ds.keepwatchConditions(t))
	}
	t.Logf("%s", c.Message)
	// The recorder starts deleting old footage and holds the drive at its
	// level: two days later the warning has cleared by itself.
	entries, err := os.ReadDir(ds.rec)
	must(t, err)
	for i := 0; i < 20; i++ {
		must(t, os.Remove(filepath.Join(ds.rec, entries[i].Name())))
	}
	for h := 0; h < 48; h++ {
		ds.clk.advance(time.Hour)
		ds.measured(t)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := ds.keepwatchConditions(t)[keepwatch.KindStorageForecast]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage_forecast did not clear: %+v", ds.keepwatchConditions(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A drive the recorder holds at about 95 % by deleting its oldest footage
// as it records never warns, however full it is.
func TestRealDriveHeldFullByRetentionNeverWarns(t *testing.T) {
	ds := newDriveSite(t)
	const chunk = 1 << 20
	// Fill to ~95 % (tmpfs counts pages: 60 MiB of 64).
	n := 0
	for ; n < 60; n++ {
		ds.record(t, fmt.Sprintf("clip-%04d.mkv", n), chunk)
	}
	oldest := 0
	for h := 0; h < 36; h++ {
		// An hour records 1 MiB; every fourth hour the recorder deletes
		// the four oldest: a saw around the level.
		ds.record(t, fmt.Sprintf("clip-%04d.mkv", n), chunk)
		n++
		if h%4 == 3 {
			for i := 0; i < 4; i++ {
				must(t, os.Remove(filepath.Join(ds.rec, fmt.Sprintf("clip-%04d.mkv", oldest))))
				oldest++
			}
		}
		ds.clk.advance(time.Hour)
		st := ds.measured(t)
		if st.DaysUntilFull != nil {
			t.Fatalf("hour %d: a drive held at its level forecast full: %+v", h, st)
		}
		if c, ok := ds.keepwatchConditions(t)[keepwatch.KindStorageForecast]; ok {
			t.Fatalf("hour %d: %+v", h, c)
		}
	}
	st := ds.measured(t)
	if used := float64(st.CapacityBytes-st.FreeBytes) / float64(st.CapacityBytes); used < 0.9 || st.Trend != keepwatch.TrendRetentionManaged {
		t.Fatalf("held drive: %.0f %% used, trend %s", used*100, st.Trend)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
