//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package agent

import (
	"errors"

	"golang.org/x/sys/unix"
)

// statfs reports the size of the file system holding path and the space
// an unprivileged writer may still use (f_bavail: root's reserve does not
// count, the recorder does not run as root on every system).
func statfs(path string) (DiskUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return DiskUsage{}, err
	}
	bs := uint64(st.Bsize)
	return DiskUsage{Total: uint64(st.Blocks) * bs, Free: uint64(st.Bavail) * bs}, nil
}

// isNoSpace reports whether err means the file system is full.
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
