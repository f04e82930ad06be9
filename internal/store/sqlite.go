package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"keepwatch/internal/fileutil"
)

// sqliteDir is the data directory a SQLite dsn names.
func sqliteDir(dsn string) string {
	if dsn == "" {
		return "keepwatch-data"
	}
	return dsn
}

// DBFile is the name of the SQLite database inside a data directory.
const DBFile = "keepwatch.db"

// openSQLite opens <dir>/keepwatch.db. Writes go through one connection
// with BEGIN IMMEDIATE (SQLite has one writer; queuing in Go is cheaper
// than busy retries); reads use a pool of read-only connections, which WAL
// lets run beside the writer. synchronous=FULL makes every commit durable
// before a report is acknowledged. busy_timeout lets admin commands and a
// running server share the file.
func openSQLite(ctx context.Context, dir string) (*Store, error) {
	dir = sqliteDir(dir)
	// The database holds every tenant's data and (sealed) keys: the
	// directory and its files are the owner's alone, whatever they were.
	if err := fileutil.PrivateDir(dir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	if err := privateDBFiles(path); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	write, err := sql.Open("sqlite", base+"&_txlock=immediate&_pragma=cache_size(-32768)")
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(8)
	return &Store{dialect: SQLite, write: write, read: read, journal: journal{spent: map[string]spentBeat{}, pause: journalPause, lastCycle: time.Now()}}, nil
}

// privateDBFiles creates the database file with mode 0600 before SQLite
// does (SQLite gives its WAL and shared-memory files the database file's
// mode), and narrows existing ones.
func privateDBFiles(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := fileutil.CreatePrivate(path); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := fileutil.PrivateFile(p); err != nil {
			return err
		}
	}
	return nil
}
