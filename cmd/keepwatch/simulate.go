package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/sim"
	"keepwatch/internal/store"
)

const simulateSynopsis = `simulate --server URL --installations N --servers M [--interval D] [--faults RATE]
                          [--state DIR] [--ca FILE] [--data DIR | --db URL] [--integrator NAME]
                          [--duration D] [--seed N] [--connections N]`

const simulateAbout = `Enrolls N installations of M recording servers each through the real ingest
protocol and runs them: heartbeats at the interval keepwatch dictates, and
faults at random (drives filling, cameras flapping, media database errors,
archive failures, servers crashing, sites losing their Internet link and
uploading what happened once they are back). A one-line summary shows the
servers enrolled and online, reports per second, refusals by code and the
faults under way; any refusal the simulator did not cause on purpose is
shown as UNEXPECTED. Ctrl-C (or --duration) stops it cleanly.

The simulator plays the operator too: with --data or --db (the database of
the keepwatch it talks to, as for keepwatch admin) it creates the
integrator (printing an owner API token on stdout, once), a licence for
each installation, and registers them. Enrolled credentials are cached in
--state, so a rerun reuses them and needs the database only to enroll
more. With database access, a run ends by comparing what keepwatch shows
the integrator with what the fleet reported; it exits non-zero if they
differ or a report was refused unexpectedly.`

func runSimulate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "simulate", simulateSynopsis, simulateAbout)
	server := fs.String("server", "", "keepwatch's base `URL`, e.g. https://localhost:8443")
	installations := fs.Int("installations", 0, "`N` installations (sites)")
	servers := fs.Int("servers", 0, "`M` recording servers per installation")
	interval := fs.Duration("interval", 0, "heartbeat interval `D` to use instead of the one keepwatch dictates (default: keepwatch's; a longer one makes servers unavailable)")
	faults := fs.Float64("faults", 0.001, "`RATE` (0 to 1): the probability that a fault starts on a server during one heartbeat interval")
	state := fs.String("state", "keepwatch-sim", "`DIR` caching the fleet's enrolled credentials")
	ca := fs.String("ca", "", "extra CA certificate `FILE` to trust (a self-signed keepwatch's <data>/tls/cert.pem)")
	data := fs.String("data", "", "data directory `DIR` of keepwatch's SQLite database, for creating licences")
	db := fs.String("db", "", "PostgreSQL `URL` of keepwatch's database, for creating licences")
	integrator := fs.String("integrator", "Simulated Integrator", "register the installations to integrator `NAME` (created if missing)")
	duration := fs.Duration("duration", 0, "stop after `D` (default: run until interrupted)")
	seed := fs.Uint64("seed", 0, "seed `N` of the fault generator, to replay the same faults (default: random)")
	conns := fs.Int("connections", 32, "`N` connections to keepwatch shared by the fleet")
	debug := fs.Bool("debug", false, "log at debug level")
	keyFile := secretKeyFlag(fs)
	if err := flagsOnly(fs, args, "server", "state"); err != nil {
		return err
	}
	switch {
	case !strings.HasPrefix(*server, "https://") && !strings.HasPrefix(*server, "http://"):
		return usagef("--server must be an https:// (or, for local tests, http://) URL")
	case *installations < 1 || *servers < 1:
		return usagef("--installations and --servers must be at least 1")
	case *faults < 0 || *faults > 1:
		return usagef("--faults is a probability, from 0 to 1")
	case *interval < 0 || *duration < 0:
		return usagef("--interval and --duration must not be negative")
	case *conns < 1:
		return usagef("--connections must be at least 1")
	case *data != "" && *db != "":
		return usagef("give --data or --db, not both")
	case strings.TrimSpace(*integrator) == "":
		return usagef("--integrator must not be empty")
	}
	log := logger(e.stderr, *debug)

	cache, err := sim.LoadCache(*state)
	if err != nil {
		return err
	}
	if err := cache.Bind(*server, *integrator); err != nil {
		return err
	}
	plan := sim.Plan{Integrator: *integrator, Installations: *installations, Servers: *servers, Today: keepwatch.DateOf(time.Now())}
	var st *store.Store
	var integratorID int64
	if dsn := *data + *db; dsn != "" {
		if *data != "" {
			// The database of the keepwatch the fleet talks to: a new one
			// would hold licences that keepwatch never sees.
			if err := hasDatabase(*data, false); err != nil {
				return err
			}
		}
		keys, err := secretKey(*keyFile)
		if err != nil {
			return err
		}
		if st, err = openStore(ctx, *data, *db, keys); err != nil {
			return err
		}
		defer st.Close()
		p, err := sim.Provision(ctx, st, cache, plan)
		if err != nil {
			return err
		}
		integratorID = p.IntegratorID
		if p.Token != "" {
			fmt.Fprintln(e.stdout, p.Token)
			fmt.Fprintf(e.stderr, "integrator %q created; its owner API token (above) is shown only once\n", *integrator)
		}
		if p.Created+p.Rotated+p.Registered+p.Stale > 0 {
			fmt.Fprintf(e.stderr, "licences: %d created, %d enrollment keys rotated, %d registered; %d cached servers unknown to keepwatch (enrolled again)\n",
				p.Created, p.Rotated, p.Registered, p.Stale)
		}
	} else {
		sim.Extend(cache, plan)
		missing := 0
		for _, in := range cache.Installations[:plan.Installations] {
			for _, s := range in.Servers[:plan.Servers] {
				if s.ID == "" && in.EnrollmentKey == "" {
					missing++
				}
			}
		}
		if missing > 0 {
			return usagef("%d servers have no cached credentials in %s: give --data or --db so the simulator can create their licences", missing, *state)
		}
	}

	fleet, err := sim.New(sim.Config{
		URL: *server, CAFile: *ca, Installations: cache.Select(plan.Installations, plan.Servers), Interval: *interval, FaultRate: *faults,
		Cache: cache, StateDir: *state, Store: st, Conns: *conns, Seed: *seed, Logger: log,
	})
	if err != nil {
		return err
	}
	sumCtx, stopSummary := context.WithCancel(context.Background())
	sumDone := make(chan struct{})
	tty := isTerminal(e.stderr)
	go func() {
		defer close(sumDone)
		fleet.PrintSummary(sumCtx, e.stderr, tty)
	}()
	var runStart time.Time
	// finish ends the live summary with a last line whose rate is the
	// average over the run.
	finish := func() sim.Stats {
		stopSummary()
		<-sumDone
		stats := fleet.Stats()
		rate := 0.0
		if !runStart.IsZero() {
			rate = float64(stats.Accepted) / time.Since(runStart).Seconds()
		}
		fmt.Fprintln(e.stderr, stats.Line(rate))
		return stats
	}
	if err := fleet.Start(ctx); err != nil {
		finish()
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while enrolling; the %d servers enrolled so far are cached in %s", fleet.Stats().Enrolled, *state)
		}
		return err
	}
	runCtx := ctx
	if *duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	runStart = time.Now()
	runErr := fleet.Run(runCtx)
	stats := finish()
	if runErr != nil {
		return runErr
	}
	var problems []string
	if st != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		// The time of the comparison is taken before the overview is read,
		// so that no server is judged silent for longer than it was.
		now := time.Now()
		views, err := st.Installations(cctx, integratorID, now)
		if err != nil {
			return err
		}
		check := fleet.Check(views, now)
		fmt.Fprintf(e.stderr, "keepwatch shows %d servers' %d active conditions, %d events and %d unavailable servers as the fleet reported them\n",
			check.Servers, check.Conditions, check.Events, check.Unavailable)
		problems = check.Problems
		for i, p := range problems {
			if i == 20 {
				fmt.Fprintf(e.stderr, "  … and %d more\n", len(problems)-i)
				break
			}
			fmt.Fprintf(e.stderr, "  %s\n", p)
		}
	}
	var errs []error
	if n := stats.Unexpected(); n > 0 {
		errs = append(errs, fmt.Errorf("%d reports were refused unexpectedly", n))
	}
	if len(problems) > 0 {
		errs = append(errs, fmt.Errorf("keepwatch does not show what the fleet reported (%d differences)", len(problems)))
	}
	return errors.Join(errs...)
}

// isTerminal reports whether w is a terminal, where the summary is
// refreshed in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
