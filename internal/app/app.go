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

	TLSCert, TLSKey string
	SelfSigned      bool
	InsecureHTTP    bool

	// PublicURL is the dashboard's address as users reach it, for links in
	// notifications (default: the listen URL).
	PublicURL string
	// SMTP is the mail relay for e-mail notifications (zero: no e-mail).
	SMTP notify.SMTPConfig
	// SecretsKey seals TOTP seeds and identity providers' client secrets
	// (32 bytes). Nil: KEEPWATCH_SECRETS_KEY (base64), else
	// <DataDir>/secrets.key, made on first start. Nodes sharing a database
	// need the same key.
	SecretsKey []byte
	// OutboundHTTP reaches integrators' identity providers (nil: public
	// addresses only).
	OutboundHTTP *http.Client
	// Notify overrides notifier settings in tests (zero values: defaults).
	NotifyEvery, NotifyRetryBase time.Duration

	Now    func() time.Time
	Logger *slog.Logger
	// Monitor loop pacing, for tests (zero: monitor defaults).
	FlushEvery, SweepEvery, ReloadEvery time.Duration
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
	tlsConfig   *tls.Config
	CertFile    string // the certificate agents should trust, if TLS
	Fingerprint string
	ready       atomic.Bool
	cluster     *live.Cluster // PostgreSQL: live updates across nodes
	closing     chan struct{}
}

// New opens the store and wires the components; nothing listens yet.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 60 * time.Second
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
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	st.Now = cfg.Now
	a := &App{cfg: cfg, log: cfg.Logger, Store: st, Broker: live.NewBroker(), Metrics: metrics.New(), closing: make(chan struct{})}
	publish := a.Broker.Publish
	var grace time.Duration
	if st.Dialect() == store.Postgres {
		// Several nodes may share this database: fan live updates out
		// through LISTEN/NOTIFY, flush liveness often, and give other
		// nodes' flushes time to land before declaring a server silent.
		a.cluster = live.NewCluster(a.Broker, cfg.DB, st, cfg.Logger)
		publish = a.cluster.Publish
		if cfg.FlushEvery == 0 {
			cfg.FlushEvery = 250 * time.Millisecond
		}
		grace = 3 * cfg.FlushEvery
	}
	a.Monitor = monitor.New(monitor.Config{
		Store: st, Interval: cfg.Interval, Tolerance: cfg.Tolerance, Now: cfg.Now, Logger: cfg.Logger,
		OnChange: publish, FlushEvery: cfg.FlushEvery, SweepEvery: cfg.SweepEvery, ReloadEvery: cfg.ReloadEvery, Grace: grace,
	})
	a.Ingest = ingest.NewHandler(ingest.Handler{Store: st, Monitor: a.Monitor, Now: cfg.Now, Logger: cfg.Logger, OnChange: publish}, a.Metrics)
	sealer, err := newSealer(ctx, cfg, st, cfg.Logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	a.Auth = auth.New(auth.Config{Store: st, Now: cfg.Now, Logger: cfg.Logger,
		Mail: cfg.SMTP, PublicURL: a.publicURL, Sealer: sealer, HTTP: cfg.OutboundHTTP})
	a.Web = &web.Handler{Store: st, Auth: a.Auth, Now: cfg.Now, Logger: cfg.Logger}
	a.API = &api.Handler{Store: st, Auth: a.Auth, Broker: a.Broker, Now: cfg.Now, Logger: cfg.Logger, Closing: a.closing}
	a.Notify = notify.New(notify.Config{
		Store: st, Now: cfg.Now, Logger: cfg.Logger, Interval: cfg.Interval, PublicURL: cfg.PublicURL, SMTP: cfg.SMTP,
		Every: cfg.NotifyEvery, RetryBase: cfg.NotifyRetryBase, InMaintenance: st.InMaintenance,
	})
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
	mux.Handle("GET /metrics", a.Metrics.Handler())
	a.handler = securityHeaders(mux)
	return a, nil
}

func (a *App) registerMetrics() {
	a.Metrics.NewGaugeFunc("keepwatch_servers", "Recording servers known to this node, by state.", "state", func() map[string]float64 {
		st := a.Monitor.Stats()
		out := map[string]float64{}
		for _, s := range []keepwatch.ServerState{keepwatch.ServerPending, keepwatch.ServerOK, keepwatch.ServerUnavailable, keepwatch.ServerConsentWithdrawn} {
			out[string(s)] = float64(st.States[s])
		}
		return out
	})
	a.Metrics.NewGaugeFunc("keepwatch_sweeper_lag_seconds", "How late the last sweep declared its most overdue server.", "", func() map[string]float64 {
		return map[string]float64{"": a.Monitor.Stats().Lag.Seconds()}
	})
	a.Metrics.NewGaugeFunc("keepwatch_liveness_unflushed", "Servers whose last heartbeat is not yet persisted.", "", func() map[string]float64 {
		return map[string]float64{"": float64(a.Monitor.Stats().Dirty)}
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

// Start loads the monitor and starts listening. It returns once the
// listener is bound; URL tells where.
func (a *App) Start(ctx context.Context) error {
	if err := a.Monitor.Start(ctx); err != nil {
		return err
	}
	if a.cluster != nil {
		a.cluster.Start()
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
	if a.cfg.PublicURL == "" {
		a.Notify.SetPublicURL(a.URL())
	}
	a.Notify.Start()
	a.Auth.Start()
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
	go func() {
		var err error
		if a.tlsConfig != nil {
			err = a.server.ServeTLS(ln, "", "")
		} else {
			err = a.server.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("server stopped", "err", err)
		}
	}()
	a.ready.Store(true)
	a.log.Info("keepwatch listening", "url", a.URL(), "store", a.Store.Dialect(), "heartbeat_interval", a.cfg.Interval)
	return nil
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
		if certFile, keyFile, err = tlsutil.SelfSigned(a.cfg.DataDir); err != nil {
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
	a.tlsConfig, a.CertFile, a.Fingerprint = cfg, certFile, fp
	if abs, err := filepath.Abs(certFile); err == nil {
		a.CertFile = abs
	}
	a.log.Info("TLS certificate", "file", a.CertFile, "sha256", fp)
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

// Shutdown stops accepting connections, waits for in-flight requests
// (reports being stored are finished, not cut off), persists unflushed
// liveness and closes the store.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	select {
	case <-a.closing:
		return nil // already shut down
	default:
	}
	close(a.closing)
	if a.server != nil {
		errs = append(errs, a.server.Shutdown(ctx))
	}
	a.Notify.Stop()
	a.Auth.Stop()
	if a.cluster != nil {
		a.cluster.Stop()
	}
	errs = append(errs, a.Monitor.Stop(ctx), a.Store.Close())
	return errors.Join(errs...)
}
