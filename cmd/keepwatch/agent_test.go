package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/protocol"
)

// agentProcess is `keepwatch agent run` in a child process.
type agentProcess struct {
	cmd *exec.Cmd
	ctl *agent.Control
}

func startAgent(t *testing.T, dir, config, logFile string) *agentProcess {
	t.Helper()
	logs, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "agent", "run", "--state", dir, "--config", config, "--debug")
	cmd.Env = append(os.Environ(), "KEEPWATCH_TEST_RUN_MAIN=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logs.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.ctl, err = agent.Connect(context.Background(), dir); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("agent did not start: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startKeepwatch runs keepwatch in-process; stop shuts it down (also at
// the end of the test).
func startKeepwatch(t *testing.T, data, addr string) (a *app.App, stop func()) {
	t.Helper()
	// This test is about durability and order: keepwatch's flood caps must
	// not hold back the thousand events' incidents.
	flood := keepwatch.FloodPolicy{MaxOpenIncidents: 100000, MaxEventsPerMinute: 100000}
	a, err := app.New(context.Background(), app.Config{DataDir: data, Addr: addr, SelfSigned: true, Interval: time.Second, Logger: testLogger(t), Flood: flood})
	if err != nil {
		t.Fatal(err)
	}
	// keepwatch paces each server (a backlog of 1,000 reports takes it
	// 10 s at the default pace); this test is about durability and order.
	a.Ingest.ServerRate, a.Ingest.ServerBurst = 100000, 100000
	for tries := 0; ; tries++ {
		if err = a.Start(context.Background()); err == nil {
			break
		}
		if tries > 50 {
			t.Fatalf("start keepwatch on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.Shutdown(ctx)
		})
	}
	t.Cleanup(stop)
	return a, stop
}

func TestAgentSpoolSurvivesKill9AndDeliversEveryEventOnceInOrder(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	admin := func(args ...string) string {
		out, _ := cli(t, "", append([]string{"admin", "--data", data}, args...)...)
		return strings.TrimSpace(out)
	}
	admin("--create", "integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	token := admin("token", "create", "--integrator", "Alice Security", "--name", "t", "--role", "owner")
	const slc = "SPOOL-0001"
	key := admin("license", "add", "--slc", slc, "--customer", "Harbor Logistics", "--product", "XProtect Corporate 2016", "--cameras", "48", "--care-plus-until", "2099-01-01")
	addr := freePort(t)
	kw, stopKeepwatch := startKeepwatch(t, data, addr)
	ca := filepath.Join(data, "tls", "cert.pem")
	api := newAPIClient(t, kw.URL(), ca, token)
	if code, body := api.do("POST", "/api/v1/registrations", map[string]string{"slc": slc}); code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	cli(t, "", "agent", "enroll", "--server", kw.URL(), "--slc", slc, "--key", key, "--name", "RS-01", "--state", dir, "--consent", "--ca", ca)

	// keepwatch goes away; the agent runs on and records.
	stopKeepwatch()
	config := filepath.Join(t.TempDir(), "agent.json")
	os.WriteFile(config, []byte(`{"local_api": "127.0.0.1:0"}`), 0o600)
	logFile := filepath.Join(t.TempDir(), "agent.log")
	ag := startAgent(t, dir, config, logFile)

	const reports = 400
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 5 * time.Second) }
	bg := context.Background()
	startRec := time.Now()
	for i := 1; i <= reports; i++ {
		if i == reports/2+1 {
			// kill -9 in the middle: everything the local API acknowledged
			// so far must survive.
			if err := ag.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			ag.cmd.Wait()
			ag = startAgent(t, dir, config, logFile)
		}
		ev := []protocol.PayloadEvent{{Kind: keepwatch.KindArchiveMoveFailed, Subject: fmt.Sprintf("ev-%04d", i), At: at(i), Message: "target drive E: not ready"}}
		var err error
		if i%10 == 0 {
			// Every tenth report also changes the state conditions.
			_, err = ag.ctl.SetConditions(bg, []protocol.PayloadCondition{{Kind: keepwatch.KindCameraUnreachable, Subject: fmt.Sprintf("cam-%04d", i)}}, ev, false)
		} else {
			_, err = ag.ctl.RecordEvents(bg, ev)
		}
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	t.Logf("recorded %d reports in %s", reports, time.Since(startRec))
	st, err := ag.ctl.Status(bg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spool.Depth < reports || st.Spool.PendingEvents != reports || st.Spool.LastAckedSeq != 0 {
		t.Fatalf("spool while keepwatch is down: %+v", st.Spool)
	}
	out, _ := cli(t, "", "agent", "status", "--state", dir)
	if !strings.Contains(out, fmt.Sprintf(" reports waiting (%d events)", reports)) || !strings.Contains(out, "last ack:      never") {
		t.Fatalf("agent status while keepwatch is down:\n%s", out)
	}

	// keepwatch comes back: the agent uploads what happened offline.
	kw, _ = startKeepwatch(t, data, addr)
	startUp := time.Now()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if st, err = ag.ctl.Status(bg); err == nil && st.Spool.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("spool not delivered: %+v %v\n%s", st.Spool, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("uploaded %d reports in %s", st.Spool.LastAckedSeq, time.Since(startUp))
	if st.Spool.Refused != 0 || st.Spool.DroppedHeartbeats != 0 {
		t.Fatalf("reports lost on the way: %+v", st.Spool)
	}

	api = newAPIClient(t, kw.URL(), ca, token)
	code, body := api.do("GET", "/api/v1/incidents?limit=5000", nil)
	if code != 200 {
		t.Fatalf("incidents: %d %v", code, body)
	}
	type inc struct {
		id      int64
		subject string
		opened  time.Time
		count   int
	}
	var got []inc
	for _, it := range body["incidents"].([]any) {
		m := it.(map[string]any)
		if m["kind"] != keepwatch.KindArchiveMoveFailed {
			continue
		}
		opened, _ := time.Parse(time.RFC3339Nano, m["opened_at"].(string))
		got = append(got, inc{int64(m["id"].(float64)), m["subject"].(string), opened, int(m["count"].(float64))})
	}
	if len(got) != reports {
		t.Fatalf("%d event incidents at keepwatch, want %d", len(got), reports)
	}
	// Incidents are numbered as keepwatch stores them: in id order they
	// must be the events in the order they happened, each once, each at
	// its own time.
	sort.Slice(got, func(i, j int) bool { return got[i].id < got[j].id })
	for i, g := range got {
		n := i + 1
		if g.subject != fmt.Sprintf("ev-%04d", n) || !g.opened.Equal(at(n)) || g.count != 1 {
			t.Fatalf("incident %d: %+v, want ev-%04d at %s counted once", n, g, n, at(n))
		}
	}
	_, inst := api.do("GET", "/api/v1/installations/"+slc, nil)
	var cams []string
	for _, c := range inst["conditions"].([]any) {
		if m := c.(map[string]any); m["kind"] == keepwatch.KindCameraUnreachable {
			cams = append(cams, m["subject"].(string))
		}
	}
	if len(cams) != 1 || cams[0] != fmt.Sprintf("cam-%04d", reports) {
		t.Fatalf("camera conditions after the upload: %v, want the last one recorded", cams)
	}

	// With the daemon running, agent send goes through it and shares its
	// sequence: accepted, never replayed.
	_, stderr := cli(t, "", "agent", "send", "--state", dir, "--condition", `storage_full:E:\Recordings`)
	if !strings.Contains(stderr, "through the running agent") {
		t.Fatalf("agent send beside the daemon: %s", stderr)
	}
	if n := kw.Ingest.Refused(keepwatch.EREPLAYED); n != 0 {
		t.Fatalf("%d reports refused as replayed", n)
	}
}

func TestAgentCommandsRefuseMistakes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "agent.json")
	os.WriteFile(bad, []byte(`{"local_api": "0.0.0.0:8444"}`), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "run", "--state", t.TempDir(), "--config", bad}, "loopback"},
		{[]string{"agent", "run", "--state", t.TempDir()}, "not enrolled"},
		{[]string{"agent", "run"}, "--state"},
		{[]string{"agent", "status", "--state", t.TempDir()}, "not enrolled"},
		{[]string{"agent", "send", "--state", t.TempDir(), "--condition", "Bad Kind"}, "kind"},
		{[]string{"agent", "consent", "--state", dir, "maybe"}, "on or off"},
		{[]string{"agent", "frobnicate"}, `unknown command "frobnicate"`},
	} {
		if msg := cliFails(t, c.args...); !strings.Contains(msg, c.want) {
			t.Errorf("%v: %q, want it to mention %q", c.args, msg, c.want)
		}
	}
	if runtime.GOOS != "windows" {
		for _, cmd := range []string{"install-service", "uninstall-service"} {
			args := []string{"agent", cmd}
			if cmd == "install-service" {
				enrolled := t.TempDir()
				(&agent.State{Server: "https://keepwatch.example", ServerID: "00112233445566778899aabbccddeeff"}).Save(enrolled)
				args = append(args, "--state", enrolled)
			}
			if msg := cliFails(t, args...); !strings.Contains(msg, "systemd unit") {
				t.Errorf("%s on %s: %q, want a pointer to the systemd unit", cmd, runtime.GOOS, msg)
			}
		}
	}
}
