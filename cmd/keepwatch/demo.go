package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/demo"
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "demo [--addr 127.0.0.1:8080] [--data DIR]", `Starts keepwatch on this machine with everything a first look needs: the
server on an embedded SQLite database, a demo integrator (its URL, login
and API token are printed), thirty installations in every state the
dashboard knows, and their recording servers simulated in-process through
the real protocol, raising and clearing conditions. Plain HTTP: the demo is
for this machine.`)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (plain HTTP: the demo is for this machine)")
	data := fs.String("data", "", "data directory (default: a new temporary directory)")
	interval := fs.Duration("heartbeat-interval", 10*time.Second, "heartbeat interval of the demo fleet")
	debug := fs.Bool("debug", false, "log at debug level")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *data == "" {
		if *data, err = os.MkdirTemp("", "keepwatch-demo-"); err != nil {
			return err
		}
	}
	log := logger(e.stderr, *debug)
	a, err := app.New(ctx, app.Config{Addr: *addr, DataDir: *data, Interval: *interval, InsecureHTTP: true, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(sctx)
	}()
	creds, sites, err := demo.Setup(ctx, a.Store, keepwatch.DateOf(time.Now()))
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return explain(err, hintContext{addr: *addr})
	}
	fleet := demo.NewFleet(a.URL(), "", a.Store, log, sites)
	if err := fleet.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `
keepwatch demo is running.

  URL:       %s
  login:     %s
  password:  %s
  API token: %s
  data:      %s

Try:  curl -s -H 'Authorization: Bearer %s' %s/api/v1/installations
One site is offline: its servers turn unavailable after three missed heartbeats (%s).
Press Ctrl-C to stop.
`, a.URL(), creds.Email, creds.Password, creds.Token, *data, creds.Token, a.URL(), 3**interval)
	fleet.Run(ctx)
	return nil
}
