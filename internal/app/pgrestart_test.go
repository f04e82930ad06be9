package app_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/testutil"
)

// privatePostgres runs a PostgreSQL cluster of the test's own (so that
// stopping it disturbs no other test) and returns its URL and a function
// that stops (false) or starts (true) it.
func privatePostgres(t *testing.T) (string, func(up bool)) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if testutil.RequireAll() {
			t.Fatal("PostgreSQL server binaries are required (KEEPWATCH_REQUIRE_ALL=1)")
		}
		t.Skip("no PostgreSQL server binaries")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "kwpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	asPostgres := func(args ...string) *exec.Cmd {
		if os.Geteuid() == 0 { // initdb refuses root
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
		return exec.Command(args[0], args[1:]...)
	}
	if os.Geteuid() == 0 {
		exec.Command("chown", "postgres", dir).Run()
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctl := func(up bool) {
		args := []string{filepath.Join(bin, "pg_ctl"), "-D", data, "-w", "-m", "fast", "-l", filepath.Join(dir, "log")}
		if up {
			args = append(args, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir), "start")
		} else {
			args = append(args, "stop")
		}
		if out, err := asPostgres(args...).CombinedOutput(); err != nil {
			t.Fatalf("pg_ctl: %v\n%s", err, out)
		}
	}
	ctl(true)
	t.Cleanup(func() { ctl(false) })
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), ctl
}

// TestPostgresRestartUnderLoad stops the database under a stream of
// reports: durable reports are refused as unavailable (never acknowledged
// and lost), heartbeats are still answered, and once the database is back
// keepwatch resumes by itself and every report the agents retried is in.
func TestPostgresRestartUnderLoad(t *testing.T) {
	url, ctl := privatePostgres(t)
	a := start(t, app.Config{DataDir: t.TempDir(), DB: url, SecretKey: testutil.SecretKey, InsecureHTTP: true, Interval: time.Minute})
	defer a.Shutdown(ctx)
	agents := enrolled(t, a, 3)

	// Each agent sends numbered events, keeping any report that was not
	// acknowledged to send again (what the agent's spool does).
	var mu sync.Mutex
	acked := map[string]bool{}
	unavailable, heartbeatsDown := 0, 0
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
					if _, err := ag.Send(ctx, nil); err == nil {
						mu.Lock()
						heartbeatsDown++
						mu.Unlock()
					}
				default:
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	ctl(false)
	close(down)
	time.Sleep(2 * time.Second)
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
	if unavailable == 0 || heartbeatsDown == 0 {
		t.Fatalf("while the database was down: %d reports refused as unavailable, %d heartbeats answered", unavailable, heartbeatsDown)
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
	t.Logf("%d reports acknowledged, %d refused as unavailable while the database was down, %d heartbeats answered meanwhile", len(acked), unavailable, heartbeatsDown)
}
