package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch/internal/app"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// syncBuffer is a buffer several goroutines may write (the summary, the
// logger and the command itself all write to stderr).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// simulateRun runs `keepwatch simulate` in-process and returns its exit
// code, stdout and stderr.
func simulateRun(args ...string) (int, string, string) {
	var out, errb syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code := run(context.Background(), e, append([]string{"simulate"}, args...))
	return code, out.String(), errb.String()
}

// simServer starts keepwatch in-process with self-signed TLS on the
// dialect's database and returns it with the flag giving the simulator
// access to that database.
func simServer(t *testing.T, dialect string, interval time.Duration) (*app.App, []string) {
	t.Helper()
	cfg := app.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", SelfSigned: true, Interval: interval, Logger: testLogger(t)}
	dbFlag := []string{"--data", cfg.DataDir}
	if dialect == store.Postgres {
		cfg.DB, cfg.SecretKey = testutil.DSN(t, dialect), testutil.SecretKey
		keyFile := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(keyFile, []byte(testutil.SecretKey), 0o600); err != nil {
			t.Fatal(err)
		}
		dbFlag = []string{"--db", cfg.DB, "--secret-key-file", keyFile}
	}
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a, dbFlag
}

// checkLine is what a run with database access ends with.
var checkLine = regexp.MustCompile(`keepwatch shows (\d+) servers' (\d+) active conditions, (\d+) events and (\d+) unavailable servers`)

func parseCheck(t *testing.T, stderr string) (servers, conds, events, unavailable int) {
	t.Helper()
	m := checkLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no comparison with keepwatch's overview in:\n%s", stderr)
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return n[0], n[1], n[2], n[3]
}

func TestSimulateCachesCredentialsAndComparesTheOverview(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			a, dbFlag := simServer(t, dialect, time.Second)
			state := t.TempDir()
			base := []string{"--server", a.URL(), "--ca", a.CertFile, "--state", state, "--integrator", "Acme Security", "--seed", "7"}
			args := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

			code, out, errOut := simulateRun(args(append(dbFlag, "--installations", "4", "--servers", "2", "--faults", "0.1", "--duration", "6s")...)...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, errOut)
			}
			// stdout carries only the new integrator's owner token, and it works.
			token := strings.TrimSpace(out)
			if strings.ContainsAny(token, " \n") || !strings.HasPrefix(token, "kw_") {
				t.Fatalf("stdout %q", out)
			}
			if p, err := a.Store.PrincipalByTokenHash(context.Background(), secret.Hash(token)); err != nil || p.Role != "owner" {
				t.Fatalf("token: %+v %v", p, err)
			}
			if n := a.Ingest.Accepted("enroll"); n != 8 {
				t.Fatalf("%d enrollments, want 8", n)
			}
			if servers, _, _, _ := parseCheck(t, errOut); servers != 8 {
				t.Fatalf("compared %d servers:\n%s", servers, errOut)
			}
			if strings.Contains(errOut, "UNEXPECTED") || !strings.Contains(errOut, "servers 8 ·") {
				t.Fatalf("summary:\n%s", errOut)
			}

			// A rerun reuses the cached servers; without database access
			// too, as long as the cache covers the fleet.
			code, out, errOut = simulateRun(args(append(dbFlag, "--installations", "4", "--servers", "2", "--duration", "2s")...)...)
			if code != 0 || out != "" {
				t.Fatalf("rerun: exit %d, stdout %q:\n%s", code, out, errOut)
			}
			code, _, errOut = simulateRun(args("--installations", "4", "--servers", "2", "--duration", "2s")...)
			if code != 0 {
				t.Fatalf("rerun from the cache alone: exit %d:\n%s", code, errOut)
			}
			if n := a.Ingest.Accepted("enroll"); n != 8 {
				t.Fatalf("reruns enrolled again: %d enrollments", n)
			}
			// A fifth installation needs a licence, hence the database.
			code, _, errOut = simulateRun(args("--installations", "5", "--servers", "2", "--duration", "1s")...)
			if code != 2 || !strings.Contains(errOut, "--data or --db") {
				t.Fatalf("growing without the database: exit %d:\n%s", code, errOut)
			}
			// The cache belongs to this keepwatch.
			code, _, errOut = simulateRun("--server", "https://127.0.0.1:1", "--state", state, "--integrator", "Acme Security",
				"--installations", "4", "--servers", "2", "--duration", "1s")
			if code != 1 || !strings.Contains(errOut, "use another --state") {
				t.Fatalf("another keepwatch with this state: exit %d:\n%s", code, errOut)
			}
		})
	}
}

func TestSimulateRefusesBadFlags(t *testing.T) {
	for _, tc := range [][]string{
		{"--installations", "1", "--servers", "1"},
		{"--server", "ftp://x", "--installations", "1", "--servers", "1"},
		{"--server", "https://x", "--installations", "0", "--servers", "1"},
		{"--server", "https://x", "--installations", "1", "--servers", "1", "--faults", "1.5"},
		{"--server", "https://x", "--installations", "1", "--servers", "1", "--data", "d", "--db", "postgres://x"},
		{"--server", "https://x", "--installations", "1", "--servers", "1", "extra"},
	} {
		if code, _, errOut := simulateRun(tc...); code != 2 {
			t.Errorf("%v: exit %d, want 2:\n%s", tc, code, errOut)
		}
	}
	if code, out, errOut := simulateRun("--help"); code != 0 || !strings.Contains(out, "--faults") || !strings.Contains(out, "Ctrl-C") || errOut != "" {
		t.Fatalf("--help: exit %d:\n%s\nstderr: %s", code, out, errOut)
	}
}

// TestSimulateTenThousandServers runs `keepwatch simulate` with 2,500
// installations of 4 servers against keepwatch for a minute and wants no
// refusal but the injected ones, and keepwatch's overview to show every
// fault the fleet reported: its conditions, its events, and its silent
// servers as unavailable. It needs about a minute and a half and a good
// share of two cores, too much under the race detector: make test runs
// it on its own without -race (KEEPWATCH_SIM_FULL=1).
func TestSimulateTenThousandServers(t *testing.T) {
	if os.Getenv("KEEPWATCH_SIM_FULL") != "1" {
		t.Skip("the 10,000-server run needs KEEPWATCH_SIM_FULL=1 (make test sets it, without -race)")
	}
	// A 5-second interval: twelve intervals in the minute, so drives fill
	// and clear, crashed servers and lost sites go unavailable and come
	// back, at 2,000 heartbeats a second.
	a, dbFlag := simServer(t, store.SQLite, 5*time.Second)
	start := time.Now()
	code, out, errOut := simulateRun(append(dbFlag, "--server", a.URL(), "--ca", a.CertFile, "--state", t.TempDir(),
		"--installations", "2500", "--servers", "4", "--faults", "0.002", "--duration", "60s", "--seed", "1")...)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	t.Logf("%s in %s; last lines:\n%s", "keepwatch simulate", time.Since(start).Round(time.Second), strings.Join(lines[max(0, len(lines)-4):], "\n"))
	if code != 0 {
		t.Fatalf("exit %d (an unexpected refusal, or keepwatch does not show what the fleet reported):\n%s", code, errOut)
	}
	if !strings.HasPrefix(out, "kw_") {
		t.Fatalf("stdout %q", out)
	}
	servers, conds, events, unavailable := parseCheck(t, errOut)
	if servers < 9900 || conds == 0 || events == 0 || unavailable == 0 {
		t.Fatalf("compared %d servers: %d conditions, %d events, %d unavailable", servers, conds, events, unavailable)
	}
	if n := a.Ingest.Accepted("enroll"); n != 10000 {
		t.Fatalf("%d enrollments", n)
	}
	for _, code := range []string{"unauthorized", "invalid_request", "consent_required", "care_plus_inactive", "too_large"} {
		if n := a.Ingest.Refused(code); n != 0 {
			t.Errorf("keepwatch refused %d reports with %s", n, code)
		}
	}
}
