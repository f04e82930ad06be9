//go:build windows

package agent

import (
	"errors"

	"golang.org/x/sys/windows"
)

// statfs reports the size of the volume holding path and the space the
// agent's account may still use (quotas included), from
// GetDiskFreeSpaceEx.
func statfs(path string) (DiskUsage, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return DiskUsage{}, err
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return DiskUsage{}, err
	}
	return DiskUsage{Total: total, Free: avail}, nil
}

// isNoSpace reports whether err means the volume is full.
func isNoSpace(err error) bool {
	return errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL)
}
