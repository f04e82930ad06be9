package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
)

// fixture is a real keepwatch server (in-process, TLS, SQLite) with one
// installation registered to one integrator, and an agent state directory
// enrolled in it.
type fixture struct {
	t            *testing.T
	data, addr   string
	interval     time.Duration
	app          *app.App
	integratorID int64
	slc          string
	dir          string
	state        *State
	stopDaemon   func() // stops the last daemon runDaemon started
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T, interval time.Duration) *fixture {
	t.Helper()
	f := &fixture{t: t, data: t.TempDir(), addr: "127.0.0.1:0", interval: interval, slc: "AGT-0001", dir: t.TempDir()}
	f.start()
	ctx := context.Background()
	until, _ := keepwatch.ParseDate("2099-01-01")
	if _, err := f.app.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: f.slc, Customer: "Harbor Logistics", Product: "XProtect Corporate 2016", Cameras: 8, CarePlusUntil: until}, secret.Hash("key")); err != nil {
		t.Fatal(err)
	}
	in, err := f.app.Store.CreateIntegrator(ctx, "Alice Security")
	if err != nil {
		t.Fatal(err)
	}
	f.integratorID = in.ID
	if err := f.app.Store.Register(ctx, in.ID, f.slc); err != nil {
		t.Fatal(err)
	}
	st, err := Enroll(ctx, EnrollOptions{Server: f.app.URL(), CAFile: f.app.CertFile, SLC: f.slc, Key: "key", Name: "RS-01", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(f.dir); err != nil {
		t.Fatal(err)
	}
	f.state = st
	return f
}

// start runs keepwatch on the fixture's data directory and address (the
// same address again after a stop, so the enrolled agent finds it).
func (f *fixture) start() {
	f.t.Helper()
	cfg := app.Config{DataDir: f.data, Addr: f.addr, SelfSigned: true, Interval: f.interval, Logger: quiet(),
		ReloadEvery: 100 * time.Millisecond, SweepEvery: 50 * time.Millisecond}
	var err error
	for tries := 0; ; tries++ {
		var a *app.App
		if a, err = app.New(context.Background(), cfg); err != nil {
			f.t.Fatal(err)
		}
		if err = a.Start(context.Background()); err == nil {
			f.app = a
			break
		}
		a.Shutdown(context.Background())
		if tries > 50 {
			f.t.Fatalf("start keepwatch on %s: %v", f.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	u := f.app.URL()
	host := u[len("https://"):]
	if _, port, err := net.SplitHostPort(host); err == nil {
		f.addr = "127.0.0.1:" + port
	}
	a := f.app
	f.t.Cleanup(func() { a.Shutdown(context.Background()) })
}

// runDaemon runs an agent daemon on the fixture's state directory until
// the test ends, and waits until it is ready.
func (f *fixture) runDaemon(cfg Config, p Probes) *Daemon {
	f.t.Helper()
	cfg.LocalAPI = "127.0.0.1:0"
	if err := cfg.normalize(); err != nil {
		f.t.Fatal(err)
	}
	d := &Daemon{Dir: f.dir, Config: cfg, Logger: quiet(), Probes: p, PauseRetry: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	f.stopDaemon = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("daemon: %v", err)
			}
		})
	}
	f.t.Cleanup(f.stopDaemon)
	select {
	case <-d.Ready():
	case err := <-done:
		f.t.Fatalf("daemon ended: %v", err)
	case <-time.After(30 * time.Second):
		f.t.Fatal("daemon not ready within 30s")
	}
	return d
}

// history counts what keepwatch recorded for kind: conditions raised and
// cleared, and events.
func (f *fixture) history(kind string) (raised, cleared, events int) {
	f.t.Helper()
	tl, err := f.app.Store.Timeline(context.Background(), f.integratorID, f.slc, 10000)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range tl {
		if e.Kind != kind {
			continue
		}
		switch e.Type {
		case "raised":
			raised++
		case "cleared":
			cleared++
		case "event":
			events++
		}
	}
	return raised, cleared, events
}

// active returns keepwatch's active conditions of the installation as
// kind:subject.
func (f *fixture) active() map[string]bool {
	f.t.Helper()
	v, err := f.app.Store.Installation(context.Background(), f.integratorID, f.slc, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, c := range v.Conditions {
		out[c.Kind+":"+c.Subject] = true
	}
	return out
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// incidents returns the integrator's incidents of a kind, oldest first.
func (f *fixture) incidents(kind string) []keepwatch.Incident {
	f.t.Helper()
	var out []keepwatch.Incident
	for _, st := range []keepwatch.IncidentState{keepwatch.IncidentOpen, keepwatch.IncidentAcknowledged, keepwatch.IncidentResolved} {
		list, err := f.app.Store.Incidents(context.Background(), f.integratorID, st, 5000)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, n := range list {
			if n.Kind == kind {
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
