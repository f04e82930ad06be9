package app_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/testutil"
)

// TestPostgresRestartUnderLoad stops the database under a stream of
// reports: reports are refused as unavailable (never acknowledged and
// lost) — heartbeats too, since a heartbeat's sequence number is spent in
// the database before its answer — and once the database is back
// keepwatch resumes by itself and every report the agents retried is in.
func TestPostgresRestartUnderLoad(t *testing.T) {
	url, ctl := testutil.PrivatePostgres(t)
	a := start(t, app.Config{DataDir: t.TempDir(), DB: url, SecretKey: testutil.SecretKey, InsecureHTTP: true, Interval: time.Minute})
	defer a.Shutdown(ctx)
	agents := enrolled(t, a, 3)

	// Each agent sends numbered events, keeping any report that was not
	// acknowledged to send again (what the agent's spool does).
	var mu sync.Mutex
	acked := map[string]bool{}
	unavailable, heartbeatsDown, heartbeatsRefused := 0, 0, 0
	var isDown atomic.Bool
	stop := make(chan struct{})
	down := make(chan struct{})
	var wg sync.WaitGroup
	for i, ag := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pending []string
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				subject := fmt.Sprintf("agent%d-%d", i, n)
				pending = append(pending, subject)
				for len(pending) > 0 {
					p, _ := agent.StatusPayload(nil, []string{"archive_move_failed:" + pending[0]}, time.Now())
					if _, err := ag.Send(ctx, p); err != nil {
						if strings.Contains(err.Error(), "unavailable") {
							mu.Lock()
							unavailable++
							mu.Unlock()
						}
						break
					}
					mu.Lock()
					acked[pending[0]] = true
					mu.Unlock()
					pending = pending[1:]
				}
				select {
				case <-down:
					wasDown := isDown.Load()
					_, err := ag.Send(ctx, nil)
					mu.Lock()
					switch {
					case err == nil && wasDown && isDown.Load():
						heartbeatsDown++
					case err != nil && strings.Contains(err.Error(), "unavailable"):
						// The heartbeat's number is spent either way: a
						// refusal can follow a commit the database made
						// as the connection dropped, and a number is never
						// reused for other content (a replay of it would
						// mean "delivered").
						heartbeatsRefused++
					}
					mu.Unlock()
				default:
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	ctl(false)
	isDown.Store(true)
	close(down)
	time.Sleep(2 * time.Second)
	isDown.Store(false)
	ctl(true)
	// keepwatch finds its database again without a restart.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		after := len(acked)
		mu.Unlock()
		if after > before+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report accepted after the database came back (%d acknowledged)", after)
		}
	}
	close(stop)
	wg.Wait()
	if unavailable == 0 || heartbeatsRefused == 0 || heartbeatsDown != 0 {
		t.Fatalf("while the database was down: %d reports and %d heartbeats refused as unavailable, %d heartbeats acknowledged (want none)",
			unavailable, heartbeatsRefused, heartbeatsDown)
	}
	// Every acknowledged report is stored.
	stored, err := a.Store.EventSubjects(ctx, "archive_move_failed")
	if err != nil {
		t.Fatal(err)
	}
	for s := range acked {
		if !stored[s] {
			t.Fatalf("acknowledged report %s lost across the database restart", s)
		}
	}
	t.Logf("%d reports acknowledged, %d refused as unavailable while the database was down, and %d heartbeats", len(acked), unavailable, heartbeatsRefused)
}
