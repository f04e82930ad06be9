package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// cli runs a keepwatch command in-process and returns stdout and stderr.
func cli(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, stdinIsPipe: stdin != ""}
	if code := run(context.Background(), e, args); code != 0 {
		t.Fatalf("keepwatch %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String(), errb.String()
}

// cliFails runs a command that must fail and returns its stderr.
func cliFails(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := run(context.Background(), e, args); code == 0 {
		t.Fatalf("keepwatch %s succeeded, want failure", strings.Join(args, " "))
	}
	return errb.String()
}

// apiClient calls the REST API over TLS with a token.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func newAPIClient(t *testing.T, base, caFile, token string) *apiClient {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	return &apiClient{t: t, base: base, token: token, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}}
}

func (c *apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			c.t.Fatalf("%s %s: body %q is not JSON", method, path, b)
		}
	}
	return resp.StatusCode, out
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// installations returns SLC → status of a filtered list.
func (c *apiClient) installations(filter string) map[string]string {
	c.t.Helper()
	code, body := c.do("GET", "/api/v1/installations?filter="+filter, nil)
	if code != 200 {
		c.t.Fatalf("list installations: %d %v", code, body)
	}
	out := map[string]string{}
	list, _ := body["installations"].([]any)
	for _, it := range list {
		m := it.(map[string]any)
		out[m["slc"].(string)] = m["status"].(string)
	}
	return out
}

// advance moves the clock in one-second steps, as time passes for a
// running server (a single jump would look like a stalled sweeper, which
// the own-outage guard answers with three fresh intervals).
func advance(c *testutil.Clock, d time.Duration) {
	for d > 0 {
		step := min(d, time.Second)
		c.Advance(step)
		d -= step
		time.Sleep(15 * time.Millisecond)
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// world is an operator's set-up: two integrators with a licence each.
type world struct {
	data, dsn            string
	aliceToken, bobToken string
	aliceKey, bobKey     string
	aliceSLC, bobSLC     string
	a                    *app.App
	alice, bob, anon     *apiClient
}

func newWorld(t *testing.T, dialect string, cfg app.Config) *world {
	w := &world{data: t.TempDir(), aliceSLC: "AAAA-1111-2222", bobSLC: "BBBB-3333-4444"}
	w.dsn = testutil.DSN(t, dialect)
	dbFlag := []string{"--data", w.data}
	if dialect == store.Postgres {
		dbFlag = []string{"--db", w.dsn}
	}
	admin := func(stdin string, args ...string) string {
		out, _ := cli(t, stdin, append(append([]string{"admin"}, dbFlag...), args...)...)
		return strings.TrimSpace(out)
	}
	admin("alice-password-1\n", "--create", "integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	admin("bob-password-12\n", "integrator", "add", "Bob Alarms", "--owner-email", "owner@bob.example")
	w.aliceToken = admin("", "token", "create", "--integrator", "Alice Security", "--name", "ops", "--role", "owner")
	w.bobToken = admin("", "token", "create", "--integrator", "Bob Alarms", "--name", "ops", "--role", "owner")
	until := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	w.aliceKey = admin("", "license", "add", "--slc", w.aliceSLC, "--customer", "Harbor Logistics", "--product", "XProtect Corporate 2016", "--cameras", "32", "--care-plus-until", until)
	w.bobKey = admin("", "license", "add", "--slc", w.bobSLC, "--customer", "Northgate Mall", "--product", "Husky M30", "--cameras", "8", "--care-plus-until", until)
	for _, v := range []string{w.aliceToken, w.bobToken, w.aliceKey, w.bobKey} {
		if strings.ContainsAny(v, " \n") || len(v) < 40 {
			t.Fatalf("a value-producing command printed more than its value: %q", v)
		}
	}

	cfg.DataDir, cfg.Addr, cfg.SelfSigned = w.data, "127.0.0.1:0", true
	if dialect == store.Postgres {
		cfg.DB, cfg.SecretKey = w.dsn, testutil.SecretKey
	}
	cfg.Logger = testLogger(t)
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	w.a = a
	ca := filepath.Join(w.data, "tls", "cert.pem")
	w.alice = newAPIClient(t, a.URL(), ca, w.aliceToken)
	w.bob = newAPIClient(t, a.URL(), ca, w.bobToken)
	w.anon = newAPIClient(t, a.URL(), ca, "")
	for _, r := range []struct {
		c   *apiClient
		slc string
	}{{w.alice, w.aliceSLC}, {w.bob, w.bobSLC}} {
		if code, body := r.c.do("POST", "/api/v1/registrations", map[string]string{"slc": r.slc}); code != 201 {
			t.Fatalf("register %s: %d %v", r.slc, code, body)
		}
	}
	return w
}

func (w *world) enroll(t *testing.T, slc, key, name string) string {
	dir := t.TempDir()
	cli(t, "", "agent", "enroll", "--server", w.a.URL(), "--slc", slc, "--key", key, "--name", name,
		"--state", dir, "--consent", "--ca", filepath.Join(w.data, "tls", "cert.pem"))
	return dir
}

func TestEndToEndReportErrorClearAndSilence(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			clock := testutil.NewClock(time.Now())
			w := newWorld(t, dialect, app.Config{Interval: 10 * time.Second, Now: clock.Now, SweepEvery: 10 * time.Millisecond})
			agentDir := w.enroll(t, w.aliceSLC, w.aliceKey, "RS-01")
			bobAgent := w.enroll(t, w.bobSLC, w.bobKey, "RS-01")

			if got := w.alice.installations("all"); got[w.aliceSLC] != "never_reported" {
				t.Fatalf("before reports: %v", got)
			}
			cli(t, "", "agent", "send", "--state", agentDir, "--condition", `storage_full:E:\Recordings`)
			cli(t, "", "agent", "send", "--state", bobAgent)
			eventually(t, time.Second, "storage_full shows as error in the owner's errors list", func() bool {
				return w.alice.installations("errors")[w.aliceSLC] == "error"
			})
			if got := w.bob.installations("all"); len(got) != 1 || got[w.bobSLC] != "ok" {
				t.Fatalf("bob sees %v", got)
			}
			code, body := w.alice.do("GET", "/api/v1/installations/"+w.aliceSLC, nil)
			conds, _ := body["conditions"].([]any)
			if code != 200 || len(conds) != 1 || conds[0].(map[string]any)["kind"] != "storage_full" || conds[0].(map[string]any)["server"] != "RS-01" {
				t.Fatalf("installation: %d %v", code, body)
			}

			cli(t, "", "agent", "send", "--state", agentDir) // all clear
			eventually(t, time.Second, "empty report clears the error", func() bool {
				_, ok := w.alice.installations("errors")[w.aliceSLC]
				return !ok && w.alice.installations("all")[w.aliceSLC] == "ok"
			})

			// Bob's server keeps sending heartbeats; Alice's goes silent.
			advance(clock, 25*time.Second)
			cli(t, "", "agent", "send", "--state", bobAgent, "--heartbeat")
			advance(clock, 6*time.Second) // 31 s since Alice's last report: 3 × 10 s + 10 % of 10 s, not yet over
			time.Sleep(100 * time.Millisecond)
			if got := w.alice.installations("all")[w.aliceSLC]; got != "ok" {
				t.Fatalf("declared %s at exactly the deadline", got)
			}
			// Past the deadline (on PostgreSQL, plus the grace that lets other
			// nodes' write-behind land).
			advance(clock, time.Second)
			eventually(t, time.Second, "silent server is unavailable after three intervals", func() bool {
				return w.alice.installations("errors")[w.aliceSLC] == "unavailable"
			})
			if got := w.bob.installations("all")[w.bobSLC]; got != "ok" {
				t.Fatalf("bob's reporting server is %s", got)
			}
			// Reporting again makes it ok again.
			cli(t, "", "agent", "send", "--state", agentDir, "--heartbeat")
			eventually(t, time.Second, "server is ok again after it reports", func() bool {
				return w.alice.installations("all")[w.aliceSLC] == "ok"
			})
			code, body = w.alice.do("GET", "/api/v1/incidents?state=resolved", nil)
			kinds := map[string]int{}
			for _, it := range body["incidents"].([]any) {
				kinds[it.(map[string]any)["kind"].(string)]++
			}
			if code != 200 || kinds["storage_full"] != 1 || kinds["server_unavailable"] != 1 {
				t.Fatalf("resolved incidents: %d %v", code, kinds)
			}
		})
	}
}

func TestRealTimeSilenceAtOneSecondInterval(t *testing.T) {
	w := newWorld(t, store.SQLite, app.Config{Interval: time.Second})
	dir := w.enroll(t, w.aliceSLC, w.aliceKey, "RS-01")
	cli(t, "", "agent", "send", "--state", dir)
	start := time.Now()
	if got := w.alice.installations("all")[w.aliceSLC]; got != "ok" {
		t.Fatalf("after report: %s", got)
	}
	eventually(t, 6*time.Second, "unavailable after 3 × 1 s + 10 %", func() bool {
		return w.alice.installations("all")[w.aliceSLC] == "unavailable"
	})
	if waited := time.Since(start); waited < 3100*time.Millisecond {
		t.Fatalf("declared unavailable after %s, before 3.1 s", waited)
	}
}

func TestEnrollmentRefusals(t *testing.T) {
	w := newWorld(t, store.SQLite, app.Config{Interval: 10 * time.Second})
	ca := filepath.Join(w.data, "tls", "cert.pem")
	enroll := func(slc, key string, extra ...string) string {
		args := append([]string{"agent", "enroll", "--server", w.a.URL(), "--slc", slc, "--key", key, "--name", "RS-09", "--state", t.TempDir(), "--ca", ca}, extra...)
		return cliFails(t, args...)
	}
	if msg := enroll(w.aliceSLC, w.aliceKey); !strings.Contains(msg, "--consent") {
		t.Fatalf("enroll without consent: %s", msg)
	}
	wrongKey := enroll(w.aliceSLC, w.bobKey, "--consent")
	unknownSLC := enroll("ZZZZ-0000-0000", w.aliceKey, "--consent")
	if !strings.Contains(wrongKey, "unauthorized") || wrongKey != unknownSLC {
		t.Fatalf("wrong key and unknown SLC must answer alike:\n%s\n%s", wrongKey, unknownSLC)
	}
	// Rotating the enrollment key: the old one stops working, enrolled
	// servers keep reporting.
	dir := w.enroll(t, w.aliceSLC, w.aliceKey, "RS-01")
	newKey, _ := cli(t, "", "admin", "--data", w.data, "license", "rotate-key", "--slc", w.aliceSLC)
	if msg := enroll(w.aliceSLC, w.aliceKey, "--consent"); !strings.Contains(msg, "unauthorized") {
		t.Fatalf("old key after rotation: %s", msg)
	}
	w.enroll(t, w.aliceSLC, strings.TrimSpace(newKey), "RS-02")
	cli(t, "", "agent", "send", "--state", dir)
	// Care Plus ended: enrollment and reports are refused, the installation
	// is paused (seen by the running server within its reload interval).
	cli(t, "", "admin", "--data", w.data, "license", "care-plus", "--slc", w.aliceSLC, "--until", "2020-01-01")
	if msg := enroll(w.aliceSLC, strings.TrimSpace(newKey), "--consent"); !strings.Contains(msg, "care_plus_inactive") {
		t.Fatalf("enroll after Care Plus ended: %s", msg)
	}
	eventually(t, 5*time.Second, "report refused with care_plus_inactive", func() bool {
		var out, errb bytes.Buffer
		run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, []string{"agent", "send", "--state", dir})
		return strings.Contains(errb.String(), "care_plus_inactive")
	})
	if got := w.alice.installations("all")[w.aliceSLC]; got != "paused" {
		t.Fatalf("status after Care Plus ended: %s", got)
	}
	// Revocation.
	st, _ := cli(t, "", "agent", "status", "--state", dir, "--json")
	var s struct {
		ServerID string `json:"server_id"`
	}
	json.Unmarshal([]byte(st), &s)
	if strings.Contains(st, `"key"`) {
		t.Fatal("agent status prints the key")
	}
	cli(t, "", "admin", "--data", w.data, "license", "care-plus", "--slc", w.aliceSLC, "--until", "2099-01-01")
	cli(t, "", "admin", "--data", w.data, "server", "revoke", "--id", s.ServerID)
	eventually(t, 5*time.Second, "revoked server refused", func() bool {
		var out, errb bytes.Buffer
		run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, []string{"agent", "send", "--state", dir})
		return strings.Contains(errb.String(), "unauthorized")
	})
}

func TestConsentWithdrawalIsShownAndStopsMonitoring(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	w := newWorld(t, store.SQLite, app.Config{Interval: 10 * time.Second, Now: clock.Now, SweepEvery: 10 * time.Millisecond})
	dir := w.enroll(t, w.aliceSLC, w.aliceKey, "RS-01")
	cli(t, "", "agent", "send", "--state", dir)
	cli(t, "", "agent", "consent", "--state", dir, "off")
	if msg := cliFails(t, "agent", "send", "--state", dir); !strings.Contains(msg, "consent") {
		t.Fatalf("send with consent off: %s", msg)
	}
	eventually(t, time.Second, "consent_withdrawn shown", func() bool {
		return w.alice.installations("all")[w.aliceSLC] == "consent_withdrawn"
	})
	advance(clock, 2*time.Minute)
	time.Sleep(100 * time.Millisecond)
	if got := w.alice.installations("all")[w.aliceSLC]; got != "consent_withdrawn" {
		t.Fatalf("a server without consent became %s", got)
	}
	cli(t, "", "agent", "consent", "--state", dir, "on")
	eventually(t, time.Second, "monitoring resumes", func() bool {
		return w.alice.installations("all")[w.aliceSLC] == "ok"
	})
}

func TestAdminCommandsValidateInput(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{
		{"admin", "--data", data, "integrator", "add", "--owner-email", "x@y.z"},
		{"admin", "--data", data, "token", "create", "--integrator", "nobody", "--name", "n", "--role", "king"},
		{"admin", "--data", data, "license", "add", "--slc", "!!", "--customer", "c", "--product", "p", "--cameras", "1", "--care-plus-until", "2027-01-01"},
		{"admin", "--data", data, "license", "add", "--slc", "ABC-123", "--customer", "c", "--product", "p", "--cameras", "1", "--care-plus-until", "31/12/2027"},
		{"admin", "--data", data, "license", "care-plus", "--slc", "ABC-123", "--until", "2027-01-01"},
		{"admin", "--data", data, "frobnicate", "now"},
		{"agent", "send", "--state", t.TempDir()},
	} {
		msg := cliFails(t, args...)
		if msg == "" {
			t.Errorf("%v failed silently", args)
		}
	}
	out, _ := cli(t, "", "admin", "--data", data, "--create", "integrator", "add", "Solo", "--owner-email", "solo@example.com")
	if pw := strings.TrimSpace(out); len(pw) < 16 || strings.Contains(pw, " ") {
		t.Fatalf("generated password output %q", out)
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, hash, err := db.UserPasswordHash(context.Background(), "solo@example.com")
	if err != nil || strings.Contains(hash, strings.TrimSpace(out)) || !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("stored password hash %q, %v", hash, err)
	}
	_ = keepwatch.Version
	_ = fmt.Sprint()
}
