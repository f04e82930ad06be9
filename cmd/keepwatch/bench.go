package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"keepwatch/internal/bench"
)

func runBench(ctx context.Context, e *env, args []string) error {
	if role := os.Getenv(bench.ChildEnv); role != "" {
		// A process of `bench --fleet`: a client shard or the bare server.
		return bench.Child(ctx, role, os.Stdin, e.stdout)
	}
	fs := newFlags(e, "bench", "bench [--servers N] [--duration D] [--store sqlite|postgres] [--nodes N] [--json] [--fleet [--interval D] [--https-only]]", `Measures keepwatch on this machine: enrolls --servers recording servers,
measures ingest over TLS against a bare TLS handler answering 204 (the
ceiling of the machine), the delay in declaring silent servers
unavailable, and the memory per tracked server. Progress goes to stderr,
results to stdout.

With --fleet every server is its own client and behaves as the agent
does: its own TLS connection and session, a status report at start, then
a heartbeat every --interval by datagram (HTTPS when no answer comes),
from loopback source addresses 127.0.x.y, in client processes of up to
8,000 servers; keepwatch runs as a "keepwatch serve" process (and the
baseline as a bare TLS and datagram answerer) whose memory and sockets
are read from /proc.`)
	var cfg bench.Config
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	fs.IntVar(&cfg.Servers, "servers", 10000, "enroll `N` distinct recording servers")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "length `D` of each throughput phase (baseline, keepwatch)")
	fs.StringVar(&cfg.Store, "store", "sqlite", "the database: sqlite or postgres")
	fs.StringVar(&cfg.DB, "db", os.Getenv("KEEPWATCH_TEST_POSTGRES"), "PostgreSQL `URL` for --store postgres (a scratch schema is created and dropped)")
	fs.IntVar(&cfg.Conns, "conns", 128, "`N` concurrent keep-alive TLS connections")
	fs.IntVar(&cfg.Nodes, "nodes", 1, "`N` keepwatch nodes sharing the database (--store postgres), the load spread over them")
	fs.BoolVar(&cfg.Fleet, "fleet", false, "every server its own client, as the agent behaves (see above)")
	fs.DurationVar(&cfg.Interval, "interval", 60*time.Second, "with --fleet: the heartbeat `INTERVAL` of the fleet")
	fs.BoolVar(&cfg.HTTPSOnly, "https-only", false, "with --fleet: heartbeats over HTTPS only (keepwatch serve --udp-listen off)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this `FILE`")
	logFile := fs.String("log", "", "write the keepwatch nodes' log (info and above) to this `FILE`")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	cfg.Progress = e.stderr
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Log = f
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	if cfg.Fleet {
		fmt.Fprintf(e.stdout, `servers             %d, each its own client (%s, heartbeat interval %gs, heartbeats by %s)
answered            %.0f reports/s, p50 %.2f ms, p99 %.2f ms (%d heartbeats, %d by datagram, %d status reports)
baseline            %.0f reports/s (bare handler, same fleet), p99 %.2f ms, %.0f bytes per server
memory              %.0f bytes per server (keepwatch serve RSS %d MiB)
cpu                 %.0f µs per report (baseline %.0f µs)
connections         %d sockets held, %.1f TLS handshakes/s
detection           %d of %d silent servers declared; delay after deadline p50 %.0f ms, p99 %.0f ms, max %.0f ms
errors              %d (false unavailable: %d; attempts tried again: %d) %s
`, r.Servers, r.Store, r.IntervalSeconds, r.Mode, r.ReportsPerSec, r.P50Ms, r.P99Ms, r.Heartbeats, r.Datagrams, r.StatusReports,
			r.BaselineRPS, r.BaselineP99Ms, r.BaselineRSSBytesPerServer, r.RSSBytesPerServer, r.RSSBytes>>20, r.CPUMicrosPerReport, r.BaselineCPUMicrosPerReport, r.ConnsHeld, r.HandshakesPerSec,
			r.Detected, r.Silenced, r.DetectP50Ms, r.DetectP99Ms, r.DetectMaxMs, r.Errors, r.FalseUnavailable, r.Retries, r.FirstError)
		return nil
	}
	fmt.Fprintf(e.stdout, `servers             %d (%s, %d node(s), heartbeat interval %gs, provisioned in %.1fs)
ingest              %.0f reports/s over TLS, p50 %.2f ms, p99 %.2f ms (%d connections)
baseline            %.0f req/s (bare TLS handler answering 204), p99 %.2f ms
ratio to baseline   %.2f
detection           %d of %d silent servers declared; delay after deadline p50 %.0f ms, p99 %.0f ms, max %.0f ms
memory              %.0f bytes per tracked server
errors              %d (false unavailable: %d)
`, r.Servers, r.Store, r.Nodes, r.IntervalSeconds, r.ProvisionSeconds, r.ReportsPerSec, r.P50Ms, r.P99Ms, r.Conns, r.BaselineRPS, r.BaselineP99Ms,
		r.RatioToBaseline, r.Detected, r.Silenced, r.DetectP50Ms, r.DetectP99Ms, r.DetectMaxMs, r.BytesPerServer, r.Errors, r.FalseUnavailable)
	return nil
}
