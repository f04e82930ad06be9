// Package store keeps keepwatch's data in SQLite (embedded, the default) or
// PostgreSQL. Both sit behind the same Store type and the same SQL, written
// with '?' placeholders and rebound for PostgreSQL; where the engines
// differ (connection set-up, batch updates) each has its own code.
//
// Every method that reads or writes an integrator's data takes the
// integrator's id and puts it in the WHERE clause.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/fileutil"
	"keepwatch/internal/sealed"
)

//go:embed migrations
var migrationFS embed.FS

// Dialect names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is the database. It is safe for concurrent use.
type Store struct {
	dialect string
	write   *sql.DB // SQLite: one connection, BEGIN IMMEDIATE; PostgreSQL: the pool
	read    *sql.DB // SQLite: a pool of read-only connections; PostgreSQL: same as write
	Now     func() time.Time
	// Policy tunes the incident lifecycle.
	Policy keepwatch.IncidentPolicy
	// Flood caps what one server's reports may open.
	Flood keepwatch.FloodPolicy
	// OnOutbox, when set, is called after a commit that gave the notifier
	// work: incident transitions to evaluate, or notifications held for a
	// maintenance window that ended early. It must not block.
	OnOutbox func()

	rebound sync.Map // query → rebound query (PostgreSQL)
	keys    *sealed.Keyring

	// beatStmts are the heartbeats' statements (SQLite), prepared once
	// (journalStatements); journal holds what their journal holds.
	beatMu    sync.Mutex
	beatStmts journalStatements
	journal   journal
}

// Options are the optional settings of OpenWith.
type Options struct {
	// Keyring seals report keys and webhook secrets before they are
	// stored. Without one, a SQLite data directory's own key file
	// (SecretKeyFile) is used if there is one; else secrets are stored as
	// they are (tests, tools that write no secrets) and sealed values
	// cannot be read.
	Keyring *sealed.Keyring
}

// SecretKeyFile is the key file keepwatch generates in a SQLite data
// directory when no secret key is configured.
const SecretKeyFile = "secret.key"

// Open opens (and migrates) the database named by dsn: a postgres:// or
// postgresql:// URL, or else the path of a data directory that holds the
// SQLite database keepwatch.db.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, o Options) (*Store, error) {
	var s *Store
	var err error
	if IsPostgresURL(dsn) {
		s, err = openPostgres(ctx, dsn)
	} else {
		s, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	s.keys = o.Keyring
	if s.keys == nil && s.dialect == SQLite {
		path := filepath.Join(sqliteDir(dsn), SecretKeyFile)
		if _, err := os.Stat(path); err == nil {
			if s.keys, _, err = sealed.LoadOrCreate(path); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	if err := s.Migrate(ctx, 0); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.foldJournal(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("fold the heartbeat journal: %w", err)
	}
	return s, nil
}

// IsPostgresURL reports whether dsn names a PostgreSQL database.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Dialect returns SQLite or Postgres.
func (s *Store) Dialect() string { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	var err error
	s.beatMu.Lock()
	err = s.beatStmts.close()
	s.beatMu.Unlock()
	err = errors.Join(err, s.write.Close())
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.write.PingContext(ctx)
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// forUpdate locks the rows a transaction reads on PostgreSQL, where
// several nodes write; SQLite has one writer.
func (s *Store) forUpdate() string {
	if s.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// skipLockedOf claims the rows of one table of a join on PostgreSQL,
// skipping those another transaction holds (of is the table's alias);
// SQLite has one writer, which serializes claims.
func (s *Store) skipLockedOf(of string) string {
	if s.dialect == Postgres {
		return " FOR UPDATE OF " + of + " SKIP LOCKED"
	}
	return ""
}

// q rebinds '?' placeholders to '$n' for PostgreSQL.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	if r, ok := s.rebound.Load(query); ok {
		return r.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	r := b.String()
	s.rebound.Store(query, r)
	return r
}

// tx runs fn in a transaction, committing if it returns nil.
func (s *Store) tx(ctx context.Context, fn func(*Tx) error) error {
	t, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err)
	}
	x := &Tx{tx: t, s: s, ctx: ctx}
	if err := fn(x); err != nil {
		t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return dbErr(err)
	}
	if x.outbox && s.OnOutbox != nil {
		s.OnOutbox()
	}
	return nil
}

// beatTx runs fn in a write transaction whose commit is atomic and visible
// at once but not flushed to disk on its own: SQLite commits it with
// synchronous=NORMAL (the WAL reaches the operating system before the
// commit returns, so it survives the process being killed; the next
// fsync — any other commit, or a checkpoint — makes it safe from a power
// cut), PostgreSQL with synchronous_commit off (its WAL writer flushes
// within a fraction of a second). Only heartbeats use it: losing the last
// moments of heartbeats to a power cut costs at most one replayed
// heartbeat inside the own-outage guard that follows the restart, while
// an fsync per group commit would cap the heartbeat rate at the disk's
// flush rate.
func (s *Store) beatTx(ctx context.Context, fn func(*Tx) error) error {
	if s.dialect == Postgres {
		return s.tx(ctx, func(t *Tx) error {
			if _, err := t.tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return dbErr(err)
			}
			return fn(t)
		})
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return dbErr(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return dbErr(err)
	}
	defer func() {
		// Every other commit must be flushed again: a connection that
		// cannot be put back to FULL is discarded.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	t, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err)
	}
	if err := fn(&Tx{tx: t, s: s, ctx: ctx}); err != nil {
		t.Rollback()
		return err
	}
	return dbErr(t.Commit())
}

// Tx is a transaction with placeholder rebinding. Every statement runs
// with the transaction's context: a caller that gives up stops waiting on
// the database at once.
type Tx struct {
	tx  *sql.Tx
	s   *Store
	ctx context.Context
	rev int64 // this transaction's revision, once taken
	// outbox: the transaction gave the notifier work (Store.OnOutbox).
	outbox bool
}

func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	r, err := t.tx.ExecContext(t.ctx, t.s.q(query), args...)
	return r, dbErr(err)
}

func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, t.s.q(query), args...)
}

func (t *Tx) query(query string, args ...any) (*sql.Rows, error) {
	r, err := t.tx.QueryContext(t.ctx, t.s.q(query), args...)
	return r, dbErr(err)
}

// insert runs an INSERT … RETURNING id.
func (t *Tx) insert(query string, args ...any) (int64, error) {
	var id int64
	err := t.queryRow(query+" RETURNING id", args...).Scan(&id)
	return id, dbErr(err)
}

// nextRev advances the store-wide revision counter, once per
// transaction. Rows that nodes cache (installations, servers) carry the
// revision of their last change, so a running server finds what an admin
// command or another node changed by polling rev. The counter's row stays
// locked until the transaction ends, so revisions become visible in
// order: a poller that saw rev N never misses a change numbered below N.
func (t *Tx) nextRev() (int64, error) {
	if t.rev != 0 {
		return t.rev, nil
	}
	err := t.queryRow(`UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value`).Scan(&t.rev)
	return t.rev, dbErr(err)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.read.QueryRowContext(ctx, s.q(query), args...)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := s.read.QueryContext(ctx, s.q(query), args...)
	return r, dbErr(err)
}

// ErrUnavailable wraps database failures that are not the caller's fault.
var ErrUnavailable = keepwatch.Errorf(keepwatch.EUNAVAILABLE, "the database is unavailable, try again")

// dbErr keeps coded errors as they are and wraps driver errors so callers
// can log the cause but show only a safe message.
func dbErr(err error) error {
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var ke *keepwatch.Error
	if errors.As(err, &ke) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &DBError{Err: err}
}

// DBError is a failure of the database itself. Its code is unavailable: the
// request can be retried, nothing was accepted.
type DBError struct{ Err error }

func (e *DBError) Error() string { return "database: " + e.Err.Error() }
func (e *DBError) Unwrap() error { return e.Err }

// As lets keepwatch.ErrorCode see a DBError as EUNAVAILABLE.
func (e *DBError) As(target any) bool {
	if t, ok := target.(**keepwatch.Error); ok {
		*t = ErrUnavailable
		return true
	}
	return false
}

// isUniqueViolation reports whether err is a unique-constraint failure.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "SQLSTATE 23505")
}

// Migrate applies the embedded migrations up to version to (0: all).
func (s *Store) Migrate(ctx context.Context, to int) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	ms, err := migrations(s.dialect)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if to > 0 && m.version > to {
			break
		}
		err := s.tx(ctx, func(t *Tx) error {
			var n int
			if err := t.queryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := t.tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err := t.exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, s.now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.queryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations(dialect string) ([]migration, error) {
	dir := "migrations/" + dialect
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	// Versions run 1, 2, 3… without a gap or a repeat.
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations: %s out of sequence", m.name)
		}
	}
	return ms, nil
}

// OpenNoMigrate opens the database without migrating it (for migration
// tests and tools).
func OpenNoMigrate(ctx context.Context, dsn string) (*Store, error) {
	if IsPostgresURL(dsn) {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(ctx, dsn)
}

// DumpSchema returns a normalized description of the schema (tables,
// columns, indexes), for comparing databases.
func (s *Store) DumpSchema(ctx context.Context) (string, error) {
	var q string
	if s.dialect == Postgres {
		q = `SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || COALESCE(column_default, '')
			FROM information_schema.columns WHERE table_schema = current_schema()
			UNION ALL
			SELECT 'index ' || tablename || ' ' || replace(indexdef, current_schema() || '.', '')
			FROM pg_indexes WHERE schemaname = current_schema()
			ORDER BY 1`
	} else {
		q = `SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`
	}
	rows, err := s.read.QueryContext(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String(), rows.Err()
}

// Notify sends a PostgreSQL notification (no-op on SQLite, which serves a
// single node).
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if s.dialect != Postgres {
		return nil
	}
	_, err := s.write.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return dbErr(err)
}

// Backup writes a consistent copy of the SQLite database to path while
// keepwatch keeps running (VACUUM INTO reads one snapshot). PostgreSQL is
// backed up with pg_dump.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.dialect != SQLite {
		return keepwatch.Errorf(keepwatch.EINVALID, "back up PostgreSQL with pg_dump (see docs/operations.md)")
	}
	// A copy is created empty with mode 0600 first (VACUUM INTO fills an
	// empty file), so it is never readable by other local users.
	if err := fileutil.CreatePrivate(path); errors.Is(err, os.ErrExist) {
		return keepwatch.Errorf(keepwatch.ECONFLICT, "%s exists; choose a new file", path)
	} else if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	_, err := s.write.ExecContext(ctx, `VACUUM INTO ?`, path)
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("backup: %w", err)
	}
	return fileutil.PrivateFile(path)
}

// IntegrityCheck runs SQLite's integrity check ("ok" when sound).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	if s.dialect != SQLite {
		return "ok", nil
	}
	var res string
	err := s.read.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res)
	return res, err
}

// scanAll reads every row with scan and closes rows; an empty result is an
// empty slice, never nil.
func scanAll[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbErr(err)
		}
		out = append(out, v)
	}
	return out, dbErr(rows.Err())
}
