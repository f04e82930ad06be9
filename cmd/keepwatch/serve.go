package main

import (
	"context"
	"time"

	"keepwatch/internal/app"
	"keepwatch/internal/notify"
	"keepwatch/internal/store"
)

const serveSynopsis = `serve [--addr :8443] [--data DIR | --db postgres://… | --db-file FILE] [--heartbeat-interval 60s] [--enrollment-key-days 30] [--udp-listen HOST:PORT|off]
                       [--tls-cert F --tls-key F | --self-signed | --insecure-http]
                       [--allow-outbound CIDR|host]… [--secret-key-file FILE] [--smtp-url-file FILE]`

const serveAbout = `Runs the keepwatch service: the ingest endpoints agents report to, the
dashboard, the REST API, notifications and /healthz, /readyz and /metrics.
The data directory holds the SQLite database (created on first start) and,
with --self-signed, the certificate to give agents (<data>/tls/cert.pem).
With --db, several nodes share one PostgreSQL database. SIGINT or SIGTERM
drains in-flight requests and stops.`

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", serveSynopsis, serveAbout)
	var cfg app.Config
	var debug bool
	fs.StringVar(&cfg.Addr, "addr", ":8443", "listen on `HOST:PORT` (:PORT: every interface)")
	fs.StringVar(&cfg.DataDir, "data", defaultDataDir, "data directory `DIR`: SQLite database, self-signed certificate")
	fs.StringVar(&cfg.DB, "db", "", "PostgreSQL `URL` (postgres://…); the database goes there instead of --data. Prefer --db-file or "+envDBURL+": other users can read a command line in ps")
	dbFile := fs.String("db-file", "", "`FILE` holding the PostgreSQL URL")
	fs.DurationVar(&cfg.Interval, "heartbeat-interval", 60*time.Second, "heartbeat `INTERVAL` agents are told to use (minimum 1s)")
	keyDays := fs.Int("enrollment-key-days", 30, "an enrollment key enrolls for `DAYS` after it was issued (rotate-key issues a new one)")
	fs.Float64Var(&cfg.Tolerance, "tolerance", 0.1, "grace added to three intervals, as a `FRACTION` of the interval")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate `FILE` (PEM, the chain)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key `FILE` (PEM)")
	fs.BoolVar(&cfg.SelfSigned, "self-signed", false, "create once and reuse <data>/tls/cert.pem and key.pem")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "serve plain HTTP (local experiments only)")
	fs.BoolVar(&debug, "debug", false, "log at debug level")
	smtpURL := fs.String("smtp-url", "", "mail relay `URL` for e-mail notifications: smtp://user:pass@host:587?from=alerts@example.com (STARTTLS required), smtps://… or ?security=none; prefer --smtp-url-file or "+envSMTPURL)
	smtpURLFile := fs.String("smtp-url-file", "", "`FILE` holding the SMTP URL")
	keyFile := secretKeyFlag(fs)
	var allow multiFlag
	fs.Var(&allow, "allow-outbound", "a `CIDR` or host name webhooks may reach besides public addresses, e.g. an on-premise receiver (repeatable; none by default)")
	metricsTokenFile := fs.String("metrics-token-file", "", "`FILE` holding a bearer token /metrics then requires (default "+envMetricsToken+"; none: /metrics is open)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve /metrics only on this separate `HOST:PORT` (e.g. 127.0.0.1:9464), not on --addr")
	fs.IntVar(&cfg.HistoryDays, "history-days", app.DefaultHistoryDays, "keep state changes, events, resolved incidents and notifications for `DAYS` (at least 30; 400 covers a 365-day uptime)")
	fs.IntVar(&cfg.AuditDays, "audit-days", app.DefaultAuditDays, "keep the audit log for `DAYS` (at least 30)")
	fs.StringVar(&cfg.UDPAddr, "udp-listen", "", "answer heartbeat datagrams on UDP `HOST:PORT`, or off (default: the UDP port of --addr's number)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the dashboard's `URL` as users reach it, for links in notifications (default: the listen URL)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *keyDays < 1 {
		return usagef("--enrollment-key-days must be at least 1")
	}
	cfg.EnrollmentKeyLifetime = time.Duration(*keyDays) * 24 * time.Hour
	db, err := credential("db", cfg.DB, "db-file", *dbFile, envDBURL)
	if err != nil {
		return err
	}
	if cfg.DB == "" && *dbFile == "" && flagGiven(fs, "data") {
		db = "" // an explicit --data beats the environment
	}
	cfg.DB = db
	if err := checkServeFlags(cfg); err != nil {
		return err
	}
	smtp, err := credential("smtp-url", *smtpURL, "smtp-url-file", *smtpURLFile, envSMTPURL)
	if err != nil {
		return err
	}
	if smtp != "" {
		c, err := notify.ParseSMTPURL(smtp)
		if err != nil {
			return usagef("%s", err)
		}
		cfg.SMTP = c
	}
	if cfg.SecretKey, err = secretKey(*keyFile); err != nil {
		return err
	}
	if cfg.MetricsToken, err = credential("metrics-token", "", "metrics-token-file", *metricsTokenFile, envMetricsToken); err != nil {
		return err
	}
	cfg.AllowOutbound = allow
	cfg.Logger = logger(e.stderr, debug)
	for _, f := range []string{*keyFile, *smtpURLFile, *dbFile, *metricsTokenFile} {
		if f != "" && readableByOthers(f) {
			cfg.Logger.Warn("a credential file is readable by other users; chmod 600 it", "file", f)
		}
	}
	// A start that fails leaves no new, empty data directory behind: the
	// next attempt (with the mistake fixed, or another --data) must not
	// find one that looks like an installation.
	created := missingDir(cfg.DataDir)
	failed := func(err error) error {
		removeCreated(created)
		return explain(err, hintContext{addr: cfg.Addr, db: cfg.DB, tlsCert: cfg.TLSCert, tlsKey: cfg.TLSKey, dataDir: cfg.DataDir})
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		return failed(err)
	}
	if err := a.Start(ctx); err != nil {
		a.Shutdown(context.Background())
		return failed(err)
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return a.Shutdown(sctx)
}

// checkServeFlags refuses flag combinations serve cannot start with,
// before anything is created.
func checkServeFlags(cfg app.Config) error {
	if cfg.Interval < app.MinInterval {
		return usagef("--heartbeat-interval must be at least %s", app.MinInterval)
	}
	if cfg.Tolerance < 0 {
		return usagef("--tolerance must not be negative")
	}
	if cfg.DB != "" && !store.IsPostgresURL(cfg.DB) {
		return usagef("--db takes a postgres:// URL; for a data directory use --data")
	}
	if cfg.DataDir == "" {
		return usagef("--data needs a directory")
	}
	modes := 0
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return usagef("--tls-cert and --tls-key go together")
		}
		modes++
	}
	if cfg.SelfSigned {
		modes++
	}
	if cfg.InsecureHTTP {
		modes++
	}
	switch {
	case modes == 0:
		return usagef("choose --tls-cert/--tls-key, --self-signed, or (local experiments only) --insecure-http")
	case modes > 1:
		return usagef("choose one of --tls-cert/--tls-key, --self-signed and --insecure-http")
	}
	return nil
}
