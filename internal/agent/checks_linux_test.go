//go:build linux

package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"keepwatch"
)

// smallDrive mounts a 1 MiB tmpfs at a new directory, a real file system
// that a test can fill. Where mounting is not allowed it returns a plain
// directory and an injected statfs that counts the bytes of its files
// against a 1 MiB size.
func smallDrive(t *testing.T) (string, func(string) (DiskUsage, error)) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err == nil {
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		t.Logf("drive: a real 1 MiB tmpfs at %s, real statfs", dir)
		return dir, nil
	} else {
		t.Logf("drive: tmpfs mount not permitted (%v); a directory with an injected statfs", err)
	}
	const size = 1 << 20
	return dir, func(path string) (DiskUsage, error) {
		var used uint64
		filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				used += uint64(fi.Size())
			}
			return nil
		})
		return DiskUsage{Total: size, Free: size - min(used, size)}, nil
	}
}

// fill writes to dir until the file system refuses for lack of space (or
// the injected size is reached).
func fill(t *testing.T, dir string) {
	f, err := os.Create(filepath.Join(dir, "recording.blk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for written := 0; written < 1<<20; written += len(block) {
		if _, err := f.Write(block); err != nil {
			if !isNoSpace(err) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

func TestStorageFullOnARealFileSystemIsRaisedAndCleared(t *testing.T) {
	f := newFixture(t, time.Second)
	drive, statfs := smallDrive(t)
	cfg := Config{Drives: []Drive{{Path: drive, Role: "recording"}}}
	cfg.Checks.Drives.Every = Duration(50 * time.Millisecond)
	f.runDaemon(cfg, Probes{Statfs: statfs})
	key := keepwatch.KindStorageFull + ":" + drive
	waitFor(t, 10*time.Second, "the empty drive is reported all clear", func() bool {
		raised, _, _ := f.history(keepwatch.KindStorageFull)
		return len(f.active()) == 0 && raised == 0 && f.app.Ingest.Accepted("status") > 0
	})

	fill(t, drive)
	waitFor(t, 10*time.Second, "storage_full raised for the filled drive", func() bool { return f.active()[key] })
	if err := os.Remove(filepath.Join(drive, "recording.blk")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "storage_full cleared after space was freed", func() bool { return len(f.active()) == 0 })
	raised, cleared, _ := f.history(keepwatch.KindStorageFull)
	if raised != 1 || cleared != 1 {
		t.Fatalf("storage_full raised %d and cleared %d times, want once each", raised, cleared)
	}
}

// readOnlyDir returns a directory writes to which fail, and how: a
// read-only bind mount (root ignores permission bits), else the immutable
// attribute, else an injected probe that fails as a read-only file system
// would.
func readOnlyDir(t *testing.T) (string, func(string) error) {
	dir := t.TempDir()
	err := syscall.Mount(dir, dir, "", syscall.MS_BIND, "")
	if err == nil {
		if err = syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err == nil {
			t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
			t.Logf("media database: a read-only bind mount at %s", dir)
			return dir, nil
		}
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if out, cerr := exec.Command("chattr", "+i", dir).CombinedOutput(); cerr == nil {
		t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
		t.Logf("media database: bind mount not permitted (%v); an immutable directory (chattr +i)", err)
		return dir, nil
	} else {
		t.Logf("media database: bind mount not permitted (%v), chattr failed (%s); an injected probe failure", err, out)
	}
	return dir, func(string) error { return &os.PathError{Op: "open", Path: dir, Err: syscall.EROFS} }
}

func TestMediaDatabaseProbeFailsOnAReadOnlyDirectory(t *testing.T) {
	dir, probe := readOnlyDir(t)
	m := &mediaDBCheck{path: dir, probe: probe}
	if m.probe == nil {
		m.probe = writeProbe
	}
	conds, err := m.run(t.Context(), time.Now())
	if err != nil || len(conds) != 1 || conds[0].Kind != keepwatch.KindMediaDBWriteFailed || conds[0].Subject != dir {
		t.Fatalf("probe of a read-only directory: %v, %v", conds, err)
	}
	if !errors.Is(writeProbeErr(probe, dir), syscall.EROFS) && !errors.Is(writeProbeErr(probe, dir), syscall.EPERM) {
		t.Fatalf("the probe failed for another reason: %s", conds[0].Message)
	}
	// A writable directory passes, and leaves nothing behind.
	ok := t.TempDir()
	m = &mediaDBCheck{path: filepath.Join(ok, "media.db"), probe: writeProbe}
	os.WriteFile(m.path, []byte("db"), 0o600)
	if conds, err := m.run(t.Context(), time.Now()); err != nil || len(conds) != 0 {
		t.Fatalf("probe of a writable directory: %v, %v", conds, err)
	}
	if ents, _ := os.ReadDir(ok); len(ents) != 1 {
		t.Fatalf("the probe left files behind: %v", ents)
	}
}

func writeProbeErr(probe func(string) error, dir string) error {
	if probe != nil {
		return probe(dir)
	}
	return writeProbe(dir)
}

func TestNoSpaceSeenByTheMediaProbeMarksItsDriveFull(t *testing.T) {
	drive, statfs := smallDrive(t)
	if statfs != nil {
		t.Skip("needs a real small file system to run out of space")
	}
	media := filepath.Join(drive, "MediaDatabase")
	if err := os.Mkdir(media, 0o700); err != nil {
		t.Fatal(err)
	}
	fill(t, drive)
	cfg, err := ParseConfig(strings.NewReader(`{"media_database": "` + media + `", "drives": [{"path": "` + drive + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// statfs says there is room (as with a quota or reserved blocks that
	// it does not see): only the failed write tells the truth.
	roomy := func(string) (DiskUsage, error) { return DiskUsage{Total: 1000, Free: 500}, nil }
	checks := buildChecks(cfg, Probes{Statfs: roomy}.withDefaults())
	var got []string
	for _, c := range checks {
		conds, _ := c.run(t.Context(), time.Now())
		for _, cd := range conds {
			got = append(got, cd.Kind+":"+cd.Subject)
		}
	}
	want := []string{"media_db_write_failed:" + media, "storage_full:" + drive}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("conditions %v, want %v", got, want)
	}
}
