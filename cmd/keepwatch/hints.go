package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// hintedError is a failure with advice on what to do about it, printed
// after the error as "hint: …".
type hintedError struct {
	err  error
	hint string
}

func (h hintedError) Error() string { return h.err.Error() }
func (h hintedError) Unwrap() error { return h.err }

// hintContext is what a hint may quote: the flags the failing command was
// given.
type hintContext struct {
	addr            string
	db              string
	tlsCert, tlsKey string
	dataDir         string
}

// explain adds a hint to the failures a newcomer most often meets when
// starting a server; other errors are returned as they are.
func explain(err error, c hintContext) error {
	if err == nil {
		return nil
	}
	if h := hintFor(err, c); h != "" {
		return hintedError{err, h}
	}
	return err
}

func hintFor(err error, c hintContext) string {
	var op *net.OpError
	listen := errors.As(err, &op) && op.Op == "listen"
	switch {
	case listen && isAddrInUse(err):
		return fmt.Sprintf("another keepwatch or program listens on %s; stop it or choose another --addr", c.addr)
	case listen && errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("listening on %s needs privileges (ports below 1024 do): choose a port from 1024 up, e.g. --addr :8443, "+
			"or give keepwatch the capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; or setcap cap_net_bind_service=+ep on the binary)", c.addr)
	case listen:
		return fmt.Sprintf("check --addr %s: host:port, or :port for every interface", c.addr)
	}
	if h := postgresHint(err, c.db); h != "" {
		return h
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if c.tlsCert != "" && (samePath(pe.Path, c.tlsCert) || samePath(pe.Path, c.tlsKey)) {
			return tlsFileHint(pe, c)
		}
		if errors.Is(err, fs.ErrPermission) && c.dataDir != "" && within(pe.Path, c.dataDir) {
			return fmt.Sprintf("keepwatch may not write in %s: run it as the user who owns that directory, or choose another --data", c.dataDir)
		}
	}
	if c.tlsCert != "" && strings.Contains(err.Error(), "load TLS key pair") {
		return fmt.Sprintf("--tls-cert %s and --tls-key %s must be PEM files: the certificate (chain first) and its own private key, unencrypted", c.tlsCert, c.tlsKey)
	}
	return ""
}

// isAddrInUse recognises "address already in use" on every system.
func isAddrInUse(err error) bool {
	if errors.Is(err, syscall.EADDRINUSE) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "address already in use") || strings.Contains(msg, "only one usage of each socket address")
}

func tlsFileHint(pe *fs.PathError, c hintContext) string {
	which := "--tls-cert"
	if samePath(pe.Path, c.tlsKey) {
		which = "--tls-key"
	}
	switch {
	case errors.Is(pe, fs.ErrNotExist):
		return fmt.Sprintf("%s %s does not exist: give the path of the PEM file (or use --self-signed to try keepwatch first)", which, pe.Path)
	case errors.Is(pe, fs.ErrPermission):
		return fmt.Sprintf("%s %s is not readable by the user keepwatch runs as: give it read access (the key only to that user)", which, pe.Path)
	}
	return fmt.Sprintf("check %s %s: it must be a readable PEM file", which, pe.Path)
}

// postgresHint explains why PostgreSQL at dsn could not be used.
func postgresHint(err error, dsn string) string {
	var ce *pgconn.ConnectError
	var pge *pgconn.PgError
	if dsn == "" || !(errors.As(err, &ce) || errors.As(err, &pge)) {
		return ""
	}
	host, where, user, db := "localhost", "the host and port of --db", "the user", "the database"
	if u, perr := url.Parse(dsn); perr == nil {
		host = u.Hostname()
		if host == "" {
			host = "localhost"
		}
		port := u.Port()
		if port == "" {
			port = "5432"
		}
		where = net.JoinHostPort(host, port)
		if u.User != nil {
			user = "user " + u.User.Username()
		}
		if d := strings.TrimPrefix(u.Path, "/"); d != "" {
			db = "database " + d
		}
	}
	if errors.As(err, &pge) {
		switch pge.Code {
		case "28P01", "28000":
			return fmt.Sprintf("PostgreSQL at %s refused %s: check the user and password in --db, and pg_hba.conf", where, user)
		case "3D000":
			return fmt.Sprintf("%s does not exist on PostgreSQL at %s: create it (createdb), or fix --db", db, where)
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return fmt.Sprintf("nothing answers at %s: is PostgreSQL running (pg_isready -h %s), and listening there (listen_addresses, port)?", where, host)
	case strings.Contains(msg, "password authentication failed"), strings.Contains(msg, "no pg_hba.conf entry"):
		return fmt.Sprintf("PostgreSQL at %s refused %s: check the user and password in --db, and pg_hba.conf", where, user)
	case strings.Contains(msg, "does not exist"):
		return fmt.Sprintf("check that %s exists on PostgreSQL at %s (createdb), and the user in --db", db, where)
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "no such host"):
		return fmt.Sprintf("%s cannot be reached: check the host name in --db, DNS, and any firewall between here and PostgreSQL", where)
	case strings.Contains(msg, "SSL"), strings.Contains(msg, "tls"):
		return "the TLS settings do not match PostgreSQL's: check sslmode in --db (sslmode=disable for a server without TLS)"
	}
	return fmt.Sprintf("check that PostgreSQL runs at %s and that --db names the right %s and %s", where, user, db)
}

// missingDir returns the outermost directory on the way to dir that does
// not exist yet ("" if dir exists): what a start creates, and a failed
// start removes.
func missingDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(abs); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	for {
		parent := filepath.Dir(abs)
		if parent == abs {
			return abs
		}
		if _, err := os.Stat(parent); !errors.Is(err, fs.ErrNotExist) {
			return abs
		}
		abs = parent
	}
}

// removeCreated removes a directory a failed start created.
func removeCreated(dir string) {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
