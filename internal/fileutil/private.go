package fileutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// PrivateDir creates dir with mode 0700, or narrows an existing one that
// other local users could enter to 0700. A directory owned by another
// user, or shared by design (the sticky bit, as /tmp), is refused rather
// than changed: it holds keys and must not be taken over silently. On
// Windows, where access is by ACL, it only creates dir.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if fi.Mode()&fs.ModeSticky != 0 || !ownedByMe(fi) {
		return fmt.Errorf("%s is open to other local users (mode %v) and is not keepwatch's to change: give keepwatch a directory of its own, or chmod 700 it",
			dir, fi.Mode().Perm())
	}
	return os.Chmod(dir, 0o700)
}

// PrivateFile makes an existing file readable and writable by its owner
// only; a file that does not exist is fine.
func PrivateFile(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return os.Chmod(path, 0o600)
}

// CreatePrivate creates path, which must not exist, empty and with mode
// 0600, so that whatever writes it next does so into a private file.
func CreatePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
