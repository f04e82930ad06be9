package main

import (
	"context"
	"time"

	"keepwatch/internal/app"
	"keepwatch/internal/notify"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", commands["serve"].usage)
	var cfg app.Config
	var debug bool
	fs.StringVar(&cfg.Addr, "addr", ":8443", "listen address")
	dbFlags := addDatabaseFlags(fs, "data directory (SQLite database, self-signed certificate); --db overrides it for the database")
	fs.DurationVar(&cfg.Interval, "heartbeat-interval", 60*time.Second, "heartbeat interval agents are told to use (minimum 1s)")
	fs.Float64Var(&cfg.Tolerance, "tolerance", 0.1, "grace added to three intervals, as a fraction of the interval")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.BoolVar(&cfg.SelfSigned, "self-signed", false, "create once and reuse <data>/tls/cert.pem and key.pem")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "serve plain HTTP (local experiments only)")
	fs.BoolVar(&debug, "debug", false, "log at debug level")
	smtpURL := fs.String("smtp-url", "", "mail relay for e-mail notifications: smtp://user:pass@host:587?from=alerts@example.com (STARTTLS required), smtps://… or ?security=none; prefer --smtp-url-file or "+envSMTPURL)
	smtpURLFile := fs.String("smtp-url-file", "", "file holding the SMTP URL")
	keyFile := secretKeyFlag(fs)
	var allow multiFlag
	fs.Var(&allow, "allow-outbound", "a CIDR or host name webhooks may reach besides public addresses, e.g. an on-premise receiver (repeatable; none by default)")
	metricsTokenFile := fs.String("metrics-token-file", "", "file holding a bearer token /metrics then requires (default "+envMetricsToken+"; none: /metrics is open)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve /metrics only on this separate address (e.g. 127.0.0.1:9464), not on --addr")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the dashboard's URL as users reach it, for links in notifications (default: the listen URL)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	var err error
	if cfg.DataDir, cfg.DB, err = dbFlags.resolve(fs); err != nil {
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
	if cfg.Interval < app.MinInterval {
		return usagef("--heartbeat-interval must be at least %s", app.MinInterval)
	}
	cfg.Logger = logger(e.stderr, debug)
	for _, f := range []string{*keyFile, *smtpURLFile, *dbFlags.dbFile, *metricsTokenFile} {
		if f != "" && readableByOthers(f) {
			cfg.Logger.Warn("a credential file is readable by other users; chmod 600 it", "file", f)
		}
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		a.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return a.Shutdown(sctx)
}
