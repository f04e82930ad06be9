// Package bench measures keepwatch on this machine in one command: a real
// server (TLS, sealed reports through the real ingest handler, monitor and
// store) under a load generator, against the same load on a bare TLS
// handler (the machine's ceiling), plus the delay from a silent server's
// deadline to its unavailable state and the memory per tracked server.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/protocol"
	"keepwatch/internal/sealed"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/tlsutil"
)

// Config is what `keepwatch bench` takes.
type Config struct {
	Servers  int
	Duration time.Duration // of each throughput phase
	Store    string        // sqlite or postgres
	DB       string        // PostgreSQL URL (a scratch schema is created in it)
	Conns    int           // concurrent keep-alive connections
	// Nodes is how many keepwatch nodes share the database (PostgreSQL
	// only; default 1); the load is spread evenly over them.
	Nodes    int
	Progress io.Writer // a progress line every second (nil: none)
	// Log receives the keepwatch nodes' log, info and above (nil: none).
	Log io.Writer

	// Fleet: every server its own client, as the agent behaves (its own
	// TLS connection and session, heartbeats by datagram with HTTPS as
	// fallback), keepwatch in a `keepwatch serve` process of its own.
	Fleet bool
	// Interval is the fleet's heartbeat interval (default 60 s).
	Interval time.Duration
	// HTTPSOnly: the fleet sends heartbeats over HTTPS only (keepwatch
	// without datagrams), for comparison.
	HTTPSOnly bool
	// Exe is the keepwatch binary to run (default: this one).
	Exe string
}

// Result is the outcome; its JSON names are stable.
type Result struct {
	Servers          int     `json:"servers"`
	Store            string  `json:"store"`
	Conns            int     `json:"conns"`
	Nodes            int     `json:"nodes"`
	IntervalSeconds  float64 `json:"interval_seconds"`
	ReportsPerSec    float64 `json:"reports_per_sec"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	BaselineRPS      float64 `json:"baseline_rps"`
	BaselineP99Ms    float64 `json:"baseline_p99_ms"`
	RatioToBaseline  float64 `json:"ratio_to_baseline"`
	Silenced         int     `json:"silenced"`
	Detected         int     `json:"detected"`
	DetectP50Ms      float64 `json:"detect_p50_ms"`
	DetectP99Ms      float64 `json:"detect_p99_ms"`
	DetectMaxMs      float64 `json:"detect_max_ms"`
	BytesPerServer   float64 `json:"bytes_per_server"`
	ProvisionSeconds float64 `json:"provision_seconds"`
	Errors           int64   `json:"errors"`
	FalseUnavailable int     `json:"false_unavailable"`

	// --fleet only (absent otherwise).
	*FleetResult
}

// FleetResult is what `bench --fleet` adds.
type FleetResult struct {
	Mode                      string  `json:"mode"` // udp (heartbeats by datagram) or https
	RSSBytes                  int64   `json:"rss_bytes"`
	RSSBytesPerServer         float64 `json:"rss_bytes_per_server"`
	BaselineRSSBytesPerServer float64 `json:"baseline_rss_bytes_per_server"`
	ConnsHeld                 int     `json:"conns_held"`
	HandshakesPerSec          float64 `json:"handshakes_per_sec"`
	// CPU time of the server process per answered report, steady phase.
	CPUMicrosPerReport         float64 `json:"cpu_us_per_report"`
	BaselineCPUMicrosPerReport float64 `json:"baseline_cpu_us_per_report"`
	Heartbeats                 int64   `json:"heartbeats"`
	Datagrams                  int64   `json:"datagrams"`
	Retries                    int64   `json:"retries"` // attempts that failed and were tried again, as the agent does
	StatusReports              int64   `json:"status_reports"`
	FirstError                 string  `json:"first_error,omitempty"`
}

type fleetServer struct {
	id  protocol.ServerID
	key []byte
	seq uint64
}

// Run runs the whole measurement.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Servers < 100 {
		return Result{}, fmt.Errorf("--servers must be at least 100")
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 20 * time.Second
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 128
	}
	if cfg.Nodes <= 0 {
		cfg.Nodes = 1
	}
	if cfg.Nodes > 1 && cfg.Store != store.Postgres {
		return Result{}, fmt.Errorf("--nodes above 1 needs --store postgres: nodes share one database")
	}
	res := Result{Servers: cfg.Servers, Store: cfg.Store, Conns: cfg.Conns, Nodes: cfg.Nodes}
	if cfg.Fleet {
		res.Conns, res.FleetResult = cfg.Servers, &FleetResult{}
		return runFleet(ctx, cfg, res)
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "\r\033[K"+format, args...)
		}
	}

	dir, err := os.MkdirTemp("", "keepwatch-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	dsn := dir
	if cfg.Store == store.Postgres {
		var drop func()
		if dsn, drop, err = scratchSchema(cfg.DB); err != nil {
			return res, err
		}
		defer drop()
	} else if cfg.Store != store.SQLite {
		return res, fmt.Errorf("--store must be sqlite or postgres")
	}

	// Servers must hear from each server within three intervals while the
	// generator spreads its load over the whole fleet: pick an interval that
	// a fraction of this machine's rate sustains.
	interval := time.Duration(max(2, cfg.Servers/10000)) * time.Second
	res.IntervalSeconds = interval.Seconds()

	progress("provisioning %d servers in %s…", cfg.Servers, cfg.Store)
	start := time.Now()
	fleet, err := provision(ctx, dsn, cfg.Servers, interval)
	if err != nil {
		return res, fmt.Errorf("provision: %w", err)
	}
	res.ProvisionSeconds = time.Since(start).Seconds()

	// The ceiling first, before keepwatch watches the fleet: the same
	// client against a bare TLS handler with the same certificate.
	certFile, keyFile, err := tlsutil.SelfSigned(dir)
	if err != nil {
		return res, err
	}
	tr, err := transport(certFile, cfg.Conns)
	if err != nil {
		return res, err
	}
	base, err := bareServer(certFile, keyFile)
	if err != nil {
		return res, err
	}
	bl := load(ctx, tr, []string{"https://" + base.Addr().String()}, fleet, cfg.Conns, cfg.Duration, nil, func(rps float64, errs int64) {
		progress("baseline (bare TLS handler, 204): %.0f req/s, %d errors", rps, errs)
	})
	base.Close()
	res.BaselineRPS, res.BaselineP99Ms = bl.rps, bl.p(0.99)

	// Memory: the heap grown by loading the fleet into the server.
	runtime.GC()
	debug.FreeOSMemory()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	logTo := cfg.Log
	if logTo == nil {
		logTo = io.Discard
	}
	quiet := slog.New(slog.NewTextHandler(logTo, nil))
	key := sealed.NewKey()
	var nodes []*app.App
	var urls []string
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range nodes {
			n.Shutdown(sctx)
		}
	}()
	for i := range cfg.Nodes {
		// Each node its own data directory (its own certificate and
		// node name), all on the one database.
		nodeDir := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		if i == 0 {
			nodeDir = dir
		}
		n, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", DataDir: nodeDir, DB: map[bool]string{true: dsn}[cfg.Store == store.Postgres],
			TLSCert: certFile, TLSKey: keyFile, Interval: interval, Logger: quiet.With("node", i), SecretKey: key})
		if err != nil {
			return res, err
		}
		nodes = append(nodes, n)
		if err := n.Start(ctx); err != nil {
			return res, err
		}
		urls = append(urls, n.URL())
	}
	a := nodes[0]
	// keepwatch at full speed, every server reporting.
	kw := load(ctx, tr, urls, fleet, cfg.Conns, cfg.Duration, nil, func(rps float64, errs int64) {
		progress("keepwatch ingest: %.0f reports/s, %d errors", rps, errs)
	})
	// Every server has reported: its credentials and its deadline are in
	// memory.
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.BytesPerServer = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(cfg.Servers)
	res.ReportsPerSec, res.P50Ms, res.P99Ms, res.Errors = kw.rps, kw.p(0.5), kw.p(0.99), kw.errors
	if res.BaselineRPS > 0 {
		res.RatioToBaseline = res.ReportsPerSec / res.BaselineRPS
	}

	// Detection: a slice falls silent while the rest keep reporting; each
	// silent server's delay is from its deadline (last_seen + 3 intervals +
	// 10 %) to the moment keepwatch declared it unavailable.
	silent := map[int]bool{}
	n := min(1000, max(10, cfg.Servers/100))
	for i := 0; i < n; i++ {
		silent[i*(cfg.Servers/n)] = true
	}
	res.Silenced = n
	// Each of them reports once more now, so that its deadline is its own
	// (not the three intervals every server gets after keepwatch starts).
	silenceAt := time.Now()
	warm := map[int]bool{}
	for i := range fleet {
		if !silent[i] {
			warm[i] = true
		}
	}
	if r := loadOnce(ctx, tr, urls, fleet, cfg.Conns, warm); r.errors > 0 {
		res.Errors += r.errors
	}
	window := 3*interval + interval/10
	dl := load(ctx, tr, urls, fleet, cfg.Conns, window+3*time.Second, silent, func(rps float64, errs int64) {
		progress("detection: %d servers silent, waiting %s past their deadlines (%.0f reports/s from the others)", n, window, rps)
	})
	res.Errors += dl.errors
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	marks, err := a.Store.UnavailableMarks(ctx, silenceAt.Add(-time.Minute))
	if err != nil {
		return res, err
	}
	var delays []float64
	for i := range silent {
		id := fleet[i].id.String()
		at, ok := marks[id]
		if !ok {
			continue
		}
		rec, err := a.Store.ServerRecord(ctx, id)
		if err != nil {
			return res, err
		}
		deadline := rec.LastSeen + window.Milliseconds()
		delays = append(delays, float64(at-deadline))
		delete(marks, id)
	}
	res.Detected, res.FalseUnavailable = len(delays), len(marks)
	slices.Sort(delays)
	if len(delays) > 0 {
		res.DetectP50Ms, res.DetectP99Ms, res.DetectMaxMs = pct(delays, 0.5), pct(delays, 0.99), delays[len(delays)-1]
	}
	res.Errors += int64(res.Silenced-res.Detected) + int64(res.FalseUnavailable)
	return res, nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// provision creates one integrator, installations of 100 servers, and the
// servers with keys the generator also knows.
func provision(ctx context.Context, dsn string, n int, interval time.Duration) ([]fleetServer, error) {
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	in, err := st.CreateIntegrator(ctx, "Bench Integrator")
	if err != nil {
		return nil, err
	}
	fleet := make([]fleetServer, n)
	until := keepwatch.DateOf(time.Now()).AddDays(365)
	now := time.Now()
	for start := 0; start < n; start += 100 {
		slc := fmt.Sprintf("BENCH-%07d", start/100)
		inst, err := st.CreateInstallation(ctx, keepwatch.Installation{SLC: slc, Customer: "Bench customer " + slc, Product: "XProtect Corporate 2016", Cameras: 64, CarePlusUntil: until}, secret.Hash(slc))
		if err != nil {
			return nil, err
		}
		if err := st.Register(ctx, in.ID, slc); err != nil {
			return nil, err
		}
		var batch []store.ImportedServer
		for i := start; i < min(start+100, n); i++ {
			key := make([]byte, 32)
			rand.Read(key)
			fleet[i] = fleetServer{id: protocol.NewServerID(), key: key}
			batch = append(batch, store.ImportedServer{ID: fleet[i].id.String(), Name: fmt.Sprintf("RS-%02d", i-start+1), Key: key})
		}
		if err := st.ImportServers(ctx, inst, batch, interval, now); err != nil {
			return nil, err
		}
	}
	return fleet, nil
}

func scratchSchema(base string) (string, func(), error) {
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "kwbench_" + hex.EncodeToString(b)
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create scratch schema: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() { db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); db.Close() }, nil
}

func transport(caFile string, conns int) (*http.Transport, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	return &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(conns)},
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}, nil
}

// bareServer is the ceiling: TLS, keep-alive, read the body, answer 204.
func bareServer(certFile, keyFile string) (net.Listener, error) {
	cfg, _, err := tlsutil.ServerConfig(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	go srv.ServeTLS(ln, "", "")
	return ln, nil
}

type loadResult struct {
	rps     float64
	errors  int64
	latency []float64 // ms, sorted
}

func (l loadResult) p(q float64) float64 { return pct(l.latency, q) }

// load sends sealed heartbeats for d over conns connections; worker w owns
// the servers i ≡ w (mod conns), so sequence numbers stay in order.
// Servers in skip are left silent.
func load(ctx context.Context, tr *http.Transport, bases []string, fleet []fleetServer, conns int, d time.Duration, skip map[int]bool, tick func(float64, int64)) loadResult {
	var sent, errs atomic.Int64
	var mu sync.Mutex
	var lat []float64
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := bases[w%len(bases)]
			local := make([]float64, 0, 4096)
			for i := w; ctx.Err() == nil; i += conns {
				if i >= len(fleet) {
					i = w - conns
					continue
				}
				if skip[i] {
					continue
				}
				s := &fleet[i]
				s.seq++
				env, _ := protocol.Seal(s.key, s.id, s.seq, nil)
				t := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.ReportPath, bytes.NewReader(env))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					errs.Add(1)
					continue
				}
				sent.Add(1)
				if len(local) < cap(local) || i%7 == 0 {
					local = append(local, float64(time.Since(t).Microseconds())/1000)
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				n := sent.Load()
				tick(float64(n-last), errs.Load())
				last = n
			}
		}
	}()
	wg.Wait()
	close(done)
	slices.Sort(lat)
	return loadResult{rps: float64(sent.Load()) / time.Since(start).Seconds(), errors: errs.Load(), latency: lat}
}

// loadOnce sends one heartbeat for every server not in skip, w of them at
// a time (worker w owns servers i ≡ w mod conns, as in load).
func loadOnce(ctx context.Context, tr *http.Transport, bases []string, fleet []fleetServer, conns int, skip map[int]bool) loadResult {
	var errs atomic.Int64
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := bases[w%len(bases)]
			for i := w; i < len(fleet); i += conns {
				if skip[i] {
					continue
				}
				s := &fleet[i]
				s.seq++
				env, _ := protocol.Seal(s.key, s.id, s.seq, nil)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.ReportPath, bytes.NewReader(env))
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return loadResult{errors: errs.Load()}
}
