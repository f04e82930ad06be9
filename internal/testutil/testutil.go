// Package testutil gives tests real databases: a fresh SQLite data dir, or
// a fresh schema in the PostgreSQL named by KEEPWATCH_TEST_POSTGRES. With
// KEEPWATCH_REQUIRE_ALL=1 (make test, CI) a missing PostgreSQL fails the
// test instead of skipping it.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"keepwatch/internal/store"
)

// DefaultPostgres is used when KEEPWATCH_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// RequireAll reports whether every test must run (no skipping).
func RequireAll() bool { return os.Getenv("KEEPWATCH_REQUIRE_ALL") == "1" }

// SecretKey is the secret key tests give keepwatch on PostgreSQL, where
// one must be configured (SQLite generates its own).
const SecretKey = "Xp3PtVWCPdC3nZiiHhbu87mMqJ7yQ0bLcYm4H0u1cHY="

// Dialects lists the store dialects tests run against.
var Dialects = []string{store.SQLite, store.Postgres}

// DSN returns a data source for a fresh, empty database of the dialect:
// a temp dir for SQLite, or a new schema (dropped at cleanup) for
// PostgreSQL.
func DSN(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == store.SQLite {
		return t.TempDir()
	}
	base := os.Getenv("KEEPWATCH_TEST_POSTGRES")
	if base == "" {
		base = DefaultPostgres
	}
	admin, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if RequireAll() {
			t.Fatalf("PostgreSQL at %s is required (KEEPWATCH_REQUIRE_ALL=1): %v", base, err)
		}
		t.Skipf("PostgreSQL not available at %s: %v", base, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "kwtest_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a migrated store on a fresh database, closed at cleanup.
func Open(t testing.TB, dialect string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), DSN(t, dialect))
	if err != nil {
		t.Fatalf("open %s store: %v", dialect, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Clock is a settable clock for components that take Now.
type Clock struct {
	mu  chan struct{}
	now time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock {
	c := &Clock{mu: make(chan struct{}, 1), now: t}
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu <- struct{}{}
	defer func() { <-c.mu }()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu <- struct{}{}
	c.now = c.now.Add(d)
	<-c.mu
}

// PrivatePostgres runs a PostgreSQL cluster of the test's own (so that
// stopping it disturbs no other test) and returns its URL and a function
// that stops (false) or starts (true) it.
func PrivatePostgres(t *testing.T) (string, func(up bool)) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if RequireAll() {
			t.Fatal("PostgreSQL server binaries are required (KEEPWATCH_REQUIRE_ALL=1)")
		}
		t.Skip("no PostgreSQL server binaries")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "kwpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	asPostgres := func(args ...string) *exec.Cmd {
		if os.Geteuid() == 0 { // initdb refuses root
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
		return exec.Command(args[0], args[1:]...)
	}
	if os.Geteuid() == 0 {
		exec.Command("chown", "postgres", dir).Run()
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctl := func(up bool) {
		args := []string{filepath.Join(bin, "pg_ctl"), "-D", data, "-w", "-m", "fast", "-l", filepath.Join(dir, "log")}
		if up {
			args = append(args, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir), "start")
		} else {
			args = append(args, "stop")
		}
		if out, err := asPostgres(args...).CombinedOutput(); err != nil {
			t.Fatalf("pg_ctl: %v\n%s", err, out)
		}
	}
	ctl(true)
	t.Cleanup(func() { ctl(false) })
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), ctl
}
