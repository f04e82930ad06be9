// Package app builds a running keepwatch server from its configuration:
// store, monitor, ingest, API, live updates, metrics and the HTTP(S)
// listener, and shuts them down in order.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"keepwatch"
	"keepwatch/internal/api"
	"keepwatch/internal/auth"
	"keepwatch/internal/ingest"
	"keepwatch/internal/live"
	"keepwatch/internal/metrics"
	"keepwatch/internal/monitor"
	"keepwatch/internal/notify"
	"keepwatch/internal/outbound"
	"keepwatch/internal/sealed"
	"keepwatch/internal/store"
	"keepwatch/internal/tlsutil"
	"keepwatch/internal/web"
)

// MinInterval is the shortest heartbeat interval a server may dictate.
const MinInterval = time.Second

// Config is what `keepwatch serve` takes.
type Config struct {
	Addr    string
	DataDir string // SQLite data directory (default ./keepwatch-data)
	DB      string // postgres:// URL; overrides DataDir for the database
	// Interval is the heartbeat interval agents are told (default 60 s).
	Interval  time.Duration
	Tolerance float64 // fraction of the interval (default 0.1)
	// Flood holds each server's flood caps (zero: the defaults), for the
	// store (open incidents) and ingest (events a minute) alike.
	Flood keepwatch.FloodPolicy
	// EnrollmentKeyLifetime is how long an enrollment key enrolls after
	// it was issued (default keepwatch.EnrollmentKeyLifetime).
	EnrollmentKeyLifetime time.Duration

	TLSCert, TLSKey string
	SelfSigned      bool
	InsecureHTTP    bool

	// PublicURL is the dashboard's address as users reach it, for links in
	// notifications (default: the listen URL).
	PublicURL string
	// SMTP is the mail relay for e-mail notifications (zero: no e-mail).
	SMTP notify.SMTPConfig
	// Notify overrides notifier settings in tests (zero values: defaults).
	NotifyEvery, NotifyRetryBase time.Duration
	// AllowOutbound lists destinations webhooks may reach besides public
	// addresses: CIDRs or host names (serve --allow-outbound).
	AllowOutbound []string
	// SecretKey holds the keys that seal report keys and webhook secrets in
	// the database, current first (the contents of --secret-key-file or
	// KEEPWATCH_SECRET_KEY). Empty: SQLite generates <data>/secret.key;
	// PostgreSQL refuses to start, since every node needs the same key.
	SecretKey string
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// MetricsAddr, when set, serves /metrics on this address (plain HTTP,
	// meant for loopback or a monitoring network) instead of Addr.
	MetricsAddr string
	// UDPAddr is where heartbeat datagrams are answered: empty, the UDP
	// port of the same number as Addr's; "off", nowhere (agents then
	// send every heartbeat over HTTPS).
	UDPAddr string

	Now    func() time.Time
	Logger *slog.Logger
	// SweepEvery paces the monitor's sweeper and ReloadEvery the reading
	// of server changes made elsewhere (admin commands, other nodes), for
	// tests (zero: defaults 100 ms and 2 s).
	SweepEvery, ReloadEvery time.Duration
	// Node names this node in the monitor's leases (default: random).
	Node string
	// HistoryDays is how long state changes, events, resolved incidents
	// and notifications are kept, AuditDays the audit log (zero:
	// DefaultHistoryDays, DefaultAuditDays; at least MinKeepDays).
	HistoryDays, AuditDays int
	// HousekeepEvery paces the compaction of drive series and the
	// pruning of history (zero: a minute).
	HousekeepEvery time.Duration
}

// App is a configured server.
type App struct {
	cfg     Config
	log     *slog.Logger
	Store   *store.Store
	Monitor *monitor.Monitor
	Broker  *live.Broker
	Ingest  *ingest.Handler
	API     *api.Handler
	Web     *web.Handler
	Auth    *auth.Service
	Notify  *notify.Notifier
	Metrics *metrics.Registry

	handler     http.Handler
	server      *http.Server
	listener    net.Listener
	packets     net.PacketConn // heartbeat datagrams, if any
	keys        *sealed.Keyring
	datagrams   sync.WaitGroup
	tlsConfig   *tls.Config
	CertFile    string // the certificate agents should trust, if TLS
	Fingerprint string
	MetricsURL  string // where /metrics is served when MetricsAddr is set
	ready       atomic.Bool
	cluster     *live.Cluster // PostgreSQL: live updates across nodes
	metricsSrv  *http.Server  // on MetricsAddr, if set
	closing     chan struct{}
	// stop ends the background work Start began; running waits for it.
	stop         context.CancelFunc
	running      sync.WaitGroup
	serverCounts cachedCounts
	// publish hands committed changes to the live streams (and the other
	// nodes).
	publish func([]keepwatch.Change)
}

// New opens the store and wires the components; nothing listens yet.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 60 * time.Second
	}
	if cfg.HistoryDays == 0 {
		cfg.HistoryDays = DefaultHistoryDays
	}
	if cfg.AuditDays == 0 {
		cfg.AuditDays = DefaultAuditDays
	}
	if cfg.HistoryDays < MinKeepDays || cfg.AuditDays < MinKeepDays {
		return nil, fmt.Errorf("history and the audit log are kept at least %d days", MinKeepDays)
	}
	if cfg.Interval < MinInterval {
		return nil, fmt.Errorf("heartbeat interval must be at least %s", MinInterval)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "keepwatch-data"
	}
	dsn := cfg.DB
	if dsn == "" {
		dsn = cfg.DataDir
	}
	keys, err := Keyring(cfg)
	if err != nil {
		return nil, err
	}
	hooks, err := outbound.New(outbound.Config{Allow: cfg.AllowOutbound})
	if err != nil {
		return nil, err
	}
	st, err := store.OpenWith(ctx, dsn, store.Options{Keyring: keys})
	if err != nil {
		return nil, err
	}
	st.Now = cfg.Now
	a := &App{cfg: cfg, log: cfg.Logger, Store: st, Broker: live.NewBroker(), Metrics: metrics.New(), closing: make(chan struct{}), keys: keys}
	publish := func(changes []keepwatch.Change) {
		for _, c := range changes {
			a.Broker.Publish(c)
		}
	}
	if st.Dialect() == store.Postgres {
		// Several nodes may share this database: fan live updates out
		// through LISTEN/NOTIFY.
		a.cluster = live.NewCluster(a.Broker, cfg.DB, st, cfg.Logger)
		publish = a.cluster.Publish
	}
	a.publish = publish
	if cfg.HousekeepEvery == 0 {
		cfg.HousekeepEvery = defaultHousekeepEvery
		a.cfg.HousekeepEvery = cfg.HousekeepEvery
	}
	if cfg.ReloadEvery == 0 {
		cfg.ReloadEvery = 2 * time.Second
		a.cfg.ReloadEvery = cfg.ReloadEvery
	}
	a.Monitor = monitor.New(monitor.Config{
		Store: st, Interval: cfg.Interval, Tolerance: cfg.Tolerance, Now: cfg.Now, Logger: cfg.Logger,
		Publish: publish, SweepEvery: cfg.SweepEvery, Node: cfg.Node,
	})
	st.Flood = cfg.Flood
	a.Ingest = ingest.NewHandler(ingest.Handler{Store: st, Liveness: a.Monitor, Interval: cfg.Interval, KeyLifetime: cfg.EnrollmentKeyLifetime, Now: cfg.Now, Logger: cfg.Logger, Publish: publish, Flood: cfg.Flood}, a.Metrics)
	a.Auth = auth.New(auth.Config{Store: st, Now: cfg.Now, Logger: cfg.Logger,
		Mail: cfg.SMTP, PublicURL: a.publicURL, Sealer: keys, HTTP: hooks})
	a.Web = &web.Handler{Store: st, Auth: a.Auth, Now: cfg.Now, Logger: cfg.Logger, Publish: publish, KeyLifetime: cfg.EnrollmentKeyLifetime}
	a.API = &api.Handler{Store: st, Auth: a.Auth, Broker: a.Broker, KeyLifetime: cfg.EnrollmentKeyLifetime, Now: cfg.Now, Logger: cfg.Logger, Closing: a.closing, Publish: publish}
	a.Notify = notify.New(notify.Config{
		Store: st, Now: cfg.Now, Logger: cfg.Logger, Interval: cfg.Interval, PublicURL: cfg.PublicURL, SMTP: cfg.SMTP,
		Every: cfg.NotifyEvery, RetryBase: cfg.NotifyRetryBase, MaintenanceEnd: st.MaintenanceEnd, HTTP: hooks,
	})
	// Transitions are evaluated as they are committed, on the node that
	// wrote them.
	st.OnOutbox = a.Notify.Poke
	a.registerMetrics()

	mux := http.NewServeMux()
	a.Ingest.Register(mux)
	a.API.Register(mux)
	if err := a.Web.Register(mux); err != nil {
		st.Close()
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", a.readyz)
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", a.metricsHandler())
	}
	a.handler = securityHeaders(mux)
	return a, nil
}

func (a *App) registerMetrics() {
	a.Metrics.NewGaugeFunc("keepwatch_servers", "Recording servers, by state (the whole fleet, read from the database at most every 10 s).", "state", func() map[string]float64 {
		out := map[string]float64{}
		for _, s := range []keepwatch.ServerState{keepwatch.ServerPending, keepwatch.ServerOK, keepwatch.ServerUnavailable, keepwatch.ServerConsentWithdrawn} {
			out[string(s)] = 0
		}
		for k, v := range a.serverCounts.get(a.Store, a.cfg.Now()) {
			out[k] = float64(v)
		}
		return out
	})
	a.Metrics.NewGaugeFunc("keepwatch_monitor_watched", "Servers whose deadlines this node watches (the servers of its parts that report).", "", func() map[string]float64 {
		return map[string]float64{"": float64(a.Monitor.Stats().Watched)}
	})
	a.Metrics.NewGaugeFunc("keepwatch_monitor_parts", "Parts of the fleet this node holds a lease on (of 64).", "", func() map[string]float64 {
		return map[string]float64{"": float64(a.Monitor.Stats().Parts)}
	})
	a.Metrics.NewGaugeFunc("keepwatch_sweeper_lag_seconds", "How late the last sweep declared its most overdue server.", "", func() map[string]float64 {
		return map[string]float64{"": a.Monitor.Stats().Lag.Seconds()}
	})
	a.Metrics.NewGaugeFunc("keepwatch_notifications", "Notifications in the outbox, by state.", "state", func() map[string]float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		counts, err := a.Store.NotificationCounts(ctx)
		out := map[string]float64{}
		if err == nil {
			for k, v := range counts {
				out[k] = float64(v)
			}
		}
		return out
	})
	a.Metrics.NewGaugeFunc("keepwatch_live_subscribers", "Open live-update streams.", "", func() map[string]float64 {
		return map[string]float64{"": float64(a.Broker.Subscribers())}
	})
}

// cachedCounts keeps the fleet's server counts for scrapes: counting a
// million rows on every scrape of every node would cost more than it is
// worth.
type cachedCounts struct {
	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

func (c *cachedCounts) get(st *store.Store, now time.Time) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts != nil && now.Sub(c.at) < 10*time.Second {
		return c.counts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if counts, err := st.ServerCounts(ctx); err == nil {
		c.counts, c.at = counts, now
	}
	return c.counts
}

// Handler is the whole HTTP surface, for tests that serve it themselves.
func (a *App) Handler() http.Handler { return a.handler }

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !a.ready.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if err := a.Store.Ping(ctx); err != nil {
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// securityHeaders sets headers every response should carry.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// Start takes the monitor's leases, starts the background work and
// starts listening. It returns once the listener is bound; URL tells
// where.
func (a *App) Start(ctx context.Context) error {
	if err := a.Monitor.Load(ctx); err != nil {
		return err
	}
	rev, err := a.Store.Revision(ctx)
	if err != nil {
		return err
	}
	if err := a.setupTLS(); err != nil {
		return err
	}
	addr := a.cfg.Addr
	if addr == "" {
		addr = ":8443"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	a.listener = ln
	if a.cfg.UDPAddr != "off" {
		udpAddr := a.cfg.UDPAddr
		if udpAddr == "" {
			// The same port number as HTTPS (the one bound, if Addr asked for
			// any free port).
			host, _, _ := net.SplitHostPort(addr)
			udpAddr = net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
		}
		pc, err := net.ListenPacket("udp", udpAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("heartbeat datagrams (--udp-listen %s): %w", udpAddr, err)
		}
		a.packets = pc
	}
	if a.cfg.PublicURL == "" {
		a.Notify.SetPublicURL(a.URL())
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	a.goRun(func() { a.Ingest.Run(runCtx) })
	if a.tlsConfig != nil {
		a.goRun(func() { a.rotateTickets(runCtx) })
	}
	if a.packets != nil {
		a.datagrams.Add(1)
		a.goRun(func() {
			defer a.datagrams.Done()
			a.Ingest.ServeDatagrams(runCtx, a.packets)
		})
	}
	a.goRun(func() { a.Monitor.Run(runCtx) })
	a.goRun(func() { a.syncServers(runCtx, rev) })
	a.goRun(func() { a.warmCredentials(runCtx) })
	a.goRun(func() { a.keepDrives(runCtx) })
	a.goRun(func() { a.pruneHistory(runCtx) })
	if a.cluster != nil {
		a.goRun(func() { a.cluster.Run(runCtx) })
	}
	a.Notify.Start()
	if err := a.startMetrics(); err != nil {
		ln.Close()
		if a.packets != nil {
			a.packets.Close()
		}
		return err
	}
	a.goRun(func() { a.Auth.Run(runCtx) })
	a.server = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         a.tlsConfig,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.goRun(func() {
		var err error
		if a.tlsConfig != nil {
			// The listener's own configuration, whose session ticket keys
			// rotate daily (ServeTLS would take a copy).
			err = a.server.Serve(tls.NewListener(ln, a.tlsConfig))
		} else {
			err = a.server.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("server stopped", "err", err)
		}
	})
	a.ready.Store(true)
	a.log.Info("keepwatch listening", "url", a.URL(), "store", a.Store.Dialect(), "heartbeat_interval", a.cfg.Interval, "node", a.Monitor.Node(), "datagrams", a.DatagramAddr())
	return nil
}

// waitCtx waits for wg, or until ctx ends.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// DatagramAddr is where heartbeat datagrams are answered ("" for nowhere).
func (a *App) DatagramAddr() string {
	if a.packets == nil {
		return ""
	}
	return a.packets.LocalAddr().String()
}

// goRun runs fn in a goroutine Shutdown waits for.
func (a *App) goRun(fn func()) {
	a.running.Add(1)
	go func() {
		defer a.running.Done()
		fn()
	}()
}

// syncServers applies what changed in the stored servers since rev —
// enrollments, revocations, Care Plus dates, registrations, other nodes'
// state changes — to ingest's credentials and the monitor, until ctx ends.
func (a *App) syncServers(ctx context.Context, rev int64) {
	t := time.NewTicker(a.cfg.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, next, err := a.Store.ChangedServers(ctx, rev)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("reload servers", "err", err)
			}
			continue
		}
		a.Ingest.Apply(recs)
		for _, r := range recs {
			a.Monitor.Apply(r)
		}
		rev = max(rev, next)
	}
}

// warmCredentials loads every server's credentials into ingest, a few
// parts of the fleet per query, so that the first report of each server
// after a start costs no database read. Servers enrolled or changed
// meanwhile are not overwritten (syncServers and ingest keep them).
func (a *App) warmCredentials(ctx context.Context) {
	const step = 4
	n := 0
	for p := 0; p < keepwatch.Partitions; p += step {
		parts := make([]int, 0, step)
		for q := p; q < min(p+step, keepwatch.Partitions); q++ {
			parts = append(parts, q)
		}
		recs, err := a.Store.PartitionServers(ctx, parts)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("load credentials", "err", err)
			}
			return
		}
		a.Ingest.Warm(recs)
		n += len(recs)
	}
	a.log.Info("credentials loaded", "servers", n)
}

func (a *App) setupTLS() error {
	certFile, keyFile := a.cfg.TLSCert, a.cfg.TLSKey
	switch {
	case certFile != "" || keyFile != "":
		if certFile == "" || keyFile == "" {
			return errors.New("--tls-cert and --tls-key go together")
		}
	case a.cfg.SelfSigned:
		var err error
		if certFile, keyFile, err = tlsutil.SelfSigned(a.cfg.DataDir, a.certNames()...); err != nil {
			return fmt.Errorf("self-signed certificate: %w", err)
		}
	case a.cfg.InsecureHTTP:
		a.log.Warn("*** INSECURE: serving plain HTTP. Reports are still sealed end to end, but logins, tokens and enrollment keys cross the network in clear. Use this only for local experiments. ***")
		return nil
	default:
		return errors.New("choose --tls-cert/--tls-key, --self-signed, or (local experiments only) --insecure-http")
	}
	cfg, fp, err := tlsutil.ServerConfig(certFile, keyFile)
	if err != nil {
		return err
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.SetSessionTicketKeys(ticketKeys(a.keys, time.Now()))
	a.tlsConfig, a.CertFile, a.Fingerprint = cfg, certFile, fp
	if abs, err := filepath.Abs(certFile); err == nil {
		a.CertFile = abs
	}
	a.logCertificate(fp)
	return nil
}

// URL is the base URL the server listens on.
func (a *App) URL() string {
	if a.listener == nil {
		return ""
	}
	scheme := "https"
	if a.tlsConfig == nil {
		scheme = "http"
	}
	addr := a.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

// Shutdown stops accepting connections and waits for the requests in
// flight (reports being stored are finished, not cut off), then stops the
// background work — the monitor hands its leases back — and closes the
// store, all within ctx's deadline.
func (a *App) Shutdown(ctx context.Context) error {
	select {
	case <-a.closing:
		return nil // already shut down
	default:
	}
	close(a.closing)
	var errs []error
	if a.server != nil {
		errs = append(errs, a.server.Shutdown(ctx))
	}
	if a.packets != nil {
		// Datagrams in flight are answered once committed.
		a.packets.Close()
		waitCtx(ctx, &a.datagrams)
	}
	if a.metricsSrv != nil {
		errs = append(errs, a.metricsSrv.Shutdown(ctx))
	}
	a.Notify.Stop()
	if a.stop != nil {
		a.stop()
	}
	done := make(chan struct{})
	go func() {
		a.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("shutdown: background work still running: %w", ctx.Err()))
	}
	errs = append(errs, a.Store.Close())
	return errors.Join(errs...)
}
