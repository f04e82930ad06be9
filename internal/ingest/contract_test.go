package ingest_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
	"keepwatch/internal/respond"
	"keepwatch/internal/secret"
)

// documentedRow is one answer of docs/protocol.md's table of errors.
type documentedRow struct {
	status   int
	code     string
	endpoint string // enroll or report
}

func (d documentedRow) String() string { return fmt.Sprintf("%d %s %s", d.status, d.code, d.endpoint) }

// protocolTable reads the answers docs/protocol.md section 9 lists.
func protocolTable(t *testing.T) []documentedRow {
	t.Helper()
	b, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## 9. Errors and what to do")
	end := strings.Index(doc, "**Backoff.**")
	if start < 0 || end < start {
		t.Fatal("docs/protocol.md has no section 9 table")
	}
	row := regexp.MustCompile("(?m)^\\| (\\d{3}) \\| `([a-z_]+)` \\| (enroll|report|both) \\|")
	var out []documentedRow
	for _, m := range row.FindAllStringSubmatch(doc[start:end], -1) {
		var status int
		fmt.Sscan(m[1], &status)
		for _, ep := range []string{"enroll", "report"} {
			if m[3] == ep || m[3] == "both" {
				out = append(out, documentedRow{status, m[2], ep})
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("read only %d rows from the table", len(out))
	}
	return out
}

// openAPIIngest returns the documented statuses of the two ingest
// operations, each with its description ($ref resolved).
func openAPIIngest(t *testing.T) map[string]map[int]string {
	t.Helper()
	b, err := os.ReadFile("../api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Ref         string `json:"$ref"`
				Description string `json:"description"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Responses map[string]struct {
				Description string `json:"description"`
			} `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int]string{}
	for ep, path := range map[string]string{"enroll": protocol.EnrollPath, "report": protocol.ReportPath} {
		out[ep] = map[int]string{}
		for s, r := range doc.Paths[path]["post"].Responses {
			var status int
			fmt.Sscan(s, &status)
			desc := r.Description
			if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
				desc = doc.Components.Responses[name].Description
			}
			out[ep][status] = desc
		}
	}
	return out
}

// notCraftedIngest are the table's answers no request of the contract
// test produces, with the reason.
var notCraftedIngest = map[string]string{
	"409 conflict enroll":    "two enrollments of one name at the same moment",
	"500 internal enroll":    "a fault inside keepwatch",
	"500 internal report":    "a fault inside keepwatch",
	"503 unavailable enroll": "the database is unavailable (internal/app's PostgreSQL restart test)",
	"503 unavailable report": "the database is unavailable (internal/app's PostgreSQL restart test)",
}

// TestProtocolTableMatchesTheRealAnswers crafts, for every answer that
// docs/protocol.md's table of errors lists, a request that produces it,
// and checks that the real answers are exactly the table's (status,
// code and endpoint), each documented in openapi.json as well, and that
// every refusal's status is the one respond gives its code.
func TestProtocolTableMatchesTheRealAnswers(t *testing.T) {
	r := newRig(t)
	table := protocolTable(t)
	documented := openAPIIngest(t)

	// An installation whose Care Plus ends tomorrow, and one whose ended.
	tomorrow := keepwatch.DateOf(time.Now().Add(24 * time.Hour))
	ended := keepwatch.DateOf(time.Now().Add(-48 * time.Hour))
	for slc, until := range map[string]keepwatch.Date{"SOON-0001": tomorrow, "GONE-0001": ended} {
		if _, err := r.a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: slc, Customer: "c", Product: "p", CarePlusUntil: until}, secret.Hash(r.key)); err != nil {
			t.Fatal(err)
		}
	}
	pub := make([]byte, 32)
	pub[0] = 9
	enrollBody := func(slc, key, name string, consent bool) string {
		b, _ := json.Marshal(map[string]any{"slc": slc, "name": name, "consent": consent, "public_key": pub,
			"mac": protocol.EnrollRequestMAC(protocol.EnrollMACKey(key), strings.ToUpper(slc), name, pub)})
		return string(b)
	}
	s := r.enroll(t, "RS-01")
	withdrawn := r.enroll(t, "RS-02")
	got := map[string][]string{} // answer → what produced it
	note := func(ep, what string, a answer) {
		key := fmt.Sprintf("%d %s %s", a.status, a.code, ep)
		got[key] = append(got[key], what)
		desc, ok := documented[ep][a.status]
		switch {
		case !ok:
			t.Errorf("%s (%s): %d is not documented in openapi.json", what, ep, a.status)
		case a.status >= 400 && !strings.Contains(desc, "`"+a.code+"`"):
			t.Errorf("%s (%s): openapi.json's %d does not name `%s`", what, ep, a.status, a.code)
		}
		if a.status >= 400 && respond.Status(a.code) != a.status {
			t.Errorf("%s: %d %s, but the code maps to %d", what, a.status, a.code, respond.Status(a.code))
		}
	}
	enroll := func(what, ct, body string) { note("enroll", what, r.enrollRaw(t, ct, body)) }
	report := func(what string, body []byte) { note("report", what, r.send(t, body)) }

	enroll("enrolled", "application/json", enrollBody("SITE-0001", r.key, "RS-03", true))
	enroll("body not JSON", "application/json", `{"slc":`)
	enroll("media type", "text/plain", enrollBody("SITE-0001", r.key, "RS-04", true))
	enroll("wrong enrollment key", "application/json", enrollBody("SITE-0001", "guess", "RS-04", true))
	enroll("Care Plus ended", "application/json", enrollBody("GONE-0001", r.key, "RS-01", true))
	enroll("no consent", "application/json", enrollBody("SITE-0001", r.key, "RS-04", false))
	enroll("oversized", "application/json", `{"name":"`+strings.Repeat("x", 20<<10)+`"}`)

	report("heartbeat", seal(t, s, 1, ""))
	report("truncated", seal(t, s, 2, "")[:40])
	report("payload not JSON", seal(t, s, 2, "{"))
	tampered := seal(t, s, 2, "")
	tampered[len(tampered)-1] ^= 1
	report("tampered", tampered)
	report("replayed", seal(t, s, 1, ""))
	report("oversized", append(seal(t, s, 3, ""), make([]byte, protocol.MaxEnvelope)...))
	report("withdrawal", seal(t, withdrawn, 1, `{"consent":false}`))
	report("heartbeat without consent", seal(t, withdrawn, 2, ""))

	// Care Plus ends for a server already enrolled: keepwatch's clock
	// moves three days on.
	c := r.enrollIn(t, "SOON-0001", "RS-09")
	r.a.Ingest.Now = func() time.Time { return time.Now().Add(72 * time.Hour) }
	report("Care Plus ended", seal(t, c, 1, ""))
	r.a.Ingest.Now = time.Now

	// An enrollment key past its lifetime; a report under the key of a
	// re-enrollment still waiting for the integrator.
	lifetime := r.a.Ingest.KeyLifetime
	r.a.Ingest.KeyLifetime = time.Nanosecond
	enroll("expired enrollment key", "application/json", enrollBody("SITE-0001", r.key, "RS-06", true))
	r.a.Ingest.KeyLifetime = lifetime
	pending := r.enrollTB(t, "RS-01")
	report("re-enrollment pending", seal(t, pending, 1, ""))

	// Pacing: a server over its pace, an address over its refusals.
	r.a.Ingest.ServerRate, r.a.Ingest.ServerBurst = 2, 1
	for seq := uint64(4); seq < 50; seq++ {
		if a := r.send(t, seal(t, s, seq, "")); a.status == 429 {
			note("report", "too fast", a)
			break
		}
	}
	for i := range 20 {
		if a := r.enrollRaw(t, "application/json", enrollBody("SITE-0001", fmt.Sprint("guess-", i), "RS-05", true)); a.status == 429 {
			note("enroll", "too many wrong keys", a)
			break
		}
	}

	want := map[string]bool{}
	for _, row := range table {
		want[row.String()] = true
		if respond.Status(row.code) != row.status {
			t.Errorf("the table says %s, but the code maps to %d", row, respond.Status(row.code))
		}
		if _, ok := got[row.String()]; !ok {
			if _, skip := notCraftedIngest[row.String()]; !skip {
				t.Errorf("the table lists %s, which no crafted request produced", row)
			}
		}
	}
	var extra []string
	for k, what := range got {
		var status int
		fmt.Sscan(k, &status)
		if status >= 400 && !want[k] {
			extra = append(extra, fmt.Sprintf("%s (%s)", k, strings.Join(what, ", ")))
		}
	}
	sort.Strings(extra)
	for _, e := range extra {
		t.Errorf("keepwatch answers %s, which the table does not list", e)
	}
	if _, ok := got["201  enroll"]; !ok {
		t.Errorf("no enrollment succeeded: %v", got)
	}
	if _, ok := got["200  report"]; !ok {
		t.Errorf("no report was accepted: %v", got)
	}
}

// enrollIn enrolls a server in another installation of the rig (whose
// enrollment key is the rig's).
func (r *rig) enrollIn(t *testing.T, slc, name string) *agent.Sender {
	t.Helper()
	c := &agent.Client{BaseURL: r.srv.URL, HTTP: r.srv.Client()}
	st, err := agent.EnrollWith(ctx, c, agent.EnrollOptions{SLC: slc, Key: r.key, Name: name, Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	return &agent.Sender{State: st, Client: c}
}
