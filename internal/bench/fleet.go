package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/ingest"
	"keepwatch/internal/protocol"
	"keepwatch/internal/store"
	"keepwatch/internal/tlsutil"
)

// ChildEnv names the role of a child process of `keepwatch bench --fleet`
// (shard or bare); the parent sets it, nobody else should.
const ChildEnv = "KEEPWATCH_BENCH_CHILD"

// shardSize is how many simulated servers one client process drives: each
// holds a TLS connection and a UDP socket, and a process may hold at most
// 20,000 file descriptors.
const shardSize = 8000

// fleetStartsPerSec bounds how fast the simulated agents start (each
// with a TLS handshake and a status report): a fleet does not restart
// all at once.
const fleetStartsPerSec = 100

// fleetRamp is the time over which n agents start: one interval, or
// longer at fleetStartsPerSec.
func fleetRamp(n int, interval time.Duration) time.Duration {
	return max(interval, time.Duration(n/fleetStartsPerSec)*time.Second)
}

// fleetShard is what a client process is told, on its stdin.
type fleetShard struct {
	URL       string        `json:"url"`
	CAFile    string        `json:"ca_file"`
	Source    string        `json:"source"` // loopback source address
	Interval  time.Duration `json:"interval"`
	Start     time.Time     `json:"start"` // first reports spread over Ramp from here
	Ramp      time.Duration `json:"ramp"`
	SilenceAt time.Time     `json:"silence_at"` // silent servers send nothing after this
	UDP       bool          `json:"udp"`        // heartbeats by datagram, as agents do
	Servers   []shardServer `json:"servers"`
}

type shardServer struct {
	ID     string `json:"id"`
	Key    []byte `json:"key"`
	Silent bool   `json:"silent,omitempty"`
}

// shardStats is what a client process reports, cumulative, once a second
// on its stdout (the last line adds latency samples).
type shardStats struct {
	Heartbeats int64     `json:"heartbeats"`
	Datagrams  int64     `json:"datagrams"` // heartbeats answered by datagram
	Statuses   int64     `json:"statuses"`
	Errors     int64     `json:"errors"`  // reports not delivered before the next was due
	Retries    int64     `json:"retries"` // failed attempts tried again
	Handshakes int64     `json:"handshakes"`
	Conns      int64     `json:"conns"` // connections open now
	LatencyMs  []float64 `json:"latency_ms,omitempty"`
	FirstError string    `json:"first_error,omitempty"`
}

// fleetRun is the outcome of one phase against one target.
type fleetRun struct {
	stats     shardStats
	rps       float64 // heartbeats and reports answered per second, steady
	hsps      float64 // TLS handshakes per second, steady
	rss       int64   // the target's resident memory at the end of the steady phase
	rssIdle   int64   // before the fleet connected
	conns     int     // sockets the target held then
	cpuPer    float64 // the target's CPU time per answered report in the steady phase, µs
	latencies []float64
}

// runFleet measures keepwatch with every simulated server its own client
// behaving as the agent does: its own TLS connection and session, its
// own UDP socket, its interval; spread over loopback source addresses in
// client processes, with keepwatch (and the bare baseline) in processes of
// their own, whose memory is read from /proc.
func runFleet(ctx context.Context, cfg Config, res Result) (Result, error) {
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "\r\033[K"+format, args...)
		}
	}
	exe := cfg.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return res, err
		}
	}
	interval := cfg.Interval
	if interval <= 0 {
		interval = 60 * time.Second
	}
	// Every agent must have started (fleetRamp) before keepwatch's
	// own-outage guard of three intervals ends, or the late ones would be
	// declared unavailable.
	interval = max(interval, fleetRamp(cfg.Servers, 0)*2/5).Round(time.Second)
	res.IntervalSeconds = interval.Seconds()
	res.Mode = "udp"
	if cfg.HTTPSOnly {
		res.Mode = "https"
	}
	steady := max(cfg.Duration, interval)

	dir, err := os.MkdirTemp("", "keepwatch-fleet-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	dsn, db := dir, ""
	if cfg.Store == store.Postgres {
		var drop func()
		if dsn, drop, err = scratchSchema(cfg.DB); err != nil {
			return res, err
		}
		defer drop()
		db = dsn
	} else if cfg.Store != store.SQLite {
		return res, fmt.Errorf("--store must be sqlite or postgres")
	}
	progress("provisioning %d servers in %s…", cfg.Servers, cfg.Store)
	start := time.Now()
	fleet, err := provision(ctx, dsn, cfg.Servers, interval)
	if err != nil {
		return res, fmt.Errorf("provision: %w", err)
	}
	res.ProvisionSeconds = time.Since(start).Seconds()
	certFile, keyFile, err := tlsutil.SelfSigned(dir)
	if err != nil {
		return res, err
	}
	keysFile := filepath.Join(dir, "fleet.json")
	if err := writeFleet(keysFile, fleet); err != nil {
		return res, err
	}

	// Baseline: a bare TLS handler (and datagram answerer) in its own
	// process, the same fleet for one ramp and the steady phase.
	bare, err := startChild(ctx, exe, "bare", map[string]string{"cert": certFile, "key": keyFile, "fleet": keysFile,
		"interval": strconv.Itoa(int(interval / time.Second))})
	if err != nil {
		return res, fmt.Errorf("baseline server: %w", err)
	}
	bl, err := fleetPhase(ctx, exe, cfg, res.Mode == "udp", bare.url, certFile, fleet, nil, interval, steady, bare.cmd.Process.Pid, func(s string) {
		progress("baseline (bare handler): %s", s)
	})
	bare.stop()
	if err != nil {
		return res, err
	}
	res.BaselineRPS, res.BaselineP99Ms = bl.rps, pct(bl.latencies, 0.99)
	res.BaselineRSSBytesPerServer = float64(bl.rss-bl.rssIdle) / float64(cfg.Servers)

	// keepwatch itself: `keepwatch serve` on the provisioned database.
	port, err := freePort()
	if err != nil {
		return res, err
	}
	args := []string{"serve", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--data", dir, "--tls-cert", certFile, "--tls-key", keyFile,
		"--heartbeat-interval", interval.String()}
	if db != "" {
		args = append(args, "--db", db)
	}
	if cfg.HTTPSOnly {
		args = append(args, "--udp-listen", "off")
	}
	srv := exec.CommandContext(ctx, exe, args...)
	srv.Env = append(os.Environ(), "KEEPWATCH_SECRET_KEY=")
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		return res, err
	}
	stopServer := sync.OnceFunc(func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	})
	defer stopServer()
	url := "https://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(ctx, url, certFile); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		return res, fmt.Errorf("keepwatch serve did not start: %w\n%s", err, tail(b, 2000))
	}

	// Detection: 1 % of the servers (at most 1,000) fall silent after the
	// steady phase while the others keep reporting.
	silent := map[int]bool{}
	n := min(1000, max(10, cfg.Servers/100))
	for i := 0; i < n; i++ {
		silent[i*(cfg.Servers/n)] = true
	}
	res.Silenced = n
	window := 3*interval + interval/10
	kw, err := fleetPhase(ctx, exe, cfg, res.Mode == "udp", url, certFile, fleet, silent, interval, steady, srv.Process.Pid, func(s string) {
		progress("keepwatch: %s", s)
	}, window+3*time.Second)
	if err != nil {
		return res, err
	}
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	res.ReportsPerSec, res.HandshakesPerSec = kw.rps, kw.hsps
	res.P50Ms, res.P99Ms = pct(kw.latencies, 0.5), pct(kw.latencies, 0.99)
	res.Errors, res.Retries = kw.stats.Errors, kw.stats.Retries
	res.RSSBytes = kw.rss
	res.RSSBytesPerServer = float64(kw.rss-kw.rssIdle) / float64(cfg.Servers)
	res.ConnsHeld = kw.conns
	res.CPUMicrosPerReport, res.BaselineCPUMicrosPerReport = kw.cpuPer, bl.cpuPer
	res.Heartbeats, res.Datagrams, res.StatusReports = kw.stats.Heartbeats, kw.stats.Datagrams, kw.stats.Statuses
	res.FirstError = kw.stats.FirstError
	if res.BaselineRPS > 0 {
		res.RatioToBaseline = res.ReportsPerSec / res.BaselineRPS
	}
	stopServer()

	st, err := store.Open(ctx, dsn)
	if err != nil {
		return res, err
	}
	defer st.Close()
	marks, err := st.UnavailableMarks(ctx, start)
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
		rec, err := st.ServerRecord(ctx, id)
		if err != nil {
			return res, err
		}
		delays = append(delays, float64(at-(rec.LastSeen+window.Milliseconds())))
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

// fleetPhase runs the fleet against url in client processes: every
// server starts at a random moment of the ramp, one interval passes,
// then the steady phase, and then (with silent servers) tail more. It
// samples the target's memory, sockets and CPU time at the end of the
// steady phase.
func fleetPhase(ctx context.Context, exe string, cfg Config, udp bool, url, caFile string, fleet []fleetServer, silent map[int]bool,
	interval, steady time.Duration, pid int, tick func(string), tail ...time.Duration) (fleetRun, error) {
	var run fleetRun
	run.rssIdle = rssOf(pid)
	begin := time.Now().Add(2 * time.Second)
	// Agents start over a ramp of one interval, or longer for a large
	// fleet: each begins with a status report, a transaction of its own.
	ramp := fleetRamp(len(fleet), interval)
	silenceAt := begin.Add(ramp + interval + steady)
	end := silenceAt
	for _, t := range tail {
		end = end.Add(t)
	}
	var shards []*child
	defer func() {
		for _, c := range shards {
			c.stop()
		}
	}()
	for s := 0; s*shardSize < len(fleet); s++ {
		sh := fleetShard{URL: url, CAFile: caFile, Source: fmt.Sprintf("127.0.%d.%d", 1+s/250, 2+s%250), Interval: interval,
			Start: begin, Ramp: ramp, SilenceAt: silenceAt, UDP: udp}
		for i := s * shardSize; i < min(len(fleet), (s+1)*shardSize); i++ {
			sh.Servers = append(sh.Servers, shardServer{ID: fleet[i].id.String(), Key: fleet[i].key, Silent: silent[i]})
		}
		c, err := startShard(ctx, exe, sh)
		if err != nil {
			return run, err
		}
		shards = append(shards, c)
	}
	sum := func() shardStats {
		var t shardStats
		for _, c := range shards {
			s := c.latest()
			t.Heartbeats += s.Heartbeats
			t.Datagrams += s.Datagrams
			t.Statuses += s.Statuses
			t.Errors += s.Errors
			t.Retries += s.Retries
			t.Handshakes += s.Handshakes
			t.Conns += s.Conns
			if t.FirstError == "" {
				t.FirstError = s.FirstError
			}
		}
		return t
	}
	var atSteady shardStats
	var steadyFrom time.Time
	var cpuAtSteady time.Duration
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	var last shardStats
	for now := time.Now(); now.Before(end); now = time.Now() {
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-tk.C:
		}
		for _, c := range shards {
			if err := c.failed(); err != nil {
				return run, err
			}
		}
		s := sum()
		phase := "ramp"
		switch {
		case now.After(silenceAt):
			phase = "detection"
		case now.After(begin.Add(ramp + interval)):
			phase = "steady"
			if steadyFrom.IsZero() {
				steadyFrom, atSteady, cpuAtSteady = now, s, cpuOf(pid)
			}
		}
		if !steadyFrom.IsZero() && run.rss == 0 && now.After(silenceAt.Add(-time.Second)) {
			d := now.Sub(steadyFrom).Seconds()
			run.rps = float64(s.Heartbeats+s.Statuses-atSteady.Heartbeats-atSteady.Statuses) / d
			run.hsps = float64(s.Handshakes-atSteady.Handshakes) / d
			run.rss, run.conns = rssOf(pid), socketsOf(pid)
			if n := s.Heartbeats + s.Statuses - atSteady.Heartbeats - atSteady.Statuses; n > 0 {
				run.cpuPer = float64((cpuOf(pid) - cpuAtSteady).Microseconds()) / float64(n)
			}
		}
		tick(fmt.Sprintf("%s, %d/s answered, %d handshakes/s, %d client conns open, %d retries, %d errors, %d MiB",
			phase, s.Heartbeats+s.Statuses-last.Heartbeats-last.Statuses, s.Handshakes-last.Handshakes, s.Conns, s.Retries, s.Errors, rssOf(pid)>>20))
		last = s
	}
	for _, c := range shards {
		c.stop()
		if err := c.failed(); err != nil {
			return run, err
		}
		run.latencies = append(run.latencies, c.latest().LatencyMs...)
	}
	run.stats = sum()
	shards = nil
	slices.Sort(run.latencies)
	return run, nil
}

// child is a process of the bench: a client shard or the bare server.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
	mu    sync.Mutex
	stats shardStats
	err   error
	done  chan struct{}
}

func (c *child) latest() shardStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *child) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// stop closes the child's stdin (its signal to finish and report) and
// waits for it.
func (c *child) stop() {
	if c.stdin != nil {
		c.stdin.Close()
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func startChild(ctx context.Context, exe, role string, input any) (*child, error) {
	cmd := exec.CommandContext(ctx, exe, "bench")
	cmd.Env = append(os.Environ(), ChildEnv+"="+role)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: in, done: make(chan struct{})}
	if err := json.NewEncoder(in).Encode(input); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	if role == "bare" {
		if !sc.Scan() {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("the bare server did not start")
		}
		c.url = strings.TrimSpace(sc.Text())
	}
	go func() {
		defer close(c.done)
		for sc.Scan() {
			var s shardStats
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				c.mu.Lock()
				c.stats = s
				c.mu.Unlock()
			}
		}
		if err := cmd.Wait(); err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("bench %s process: %w", role, err)
			c.mu.Unlock()
		}
	}()
	return c, nil
}

func startShard(ctx context.Context, exe string, sh fleetShard) (*child, error) {
	return startChild(ctx, exe, "shard", sh)
}

// Child runs a child process of the fleet bench (role from ChildEnv),
// reading its orders from in and reporting on out.
func Child(ctx context.Context, role string, in io.Reader, out io.Writer) error {
	switch role {
	case "shard":
		var sh fleetShard
		if err := json.NewDecoder(in).Decode(&sh); err != nil {
			return err
		}
		return runShard(ctx, sh, in, out)
	case "bare":
		var args map[string]string
		if err := json.NewDecoder(in).Decode(&args); err != nil {
			return err
		}
		return runBare(ctx, args, in, out)
	}
	return fmt.Errorf("unknown bench child role %q", role)
}

// runShard drives its servers until in closes, then writes its final
// statistics.
func runShard(ctx context.Context, sh fleetShard, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	var st struct {
		heartbeats, datagrams, statuses, errors, handshakes, conns, retries atomic.Int64
		mu                                                                  sync.Mutex
		lat                                                                 []float64
		first                                                               string
		errorsSeen                                                          int
	}
	fail := func(err error) {
		st.errors.Add(1)
		st.mu.Lock()
		if st.first == "" {
			st.first = err.Error()
		}
		if st.errorsSeen < 5 {
			st.errorsSeen++
			fmt.Fprintf(os.Stderr, "\nbench shard %s: %v\n", sh.Source, err)
		}
		st.mu.Unlock()
	}
	src := &net.TCPAddr{IP: net.ParseIP(sh.Source)}
	var wg sync.WaitGroup
	// One agent client read the CA; every server gets its own copy of its
	// transport (its own connections and TLS session cache).
	tmpl, err := agent.NewClient(sh.URL, sh.CAFile)
	if err != nil {
		return err
	}
	for _, s := range sh.Servers {
		tr := tmpl.HTTP.Transport.(*http.Transport).Clone()
		c := &agent.Client{BaseURL: tmpl.BaseURL, HTTP: &http.Client{Transport: tr, Timeout: tmpl.HTTP.Timeout}}
		d := &net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				st.handshakes.Add(1)
				st.conns.Add(1)
				conn = &countedConn{Conn: conn, open: &st.conns}
			}
			return conn, err
		}
		tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		c.DisableDatagrams = !sh.UDP
		c.DatagramSource = &net.UDPAddr{IP: src.IP}
		sender := &agent.Sender{State: &agent.State{ServerID: s.ID, Key: s.Key, Interval: int64(sh.Interval / time.Second)}, Client: c}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			t := time.NewTimer(time.Until(sh.Start.Add(rand.N(sh.Ramp))))
			defer t.Stop()
			first := true
			local := make([]float64, 0, 64)
			for {
				select {
				case <-ctx.Done():
					st.mu.Lock()
					st.lat = append(st.lat, local...)
					st.mu.Unlock()
					return
				case <-t.C:
				}
				now := time.Now()
				if s.Silent && now.After(sh.SilenceAt) {
					t.Reset(time.Hour)
					continue
				}
				t.Reset(sh.Interval)
				// As the agent: a status report at start, then heartbeats.
				var p *protocol.Payload
				if first {
					p, _ = agent.StatusPayload(nil, nil, now.UTC())
				} else {
					at := now.UTC()
					p = &protocol.Payload{SentAt: &at}
				}
				// As the agent's spool: a failed attempt is tried again
				// after a backoff (1 s doubling); a report still not
				// delivered when the next is due is an error.
				var resp protocol.ReportResponse
				var err error
				for wait := time.Second; ; wait *= 2 {
					rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
					resp, err = sender.Send(rctx, p)
					rcancel()
					var se *agent.ServerError
					if errors.As(err, &se) && se.RetryAfter > wait {
						wait = se.RetryAfter // as the agent: never sooner than asked
					}
					if err == nil || ctx.Err() != nil || time.Since(now)+wait > sh.Interval {
						break
					}
					st.retries.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				if first {
					st.statuses.Add(1)
					first = false
				} else {
					st.heartbeats.Add(1)
					if resp.Datagram {
						st.datagrams.Add(1)
					}
				}
				if len(local) < cap(local) {
					local = append(local, float64(time.Since(now).Microseconds())/1000)
				}
			}
		}()
	}
	enc := json.NewEncoder(out)
	snapshot := func(final bool) shardStats {
		s := shardStats{Heartbeats: st.heartbeats.Load(), Datagrams: st.datagrams.Load(), Statuses: st.statuses.Load(),
			Errors: st.errors.Load(), Retries: st.retries.Load(), Handshakes: st.handshakes.Load(), Conns: st.conns.Load()}
		st.mu.Lock()
		s.FirstError = st.first
		if final {
			s.LatencyMs = st.lat
		}
		st.mu.Unlock()
		return s
	}
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tk.C:
			if err := enc.Encode(snapshot(false)); err != nil {
				return err
			}
		}
	}
	wg.Wait()
	return enc.Encode(snapshot(true))
}

// countedConn keeps the count of open connections.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// runBare is the baseline server: TLS with keep-alive answering every
// report at once with the answer's JSON, and a datagram answerer that
// MACs its answer under the server's key but does no other work.
func runBare(ctx context.Context, args map[string]string, in io.Reader, out io.Writer) error {
	cfg, _, err := tlsutil.ServerConfig(args["cert"], args["key"])
	if err != nil {
		return err
	}
	keys, err := readFleet(args["fleet"])
	if err != nil {
		return err
	}
	auths := make(map[protocol.ServerID][]byte, len(keys))
	for id, k := range keys {
		auths[id] = protocol.AuthKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		return err
	}
	pc.(*net.UDPConn).SetReadBuffer(ingest.DatagramReadBuffer)
	iv, _ := strconv.Atoi(args["interval"])
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, protocol.MaxEnvelope))
		h, _ := protocol.ParseHeader(body)
		ans := fmt.Appendf(nil, `{"seq":%d,"state":"ok","heartbeat_interval_seconds":%d,"server_time":%q,"keep_alive_seconds":15}`,
			h.Seq, iv, time.Now().UTC().Format(time.RFC3339Nano))
		w.Header().Set("Content-Type", "application/json")
		// Agents take only authenticated answers: MACed as keepwatch does.
		if auth, ok := auths[h.ID]; ok {
			w.Header().Set(protocol.MACHeader, base64.StdEncoding.EncodeToString(protocol.AnswerMAC(auth, h.ID, h.Seq, http.StatusOK, ans)))
		}
		w.Write(ans)
	}), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, 0)}
	go srv.ServeTLS(ln, "", "")
	go func() {
		buf := make([]byte, 2048)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			h, err := protocol.ParseHeader(buf[:n])
			if err != nil {
				continue
			}
			key, ok := keys[h.ID]
			if !ok {
				continue
			}
			ans := protocol.DatagramAnswer{ID: h.ID, Seq: h.Seq, Status: protocol.DatagramAccepted, State: "ok", IntervalSeconds: uint32(iv), KeepAliveSeconds: 15, ServerTime: time.Now()}
			pc.WriteTo(ans.Seal(key), addr)
		}
	}()
	fmt.Fprintln(out, "https://"+ln.Addr().String())
	io.Copy(io.Discard, in)
	pc.Close()
	return srv.Close()
}

func writeFleet(path string, fleet []fleetServer) error {
	list := make([]shardServer, len(fleet))
	for i, s := range fleet {
		list[i] = shardServer{ID: s.id.String(), Key: s.key}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func readFleet(path string) (map[protocol.ServerID][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []shardServer
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	m := make(map[protocol.ServerID][]byte, len(list))
	for _, s := range list {
		id, err := protocol.ParseServerID(s.ID)
		if err != nil {
			return nil, err
		}
		m[id] = s.Key
	}
	return m, nil
}

// freePort returns a port free for both TCP and UDP on loopback.
func freePort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on loopback")
}

func waitReady(ctx context.Context, url, caFile string) error {
	tc, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 60 s: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rssOf reads a process's resident memory from /proc (0 where there is
// no /proc).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuOf reads a process's CPU time (user and system) from /proc.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command name in parentheses: state is field 3, utime 14,
	// stime 15, in clock ticks (100 a second on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// socketsOf counts a process's open sockets.
func socketsOf(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
