package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files of the state directory besides agent.json.
const (
	// LockFile is locked by whoever owns the spool: the daemon for its
	// whole life, a one-shot command (agent send, consent, status) for a
	// moment when no daemon runs.
	LockFile = "agent.lock"
	// AddrFile holds the local API address of the running daemon.
	AddrFile = "agent.addr"
	// SpoolFile is the durable spool (SQLite).
	SpoolFile = "spool.db"
)

var errLocked = errors.New("state directory is locked")

// ErrDaemonRunning is returned by LockDir when an agent daemon (or
// another agent command) holds the state directory.
var ErrDaemonRunning = errors.New("an agent is running on this state directory")

// DirLock is the exclusive lock on a state directory. Only its holder
// opens the spool and assigns sequence numbers, so two processes can never
// send the same sequence number.
type DirLock struct{ f *os.File }

// LockDir takes the lock of dir without waiting; ErrDaemonRunning means
// someone else has it.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, ErrDaemonRunning
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return &DirLock{f: f}, nil
}

// Unlock releases the lock.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	unlockFile(l.f)
	err := l.f.Close()
	l.f = nil
	return err
}
