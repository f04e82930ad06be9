package app

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// metricsHandler serves /metrics, behind the bearer token if one is
// configured: the figures tell how big the fleet is and how it is doing,
// which is not for everyone who can reach the port.
func (a *App) metricsHandler() http.Handler {
	h := a.Metrics.Handler()
	token := a.cfg.MetricsToken
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keepwatch metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// startMetrics listens on MetricsAddr, if set.
func (a *App) startMetrics() error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	a.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	a.MetricsURL = "http://" + ln.Addr().String() + "/metrics"
	a.goRun(func() {
		if err := a.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics listener stopped", "err", err)
		}
	})
	a.log.Info("metrics listening", "url", a.MetricsURL)
	return nil
}
