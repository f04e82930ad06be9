package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	write, err := sql.Open("sqlite", base+"&_txlock=immediate")
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
	return &Store{dialect: SQLite, write: write, read: read}, nil
}
