package ingest_test

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
)

// register gives the rig's installation to an integrator, whose audit
// log and re-enrollment list the tests read.
func (r *rig) register(t *testing.T) int64 {
	t.Helper()
	in, err := r.a.Store.CreateIntegrator(ctx, "Alice Security")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.Store.Register(ctx, in.ID, "SITE-0001"); err != nil {
		t.Fatal(err)
	}
	return in.ID
}

func openIncidents(t *testing.T, r *rig, integratorID int64, kind string) int {
	t.Helper()
	ins, err := r.a.Store.Incidents(ctx, integratorID, keepwatch.IncidentOpen, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range ins {
		if in.Kind == kind {
			n++
		}
	}
	return n
}

// Someone holding only the enrollment key enrolls an existing name: before,
// that took the server over (its agent was refused, a forged all-clear
// resolved its incidents). Now the new key waits for the integrator, the
// old one keeps working, and the request is audited.
func TestEnrollmentKeyAloneDoesNotTakeAServerOver(t *testing.T) {
	r := newRig(t)
	integ := r.register(t)
	real := r.enroll(t, "RS-01")
	p, _ := agent.StatusPayload([]string{"storage_full:E:"}, nil, time.Now())
	if _, err := real.Send(ctx, p); err != nil {
		t.Fatal(err)
	}
	if openIncidents(t, r, integ, "storage_full") != 1 {
		t.Fatal("no incident to protect")
	}

	intruder := r.enrollTB(t, "RS-01")
	if !intruder.State.Pending || intruder.State.ServerID != real.State.ServerID {
		t.Fatalf("re-enrollment without proof: pending=%v id %s (real %s)", intruder.State.Pending, intruder.State.ServerID, real.State.ServerID)
	}
	allClear, _ := agent.StatusPayload(nil, nil, time.Now())
	_, err := intruder.Send(ctx, allClear)
	var se *agent.ServerError
	if !errors.As(err, &se) || se.Code != keepwatch.EREENROLLPENDING || !se.Authenticated {
		t.Fatalf("report under the pending key: %v", err)
	}
	if openIncidents(t, r, integ, "storage_full") != 1 {
		t.Fatal("a report under the pending key resolved the incident")
	}
	if _, err := real.Send(ctx, nil); err != nil {
		t.Fatalf("the real agent's key stopped working: %v", err)
	}

	list, err := r.a.Store.Reenrollments(ctx, integ, 10)
	if err != nil || len(list) != 1 || list[0].State != keepwatch.ReenrollmentPending || list[0].Server != "RS-01" {
		t.Fatalf("pending re-enrollments: %+v %v", list, err)
	}
	audit, _ := r.a.Store.AuditLog(ctx, integ, 10)
	if len(audit) == 0 || audit[0].Action != "reenrollment.request" {
		t.Fatalf("audit log: %+v", audit)
	}
	// Another integrator cannot decide it.
	other, _ := r.a.Store.CreateIntegrator(ctx, "Mallory")
	if _, err := r.a.Store.DecideReenrollment(ctx, other.ID, list[0].ID, true, "user:m"); keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
		t.Fatalf("another integrator approved: %v", err)
	}

	// Rejected: the pending key is refused from then on.
	if _, err := r.a.Store.DecideReenrollment(ctx, integ, list[0].ID, false, "user:alice"); err != nil {
		t.Fatal(err)
	}
	waitCreds(t, r)
	if _, err := intruder.Send(ctx, allClear); err == nil || !strings.Contains(err.Error(), keepwatch.EUNAUTHORIZED) {
		t.Fatalf("rejected key: %v", err)
	}
	if _, err := real.Send(ctx, nil); err != nil {
		t.Fatalf("real agent after rejection: %v", err)
	}

	// A reinstalled machine asks again, and this time it is approved:
	// the new key works, the old one is refused.
	reinstalled := r.enrollTB(t, "RS-01")
	list, _ = r.a.Store.Reenrollments(ctx, integ, 10)
	if _, err := r.a.Store.DecideReenrollment(ctx, integ, list[0].ID, true, "user:alice"); err != nil {
		t.Fatal(err)
	}
	waitCreds(t, r)
	if _, err := reinstalled.Send(ctx, p); err != nil {
		t.Fatalf("approved key: %v", err)
	}
	if _, err := real.Send(ctx, nil); err == nil || !strings.Contains(err.Error(), keepwatch.EUNAUTHORIZED) {
		t.Fatalf("old key after approval: %v", err)
	}
}

// waitCreds lets the node pick up a decision taken in the store.
func waitCreds(t *testing.T, r *rig) {
	t.Helper()
	recs, _, err := r.a.Store.ChangedServers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.a.Ingest.Apply(recs)
}

func TestReenrollmentProvingTheCurrentKeyReplacesIt(t *testing.T) {
	r := newRig(t)
	first := r.enroll(t, "RS-01")
	if _, err := first.Send(ctx, nil); err != nil {
		t.Fatal(err)
	}
	c := &agent.Client{BaseURL: r.srv.URL, HTTP: r.srv.Client()}
	st, err := agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "site-0001", Key: r.key, Name: "RS-01", Consent: true, Previous: first.State})
	if err != nil {
		t.Fatal(err)
	}
	second := &agent.Sender{State: st, Client: c}
	if st.Pending || st.ServerID != first.State.ServerID || bytes.Equal(st.Key, first.State.Key) {
		t.Fatalf("re-enrollment with proof: pending=%v id %s→%s", st.Pending, first.State.ServerID, st.ServerID)
	}
	if _, err := second.Send(ctx, nil); err != nil {
		t.Fatalf("new key, sequence restarted: %v", err)
	}
	_, err = first.Send(ctx, nil)
	var se *agent.ServerError
	if !errors.As(err, &se) || se.Code != keepwatch.EUNAUTHORIZED {
		t.Fatalf("old key still accepted: %v", err)
	}
	// A proof under a wrong key is no proof: the request waits.
	forged := *first.State
	forged.Key = bytes.Repeat([]byte{7}, 32)
	st, err = agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "SITE-0001", Key: r.key, Name: "RS-01", Consent: true, Previous: &forged})
	if err != nil || !st.Pending {
		t.Fatalf("proof under a wrong key: pending=%v %v", st != nil && st.Pending, err)
	}
}

// mitm is a TLS-terminating proxy in front of keepwatch that sees and may
// rewrite every request and answer.
type mitm struct {
	srv      *httptest.Server
	requests [][]byte
	editReq  func([]byte) []byte
	editResp func(path string, status int, h http.Header, body []byte) (int, []byte)
}

func newMITM(t *testing.T, r *rig) *mitm {
	m := &mitm{}
	up := r.srv.Client()
	m.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		m.requests = append(m.requests, body)
		if m.editReq != nil {
			body = m.editReq(body)
		}
		out, _ := http.NewRequest(req.Method, r.srv.URL+req.URL.Path, bytes.NewReader(body))
		out.Header = req.Header.Clone()
		resp, err := up.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		status := resp.StatusCode
		if m.editResp != nil {
			status, b = m.editResp(req.URL.Path, status, resp.Header, b)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(status)
		w.Write(b)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mitm) client() *agent.Client {
	return &agent.Client{BaseURL: m.srv.URL, HTTP: m.srv.Client()}
}

func swapKey(t *testing.T, body []byte, field string) []byte {
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Error(err)
		return body
	}
	v[field] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	b, _ := json.Marshal(v)
	return b
}

// A TLS-terminating proxy at enrollment neither learns the enrollment key
// nor can sit in the middle of the key exchange.
func TestEnrollmentThroughATLSTerminatingProxy(t *testing.T) {
	r := newRig(t)
	m := newMITM(t, r)
	opts := agent.EnrollOptions{SLC: "SITE-0001", Key: r.key, Name: "RS-01", Consent: true}

	// Passing through, it sees every byte, but not the enrollment key.
	if _, err := agent.EnrollWith(ctx, m.client(), opts); err != nil {
		t.Fatal(err)
	}
	for _, b := range m.requests {
		if bytes.Contains(b, []byte(r.key)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(r.key)))) {
			t.Fatalf("the enrollment request carries the enrollment key: %s", b)
		}
	}

	// Its own public key towards keepwatch: refused, the MAC does not match.
	m.editReq = func(b []byte) []byte { return swapKey(t, b, "public_key") }
	opts.Name = "RS-02"
	if _, err := agent.EnrollWith(ctx, m.client(), opts); err == nil || !strings.Contains(err.Error(), keepwatch.EUNAUTHORIZED) {
		t.Fatalf("substituted agent key: %v", err)
	}
	if id, _ := r.a.Store.ServerIDByName(ctx, 1, "RS-02"); id != "" {
		t.Fatal("keepwatch enrolled a server under the proxy's key")
	}

	// Its own public key towards the agent: the agent refuses the answer.
	m.editReq = nil
	m.editResp = func(path string, status int, _ http.Header, b []byte) (int, []byte) {
		if path == protocol.EnrollPath && status == http.StatusCreated {
			return status, swapKey(t, b, "server_public_key")
		}
		return status, b
	}
	opts.Name = "RS-03"
	if st, err := agent.EnrollWith(ctx, m.client(), opts); err == nil || !strings.Contains(err.Error(), "not authenticated") {
		t.Fatalf("substituted server key accepted: %+v %v", st, err)
	}
}

// Answers are MACed under the server's key: a middlebox cannot make the
// agent take a report as delivered, stop, or change its interval.
func TestForgedAnswersAreNotTakenAsKeepwatchs(t *testing.T) {
	r := newRig(t)
	s := r.enroll(t, "RS-01")
	m := newMITM(t, r)
	var forge atomic.Value
	m.editResp = func(path string, status int, h http.Header, b []byte) (int, []byte) {
		f, _ := forge.Load().(func(http.Header) (int, []byte))
		if f == nil {
			return status, b
		}
		return f(h)
	}
	c := m.client()
	via := &agent.Sender{State: s.State, Client: c}
	if _, err := via.Send(ctx, nil); err != nil {
		t.Fatalf("genuine answer through the proxy: %v", err)
	}
	interval := s.State.Interval
	for name, f := range map[string]func(http.Header) (int, []byte){
		"accepted with a new interval": func(h http.Header) (int, []byte) {
			h.Del(protocol.MACHeader)
			return 200, []byte(`{"seq":99,"state":"ok","heartbeat_interval_seconds":86400,"server_time":"2026-01-01T00:00:00Z"}`)
		},
		"accepted, old MAC kept": func(h http.Header) (int, []byte) {
			return 200, []byte(`{"seq":99,"state":"ok","heartbeat_interval_seconds":5,"server_time":"2026-01-01T00:00:00Z"}`)
		},
		"unauthorized": func(h http.Header) (int, []byte) {
			h.Del(protocol.MACHeader)
			return 401, []byte(`{"error":{"code":"unauthorized","message":"forged"}}`)
		},
		"replayed": func(h http.Header) (int, []byte) {
			h.Del(protocol.MACHeader)
			return 409, []byte(`{"error":{"code":"replayed","message":"forged"}}`)
		},
	} {
		forge.Store(f)
		_, err := via.Send(ctx, nil)
		var se *agent.ServerError
		if err == nil || errors.As(err, &se) && se.Authenticated {
			t.Errorf("%s: taken as keepwatch's answer: %v", name, err)
		}
		if s.State.Interval != interval {
			t.Errorf("%s: interval changed to %d", name, s.State.Interval)
		}
	}
	forge.Store((func(http.Header) (int, []byte))(nil))
	if _, err := via.Send(ctx, nil); err != nil {
		t.Fatalf("genuine answer after the forgeries: %v", err)
	}
}

// Junk from an address does not get a valid agent behind the same address
// (one NAT) refused: the penalty box counts only what does not
// authenticate, authenticated reports are paced per server.
func TestJunkFromTheSameAddressDoesNotRefuseAnAuthenticatedReport(t *testing.T) {
	r := newRig(t)
	s := r.enroll(t, "RS-01")
	junk := seal(t, s, 1, "")
	junk[len(junk)-1] ^= 1
	var limited int
	for range 150 {
		if status, _ := r.post(t, junk); status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("150 forged envelopes from one address were never limited")
	}
	for i := range 5 {
		if _, err := s.Send(ctx, nil); err != nil {
			t.Fatalf("authenticated report %d behind the junk: %v", i, err)
		}
	}
	// A refused but authenticated report (a bad payload) does not count
	// against the address.
	r2 := newRig(t)
	s2 := r2.enroll(t, "RS-01")
	for i := range 120 {
		if status, code := r2.post(t, seal(t, s2, uint64(i+1), "{nope")); status != 400 {
			t.Fatalf("bad payload %d: %d %s", i, status, code)
		}
	}
	if _, err := s2.Send(ctx, nil); err != nil {
		t.Fatalf("after its own bad payloads: %v", err)
	}
}

func TestExpiredEnrollmentKeyIsRefusedWithItsCode(t *testing.T) {
	r := newRig(t)
	r.a.Ingest.KeyLifetime = time.Nanosecond
	c := &agent.Client{BaseURL: r.srv.URL, HTTP: r.srv.Client()}
	_, err := agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "SITE-0001", Key: r.key, Name: "RS-01", Consent: true})
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), keepwatch.EKEYEXPIRED) {
		t.Fatalf("expired key: %v", err)
	}
	// A wrong key still says only unauthorized (expiry tells nothing to
	// whoever does not hold the key).
	_, err = agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "SITE-0001", Key: "wrong", Name: "RS-01", Consent: true})
	if err == nil || !strings.Contains(err.Error(), keepwatch.EUNAUTHORIZED) {
		t.Fatalf("wrong key: %v", err)
	}
	// A revoked key enrolls nothing.
	r.a.Ingest.KeyLifetime = time.Hour
	if err := r.a.Store.RevokeEnrollmentKey(ctx, "SITE-0001"); err != nil {
		t.Fatal(err)
	}
	_, err = agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: "SITE-0001", Key: r.key, Name: "RS-01", Consent: true})
	if err == nil || !strings.Contains(err.Error(), keepwatch.EUNAUTHORIZED) {
		t.Fatalf("revoked key: %v", err)
	}
}

// A status report lost on the way (here: a middlebox that swallows it)
// no longer goes unnoticed behind heartbeats: the next heartbeat says which
// status report was sent last, keepwatch asks for the full state, and the
// gap is recorded for the integrator.
func TestALostStatusReportIsNoticedAndRecorded(t *testing.T) {
	r := newRig(t)
	integ := r.register(t)
	s := r.enroll(t, "RS-01")
	p, _ := agent.StatusPayload([]string{"storage_full:E:"}, nil, time.Now())
	if _, err := s.Send(ctx, p); err != nil {
		t.Fatal(err)
	}
	// The all-clear (status report #2) is swallowed on the way.
	m := newMITM(t, r)
	m.editReq = func([]byte) []byte { return nil }
	lost := &agent.Sender{State: s.State, Client: m.client()}
	allClear, _ := agent.StatusPayload(nil, nil, time.Now())
	if _, err := lost.Send(ctx, allClear); err == nil {
		t.Fatal("the swallowed report was taken as delivered")
	}
	resp, err := s.Send(ctx, nil)
	if err != nil || !resp.Refresh {
		t.Fatalf("heartbeat after a lost status report: %+v %v", resp, err)
	}
	if openIncidents(t, r, integ, keepwatch.KindStatusReportLost) != 0 {
		t.Fatal("gap recorded before the refresh came")
	}
	// The agent sends its full state (status report #3).
	if _, err := s.Send(ctx, allClear); err != nil {
		t.Fatal(err)
	}
	ins, _ := r.a.Store.Incidents(ctx, integ, keepwatch.IncidentOpen, 10)
	var found bool
	for _, in := range ins {
		if in.Kind == keepwatch.KindStatusReportLost {
			found = true
		}
		if in.Kind == "storage_full" {
			t.Fatal("the full state did not clear the condition")
		}
	}
	if !found {
		t.Fatalf("no status_report_lost incident: %+v", ins)
	}
	if resp, err := s.Send(ctx, nil); err != nil || resp.Refresh {
		t.Fatalf("heartbeat after the refresh: %+v %v", resp, err)
	}
}

// A heartbeat held back on the way and released later (after the server
// died, say) is recorded but does not count as a sign of life.
func TestAHeldBackHeartbeatIsNotASignOfLife(t *testing.T) {
	r := newRig(t)
	integ := r.register(t)
	s := r.enroll(t, "RS-01")
	p, _ := agent.StatusPayload(nil, nil, time.Now())
	if _, err := s.Send(ctx, p); err != nil {
		t.Fatal(err)
	}
	before, _ := r.a.Store.ServerRecord(ctx, s.State.ServerID)
	// Sealed ten minutes ago, held since.
	sent := time.Now().Add(-10 * time.Minute).UTC()
	held, _ := json.Marshal(protocol.Payload{TransmittedAt: &sent, StatusSeq: s.State.StatusSeq})
	s.State.Seq++
	env := seal(t, s, s.State.Seq, string(held))
	time.Sleep(20 * time.Millisecond)
	if status, code := r.post(t, env); status != 200 {
		t.Fatalf("held-back heartbeat: %d %s", status, code)
	}
	after, _ := r.a.Store.ServerRecord(ctx, s.State.ServerID)
	if after.LastSeen != before.LastSeen {
		t.Fatalf("the held-back heartbeat counted as a sign of life: last seen %d → %d", before.LastSeen, after.LastSeen)
	}
	if openIncidents(t, r, integ, keepwatch.KindHeartbeatDelayed) != 1 {
		t.Fatal("the held-back heartbeat was not recorded")
	}
	// A timely heartbeat still counts.
	if _, err := s.Send(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if now, _ := r.a.Store.ServerRecord(ctx, s.State.ServerID); now.LastSeen <= before.LastSeen {
		t.Fatal("a timely heartbeat did not count")
	}
}

// A record of the server read before an in-band rotation completed (as the
// change feed may deliver it just after) must not bring the old key back.
func TestAStaleRecordDoesNotUndoARotation(t *testing.T) {
	r := newRig(t)
	s := r.enroll(t, "RS-01")
	if _, err := s.Send(ctx, nil); err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey().Bytes()
	resp, err := s.Send(ctx, &protocol.Payload{Rotate: &protocol.PayloadRotate{PublicKey: pub}})
	if err != nil || len(resp.ServerPublicKey) == 0 {
		t.Fatalf("rotation request: %+v %v", resp, err)
	}
	// What the change feed read between the request and the switch.
	stale, err := r.a.Store.ServerRecord(ctx, s.State.ServerID)
	if err != nil || stale.NextKey == nil {
		t.Fatalf("record with the next key: %v", err)
	}
	id, _ := protocol.ParseServerID(s.State.ServerID)
	peer, _ := ecdh.X25519().NewPublicKey(resp.ServerPublicKey)
	key, err := protocol.DeriveKey(priv, peer, pub, resp.ServerPublicKey, id)
	if err != nil {
		t.Fatal(err)
	}
	old := *s.State
	s.State.Key = key
	if _, err := s.Send(ctx, nil); err != nil {
		t.Fatalf("first report under the new key: %v", err)
	}
	r.a.Ingest.Apply([]keepwatch.ServerRecord{stale})
	old.Seq = s.State.Seq + 10
	_, err = (&agent.Sender{State: &old, Client: s.Client}).Send(ctx, nil)
	var se *agent.ServerError
	if !errors.As(err, &se) || se.Code != keepwatch.EUNAUTHORIZED {
		t.Fatalf("the old key after a stale record: %v", err)
	}
	if _, err := s.Send(ctx, nil); err != nil {
		t.Fatalf("the new key after a stale record: %v", err)
	}
	// A newer record still applies: a fresh one changes nothing.
	waitCreds(t, r)
	if _, err := s.Send(ctx, nil); err != nil {
		t.Fatalf("the new key after a fresh record: %v", err)
	}
}
