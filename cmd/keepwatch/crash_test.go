package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
	"keepwatch/internal/store"
	"keepwatch/internal/tlsutil"
)

// TestMain lets the test binary act as the keepwatch command, so crash
// tests can run a real server process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("KEEPWATCH_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// serverProcess runs `keepwatch serve` in a child process.
type serverProcess struct {
	cmd  *exec.Cmd
	url  string
	logs *os.File
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServer(t *testing.T, data, addr string, extra ...string) *serverProcess {
	t.Helper()
	logs, err := os.OpenFile(filepath.Join(data, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--data", data, "--addr", addr, "--self-signed", "--heartbeat-interval", "60s"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KEEPWATCH_TEST_RUN_MAIN=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, url: "https://" + addr, logs: logs}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logs.Close()
	})
	tc, _ := tlsutil.ClientConfig("")
	tc.InsecureSkipVerify = true // only to poll /healthz before the cert exists
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := hc.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(data, "server.log"))
			t.Fatalf("server did not become ready: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestKill9LosesNoAcknowledgedReport(t *testing.T) {
	data := t.TempDir()
	admin := func(args ...string) string {
		out, _ := cli(t, "", append([]string{"admin", "--data", data}, args...)...)
		return strings.TrimSpace(out)
	}
	admin("--create", "integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	token := admin("token", "create", "--integrator", "Alice Security", "--name", "t", "--role", "owner")
	key := admin("license", "add", "--slc", "CRASH-0001", "--customer", "c", "--product", "p", "--cameras", "1", "--care-plus-until", "2099-01-01")

	addr := freePort(t)
	srv := startServer(t, data, addr)
	ca := filepath.Join(data, "tls", "cert.pem")
	api := newAPIClient(t, srv.url, ca, token)
	if code, body := api.do("POST", "/api/v1/registrations", map[string]string{"slc": "CRASH-0001"}); code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	st, err := agent.Enroll(context.Background(), agent.EnrollOptions{Server: srv.url, CAFile: ca, SLC: "CRASH-0001", Key: key, Name: "RS-01", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := agent.NewClient(srv.url, ca)
	sender := &agent.Sender{State: st, Client: c}

	// Stream status reports, each with a distinct event and a condition set
	// that names its number, until the server is killed.
	var mu sync.Mutex
	var acked []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			p, _ := agent.StatusPayload([]string{fmt.Sprintf("camera_unreachable:cam-%d", n)}, []string{fmt.Sprintf("archive_move_failed:report-%d", n)}, time.Now().UTC())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := sender.Send(ctx, p)
			cancel()
			if err != nil {
				return
			}
			mu.Lock()
			acked = append(acked, n)
			mu.Unlock()
		}
	}()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	<-done
	mu.Lock()
	last := acked[len(acked)-1]
	mu.Unlock()

	// Every acknowledged event is recorded (past the flood caps an event
	// opens no incident of its own, but it is recorded all the same).
	st2, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	have, err := st2.EventSubjects(context.Background(), "archive_move_failed")
	st2.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, data, addr)
	api = newAPIClient(t, srv2.url, ca, token)
	for _, n := range acked {
		if !have[fmt.Sprintf("report-%d", n)] {
			t.Fatalf("acknowledged report %d lost after kill -9 (%d acknowledged)", n, len(acked))
		}
	}
	// The stored conditions are those of the last acknowledged report, or of
	// the one in flight when the process died (stored, never acknowledged).
	_, inst := api.do("GET", "/api/v1/installations/CRASH-0001", nil)
	conds := inst["conditions"].([]any)
	var subjects []string
	for _, c := range conds {
		if m := c.(map[string]any); m["kind"] == "camera_unreachable" {
			subjects = append(subjects, m["subject"].(string))
		}
	}
	if len(subjects) != 1 || (subjects[0] != fmt.Sprintf("cam-%d", last) && subjects[0] != fmt.Sprintf("cam-%d", last+1)) {
		t.Fatalf("after restart camera conditions %v, last acknowledged report %d", subjects, last)
	}
	// The agent carries on with its next sequence number.
	if _, err := sender.Send(context.Background(), nil); err != nil {
		t.Fatalf("report after restart: %v", err)
	}
	t.Logf("%d reports acknowledged before kill -9, all present after restart", len(acked))
}

func TestBackupOfARunningServerRestores(t *testing.T) {
	data := t.TempDir()
	admin := func(args ...string) string {
		out, _ := cli(t, "", append([]string{"admin", "--data", data}, args...)...)
		return strings.TrimSpace(out)
	}
	admin("--create", "integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	token := admin("token", "create", "--integrator", "Alice Security", "--name", "t", "--role", "owner")
	key := admin("license", "add", "--slc", "BACK-0001", "--customer", "c", "--product", "p", "--cameras", "1", "--care-plus-until", "2099-01-01")
	srv := startServer(t, data, freePort(t))
	ca := filepath.Join(data, "tls", "cert.pem")
	if code, _ := newAPIClient(t, srv.url, ca, token).do("POST", "/api/v1/registrations", map[string]string{"slc": "BACK-0001"}); code != 201 {
		t.Fatal("register")
	}
	st, err := agent.Enroll(context.Background(), agent.EnrollOptions{Server: srv.url, CAFile: ca, SLC: "BACK-0001", Key: key, Name: "RS-01", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := agent.NewClient(srv.url, ca)
	snd := &agent.Sender{State: st, Client: c}
	p, _ := agent.StatusPayload([]string{`storage_full:E:\Recordings`}, nil, time.Now())
	if _, err := snd.Send(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	copyFile := filepath.Join(t.TempDir(), "backup.db")
	admin("backup", "--to", copyFile)
	if msg := cliFails(t, "admin", "--data", data, "backup", "--to", copyFile); !strings.Contains(msg, "exists") {
		t.Fatalf("overwriting a backup: %s", msg)
	}
	// Restore into a fresh data dir and serve from it.
	restored := t.TempDir()
	b, err := os.ReadFile(copyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, store.DBFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The secret key is backed up apart from the database (without it the
	// copy holds no usable report key) and restored with it.
	k, err := os.ReadFile(filepath.Join(data, store.SecretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, store.SecretKeyFile), k, 0o600); err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, restored, freePort(t))
	_, inst := newAPIClient(t, srv2.url, filepath.Join(restored, "tls", "cert.pem"), token).do("GET", "/api/v1/installations/BACK-0001", nil)
	if inst["status"] != "error" {
		t.Fatalf("restored installation: %v", inst)
	}
}

// A heartbeat acknowledged just before kill -9 is spent for good: sent
// again to the restarted server it is refused as replayed, never taken as
// a sign of life.
func TestKill9LeavesAcknowledgedHeartbeatsSpent(t *testing.T) {
	data := t.TempDir()
	admin := func(args ...string) string {
		out, _ := cli(t, "", append([]string{"admin", "--data", data}, args...)...)
		return strings.TrimSpace(out)
	}
	admin("--create", "integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	token := admin("token", "create", "--integrator", "Alice Security", "--name", "t", "--role", "owner")
	key := admin("license", "add", "--slc", "CRASH-0002", "--customer", "c", "--product", "p", "--cameras", "1", "--care-plus-until", "2099-01-01")
	addr := freePort(t)
	srv := startServer(t, data, addr)
	ca := filepath.Join(data, "tls", "cert.pem")
	api := newAPIClient(t, srv.url, ca, token)
	if code, body := api.do("POST", "/api/v1/registrations", map[string]string{"slc": "CRASH-0002"}); code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	st, err := agent.Enroll(context.Background(), agent.EnrollOptions{Server: srv.url, CAFile: ca, SLC: "CRASH-0002", Key: key, Name: "RS-01", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := agent.NewClient(srv.url, ca)
	sender := &agent.Sender{State: st, Client: c}
	if _, err := sender.Send(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// Heartbeats, sealed here so that their bytes can be sent again.
	id, err := protocol.ParseServerID(st.ServerID)
	if err != nil {
		t.Fatal(err)
	}
	post := func(env []byte) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.url+protocol.ReportPath, bytes.NewReader(env))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var acked [][]byte
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := st.Seq + 1; ; seq++ {
			env, _ := protocol.Seal(st.Key, id, seq, nil)
			code, err := post(env)
			if err != nil {
				return
			}
			if code == 200 {
				mu.Lock()
				acked = append(acked, env)
				mu.Unlock()
			}
		}
	}()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	<-done
	startServer(t, data, addr)
	c.HTTP.CloseIdleConnections()
	last := acked[max(0, len(acked)-20):]
	for i, env := range last {
		code, err := post(env)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusConflict {
			t.Fatalf("acknowledged heartbeat %d of the last %d before kill -9 answered %d after restart, want 409 replayed", i+1, len(last), code)
		}
	}
}
