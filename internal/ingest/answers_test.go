package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// answer is one refusal or acceptance as the sender sees it.
type answer struct {
	status     int
	code, msg  string
	retryAfter string
	state      string
}

func (r *rig) send(t *testing.T, body []byte) answer {
	t.Helper()
	resp, err := r.srv.Client().Post(r.srv.URL+protocol.ReportPath, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, resp)
}

func (r *rig) enrollRaw(t *testing.T, contentType, body string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", r.srv.URL+protocol.EnrollPath, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, resp)
}

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		State string `json:"state"`
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return answer{resp.StatusCode, body.Error.Code, body.Error.Message, resp.Header.Get("Retry-After"), body.State}
}

// registered gives the rig's installation to an integrator and returns
// the integrator's id.
func (r *rig) registered(t *testing.T) int64 {
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

func (r *rig) server(t *testing.T, integratorID int64, name string) keepwatch.Server {
	t.Helper()
	svs, err := r.a.Store.Servers(ctx, integratorID, "SITE-0001")
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range svs {
		if sv.Name == name {
			return sv
		}
	}
	t.Fatalf("no server %s", name)
	return keepwatch.Server{}
}

func TestAllClearLeavesOnlyUnresolvedEventsListed(t *testing.T) {
	r := newRig(t)
	alice := r.registered(t)
	s := r.enroll(t, "RS-01")
	if a := r.send(t, seal(t, s, 1, `{"conditions":[{"kind":"storage_full","subject":"E:"}],"events":[{"kind":"archive_move_failed","subject":"A1"}]}`)); a.status != 200 {
		t.Fatalf("report: %+v", a)
	}
	if a := r.send(t, seal(t, s, 2, `{"conditions":[]}`)); a.status != 200 {
		t.Fatalf("all clear: %+v", a)
	}
	// The state condition is gone; the event's incident is unresolved,
	// so it stays listed, marked as an event, until someone resolves it.
	sv := r.server(t, alice, "RS-01")
	if len(sv.Conditions) != 1 || sv.Conditions[0].Kind != "archive_move_failed" || !sv.Conditions[0].Event {
		t.Fatalf("conditions after all clear: %+v", sv.Conditions)
	}
	b, _ := json.Marshal(sv.Conditions[0])
	if !strings.Contains(string(b), `"event":true`) {
		t.Fatalf("an unresolved event is not marked in JSON: %s", b)
	}
	ins, err := r.a.Store.Incidents(ctx, alice, keepwatch.IncidentOpen, 10)
	if err != nil || len(ins) != 1 {
		t.Fatalf("open incidents %+v %v", ins, err)
	}
	if _, err := r.a.Store.ResolveIncident(ctx, alice, ins[0].ID, "user:tech", "archive moved by hand"); err != nil {
		t.Fatal(err)
	}
	if sv := r.server(t, alice, "RS-01"); len(sv.Conditions) != 0 {
		t.Fatalf("conditions after the event was resolved: %+v", sv.Conditions)
	}
	v, err := r.a.Store.Installation(ctx, alice, "SITE-0001", time.Now())
	if err != nil || v.Status != keepwatch.StatusOK {
		t.Fatalf("installation %+v %v", v, err)
	}
}

func TestKindsKeepwatchDecidesAreRefusedFromAgents(t *testing.T) {
	r := newRig(t)
	alice := r.registered(t)
	s := r.enroll(t, "RS-01")
	seq := uint64(0)
	for _, kind := range []string{keepwatch.KindServerUnavailable, keepwatch.KindSiteUnreachable, keepwatch.KindFlood,
		keepwatch.KindStorageForecast, keepwatch.KindRetentionShort} {
		for _, payload := range []string{
			`{"conditions":[{"kind":"` + kind + `"}]}`,
			`{"events":[{"kind":"` + kind + `"}]}`,
		} {
			seq++
			a := r.send(t, seal(t, s, seq, payload))
			if a.status != 400 || a.code != keepwatch.EINVALID || !strings.Contains(a.msg, kind) {
				t.Errorf("%s: %+v", payload, a)
			}
		}
	}
	seq++
	if a := r.send(t, seal(t, s, seq, `{"conditions":[]}`)); a.status != 200 {
		t.Fatalf("the agent goes on: %+v", a)
	}
	if sv := r.server(t, alice, "RS-01"); len(sv.Conditions) != 0 || sv.State != keepwatch.ServerOK {
		t.Fatalf("server after refused kinds: %+v", sv)
	}
}

func TestWithdrawingConsentTwiceIsAcceptedAndAppliesNothing(t *testing.T) {
	r := newRig(t)
	alice := r.registered(t)
	s := r.enroll(t, "RS-01")
	if a := r.send(t, seal(t, s, 1, `{"consent":false,"conditions":[{"kind":"storage_full"}],"events":[{"kind":"archive_move_failed"}]}`)); a.status != 200 || a.state != "consent_withdrawn" {
		t.Fatalf("withdrawal: %+v", a)
	}
	// The answer was lost; the agent sends the withdrawal again under a
	// new number.
	if a := r.send(t, seal(t, s, 2, `{"consent":false,"events":[{"kind":"archive_move_failed"}]}`)); a.status != 200 || a.state != "consent_withdrawn" {
		t.Fatalf("repeated withdrawal: %+v", a)
	}
	for i, p := range []string{``, `{}`, `{"conditions":[]}`, `{"events":[{"kind":"archive_move_failed"}]}`} {
		if a := r.send(t, seal(t, s, uint64(3+i), p)); a.status != 403 || a.code != keepwatch.ECONSENTREQUIRED {
			t.Errorf("%q while withdrawn: %+v", p, a)
		}
	}
	ins, err := r.a.Store.Incidents(ctx, alice, "", 10)
	if err != nil || len(ins) != 0 {
		t.Fatalf("incidents from withdrawals: %+v %v", ins, err)
	}
	if sv := r.server(t, alice, "RS-01"); len(sv.Conditions) != 0 || sv.State != keepwatch.ServerConsentWithdrawn {
		t.Fatalf("server: %+v", sv)
	}
	if a := r.send(t, seal(t, s, 10, `{"consent":true,"conditions":[]}`)); a.status != 200 || a.state != "ok" {
		t.Fatalf("granting again: %+v", a)
	}
}

func TestConditionsNullIsRefusedAndMessagesFollowTheLatestReport(t *testing.T) {
	r := newRig(t)
	alice := r.registered(t)
	s := r.enroll(t, "RS-01")
	if a := r.send(t, seal(t, s, 1, `{"conditions":[{"kind":"storage_low","subject":"E:","message":"91 % used"}]}`)); a.status != 200 {
		t.Fatalf("report: %+v", a)
	}
	// null is not "all clear" and not a heartbeat either: it is refused.
	if a := r.send(t, seal(t, s, 2, `{"conditions":null}`)); a.status != 400 || a.code != keepwatch.EINVALID || !strings.Contains(a.msg, "null") {
		t.Fatalf("conditions null: %+v", a)
	}
	if sv := r.server(t, alice, "RS-01"); len(sv.Conditions) != 1 {
		t.Fatalf("after the refused report: %+v", sv.Conditions)
	}
	// The same condition with a new message keeps its start and shows the
	// new message.
	first := r.server(t, alice, "RS-01").Conditions[0]
	if a := r.send(t, seal(t, s, 3, `{"conditions":[{"kind":"storage_low","subject":"E:","message":"95 % used"}]}`)); a.status != 200 {
		t.Fatalf("report: %+v", a)
	}
	c := r.server(t, alice, "RS-01").Conditions[0]
	if c.Message != "95 % used" || !c.Since.Equal(first.Since) {
		t.Fatalf("condition after a new message: %+v (first %+v)", c, first)
	}
}

func TestBadTimestampsAndTypesAreNamed(t *testing.T) {
	r := newRig(t)
	s := r.enroll(t, "RS-01")
	for i, c := range []struct{ payload, want string }{
		{`{"sent_at":"yesterday"}`, `"yesterday" is not an RFC 3339 timestamp`},
		{`{"events":[{"kind":"archive_move_failed","at":"2026-13-01T00:00:00Z"}]}`, `"2026-13-01T00:00:00Z" is not an RFC 3339 timestamp`},
		{`{"sent_at":1700000000}`, "a timestamp must be a string in RFC 3339 format"},
		{`{"conditions":[{"kind":7}]}`, "conditions.kind must be a string, not number"},
		{`{"consent":"yes"}`, "consent must be true or false, not string"},
		{`{"conditions":[`, "not valid JSON"},
	} {
		a := r.send(t, seal(t, s, uint64(i+1), c.payload))
		if a.status != 400 || a.code != keepwatch.EINVALID || !strings.Contains(a.msg, c.want) {
			t.Errorf("%s: %+v, want a message with %q", c.payload, a, c.want)
		}
	}
	a := r.enrollRaw(t, "application/json", `{"slc":"SITE-0001","public_key":"not base64!"}`)
	if a.status != 400 || !strings.Contains(a.msg, "base64") {
		t.Errorf("bad base64: %+v", a)
	}
}

func TestMediaTypesAreMatchedWithoutRegardToCase(t *testing.T) {
	r := newRig(t)
	pub := make([]byte, 32)
	pub[0] = 9 // the X25519 base point: a valid public key
	body := func(name string) string {
		b, _ := json.Marshal(map[string]any{"slc": "SITE-0001", "name": name, "consent": true, "public_key": pub,
			"mac": protocol.EnrollRequestMAC(protocol.EnrollMACKey(r.key), "SITE-0001", name, pub)})
		return string(b)
	}
	for i, ct := range []string{"application/json", "Application/JSON", "application/json; charset=UTF-8", "APPLICATION/JSON;charset=utf-8"} {
		if a := r.enrollRaw(t, ct, body(fmt.Sprintf("RS-%02d", i))); a.status != 201 {
			t.Errorf("Content-Type %q: %+v", ct, a)
		}
	}
	if a := r.enrollRaw(t, "text/plain", body("RS-99")); a.status != 400 || a.code != keepwatch.EINVALID {
		t.Errorf("text/plain: %+v", a)
	}
}

func TestLowOrderPublicKeyIsRefused(t *testing.T) {
	r := newRig(t)
	low := make([]byte, 32)
	b, _ := json.Marshal(map[string]any{"slc": "SITE-0001", "name": "RS-01", "consent": true, "public_key": low,
		"mac": protocol.EnrollRequestMAC(protocol.EnrollMACKey(r.key), "SITE-0001", "RS-01", low)})
	if a := r.enrollRaw(t, "application/json", string(b)); a.status != 400 || a.code != keepwatch.EINVALID {
		t.Fatalf("all-zero public key: %+v", a)
	}
}

func TestOnlyUnauthorizedEnrollmentsCountTowardTheLimit(t *testing.T) {
	r := newRig(t)
	for i := range 30 {
		if a := r.enrollRaw(t, "application/json", `{"slc":"SITE-0001","name":""}`); a.status != 400 {
			t.Fatalf("invalid enrollment %d: %+v", i, a)
		}
	}
	for i := range 10 {
		if a := r.enrollRaw(t, "application/json", wrongKeyEnrollment("SITE-0001", "RS-01")); a.status != 401 {
			t.Fatalf("wrong key %d: %+v", i, a)
		}
	}
	a := r.enrollRaw(t, "application/json", `{}`)
	if a.status != 429 || a.code != keepwatch.ERATELIMITED || a.retryAfter == "" || !strings.Contains(a.msg, "retry in "+a.retryAfter+"s") {
		t.Fatalf("after 10 unauthorized: %+v", a)
	}
}

func TestRateLimitMessageAgreesWithRetryAfter(t *testing.T) {
	r := newRig(t)
	r.a.Ingest.ServerRate, r.a.Ingest.ServerBurst = 2, 1
	s := r.enroll(t, "RS-01")
	var a answer
	for seq := uint64(1); seq < 50; seq++ {
		if a = r.send(t, seal(t, s, seq, "")); a.status == 429 {
			break
		}
	}
	// A wait under a second is rounded up to a whole second, in
	// the header and in the message alike.
	if a.status != 429 || a.retryAfter != "1" || !strings.HasSuffix(a.msg, "retry in 1s") {
		t.Fatalf("paced: %+v", a)
	}
}

func TestSequenceNumbersAtTheTopAreRefusedWithoutLockingTheAgentOut(t *testing.T) {
	r := newRig(t)
	s := r.enroll(t, "RS-01")
	top := uint64(math.MaxUint64)
	for _, c := range []struct {
		seq    uint64
		status int
	}{
		{top, 400},                          // first report after enrollment
		{keepwatch.MaxSeq + 1, 400},         // just above the highest accepted
		{1, 200},                            // the real agent
		{top, 400},                          // after it
		{1 + keepwatch.MaxSeqJump + 1, 400}, // a jump too far
		{2, 200},                            // the real agent goes on
		{2 + keepwatch.MaxSeqJump, 200},     // the largest jump allowed
	} {
		a := r.send(t, seal(t, s, c.seq, ""))
		if a.status != c.status || (c.status == 400 && a.code != keepwatch.EINVALID) {
			t.Errorf("seq %d: %+v, want %d", c.seq, a, c.status)
		}
	}
}

func TestOneFloodingReportOpensAtMostTheCapPlusOneIncidents(t *testing.T) {
	r := newRig(t)
	alice := r.registered(t)
	ch, err := r.a.Store.CreateChannel(ctx, alice, keepwatch.Channel{Name: "ops", Type: keepwatch.ChannelWebhook, Target: "https://127.0.0.1:9/hook", Secret: "s", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.a.Store.CreateRule(ctx, alice, keepwatch.Rule{Name: "all", ChannelID: ch.ID, MinSeverity: keepwatch.SeverityWarning, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	s := r.enroll(t, "RS-01")
	var conds, events []string
	for i := range 200 {
		conds = append(conds, fmt.Sprintf(`{"kind":"camera_unreachable","subject":"cam-%03d"}`, i))
		events = append(events, fmt.Sprintf(`{"kind":"archive_move_failed","subject":"archive-%03d"}`, i))
	}
	payload := `{"conditions":[` + strings.Join(conds, ",") + `],"events":[` + strings.Join(events, ",") + `]}`
	if a := r.send(t, seal(t, s, 1, payload)); a.status != 200 {
		t.Fatalf("flooding report: %+v", a)
	}
	ins, err := r.a.Store.Incidents(ctx, alice, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	floods := 0
	for _, n := range ins {
		if n.Kind == keepwatch.KindFlood {
			floods++
		}
	}
	if len(ins) > keepwatch.DefaultMaxOpenIncidents+1 || floods != 1 {
		t.Fatalf("%d incidents (%d floods) from one report of 200 conditions and 200 events", len(ins), floods)
	}
	if err := r.a.Notify.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	ns, err := r.a.Store.Notifications(ctx, alice, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != len(ins) {
		t.Fatalf("%d notifications for %d incidents", len(ns), len(ins))
	}
	// Every condition is still shown, and every event recorded.
	if sv := r.server(t, alice, "RS-01"); len(sv.Conditions) < 201 {
		t.Fatalf("%d conditions shown", len(sv.Conditions))
	}
	times, err := r.a.Store.EventTimes(ctx, "archive_move_failed")
	if err != nil || len(times) != 200 {
		t.Fatalf("%d events recorded, %v", len(times), err)
	}
	// The next report over the caps opens nothing more.
	if a := r.send(t, seal(t, s, 2, `{"conditions":[`+strings.Join(conds, ",")+`],"events":[`+strings.Join(events[:10], ",")+`]}`)); a.status != 200 {
		t.Fatalf("second report: %+v", a)
	}
	if again, _ := r.a.Store.Incidents(ctx, alice, "", 1000); len(again) != len(ins) {
		t.Fatalf("second flooding report: %d incidents, was %d", len(again), len(ins))
	}
}

// wrongKeyEnrollment is an enrollment request proved with a key that is
// not the installation's.
func wrongKeyEnrollment(slc, name string) string {
	pub := make([]byte, 32)
	pub[0] = 9
	b, _ := json.Marshal(map[string]any{"slc": slc, "name": name, "consent": true, "public_key": pub,
		"mac": protocol.EnrollRequestMAC(protocol.EnrollMACKey("guess"), slc, name, pub)})
	return string(b)
}
