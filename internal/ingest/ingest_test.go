package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/protocol"
	"keepwatch/internal/secret"
)

var ctx = context.Background()

type rig struct {
	a   *app.App
	srv *httptest.Server
	key string
}

func newRig(t *testing.T) *rig { return newRigTB(t) }

func newRigTB(t testing.TB) *rig {
	t.Helper()
	a, err := app.New(ctx, app.Config{Interval: time.Minute, InsecureHTTP: true, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Monitor.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Heartbeats are answered after their group commit: run the committer.
	run, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Ingest.Run(run); close(done) }()
	t.Cleanup(func() { stop(); <-done; a.Store.Close() })
	key := "kwe_test-enrollment-key"
	until, _ := keepwatch.ParseDate("2099-01-01")
	if _, err := a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: "SITE-0001", Customer: "c", Product: "p", CarePlusUntil: until}, secret.Hash(key)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(a.Handler())
	t.Cleanup(srv.Close)
	return &rig{a: a, srv: srv, key: key}
}

func (r *rig) enroll(t *testing.T, name string) *agent.Sender {
	t.Helper()
	if _, err := agent.Enroll(ctx, agent.EnrollOptions{Server: r.srv.URL, SLC: "SITE-0001", Key: r.key, Name: name, Consent: true}); err == nil {
		t.Fatal("enrollment trusted an unknown certificate")
	}
	return r.enrollTB(t, name)
}

func (r *rig) enrollTB(t testing.TB, name string) *agent.Sender {
	t.Helper()
	c := &agent.Client{BaseURL: r.srv.URL, HTTP: r.srv.Client()}
	st, err := agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "SITE-0001", Key: r.key, Name: name, Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	return &agent.Sender{State: st, Client: c}
}

// post sends raw bytes to the report endpoint.
func (r *rig) post(t *testing.T, body []byte) (int, string) {
	t.Helper()
	resp, err := r.srv.Client().Post(r.srv.URL+protocol.ReportPath, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb protocol.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &eb)
	return resp.StatusCode, eb.Error.Code
}

func seal(t *testing.T, s *agent.Sender, seq uint64, payload string) []byte {
	t.Helper()
	id, _ := protocol.ParseServerID(s.State.ServerID)
	env, err := protocol.Seal(s.State.Key, id, seq, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestHostileReportsAreRefusedCountedAndHarmless(t *testing.T) {
	r := newRig(t)
	victim := r.enroll(t, "RS-01")
	bystander := r.enroll(t, "RS-02")

	// A bystander keeps reporting throughout; none of its reports may fail.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bystanderErr error
	var sent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p, _ := agent.StatusPayload([]string{fmt.Sprintf("camera_unreachable:cam-%d", sent%3)}, nil, time.Now())
			if _, err := bystander.Send(ctx, p); err != nil {
				bystanderErr = err
				return
			}
			sent++
		}
	}()

	good := seal(t, victim, 1, `{"conditions":[]}`)
	if status, c := r.post(t, good); status != 200 {
		t.Fatalf("genuine report: %d %s", status, c)
	}
	tampered := bytes.Clone(good)
	tampered[len(tampered)-20] ^= 0x40
	forgedID := seal(t, victim, 5, `{}`)
	forgedID[3] ^= 0xff
	otherKey := bytes.Clone(seal(t, victim, 6, ""))
	otherKey[30] ^= 1 // nonce changed: tag fails
	manyConds := `{"conditions":[` + strings.TrimSuffix(strings.Repeat(`{"kind":"x"},`, keepwatch.MaxConditions+1), ",") + `]}`
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"replayed", good, 409, keepwatch.EREPLAYED},
		{"replayed older", seal(t, victim, 1, ""), 409, keepwatch.EREPLAYED},
		{"tampered", tampered, 401, keepwatch.EUNAUTHORIZED},
		{"forged server id", forgedID, 401, keepwatch.EUNAUTHORIZED},
		{"bad nonce", otherKey, 401, keepwatch.EUNAUTHORIZED},
		{"truncated", good[:30], 400, keepwatch.EINVALID},
		{"empty", nil, 400, keepwatch.EINVALID},
		{"garbage", bytes.Repeat([]byte("garbage!"), 40), 400, keepwatch.EINVALID},
		{"zero sequence", seal(t, victim, 0, ""), 400, keepwatch.EINVALID},
		{"oversized", append(seal(t, victim, 7, ""), make([]byte, protocol.MaxEnvelope)...), 413, keepwatch.ETOOLARGE},
		{"payload not JSON", seal(t, victim, 8, "{nope"), 400, keepwatch.EINVALID},
		{"bad kind", seal(t, victim, 9, `{"conditions":[{"kind":"Storage Full"}]}`), 400, keepwatch.EINVALID},
		{"reserved kind", seal(t, victim, 10, `{"conditions":[{"kind":"server_unavailable"}]}`), 400, keepwatch.EINVALID},
		{"too many conditions", seal(t, victim, 11, manyConds), 400, keepwatch.EINVALID},
		{"control characters", seal(t, victim, 12, `{"conditions":[{"kind":"x","subject":"a\u0000b"}]}`), 400, keepwatch.EINVALID},
	}
	before := map[string]uint64{}
	for _, c := range cases {
		before[c.code] = r.a.Ingest.Refused(c.code)
	}
	want := map[string]uint64{}
	for _, c := range cases {
		status, code := r.post(t, c.body)
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, code, c.status, c.code)
		}
		want[c.code]++
	}
	for code, n := range want {
		if got := r.a.Ingest.Refused(code) - before[code]; got != n {
			t.Errorf("refused{code=%s} grew by %d, want %d", code, got, n)
		}
	}
	// The victim's accepted state is intact and it can go on reporting.
	if status, c := r.post(t, seal(t, victim, 20, `{"conditions":[{"kind":"storage_full","subject":"E:"}]}`)); status != 200 {
		t.Fatalf("victim after attacks: %d %s", status, c)
	}
	close(stop)
	wg.Wait()
	if bystanderErr != nil || sent == 0 {
		t.Fatalf("bystander: %d sent, err %v", sent, bystanderErr)
	}
}

func TestOversizedEnrollmentIsRefused(t *testing.T) {
	r := newRig(t)
	body := `{"slc":"SITE-0001","name":"` + strings.Repeat("x", 20<<10) + `"}`
	resp, err := r.srv.Client().Post(r.srv.URL+protocol.EnrollPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestGuessingEnrollmentKeysIsThrottled(t *testing.T) {
	r := newRig(t)
	c := &agent.Client{BaseURL: r.srv.URL, HTTP: r.srv.Client()}
	var last error
	for i := 0; i < 10; i++ {
		_, last = agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "SITE-0001", Key: fmt.Sprintf("guess-%d", i), Name: "RS-01", Consent: true})
		if !strings.Contains(fmt.Sprint(last), keepwatch.EUNAUTHORIZED) {
			t.Fatalf("guess %d: %v", i, last)
		}
	}
	// The eleventh attempt is refused before the key is even looked at,
	// even with the right key, and says when to come back.
	req, _ := http.NewRequest("POST", r.srv.URL+protocol.EnrollPath, strings.NewReader(`{"slc":"SITE-0001"}`))
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 10 failures: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if r.a.Ingest.Refused(keepwatch.ERATELIMITED) != 1 {
		t.Fatal("rate_limited not counted")
	}
}

func TestAServerSendingTooFastIsPacedAlone(t *testing.T) {
	r := newRig(t)
	r.a.Ingest.ServerRate, r.a.Ingest.ServerBurst = 1, 5
	noisy := r.enroll(t, "RS-01")
	calm := r.enroll(t, "RS-02")
	var limited int
	for i := 0; i < 10; i++ {
		if _, err := noisy.Send(ctx, nil); err != nil {
			if !strings.Contains(err.Error(), keepwatch.ERATELIMITED) {
				t.Fatal(err)
			}
			limited++
		}
	}
	if limited < 4 {
		t.Fatalf("only %d of 10 fast reports paced", limited)
	}
	if _, err := calm.Send(ctx, nil); err != nil {
		t.Fatalf("another server paced too: %v", err)
	}
}

func TestAgentClockSkewIsCorrectedAndShown(t *testing.T) {
	for _, skew := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			r := newRig(t)
			s := r.enroll(t, "RS-01")
			// The agent's clock is off by skew: it says the event happened
			// five minutes ago, by its clock.
			agentNow := time.Now().Add(skew)
			p := &protocol.Payload{TransmittedAt: &agentNow, SentAt: &agentNow,
				Events: []protocol.PayloadEvent{{Kind: "archive_fatal_error", Subject: "Archive 9", At: agentNow.Add(-5 * time.Minute)}}}
			if _, err := s.Send(ctx, p); err != nil {
				t.Fatal(err)
			}
			rec, err := r.a.Store.ServerRecord(ctx, s.State.ServerID)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Duration(rec.ClockOffsetMS) * time.Millisecond; d < skew-5*time.Second || d > skew+5*time.Second {
				t.Fatalf("stored clock offset %s, want about %s", d, skew)
			}
			marks, err := r.a.Store.EventTimes(ctx, "archive_fatal_error")
			if err != nil {
				t.Fatal(err)
			}
			at := marks["Archive 9"]
			if want := time.Now().Add(-5 * time.Minute); at.Before(want.Add(-10*time.Second)) || at.After(want.Add(10*time.Second)) {
				t.Fatalf("event placed at %s, want about %s (keepwatch's clock)", at, want)
			}
			// The clock is fixed. Set back, it makes the next heartbeat look
			// held back on the way: keepwatch asks for a full status
			// report, which clears the offset.
			now := time.Now()
			resp, err := s.Send(ctx, &protocol.Payload{TransmittedAt: &now})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Refresh != (skew > 0) {
				t.Fatalf("heartbeat after the clock was fixed: refresh %v", resp.Refresh)
			}
			all, _ := agent.StatusPayload(nil, nil, now)
			if _, err := s.Send(ctx, all); err != nil {
				t.Fatal(err)
			}
			if rec, _ = r.a.Store.ServerRecord(ctx, s.State.ServerID); rec.ClockOffsetMS != 0 {
				t.Fatalf("offset after the clock was fixed: %d ms", rec.ClockOffsetMS)
			}
		})
	}
}
