package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
)

// mkdirs creates each path (relative to root) as a folder; a path ending
// in "/f" gets a file f instead of staying empty.
func mkdirs(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/f") {
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte("footage"), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func oldestDated(t *testing.T, root, pattern string) (time.Time, bool, int) {
	t.Helper()
	pat, err := parseFolders(pattern)
	if err != nil {
		t.Fatalf("%s: %v", pattern, err)
	}
	d := &datedFolders{root: root, pat: pat, loc: time.UTC}
	at, ok, err := d.oldest(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("%s: %v", pattern, err)
	}
	return at, ok, d.reads
}

func TestDatedFoldersFindTheOldestFootage(t *testing.T) {
	day := func(s string) time.Time { t, _ := time.Parse("2006-01-02T15", s); return t }
	cases := []struct {
		name, pattern string
		tree          []string
		want          time.Time
		maxReads      int
	}{
		{"one folder a day, either form", DefaultFolders,
			[]string{"2026-11-03/f", "20261102/f", "2026-11-04/f", "cache/f", "2026-11-01", "2026-13-01/f", "2026-11-00/f"},
			day("2026-11-02T00"), 4}, // the empty 2026-11-01 is skipped; impossible dates are not dates
		{"per camera, then year, month, day, hour", "*/YYYY/MM/DD/hh",
			[]string{"cam1/2026/11/02/07/f", "cam1/2026/11/02/06", "cam1/2026/11/03/00/f", "cam2/2026/10/30/23/f", "cam2/2026/11/01/00/f", "cam3/2026/12/01/00/f"},
			day("2026-10-30T23"), 30},
		{"per day, then per hour", "YYYY-MM-DD/hh",
			[]string{"2026-11-02/10/f", "2026-11-02/09", "2026-11-02/11/f", "2026-11-03/00/f"},
			day("2026-11-02T10"), 5},
		{"per storage, then device and time of its last record", "*/* - YYYY-MM-DDThh*",
			[]string{"Archive1/Camera 1 - 2026-11-02T11:23:47+01:00/f", "Archive1/Camera 2 - 2026-11-01T20:00:00+01:00/f",
				"Archive2/Camera 1 - 2026-11-01T19:00:00+01:00", "Archive2/Camera 3 - 2026-11-05T08:00:00+01:00/f", "Archive2/notes/f"},
			day("2026-11-01T20"), 8},
		{"per camera, dated with minutes", "*/YYYY-MM-DD-hh-mm",
			[]string{"00408c51e181_1/2012-12-31-23-15/f", "00408c51e181_2/2012-12-31-22-45/f", "00408c51e181_2/2013-01-01-00-00/f"},
			time.Date(2012, 12, 31, 22, 45, 0, 0, time.UTC), 6},
	}
	for _, c := range cases {
		root := t.TempDir()
		mkdirs(t, root, c.tree...)
		got, ok, reads := oldestDated(t, root, c.pattern)
		if !ok || !got.Equal(c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, ok, c.want)
		}
		if reads > c.maxReads {
			t.Errorf("%s: %d folders read, want at most %d", c.name, reads, c.maxReads)
		}
	}
}

func TestDatedFoldersReadOnlyTheNamesTheyNeed(t *testing.T) {
	// 400 days of folders with footage: a look reads the top level and
	// the oldest folder, not the other 399.
	root := t.TempDir()
	start := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 400; i++ {
		mkdirs(t, root, start.AddDate(0, 0, i).Format("2006-01-02")+"/f")
	}
	got, ok, reads := oldestDated(t, root, DefaultFolders)
	if !ok || !got.Equal(start) || reads != 2 {
		t.Fatalf("%v %v after %d reads", got, ok, reads)
	}
	// Nothing that fits: no footage, not an error.
	empty := t.TempDir()
	mkdirs(t, empty, "cache/f", "2026-11-01")
	if _, ok, _ := oldestDated(t, empty, DefaultFolders); ok {
		t.Fatal("footage found in empty and non-matching folders")
	}
	// A missing recordings folder is an error (a wrong path in the config).
	d := &datedFolders{root: filepath.Join(root, "missing"), pat: mustFolders(t, DefaultFolders)}
	if _, _, err := d.oldest(context.Background(), time.Now()); err == nil {
		t.Fatal("a missing recordings folder must be reported")
	}
}

func mustFolders(t *testing.T, s string) folderPattern {
	p, err := parseFolders(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFoldersPatternsAreChecked(t *testing.T) {
	for _, ok := range []string{DefaultFolders, "YYYY/MM/DD", "*/YYYY/MM/DD/hh", `*\YYYY-MM-DD`, "rec_YYYYMMDD_*", "*/* - YYYY-MM-DDThh*"} {
		if _, err := parseFolders(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*", "MM-DD", "YYYY//MM", "DD/YYYY", "YYYY-MM/MM", "YYYY-MM|YYYY", "YYYY/cache", "YYYYDDMM", "YYYY/MM/DD/hh/mm/*/*/*/*"} {
		if _, err := parseFolders(bad); keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			t.Errorf("%q accepted", bad)
		}
	}
}

// footage writes a file in root/dir whose modification time is at.
func footage(t *testing.T, root, dir, name string, at time.Time) {
	t.Helper()
	p := filepath.Join(root, dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("footage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
}

func TestOldestFileLooksAtFewFoldersBetweenWalks(t *testing.T) {
	// 300 folders, one per camera-hour, 5 files each; folder i holds
	// footage of hour i.
	root := t.TempDir()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dirOf := func(i int) string {
		return filepath.Join(start.Add(time.Duration(i)*time.Hour).Format("2006-01-02"), "h"+start.Add(time.Duration(i)*time.Hour).Format("15"))
	}
	for i := 0; i < 300; i++ {
		for j := 0; j < 5; j++ {
			footage(t, root, dirOf(i), "f"+string(rune('a'+j)), start.Add(time.Duration(i)*time.Hour+time.Duration(j)*time.Minute))
		}
	}
	o := &oldestFile{root: root, rescanEvery: 24 * time.Hour}
	now := start.Add(301 * time.Hour)
	ctx := context.Background()
	got, ok, err := o.oldest(ctx, now)
	if err != nil || !ok || !got.Equal(start) || o.walks != 1 {
		t.Fatalf("first look: %v %v %v, %d walks", got, ok, err, o.walks)
	}
	if len(o.tracked) != 25 { // the oldest and the 24 hours after it
		t.Fatalf("%d folders tracked", len(o.tracked))
	}
	// The recorder deletes the oldest hour, one at a time; every look
	// finds the new oldest by reading the tracked folders only.
	for i := 0; i < 24; i++ {
		if err := os.RemoveAll(filepath.Join(root, dirOf(i))); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Minute)
		got, ok, err := o.oldest(ctx, now)
		if err != nil || !ok || !got.Equal(start.Add(time.Duration(i+1)*time.Hour)) {
			t.Fatalf("after deleting hour %d: %v %v %v", i, got, ok, err)
		}
		if o.walks != 1 || o.reads > 25 {
			t.Fatalf("after deleting hour %d: %d walks, %d folders read", i, o.walks, o.reads)
		}
		// Footage written now lands in a new folder; it changes nothing.
		footage(t, root, dirOf(300+i), "new", now)
	}
	// Deleting past the bound (hour 25 is the first untracked folder)
	// makes the next look walk again, at most once an hour.
	os.RemoveAll(filepath.Join(root, dirOf(24)))
	now = now.Add(2 * time.Hour)
	got, ok, err = o.oldest(ctx, now)
	if err != nil || !ok || !got.Equal(start.Add(25*time.Hour)) || o.walks != 2 {
		t.Fatalf("past the bound: %v %v %v, %d walks", got, ok, err, o.walks)
	}
	// A file copied in with an old time is found by the daily walk.
	old := start.Add(-30 * 24 * time.Hour)
	footage(t, root, "restored", "old", old)
	now = now.Add(time.Hour)
	if got, _, _ := o.oldest(ctx, now); !got.Equal(start.Add(25 * time.Hour)) {
		t.Fatalf("before the rescan: %v", got)
	}
	now = now.Add(24 * time.Hour)
	if got, _, _ := o.oldest(ctx, now); !got.Equal(old) || o.walks != 3 {
		t.Fatalf("after the rescan: %v, %d walks", got, o.walks)
	}
}

func TestOldestFileOfAnEmptyTree(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/b", "c")
	o := &oldestFile{root: root, rescanEvery: time.Hour}
	if _, ok, err := o.oldest(context.Background(), time.Now()); ok || err != nil {
		t.Fatalf("an empty tree: %v %v", ok, err)
	}
	o = &oldestFile{root: filepath.Join(root, "missing"), rescanEvery: time.Hour}
	if _, _, err := o.oldest(context.Background(), time.Now()); err == nil {
		t.Fatal("a missing recordings folder must be reported")
	}
}

func TestDriveRecordingsConfig(t *testing.T) {
	abs := t.TempDir()
	parse := func(drive string) (Config, error) {
		return ParseConfig(strings.NewReader(`{"drives": [` + drive + `]}`))
	}
	c, err := parse(`{"path": "` + abs + `", "role": "recording", "recordings": "` + abs + `", "layout": "dated-folders"}`)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Drives[0]; d.Folders != DefaultFolders || c.Checks.DriveSamples.Every.D() != 5*time.Minute || c.Checks.DriveSamples.Rescan.D() != 24*time.Hour {
		t.Fatalf("defaults: %+v %+v", d, c.Checks.DriveSamples)
	}
	if c, err := parse(`{"path": "` + abs + `", "recordings": "` + abs + `"}`); err != nil || c.Drives[0].Layout != LayoutOldestFile {
		t.Fatalf("default layout: %+v %v", c, err)
	}
	for _, bad := range []string{
		`{"path": "/x", "layout": "dated-folders"}`,
		`{"path": "/x", "recordings": "relative/dir"}`,
		`{"path": "/x", "recordings": "` + abs + `", "layout": "by-camera"}`,
		`{"path": "/x", "recordings": "` + abs + `", "folders": "YYYY"}`,
		`{"path": "/x", "recordings": "` + abs + `", "layout": "dated-folders", "folders": "DD/YYYY"}`,
		`{"path": "/x", "role": "cache"}`,
	} {
		if _, err := parse(bad); keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, bad := range []string{`{"every": "30s"}`, `{"every": "2h"}`, `{"rescan": "10m"}`, `{"rescan": "200h"}`} {
		if _, err := ParseConfig(strings.NewReader(`{"checks": {"drive_samples": ` + bad + `}}`)); keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			t.Errorf("drive_samples %s accepted", bad)
		}
	}
	var many []string
	for i := 0; i <= keepwatch.MaxDrives; i++ {
		many = append(many, `{"path": "/d`+strings.Repeat("x", i)+`"}`)
	}
	if _, err := parse(strings.Join(many, ",")); keepwatch.ErrorCode(err) != keepwatch.EINVALID {
		t.Errorf("%d drives accepted", len(many))
	}
}
