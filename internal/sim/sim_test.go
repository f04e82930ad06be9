package sim_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
	"keepwatch/internal/sim"
	"keepwatch/internal/testutil"
)

var ctx = context.Background()

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// keepwatchServer starts keepwatch in-process: SQLite, self-signed TLS on
// 127.0.0.1.
func keepwatchServer(t *testing.T, interval time.Duration) *app.App {
	t.Helper()
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), SelfSigned: true, Interval: interval, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		a.Shutdown(sctx)
	})
	return a
}

// run is one `keepwatch simulate` run, as the command wires it: load the
// cache, provision, enroll what is missing, run for d.
type run struct {
	fleet *sim.Fleet
	prov  sim.Provisioned
	stats sim.Stats
}

func simulate(t *testing.T, a *app.App, dir string, plan sim.Plan, d time.Duration, tweak func(*sim.Config)) run {
	t.Helper()
	c, err := sim.LoadCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(a.URL(), plan.Integrator); err != nil {
		t.Fatal(err)
	}
	if plan.Today.IsZero() {
		plan.Today = keepwatch.DateOf(time.Now())
	}
	prov, err := sim.Provision(ctx, a.Store, c, plan)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.Config{
		URL: a.URL(), CAFile: a.CertFile, Installations: c.Select(plan.Installations, plan.Servers),
		Cache: c, StateDir: dir, Store: a.Store, Seed: 42, Logger: quiet(),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	f, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := f.Run(rctx); err != nil {
		t.Fatal(err)
	}
	return run{f, prov, f.Stats()}
}

func TestRerunReusesEnrolledServers(t *testing.T) {
	a := keepwatchServer(t, time.Second)
	dir := t.TempDir()
	plan := sim.Plan{Integrator: "Acme Security", Installations: 3, Servers: 2}

	first := simulate(t, a, dir, plan, 1500*time.Millisecond, nil)
	if first.prov.Token == "" || first.prov.Created != 3 {
		t.Fatalf("first run: %+v", first.prov)
	}
	if n := a.Ingest.Accepted("enroll"); n != 6 {
		t.Fatalf("%d enrollments, want 6", n)
	}
	if first.stats.Accepted == 0 || first.stats.Unexpected() != 0 {
		t.Fatalf("first run: %+v", first.stats)
	}
	if fi, err := os.Stat(filepath.Join(dir, sim.CacheFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", fi, err)
	}

	second := simulate(t, a, dir, plan, 1500*time.Millisecond, nil)
	if second.prov.Token != "" || second.prov.Created+second.prov.Rotated+second.prov.Stale != 0 {
		t.Fatalf("rerun provisioned again: %+v", second.prov)
	}
	if n := a.Ingest.Accepted("enroll"); n != 6 {
		t.Fatalf("rerun enrolled again: %d enrollments", n)
	}
	if second.stats.Accepted == 0 || len(second.stats.Refused) != 0 {
		t.Fatalf("rerun with cached credentials: %+v", second.stats)
	}

	// A bigger fleet enrolls only the servers it adds.
	plan.Servers = 3
	third := simulate(t, a, dir, plan, time.Second, nil)
	if n := a.Ingest.Accepted("enroll"); n != 9 {
		t.Fatalf("%d enrollments after growing to 3×3, want 9", n)
	}
	if third.prov.Rotated != 0 || third.stats.Unexpected() != 0 {
		t.Fatalf("growing: %+v %+v", third.prov, third.stats)
	}
	in, err := a.Store.IntegratorByName(ctx, plan.Integrator)
	if err != nil {
		t.Fatal(err)
	}
	views, err := a.Store.Installations(ctx, in.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 3 {
		t.Fatalf("%d installations", len(views))
	}
	for _, v := range views {
		if v.ServersTotal != 3 || v.LastReport == nil {
			t.Fatalf("%s: %d servers, last report %v", v.SLC, v.ServersTotal, v.LastReport)
		}
	}
}

func TestCacheBelongsToOneKeepwatchAndIntegrator(t *testing.T) {
	dir := t.TempDir()
	c, _ := sim.LoadCache(dir)
	if err := c.Bind("https://a.example:8443/", "Acme"); err != nil {
		t.Fatal(err)
	}
	sim.Extend(c, sim.Plan{Integrator: "Acme", Installations: 1, Servers: 1})
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	c, err := sim.LoadCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bind("https://a.example:8443", "Acme"); err != nil {
		t.Fatalf("same keepwatch refused: %v", err)
	}
	if err := c.Bind("https://b.example:8443", "Acme"); err == nil || !strings.Contains(err.Error(), "--state") {
		t.Fatalf("another keepwatch: %v", err)
	}
	if err := c.Bind("https://a.example:8443", "Other"); err == nil {
		t.Fatal("another integrator accepted")
	}
}

// TestFaultsShowInTheOverview runs a small fleet with frequent faults and
// one site whose link goes down for good, then compares the fleet's record
// with the integrator's overview.
func TestFaultsShowInTheOverview(t *testing.T) {
	a := keepwatchServer(t, time.Second)
	plan := sim.Plan{Integrator: "Acme Security", Installations: 20, Servers: 3}
	r := simulate(t, a, t.TempDir(), plan, 12*time.Second, func(c *sim.Config) {
		c.FaultRate = 0.05
		c.Installations[0].Scenario = sim.Scenario{Offline: true, Steady: true}
	})
	checkOverview(t, a, r, plan, 3)
}

// checkOverview compares the fleet's record with what keepwatch shows and
// wants at least minUnavailable servers shown unavailable.
func checkOverview(t *testing.T, a *app.App, r run, plan sim.Plan, minUnavailable int) {
	t.Helper()
	now := time.Now()
	views, err := a.Store.Installations(ctx, r.prov.IntegratorID, now)
	if err != nil {
		t.Fatal(err)
	}
	check := r.fleet.Check(views, now)
	t.Logf("%s", r.stats.Line(0))
	t.Logf("compared %d servers: %d conditions, %d events, %d unavailable", check.Servers, check.Conditions, check.Events, check.Unavailable)
	for i, p := range check.Problems {
		if i == 30 {
			t.Errorf("… %d more", len(check.Problems)-i)
			break
		}
		t.Error(p)
	}
	if n := r.stats.Unexpected(); n != 0 {
		t.Errorf("%d reports refused unexpectedly: %+v", n, r.stats.Refused)
	}
	if check.Servers < plan.Installations*plan.Servers*9/10 || check.Conditions == 0 || check.Events == 0 || check.Unavailable < minUnavailable {
		t.Errorf("the comparison is too thin to mean anything: %+v", check)
	}
	shown := keepwatch.CountStatuses(views)
	if shown[keepwatch.StatusError] == 0 || shown[keepwatch.StatusUnavailable]+shown[keepwatch.StatusSiteUnreachable] == 0 {
		t.Errorf("statuses shown: %v", shown)
	}
	// The REST API and the dashboard say the same of every installation.
	if r.prov.Token != "" {
		const email, password = "viewer@fleet.example", "fleet viewer password"
		if _, err := a.Store.CreateUser(ctx, r.prov.IntegratorID, email, secret.HashPassword(password), keepwatch.RoleViewer); err != nil {
			t.Fatal(err)
		}
		if n := testutil.StatusesAgree(t, a.URL(), r.prov.Token, email, password); n != len(views) {
			t.Errorf("compared %d of %d installations", n, len(views))
		}
	}
}
