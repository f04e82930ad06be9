package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// TestSoak runs a simulated fleet at a high rate against an in-process
// keepwatch for KEEPWATCH_SOAK (e.g. 60s; make soak: 10m) while the
// overview is read through the API and the dashboard, and checks that
// memory stays flat, no goroutine is left behind, and nothing the fleet
// did not inject is refused. It reports the p99 latency of heartbeats.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("KEEPWATCH_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set KEEPWATCH_SOAK=60s (make test) or 10m (make soak)")
	}
	goroutinesBefore := runtime.NumGoroutine()
	a, dbFlag := simServer(t, store.SQLite, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The fleet: 2,000 servers at a 1 s interval, faults coming and going.
	var simCode int
	var simErr string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		simCode, _, simErr = simulateRun(append(dbFlag, "--server", a.URL(), "--ca", a.CertFile, "--state", t.TempDir(),
			"--installations", "400", "--servers", "5", "--faults", "0.002", "--duration", d.String(), "--seed", "3")...)
	}()

	// Readers: the API overview and the dashboard, as integrators would.
	in, err := a.Store.IntegratorByName(ctx, "Simulated Integrator")
	for i := 0; err != nil && i < 100; i++ {
		time.Sleep(100 * time.Millisecond)
		in, err = a.Store.IntegratorByName(ctx, "Simulated Integrator")
	}
	if err != nil {
		t.Fatalf("the simulator's integrator: %v", err)
	}
	token := secret.New("kw_")
	if _, err := a.Store.CreateToken(ctx, in.ID, "soak", keepwatch.RoleViewer, secret.Hash(token)); err != nil {
		t.Fatal(err)
	}
	api := newAPIClient(t, a.URL(), a.CertFile, token)
	var reads, readErrors int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, path := range []string{"/api/v1/installations?filter=all", "/api/v1/incidents"} {
				req, _ := http.NewRequestWithContext(ctx, "GET", a.URL()+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := api.http.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						readErrors++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					readErrors++
				}
				reads++
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	// A probe server measures heartbeat latency end to end.
	key := secret.New("kwe_")
	until := time.Now().AddDate(1, 0, 0)
	if _, err := a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: "SOAK-PROBE", Customer: "probe", Product: "p",
		CarePlusUntil: keepwatch.DateOf(until)}, secret.Hash(key)); err != nil {
		t.Fatal(err)
	}
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: a.URL(), CAFile: a.CertFile, SLC: "SOAK-PROBE", Key: key, Name: "probe", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := agent.NewClient(a.URL(), a.CertFile)
	probe := &agent.Sender{State: st, Client: c}
	var lat []float64
	var heap []uint64
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n := 0; time.Since(start) < d; n++ {
		<-tick.C
		t0 := time.Now()
		if _, err := probe.Send(ctx, nil); err != nil {
			t.Errorf("probe heartbeat: %v", err)
			break
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		if n%100 == 0 { // every 5 s
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap = append(heap, ms.HeapAlloc)
		}
	}
	cancel()
	wg.Wait()
	if simCode != 0 {
		t.Fatalf("the simulator exited %d:\n%s", simCode, tail(simErr, 20))
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	// Memory: after the first quarter (enrollment, caches warming), the
	// heap stays within 25 % (plus 16 MiB of slack) of its level then.
	ref := heap[len(heap)/4]
	peak := slices.Max(heap[len(heap)/4:])
	t.Logf("soak %s: heartbeat p50 %.1f ms, p99 %.1f ms; heap %d → peak %d MiB over %d samples; %d reads (%d errors)",
		d, lat[len(lat)/2], p99, ref>>20, peak>>20, len(heap), reads, readErrors)
	if float64(peak) > float64(ref)*1.25+16<<20 {
		t.Errorf("heap grew from %d to %d MiB", ref>>20, peak>>20)
	}
	if readErrors > 0 {
		t.Errorf("%d failed reads of the overview", readErrors)
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	a.Shutdown(shutdownCtx)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left after shutdown (%d before):\n%s", n, goroutinesBefore, buf[:runtime.Stack(buf, true)])
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var _ = fmt.Sprint
