package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"keepwatch"
	"keepwatch/internal/store"
)

// defaultDataDir is where serve keeps its data without --data, and where
// admin looks for it.
const defaultDataDir = "keepwatch-data"

// dbFlags are the flags naming keepwatch's database for the commands that
// work on the database of a running keepwatch (admin, simulate).
type dbFlags struct {
	data, db string
	dbFile   string
	keyFile  string
	dataSet  bool
	create   bool
	// allowCreate offers --create (admin); without it the database must
	// exist.
	allowCreate bool
}

// add registers --data, --db (and --create) on set. It may be called on
// several flag sets in turn, e.g. before and after a subcommand's name:
// the values given earlier stay.
func (d *dbFlags) add(set *flag.FlagSet) {
	if d.data == "" && !d.dataSet {
		d.data = defaultDataDir
	}
	set.Func("data", "data directory `DIR` of keepwatch's SQLite database (default ./"+defaultDataDir+")", func(v string) error {
		if v == "" {
			return errors.New("--data needs a directory")
		}
		d.data, d.dataSet = v, true
		return nil
	})
	set.Func("db", "PostgreSQL `URL` (postgres://…), instead of --data; prefer --db-file or "+envDBURL+", which other users cannot read in ps", func(v string) error {
		if !store.IsPostgresURL(v) {
			return errors.New("want a postgres:// URL; for a data directory use --data")
		}
		d.db = v
		return nil
	})
	set.Func("db-file", "`FILE` holding the PostgreSQL URL", func(v string) error {
		d.dbFile = v
		return nil
	})
	set.Func("secret-key-file", "`FILE` holding the keys that seal report keys and webhook secrets, current first (default "+envSecretKey+"; SQLite without either: <data>/secret.key)", func(v string) error {
		d.keyFile = v
		return nil
	})
	if d.allowCreate {
		set.BoolFunc("create", "create the SQLite database if the data directory has none (first set-up without serve)", func(v string) error {
			b, err := strconv.ParseBool(v)
			d.create = b
			return err
		})
	}
}

// isDBFlag tells the database flags from a command's own.
func isDBFlag(name string) bool {
	return name == "data" || name == "db" || name == "db-file" || name == "secret-key-file" || name == "create"
}

// open opens the database the flags name. An SQLite data directory must
// already hold a database unless --create was given: a mistyped --data
// would otherwise start a new, empty database that no server reads.
func (d *dbFlags) open(ctx context.Context, msgs io.Writer) (*store.Store, error) {
	db, err := credential("db", d.db, "db-file", d.dbFile, envDBURL)
	if err != nil {
		return nil, err
	}
	if d.db == "" && d.dbFile == "" && d.dataSet {
		db = "" // an explicit --data beats the environment
	}
	keys, err := secretKey(d.keyFile)
	if err != nil {
		return nil, err
	}
	if db != "" {
		if d.dataSet && (d.db != "" || d.dbFile != "") {
			return nil, usagef("give --data or --db, not both")
		}
		if !store.IsPostgresURL(db) {
			return nil, usagef("the database URL must be a postgres:// URL")
		}
		s, err := openStore(ctx, d.data, db, keys)
		return s, explain(err, hintContext{db: db})
	}
	created := false
	if err := hasDatabase(d.data, d.allowCreate); err != nil {
		if !errors.Is(err, fs.ErrNotExist) || !d.create {
			return nil, err
		}
		created = true
	}
	s, err := openStore(ctx, d.data, "", keys)
	if err == nil && created {
		fmt.Fprintf(msgs, "created a new keepwatch database in %s\n", d.data)
	}
	return s, err
}

// hasDatabase returns nil if dir holds keepwatch's SQLite database, and
// an error wrapping fs.ErrNotExist that says what to do if it does not
// (offering --create if the command has it).
func hasDatabase(dir string, offerCreate bool) error {
	_, err := os.Stat(filepath.Join(dir, store.DBFile))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	where := dir
	if abs, err := filepath.Abs(dir); err == nil && abs != filepath.Clean(dir) {
		where = fmt.Sprintf("%s (%s)", dir, abs)
	}
	or := ""
	if offerCreate {
		or = ", or pass --create to make a new one"
	}
	return noDatabaseError{keepwatch.Errorf(keepwatch.ENOTFOUND,
		"no keepwatch database in %s; run `keepwatch serve --data %s` first%s", where, dir, or)}
}

// noDatabaseError is a data directory without a database.
type noDatabaseError struct{ err error }

func (e noDatabaseError) Error() string   { return e.err.Error() }
func (e noDatabaseError) Unwrap() []error { return []error{e.err, fs.ErrNotExist} }
