package notify_test

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"crypto/tls"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/outbound"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// Keys of the vendor channels: none may show in an error text.
const (
	slackKey     = "T0KW/B0KW/slackkey5c2e9f1d8a7b6c"
	teamsKey     = "teamskey-3f9a8b7c6d5e4f3a"
	pdRoutingKey = "R0UT1NGKEYpagerduty0123456789ab" + "c"
	poToken      = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
	poUser       = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
	haloClient   = "0f6a1d2c-keepwatch"
	haloSecret   = "halo-secret-7d1e0c5b9a8f"
	haloTicketID = 4242
	genieKey     = "eb243592-faa2-4ba2-a551-1afdf565c889"
)

// vendorCall is one request a vendor receiver answered.
type vendorCall struct {
	At   time.Time
	Path string
	JSON any
	Form url.Values
}

// vendors is one TLS server on loopback answering as Slack, Teams,
// PagerDuty, Pushover and HaloPSA do, checking every request against the
// vendor's documented schema.
type vendors struct {
	t     *testing.T
	srv   *httptest.Server
	clock *testutil.Clock

	mu      sync.Mutex
	calls   []vendorCall
	limit   map[string]int // path → answer 429 (Retry-After: retryAfter) this many times
	retry   string
	tickets map[int]string    // HaloPSA ticket id → status
	alerts  map[string]string // Opsgenie alias → open, acknowledged, closed
}

func newVendors(t *testing.T, clock *testutil.Clock) *vendors {
	v := &vendors{t: t, clock: clock, limit: map[string]int{}, retry: "120", tickets: map[int]string{}, alerts: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/services/", v.slack)
	mux.HandleFunc("POST /teams/workflows/", v.teams)
	mux.HandleFunc("POST /pagerduty/v2/enqueue", v.pagerduty)
	mux.HandleFunc("POST /pushover/1/messages.json", v.pushover)
	mux.HandleFunc("POST /opsgenie/v2/alerts", v.opsgenieCreate)
	mux.HandleFunc("POST /opsgenie/v2/alerts/{alias}/{verb}", v.opsgenieAction)
	mux.HandleFunc("POST /halo/auth/token", v.haloToken)
	mux.HandleFunc("POST /halo/api/Tickets", v.haloTickets)
	mux.HandleFunc("POST /halo/api/Actions", v.haloActions)
	v.srv = httptest.NewTLSServer(mux)
	t.Cleanup(v.srv.Close)
	return v
}

// client is the guarded outbound client trusting the receiver's
// certificate, loopback allowed.
func (v *vendors) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(v.srv.Certificate())
	return outbound.MustNew(outbound.Config{Allow: []string{"127.0.0.1/32"}, TLSConfig: &tls.Config{RootCAs: pool}})
}

// take records a call; it reports false (having answered 429) while the
// path is rate limited.
func (v *vendors) take(w http.ResponseWriter, r *http.Request, body any, form url.Values) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, vendorCall{At: v.clock.Now(), Path: r.URL.Path, JSON: body, Form: form})
	if v.limit[r.URL.Path] > 0 {
		v.limit[r.URL.Path]--
		w.Header().Set("Retry-After", v.retry)
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return false
	}
	return true
}

func (v *vendors) callsTo(prefix string) []vendorCall {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []vendorCall
	for _, c := range v.calls {
		if strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func readJSON(t *testing.T, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", r.URL.Path, ct)
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Errorf("%s: body is not JSON: %v: %s", r.URL.Path, err, b)
		return false
	}
	return true
}

// str returns m[k] as a string, failing if it is not one or is longer
// than max characters (0: no bound) or empty when required.
func str(t *testing.T, where string, m map[string]any, k string, required bool, max int) string {
	t.Helper()
	raw, ok := m[k]
	if !ok || raw == nil {
		if required {
			t.Errorf("%s: %q missing", where, k)
		}
		return ""
	}
	s, ok := raw.(string)
	if !ok {
		t.Errorf("%s: %q is %T, want a string", where, k, raw)
		return ""
	}
	if required && s == "" {
		t.Errorf("%s: %q empty", where, k)
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		t.Errorf("%s: %q has %d characters, at most %d", where, k, utf8.RuneCountInString(s), max)
	}
	return s
}

func obj(t *testing.T, where string, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s: %T, want an object", where, v)
	}
	return m
}

func list(t *testing.T, where string, v any, min, max int) []any {
	t.Helper()
	l, ok := v.([]any)
	if !ok || len(l) < min || len(l) > max {
		t.Errorf("%s: %v, want a list of %d to %d", where, v, min, max)
	}
	return l
}

// slack checks an incoming-webhook message (text and Block Kit).
func (v *vendors) slack(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if r.URL.Path != "/slack/services/"+slackKey {
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	var m map[string]any
	if !readJSON(t, r, &m) {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	str(t, "slack", m, "text", true, 40000)
	for i, b := range list(t, "slack blocks", m["blocks"], 1, 50) {
		blk := obj(t, "slack block", b)
		where := fmt.Sprintf("slack block %d", i)
		switch typ := str(t, where, blk, "type", true, 0); typ {
		case "header":
			text := obj(t, where, blk["text"])
			if text["type"] != "plain_text" {
				t.Errorf("%s: header text must be plain_text", where)
			}
			str(t, where, text, "text", true, 150)
		case "section":
			if blk["text"] != nil {
				str(t, where, obj(t, where, blk["text"]), "text", true, 3000)
			}
			if blk["fields"] != nil {
				for _, f := range list(t, where+" fields", blk["fields"], 1, 10) {
					str(t, where, obj(t, where, f), "text", true, 2000)
				}
			}
		case "context":
			list(t, where+" elements", blk["elements"], 1, 10)
		case "actions":
			for _, e := range list(t, where+" elements", blk["elements"], 1, 25) {
				el := obj(t, where, e)
				if el["type"] != "button" {
					t.Errorf("%s: element %v", where, el)
				}
				str(t, where, obj(t, where, el["text"]), "text", true, 75)
				str(t, where, el, "url", true, 3000)
			}
		default:
			t.Errorf("%s: unexpected block type %q", where, typ)
		}
	}
	if v.take(w, r, m, nil) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}
}

// teams checks a Workflows message with one Adaptive Card.
func (v *vendors) teams(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if r.URL.Query().Get("sig") != teamsKey {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var m map[string]any
	if !readJSON(t, r, &m) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if m["type"] != "message" {
		t.Errorf("teams: type %v, want message", m["type"])
	}
	att := list(t, "teams attachments", m["attachments"], 1, 1)
	if len(att) == 1 {
		a := obj(t, "teams attachment", att[0])
		if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
			t.Errorf("teams: contentType %v", a["contentType"])
		}
		card := obj(t, "teams card", a["content"])
		if card["type"] != "AdaptiveCard" || str(t, "teams card", card, "version", true, 0) == "" {
			t.Errorf("teams: card %v", card)
		}
		for _, b := range list(t, "teams body", card["body"], 1, 100) {
			el := obj(t, "teams element", b)
			switch el["type"] {
			case "TextBlock":
				str(t, "teams TextBlock", el, "text", true, 0)
			case "FactSet":
				for _, f := range list(t, "teams facts", el["facts"], 1, 20) {
					fm := obj(t, "teams fact", f)
					str(t, "teams fact", fm, "title", true, 0)
					str(t, "teams fact", fm, "value", true, 0)
				}
			default:
				t.Errorf("teams: element type %v", el["type"])
			}
		}
		if card["actions"] != nil {
			for _, a := range list(t, "teams actions", card["actions"], 1, 6) {
				am := obj(t, "teams action", a)
				if am["type"] != "Action.OpenUrl" || str(t, "teams action", am, "url", true, 0) == "" {
					t.Errorf("teams: action %v", am)
				}
			}
		}
	}
	if v.take(w, r, m, nil) {
		w.WriteHeader(http.StatusAccepted)
	}
}

// pagerduty checks an Events API v2 event and answers as PagerDuty does.
func (v *vendors) pagerduty(w http.ResponseWriter, r *http.Request) {
	t := v.t
	var m map[string]any
	if !readJSON(t, r, &m) {
		http.Error(w, `{"status":"invalid event","message":"Event object is invalid"}`, http.StatusBadRequest)
		return
	}
	if m["routing_key"] != pdRoutingKey {
		t.Errorf("pagerduty: routing_key %v", m["routing_key"])
	}
	key := str(t, "pagerduty", m, "dedup_key", true, 255)
	switch action := str(t, "pagerduty", m, "event_action", true, 0); action {
	case "trigger":
		p := obj(t, "pagerduty payload", m["payload"])
		str(t, "pagerduty payload", p, "summary", true, 1024)
		str(t, "pagerduty payload", p, "source", true, 255)
		switch sev := str(t, "pagerduty payload", p, "severity", true, 0); sev {
		case "critical", "error", "warning", "info":
		default:
			t.Errorf("pagerduty: severity %q", sev)
		}
		if ts := str(t, "pagerduty payload", p, "timestamp", false, 0); ts != "" {
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				t.Errorf("pagerduty: timestamp %q", ts)
			}
		}
		if m["links"] != nil {
			for _, l := range list(t, "pagerduty links", m["links"], 1, 10) {
				str(t, "pagerduty link", obj(t, "pagerduty link", l), "href", true, 0)
			}
		}
	case "acknowledge", "resolve":
	default:
		t.Errorf("pagerduty: event_action %q", action)
	}
	if v.take(w, r, m, nil) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": key})
	}
}

// pushover checks a Message API request (form fields and their limits).
func (v *vendors) pushover(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if err := r.ParseForm(); err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("pushover: not a form: %v", err)
	}
	f := r.PostForm
	if f.Get("token") != poToken || f.Get("user") != poUser {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"status":0,"errors":["application token is invalid"]}`)
		return
	}
	limits := map[string]int{"message": 1024, "title": 250, "url": 512, "url_title": 100}
	for k, max := range limits {
		if n := utf8.RuneCountInString(f.Get(k)); n > max {
			t.Errorf("pushover: %s has %d characters, at most %d", k, n, max)
		}
	}
	if f.Get("message") == "" {
		t.Error("pushover: empty message")
	}
	if p, err := strconv.Atoi(f.Get("priority")); f.Has("priority") && (err != nil || p < -2 || p > 1) {
		t.Errorf("pushover: priority %q (2 would need retry and expire)", f.Get("priority"))
	}
	if v.take(w, r, nil, f) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":1,"request":"647d2300-702c-4b38-8b2f-d56326ae460b"}`)
	}
}

// opsgenieAuthorised checks the GenieKey header as Opsgenie does.
func (v *vendors) opsgenieAuthorised(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "GenieKey "+genieKey {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"message":"Key format is not valid!","took":0.001,"requestId":"x"}`)
		return false
	}
	return true
}

func opsgenieAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"result":"Request will be processed","took":0.302,"requestId":"43a29c5c-3dbf-4fa4-9c26-f4f71023e120"}`)
}

// opsgenieCreate checks a Create Alert request against the Alert API's
// fields and limits.
func (v *vendors) opsgenieCreate(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if !v.opsgenieAuthorised(w, r) {
		return
	}
	var m map[string]any
	if !readJSON(t, r, &m) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	str(t, "opsgenie", m, "message", true, 130)
	alias := str(t, "opsgenie", m, "alias", true, 512)
	str(t, "opsgenie", m, "description", false, 15000)
	str(t, "opsgenie", m, "source", false, 100)
	str(t, "opsgenie", m, "entity", false, 512)
	switch p := str(t, "opsgenie", m, "priority", false, 0); p {
	case "", "P1", "P2", "P3", "P4", "P5":
	default:
		t.Errorf("opsgenie: priority %q", p)
	}
	for _, tag := range list(t, "opsgenie tags", m["tags"], 0, 20) {
		if s, ok := tag.(string); !ok || len(s) > 50 {
			t.Errorf("opsgenie: tag %v", tag)
		}
	}
	for k, d := range obj(t, "opsgenie details", m["details"]) {
		if _, ok := d.(string); !ok {
			t.Errorf("opsgenie: details[%s] is %T, want a string", k, d)
		}
	}
	if v.take(w, r, m, nil) {
		v.mu.Lock()
		v.alerts[alias] = "open"
		v.mu.Unlock()
		opsgenieAccepted(w)
	}
}

// opsgenieAction acknowledges or closes an alert by its alias.
func (v *vendors) opsgenieAction(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if !v.opsgenieAuthorised(w, r) {
		return
	}
	if r.URL.Query().Get("identifierType") != "alias" {
		t.Errorf("opsgenie: identifierType %q", r.URL.Query().Get("identifierType"))
	}
	var m map[string]any
	if !readJSON(t, r, &m) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	str(t, "opsgenie action", m, "note", false, 25000)
	str(t, "opsgenie action", m, "user", false, 100)
	str(t, "opsgenie action", m, "source", false, 100)
	alias, verb := r.PathValue("alias"), r.PathValue("verb")
	v.mu.Lock()
	_, known := v.alerts[alias]
	v.mu.Unlock()
	if !known || (verb != "acknowledge" && verb != "close") {
		t.Errorf("opsgenie: %s of alert %q (known %v)", verb, alias, known)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if v.take(w, r, m, nil) {
		v.mu.Lock()
		v.alerts[alias] = map[string]string{"acknowledge": "acknowledged", "close": "closed"}[verb]
		v.mu.Unlock()
		opsgenieAccepted(w)
	}
}

func (v *vendors) haloToken(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" || f.Get("client_id") != haloClient || f.Get("client_secret") != haloSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if v.take(w, r, nil, f) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"halo-access-1","token_type":"Bearer","expires_in":3600}`)
	}
}

func (v *vendors) haloAuthorised(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer halo-access-1" {
		http.Error(w, "unauthorised", http.StatusUnauthorized)
		return false
	}
	return true
}

// haloTickets creates a ticket (no id) or updates one (with its id).
func (v *vendors) haloTickets(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if !v.haloAuthorised(w, r) {
		return
	}
	var recs []map[string]any
	if !readJSON(t, r, &recs) || len(recs) != 1 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	rec := recs[0]
	if !v.take(w, r, rec, nil) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if id, ok := rec["id"].(float64); ok {
		if _, known := v.tickets[int(id)]; !known {
			t.Errorf("halo: update of unknown ticket %v", id)
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if rec["status_id"] == float64(notify.HaloPSAClosedStatus) {
			v.tickets[int(id)] = "closed"
		}
		json.NewEncoder(w).Encode(map[string]any{"id": int(id)})
		return
	}
	str(t, "halo ticket", rec, "summary", true, 250)
	str(t, "halo ticket", rec, "details", true, 0)
	id := haloTicketID + len(v.tickets)
	v.tickets[id] = "open"
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": id, "summary": rec["summary"]})
}

func (v *vendors) haloActions(w http.ResponseWriter, r *http.Request) {
	t := v.t
	if !v.haloAuthorised(w, r) {
		return
	}
	var recs []map[string]any
	if !readJSON(t, r, &recs) || len(recs) != 1 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	rec := recs[0]
	str(t, "halo action", rec, "note", true, 0)
	id, _ := rec["ticket_id"].(float64)
	v.mu.Lock()
	_, known := v.tickets[int(id)]
	v.mu.Unlock()
	if !known {
		t.Errorf("halo: action on unknown ticket %v", rec["ticket_id"])
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if v.take(w, r, rec, nil) {
		json.NewEncoder(w).Encode(map[string]any{"id": 1, "ticket_id": id})
	}
}

// vendorSite is a site whose integrator also has one channel of each
// vendor type, each with a rule for everything.
type vendorSite struct {
	*site
	v  *vendors
	ch map[keepwatch.ChannelType]int64
}

func newVendorSite(t *testing.T, dialect string, types ...keepwatch.ChannelType) *vendorSite {
	x := &vendorSite{site: newSite(t, dialect, 1, 0), ch: map[keepwatch.ChannelType]int64{}}
	x.v = newVendors(t, x.clock)
	base := x.v.srv.URL
	specs := map[keepwatch.ChannelType]keepwatch.ChannelSpec{
		keepwatch.ChannelSlack:     {URL: base + "/slack/services/" + slackKey},
		keepwatch.ChannelTeams:     {URL: base + "/teams/workflows/run?api-version=1&sig=" + teamsKey},
		keepwatch.ChannelPagerDuty: {RoutingKey: pdRoutingKey, Endpoint: base + "/pagerduty/v2/enqueue"},
		keepwatch.ChannelPushover:  {Token: poToken, User: poUser, Endpoint: base + "/pushover/1/messages.json"},
		keepwatch.ChannelOpsgenie:  {APIKey: genieKey, Endpoint: base + "/opsgenie"},
		keepwatch.ChannelHaloPSA:   {ClientID: haloClient, ClientSecret: haloSecret, Endpoint: base + "/halo"},
	}
	for _, typ := range types {
		spec := specs[typ]
		spec.Name, spec.Type = string(typ), string(typ)
		c, err := notify.CreateChannel(ctx, x.s, x.integ, spec)
		must(t, err)
		x.ch[typ] = c.ID
		_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "all to " + string(typ), ChannelID: c.ID, MinSeverity: keepwatch.SeverityWarning, Enabled: true})
		must(t, err)
	}
	x.n = notify.New(notify.Config{Store: x.s, Now: x.clock.Now, Logger: quiet(), Interval: interval, PublicURL: "https://keepwatch.example",
		RetryBase: time.Second, MaintenanceEnd: x.s.MaintenanceEnd, HTTP: x.v.client()})
	return x
}

// beat keeps the site's server reporting (with conds, when non-nil).
func (x *vendorSite) beat(d time.Duration, conds []string) {
	x.run(d, func(second int) {
		if second%5 == 0 {
			x.report(x.servers[0], x.clock.Now(), conds)
		}
	})
}

func (x *vendorSite) outbox() []keepwatch.Notification {
	ns, err := x.s.Notifications(ctx, x.integ, 100)
	must(x.t, err)
	return ns
}

func TestVendorChannelsFollowAnIncidentFromOpeningToResolution(t *testing.T) {
	all := []keepwatch.ChannelType{keepwatch.ChannelSlack, keepwatch.ChannelTeams, keepwatch.ChannelPagerDuty, keepwatch.ChannelPushover, keepwatch.ChannelOpsgenie, keepwatch.ChannelHaloPSA}
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			x := newVendorSite(t, d, all...)
			cond := []string{`storage_full:E:\Recordings`}
			x.report(x.servers[0], x.clock.Now(), cond)
			x.beat(30*time.Second, cond)
			ins, err := x.s.Incidents(ctx, x.integ, "", 10)
			must(t, err)
			if len(ins) != 1 {
				t.Fatalf("incidents = %+v", ins)
			}
			inc := ins[0]
			dedup := fmt.Sprintf("keepwatch-incident-%d", inc.ID)
			link := fmt.Sprintf("https://keepwatch.example/incidents/%d", inc.ID)

			// Opened: one message each, readable, with the link.
			slack := x.v.callsTo("/slack/")
			if len(slack) != 1 {
				t.Fatalf("slack got %d messages, want 1", len(slack))
			}
			sb, _ := json.Marshal(slack[0].JSON)
			for _, want := range []string{"Harbor Logistics", "SITE-0001", "RS-01", "Storage full", link} {
				if !strings.Contains(string(sb), strings.ReplaceAll(want, `\`, `\\`)) {
					t.Errorf("slack message lacks %q: %s", want, sb)
				}
			}
			teams := x.v.callsTo("/teams/")
			if tb, _ := json.Marshal(teams); len(teams) != 1 || !strings.Contains(string(tb), "Harbor Logistics") || !strings.Contains(string(tb), link) {
				t.Fatalf("teams got %s", tb)
			}
			pd := x.v.callsTo("/pagerduty/")
			if len(pd) != 1 {
				t.Fatalf("pagerduty got %d events, want 1", len(pd))
			}
			ev := pd[0].JSON.(map[string]any)
			payload := ev["payload"].(map[string]any)
			if ev["event_action"] != "trigger" || ev["dedup_key"] != dedup || payload["severity"] != "error" ||
				!strings.Contains(payload["source"].(string), "RS-01") || !strings.Contains(payload["summary"].(string), "Harbor Logistics") {
				t.Fatalf("pagerduty trigger = %v", ev)
			}
			if links, _ := ev["links"].([]any); len(links) != 1 || links[0].(map[string]any)["href"] != link {
				t.Fatalf("pagerduty links = %v", ev["links"])
			}
			if og := x.v.callsTo("/opsgenie/"); len(og) != 1 || og[0].JSON.(map[string]any)["alias"] != dedup || og[0].JSON.(map[string]any)["priority"] != "P2" {
				t.Fatalf("opsgenie got %+v", og)
			}
			po := x.v.callsTo("/pushover/")
			if len(po) != 1 || po[0].Form.Get("url") != link || po[0].Form.Get("priority") != "1" || !strings.Contains(po[0].Form.Get("message"), "SITE-0001") {
				t.Fatalf("pushover got %+v", po)
			}
			tickets := x.v.callsTo("/halo/api/Tickets")
			if len(tickets) != 1 || !strings.Contains(tickets[0].JSON.(map[string]any)["details"].(string), "Harbor Logistics") {
				t.Fatalf("halopsa tickets = %+v", tickets)
			}
			kept, err := x.s.IncidentTicket(ctx, x.integ, x.ch[keepwatch.ChannelHaloPSA], inc.ID)
			if err != nil || kept != strconv.Itoa(haloTicketID) {
				t.Fatalf("ticket kept on the incident = %q, %v", kept, err)
			}

			// Acknowledged: PagerDuty and the ticket hear of it, the
			// chat channels do not.
			_, err = x.s.AckIncident(ctx, x.integ, inc.ID, "tech@alice.example", "driving there")
			must(t, err)
			x.beat(10*time.Second, cond)
			if pd = x.v.callsTo("/pagerduty/"); len(pd) != 2 || pd[1].JSON.(map[string]any)["event_action"] != "acknowledge" || pd[1].JSON.(map[string]any)["dedup_key"] != dedup {
				t.Fatalf("pagerduty after acknowledgement: %+v", pd)
			}
			if og := x.v.callsTo("/opsgenie/"); len(og) != 2 || og[1].Path != "/opsgenie/v2/alerts/"+dedup+"/acknowledge" || x.v.alerts[dedup] != "acknowledged" {
				t.Fatalf("opsgenie after acknowledgement: %+v", og)
			}
			actions := x.v.callsTo("/halo/api/Actions")
			if len(actions) != 1 || actions[0].JSON.(map[string]any)["ticket_id"] != float64(haloTicketID) ||
				!strings.Contains(actions[0].JSON.(map[string]any)["note"].(string), "tech@alice.example") {
				t.Fatalf("halopsa note on acknowledgement: %+v", actions)
			}
			if len(x.v.callsTo("/slack/")) != 1 || len(x.v.callsTo("/teams/")) != 1 || len(x.v.callsTo("/pushover/")) != 1 {
				t.Fatal("an acknowledgement reached a chat channel")
			}

			// The condition clears: keepwatch resolves the incident.
			x.beat(30*time.Second, []string{})
			if pd = x.v.callsTo("/pagerduty/"); len(pd) != 3 || pd[2].JSON.(map[string]any)["event_action"] != "resolve" || pd[2].JSON.(map[string]any)["dedup_key"] != dedup {
				t.Fatalf("pagerduty after resolution: %+v", pd)
			}
			if og := x.v.callsTo("/opsgenie/"); len(og) != 3 || x.v.alerts[dedup] != "closed" {
				t.Fatalf("opsgenie after resolution: %+v", og)
			}
			tickets = x.v.callsTo("/halo/api/Tickets")
			if len(tickets) != 2 || tickets[1].JSON.(map[string]any)["id"] != float64(haloTicketID) || x.v.tickets[haloTicketID] != "closed" {
				t.Fatalf("halopsa ticket not closed: %+v", tickets)
			}
			if len(x.v.callsTo("/halo/api/Actions")) != 2 {
				t.Fatal("no resolution note on the ticket")
			}
			for _, p := range []string{"/slack/", "/teams/", "/pushover/"} {
				c := x.v.callsTo(p)
				if b, _ := json.Marshal(c[len(c)-1]); len(c) != 2 || !strings.Contains(string(b), "RESOLVED") {
					t.Fatalf("%s resolution: %s", p, b)
				}
			}
			for _, n := range x.outbox() {
				if n.ChannelID == x.hookCh {
					continue
				}
				if n.State != keepwatch.NotificationSent || n.LastError != "" {
					t.Errorf("notification %+v", n)
				}
			}
		})
	}
}

func TestRateLimitedDeliveryIsRetriedNoEarlierThanRetryAfter(t *testing.T) {
	for _, c := range []struct {
		typ  keepwatch.ChannelType
		path string
	}{
		{keepwatch.ChannelSlack, "/slack/services/" + slackKey},
		{keepwatch.ChannelPagerDuty, "/pagerduty/v2/enqueue"},
	} {
		t.Run(string(c.typ), func(t *testing.T) {
			x := newVendorSite(t, store.SQLite, c.typ)
			x.v.limit[c.path] = 1
			x.v.retry = "120"
			cond := []string{"media_db_write_failed"}
			x.report(x.servers[0], x.clock.Now(), cond)
			x.beat(5*time.Second, cond)
			calls := x.v.callsTo(c.path)
			if len(calls) != 1 {
				t.Fatalf("%d requests, want the one refused", len(calls))
			}
			refusedAt := calls[0].At
			var n keepwatch.Notification
			for _, o := range x.outbox() {
				if o.ChannelID == x.ch[c.typ] {
					n = o
				}
			}
			if n.State != keepwatch.NotificationPending || n.NotBefore.Before(refusedAt.Add(120*time.Second)) || !strings.Contains(n.LastError, "429") {
				t.Fatalf("after a 429 with Retry-After: 120: %+v (refused at %s)", n, refusedAt)
			}
			x.beat(110*time.Second, cond)
			if got := len(x.v.callsTo(c.path)); got != 1 {
				t.Fatalf("%d requests before Retry-After passed", got)
			}
			x.beat(20*time.Second, cond)
			calls = x.v.callsTo(c.path)
			if len(calls) != 2 || calls[1].At.Before(refusedAt.Add(120*time.Second)) {
				t.Fatalf("retry: %d requests, last at %s (refused at %s)", len(calls), calls[len(calls)-1].At, refusedAt)
			}
			for _, o := range x.outbox() {
				if o.ChannelID == x.ch[c.typ] && (o.State != keepwatch.NotificationSent || o.Attempts != 2) {
					t.Fatalf("outbox: %+v", o)
				}
			}
		})
	}
}

func TestVendorFailuresNeverShowTheKey(t *testing.T) {
	x := newVendorSite(t, store.SQLite)
	base := x.v.srv.URL
	for _, spec := range []keepwatch.ChannelSpec{
		{Name: "wrong slack", Type: "slack", URL: base + "/slack/services/T0KW/B0KW/wrongkey0123456789"},
		{Name: "wrong pushover", Type: "pushover", Token: strings.Repeat("k", 30), User: poUser, Endpoint: base + "/pushover/1/messages.json"},
		{Name: "wrong halo", Type: "halopsa", ClientID: haloClient, ClientSecret: "not-the-secret-0987", Endpoint: base + "/halo"},
		{Name: "nowhere", Type: "teams", URL: "https://127.0.0.1:1/teams/workflows/run?sig=" + teamsKey},
	} {
		c, err := notify.CreateChannel(ctx, x.s, x.integ, spec)
		must(t, err)
		must(t, notify.QueueTest(ctx, x.s, x.integ, c.ID, x.clock.Now()))
	}
	x.beat(5*time.Second, nil)
	n := 0
	for _, o := range x.outbox() {
		if o.Type != keepwatch.NotifyTest {
			continue
		}
		n++
		if o.State != keepwatch.NotificationPending || o.LastError == "" {
			t.Errorf("failed test notification: %+v", o)
		}
		for _, secret := range []string{"wrongkey", "kkkkkkkk", "not-the-secret", teamsKey, "127.0.0.1"} {
			if strings.Contains(o.LastError, secret) {
				t.Errorf("last_error %q shows %q", o.LastError, secret)
			}
		}
	}
	if n != 4 {
		t.Fatalf("%d test notifications, want 4", n)
	}
}

func TestTestNotificationsReachEveryVendorAndLeaveNothingOpen(t *testing.T) {
	all := []keepwatch.ChannelType{keepwatch.ChannelSlack, keepwatch.ChannelTeams, keepwatch.ChannelPagerDuty, keepwatch.ChannelPushover, keepwatch.ChannelOpsgenie, keepwatch.ChannelHaloPSA}
	x := newVendorSite(t, store.SQLite, all...)
	for _, id := range x.ch {
		must(t, notify.QueueTest(ctx, x.s, x.integ, id, x.clock.Now()))
	}
	x.beat(3*time.Second, nil)
	pd := x.v.callsTo("/pagerduty/")
	if len(pd) != 2 || pd[0].JSON.(map[string]any)["event_action"] != "trigger" || pd[1].JSON.(map[string]any)["event_action"] != "resolve" {
		t.Fatalf("pagerduty test: %+v", pd)
	}
	if og := x.v.callsTo("/opsgenie/"); len(og) != 2 || len(x.v.alerts) != 1 {
		t.Fatalf("opsgenie test: %+v", og)
	}
	for alias, state := range x.v.alerts {
		if state != "closed" {
			t.Errorf("opsgenie test alert %s left %s", alias, state)
		}
	}
	if len(x.v.tickets) != 1 || x.v.tickets[haloTicketID] != "closed" {
		t.Fatalf("halopsa test tickets: %v", x.v.tickets)
	}
	for _, p := range []string{"/slack/", "/teams/", "/pushover/"} {
		if len(x.v.callsTo(p)) != 1 {
			t.Errorf("%s: %d test messages", p, len(x.v.callsTo(p)))
		}
	}
	for _, o := range x.outbox() {
		if o.State != keepwatch.NotificationSent {
			t.Errorf("test notification %+v", o)
		}
	}
}

func TestPagerDutyAlertOfAnIncidentAcknowledgedBeforeItWasSentStartsAcknowledged(t *testing.T) {
	x := newVendorSite(t, store.SQLite)
	c, err := notify.CreateChannel(ctx, x.s, x.integ, keepwatch.ChannelSpec{Name: "pager", Type: "pagerduty", RoutingKey: pdRoutingKey, Endpoint: x.v.srv.URL + "/pagerduty/v2/enqueue"})
	must(t, err)
	_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "after a minute", ChannelID: c.ID, MinSeverity: keepwatch.SeverityWarning,
		MinDuration: keepwatch.Duration(time.Minute), Enabled: true})
	must(t, err)
	cond := []string{"license_exceeded"}
	x.report(x.servers[0], x.clock.Now(), cond)
	x.beat(10*time.Second, cond)
	ins, err := x.s.Incidents(ctx, x.integ, "", 10)
	must(t, err)
	_, err = x.s.AckIncident(ctx, x.integ, ins[0].ID, "tech@alice.example", "")
	must(t, err)
	x.beat(time.Minute, cond)
	pd := x.v.callsTo("/pagerduty/")
	if len(pd) != 2 || pd[0].JSON.(map[string]any)["event_action"] != "trigger" || pd[1].JSON.(map[string]any)["event_action"] != "acknowledge" {
		t.Fatalf("pagerduty: %+v", pd)
	}
}
