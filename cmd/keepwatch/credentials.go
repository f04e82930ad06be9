package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"keepwatch/internal/app"
	"keepwatch/internal/sealed"
	"keepwatch/internal/store"
)

// getenv reads the environment (a variable so tests can replace it).
var getenv = os.Getenv

// Environment variables that carry credentials, so that they need not be
// given on a command line (which other local users can read in ps).
const (
	envDBURL        = "KEEPWATCH_DB_URL"
	envSMTPURL      = "KEEPWATCH_SMTP_URL"
	envSecretKey    = "KEEPWATCH_SECRET_KEY"
	envMetricsToken = "KEEPWATCH_METRICS_TOKEN"
)

// credential returns a secret from, in this order: its flag, the file its
// -file flag names, or its environment variable. Giving both flags is a
// mistake.
func credential(name, value, fileFlag, file, envName string) (string, error) {
	if value != "" && file != "" {
		return "", usagef("give --%s or --%s, not both", name, fileFlag)
	}
	if value != "" {
		return value, nil
	}
	if file != "" {
		return readCredentialFile(fileFlag, file)
	}
	return strings.TrimSpace(getenv(envName)), nil
}

// readCredentialFile reads a file holding a credential, trimmed.
func readCredentialFile(flagName, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flagName, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("--%s: %s is empty", flagName, path)
	}
	return v, nil
}

// readableByOthers reports whether a credential file can be read by users
// other than its owner.
func readableByOthers(path string) bool {
	if runtime.GOOS == "windows" {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm()&0o077 != 0
}

// flagGiven reports whether a flag was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}

// databaseFlags are --data, --db and --db-file, shared by serve and admin.
type databaseFlags struct {
	data, db, dbFile *string
}

func addDatabaseFlags(fs *flag.FlagSet, dataHelp string) databaseFlags {
	return databaseFlags{
		data:   fs.String("data", "keepwatch-data", dataHelp),
		db:     fs.String("db", "", "PostgreSQL URL (postgres://…); prefer --db-file or "+envDBURL+", which other users cannot read in ps"),
		dbFile: fs.String("db-file", "", "file holding the PostgreSQL URL"),
	}
}

// resolve returns the data directory and the PostgreSQL URL ("" for
// SQLite): --db or --db-file, else KEEPWATCH_DB_URL unless --data was
// given.
func (d databaseFlags) resolve(fs *flag.FlagSet) (data, db string, err error) {
	db, err = credential("db", *d.db, "db-file", *d.dbFile, envDBURL)
	if err != nil {
		return "", "", err
	}
	if *d.db == "" && *d.dbFile == "" && flagGiven(fs, "data") {
		db = "" // an explicit --data beats the environment
	}
	return *d.data, db, nil
}

// secretKeyFlag is --secret-key-file.
func secretKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("secret-key-file", "", "file holding the keys that seal report keys and webhook secrets in the database, current first "+
		"(default "+envSecretKey+"; SQLite without either: <data>/secret.key, generated)")
}

// secretKey returns the configured keys: the file, else the environment.
func secretKey(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(getenv(envSecretKey)), nil
	}
	return readCredentialFile("secret-key-file", file)
}

// openStore opens the database for an operator command (admin, simulate)
// with the secret key if one is configured, or on SQLite the data
// directory's own. Operator commands write no sealed secrets, so
// PostgreSQL without a key opens without one (sealed values then cannot
// be read).
func openStore(ctx context.Context, data, db, keys string) (*store.Store, error) {
	dsn := data
	if db != "" {
		dsn = db
	}
	var kr *sealed.Keyring
	if keys != "" || !store.IsPostgresURL(dsn) {
		var err error
		if kr, err = app.Keyring(app.Config{SecretKey: keys, DataDir: data, DB: db}); err != nil {
			return nil, err
		}
	}
	return store.OpenWith(ctx, dsn, store.Options{Keyring: kr})
}
