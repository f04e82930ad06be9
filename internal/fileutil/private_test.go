package fileutil_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"keepwatch/internal/fileutil"
)

func TestPrivateDirNarrowsOwnDirectoriesAndRefusesSharedOnes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	base := t.TempDir()
	own := filepath.Join(base, "own")
	os.Mkdir(own, 0o755)
	if err := fileutil.PrivateDir(own); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(own); fi.Mode().Perm() != 0o700 {
		t.Fatalf("own directory left %v", fi.Mode().Perm())
	}
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777|os.ModeSticky)
	if err := fileutil.PrivateDir(shared); err == nil {
		t.Fatal("a sticky shared directory (like /tmp) was taken over")
	}
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o777 {
		t.Fatalf("the shared directory was changed to %v", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(base, "foreign")
		os.Mkdir(foreign, 0o755)
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := fileutil.PrivateDir(foreign); err == nil {
			t.Fatal("another user's directory was changed")
		}
	}
	f := filepath.Join(own, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	if err := fileutil.PrivateFile(f); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
		t.Fatalf("file left %v", fi.Mode().Perm())
	}
	if err := fileutil.PrivateFile(filepath.Join(own, "absent")); err != nil {
		t.Fatalf("absent file: %v", err)
	}
}
