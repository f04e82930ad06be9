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

const demoAbout = `Starts keepwatch on this machine with everything a first look needs: the
server on an embedded SQLite database, a demo integrator (its URL, login
and API token are printed), thirty installations in every state the
dashboard knows, and their recording servers simulated in-process through
the real protocol, raising and clearing conditions. One licence is left
unregistered, to try the registration center with. Plain HTTP: the demo is
for this machine. Ctrl-C stops it; its temporary data directory is removed
then, unless --data named one.`

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "demo [--addr 127.0.0.1:8080] [--data DIR]", demoAbout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT`")
	data := fs.String("data", "", "keep the data in `DIR` (default: a temporary directory, removed on exit)")
	interval := fs.Duration("heartbeat-interval", 10*time.Second, "heartbeat `INTERVAL` of the demo fleet")
	debug := fs.Bool("debug", false, "log at debug level")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *interval < app.MinInterval {
		return usagef("--heartbeat-interval must be at least %s", app.MinInterval)
	}
	log := logger(e.stderr, *debug)
	temporary := *data == ""
	if temporary {
		if *data, err = os.MkdirTemp("", "keepwatch-demo-"); err != nil {
			return err
		}
		// Deferred first, so it runs last: after the database is closed.
		defer func() {
			if err := os.RemoveAll(*data); err != nil {
				log.Warn("could not remove the demo's temporary directory", "dir", *data, "err", err)
				return
			}
			log.Info("removed the demo's temporary directory", "dir", *data)
		}()
	}
	a, err := app.New(ctx, app.Config{Addr: *addr, DataDir: *data, Interval: *interval, InsecureHTTP: true, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(sctx); err != nil {
			log.Warn("demo stopped with an error", "err", err)
			return
		}
		log.Info("demo stopped")
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
	kept := "kept (--data)"
	if temporary {
		kept = "removed when the demo stops; --data DIR keeps it"
	}
	fmt.Fprintf(e.stdout, `
keepwatch demo is running.

  URL:       %s
  login:     %s
  password:  %s
  API token: %s
  data:      %s (%s)

Try registering SLC %s under Registration: it is licensed, but no
integrator holds it yet.

Try the API:
  TOKEN=%s
  curl -s -H "Authorization: Bearer $TOKEN" %s/api/v1/installations

One site is offline: its servers turn unavailable after three missed heartbeats (%s).
Press Ctrl-C to stop.
`, a.URL(), creds.Email, creds.Password, creds.Token, *data, kept, creds.UnregisteredSLC, creds.Token, a.URL(), 3**interval)
	fleet.Run(ctx)
	log.Info("stopping the demo: its fleet has stopped, shutting the server down")
	return nil
}
