package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/demo"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
	"keepwatch/internal/tlsutil"
)

var ctx = context.Background()

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func start(t *testing.T, cfg app.Config) *app.App {
	t.Helper()
	cfg.Addr, cfg.Logger = "127.0.0.1:0", quiet()
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSelfSignedCertificateIsCreatedOnceAndReused(t *testing.T) {
	data := t.TempDir()
	a := start(t, app.Config{DataDir: data, SelfSigned: true})
	fp1, url := a.Fingerprint, a.URL()
	if !strings.HasPrefix(url, "https://") || len(fp1) != 95 {
		t.Fatalf("url %s fingerprint %q", url, fp1)
	}
	// The certificate verifies for the loopback address agents use.
	c, err := agent.NewClient(url, a.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HTTP.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < 0x0303 {
		t.Fatalf("TLS %+v", resp.TLS)
	}
	a.Shutdown(ctx)
	b := start(t, app.Config{DataDir: data, SelfSigned: true})
	defer b.Shutdown(ctx)
	if b.Fingerprint != fp1 {
		t.Fatalf("certificate was recreated: %s → %s", fp1, b.Fingerprint)
	}
}

func TestServeRefusesWithoutATransportChoice(t *testing.T) {
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(ctx)
	if err := a.Start(ctx); err == nil || !strings.Contains(err.Error(), "--self-signed") {
		t.Fatalf("start without TLS choice: %v", err)
	}
	if _, err := app.New(ctx, app.Config{DataDir: t.TempDir(), Interval: 500 * time.Millisecond}); err == nil {
		t.Fatal("accepted a heartbeat interval under 1 s")
	}
}

func enrolled(t *testing.T, a *app.App, n int) []*agent.Sender {
	t.Helper()
	until, _ := keepwatch.ParseDate("2099-01-01")
	if _, err := a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: "OPS-0001", Customer: "c", Product: "p", CarePlusUntil: until}, secret.Hash("key")); err != nil {
		t.Fatal(err)
	}
	var out []*agent.Sender
	for i := 0; i < n; i++ {
		st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: a.URL(), CAFile: a.CertFile, SLC: "OPS-0001", Key: "key", Name: "RS-" + string(rune('A'+i)), Consent: true})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := agent.NewClient(st.Server, a.CertFile)
		out = append(out, &agent.Sender{State: st, Client: c})
	}
	return out
}

func TestShutdownDrainsAndPersistsHeartbeats(t *testing.T) {
	data := t.TempDir()
	a := start(t, app.Config{DataDir: data, SelfSigned: true})
	agents := enrolled(t, a, 4)
	var wg sync.WaitGroup
	acked := make([]uint64, len(agents))
	stop := make(chan struct{})
	for i, s := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := s.Send(ctx, nil)
				if err != nil {
					return // the server went away: refused, never half-accepted
				}
				acked[i] = resp.Seq
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	// Every acknowledged heartbeat was committed before its answer.
	s, err := store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, ag := range agents {
		r, err := s.ServerRecord(ctx, ag.State.ServerID)
		if err != nil {
			t.Fatal(err)
		}
		if acked[i] == 0 || r.LastSeq < acked[i] {
			t.Fatalf("agent %d: acknowledged #%d, stored #%d", i, acked[i], r.LastSeq)
		}
	}
}

func TestOperationsEndpoints(t *testing.T) {
	a := start(t, app.Config{DataDir: t.TempDir(), InsecureHTTP: true})
	defer a.Shutdown(ctx)
	ag := enrolled(t, a, 1)[0]
	if _, err := ag.Send(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ag.State.Seq-- // replay the last sequence number
	if _, err := ag.Send(ctx, nil); err == nil {
		t.Fatal("replay accepted")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(a.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	_, m := get("/metrics")
	for _, want := range []string{
		`keepwatch_reports_accepted_total{type="heartbeat"} 1`,
		`keepwatch_reports_accepted_total{type="enroll"} 1`,
		`keepwatch_reports_refused_total{code="replayed"} 1`,
		`keepwatch_servers{state="ok"} 1`,
		`keepwatch_sweeper_lag_seconds 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	a.Store.Close()
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("readyz with the database closed: %d", code)
	}
}

func TestDemoShowsEveryKindOfState(t *testing.T) {
	a := start(t, app.Config{DataDir: t.TempDir(), InsecureHTTP: true, Interval: time.Second})
	defer a.Shutdown(ctx)
	creds, sites, err := demo.Setup(ctx, a.Store, keepwatch.DateOf(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Store.PrincipalByTokenHash(ctx, secret.Hash(creds.Token))
	if err != nil {
		t.Fatal(err)
	}
	fleet := demo.NewFleet(a.URL(), "", a.Store, quiet(), sites)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { fleet.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		views, err := a.Store.Installations(ctx, p.IntegratorID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		counts := keepwatch.CountStatuses(views)
		if counts[keepwatch.StatusError] >= 5 && counts[keepwatch.StatusWarning] >= 1 && counts[keepwatch.StatusSiteUnreachable] >= 1 && counts[keepwatch.StatusMaintenance] == 1 &&
			counts[keepwatch.StatusPaused] == 1 && counts[keepwatch.StatusNeverReported] == 1 && counts[keepwatch.StatusConsentWithdrawn] == 1 &&
			counts[keepwatch.StatusOK] >= 10 {
			// The REST API and the dashboard say the same of every one.
			if n := testutil.StatusesAgree(t, a.URL(), creds.Token, creds.Email, creds.Password); n != len(views) {
				t.Fatalf("compared %d of %d installations", n, len(views))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo statuses %v", counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var _ = tlsutil.Fingerprint

// A restarted node loads every server's credentials in the background, so
// the first report of each costs no database read.
func TestRestartLoadsEveryServersCredentials(t *testing.T) {
	data := t.TempDir()
	a := start(t, app.Config{DataDir: data, SelfSigned: true})
	agents := enrolled(t, a, 3)
	a.Shutdown(ctx)
	b := start(t, app.Config{DataDir: data, SelfSigned: true})
	defer b.Shutdown(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for b.Ingest.Cached() < len(agents) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d servers' credentials loaded", b.Ingest.Cached(), len(agents))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The loaded credentials open the agents' reports.
	for _, s := range agents {
		s.Client, _ = agent.NewClient(b.URL(), b.CertFile)
		s.State.Server = b.URL()
		if _, err := s.Send(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
}
